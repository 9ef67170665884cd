vcl 4.1;

# A typical Varnish setup: one application backend with a health probe,
# purging from trusted addresses, static files cached without cookies.

probe healthcheck {
	.url = "/healthz";
	.interval = 5s;
	.timeout = 1s;
	.window = 5;
	.threshold = 3;
}

backend default {
	.host = "127.0.0.1";
	.port = "8080";
	.connect_timeout = 1s;
	.first_byte_timeout = 30s;
	.probe = healthcheck;
}

acl purgers {
	"127.0.0.1";
	"::1";
	"10.0.0.0"/8;
}

sub vcl_recv {
	if (req.method == "PURGE") {
		if (client.ip !~ purgers) {
			return (synth(405, "Purging not allowed for " + client.ip));
		}
		return (purge);
	}
	if (req.http.Upgrade ~ "(?i)websocket") {
		return (pipe);
	}
	if (req.url ~ "\.(css|js|png|jpg|gif|svg|woff2?)(\?.*)?$") {
		unset req.http.Cookie;
	}
	# Drop tracking parameters so they do not split the cache.
	set req.url = regsuball(req.url, "([?&])utm_[a-z]+=[^&]*&?", "\1");
	set req.url = regsub(req.url, "[?&]$", "");
}

sub vcl_pipe {
	if (req.http.Upgrade) {
		set bereq.http.Upgrade = req.http.Upgrade;
		set bereq.http.Connection = req.http.Connection;
	}
}

sub vcl_backend_response {
	if (bereq.url ~ "\.(css|js|png|jpg|gif|svg|woff2?)(\?.*)?$") {
		unset beresp.http.Set-Cookie;
		set beresp.ttl = 1d;
	}
	set beresp.grace = 1h;
}

sub vcl_deliver {
	if (obj.hits > 0) {
		set resp.http.X-Cache = "HIT";
	} else {
		set resp.http.X-Cache = "MISS";
	}
	unset resp.http.X-Powered-By;
}
