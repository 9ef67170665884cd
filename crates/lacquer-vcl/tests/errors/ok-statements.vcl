vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub helper {
	set req.http.helped = "yes";
}

sub vcl_recv {
	set req.http.a = "1";
	unset req.http.a;
	call helper;
	ban("req.url ~ ^/old/");
	ban("obj.http.x-tag == " + req.http.tag);
	if (req.method == "BAN") {
		return (synth(200, "Banned"));
	}
	if (req.method == "PURGE") {
		return (purge);
	}
	if (req.http.upgrade) {
		return (pipe);
	}
	if (req.restarts > 3) {
		return (fail);
	}
	if (req.http.x) {
		return (synth(404));
	}
	if (req.http.y) {
		return (pass);
	}
	return (hash);
}

sub vcl_hash {
	hash_data(req.url);
	if (req.http.host) {
		hash_data(req.http.host);
	} else {
		hash_data(server.ip);
	}
	return (lookup);
}

sub vcl_hit {
	if (obj.ttl < 0s) {
		return (pass);
	}
	return (deliver);
}

sub vcl_miss {
	return (fetch);
}

sub vcl_pass {
	return (fetch);
}

sub vcl_pipe {
	set bereq.http.connection = "close";
	return (pipe);
}

sub vcl_purge {
	return (synth(200, "Purged"));
}

sub vcl_deliver {
	set resp.http.hits = obj.hits;
	if (resp.status == 503) {
		return (restart);
	}
	return (deliver);
}

sub vcl_synth {
	set resp.http.content-type = "text/plain";
	synthetic("Error " + resp.status + " " + resp.reason);
	set resp.body = "replaced";
	return (deliver);
}

sub vcl_backend_fetch {
	unset bereq.http.cookie;
	return (fetch);
}

sub vcl_backend_response {
	if (beresp.status >= 500) {
		return (retry);
	}
	if (beresp.http.x-abandon) {
		return (abandon);
	}
	if (beresp.http.x-error) {
		return (error(503, "Bad backend"));
	}
	return (deliver);
}

sub vcl_backend_error {
	synthetic("Backend error");
	set beresp.body = "replaced";
	if (bereq.retries < 2) {
		return (retry);
	}
	return (deliver);
}

sub vcl_init {
	return (ok);
}

sub vcl_fini {
	return (ok);
}
