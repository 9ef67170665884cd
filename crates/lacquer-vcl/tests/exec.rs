//! Real VCL run against an in-memory context: variables set, return
//! actions taken, regsub results.

use lacquer_defs::{Action, Method, Var};
use lacquer_vcl::exec::run;
use lacquer_vcl::testctx::MemContext;
use lacquer_vcl::{compile_str, Options, Program};

fn compile(body: &str) -> Program {
    let src = format!("vcl 4.1;\nbackend default {{ .host = \"127.0.0.1\"; .port = \"8080\"; }}\n{body}\n");
    match compile_str("<test>", &src, &Options::default()) {
        Ok(p) => p,
        Err(e) => panic!("compile failed:\n{e}"),
    }
}

fn recv(p: &Program, url: &str, host: Option<&str>) -> (lacquer_vcl::Handling, MemContext) {
    let mut c = MemContext::new(Method::Recv);
    c.set_str(Var::ReqUrl, url).set_str(Var::ReqMethod, "GET").set_str(Var::ReqProto, "HTTP/1.1");
    if let Some(h) = host {
        c.add_header(Var::ReqHttp, "Host", h);
    }
    let h = run(p, Method::Recv, &mut c).expect("vcl_recv ran");
    (h, c)
}

#[test]
fn builtin_recv_hashes_a_plain_get() {
    let p = compile("");
    let (h, _) = recv(&p, "/", Some("example.com"));
    assert_eq!(h.action, Action::Hash);
}

#[test]
fn builtin_recv_lowercases_host_and_refuses_missing_host() {
    let p = compile("");
    let (h, c) = recv(&p, "/", Some("EXAMPLE.com"));
    assert_eq!(h.action, Action::Hash);
    assert_eq!(c.hdr(Var::ReqHttp, "host").as_deref(), Some("example.com"));
    let (h, _) = recv(&p, "/", None);
    assert_eq!((h.action, h.status), (Action::Synth, Some(400)));
}

#[test]
fn builtin_recv_passes_cookies_and_pipes_unknown_methods() {
    let p = compile("");
    let mut c = MemContext::new(Method::Recv);
    c.set_str(Var::ReqMethod, "GET").set_str(Var::ReqProto, "HTTP/1.1");
    c.add_header(Var::ReqHttp, "Host", "a").add_header(Var::ReqHttp, "Cookie", "x=1");
    assert_eq!(run(&p, Method::Recv, &mut c).unwrap().action, Action::Pass);
    let mut c = MemContext::new(Method::Recv);
    c.set_str(Var::ReqMethod, "CONNECT").add_header(Var::ReqHttp, "Host", "a");
    assert_eq!(run(&p, Method::Recv, &mut c).unwrap().action, Action::Pipe);
}

#[test]
fn user_code_runs_before_builtin_and_can_return_first() {
    let p = compile(
        r#"
sub vcl_recv {
    if (req.url ~ "^/admin") {
        return (synth(403, "Forbidden " + req.url));
    } elsif (req.url ~ "^/static/") {
        set req.http.X-Static = "yes";
        unset req.http.Cookie;
    } else if (req.http.X-Skip) {
        return (pass);
    }
    set req.http.X-Seen = "1";
}
"#,
    );
    let (h, _) = recv(&p, "/admin/x", Some("a"));
    assert_eq!(h.action, Action::Synth);
    assert_eq!(h.status, Some(403));
    assert_eq!(h.reason.as_deref(), Some(&b"Forbidden /admin/x"[..]));

    let mut c = MemContext::new(Method::Recv);
    c.set_str(Var::ReqUrl, "/static/a.css").set_str(Var::ReqMethod, "GET").set_str(Var::ReqProto, "HTTP/1.1");
    c.add_header(Var::ReqHttp, "Host", "a").add_header(Var::ReqHttp, "Cookie", "x=1");
    let h = run(&p, Method::Recv, &mut c).unwrap();
    assert_eq!(h.action, Action::Hash, "cookie removed, so the builtin no longer passes");
    assert_eq!(c.hdr(Var::ReqHttp, "x-static").as_deref(), Some("yes"));
    assert_eq!(c.hdr(Var::ReqHttp, "X-Seen").as_deref(), Some("1"));
}

#[test]
fn regsub_backreferences_and_escapes() {
    let p = compile(
        r#"
sub vcl_recv {
    set req.http.a = regsub(req.url, "^/(\w+)/(\w+)", "/\2/\1");
    set req.http.b = regsuball(req.url, "o", "0");
    set req.http.c = regsub(req.url, "^(/)", "\\x\0\9");
    set req.http.d = regsub(req.url, "nomatch", "y");
    set req.url = regsub(req.url, "\?.*$", "");
}
"#,
    );
    let (_, c) = recv(&p, "/foo/bar?q=1", Some("a"));
    assert_eq!(c.hdr(Var::ReqHttp, "a").as_deref(), Some("/bar/foo?q=1"));
    assert_eq!(c.hdr(Var::ReqHttp, "b").as_deref(), Some("/f00/bar?q=1"));
    assert_eq!(c.hdr(Var::ReqHttp, "c").as_deref(), Some("\\x/foo/bar?q=1"));
    assert_eq!(c.hdr(Var::ReqHttp, "d").as_deref(), Some("/foo/bar?q=1"));
    assert_eq!(c.str_var(Var::ReqUrl).as_deref(), Some("/foo/bar"));
}

#[test]
fn conversions_and_arithmetic() {
    let p = compile(
        r#"
sub vcl_recv {
    set req.http.i = 7 / 2 + 1;
    set req.http.r = 1.5 * 2;
    set req.http.d = 1m + 30s;
    set req.http.b = true;
    set req.http.n = "a" + 1 + 2;
    set req.http.neg = -req.restarts - 3;
    set req.http.be = req.backend_hint;
    return (synth(200));
}
"#,
    );
    let mut c = MemContext::new(Method::Recv);
    c.backend_names.push("default".into());
    c.set_var(Var::ReqBackendHint, lacquer_vcl::Value::Backend(Some(0)));
    run(&p, Method::Recv, &mut c).unwrap();
    assert_eq!(c.hdr(Var::ReqHttp, "i").as_deref(), Some("4"));
    assert_eq!(c.hdr(Var::ReqHttp, "r").as_deref(), Some("3.000"));
    assert_eq!(c.hdr(Var::ReqHttp, "d").as_deref(), Some("90.000"));
    assert_eq!(c.hdr(Var::ReqHttp, "b").as_deref(), Some("true"));
    assert_eq!(c.hdr(Var::ReqHttp, "n").as_deref(), Some("a12"));
    assert_eq!(c.hdr(Var::ReqHttp, "neg").as_deref(), Some("-3"));
    assert_eq!(c.hdr(Var::ReqHttp, "be").as_deref(), Some("default"));
}

#[test]
fn acl_matching_with_negation() {
    let p = compile(
        r#"
acl office { "10.0.0.0"/8; !"10.1.0.0"/16; "192.168.1.7"; }
sub vcl_recv {
    if (client.ip ~ office) { return (synth(200, "in")); }
    return (synth(403, "out"));
}
"#,
    );
    let go = |ip: &str| {
        let mut c = MemContext::new(Method::Recv);
        c.set_ip(Var::ClientIp, format!("{ip}:1234").parse().unwrap());
        run(&p, Method::Recv, &mut c).unwrap().status
    };
    assert_eq!(go("10.2.3.4"), Some(200));
    assert_eq!(go("10.1.3.4"), Some(403));
    assert_eq!(go("192.168.1.7"), Some(200));
    assert_eq!(go("192.168.1.8"), Some(403));
}

#[test]
fn compound_assignment_and_backend_side() {
    let p = compile(
        r#"
sub vcl_backend_response {
    set beresp.ttl = 10s;
    set beresp.ttl *= 3;
    set beresp.ttl += 5s;
    if (beresp.http.Cache-Control ~ "private") {
        return (pass(30s));
    }
}
"#,
    );
    let mut c = MemContext::new(Method::BackendResponse);
    c.add_header(Var::BerespHttp, "Cache-Control", "public");
    let h = run(&p, Method::BackendResponse, &mut c).unwrap();
    assert_eq!(h.action, Action::Deliver);
    assert_eq!(c.var(Var::BerespTtl), Some(&lacquer_vcl::Value::Duration(35.0)));
    let mut c = MemContext::new(Method::BackendResponse);
    c.add_header(Var::BerespHttp, "Cache-Control", "private");
    let h = run(&p, Method::BackendResponse, &mut c).unwrap();
    assert_eq!((h.action, h.pass_ttl), (Action::Pass, Some(30.0)));
}

#[test]
fn hash_and_synthetic_reach_the_context() {
    let p = compile(
        r#"
sub vcl_hash { hash_data(req.http.X-Variant); }
sub vcl_synth { synthetic("hello " + resp.status); return (deliver); }
"#,
    );
    let mut c = MemContext::new(Method::Hash);
    c.set_str(Var::ReqUrl, "/u");
    c.add_header(Var::ReqHttp, "X-Variant", "v1").add_header(Var::ReqHttp, "Host", "h");
    assert_eq!(run(&p, Method::Hash, &mut c).unwrap().action, Action::Lookup);
    assert_eq!(c.hashed, vec![b"v1".to_vec(), b"/u".to_vec(), b"h".to_vec()]);
    let mut c = MemContext::new(Method::Synth);
    c.set_var(Var::RespStatus, lacquer_vcl::Value::Int(404));
    run(&p, Method::Synth, &mut c).unwrap();
    assert_eq!(c.body, b"hello 404");
}

#[test]
fn runtime_failures_are_failures() {
    let p = compile("sub vcl_recv { set req.http.x = 1 / req.restarts; }");
    let mut c = MemContext::new(Method::Recv);
    assert!(run(&p, Method::Recv, &mut c).is_err());
}
