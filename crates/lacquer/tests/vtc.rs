//! `lacquer vtc` checks itself: the project's own scripts pass, and scripts
//! that must fail (a wrong expectation, a missing text, a server that never
//! answers …) are reported FAILED. A runner that passes what should fail is
//! worse than none.

use std::path::{Path, PathBuf};
use std::process::Command;

fn lacquer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lacquer"))
}

fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "vtc"))
        .collect();
    v.sort();
    v
}

#[test]
fn the_projects_own_scripts_pass() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vtc");
    let files = scripts(&dir);
    assert!(!files.is_empty());
    let out = lacquer().args(["vtc", "-j", "2", "-k"]).args(&files).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("{} passed, 0 failed, 0 skipped", files.len())), "{stdout}");
}

#[test]
fn scripts_that_must_fail_are_reported_failed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vtc-must-fail");
    for f in scripts(&dir) {
        let out = lacquer().args(["vtc", "-t", "10"]).arg(&f).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{} should fail:\n{stdout}", f.display());
        assert!(stdout.contains("FAILED"), "{}:\n{stdout}", f.display());
        assert!(stdout.trim_end().ends_with("0 passed, 1 failed, 0 skipped"), "{}:\n{stdout}", f.display());
    }
}

#[test]
fn scripts_speaking_h2_are_skipped_before_they_run() {
    // A client spec with an HTTP/2 stream, and a server that would fail
    // the test if anything ran (nothing connects to it, and it waits for
    // a request).
    let dir = std::env::temp_dir().join(format!("lacquer-vtc-h2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("h2.vtc");
    std::fs::write(
        &f,
        "varnishtest \"h2\"\nserver s1 {\n\trxreq\n\ttxresp\n} -start\n\
         client c1 -connect ${s1_sock} {\n\tstream 1 {\n\t\ttxreq\n\t\trxresp\n\t} -run\n} -run\nserver s1 -wait\n",
    )
    .unwrap();
    let out = lacquer().args(["vtc", "-t", "10"]).arg(&f).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("skipped (h2 not supported)"), "{stdout}");
    assert!(stdout.trim_end().ends_with("0 passed, 0 failed, 1 skipped"), "{stdout}");
}
