vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	set req.url = regsub(req.url, "\?.*$", "");
	set req.url = regsuball(req.url, "/+", "/");
	set req.http.x = regsub(req.url, "^/(\w+)/(.*)$", "\2/\1");
	set req.http.y = regsuball(req.http.cookie, "(^|; ) *__utm.=[^;]+;? *", "\1");
	set req.http.z = regsub(req.url, {"^/"quoted"/"}, """\0""");
	if (req.url ~ "(?i)\.(jpg|png|gif)$" && req.http.host !~ "^static\.") {
		set req.http.img = "1";
	}
	if (req.http.x ~ "") {
		set req.http.empty-re = "1";
	}
}
