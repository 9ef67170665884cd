vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub inner {
	set resp.http.x = beresp.http.y;
}

sub outer {
	call inner;
}

sub vcl_deliver {
	call outer;
}
