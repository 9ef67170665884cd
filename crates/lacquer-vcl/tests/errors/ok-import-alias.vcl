vcl 4.1;

import std;
import std as s;
import std as s;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	set req.http.up = s.toupper(req.url);
	std.log("both names call the same module");
}
