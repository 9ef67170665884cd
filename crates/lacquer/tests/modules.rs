//! Built-in modules called from VCL in a running server: `import std;`
//! type-checks against the module's own spec, and calls reach its code —
//! in expressions, as statements that change the request, and logging.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const VCL: &str = r#"vcl 4.1;
import std;
backend default none;
sub vcl_recv {
    std.collect(req.http.x-many);
    std.log("recv saw " + std.tolower(req.url));
    return (synth(200));
}
sub vcl_synth {
    set resp.http.lower = std.tolower("MiXeD");
    set resp.http.int = std.integer(req.http.x-int, 7) + 1;
    set resp.http.dur = std.duration("1m", 0s);
    set resp.http.many = req.http.x-many;
    set resp.http.q = std.querysort("/p?b=2&a=1");
    set resp.http.fn = std.fnmatch("*.jpg", "a.jpg");
}
"#;

#[test]
fn std_functions_run_in_the_server() {
    let s = start(Some(VCL), &[]);
    let (head, _) = request(&s, b"GET /LOUD HTTP/1.1\r\nHost: x\r\nX-Int: 41\r\nX-Many: a\r\nX-Many: b\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "lower").as_deref(), Some("mixed"));
    assert_eq!(header(&head, "int").as_deref(), Some("42"));
    assert_eq!(header(&head, "dur").as_deref(), Some("60.000"));
    assert_eq!(header(&head, "many").as_deref(), Some("a, b"), "std.collect merged the request's headers");
    assert_eq!(header(&head, "q").as_deref(), Some("/p?a=1&b=2"));
    assert_eq!(header(&head, "fn").as_deref(), Some("true"));
    let (head, _) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\nX-Int: nope\r\n\r\n");
    assert_eq!(header(&head, "int").as_deref(), Some("8"), "the fallback");

    // std.log writes VCL_Log records.
    let dir = s.dir.join("n");
    let deadline = Instant::now() + Duration::from_secs(5);
    let log = loop {
        let out =
            Command::new(LACQUER).arg("log").arg("-n").arg(&dir).args(["-d", "-g", "raw", "-i", "VCL_Log"]).output();
        let text = String::from_utf8_lossy(&out.unwrap().stdout).into_owned();
        if text.contains("recv saw /loud") || Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains("VCL_Log        c recv saw /loud"), "{log}");
}

#[test]
fn an_unknown_module_is_refused_at_start() {
    let dir = scratch();
    let f = dir.join("t.vcl");
    std::fs::write(&f, "vcl 4.1;\nimport nosuch;\nbackend default none;\n").unwrap();
    let out = Command::new(LACQUER).args(["serve", "-a", "127.0.0.1:0", "-f"]).arg(&f).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Could not find VMOD nosuch"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Builds a module crate outside the workspace (as its author would) into
/// its own target directory; the directory holding the libraries.
fn build_modules(manifest: &str, target: &str, package: Option<&str>) -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| here.join("../../target"))
        .join(target);
    let mut cmd = Command::new(env!("CARGO"));
    cmd.args(["build", "--quiet", "--manifest-path"]).arg(here.join(manifest)).arg("--target-dir").arg(&target);
    if let Some(p) = package {
        cmd.args(["-p", p]);
    }
    let st = cmd.env_remove("RUSTFLAGS").status().expect("cargo runs");
    assert!(st.success(), "building {manifest} failed");
    target.join("debug")
}

fn so(dir: &std::path::Path, name: &str) -> String {
    dir.join(format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)).display().to_string()
}

#[test]
fn a_module_built_out_of_tree_is_loaded_from_its_file_and_serves() {
    let dir = build_modules("../../examples/modules/kv/Cargo.toml", "example-modules", None);
    let vcl = format!(
        "vcl 4.1;\nimport kv from \"{}\";\nbackend default none;\n\
         sub vcl_init {{ new store = kv.map(); }}\n\
         sub vcl_recv {{\n  if (req.method == \"PUT\") {{ store.set(req.url, req.http.value); return (synth(201)); }}\n  return (synth(200));\n}}\n\
         sub vcl_synth {{ set resp.http.value = store.get(req.url); }}\n",
        so(&dir, "kv")
    );
    let s = start(Some(&vcl), &[]);
    let (h, _) = request(&s, b"PUT /a HTTP/1.1\r\nHost: x\r\nvalue: first\r\nContent-Length: 0\r\n\r\n");
    assert!(h.starts_with("HTTP/1.1 201"), "{h}");
    // Another connection, another request: the same map.
    let (h, _) = request(&s, b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(header(&h, "value").as_deref(), Some("first"), "{h}");
    let (h, _) = request(&s, b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(header(&h, "value").as_deref(), Some(""), "{h}");
}

/// A shared library this process has mapped that is not a Lacquer module
/// (the C library).
fn system_library() -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("/libc.so") || p.contains("/libc-"))
        .expect("the C library is mapped")
        .to_string()
}

#[test]
fn modules_that_do_not_fit_are_refused_at_import_naming_why() {
    let dir = build_modules("../lacquer-module/tests/cdylib/Cargo.toml", "cdylib-tests", Some("future"));
    let check = |path: &str| {
        let vcl = format!("vcl 4.1;\nimport kv from \"{path}\";\nbackend default none;\n");
        let f = scratch().join("t.vcl");
        std::fs::write(&f, vcl).unwrap();
        let out = Command::new(LACQUER).arg("serve").arg("-a").arg("127.0.0.1:0").arg("-f").arg(&f).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let abi = lacquer_abi::ABI_MAJOR;
    let err = check(&so(&dir, "future"));
    assert!(err.contains("Could not open VMOD kv\n\tFile name: "), "{err}");
    assert!(
        err.contains(&format!("module built for ABI {}.x, this Lacquer has ABI {abi}.", abi + 1)),
        "both versions are named: {err}"
    );
    let libc = system_library();
    let err = check(&libc);
    assert!(err.contains(&format!("Could not open VMOD kv\n\tFile name: {libc}\n\tnot a Lacquer module")), "{err}");
    let err = check("/nonexistent/libkv.so");
    assert!(err.contains("File name: /nonexistent/libkv.so\n\tcannot open: "), "{err}");
}

/// Two test modules built apart, each its own shared library: `provider`
/// provides the hook "greeting" (order 100 from its load event, and an
/// object made in `vcl_init` at the order it is given), `consumer` calls
/// it by name. Hooks are the server's: a VCL that imports only the
/// consumer is answered while the provider's VCL is loaded, and nobody
/// answers once that VCL is discarded.
#[test]
fn a_module_from_one_library_serves_another_through_a_named_hook() {
    let dir = build_modules("../lacquer-module/tests/cdylib/Cargo.toml", "cdylib-tests", None);
    let (provider, consumer) = (so(&dir, "provider"), so(&dir, "consumer"));
    let scratch = scratch();
    let boot = scratch.join("boot.vcl");
    std::fs::write(
        &boot,
        format!(
            "vcl 4.1;\nimport provider from \"{provider}\";\nimport consumer from \"{consumer}\";\n\
             backend default none;\n\
             sub vcl_init {{ new vip = provider.answer(\"/vip\", \"welcome back\", 10); }}\n\
             sub vcl_recv {{ return (synth(200)); }}\n\
             sub vcl_synth {{\n  set resp.http.greeting = consumer.call(\"greeting\", req.url);\n  \
             set resp.http.who = consumer.whoami(\"nuke_limit\");\n}}\n"
        ),
    )
    .unwrap();
    let s = start_with_cli(&["-f", boot.to_str().unwrap()], b"k");
    let greeting = |path: &str| {
        let (h, _) = request(&s, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert!(h.starts_with("HTTP/1.1 200"), "{h}");
        (header(&h, "greeting").unwrap_or_default(), header(&h, "who"))
    };
    assert_eq!(greeting("/vip"), ("welcome back".into(), Some("boot 50".into())), "order 10 answers first");
    assert_eq!(greeting("/you").0, "hello, /you", "order 10 declines, the load event's order 100 answers");

    // A VCL importing only the consumer.
    let mut cli = Cli::open(&s.addrs[1], b"k");
    let v2 = format!(
        "vcl 4.1;\nimport consumer from \"{consumer}\";\nbackend default none;\n\
         sub vcl_recv {{ return (synth(200)); }}\n\
         sub vcl_synth {{\n  set resp.http.greeting = consumer.call(\"greeting\", req.url, \"nobody\");\n  \
         set resp.http.who = consumer.whoami(\"nuke_limit\");\n}}\n"
    );
    cli.ok(&["vcl.inline", "v2", &v2]);
    cli.ok(&["vcl.use", "v2"]);
    assert_eq!(greeting("/vip"), ("welcome back".into(), Some("v2 50".into())), "boot's providers answer v2");
    cli.ok(&["vcl.discard", "boot"]);
    // Discarded once its last task ends: then nobody answers.
    let deadline = Instant::now() + WAIT;
    while greeting("/vip").0 != "nobody" {
        assert!(Instant::now() < deadline, "the discarded VCL's providers still answer");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(greeting("/you").0, "nobody");
    let _ = std::fs::remove_dir_all(scratch);
}

/// The server's events reach a module loaded from a file through the
/// hook registry: a tick a second, each connection opened and closed,
/// each request answered (with its status and bytes), each VCL switch.
#[test]
fn server_events_reach_a_module_loaded_from_a_file() {
    let dir = build_modules("../lacquer-module/tests/cdylib/Cargo.toml", "cdylib-tests", Some("provider"));
    let provider = so(&dir, "provider");
    let scratch = scratch();
    let boot = scratch.join("boot.vcl");
    let vcl = format!(
        "vcl 4.1;\nimport provider from \"{provider}\";\nbackend default none;\n\
         sub vcl_init {{ provider.watch_server(); }}\n\
         sub vcl_recv {{ return (synth(200)); }}\n\
         sub vcl_synth {{ set resp.http.seen = provider.server_events(); synthetic(\"12345\"); return (deliver); }}\n"
    );
    std::fs::write(&boot, &vcl).unwrap();
    let s = start_with_cli(&["-f", boot.to_str().unwrap()], b"k");
    let seen = |what: &str| -> u64 {
        let (h, _) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let seen = header(&h, "seen").unwrap_or_default();
        let v = seen.split(' ').find_map(|kv| kv.strip_prefix(what)?.strip_prefix('=')).unwrap_or("0");
        v.parse().unwrap_or_else(|_| panic!("{seen}"))
    };
    // Each of these requests comes on its own connection. A request is
    // told done (and its connection closed) just after its response is
    // sent, so a client may be a little ahead of the counts: wait for them.
    assert_eq!(seen("done"), 0, "a request is not done while it runs");
    let until = |what: &str, want: u64| {
        let deadline = Instant::now() + WAIT;
        loop {
            let n = seen(what);
            if n >= want {
                return n;
            }
            assert!(Instant::now() < deadline, "{what}: {n} of {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    until("done", 1);
    until("open", 3);
    until("close", 3);
    let (h, _) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let last = header(&h, "seen").unwrap();
    let last = last.split_once("last=").unwrap().1.to_string();
    let f: Vec<&str> = last.split(' ').collect();
    assert_eq!(f.len(), 4, "{last}");
    assert!(f[0].parse::<u64>().unwrap() >= 1001 && f[1] == "200" && f[2] == "5", "vxid, status, bytes: {last}");
    std::thread::sleep(Duration::from_millis(1300));
    assert!(seen("tick") >= 1, "a tick a second");
    assert_eq!(seen("reload"), 0);
    let mut cli = Cli::open(&s.addrs[1], b"k");
    cli.ok(&["vcl.inline", "v2", &vcl.replace("sub vcl_init { provider.watch_server(); }\n", "")]);
    cli.ok(&["vcl.use", "v2"]);
    assert_eq!(seen("reload"), 1, "the switch to v2");
    let _ = std::fs::remove_dir_all(scratch);
}

#[test]
fn module_doc_prints_a_modules_reference_from_its_spec() {
    let out = Command::new(LACQUER).args(["module-doc", "directors"]).output().unwrap();
    assert!(out.status.success());
    let doc = String::from_utf8_lossy(&out.stdout);
    assert!(doc.starts_with("directors (ABI "), "{doc}");
    assert!(doc.contains("\n  new x = directors.fallback(BOOL sticky=false)\n"), "{doc}");
    assert!(doc.contains("\n    BACKEND x.backend(STRANDS)\n"), "the hash director's: {doc}");
    let out = Command::new(LACQUER).args(["module-doc", "std"]).output().unwrap();
    let doc = String::from_utf8_lossy(&out.stdout);
    assert!(
        doc.contains(
            "\n  REAL std.random(REAL lo, REAL hi)\n      Returns a random REAL number between *lo* and *hi*.\n"
        ),
        "{doc}"
    );
    let out = Command::new(LACQUER).args(["module-doc", "nosuch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let libc = system_library();
    let out = Command::new(LACQUER).args(["module-doc", &libc]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Lacquer module"));
}
