//! `lacquer check` as a user runs it: exit codes, summary, VCC's messages,
//! standard input.

use std::io::Write;
use std::process::{Command, Stdio};

fn lacquer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lacquer"))
}

fn example(name: &str) -> String {
    format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn a_valid_file_exits_zero_with_a_summary() {
    let out = lacquer().args(["check", &example("default.vcl")]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("VCL 4.1 compiled"), "{stdout}");
    assert!(stdout.contains("1 backends, 1 probes, 1 ACLs"), "{stdout}");
}

#[test]
fn a_bad_file_exits_nonzero_with_vccs_message() {
    let dir = std::env::temp_dir().join(format!("lacquer-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.vcl");
    std::fs::write(&f, "vcl 4.1;\nbackend b { .host = \"127.0.0.1\"; }\nsub vcl_recv {\n\tset req.foo = \"x\";\n}\n")
        .unwrap();
    let out = lacquer().args(["check", f.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    let want = format!(
        "Symbol not found: 'req.foo'\nAt: ('{}' Line 4 Pos 13) -- (Pos 19)\n        set req.foo = \"x\";\n------------#######-------\n",
        f.display()
    );
    assert!(stderr.contains(&want), "got:\n{stderr}\nwant:\n{want}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn standard_input_is_read_with_a_dash() {
    let mut child = lacquer()
        .args(["check", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"vcl 4.0;\nbackend b { .host = \"127.0.0.1\"; }\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("VCL 4.0 compiled"));
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = lacquer().args(["check", "/nonexistent/x.vcl"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Cannot read file '/nonexistent/x.vcl'"));
}
