vcl 4.1;

probe p {
	.url = "/";
	.window = 65;
	.threshold = 3;
}

backend default {
	.host = "127.0.0.1";
	.probe = p;
}
