vcl 4.1;

backend vcl_foo { .host = "127.0.0.1"; }
