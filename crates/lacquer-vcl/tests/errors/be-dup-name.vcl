vcl 4.1;

backend default { .host = "127.0.0.1"; }
backend b1 { .host = "127.0.0.2"; }
backend b1 { .host = "127.0.0.3"; }

sub vcl_recv {
	set req.backend_hint = b1;
}
