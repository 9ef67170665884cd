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

/// The installed varnishd, if any: `$VARNISHD`, or where packages put it.
fn varnishd() -> Option<PathBuf> {
    let candidates = std::env::var_os("VARNISHD")
        .map(PathBuf::from)
        .into_iter()
        .chain(["/usr/sbin/varnishd", "/usr/local/sbin/varnishd"].map(PathBuf::from));
    candidates.into_iter().find(|p| p.is_file())
}

/// Varnish 7.1.1's own scripts, when the shared suite is beside the repo.
fn shared_suite() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vtc/varnish-7.1.1/tests");
    dir.is_dir().then_some(dir)
}

/// Oracle mode: scripts that pass under varnishtest pass under `lacquer
/// vtc --varnishd` too, or the runner has a bug. The project's scripts
/// that need a server on a Unix socket are left out: the server actor
/// makes its socket with the process's umask, where varnishtest makes it
/// connectable by anyone, and varnishd's child (another user) is refused.
#[test]
fn under_varnishd_what_varnishtest_passes_passes() {
    let Some(varnishd) = varnishd() else {
        eprintln!("skipped: no varnishd installed (set VARNISHD to run the oracle-mode tests)");
        return;
    };
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vtc");
    let mut files: Vec<PathBuf> =
        ["a00001", "b00001", "b00002", "b00006", "c00001", "c00004", "c00005", "c00006", "v00001"]
            .iter()
            .map(|t| own.join(format!("{t}.vtc")))
            .collect();
    match shared_suite() {
        // -vsc and -expect, -errvcl and -syntax, logexpect from the head
        // and with -d 1, -vsl_catchup, -clijson, -cleanup, -expectexit.
        Some(dir) => files.extend(
            [
                "b00000", "b00001", "v00001", "v00021", "c00066", "l00000", "l00001", "c00013", "b00004", "b00044",
                "c00057",
            ]
            .iter()
            .map(|t| dir.join(format!("{t}.vtc"))),
        ),
        None => eprintln!("note: the shared Varnish suite is absent; only the project's scripts run"),
    }
    let out = lacquer()
        .args(["vtc", "-j", "2", "-k", "-t", "60", "--varnishd"])
        .arg(&varnishd)
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains(&format!("{} passed, 0 failed, 0 skipped", files.len())), "{stdout}");
}

/// Oracle mode fails what must fail: a wrong expectation is not made
/// right by a real varnishd.
#[test]
fn under_varnishd_scripts_that_must_fail_are_reported_failed() {
    let Some(varnishd) = varnishd() else {
        eprintln!("skipped: no varnishd installed (set VARNISHD to run the oracle-mode tests)");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vtc-must-fail");
    let names = [
        "errvcl-that-compiles",
        "wrong-errvcl-text",
        "vcl-that-fails",
        "expect-wrong-counter",
        "logexpect-wrong-protocol",
        "served-wrong-expect",
    ];
    let files: Vec<PathBuf> = names.iter().map(|n| dir.join(format!("{n}.vtc"))).collect();
    let out = lacquer()
        .args(["vtc", "-j", "2", "-k", "-t", "20", "--varnishd"])
        .arg(&varnishd)
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains(&format!("0 passed, {} failed, 0 skipped", files.len())), "{stdout}");
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
