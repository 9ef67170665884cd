vcl 4.1;

backend req { .host = "127.0.0.1"; }
