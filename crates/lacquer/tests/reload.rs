//! Several VCLs in one server: `vcl.load`, `vcl.inline`, `vcl.use`,
//! labels, states and `vcl.discard` over the admin CLI, SIGHUP reloading
//! the `-f` file, and `-d` (accept only after `start`) — with varnishd's
//! answers, and without losing a request or a connection while switching.

mod common;

use common::*;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A VCL that answers every request `200 WORD` by itself.
fn answering(word: &str) -> String {
    format!("vcl 4.1;\nbackend default none;\nsub vcl_recv {{ return (synth(200, \"{word}\")); }}\n")
}

/// The reason phrase of one response on a fresh connection.
fn reason(s: &Server) -> String {
    let (head, _) = request(s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    head.lines().next().unwrap_or("").splitn(3, ' ').nth(2).unwrap_or("").to_string()
}

/// Polls `f` until it holds, for up to five seconds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < WAIT, "never: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn switching_vcls_under_load_loses_no_request_and_no_connection() {
    let dir = scratch();
    let f = dir.join("a.vcl");
    std::fs::write(&f, answering("A")).unwrap();
    let s = start_with_cli(&["-f", f.to_str().unwrap()], b"k");
    let mut cli = Cli::open(&s.addrs[1], b"k");
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            let (stop, seen, addr) = (stop.clone(), seen.clone(), s.addr.clone());
            std::thread::spawn(move || {
                // One keep-alive connection each, for the whole test: a
                // switch must not close it.
                let c = std::net::TcpStream::connect(&addr).unwrap();
                c.set_read_timeout(Some(WAIT)).unwrap();
                let mut r = std::io::BufReader::new(c.try_clone().unwrap());
                let mut c = c;
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").expect("the connection stays open");
                    let head = read_head(&mut r).expect("every request is answered");
                    read_body(&mut r, &head);
                    let status = head.lines().next().unwrap().to_string();
                    assert!(status.starts_with("HTTP/1.1 200 "), "{status}");
                    seen.lock().unwrap().push(status[13..].to_string());
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut last = "boot".to_string();
    for i in 1..=20 {
        let name = format!("v{i}");
        let word = if i % 2 == 1 { "B" } else { "A" };
        cli.ok(&["vcl.inline", &name, &answering(word)]);
        assert_eq!(cli.ok(&["vcl.use", &name]), format!("VCL '{name}' now active"));
        // The old one may still be busy: it is discarded when its last
        // request ends.
        cli.ok(&["vcl.discard", &last]);
        last = name;
        std::thread::sleep(Duration::from_millis(15));
    }
    stop.store(true, Ordering::Relaxed);
    let served: usize = clients.into_iter().map(|c| c.join().expect("a client failed")).sum();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), served);
    assert!(seen.iter().any(|w| w == "A") && seen.iter().any(|w| w == "B"), "both VCLs answered");
    // Now only v20 answers, and the discarded VCLs are gone once idle
    // (the server may still be finishing the last request as the client
    // reads its answer).
    assert_eq!(reason(&s), "A");
    eventually("only v20 is left, idle", || cli.ok(&["vcl.list"]) == "active   auto    warm         0    v20\n");
}

#[test]
fn the_vcl_commands_answer_as_varnishd_does() {
    let dir = scratch();
    let (a, b) = (dir.join("a.vcl"), dir.join("b.vcl"));
    std::fs::write(&a, answering("A")).unwrap();
    std::fs::write(&b, answering("B")).unwrap();
    let s = start_with_cli(&["-f", a.to_str().unwrap()], b"k");
    let mut c = Cli::open(&s.addrs[1], b"k");
    let b = b.to_str().unwrap();
    // Texts and codes read off varnishd 7.1.1.
    assert_eq!(c.ok(&["vcl.list"]), "active   auto    warm         0    boot\n");
    c.ok(&["vcl.load", "v2", b]);
    assert_eq!(c.send(&["vcl.load", "v2", b]), (106, "Already a VCL named v2".into()));
    assert_eq!(c.send(&["vcl.load", "1a", b]), (106, "Illegal character in VCL name ('1')".into()));
    assert_eq!(c.send(&["vcl.load", "v3", b, "hot"]), (106, "State must be one of auto, cold or warm.".into()));
    let (code, text) = c.send(&["vcl.load", "v3", "/nonexistent.vcl"]);
    assert_eq!(code, 106);
    assert_eq!(
        text,
        "Message from VCC-compiler:\nCannot read file '/nonexistent.vcl' (No such file or directory)\n\
         Running VCC-compiler failed, exited with 2\nVCL compilation failed"
    );
    let (code, text) = c.send(&["vcl.inline", "v4", "vcl 4.1; backend b none; sub vcl_recv { sytnax }"]);
    assert_eq!(code, 106);
    assert!(text.starts_with("Message from VCC-compiler:\nSymbol not found: 'sytnax'"), "{text}");
    assert_eq!(reason(&s), "A", "loading does not switch");
    assert_eq!(c.send(&["vcl.use", "nonexist"]), (106, "No VCL named nonexist known\n".into()));
    assert_eq!(c.ok(&["vcl.use", "v2"]), "VCL 'v2' now active");
    assert_eq!(reason(&s), "B");
    c.ok(&["vcl.label", "l1", "v2"]);
    c.ok(&["vcl.label", "l2", "boot"]);
    // (Busy counts the request just answered until the server is done
    // with it, a moment after the client has its answer.)
    let want = "available   auto     warm         0    boot    <-    (1 label)\n\
                active      auto     warm         0    v2      <-    (1 label)\n\
                available   label    warm         0    l1      ->    v2\n\
                available   label    warm         0    l2      ->    boot\n";
    eventually("vcl.list shows the labels", || c.ok(&["vcl.list"]) == want);
    assert_eq!(c.send(&["vcl.discard", "v2"]), (300, "Cannot discard active VCL program v2\n".into()));
    assert_eq!(c.send(&["vcl.discard", "boot"]), (300, "Cannot discard labeled VCL program boot:\n\tl2\n".into()));
    assert_eq!(c.send(&["vcl.state", "boot", "cold"]), (300, "A labeled VCL cannot be set cold".into()));
    assert_eq!(c.send(&["vcl.label", "v2", "boot"]), (106, "v2 is not a label".into()));
    // Using a label runs the VCL it points at; moving it switches.
    assert_eq!(c.ok(&["vcl.use", "l2"]), "VCL 'l2' now active");
    assert_eq!(reason(&s), "A");
    c.ok(&["vcl.label", "l2", "v2"]);
    assert_eq!(reason(&s), "B");
    assert_eq!(c.send(&["vcl.discard", "nonexist"]), (106, "No VCL name matches nonexist\n".into()));
    c.ok(&["vcl.discard", "l1"]);
    // A cold VCL cannot be used until it is warmed.
    c.ok(&["vcl.load", "v5", b, "cold"]);
    assert!(c.ok(&["vcl.list"]).contains("available   cold     cold         0    v5\n"));
    assert_eq!(c.send(&["vcl.use", "v5"]), (300, "VCL 'v5' is cold - set to auto or warm first".into()));
    c.ok(&["vcl.state", "v5", "warm"]);
    assert_eq!(c.send(&["vcl.state", "v2", "cold"]), (300, "A labeled VCL cannot be set cold".into()));
    c.ok(&["vcl.use", "v5"]);
    assert_eq!(c.send(&["vcl.state", "v5", "cold"]), (300, "Cannot set the active VCL cold.".into()));
    assert_eq!(c.ok(&["vcl.show", "v5"]), answering("B"));
    let verbose = c.ok(&["vcl.show", "-v", "v5"]);
    assert!(verbose.starts_with(&format!("// VCL.SHOW 0 {} {b}\n", answering("B").len())), "{verbose}");
    assert!(verbose.contains("// VCL.SHOW 1 ") && verbose.contains(" <builtin>\n"));
    assert_eq!(c.send(&["vcl.show", "nope"]), (106, "No VCL named 'nope'".into()));
    // Backends are named after their VCL.
    c.ok(&["vcl.inline", "v6", "vcl 4.1; backend be1 { .host = \"127.0.0.1\"; .port = \"9\"; }"]);
    assert!(c.ok(&["backend.list", "v6.*"]).contains("v6.be1 "));
    assert!(!c.ok(&["backend.list"]).contains("v6.be1"), "without a VCL name: the active VCL's");
}

#[test]
fn a_here_document_carries_a_whole_vcl() {
    let s = start_with_cli(&["-b", "127.0.0.1:9"], b"k");
    let mut c = Cli::open(&s.addrs[1], b"k");
    // As varnishtest sends `-vcl`: the source on the lines after `<< WORD`.
    let src = answering("H");
    let (status, text) = c.raw(&format!("vcl.inline vh << XJEIFLH|)Xspa8P\n{src}XJEIFLH|)Xspa8P\n"));
    assert_eq!(status, 200, "{text}");
    c.ok(&["vcl.use", "vh"]);
    assert_eq!(reason(&s), "H");
    assert_eq!(c.ok(&["vcl.show", "vh"]), src);
}

#[test]
fn sighup_loads_the_file_again_and_keeps_the_old_vcl_when_it_fails() {
    let dir = scratch();
    let f = dir.join("t.vcl");
    std::fs::write(&f, answering("A")).unwrap();
    let s = start_with_cli(&["-f", f.to_str().unwrap()], b"k");
    let mut c = Cli::open(&s.addrs[1], b"k");
    let hup = || {
        let ok = std::process::Command::new("kill").args(["-HUP", &s.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    };
    std::fs::write(&f, answering("B")).unwrap();
    hup();
    eventually("SIGHUP switches to the new file", || reason(&s) == "B");
    std::fs::write(&f, "vcl 4.1; this does not compile").unwrap();
    hup();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(reason(&s), "B", "a VCL that does not compile changes nothing");
    let list = c.ok(&["vcl.list"]);
    assert_eq!(list.lines().count(), 2, "{list}");
    assert!(list.lines().nth(1).unwrap().starts_with("active ") && list.contains(" reload_"), "{list}");
}

#[test]
fn with_d_clients_are_served_only_after_start() {
    let dir = scratch();
    let f = dir.join("t.vcl");
    std::fs::write(&f, answering("D")).unwrap();
    let s = start_with_cli(&["-d"], b"k");
    let mut c = Cli::open(&s.addrs[1], b"k");
    assert_eq!(c.ok(&["status"]), "Child in state stopped");
    assert_eq!(c.send(&["start"]), (300, "No active VCL".into()));
    c.ok(&["vcl.load", "vcl1", f.to_str().unwrap()]);
    assert_eq!(c.ok(&["vcl.list"]), "active   auto    warm         -    vcl1\n");
    c.ok(&["start"]);
    assert_eq!(c.ok(&["status"]), "Child in state running");
    assert_eq!(reason(&s), "D");
    assert_eq!(c.send(&["start"]), (300, "Child in state running".into()));
    c.ok(&["stop"]);
    assert_eq!(c.send(&["stop"]), (300, "Child in state stopped".into()));
    c.ok(&["start"]);
    assert_eq!(reason(&s), "D");
    // As varnishd's debug mode: the end of standard input stops it.
    let mut s = s;
    drop(s.child.stdin.take());
    let t = Instant::now();
    while s.child.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < WAIT, "the server did not stop when its input ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(s.child.try_wait().unwrap().unwrap().success());
}

#[test]
fn modules_are_told_each_vcls_events() {
    let with_debug = "vcl 4.1;\nimport debug;\nimport std;\nbackend default none;\n\
                      sub vcl_init { std.log(\"init ran\"); }\nsub vcl_fini { std.log(\"fini ran\"); }\n\
                      sub vcl_recv { return (synth(200, \"E\")); }\n";
    // Debug records are masked by default, as in varnishd.
    let s = start_with_cli(&["-b", "127.0.0.1:9", "-p", "vsl_mask=+Debug"], b"k");
    let dir = s.dir.join("n");
    let mut c = Cli::open(&s.addrs[1], b"k");
    c.ok(&["vcl.inline", "ev1", with_debug]);
    // Loading warms it: the module's warm event logs, vcl_init's log is
    // outside any transaction.
    let log = log_until(&dir, &["-g", "raw"], "ev1: VCL_EVENT_WARM");
    // (Debug is an "unsafe" tag: printed quoted with its NUL, as
    // varnishlog prints varnishd's `"boot: VCL_EVENT_WARM%00"`.)
    assert!(log.contains("0 Debug          - \"ev1: VCL_EVENT_WARM%00\""), "{log}");
    assert!(log.contains("0 VCL_Log        - init ran"), "{log}");
    c.ok(&["vcl.state", "ev1", "cold"]);
    log_until(&dir, &["-g", "raw"], "ev1: VCL_EVENT_COLD");
    c.ok(&["vcl.discard", "ev1"]);
    let log = log_until(&dir, &["-g", "raw"], "fini ran");
    assert!(log.contains("0 VCL_Log        - fini ran"), "{log}");
    // A module may refuse a load; what runs keeps running.
    c.ok(&["param.set", "nuke_limit", "42"]);
    let (code, text) = c.send(&["vcl.inline", "ev2", with_debug]);
    assert_eq!(code, 106);
    assert_eq!(text, "VCL \"ev2\" Failed initialization\nMessage:\n\tnuke_limit is not the answer.");
    assert!(!c.ok(&["vcl.list"]).contains("ev2"));
    assert_eq!(c.send(&["vcl.use", "ev2"]).0, 106);
}

#[test]
fn return_vcl_switches_a_request_to_the_labelled_vcl() {
    let dir = scratch();
    let f = dir.join("a.vcl");
    std::fs::write(&f, answering("A")).unwrap();
    let s = start_with_cli(&["-f", f.to_str().unwrap()], b"k");
    let mut c = Cli::open(&s.addrs[1], b"k");
    // A label must exist before a VCL names it.
    let switching = "vcl 4.1;\nbackend default none;\n\
                     sub vcl_recv { if (req.http.x) { return (vcl(la)); } return (synth(200, \"B\")); }\n";
    let (code, text) = c.send(&["vcl.inline", "v2", switching]);
    assert_eq!(code, 106);
    assert!(text.contains("Symbol not found: 'la'"), "{text}");
    c.ok(&["vcl.label", "la", "boot"]);
    c.ok(&["vcl.inline", "v2", switching]);
    c.ok(&["vcl.use", "v2"]);
    assert_eq!(reason(&s), "B");
    let (head, _) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\nx: 1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 A"), "{head}");
    assert!(c.ok(&["vcl.list"]).contains("la      ->    boot (1 return(vcl))"));
    let (code, text) = c.send(&["vcl.discard", "la"]);
    assert_eq!((code, text.as_str()), (300, "Cannot discard VCL label la, other VCLs depend on it:\n\tv2\n"));
    // Pointing the label at the VCL that uses it would loop.
    let (code, text) = c.send(&["vcl.label", "la", "v2"]);
    assert_eq!(code, 106);
    assert_eq!(text, "Vcl v2 uses Label la\nPointing label la at v2 would create a loop");
    assert_eq!(c.send(&["vcl.label", "lb", "la"]).0, 300, "labels cannot point to labels");
    assert_eq!(c.send(&["vcl.state", "la", "cold"]), (106, "Labels are always warm".into()));
}
