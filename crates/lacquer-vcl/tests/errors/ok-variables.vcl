vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	set req.http.a = req.method + req.url + req.proto + req.xid + req.restarts;
	set req.http.b = client.ip + server.ip + local.ip + remote.ip + server.hostname + server.identity;
	set req.http.c = local.endpoint + local.socket + sess.xid;
	set req.hash_always_miss = true;
	set req.hash_ignore_busy = false;
	set req.ttl = 10s;
	set req.grace = 1h;
	set req.http.d = req.can_gzip + req.is_hitmiss + req.is_hitpass + req.storage;
	set req.url = "/" + req.url;
	set req.method = "GET";
	set req.http.level = req.esi_level;
	set req.backend_hint = default;
}

sub vcl_backend_fetch {
	set bereq.url = bereq.url + "?x";
	set bereq.method = "GET";
	set bereq.first_byte_timeout = 1s;
	set bereq.connect_timeout = 1s;
	set bereq.between_bytes_timeout = 1s;
	set bereq.backend = default;
	set bereq.http.xid = bereq.xid + bereq.retries + bereq.uncacheable + bereq.is_bgfetch;
}

sub vcl_backend_response {
	set beresp.ttl = beresp.ttl + 1s;
	set beresp.grace = 10s;
	set beresp.keep = 1m;
	set beresp.do_stream = false;
	set beresp.do_gunzip = false;
	set beresp.storage = storage.Transient;
	set beresp.http.x = beresp.backend.name + beresp.age + beresp.was_304 + beresp.proto;
	set beresp.filters = "esi gzip";
	set beresp.status = 200;
	set beresp.reason = "OK";
}

sub vcl_deliver {
	set resp.http.x = obj.hits + obj.uncacheable + resp.is_streaming + obj.storage + obj.can_esi;
	set resp.do_esi = false;
	set resp.filters = "";
}

sub vcl_hit {
	set req.http.x = obj.ttl + obj.grace + obj.keep + obj.age + obj.reason + obj.status + obj.proto + obj.http.etag;
}

sub vcl_synth {
	set resp.body = "x" + resp.status;
}
