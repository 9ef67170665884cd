vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	set req.http.X-Forwarded-For = client.ip;
	set req.http.x_underscore = "1";
	set req.http.x-dash-123 = "1";
	set req.http.X-UPPER = req.http.x-upper;
	set req.http."quoted-name" = "1";
	set req.http.x = req.http."quoted-name";
	unset req.http."quoted-name";
	set req.http.user-agent = "x";
}

sub vcl_backend_response {
	set beresp.http.cache-control = "max-age=10";
	unset beresp.http.set-cookie;
	set beresp.http.via = bereq.http.via;
}

sub vcl_deliver {
	unset resp.http.x-varnish;
	set resp.http.age = obj.age;
}
