vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub foo {
	set req.http.x = "1";
}

sub foo {
	set req.http.x = "2";
}

sub vcl_recv {
	call foo;
}
