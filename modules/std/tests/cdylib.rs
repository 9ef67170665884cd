//! std built as a shared library (`--features cdylib`) is the same module
//! as std linked in: same spec, same answers through the C ABI.

#[path = "../../../crates/lacquer-module/tests/fakehost.rs"]
mod fakehost;

use std::path::{Path, PathBuf};
use std::process::Command;

use fakehost::FakeHost;
use lacquer_module::loader::LoadedModule;
use lacquer_module::*;

#[test]
fn std_as_a_shared_library() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("../../target"))
        .join("std-cdylib");
    let st = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--lib", "-p", "lacquer-std", "--features", "cdylib", "--manifest-path"])
        .arg(here.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(st.success());
    let file = target.join("debug").join(format!(
        "{}lacquer_std{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let m = Module::Loaded(LoadedModule::open(&file, "").unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(m.name(), "std");
    assert_eq!(m.spec(), lacquer_std::vmod::SPEC);
    let linked = Module::Linked(&lacquer_std::vmod::MODULE);
    let spec = lacquer_vcl::ModuleSpec::from_json(m.spec()).unwrap();
    let f = |n: &str| Target::Function(spec.function(n).unwrap().0 as u32);
    let parts = [Some(&b"MiXed"[..])];
    let a = Arg::Absent;
    let cases: Vec<(&str, Vec<Arg<'_>>)> = vec![
        ("toupper", vec![Arg::Strands(Strands(&parts))]),
        ("integer", vec![Arg::Str(Some(b"42")), a, a, a, a, a, a]),
        ("integer", vec![Arg::Str(Some(b"x")), a, a, a, a, a, a]),
        ("duration", vec![Arg::Str(Some(b"1.5m")), a, a, a]),
        ("querysort", vec![Arg::Str(Some(b"/?b&a"))]),
        ("port", vec![Arg::Ip(Some("[::1]:81".parse().unwrap()))]),
        ("ban_error", vec![a]),
    ];
    for (name, args) in cases {
        let mut h1 = FakeHost::new("vcl_recv");
        let mut h2 = FakeHost::new("vcl_recv");
        let so = m.call(&mut Ctx::new(&mut h1), f(name), &args);
        let rs = linked.call(&mut Ctx::new(&mut h2), f(name), &args);
        assert_eq!(so, rs, "std.{name}");
    }
}
