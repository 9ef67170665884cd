vcl 4.1;

probe p {
	.url = "/";
	.window = 10;
}

backend default {
	.host = "127.0.0.1";
	.probe = p;
}
