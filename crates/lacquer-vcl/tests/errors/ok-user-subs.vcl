vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub normalize_host {
	set req.http.host = regsub(req.http.host, ":[0-9]+$", "");
	call strip_www;
}

sub strip_www {
	set req.http.host = regsub(req.http.host, "^www\.", "");
}

sub common {
	set req.http.common = "1";
}

sub vcl_recv {
	call normalize_host;
	call common;
}

sub vcl_backend_fetch {
	set bereq.http.from-fetch = "1";
}

sub vcl_deliver {
	call uses_resp;
}

sub uses_resp {
	set resp.http.x = "1";
	return (deliver);
}

sub late_defined {
	set req.http.late = "1";
}

sub vcl_hash {
	call late_defined;
}
