//! vmod_vtc against varnishd 7.1: the interface (every function Lacquer
//! has, with varnishd's argument names, types and defaults, read off the
//! JSON spec in varnishd's libvmod_vtc.so) and what the functions do.

#[path = "../../../crates/lacquer-module/tests/fakehost.rs"]
mod fakehost;
mod specsig;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration as StdDuration, Instant};

use fakehost::{FakeHost, FakeWs};
use lacquer_module::*;
use lacquer_vmod_vtc::vmod;

/// varnishd 7.1's vmod_vtc, one line per function, for the functions
/// Lacquer has (see the crate docs for the ones it leaves out and why).
const VARNISHD: &[&str] = &[
    "barrier_sync(STRING addr, DURATION timeout=0) -> VOID",
    "no_backend() -> BACKEND",
    "no_stevedore() -> STEVEDORE",
    "no_ip() -> IP",
    "panic(STRANDS) -> VOID",
    "sleep(DURATION) -> VOID",
    "workspace_alloc(ENUM{client,backend,session,thread}, INT size) -> VOID",
    "workspace_reserve(ENUM{client,backend,session,thread}, INT size) -> BYTES",
    "workspace_free(ENUM{client,backend,session,thread}) -> INT",
    "workspace_snapshot(ENUM{client,backend,session,thread}) -> VOID",
    "workspace_reset(ENUM{client,backend,session,thread}) -> VOID",
    "workspace_overflowed(ENUM{client,backend,session,thread}) -> BOOL",
    "workspace_overflow(ENUM{client,backend,session,thread}) -> VOID",
    "typesize(STRING) -> INT",
    "proxy_header(ENUM{v1,v2} version, IP client, IP server, STRING authority=?) -> BLOB",
    "vsl(INT vxid, STRING tag, ENUM{c,b} side, STRANDS s) -> VOID",
    "vsl_replay(STRANDS s) -> VOID",
];

#[test]
fn the_interface_is_varnishds() {
    let spec = lacquer_vcl::ModuleSpec::from_json(vmod::SPEC).unwrap();
    assert_eq!(spec.name, "vtc");
    assert_eq!(specsig::lines(&spec), VARNISHD);
}

fn call(h: &mut FakeHost, name: &str, args: &[Arg<'_>]) -> Result<Value, Failure> {
    let spec = lacquer_vcl::ModuleSpec::from_json(vmod::SPEC).unwrap();
    let (i, _) = spec.function(name).unwrap_or_else(|| panic!("no vtc.{name}"));
    let mut reg = Registry::new();
    reg.link(&vmod::MODULE);
    reg.get("vtc").unwrap().call(&mut Ctx::new(h), Target::Function(i as u32), args)
}

fn s(v: &str) -> Arg<'_> {
    Arg::Str(Some(v.as_bytes()))
}

#[test]
fn typesize_is_the_size_of_a_c_struct() {
    let mut h = FakeHost::new("vcl_recv");
    // What varnishd 7.1 answers on x86_64 (and m00000.vtc checks against
    // sizeof of the same structs).
    for (t, n) in [
        ("dfijlopsz", 64),
        ("zc", 16),
        ("ic", 8),
        ("sc", 4),
        ("cc", 2),
        ("czc", 24),
        ("cic", 12),
        ("csc", 6),
        ("uzp", 24),
        ("*", -1),
        ("dx", -1),
    ] {
        assert_eq!(call(&mut h, "typesize", &[s(t)]).unwrap(), Value::Int(n), "{t}");
    }
    assert!(call(&mut h, "typesize", &[s("")]).is_err());
}

#[test]
fn nulls() {
    let mut h = FakeHost::new("vcl_recv");
    assert_eq!(call(&mut h, "no_backend", &[]).unwrap(), Value::Backend(Backend(None)));
    assert_eq!(call(&mut h, "no_ip", &[]).unwrap(), Value::Ip(None));
}

#[test]
fn sleep_sleeps() {
    let mut h = FakeHost::new("vcl_recv");
    let t = Instant::now();
    call(&mut h, "sleep", &[Arg::Duration(0.2)]).unwrap();
    assert!(t.elapsed() >= StdDuration::from_millis(200));
    // A negative duration does not sleep (nor fail).
    call(&mut h, "sleep", &[Arg::Duration(-1.0)]).unwrap();
}

#[test]
fn barrier_sync_waits_for_the_barrier_to_close() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let t = std::thread::spawn(move || {
        let (c, _) = l.accept().unwrap();
        std::thread::sleep(StdDuration::from_millis(200));
        drop(c);
        // The second time, the barrier says something: a failure.
        let (mut c, _) = l.accept().unwrap();
        c.write_all(b"xyz").unwrap();
        std::thread::sleep(StdDuration::from_millis(200));
    });
    let mut h = FakeHost::new("vcl_recv");
    let start = Instant::now();
    call(&mut h, "barrier_sync", &[s(&addr), Arg::Duration(0.0)]).unwrap();
    assert!(start.elapsed() >= StdDuration::from_millis(200));
    let e = call(&mut h, "barrier_sync", &[s(&addr), Arg::Duration(0.0)]).unwrap_err();
    assert_eq!(e.0, "Barrier unexpected data (3B)");
    t.join().unwrap();
}

#[test]
fn barrier_sync_fails_on_timeout_and_refusal() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let mut h = FakeHost::new("vcl_recv");
    // Accepted by the kernel, never closed: the timeout ends the wait.
    let start = Instant::now();
    let e = call(&mut h, "barrier_sync", &[s(&addr), Arg::Duration(0.2)]).unwrap_err();
    assert!(e.0.starts_with("Barrier read failed: "), "{e}");
    assert!(start.elapsed() >= StdDuration::from_millis(200));
    drop(l);
    let e = call(&mut h, "barrier_sync", &[s(&addr), Arg::Duration(0.0)]).unwrap_err();
    assert_eq!(e.0, "Barrier connection failed: Connection refused");
}

#[test]
fn proxy_header_is_a_blob() {
    let mut h = FakeHost::new("vcl_backend_fetch");
    let c: SocketAddr = "1.2.3.4:1111".parse().unwrap();
    let sv: SocketAddr = "5.6.7.8:5678".parse().unwrap();
    let v = call(&mut h, "proxy_header", &[Arg::Enum("v1"), Arg::Ip(Some(c)), Arg::Ip(Some(sv)), Arg::Absent]).unwrap();
    assert_eq!(v, Value::Blob(Some(b"PROXY TCP4 1.2.3.4 5.6.7.8 1111 5678\r\n".to_vec())));
    let v = call(&mut h, "proxy_header", &[Arg::Enum("v2"), Arg::Ip(Some(c)), Arg::Ip(Some(sv)), s("a")]).unwrap();
    let Value::Blob(Some(b)) = v else { panic!() };
    assert_eq!(&b[12..], &[0x21, 0x11, 0, 16, 1, 2, 3, 4, 5, 6, 7, 8, 0x04, 0x57, 0x16, 0x2e, 2, 0, 1, b'a']);
}

fn ws_host(size: usize) -> FakeHost {
    FakeHost { ws: Some(FakeWs { size, ..FakeWs::default() }), ..FakeHost::new("vcl_deliver") }
}

fn free(h: &mut FakeHost, which: &str) -> i64 {
    match call(h, "workspace_free", &[Arg::Enum(which)]) {
        Ok(Value::Int(n)) => n,
        other => panic!("{other:?}"),
    }
}

fn overflowed(h: &mut FakeHost) -> bool {
    match call(h, "workspace_overflowed", &[Arg::Enum("client")]) {
        Ok(Value::Bool(b)) => b,
        other => panic!("{other:?}"),
    }
}

#[test]
fn workspace_alloc_charges_and_leaves_what_a_negative_size_says() {
    let mut h = ws_host(1000);
    assert_eq!(free(&mut h, "client"), 1000);
    call(&mut h, "workspace_alloc", &[Arg::Enum("client"), Arg::Int(100)]).unwrap();
    assert_eq!(free(&mut h, "client"), 900);
    call(&mut h, "workspace_alloc", &[Arg::Enum("client"), Arg::Int(-10)]).unwrap();
    assert_eq!(free(&mut h, "client"), 10);
    assert!(!overflowed(&mut h));
    let e = call(&mut h, "workspace_alloc", &[Arg::Enum("client"), Arg::Int(-20)]).unwrap_err();
    assert_eq!(e.0, "Attempted negative WS allocation");
    let e = call(&mut h, "workspace_alloc", &[Arg::Enum("client"), Arg::Int(11)]).unwrap_err();
    assert_eq!(e.0, "vtc.workspace_alloc");
    assert!(overflowed(&mut h));
    // A workspace the task does not have: nothing to measure.
    assert_eq!(free(&mut h, "backend"), -1);
    call(&mut h, "workspace_alloc", &[Arg::Enum("backend"), Arg::Int(1 << 40)]).unwrap();
}

#[test]
fn workspace_snapshot_reset_overflow_and_reserve() {
    let mut h = ws_host(1000);
    call(&mut h, "workspace_snapshot", &[Arg::Enum("client")]).unwrap();
    call(&mut h, "workspace_alloc", &[Arg::Enum("client"), Arg::Int(600)]).unwrap();
    assert_eq!(call(&mut h, "workspace_reserve", &[Arg::Enum("client"), Arg::Int(500)]), Ok(Value::Bytes(0.0)));
    assert_eq!(call(&mut h, "workspace_reserve", &[Arg::Enum("client"), Arg::Int(300)]), Ok(Value::Bytes(300.0)));
    // A reservation is released at once: nothing stays reserved.
    assert_eq!(free(&mut h, "client"), 400);
    call(&mut h, "workspace_reset", &[Arg::Enum("client")]).unwrap();
    assert_eq!(free(&mut h, "client"), 1000);
    call(&mut h, "workspace_overflow", &[Arg::Enum("client")]).unwrap();
    assert!(overflowed(&mut h));
}

#[test]
fn vsl_and_vsl_replay_write_records() {
    let mut h = FakeHost::new("vcl_init");
    let parts = [Some(&b"sess 0 "[..]), Some(&b"HTTP/1"[..])];
    call(&mut h, "vsl", &[Arg::Int(9000), s("Begin"), Arg::Enum("c"), Arg::Strands(Strands(&parts))]).unwrap();
    let script = [Some(
        &b"**** v1    vsl|       1001 ReqURL          c /\nnoise\n**** v1    vsl|       1002 Filters         b \n"[..],
    )];
    call(&mut h, "vsl_replay", &[Arg::Strands(Strands(&script))]).unwrap();
    assert_eq!(
        h.records,
        [
            (9000, "Begin".to_string(), true, "sess 0 HTTP/1".to_string()),
            (1001, "ReqURL".to_string(), true, "/".to_string()),
            (1002, "Filters".to_string(), false, String::new()),
        ]
    );
    let e =
        call(&mut h, "vsl", &[Arg::Int(-1), s("Begin"), Arg::Enum("c"), Arg::Strands(Strands(&parts))]).unwrap_err();
    assert!(e.0.contains("out of bounds"), "{}", e.0);
    let bad = [Some(&b"vsl| 12 Begin x text"[..])];
    assert!(call(&mut h, "vsl_replay", &[Arg::Strands(Strands(&bad))]).is_err());
}
