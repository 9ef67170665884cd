//! The C ABI end to end: test modules under `tests/cdylib/` are built as
//! shared libraries, loaded with the loader, checked, and called through
//! the same interface as linked-in modules.

mod fakehost;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use fakehost::FakeHost;
use lacquer_module::loader::{LoadError, LoadedModule};
use lacquer_module::*;

/// Builds the test modules once; the directory holding the libraries.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| here.join("../../target"))
            .join("cdylib-tests");
        let st = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(here.join("tests/cdylib/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target)
            .env_remove("RUSTFLAGS")
            .status()
            .expect("cargo runs");
        assert!(st.success(), "building the test modules failed");
        target.join("debug")
    })
}

fn lib(name: &str) -> PathBuf {
    built().join(format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX))
}

fn kv() -> &'static Module {
    static KV: OnceLock<Module> = OnceLock::new();
    KV.get_or_init(|| Module::Loaded(LoadedModule::open(&lib("kv"), "").unwrap_or_else(|e| panic!("{e}"))))
}

fn func(m: &Module, name: &str) -> u32 {
    let spec = lacquer_vcl::ModuleSpec::from_json(m.spec()).unwrap();
    spec.function(name).unwrap().0 as u32
}

#[test]
fn descriptor_and_spec_are_read() {
    let Module::Loaded(m) = kv() else { unreachable!() };
    assert_eq!(m.name(), "kv");
    let abi = lacquer_module::__private::lacquer_abi::ABI_MAJOR;
    assert_eq!(m.abi().0, abi);
    let spec = lacquer_vcl::ModuleSpec::from_json(m.spec()).unwrap();
    assert_eq!(spec.name, "kv");
    assert_eq!(spec.objects[0].name, "map");
    assert_eq!(spec.function("hello").unwrap().1.doc, "Greets, and logs it.");
}

#[test]
fn functions_are_called_across_the_abi() {
    let m = kv();
    let mut h = FakeHost::new("vcl_deliver");
    let call = |h: &mut FakeHost, name: &str, args: &[Arg<'_>]| {
        m.call(&mut Ctx::new(h), Target::Function(func(m, name)), args)
    };
    assert_eq!(call(&mut h, "hello", &[Arg::Str(Some(b"you"))]), Ok(Value::str("hello, you")));
    assert_eq!(call(&mut h, "hello", &[Arg::Absent]), Ok(Value::str("hello, world")));
    assert_eq!(h.log, ["hello from vcl_deliver", "hello from vcl_deliver"]);
    for n in 1..=3 {
        assert_eq!(call(&mut h, "count", &[Arg::Absent]), Ok(Value::Int(n)));
    }
    h.end_task();
    assert_eq!(call(&mut h, "count", &[Arg::Absent]), Ok(Value::Int(1)));
    h.shared.insert(PrivScope::Call, Arc::default());
    assert_eq!(call(&mut h, "first", &[Arg::Absent, Arg::Str(Some(b"a"))]), Ok(Value::str("a")));
    assert_eq!(call(&mut h, "first", &[Arg::Absent, Arg::Str(Some(b"b"))]), Ok(Value::str("a")));
    h.set_header(Http::Req, b"Host", b"example.com").unwrap();
    let parts = [Some(&b"!"[..]), None, Some(&b"?"[..])];
    let args = [
        Arg::Header(Header { which: Http::Req, name: b"host" }),
        Arg::Header(Header { which: Http::Resp, name: b"x-host" }),
        Arg::Strands(Strands(&parts)),
    ];
    assert_eq!(call(&mut h, "shout", &args), Ok(Value::Void));
    assert_eq!(h.header(Http::Resp, b"X-Host", 0), Some(&b"EXAMPLE.COM!?"[..]));
    assert_eq!(call(&mut h, "fail", &[Arg::Str(Some(b"no way"))]), Err(Failure("no way".into())));
    let boom = call(&mut h, "boom", &[]).unwrap_err();
    assert!(boom.0.contains("panicked: boom"), "{boom:?}");
    assert_eq!(
        call(&mut h, "hello", &[Arg::Int(1)]).unwrap_err().0,
        "kv.hello: argument 'who': expected STRING, got Int(1)"
    );
}

#[test]
fn objects_live_and_die_across_the_abi() {
    let m = kv();
    let mut h = FakeHost::new("vcl_init");
    let drops = |h: &mut FakeHost| m.call(&mut Ctx::new(h), Target::Function(func(m, "drops")), &[]);
    let before = match drops(&mut h) {
        Ok(Value::Int(n)) => n,
        other => panic!("{other:?}"),
    };
    let Ok(Value::Object(map)) = m.call(&mut Ctx::new(&mut h), Target::Constructor(0), &[]) else { panic!() };
    let meth = |method| Target::Method { object: 0, method, this: &map };
    let set = [Arg::Str(Some(b"k")), Arg::Str(Some(b"v"))];
    assert_eq!(m.call(&mut Ctx::new(&mut h), meth(0), &set), Ok(Value::Void));
    assert_eq!(m.call(&mut Ctx::new(&mut h), meth(1), &[Arg::Str(Some(b"k"))]), Ok(Value::str("v")));
    assert_eq!(m.call(&mut Ctx::new(&mut h), meth(1), &[Arg::Str(Some(b"x"))]), Ok(Value::str("")));
    drop(map);
    assert_eq!(drops(&mut h), Ok(Value::Int(before + 1)));
}

#[test]
fn private_state_is_released_once_by_the_host() {
    let m = kv();
    let mut h = FakeHost::new("vcl_recv");
    let count = func(m, "count");
    assert_eq!(m.call(&mut Ctx::new(&mut h), Target::Function(count), &[Arg::Absent]), Ok(Value::Int(1)));
    // The host holds the module's state in its slot; ending the task
    // drops the slot, which runs the module's release.
    assert_eq!(h.task.len(), 1);
    h.end_task();
    assert!(h.task.is_empty());
}

#[test]
fn another_abi_major_is_refused_naming_both_versions() {
    let e = LoadedModule::open(&lib("future"), "").unwrap_err();
    let major = lacquer_module::__private::lacquer_abi::ABI_MAJOR;
    let minor = lacquer_module::__private::lacquer_abi::ABI_MINOR;
    assert!(matches!(e, LoadError::Version(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!(
            "module built for ABI {}.x, this Lacquer has ABI {major}.{minor}: rebuild the module against this Lacquer",
            major + 1
        )
    );
}

#[test]
fn a_library_that_is_not_a_module_is_refused() {
    let e = LoadedModule::open(Path::new("libm.so.6"), "").unwrap_err();
    assert_eq!(e, LoadError::NotAModule);
    assert_eq!(e.to_string(), "not a Lacquer module (no LACQUER_MODULE_DESCRIPTOR symbol)");
    let e = LoadedModule::open(Path::new("/nonexistent/libx.so"), "").unwrap_err();
    assert!(matches!(e, LoadError::Open(_)), "{e:?}");
}

fn loaded(name: &str) -> &'static Module {
    static PROVIDER: OnceLock<Module> = OnceLock::new();
    static CONSUMER: OnceLock<Module> = OnceLock::new();
    let cell = match name {
        "provider" => &PROVIDER,
        "consumer" => &CONSUMER,
        _ => unreachable!(),
    };
    cell.get_or_init(|| Module::Loaded(LoadedModule::open(&lib(name), "").unwrap_or_else(|e| panic!("{e}"))))
}

/// Sends VCL event `ev` to `m`, as the server does at load and discard.
fn event(m: &Module, h: &mut FakeHost, ev: &str) -> Result<Value, Failure> {
    let f = lacquer_vcl::ModuleSpec::from_json(m.spec()).unwrap().event.expect("an #[event] function");
    m.call(&mut Ctx::new(h), Target::Function(f), &[Arg::Enum(ev)])
}

fn greet(h: &mut FakeHost, arg: &str) -> Value {
    let consumer = loaded("consumer");
    let call = func(consumer, "call");
    consumer
        .call(
            &mut Ctx::new(h),
            Target::Function(call),
            &[Arg::Str(Some(b"greeting")), Arg::Str(Some(arg.as_bytes())), Arg::Absent],
        )
        .unwrap()
}

fn freed(h: &mut FakeHost) -> i64 {
    let provider = loaded("provider");
    match provider.call(&mut Ctx::new(h), Target::Function(func(provider, "freed")), &[]) {
        Ok(Value::Int(n)) => n,
        other => panic!("{other:?}"),
    }
}

/// Two modules built separately, each its own shared library: `provider`
/// provides the hook "greeting", `consumer` calls it by name. The host's
/// registry is all they share.
#[test]
fn one_module_serves_another_through_a_named_hook() {
    let (provider, consumer) = (loaded("provider"), loaded("consumer"));
    assert_eq!((provider.name(), consumer.name()), ("provider", "consumer"));
    let hooks = Arc::new(Hooks::new());
    // VCL 1 imports both; the consumer runs in VCL 2, which does not
    // import the provider: hooks are the server's, not a VCL's.
    let mut init = FakeHost::for_vcl("vcl_init", &hooks, 1);
    let mut req = FakeHost::for_vcl("vcl_recv", &hooks, 2);
    assert_eq!(greet(&mut req, "you"), Value::str("(nobody answered)"), "no provider yet");
    let freed_before = freed(&mut req);

    // The load event registers the order-100 provider.
    assert_eq!(event(provider, &mut init, "load"), Ok(Value::Void));
    assert_eq!(hooks.providers("greeting"), 1);
    assert_eq!(greet(&mut req, "you"), Value::str("hello, you"));
    assert_eq!(greet(&mut req, ""), Value::str("(nobody answered)"), "it declines an empty argument");

    // Objects made in vcl_init register more, at their order.
    let answer = |h: &mut FakeHost, key: &str, reply: &str, order: i64| {
        let args = [Arg::Str(Some(key.as_bytes())), Arg::Str(Some(reply.as_bytes())), Arg::Int(order)];
        match provider.call(&mut Ctx::new(h), Target::Constructor(0), &args) {
            Ok(Value::Object(o)) => o,
            other => panic!("{other:?}"),
        }
    };
    let vip = answer(&mut init, "vip", "welcome back", 10);
    assert_eq!(greet(&mut req, "vip"), Value::str("welcome back"), "order 10 answers before order 100");
    assert_eq!(greet(&mut req, "you"), Value::str("hello, you"), "order 10 declines, order 100 answers");
    let tie = answer(&mut init, "vip", "second at 10", 10);
    assert_eq!(greet(&mut req, "vip"), Value::str("welcome back"), "a tie goes to the first registered");
    let first = answer(&mut init, "vip", "first at 5", 5);
    assert_eq!(greet(&mut req, "vip"), Value::str("first at 5"));
    let empty = answer(&mut init, "", "an empty argument", 200);
    assert_eq!(greet(&mut req, ""), Value::str("an empty argument"), "order 100 declined it");
    assert_eq!(hooks.providers("greeting"), 5);
    // Providing is for loading a VCL; a request cannot.
    let args = [Arg::Str(Some(&b"x"[..])), Arg::Str(Some(&b"y"[..])), Arg::Int(0)];
    let refused = provider.call(&mut Ctx::new(&mut req), Target::Constructor(0), &args).map(drop);
    assert_eq!(refused, Err(Failure("hooks cannot be provided in vcl_recv".into())));
    assert_eq!(hooks.providers("greeting"), 5);
    assert_eq!(freed(&mut req), freed_before + 1, "the refused provider was released at once");

    // Discarding VCL 1: its objects go (vcl_fini), it is told `discard`,
    // and the host unregisters every provider it registered, releasing
    // them in the module that made them.
    drop((vip, tie, first, empty));
    assert_eq!(greet(&mut req, "vip"), Value::str("first at 5"), "providers outlive their objects");
    assert_eq!(event(provider, &mut init, "discard"), Ok(Value::Void));
    assert_eq!(hooks.remove_owner(1), 5);
    assert_eq!(freed(&mut req), freed_before + 6, "each provider released once, by its module");
    assert_eq!(greet(&mut req, "vip"), Value::str("(nobody answered)"));
    assert_eq!(greet(&mut req, "you"), Value::str("(nobody answered)"));
}

#[test]
fn host_services_of_abi_1_2_reach_a_loaded_module() {
    let consumer = loaded("consumer");
    let hooks = Arc::new(Hooks::new());
    let mut h = FakeHost::for_vcl("vcl_recv", &hooks, 7);
    h.params.insert("nuke_limit".into(), "50".into());
    let whoami = func(consumer, "whoami");
    let r = consumer.call(&mut Ctx::new(&mut h), Target::Function(whoami), &[Arg::Str(Some(b"nuke_limit"))]);
    assert_eq!(r, Ok(Value::str("vcl7 50")));
    let r = consumer.call(&mut Ctx::new(&mut h), Target::Function(whoami), &[Arg::Str(Some(b"nope"))]);
    assert_eq!(r, Ok(Value::str("vcl7 -")));
    assert_eq!(h.global, [("Debug".to_string(), "vcl7 50".to_string()), ("Debug".into(), "vcl7 -".into())]);
}
