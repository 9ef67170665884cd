vcl 4.1;

import directors;
import std;

backend a { .host = "127.0.0.1"; .port = "8081"; }
backend b { .host = "127.0.0.1"; .port = "8082"; }

sub vcl_init {
	new rr = directors.round_robin();
	rr.add_backend(a);
	rr.add_backend(b);
	new fb = directors.fallback(sticky = true);
	fb.add_backend(rr.backend());
	new sh = directors.shard();
	sh.add_backend(a);
	sh.add_backend(b);
	sh.reconfigure();
}

sub vcl_recv {
	set req.backend_hint = fb.backend();
	if (req.url ~ "^/sharded/") {
		set req.backend_hint = sh.backend(by=URL);
	}
	std.log("backend " + req.backend_hint);
}
