vcl 4.1;

import directors;

backend default { .host = "127.0.0.1"; }

sub vcl_init {
	new rr = directors.round_robin();
	rr.add_backend(default);
}

sub vcl_recv {
	set req.backend_hint = rr.nosuch();
}
