vcl 4.1;

probe p {
	.request = GET;
}

backend default {
	.host = "127.0.0.1";
	.probe = p;
}
