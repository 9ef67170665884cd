vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	if (req.url == "/" || req.url != "/x" && !(req.url ~ "^/y") && req.url !~ "z$") {
		set req.http.a = "1";
	}
	if (req.restarts < 1 && req.restarts <= 1 && req.restarts >= 0 &&
	    req.restarts > -1) {
		set req.http.b = "1";
	}
	if (req.http.cookie) {
		unset req.http.cookie;
	}
	if (!req.http.authorization) {
		set req.http.c = "no auth";
	}
	set req.http.int = 1 + 2 - 3 * 4 / 5 % 6;
	set req.http.neg = -1 - -2;
	set req.http.paren = (1 + 2) * 3;
	set req.http.real = 1.5 * 2.25 - 0.5 / 4.;
	set req.http.str = "a" + 1 + "b" + 2.5 + client.ip + now + 1s + true;
	set req.ttl = 10s + 1m - 2h * 2 / 3;
	set req.grace = -1s;
	if (now > now - 1d && now - 1w < now + 1y) {
		set req.http.d = "time";
	}
	if (1s < 2s && 1.5 == 1.5 && true != false && client.ip == client.ip) {
		set req.http.e = "cmp";
	}
	if (req.backend_hint == default && req.backend_hint != default) {
		set req.http.f = "backend";
	}
	if (req.http.x == req.http.y || req.http.x < "m" || "a" >= req.url) {
		set req.http.g = "string";
	}
}

sub vcl_deliver {
	set resp.status = resp.status + 1;
	set resp.status = 200 * 2 / 2;
	set resp.reason = "OK " + resp.status;
	set resp.http.x += "appended";
	set resp.http.x += 1;
}
