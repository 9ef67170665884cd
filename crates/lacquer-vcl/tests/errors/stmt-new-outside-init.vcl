vcl 4.1;

import directors;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	new rr = directors.round_robin();
}
