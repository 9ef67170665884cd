# hash comment before the version
// line comment
/* block
   comment */
vcl 4.1; # trailing comment

backend default { # comment
	.host = /* inline */ "127.0.0.1"; // comment
}

sub vcl_recv {
	/* "this is not a string" */
	# return (pass);
	// return (pipe);
	set req.http.x = "1"; /* comment */ set req.http.y = "2";
}
/* comment at end without newline */