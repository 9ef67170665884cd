backend default { .host = "127.0.0.1"; }
vcl 4.1;
