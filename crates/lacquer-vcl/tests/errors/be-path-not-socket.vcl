vcl 4.1;

backend default {
	.path = "/etc/passwd";
}
