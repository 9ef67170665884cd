vcl 4.1;

probe p {
	.url = "/";
	.window = 8;
	.threshold = 9;
}

backend default {
	.host = "127.0.0.1";
	.probe = p;
}
