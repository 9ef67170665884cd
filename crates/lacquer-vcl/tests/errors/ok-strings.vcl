vcl 4.1;

backend default { .host = "127.0.0.1"; }

sub vcl_recv {
	set req.http.plain = "plain string with 'single' quotes and a \ backslash";
	set req.http.long = {"long string with "double" quotes
and a newline"};
	set req.http.triple = """triple "quoted" {"braces"} and
newline""";
	set req.http.empty = "";
	set req.http.empty-long = {""};
	set req.http.concat = "a" + {"b"} + """c""" + req.url;
	set req.http.percent = "100%";
	set req.http.hash = "# not a comment";
	set req.http.slashes = "// not a comment /* either */";
	set req.http.utf8 = "été ☃";
}
