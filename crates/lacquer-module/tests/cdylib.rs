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
