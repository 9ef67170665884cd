vcl 4.1;

import std from "/nonexistent/libvmod_std.so";

backend default { .host = "127.0.0.1"; }
