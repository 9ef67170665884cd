//! vmod_debug against varnishd 7.1: the interface (every function Lacquer
//! has, with varnishd's argument names, types and defaults, read off the
//! JSON spec in varnishd's libvmod_debug.so) and what the functions do.
//! The behaviour through a real server is tests/vtc/m00002.vtc, which
//! varnishd 7.1 passes too.

#[path = "../../../crates/lacquer-module/tests/fakehost.rs"]
mod fakehost;
#[path = "../../vtc/tests/specsig/mod.rs"]
mod specsig;

use std::net::SocketAddr;

use fakehost::FakeHost;
use lacquer_module::*;
use lacquer_vmod_debug::vmod;

/// varnishd 7.1's vmod_debug, one line per function, constructor and
/// method, for those Lacquer has (see the crate docs for the others).
const VARNISHD: &[&str] = &[
    "author(ENUM{phk,des,kristian,mithrandir} person=phk, ENUM{phk,slink,geoff} someone=phk) -> STRING",
    "test_priv_call() -> VOID",
    "test_priv_vcl() -> VOID",
    "test_priv_task_get() -> VOID",
    "test_priv_task(STRING s=\"\") -> STRING",
    "test_priv_top(STRING) -> STRING",
    "obj(STRING string=\"default\", ENUM{one,two,three} number=one) -> OBJECT",
    "obj.enum(ENUM{phk,des,kristian,mithrandir,martin}) -> VOID",
    "obj.obj() -> VOID",
    "obj.string() -> STRING",
    "obj.number() -> STRING",
    "obj.foo(STRING why) -> STRING",
    // `$ALIAS obj.bar obj.foo` in varnishd.
    "obj.bar(STRING why) -> STRING",
    "obj.date() -> TIME",
    "obj.test_priv_call() -> VOID",
    "obj.test_priv_vcl() -> VOID",
    "obj.test_priv_task(STRING s=\"\") -> STRING",
    "obj.test_priv_top(STRING s=\"\") -> STRING",
    "rot52(HTTP hdr) -> VOID",
    "argtest(STRING one, REAL two=2, STRING three=\"3\", STRING comma=\",\", INT four=4, STRING opt=?) -> STRING",
    "fail() -> VOID",
    "fail2() -> BOOL",
    "match_acl(ACL acl, IP ip) -> BOOL",
    "test_probe(PROBE probe, PROBE same=?) -> VOID",
    "concat(STRANDS) -> OBJECT",
    "concat.get() -> STRING",
    "dyn(STRING addr, STRING port, PROBE probe=?) -> OBJECT",
    "dyn.backend() -> BACKEND",
    "dyn.refresh(STRING addr, STRING port, PROBE probe=?) -> VOID",
    "dyn_uds(STRING path) -> OBJECT",
    "dyn_uds.backend() -> BACKEND",
    "dyn_uds.refresh(STRING path) -> VOID",
    "concatenate(STRANDS) -> STRING",
    "collect(STRANDS) -> STRING",
    "sethdr(HEADER, STRANDS) -> VOID",
    "obj_opt(STRING s=?, BOOL b=?) -> OBJECT",
    "obj_opt.meth_opt(STRING s=?, BOOL b=?) -> STRING",
    "store_ip(IP) -> VOID",
    "get_ip() -> IP",
    "client_ip() -> STRING",
    "client_port() -> STRING",
    "re_quote(STRING) -> STRING",
    "priv_task_with_option(STRING opt=?) -> STRING",
    "validhdr(STRANDS) -> BOOL",
    "vsc_new() -> VOID",
    "vsc_count(INT val=1) -> VOID",
    "vsc_destroy() -> VOID",
    "return_strands(STRANDS strand) -> STRANDS",
    "null_acl() -> ACL",
    "acl(ACL acl) -> ACL",
    "aclobj(ACL) -> OBJECT",
    "aclobj.get() -> ACL",
    "vcl_discard_delay(DURATION) -> VOID",
];

#[test]
fn the_interface_is_varnishds() {
    let spec = lacquer_vcl::ModuleSpec::from_json(vmod::SPEC).unwrap();
    assert_eq!(spec.name, "debug");
    let mut ours = specsig::lines(&spec);
    let mut theirs: Vec<String> = VARNISHD.iter().map(|s| s.to_string()).collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
}

fn call(h: &mut FakeHost, name: &str, args: &[Arg<'_>]) -> Result<Value, Failure> {
    let spec = lacquer_vcl::ModuleSpec::from_json(vmod::SPEC).unwrap();
    let (i, _) = spec.function(name).unwrap_or_else(|| panic!("no debug.{name}"));
    let mut reg = Registry::new();
    reg.link(&vmod::MODULE);
    reg.get("debug").unwrap().call(&mut Ctx::new(h), Target::Function(i as u32), args)
}

fn s(v: &str) -> Arg<'_> {
    Arg::Str(Some(v.as_bytes()))
}

fn vs(v: &str) -> Value {
    Value::str(v)
}

#[test]
fn author() {
    let mut h = FakeHost::new("vcl_deliver");
    let a = |h: &mut FakeHost, p: &'static str| call(h, "author", &[Arg::Enum(p), Arg::Enum("phk")]).unwrap();
    assert_eq!(a(&mut h, "phk"), vs("Poul-Henning"));
    assert_eq!(a(&mut h, "des"), vs("Dag-Erling"));
    assert_eq!(a(&mut h, "kristian"), vs("Kristian"));
    assert_eq!(a(&mut h, "mithrandir"), vs("Tollef"));
}

#[test]
fn priv_task_accumulates_and_is_shared_by_the_modules_functions() {
    let mut h = FakeHost::new("vcl_recv");
    assert_eq!(call(&mut h, "test_priv_task", &[Arg::Absent, s("")]).unwrap(), Value::Str(None));
    assert_eq!(call(&mut h, "test_priv_task", &[Arg::Absent, s("a")]).unwrap(), vs("a"));
    assert_eq!(call(&mut h, "test_priv_task", &[Arg::Absent, s("b")]).unwrap(), vs("a b"));
    assert_eq!(call(&mut h, "test_priv_task", &[Arg::Absent, Arg::Str(None)]).unwrap(), vs("a b"));
    // One PRIV_TASK for the module, as in varnishd.
    assert_eq!(call(&mut h, "priv_task_with_option", &[Arg::Absent, s("x")]).unwrap(), vs("a b"));
    let ip: SocketAddr = "192.0.2.1:80".parse().unwrap();
    call(&mut h, "store_ip", &[Arg::Absent, Arg::Ip(Some(ip))]).unwrap();
    assert_eq!(call(&mut h, "get_ip", &[Arg::Absent]).unwrap(), Value::Ip(Some(ip)));
    assert_eq!(call(&mut h, "test_priv_task", &[Arg::Absent, s("")]).unwrap(), vs("a b"));
    h.end_task();
    assert_eq!(call(&mut h, "get_ip", &[Arg::Absent]).unwrap(), Value::Ip(None));
    assert_eq!(call(&mut h, "priv_task_with_option", &[Arg::Absent, Arg::Absent]).unwrap(), Value::Str(None));
    assert_eq!(call(&mut h, "priv_task_with_option", &[Arg::Absent, s("one")]).unwrap(), vs("one"));
    assert_eq!(call(&mut h, "priv_task_with_option", &[Arg::Absent, s("two")]).unwrap(), vs("one"));
}

#[test]
fn priv_top_keeps_the_first() {
    let mut h = FakeHost::new("vcl_recv");
    assert_eq!(call(&mut h, "test_priv_top", &[Arg::Absent, s("t1")]).unwrap(), vs("t1"));
    assert_eq!(call(&mut h, "test_priv_top", &[Arg::Absent, s("t2")]).unwrap(), vs("t1"));
}

#[test]
fn priv_call_and_vcl_hold() {
    let mut h = FakeHost::new("vcl_recv");
    h.shared.insert(PrivScope::Call, Default::default());
    h.shared.insert(PrivScope::Vcl, Default::default());
    for _ in 0..2 {
        call(&mut h, "test_priv_call", &[Arg::Absent]).unwrap();
        call(&mut h, "test_priv_vcl", &[Arg::Absent]).unwrap();
    }
    // Without the scope (a host that has none), the call fails.
    let mut bare = FakeHost::new("vcl_recv");
    assert!(call(&mut bare, "test_priv_call", &[Arg::Absent]).is_err());
}

#[test]
fn argtest_prints_as_varnishd() {
    let mut h = FakeHost::new("vcl_deliver");
    let r = call(&mut h, "argtest", &[s("1"), Arg::Real(2.1), s("3a"), s(","), Arg::Int(4), Arg::Absent]).unwrap();
    assert_eq!(r, vs("1 2.1 3a , 4 0 <undef>"));
    let r = call(&mut h, "argtest", &[s("1"), Arg::Real(-2.2), s("3"), s(","), Arg::Int(-1), s("7")]).unwrap();
    assert_eq!(r, vs("1 -2.2 3 , -1 1 7"));
    let r = call(&mut h, "argtest", &[s("1"), Arg::Real(1e7), s("3"), s(","), Arg::Int(4), Arg::Absent]).unwrap();
    assert_eq!(r, vs("1 1e+07 3 , 4 0 <undef>"));
}

#[test]
fn failures() {
    let mut h = FakeHost::new("vcl_recv");
    assert_eq!(call(&mut h, "fail", &[]).unwrap_err().0, "Forced failure");
    assert_eq!(call(&mut h, "fail2", &[]).unwrap_err().0, "Forced failure");
}

#[test]
fn strands_and_headers() {
    let mut h = FakeHost::new("vcl_deliver");
    let parts: [Option<&[u8]>; 3] = [Some(b"a"), None, Some(b"c")];
    assert_eq!(call(&mut h, "concatenate", &[Arg::Strands(Strands(&parts))]).unwrap(), vs("ac"));
    assert_eq!(call(&mut h, "collect", &[Arg::Strands(Strands(&parts))]).unwrap(), vs("ac"));
    let hdr = Arg::Header(Header { which: Http::Resp, name: b"x" });
    call(&mut h, "sethdr", &[hdr, Arg::Strands(Strands(&parts))]).unwrap();
    assert_eq!(h.header(Http::Resp, b"X", 0), Some(&b"ac"[..]));
    call(&mut h, "sethdr", &[hdr, Arg::Strands(Strands(&[]))]).unwrap();
    assert_eq!(h.header(Http::Resp, b"x", 0), None);
    call(&mut h, "rot52", &[Arg::Http(Http::Req)]).unwrap();
    assert_eq!(h.header(Http::Req, b"encrypted", 0), Some(&b"ROT52"[..]));
}

#[test]
fn validhdr() {
    let mut h = FakeHost::new("vcl_deliver");
    let v = |h: &mut FakeHost, p: &[u8]| {
        let parts = [Some(p)];
        call(h, "validhdr", &[Arg::Strands(Strands(&parts))]).unwrap()
    };
    assert_eq!(v(&mut h, b"a b\tc\x80"), Value::Bool(true));
    assert_eq!(v(&mut h, b""), Value::Bool(true));
    assert_eq!(v(&mut h, b"\n"), Value::Bool(false));
    assert_eq!(v(&mut h, b"a\x7f"), Value::Bool(false));
}

#[test]
fn client_address_as_strings() {
    let mut h = FakeHost::new("vcl_recv");
    h.client = Some("[2001:db8::1]:4711".parse().unwrap());
    assert_eq!(call(&mut h, "client_ip", &[]).unwrap(), vs("2001:db8::1"));
    assert_eq!(call(&mut h, "client_port", &[]).unwrap(), vs("4711"));
}

#[test]
fn probes() {
    let mut h = FakeHost::new("vcl_recv");
    let p = Arg::Probe(Probe(Some(1)));
    call(&mut h, "test_probe", &[p, Arg::Absent]).unwrap();
    call(&mut h, "test_probe", &[p, p]).unwrap();
    assert!(call(&mut h, "test_probe", &[p, Arg::Probe(Probe(Some(2)))]).is_err());
}
