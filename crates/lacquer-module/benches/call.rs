//! What calling a module costs: the same trivial function (no arguments,
//! an INT back: `kv.drops()`) called directly in Rust, through a linked-in
//! module's dispatcher, and across the C ABI of a module loaded from a
//! shared library. The difference between the last and the first is the
//! crossing (issue target: under 50 ns).
//!
//! A plain timing loop (no harness): the median over batches of the time
//! per call. Run with `cargo bench -p lacquer-module --features loader`
//! (it builds the test modules under `tests/cdylib` first).

#[path = "../tests/fakehost.rs"]
mod fakehost;

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use fakehost::FakeHost;
use lacquer_module::loader::LoadedModule;
use lacquer_module::{Ctx, Module, Registry, Target, Value};

#[lacquer_module::module]
pub mod linked {
    //! The function, linked in.
    use std::sync::atomic::{AtomicI64, Ordering};

    pub static DROPS: AtomicI64 = AtomicI64::new(0);

    /// How many maps were dropped (none).
    pub fn drops() -> i64 {
        DROPS.load(Ordering::SeqCst)
    }
}

/// Runs `f` in batches of `per_batch` and prints the median nanoseconds
/// per call.
fn bench(name: &str, per_batch: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..per_batch {
        f();
    }
    let mut samples: Vec<f64> = (0..31)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(per_batch)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    println!("{name:48} {median:8.1} ns");
    median
}

/// Builds the test modules as shared libraries (release); their directory.
fn built() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("../../target"))
        .join("cdylib-bench");
    let st = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "-p", "kv", "--manifest-path"])
        .arg(here.join("tests/cdylib/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .status()
        .expect("cargo runs");
    assert!(st.success(), "building the test module failed");
    target.join("release")
}

fn main() {
    let lib = built().join(format!("{}kv{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX));
    let loaded = Module::Loaded(LoadedModule::open(&lib, "").unwrap_or_else(|e| panic!("{}: {e}", lib.display())));
    let mut reg = Registry::new();
    reg.link(&linked::MODULE);
    let linked_mod = reg.get("linked").expect("linked in");
    let f_loaded = {
        let spec = lacquer_vcl::ModuleSpec::from_json(loaded.spec()).unwrap();
        spec.function("drops").unwrap().0 as u32
    };
    let mut host = FakeHost::new("vcl_recv");

    let direct = bench("direct Rust call", 1_000_000, || {
        black_box(linked::drops());
    });
    let via_linked = bench("linked-in module (Registry dispatch)", 1_000_000, || {
        let r = linked_mod.call(&mut Ctx::new(&mut host), Target::Function(0), &[]);
        assert!(matches!(black_box(r), Ok(Value::Int(0))));
    });
    let via_abi = bench("module from a .so (C ABI both ways)", 1_000_000, || {
        let r = loaded.call(&mut Ctx::new(&mut host), Target::Function(f_loaded), &[]);
        assert!(matches!(black_box(r), Ok(Value::Int(0))));
    });
    println!("{:48} {:8.1} ns", "crossing: linked-in over direct", via_linked - direct);
    println!("{:48} {:8.1} ns", "crossing: C ABI over direct (target < 50)", via_abi - direct);
}
