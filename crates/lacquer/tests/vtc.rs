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
