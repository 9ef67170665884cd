vcl 4.1;

# Lacquer's built-in demo: the static site in examples/site, served by the
# fs module (a backend that reads files) behind the cache. `lacquer demo`
# puts the site's directory in place of @SITE@.

import fs;

backend default none;

sub vcl_init {
	new site = fs.root("@SITE@");
}

sub vcl_recv {
	if (req.url == "/request") {
		return (synth(200, "OK"));
	}
	set req.backend_hint = site.backend();
}

sub vcl_backend_response {
	# A demo wants to show hits: keep everything a minute.
	set beresp.ttl = 1m;
}

sub vcl_deliver {
	if (obj.hits > 0) {
		set resp.http.X-Cache = "HIT (" + obj.hits + ")";
	} else {
		set resp.http.X-Cache = "MISS";
	}
}

# /request: a page VCL makes by itself, about the request that asked.
sub vcl_synth {
	if (resp.status != 200) {
		return (deliver);
	}
	set resp.http.Content-Type = "text/html; charset=utf-8";
	set resp.http.Cache-Control = "no-store";
	set resp.body = {"<!DOCTYPE html>
<html>
  <head><title>Your request</title><link rel="stylesheet" href="/style.css"></head>
  <body>
    <h1>Made by VCL</h1>
    <p>This page was made by <code>vcl_synth</code> for "} + req.method + " " + req.url + {".</p>
    <ul>
      <li>client: "} + client.ip + {"</li>
      <li>transaction: "} + req.xid + {"</li>
      <li>time: "} + now + {"</li>
      <li>user agent: "} + regsub(req.http.User-Agent, "[<>&]", "") + {"</li>
    </ul>
    <p><a href="/">Back</a></p>
  </body>
</html>
"};
	return (deliver);
}
