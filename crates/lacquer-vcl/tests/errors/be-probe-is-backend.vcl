vcl 4.1;

backend other { .host = "127.0.0.2"; }

backend default {
	.host = "127.0.0.1";
	.probe = other;
}

sub vcl_recv { set req.backend_hint = other; }
