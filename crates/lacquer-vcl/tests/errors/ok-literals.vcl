vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub vcl_backend_response {
	set beresp.ttl = 10ms;
	set beresp.ttl = 10s;
	set beresp.ttl = 10m;
	set beresp.ttl = 10h;
	set beresp.ttl = 10d;
	set beresp.ttl = 10w;
	set beresp.ttl = 10y;
	set beresp.ttl = 1.5s;
	set beresp.ttl = 10 s;
	set beresp.ttl = 1. s;
	set beresp.ttl = 0s;
	set beresp.grace = -1s;
	set beresp.keep = 0.001s;
	set beresp.do_esi = true;
	set beresp.do_gzip = false;
	set beresp.uncacheable = true;
	set beresp.http.int = 0;
	set beresp.http.int = 007;
	set beresp.http.int = 123456789012345;
	set beresp.http.real = 0.5;
	set beresp.http.real = 10.;
	set beresp.status = 200;
}
