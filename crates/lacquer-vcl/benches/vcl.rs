//! VCL compiler and interpreter speed: `cargo bench -p lacquer-vcl`.
//!
//! Two figures, each the median of several timed batches:
//! - compiling a generated 1,000-line VCL (target: under 20 ms);
//! - running a typical `vcl_recv` (a dozen conditions, header edits, one
//!   regsub) against an in-memory context (target: under 1 µs).
//!
//! Timings belong here, never in tests: a loaded CI machine must not fail a
//! build, and a benchmark is read by a person who knows the machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use lacquer_defs::{Method, Var};
use lacquer_vcl::exec::run;
use lacquer_vcl::testctx::MemContext;
use lacquer_vcl::{compile_str, Options};

/// A realistic VCL of about `lines` lines: backends with probes, ACLs, and
/// subroutines full of conditions, regexes and header edits.
fn big_vcl(lines: usize) -> String {
    let mut s = String::from("vcl 4.1;\n\nimport std;\n\n");
    s.push_str("probe health {\n\t.url = \"/health\";\n\t.interval = 5s;\n\t.timeout = 1s;\n\t.window = 5;\n\t.threshold = 3;\n}\n\n");
    for i in 0..8 {
        s.push_str(&format!(
            "backend app{i} {{\n\t.host = \"127.0.0.1\";\n\t.port = \"{}\";\n\t.connect_timeout = 2s;\n\t.first_byte_timeout = 30s;\n\t.probe = health;\n}}\n\n",
            8000 + i
        ));
    }
    s.push_str("acl purgers {\n\t\"127.0.0.1\";\n\t\"10.0.0.0\"/8;\n\t!\"10.9.0.0\"/16;\n}\n\n");
    let mut n = 0;
    while s.lines().count() < lines - 30 {
        s.push_str(&format!(
            "sub route_{n} {{\n\
             \tif (req.url ~ \"^/section{n}/(\\w+)\") {{\n\
             \t\tset req.http.X-Section = \"{n}\";\n\
             \t\tset req.url = regsub(req.url, \"^/section{n}/\", \"/s/\");\n\
             \t\tset req.backend_hint = app{};\n\
             \t}} elsif (req.http.X-Route == \"r{n}\" && req.method == \"GET\") {{\n\
             \t\tunset req.http.Cookie;\n\
             \t\tset req.http.X-Route-Hit = \"yes\";\n\
             \t}} else if (req.http.User-Agent ~ \"(?i)bot{n}\") {{\n\
             \t\treturn (synth(403, \"No bots\"));\n\
             \t}}\n\
             }}\n\n",
            n % 8
        ));
        n += 1;
    }
    s.push_str("sub vcl_recv {\n\tif (req.method == \"PURGE\" && client.ip ~ purgers) {\n\t\treturn (purge);\n\t}\n");
    for i in 0..n {
        s.push_str(&format!("\tcall route_{i};\n"));
    }
    s.push_str("}\n\nsub vcl_backend_response {\n\tif (beresp.http.Cache-Control !~ \"max-age\") {\n\t\tset beresp.ttl = 1h;\n\t}\n\tset beresp.grace = 10m;\n}\n\n");
    s.push_str("sub vcl_deliver {\n\tunset resp.http.X-Powered-By;\n\tset resp.http.X-Cache = \"HIT\";\n}\n");
    s
}

const TYPICAL_RECV: &str = r#"vcl 4.1;
backend default { .host = "127.0.0.1"; .port = "8080"; }
acl internal { "127.0.0.1"; "10.0.0.0"/8; }
sub vcl_recv {
	if (req.method == "PURGE") {
		if (client.ip !~ internal) { return (synth(405, "Not allowed")); }
		return (purge);
	}
	if (req.http.Upgrade ~ "(?i)websocket") { return (pipe); }
	if (req.url ~ "^/admin" || req.url ~ "^/login") { return (pass); }
	if (req.http.Authorization) { return (pass); }
	set req.http.X-Forwarded-Proto = "https";
	unset req.http.X-Debug;
	if (req.http.Accept-Encoding) {
		if (req.http.Accept-Encoding ~ "gzip") {
			set req.http.Accept-Encoding = "gzip";
		} else {
			unset req.http.Accept-Encoding;
		}
	}
	if (req.url ~ "\.(png|gif|jpg|css|js)(\?.*)?$") {
		unset req.http.Cookie;
	}
	set req.url = regsub(req.url, "\?utm_[a-z]+=[^&]*$", "");
	if (req.http.Cookie == "") { unset req.http.Cookie; }
	if (req.restarts > 0) { set req.http.X-Restarted = "1"; }
	return (hash);
}
"#;

/// Times `f` in batches and returns the median time per call.
fn median_per_call(batches: usize, per_batch: u32, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..batches)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed() / per_batch
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let src = big_vcl(1000);
    let lines = src.lines().count();
    // `import std;` needs the module system at call sites only; this VCL
    // imports without calling, as many real ones do.
    let opts = Options::default();
    compile_str("big.vcl", &src, &opts).unwrap_or_else(|e| panic!("{e}"));
    let compile = median_per_call(11, 5, || {
        black_box(compile_str("big.vcl", black_box(&src), &opts).unwrap());
    });
    println!("compile {lines}-line VCL: {:.2} ms (target < 20 ms)", compile.as_secs_f64() * 1e3);

    let prog = compile_str("typical.vcl", TYPICAL_RECV, &opts).unwrap_or_else(|e| panic!("{e}"));
    let mut base = MemContext::new(Method::Recv);
    base.set_str(Var::ReqMethod, "GET")
        .set_str(Var::ReqUrl, "/static/app.js?utm_source=x")
        .set_str(Var::ReqProto, "HTTP/1.1")
        .set_ip(Var::ClientIp, "192.0.2.7:41234".parse().unwrap());
    for (k, v) in [
        ("Host", "www.example.com"),
        ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        ("Accept-Encoding", "gzip, deflate, br"),
        ("Cookie", "session=abc"),
        ("X-Debug", "1"),
        ("Accept", "*/*"),
    ] {
        base.add_header(Var::ReqHttp, k, v);
    }
    let h = run(&prog, Method::Recv, &mut base.clone_for_bench()).unwrap();
    assert_eq!(h.action, lacquer_defs::Action::Hash);
    // Every run starts from a fresh copy of the request (the program edits
    // it), made in the same reused context, as a server reuses its
    // per-request state. The copy is timed on its own and taken off.
    let mut c = base.clone_for_bench();
    const N: u32 = 200_000;
    let reset = median_per_call(9, N, || {
        c.reset_from(&base);
        black_box(&c);
    });
    let total = median_per_call(9, N, || {
        c.reset_from(&base);
        black_box(run(&prog, Method::Recv, &mut c).unwrap());
    });
    let recv = total.saturating_sub(reset);
    println!(
        "run typical vcl_recv: {:.0} ns (target < 1000 ns; {:.0} ns with the request copy)",
        recv.as_secs_f64() * 1e9,
        total.as_secs_f64() * 1e9
    );
}

/// Cloning for the benchmark's fresh requests.
trait CloneForBench {
    fn clone_for_bench(&self) -> MemContext;
    fn reset_from(&mut self, base: &MemContext);
}

impl CloneForBench for MemContext {
    fn clone_for_bench(&self) -> MemContext {
        let mut c = MemContext::new(Method::Recv);
        c.vars = self.vars.clone();
        c.headers = self.headers.clone();
        c
    }

    fn reset_from(&mut self, base: &MemContext) {
        self.vars.clone_from(&base.vars);
        self.headers.clone_from(&base.headers);
    }
}
