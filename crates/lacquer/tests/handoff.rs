//! Connection handoff through `lacquer serve`: the `handoff` module in
//! `vcl_recv` gives the client connection to a process listening on a
//! Unix socket (here a thread of the test, with `lacquer-handoff`), which
//! answers on it itself; the session forgets it without writing anything
//! (`SessClose TX_HANDOFF`). When the process is not there, refuses or
//! does not answer, the client gets a 503 through `vcl_synth`.

mod common;

use common::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The VCL: `/take…` goes to the endpoint at `sock`, anything else is a
/// synthetic 200.
fn take_vcl(sock: &Path, extra: &str) -> String {
    format!(
        r#"vcl 4.1;
import handoff;
backend default none;
sub vcl_init {{
    new app = handoff.endpoint(path = "{}"{extra});
}}
sub vcl_recv {{
    if (req.url ~ "^/take") {{
        app.transfer();
        # Never runs: the call ended the request.
        return (synth(500, "after the handoff"));
    }}
    return (synth(200, "plain"));
}}
sub vcl_synth {{
    set resp.http.x-synth = "yes";
}}
"#,
        sock.display()
    )
}

/// What a receiver does with each transfer.
#[derive(Clone, Copy)]
enum Mode {
    /// Accepts, answers `200 Taken` with `xid=… head=…\n` and the bytes
    /// Lacquer read, then the rest of the body as it comes.
    Answer,
    Refuse,
    /// Reads the message and never answers.
    Silent,
}

/// A receiver on a fresh socket path, on threads of the test.
fn receiver(dir: &Path, mode: Mode) -> PathBuf {
    let path = dir.join("app.sock");
    let l = lacquer_handoff::Listener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let _ = l.serve(move |t| match mode {
            Mode::Refuse => t.refuse("no thanks").unwrap(),
            Mode::Silent => std::thread::sleep(Duration::from_secs(10)),
            Mode::Answer => {
                let c = t.accept().unwrap();
                let cl: usize = text(c.head())
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: ").map(|v| v.trim().parse().unwrap()))
                    .unwrap_or(0);
                let mut body = vec![0u8; cl];
                c.reader().read_exact(&mut body).unwrap();
                let mut out =
                    format!("xid={} head={} client={}\n", c.meta.xid, c.meta.head_len, c.meta.client.unwrap())
                        .into_bytes();
                out.extend_from_slice(c.head());
                out.extend_from_slice(&body);
                let head = format!("HTTP/1.1 200 Taken\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", out.len());
                (&c.stream).write_all(head.as_bytes()).unwrap();
                (&c.stream).write_all(&out).unwrap();
            }
        });
    });
    path
}

#[test]
fn the_process_gets_the_connection_with_the_bytes_already_read() {
    let d = scratch();
    let sock = receiver(&d, Mode::Answer);
    let s = start(Some(&take_vcl(&sock, "")), &[]);
    let dir = s.dir.join("n");
    let (mut c, mut r) = connect(&s);
    // A keep-alive request first, then one whose body's first part came
    // with the head and the rest later, straight to the process.
    c.write_all(b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = read_head(&mut r).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 plain"), "{head}");
    read_body(&mut r, &head);
    let req = b"POST /take HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nfirst";
    c.write_all(req).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"later").unwrap();
    let head = read_head(&mut r).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 Taken"), "{head}");
    assert_eq!(header(&head, "x-synth"), None, "{head}");
    let body = text(&read_body(&mut r, &head));
    let (first, rest) = body.split_once('\n').unwrap();
    let head_len = req.len() - 5;
    assert!(first.starts_with("xid=") && first.contains(&format!(" head={head_len} client=127.0.0.1:")), "{first}");
    // The head exactly as received (no X-Forwarded-For, which Lacquer
    // adds to its own copy only), then the whole body.
    assert_eq!(rest, format!("{}later", text(req)), "{body}");
    // Lacquer wrote nothing more and closed its copy: end of stream.
    let mut more = Vec::new();
    r.read_to_end(&mut more).unwrap();
    assert!(more.is_empty(), "{}", text(&more));

    let log = log_until(&dir, &["-g", "raw", "-i", "SessClose,VCL_return,Timestamp,VCL_Log"], "TX_HANDOFF");
    assert!(log.contains("SessClose      c TX_HANDOFF"), "{log}");
    assert!(log.contains("VCL_return     c handoff"), "{log}");
    assert!(log.contains("Timestamp      c Handoff:"), "{log}");
    assert!(log.contains("VCL_Log        c handoff app: handed to"), "{log}");
    assert_eq!(counter_until(&dir, "MAIN.s_handoff", 1), 1);
    assert_eq!(counter_until(&dir, "MAIN.sc_tx_handoff", 1), 1);
    assert_eq!(counter_until(&dir, "MAIN.vcl_fail", 0), 0);
    let _ = std::fs::remove_dir_all(&d);
}

/// The handoff module built as a shared library (ABI 1.3 carries the
/// connection across the C ABI), in a target directory of its own.
fn handoff_so() -> String {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| here.join("../../target"))
        .join("handoff-so");
    let st = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "-p", "lacquer-vmod-handoff", "--features", "cdylib", "--manifest-path"])
        .arg(here.join("../../Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env_remove("RUSTFLAGS")
        .status()
        .unwrap();
    assert!(st.success(), "building the handoff module as a shared library");
    let name = format!("{}lacquer_vmod_handoff{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    target.join("debug").join(name).display().to_string()
}

/// The same transfer with the module loaded from a file: the
/// connection, the blocking send and the end of the request cross the C
/// ABI.
#[test]
fn a_module_loaded_from_a_file_hands_off_too() {
    let d = scratch();
    let sock = receiver(&d, Mode::Answer);
    let vcl = take_vcl(&sock, "").replace("import handoff;", &format!("import handoff from \"{}\";", handoff_so()));
    let s = start(Some(&vcl), &[]);
    let (head, body) = request(&s, b"GET /take HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 Taken"), "{head}");
    let body = text(&body);
    assert!(body.contains(" client=127.0.0.1:") && body.contains("GET /take HTTP/1.1"), "{body}");
    // A refusal ends the request the other way, through the ABI too.
    let (head, _) = request(&s, b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 plain"), "{head}");
    assert_eq!(counter_until(&s.dir.join("n"), "MAIN.s_handoff", 1), 1);
    drop(s);
    let nobody = take_vcl(&d.join("nobody.sock"), "")
        .replace("import handoff;", &format!("import handoff from \"{}\";", handoff_so()));
    let s = start(Some(&nobody), &[]);
    let (head, _) = request(&s, b"GET /take HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503 Handoff Failed"), "{head}");
    assert_eq!(header(&head, "x-synth").as_deref(), Some("yes"), "through vcl_synth: {head}");
    let _ = std::fs::remove_dir_all(&d);
}

/// `app.route(prefix)`: the module's request_raw function hands those
/// requests off before VCL runs (zero-VCL routing); the rest go to VCL.
#[test]
fn routed_requests_are_handed_off_before_vcl() {
    let d = scratch();
    let sock = receiver(&d, Mode::Answer);
    let vcl = format!(
        r#"vcl 4.1;
import handoff;
backend default none;
sub vcl_init {{
    new app = handoff.endpoint(path = "{}");
    app.route("/raw/");
    new gone = handoff.endpoint(path = "{}");
    gone.route("/gone/");
}}
sub vcl_recv {{
    return (synth(200, "vcl saw it"));
}}
sub vcl_synth {{
    set resp.http.x-synth = "yes";
}}
"#,
        sock.display(),
        d.join("nobody.sock").display()
    );
    let s = start(Some(&vcl), &[]);
    let (head, body) = request(&s, b"GET /raw/feed HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 Taken"), "{head}");
    assert!(text(&body).contains("GET /raw/feed HTTP/1.1"), "{}", text(&body));
    let (head, _) = request(&s, b"GET /rawish HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 vcl saw it"), "not a route: {head}");
    // A route whose process is not there: the 503 of a failed transfer.
    let (head, _) = request(&s, b"GET /gone/x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503 Handoff Failed"), "{head}");
    assert_eq!(header(&head, "x-synth").as_deref(), Some("yes"), "through vcl_synth: {head}");
    let n = s.dir.join("n");
    let log = log_until(&n, &["-g", "request", "-i", "ReqURL,VCL_call,VCL_return"], "/gone/x");
    let raw = log.split("ReqURL").find(|b| b.contains("/raw/feed")).unwrap_or("");
    assert!(!raw.contains("RECV") && raw.contains("handoff"), "vcl_recv did not run for it: {log}");
    assert_eq!(counter_until(&n, "MAIN.s_handoff", 1), 1);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn no_process_is_a_503_and_the_connection_is_kept() {
    let d = scratch();
    let s = start(Some(&take_vcl(&d.join("nobody.sock"), "")), &[]);
    let (mut c, mut r) = connect(&s);
    c.write_all(b"GET /take HTTP/1.1\r\nHost: x\r\n\r\nGET /plain HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let head = read_head(&mut r).unwrap();
    assert!(head.starts_with("HTTP/1.1 503 Handoff Failed"), "{head}");
    assert_eq!(header(&head, "x-synth").as_deref(), Some("yes"), "through vcl_synth: {head}");
    assert_eq!(header(&head, "connection").as_deref(), Some("keep-alive"));
    read_body(&mut r, &head);
    let head = read_head(&mut r).unwrap();
    assert!(head.starts_with("HTTP/1.1 200 plain"), "{head}");
    let log = log_until(&s.dir.join("n"), &["-g", "raw", "-i", "VCL_Log"], "not accepting");
    assert!(log.contains("nobody.sock: not accepting:"), "{log}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_refusal_or_no_answer_is_a_503_and_the_connection_closes() {
    let d = scratch();
    let refusing = receiver(&d, Mode::Refuse);
    let s = start(Some(&take_vcl(&refusing, "")), &[]);
    let (head, _) = request(&s, b"GET /take HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503 Handoff Failed"), "{head}");
    assert_eq!(header(&head, "connection").as_deref(), Some("close"), "{head}");
    let log = log_until(&s.dir.join("n"), &["-g", "raw", "-i", "VCL_Log"], "refused");
    assert!(log.contains("refused: no thanks"), "{log}");
    drop(s);

    let d2 = scratch();
    let silent = receiver(&d2, Mode::Silent);
    let s = start(Some(&take_vcl(&silent, ", timeout = 0.3s")), &[]);
    let t = Instant::now();
    let (head, _) = request(&s, b"GET /take HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503 Handoff Failed"), "{head}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let log = log_until(&s.dir.join("n"), &["-g", "raw", "-i", "VCL_Log"], "no answer");
    assert!(log.contains("no answer:"), "{log}");
    // Serving goes on meanwhile.
    let (head, _) = request(&s, b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 plain"), "{head}");
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&d2);
}

/// `max_transfers` bounds the transfers under way: past it a request is
/// answered 503 at once (the process is not asked), and the others go on.
#[test]
fn past_max_transfers_a_request_is_refused_at_once() {
    let d = scratch();
    let silent = receiver(&d, Mode::Silent);
    let s = start(Some(&take_vcl(&silent, ", max_transfers = 1, timeout = 3s")), &[]);
    let addr = s.addr.clone();
    // The first transfer waits for an answer that never comes.
    let first = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(b"GET /take/1 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        let _ = c.read_to_string(&mut out);
        out
    });
    let n = s.dir.join("n");
    // (The log of a request is written when it ends, so it cannot say
    // when the first transfer is under way: give it time to start.)
    std::thread::sleep(Duration::from_millis(500));
    let t = Instant::now();
    let (head, _) = request(&s, b"GET /take/2 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503 Handoff Failed"), "{head}");
    assert!(t.elapsed() < Duration::from_secs(1), "refused at once, not after the timeout: {:?}", t.elapsed());
    let log = log_until(&n, &["-g", "raw", "-i", "VCL_Log"], "busy");
    assert!(log.contains("busy: 1 transfers under way"), "{log}");
    // Ordinary requests are not held up, and the first transfer ends on
    // its own timeout.
    let (head, _) = request(&s, b"GET /plain HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 plain"), "{head}");
    let out = first.join().unwrap();
    assert!(out.starts_with("HTTP/1.1 503 Handoff Failed"), "{out}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_connection_cannot_be_taken_outside_vcl_recv() {
    let d = scratch();
    let (o, _) = origin();
    let subs = format!(
        "import handoff;\nsub vcl_init {{ new app = handoff.endpoint(path = \"{}\"); }}\nsub vcl_deliver {{ app.transfer(); }}\n",
        d.join("app.sock").display()
    );
    let s = start(Some(&vcl(&o, &subs)), &[]);
    // The call fails the VCL: a 503 from vcl_synth, not a handoff.
    let (head, _) = request(&s, b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let dir = s.dir.join("n");
    let log = log_until(&dir, &["-g", "raw", "-i", "VCL_Error"], "only in vcl_recv");
    assert!(log.contains("not in vcl_deliver (only in vcl_recv)"), "{log}");
    assert_eq!(counter_until(&dir, "MAIN.s_handoff", 0), 0);
    let _ = std::fs::remove_dir_all(&d);
}

/// The `handoff-echo` example's binary, brought up to date (a test run
/// of this package alone does not build another package's binaries).
fn echo_binary() -> PathBuf {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let st = Command::new(cargo).args(["build", "-q", "-p", "handoff-echo"]).status().unwrap();
        assert!(st.success(), "building handoff-echo");
    });
    Path::new(LACQUER).with_file_name("handoff-echo")
}

/// `/ws…`, `/events` and `/pid` go to handoff-echo, started by Lacquer
/// on first use; the rest is cached from the origin.
fn echo_vcl(origin: &str, sock: &Path) -> String {
    vcl(
        origin,
        &format!(
            r#"import handoff;
sub vcl_init {{
    new echo = handoff.endpoint(path = "{sock}", command = "exec {bin} --socket {sock}");
}}
sub vcl_recv {{
    if (req.url ~ "^/(ws|events|pid)") {{
        echo.transfer();
    }}
}}
sub vcl_backend_response {{
    set beresp.ttl = 1h;
}}
"#,
            sock = sock.display(),
            bin = echo_binary().display()
        ),
    )
}

#[test]
fn websockets_and_events_live_alongside_cached_traffic() {
    use tungstenite::Message;
    let d = scratch();
    let (o, _, fetches) = counting_origin();
    let s = start(Some(&echo_vcl(&o, &d.join("echo.sock"))), &[]);
    // Three websockets and two event streams open at once.
    let mut sockets: Vec<_> = (0..3)
        .map(|i| {
            let (ws, resp) = tungstenite::connect(format!("ws://{}/ws?n={i}", s.addr)).expect("the upgrade");
            assert_eq!(resp.status(), 101);
            ws
        })
        .collect();
    let mut streams: Vec<_> = (0..2)
        .map(|_| {
            let (mut c, mut r) = connect(&s);
            c.write_all(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            let head = read_head(&mut r).unwrap();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            assert_eq!(header(&head, "content-type").as_deref(), Some("text/event-stream"));
            (c, r)
        })
        .collect();
    for round in 0..3 {
        for (i, ws) in sockets.iter_mut().enumerate() {
            ws.send(Message::Text(format!("hello {i} round {round}"))).unwrap();
        }
        // Cached traffic keeps flowing meanwhile: one fetch, then hits.
        let (head, body) = request(&s, b"GET /cached HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(text(&body).starts_with("GET /cached"), "{}", text(&body));
        for (i, ws) in sockets.iter_mut().enumerate() {
            assert_eq!(ws.read().unwrap(), Message::Text(format!("hello {i} round {round}")));
        }
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1, "the cached object was fetched once");
    sockets[1].send(Message::Binary(vec![1, 2, 3])).unwrap();
    assert_eq!(sockets[1].read().unwrap(), Message::Binary(vec![1, 2, 3]));
    // Each event stream ticks once a second.
    for (_, r) in streams.iter_mut() {
        let mut times = Vec::new();
        while times.len() < 2 {
            let mut line = String::new();
            std::io::BufRead::read_line(r, &mut line).unwrap();
            if let Some(t) = line.strip_prefix("data: ") {
                times.push(t.trim().parse::<u64>().unwrap());
            }
        }
        assert!(times[1] >= times[0] && times[1] - times[0] <= 2, "{times:?}");
    }
    for mut ws in sockets {
        ws.close(None).unwrap();
    }
    drop(streams);
    assert_eq!(counter_until(&s.dir.join("n"), "MAIN.s_handoff", 5), 5);
    let _ = std::fs::remove_dir_all(&d);
}

/// The routes `bench/handoff.sh` measures, both ways through one
/// Lacquer: the same handoff-echo process is the backend of a pass (its
/// `--http` listener) and receives handed-off connections.
#[test]
fn the_same_application_answers_proxied_and_handed_off() {
    use std::io::BufRead;
    let d = scratch();
    let sock = d.join("app.sock");
    let mut app = Command::new(echo_binary())
        .args(["--socket", &sock.display().to_string(), "--http", "127.0.0.1:0", "--interval-ms", "0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = std::io::BufReader::new(app.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let http = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(line.contains("serving HTTP on 127.0.0.1:"), "{line}");
    let s = start(
        Some(&vcl(
            &http,
            &format!(
                r#"import handoff;
sub vcl_init {{ new app = handoff.endpoint(path = "{}"); }}
sub vcl_recv {{
    if (req.url ~ "[?&]via=handoff") {{ app.transfer(); }}
    return (pass);
}}
"#,
                sock.display()
            ),
        )),
        &[],
    );
    for via in ["", "&via=handoff"] {
        let req = format!("GET /download?bytes=300000{via} HTTP/1.1\r\nHost: x\r\n\r\n");
        let (head, body) = request(&s, req.as_bytes());
        assert!(head.starts_with("HTTP/1.1 200"), "{via}: {head}");
        assert_eq!(body.len(), 300_000, "{via}");
        assert!(body.iter().all(|&b| b == b'x'), "{via}");
        // A burst of events, then the end of the stream.
        let (mut c, mut r) = connect(&s);
        c.write_all(format!("GET /events?count=5{via} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        let head = read_head(&mut r).unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{via}: {head}");
        let mut events = 0;
        let mut line = String::new();
        while events < 5 {
            line.clear();
            assert!(r.read_line(&mut line).unwrap() > 0, "{via}: the stream ended after {events} events");
            events += usize::from(line.contains("data: "));
        }
    }
    assert_eq!(counter_until(&s.dir.join("n"), "MAIN.s_handoff", 2), 2);
    let _ = app.kill();
    let _ = app.wait();
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn the_process_is_started_on_first_use_and_again_when_it_died() {
    let d = scratch();
    let (o, _) = origin();
    let sock = d.join("echo.sock");
    let s = start(Some(&echo_vcl(&o, &sock)), &[]);
    assert!(!sock.exists(), "not started before it is needed");
    let (head, body) = request(&s, b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let first = text(&body);
    // Kill that one process (by its id), and the next transfer starts
    // another.
    let st = Command::new("kill").arg(&first).status().unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(200));
    let (head, body) = request(&s, b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_ne!(text(&body), first, "a new process");
    let _ = std::fs::remove_dir_all(&d);
}

/// The same websocket client, both ways through one Lacquer: `/pipe/…`
/// the Varnish way (`return (pipe)` with the upgrade headers copied, to a
/// websocket origin), `/ws` handed off to handoff-echo.
#[test]
fn websockets_work_through_pipe_and_through_handoff_side_by_side() {
    use std::net::TcpListener;
    use tungstenite::Message;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let o = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            std::thread::spawn(move || {
                let Ok(mut ws) = tungstenite::accept(s) else { return };
                while let Ok(m @ (Message::Text(_) | Message::Binary(_))) = ws.read() {
                    if ws.send(m).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let d = scratch();
    let sock = d.join("echo.sock");
    let subs = format!(
        r#"import handoff;
sub vcl_init {{
    new echo = handoff.endpoint(path = "{sock}", command = "exec {bin} --socket {sock}");
}}
sub vcl_recv {{
    if (req.url ~ "^/pipe/" && req.http.upgrade ~ "(?i)websocket") {{
        return (pipe);
    }}
    if (req.url ~ "^/ws") {{
        echo.transfer();
    }}
}}
sub vcl_pipe {{
    if (req.http.upgrade) {{
        set bereq.http.upgrade = req.http.upgrade;
        set bereq.http.connection = req.http.connection;
    }}
}}
"#,
        sock = sock.display(),
        bin = echo_binary().display()
    );
    let s = start(Some(&vcl(&o, &subs)), &[]);
    let mut both: Vec<_> = ["/pipe/ws", "/ws"]
        .iter()
        .map(|p| {
            let (ws, resp) = tungstenite::connect(format!("ws://{}{p}", s.addr)).expect("the upgrade");
            assert_eq!(resp.status(), 101, "{p}");
            ws
        })
        .collect();
    for round in 0..3 {
        for ws in both.iter_mut() {
            ws.send(Message::Text(format!("round {round}"))).unwrap();
        }
        for ws in both.iter_mut() {
            assert_eq!(ws.read().unwrap(), Message::Text(format!("round {round}")));
        }
    }
    for mut ws in both {
        ws.close(None).unwrap();
    }
    let dir = s.dir.join("n");
    assert_eq!(counter_until(&dir, "MAIN.s_pipe", 1), 1);
    assert_eq!(counter_until(&dir, "MAIN.s_handoff", 1), 1);
    let _ = std::fs::remove_dir_all(&d);
}
