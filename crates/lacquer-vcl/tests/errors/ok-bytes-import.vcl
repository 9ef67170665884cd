vcl 4.1;

import std;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	set req.http.b = std.bytes(req.http.size, 0B);
	set req.http.b = std.bytes(req.http.size, 1KB);
	set req.http.b = std.bytes(req.http.size, 1.5MB);
	set req.http.b = std.bytes(req.http.size, 2 GB);
	set req.http.b = std.bytes(req.http.size, 3TB);
	set req.http.b = std.bytes(req.http.size, 4PB);
	set req.http.i = std.integer(req.http.i, 0);
	set req.http.i = std.integer(s = req.http.i, fallback = 1);
	set req.http.r = std.real(req.http.r, 0.5);
	set req.http.d = std.duration(req.http.d, 1s);
	set req.http.t = std.time(req.http.t, now);
	set req.http.ip = std.ip(req.http.ip, "127.0.0.1");
	set req.http.up = std.toupper(req.url);
	std.log("request " + req.url);
	std.syslog(6, "info");
	std.collect(req.http.cookie);
	if (std.healthy(req.backend_hint) && std.file_exists("/etc/passwd")) {
		std.timestamp("checked");
	}
}
