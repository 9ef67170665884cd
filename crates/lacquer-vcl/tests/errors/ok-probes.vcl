vcl 4.1;

probe minimal { }

probe by_url {
	.url = "/";
}

probe by_request {
	.request = "HEAD / HTTP/1.0";
	.window = 64;
	.threshold = 64;
	.initial = 0;
}

probe default {
	.url = "/ping";
	.interval = 1m;
}

backend a { .host = "127.0.0.1"; .probe = minimal; }
backend b { .host = "127.0.0.1"; .probe = by_url; }
backend c { .host = "127.0.0.1"; .probe = by_request; }
backend d { .host = "127.0.0.1"; }

sub vcl_recv {
	if (req.http.x == "a") {
		set req.backend_hint = a;
	} else if (req.http.x == "b") {
		set req.backend_hint = b;
	} else if (req.http.x == "c") {
		set req.backend_hint = c;
	} else {
		set req.backend_hint = d;
	}
}
