//! The `#[module]` macro on a test module: its spec (golden, and read by
//! the VCL compiler's parser) and calls through the registry.

mod fakehost;

use std::sync::{Arc, Mutex};

use fakehost::FakeHost;
use lacquer_module::*;

#[lacquer_module::module]
pub mod kv {
    //! A key-value test module.
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};

    use lacquer_module::{Bytes, Ctx, Header, PrivCall, PrivTask, Strands};

    /// Returns `key` upper-cased,
    /// or `fallback` when it is empty.
    pub fn get(ctx: &mut Ctx, key: &str, #[default("x")] fallback: &str) -> String {
        ctx.log(format!("get {key}").as_bytes());
        if key.is_empty() {
            fallback.into()
        } else {
            key.to_uppercase()
        }
    }

    /// Counts the calls in this task.
    #[restrict(client, backend)]
    pub fn count(n: PrivTask<i64>) -> i64 {
        let mut n = n;
        let c = n.get_or_insert_with(|| 0);
        *c += 1;
        *c
    }

    /// The same value at every call from one call site.
    pub fn once(p: PrivCall<String>, v: &str) -> Result<String, lacquer_module::Failure> {
        p.get_or_init(|| v.to_string()).cloned()
    }

    /// An enum and an optional argument.
    pub fn pick(
        #[enum_values("first", "second")]
        #[default("first")]
        which: &str,
        n: Option<i64>,
    ) -> i64 {
        let base = if which == "first" { 1 } else { 2 };
        base * n.unwrap_or(10)
    }

    /// Fails when told to.
    pub fn check(#[positional] ok: bool) -> Result<(), String> {
        if ok {
            Ok(())
        } else {
            Err("check failed".into())
        }
    }

    /// Joins strands and reads a header.
    pub fn join(ctx: &mut Ctx, s: Strands, h: Header, size: Option<Bytes>) -> Option<Vec<u8>> {
        let mut v = s.to_vec();
        v.extend_from_slice(ctx.header(h.which, h.name, 0)?);
        v.truncate(size.map_or(usize::MAX, |b| b.0 as usize));
        Some(v)
    }

    /// Told the VCL's events; refuses to be loaded into a VCL whose
    /// PRIV_VCL says "refuse".
    #[event]
    pub fn on_event(
        ctx: &mut Ctx,
        vcl: lacquer_module::PrivVcl<String>,
        e: lacquer_module::Event,
    ) -> Result<(), String> {
        ctx.log(format!("event {}", e.as_str()).as_bytes());
        match vcl.get() {
            Some(s) if s == "refuse" && e == lacquer_module::Event::Load => Err("refused".into()),
            _ => Ok(()),
        }
    }

    /// A map shared by every task.
    pub struct Map {
        m: Mutex<HashMap<String, String>>,
        released: Arc<Mutex<Vec<String>>>,
    }

    impl Map {
        /// Makes a map.
        pub fn new(
            #[enum_values("shared", "task")]
            #[default("shared")]
            mode: &str,
        ) -> Result<Map, String> {
            if mode == "task" {
                return Err("task maps are not made here".into());
            }
            Ok(Map { m: Mutex::default(), released: super::RELEASED.with(|r| r.clone()) })
        }

        /// Stores a value.
        pub fn set(&self, key: &str, value: &str) {
            self.m.lock().unwrap().insert(key.into(), value.into());
        }

        /// A stored value, or NULL.
        pub fn lookup(&self, key: &str) -> Option<String> {
            self.m.lock().unwrap().get(key).cloned()
        }
    }

    impl Drop for Map {
        fn drop(&mut self) {
            self.released.lock().unwrap().push("map".into());
        }
    }
}

thread_local! {
    static RELEASED: Arc<Mutex<Vec<String>>> = Arc::default();
}

const GOLDEN: &str = r#"{"name": "kv", "abi": [1, 4], "level": "stable", "doc": "A key-value test module.",
"functions": [
  {"name": "get", "ret": "STRING", "args": [{"name": "key", "type": "STRING"}, {"name": "fallback", "type": "STRING", "default": "x"}], "doc": "Returns `key` upper-cased,\nor `fallback` when it is empty."},
  {"name": "count", "ret": "INT", "args": [{"type": "PRIV_TASK"}], "restrict": ["client", "backend"], "doc": "Counts the calls in this task."},
  {"name": "once", "ret": "STRING", "args": [{"type": "PRIV_CALL"}, {"name": "v", "type": "STRING"}], "doc": "The same value at every call from one call site."},
  {"name": "pick", "ret": "INT", "args": [{"name": "which", "type": "ENUM", "values": ["first", "second"], "default": "first"}, {"name": "n", "type": "INT", "optional": true}], "doc": "An enum and an optional argument."},
  {"name": "check", "args": [{"type": "BOOL"}], "doc": "Fails when told to."},
  {"name": "join", "ret": "STRING", "args": [{"name": "s", "type": "STRANDS"}, {"name": "h", "type": "HEADER"}, {"name": "size", "type": "BYTES", "optional": true}], "doc": "Joins strands and reads a header."},
  {"name": "on_event", "args": [{"type": "PRIV_VCL"}, {"name": "e", "type": "ENUM", "values": ["load", "warm", "cold", "discard"]}], "event": true, "doc": "Told the VCL's events; refuses to be loaded into a VCL whose\nPRIV_VCL says \"refuse\"."}],
"objects": [
  {"name": "map", "args": [{"name": "mode", "type": "ENUM", "values": ["shared", "task"], "default": "shared"}], "doc": "A map shared by every task.", "methods": [
    {"name": "set", "args": [{"name": "key", "type": "STRING"}, {"name": "value", "type": "STRING"}], "doc": "Stores a value."},
    {"name": "lookup", "ret": "STRING", "args": [{"name": "key", "type": "STRING"}], "doc": "A stored value, or NULL."}]}]}
"#;

#[test]
fn spec_is_the_golden_one_and_the_compiler_reads_it() {
    assert_eq!(kv::SPEC, GOLDEN);
    let s = lacquer_vcl::ModuleSpec::from_json(kv::SPEC).unwrap();
    assert_eq!(s.functions.len(), 7);
    // The event function is the server's to call, not VCL's.
    assert_eq!(s.event, Some(6));
    assert!(s.function("on_event").is_none() && s.function("join").is_some());
    assert_eq!(s.objects[0].methods.len(), 2);
    assert_eq!(s.abi, (lacquer_abi_version().0, lacquer_abi_version().1));
}

fn lacquer_abi_version() -> (u32, u32) {
    (lacquer_module::__private::lacquer_abi::ABI_MAJOR, lacquer_module::__private::lacquer_abi::ABI_MINOR)
}

fn call(h: &mut FakeHost, t: Target<'_>, args: &[Arg<'_>]) -> Result<Value, Failure> {
    let mut reg = Registry::new();
    reg.link(&kv::MODULE);
    reg.get("kv").unwrap().call(&mut Ctx::new(h), t, args)
}

#[test]
fn functions_are_called_with_defaults_privs_and_failures() {
    let mut h = FakeHost::new("vcl_recv");
    let f = Target::Function;
    assert_eq!(call(&mut h, f(0), &[Arg::Str(Some(b"abc")), Arg::Absent]), Ok(Value::str("ABC")));
    assert_eq!(call(&mut h, f(0), &[Arg::Str(None), Arg::Absent]), Ok(Value::str("x")));
    assert_eq!(h.log, ["get abc", "get "]);
    for n in 1..=3 {
        assert_eq!(call(&mut h, f(1), &[Arg::Absent]), Ok(Value::Int(n)));
    }
    h.end_task();
    assert_eq!(call(&mut h, f(1), &[Arg::Absent]), Ok(Value::Int(1)));
    h.shared.insert(PrivScope::Call, Arc::default());
    assert_eq!(call(&mut h, f(2), &[Arg::Absent, Arg::Str(Some(b"one"))]), Ok(Value::str("one")));
    assert_eq!(call(&mut h, f(2), &[Arg::Absent, Arg::Str(Some(b"two"))]), Ok(Value::str("one")));
    assert_eq!(call(&mut h, f(3), &[Arg::Absent, Arg::Absent]), Ok(Value::Int(10)));
    assert_eq!(call(&mut h, f(3), &[Arg::Enum("second"), Arg::Int(4)]), Ok(Value::Int(8)));
    assert_eq!(call(&mut h, f(4), &[Arg::Bool(true)]), Ok(Value::Void));
    assert_eq!(call(&mut h, f(4), &[Arg::Bool(false)]), Err(Failure("check failed".into())));
    assert_eq!(
        call(&mut h, f(4), &[Arg::Int(1)]),
        Err(Failure("kv.check: argument 'ok': expected BOOL, got Int(1)".into()))
    );
    assert_eq!(call(&mut h, f(4), &[]), Err(Failure("kv.check: called with 0 arguments, takes 1".into())));
    h.set_header(Http::Req, b"Host", b"example.com").unwrap();
    let parts = [Some(&b"a"[..]), None, Some(&b"b"[..])];
    let hdr = Arg::Header(Header { which: Http::Req, name: b"host" });
    assert_eq!(call(&mut h, f(5), &[Arg::Strands(Strands(&parts)), hdr, Arg::Absent]), Ok(Value::str("abexample.com")));
    assert_eq!(call(&mut h, f(5), &[Arg::Strands(Strands(&parts)), hdr, Arg::Bytes(3.0)]), Ok(Value::str("abe")));
    let nohdr = Arg::Header(Header { which: Http::Resp, name: b"host" });
    assert_eq!(call(&mut h, f(5), &[Arg::Strands(Strands(&parts)), nohdr, Arg::Absent]), Ok(Value::Str(None)));
}

#[test]
fn the_event_function_is_called_with_each_event() {
    let mut h = FakeHost::new("vcl_init");
    let vcl: Arc<SharedSlot> = Arc::default();
    h.shared.insert(PrivScope::Vcl, vcl.clone());
    let ev = |h: &mut FakeHost, e: &str| call(h, Target::Function(6), &[Arg::Absent, Arg::Enum(e)]);
    for e in ["load", "warm", "cold", "discard"] {
        assert_eq!(ev(&mut h, e), Ok(Value::Void));
    }
    assert_eq!(h.log, ["event load", "event warm", "event cold", "event discard"]);
    assert!(ev(&mut h, "hot").unwrap_err().0.contains("no VCL event is called 'hot'"));
    let _ = vcl.set(Box::new("refuse".to_string()));
    assert_eq!(ev(&mut h, "load"), Err(Failure("refused".into())));
}

#[test]
fn objects_are_made_called_and_dropped() {
    let mut h = FakeHost::new("vcl_init");
    let Ok(Value::Object(map)) = call(&mut h, Target::Constructor(0), &[Arg::Absent]) else { panic!("no object") };
    assert_eq!(
        call(&mut h, Target::Constructor(0), &[Arg::Enum("task")]).unwrap_err(),
        Failure("task maps are not made here".into())
    );
    let m = |method, this| Target::Method { object: 0, method, this };
    assert_eq!(call(&mut h, m(1, &map), &[Arg::Str(Some(b"k"))]), Ok(Value::Str(None)));
    assert_eq!(call(&mut h, m(0, &map), &[Arg::Str(Some(b"k")), Arg::Str(Some(b"v"))]), Ok(Value::Void));
    assert_eq!(call(&mut h, m(1, &map), &[Arg::Str(Some(b"k"))]), Ok(Value::str("v")));
    let other = Instance::new(5u8);
    assert!(call(&mut h, m(1, &other), &[Arg::Str(Some(b"k"))]).unwrap_err().0.contains("another object"));
    assert!(RELEASED.with(|r| r.lock().unwrap().is_empty()));
    drop(map);
    assert_eq!(RELEASED.with(|r| r.lock().unwrap().clone()), ["map"]);
}
