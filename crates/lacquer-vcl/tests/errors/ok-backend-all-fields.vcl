vcl 4.1;

probe healthy {
	.url = "/health";
	.expected_response = 204;
	.timeout = 2s;
	.interval = 5s;
	.window = 8;
	.threshold = 3;
	.initial = 2;
}

backend default {
	.host = "127.0.0.1";
	.port = "8080";
	.host_header = "www.example.com";
	.connect_timeout = 1.5s;
	.first_byte_timeout = 60s;
	.between_bytes_timeout = 10s;
	.max_connections = 200;
	.proxy_header = 1;
	.probe = healthy;
}

backend v6 {
	.host = "::1";
	.port = "http";
	.proxy_header = 2;
	.probe = {
		.request =
		    "GET /status HTTP/1.1"
		    "Host: www.example.com"
		    "Connection: close";
		.timeout = 100 ms;
	}
}

backend spare {
	.host = "127.0.0.1:8081";
}

backend nothing none;

sub vcl_recv {
	if (req.url ~ "^/v6/") {
		set req.backend_hint = v6;
	} elsif (req.url ~ "^/spare/") {
		set req.backend_hint = spare;
	} elseif (req.url ~ "^/none/") {
		set req.backend_hint = nothing;
	} else {
		set req.backend_hint = default;
	}
}
