//! The admin CLI on `-T` with `-S`: Varnish's protocol, spoken by a client
//! made here from `lacquer-cli` and, when it is installed, by the real
//! `varnishadm`.

mod common;

use common::*;
use std::io::Write;
use std::process::Command;

fn serve_with_cli(secret: &[u8]) -> (Server, String, std::path::PathBuf) {
    let s = start_with_cli(&["-b", "127.0.0.1:9"], secret);
    let (cli, file) = (s.addrs[1].clone(), s.dir.join("secret"));
    (s, cli, file)
}

#[test]
fn the_cli_authenticates_and_answers_as_varnishd_does() {
    let (s, addr, _) = serve_with_cli(b"s3cret\n");
    let mut c = Cli::connect(&addr);
    let (status, body) = c.answer();
    assert_eq!(status, 107, "{body}");
    let challenge = body.lines().next().unwrap().to_string();
    assert_eq!(challenge.len(), 32);
    // A wrong answer gets a new challenge.
    let (status, _) = c.send(&["auth", &lacquer_cli::auth_response(&challenge, b"wrong\n")]);
    assert_eq!(status, 107);
    let mut c = Cli::connect(&addr);
    let (_, body) = c.answer();
    let challenge = body.lines().next().unwrap().to_string();
    let (status, banner) = c.send(&["auth", &lacquer_cli::auth_response(&challenge, b"s3cret\n")]);
    assert_eq!(status, 200, "{banner}");
    assert!(c.send(&["ping"]).1.starts_with("PONG "));
    assert_eq!(c.send(&["param.set", "default_ttl", "42"]).0, 200);
    assert!(c.send(&["param.show", "default_ttl"]).1.contains("Value is: 42.000 [seconds]"));
    // The list, as varnishd writes it: only what changed with `changed`.
    assert!(c.send(&["param.show"]).1.contains("\ndefault_grace                 10.000 [seconds] (default)\n"));
    let changed = c.send(&["param.show", "changed"]).1;
    assert!(changed.contains("default_ttl                   42.000 [seconds]\n"), "{changed}");
    assert!(!changed.contains("default_grace"), "{changed}");
    let (status, body) = c.send(&["param.set", "max_restarts", "lots"]);
    assert_eq!(status, 106);
    assert!(body.starts_with("Not a number (lots)"), "{body}");
    assert_eq!(c.send(&["ban", "req.url", "~", "^/news"]).0, 200);
    assert!(c.send(&["ban.list"]).1.contains("req.url ~ ^/news"));
    let (status, body) = c.send(&["ban", "req.url", "=", "x"]);
    assert_eq!(status, 106, "{body}");
    assert_eq!(c.send(&["backend.set_health", "default", "sick"]).0, 200);
    let list = c.send(&["backend.list"]).1;
    let row: Vec<&str> =
        list.lines().find(|l| l.starts_with("boot.default ")).unwrap_or("").split_whitespace().collect();
    assert_eq!(row[..4], ["boot.default", "sick", "0/0", "sick"], "{list}");
    // The arity comes from the command table; help lists the commands.
    assert_eq!(c.send(&["vcl.use"]).0, 104);
    assert_eq!(c.send(&["ping", "a", "b"]).0, 105);
    assert!(c.send(&["help"]).1.contains("backend.list [-j] [-p] [<backend_pattern>]\n"));
    assert_eq!(c.send(&["help", "-d"]).0, 200);
    // Storage devices, as varnishd lists them.
    assert_eq!(c.send(&["storage.list"]).1, "Storage devices:\n\tstorage.s0 = malloc\n\tstorage.Transient = malloc\n");
    assert_eq!(c.send(&["no.such"]).0, 101);
    assert_eq!(c.send(&["quit"]).0, 500);
    drop(s);
}

#[test]
fn varnishadm_drives_lacquer() {
    let (_s, addr, file) = serve_with_cli(b"k\n");
    if Command::new("varnishadm").arg("-h").output().is_err() {
        eprintln!("varnishadm not installed: skipping its part");
        return;
    }
    let adm = |args: &[&str]| {
        let out = Command::new("varnishadm").args(["-T", &addr, "-S"]).arg(&file).args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = adm(&["ping"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("PONG "), "{out}");
    assert_eq!(adm(&["param.set", "default_grace", "5"]).0, Some(0));
    assert!(adm(&["param.show", "default_grace"]).1.contains("Value is: 5.000"));
    assert_eq!(adm(&["backend.set_health", "boot.default", "sick"]).0, Some(0));
    assert!(adm(&["backend.list"]).1.contains("sick"));
    // An operator's reload, varnishadm's way (it sends its arguments as
    // they are: the VCL is quoted for the CLI here).
    let (code, out) = adm(&["vcl.inline", "v2", "\"vcl 4.1; backend b none; sub vcl_recv { return (synth(204)); }\""]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(adm(&["vcl.use", "v2"]).1.trim(), "VCL 'v2' now active");
    let list = adm(&["vcl.list"]).1;
    assert!(
        list.contains("available   auto    warm         0    boot\nactive      auto    warm         0    v2"),
        "{list}"
    );
    let (code, out) = adm(&["vcl.inline", "v3", "\"vcl 4.1; sub vcl_recv { nope }\""]);
    assert_eq!(code, Some(1), "a VCL that does not compile is refused: {out}");
    assert!(out.contains("VCL compilation failed"), "{out}");
    assert_eq!(adm(&["vcl.discard", "boot"]).0, Some(0));
}

#[test]
fn lacquer_adm_runs_commands_from_arguments_and_standard_input() {
    let (_s, addr, file) = serve_with_cli(b"adm-secret\n");
    let adm = |args: &[&str], input: &str| {
        let mut child = Command::new(LACQUER)
            .args(["adm", "-T", &addr, "-S"])
            .arg(&file)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = adm(&["ping"], "");
    assert_eq!(code, Some(0));
    assert!(out.starts_with("PONG "), "{out}");
    let (code, out) = adm(&[], "param.set default_keep 7\nparam.show default_keep\n");
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("Value is: 7.000 [seconds]"), "{out}");
    let (code, out) = adm(&["no.such"], "");
    assert_eq!(code, Some(1));
    assert!(out.contains("Unknown request"), "{out}");
    let wrong = file.with_file_name("wrong");
    std::fs::write(&wrong, "nope\n").unwrap();
    let out = Command::new(LACQUER).args(["adm", "-T", &addr, "-S"]).arg(&wrong).arg("ping").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a wrong secret is refused");
}
