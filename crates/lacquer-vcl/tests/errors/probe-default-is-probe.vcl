vcl 4.1;

probe default { .url = "/"; .window = 100; }

backend default { .host = "127.0.0.1"; }
