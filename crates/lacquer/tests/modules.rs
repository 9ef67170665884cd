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
