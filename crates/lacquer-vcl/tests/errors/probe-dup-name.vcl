vcl 4.1;

probe p { .url = "/"; }
probe p { .url = "/x"; }

backend default {
	.host = "127.0.0.1";
	.probe = p;
}
