vcl 4.1;

backend std { .host = "127.0.0.1"; }

import std;
