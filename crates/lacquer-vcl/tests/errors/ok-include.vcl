vcl 4.1;

include "./ok-include-backend.inc";

sub vcl_recv {
	set req.http.main = "1";
}

include "./ok-include-subs.inc";
