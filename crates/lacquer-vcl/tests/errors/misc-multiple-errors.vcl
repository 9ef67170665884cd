vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	set req.xid = "1";
	set req.http.x = beresp.status;
	set req.esi_level = 1;
}

sub vcl_deliver {
	set beresp.ttl = 1s;
}
