vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	set req.http.first = "1";
}

sub vcl_recv {
	set req.http.second = "2";
}

sub vcl_deliver {
	set resp.http.x = "1";
}

sub vcl_deliver {
	unset resp.http.x;
}
