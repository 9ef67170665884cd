vcl 4.1;

backend default { .host = "127.0.0.1"; }

acl local {
	"localhost";
	"127.0.0.1";
	"127.0.0.1";
	"10.0.0.0"/8;
	! "10.1.0.0"/16;
	!"10.2.0.0"/16;
	"192.168.0.0" / 24;
	"::1";
	"2001:db8::"/32;
	( "no-such-host.invalid" );
	! ( "no-such-host.invalid" );
}

acl logged +log {
	"192.0.2.0"/24;
}

acl tabled +table -log {
	"198.51.100.1";
}

acl pedantic +pedantic {
	"203.0.113.0"/24;
}

acl empty {
}

sub vcl_recv {
	if (client.ip ~ local || client.ip ~ logged) {
		return (pass);
	}
	if (client.ip !~ tabled && !(server.ip ~ pedantic)) {
		return (hash);
	}
	if (local.ip ~ empty || remote.ip ~ local) {
		return (pipe);
	}
}
