vcl 4.1;

# Lacquer's built-in demo: every page is made by VCL itself, so it needs no
# backend. (The full demo — a static site served by the fs module behind
# the cache — arrives with those pieces.)

backend default none;

sub vcl_recv {
	if (req.url ~ "^/favicon") {
		return (synth(404, "No icon here"));
	}
	return (synth(200, "OK"));
}

sub vcl_synth {
	if (resp.status != 200) {
		return (deliver);
	}
	set resp.http.Content-Type = "text/html; charset=utf-8";
	set resp.http.Cache-Control = "no-store";
	set resp.body = {"<!DOCTYPE html>
<html>
  <head><title>Lacquer</title></head>
  <body>
    <h1>Lacquer is running</h1>
    <p>This page was made by VCL (<code>vcl_synth</code>) for "} + req.method + " " + req.url + {".</p>
    <ul>
      <li>client: "} + client.ip + {"</li>
      <li>transaction: "} + req.xid + {"</li>
      <li>time: "} + now + {"</li>
      <li>user agent: "} + regsub(req.http.User-Agent, "[<>&]", "") + {"</li>
    </ul>
    <p>Put your own VCL in front of your site with
    <code>lacquer serve -a :8080 -f default.vcl</code>, or check it with
    <code>lacquer check default.vcl</code>.</p>
  </body>
</html>
"};
	return (deliver);
}
