vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	if (req.http.x) {
		return (synth(700, "Custom"));
	}
}

sub vcl_synth {
	if (resp.status == 700) {
		set resp.status = 301;
		set resp.http.location = "https://example.com" + req.url;
		return (deliver);
	}
}

sub vcl_backend_error {
	return (abandon);
}
