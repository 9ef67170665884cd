vcl 4.1;

acl default { "127.0.0.1"; }
backend default { .host = "127.0.0.1"; }
