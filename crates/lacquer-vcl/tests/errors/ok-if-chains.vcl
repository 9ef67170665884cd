vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	if (req.url == "/a") {
		set req.http.x = "a";
	} elseif (req.url == "/b") {
		set req.http.x = "b";
	} elsif (req.url == "/c") {
		set req.http.x = "c";
	} else if (req.url == "/d") {
		set req.http.x = "d";
	} elif (req.url == "/e") {
		set req.http.x = "e";
	} else {
		if (req.url == "/f") {
			set req.http.x = "f";
		} else {
			if (req.url == "/g") { set req.http.x = "g"; }
		}
	}
	if (req.http.y) { }
	{
		set req.http.block = "bare block";
	}
}
