vcl 4.0;

backend default { .host = "127.0.0.1"; .port = "8080"; }

sub vcl_recv {
	set req.esi = true;
	if (req.method == "PURGE") {
		return (purge);
	}
}

sub vcl_backend_response {
	set beresp.storage_hint = "s0";
}
