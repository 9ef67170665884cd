//! `lacquer serve` through real sockets: each test starts the built binary
//! on 127.0.0.1 port 0, with an origin server made here from std threads,
//! talks HTTP to it, and kills only the child it started.

mod common;

use common::*;
use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, TcpListener};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[test]
fn pass_get_and_post_with_content_length_and_chunked() {
    let (o, seen) = origin();
    let s = start(
        Some(&vcl(&o, "sub vcl_recv { return (pass); }\nsub vcl_deliver { set resp.http.X-Deliver = \"yes\"; }")),
        &[],
    );
    let (head, body) =
        request(&s, b"GET /a?b HTTP/1.1\r\nHost: example\r\nConnection: keep-alive, X-Foo\r\nX-Foo: 1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(text(&body), "GET /a?b xff=127.0.0.1 body=");
    assert_eq!(header(&head, "x-deliver").as_deref(), Some("yes"));
    assert_eq!(header(&head, "x-origin").as_deref(), Some("yes"));
    assert!(header(&head, "x-varnish").is_some_and(|v| v.parse::<u64>().is_ok()), "{head}");
    assert_eq!(header(&head, "via").as_deref(), Some("1.1 lacquer (Lacquer/0.1)"));
    assert_eq!(header(&head, "age").as_deref(), Some("0"));
    assert!(header(&head, "date").is_some());
    assert_eq!(header(&head, "connection").as_deref(), Some("keep-alive"));
    assert_eq!(header(&head, "x-hop"), None, "a header named in Connection is hop-by-hop");
    {
        let seen = seen.lock().unwrap();
        let bereq = seen.last().unwrap();
        assert_eq!(header(bereq, "x-foo"), None, "{bereq}");
        assert_eq!(header(bereq, "host").as_deref(), Some("example"));
        assert!(header(bereq, "x-varnish").is_some());
    }

    let (head, body) = request(&s, b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(text(&body), "POST /p xff=127.0.0.1 body=hello");

    let (head, body) = request(
        &s,
        b"POST /c HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(text(&body), "POST /c xff=10.0.0.1, 127.0.0.1 body=abcde");
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let (o, _) = origin();
    let s = start(None, &["-b", &o]);
    let (mut c, mut r) = connect(&s);
    c.write_all(b"PUT /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n").unwrap();
    let interim = read_head(&mut r).unwrap();
    assert!(interim.starts_with("HTTP/1.1 100 Continue"), "{interim}");
    c.write_all(b"ok").unwrap();
    let head = read_head(&mut r).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(text(&read_body(&mut r, &head)), "PUT /e xff=127.0.0.1 body=ok");
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let (o, _, conns) = counting_origin();
    let s = start(None, &["-b", &o]);
    let (mut c, mut r) = connect(&s);
    for path in ["/one", "/two"] {
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
        let head = read_head(&mut r).unwrap();
        assert_eq!(header(&head, "connection").as_deref(), Some("keep-alive"));
        assert_eq!(text(&read_body(&mut r, &head)), format!("GET {path} xff=127.0.0.1 body="));
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1, "the backend connection is reused");
    // HTTP/1.0 without keep-alive: answered, then closed.
    c.write_all(b"GET /three HTTP/1.0\r\n\r\n").unwrap();
    let head = read_head(&mut r).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "connection").as_deref(), Some("close"));
    read_body(&mut r, &head);
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap(), 0);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (o, _) = origin();
    let s = start(None, &["-b", &o]);
    let (mut c, mut r) = connect(&s);
    c.write_all(b"GET /p1 HTTP/1.1\r\nHost: x\r\n\r\nGET /p2 HTTP/1.1\r\nHost: x\r\n\r\nGET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    for p in ["/p1", "/p2", "/p3"] {
        let head = read_head(&mut r).unwrap();
        assert_eq!(text(&read_body(&mut r, &head)), format!("GET {p} xff=127.0.0.1 body="));
    }
    let mut rest = Vec::new();
    assert_eq!(r.read_to_end(&mut rest).unwrap(), 0, "Connection: close closes");
}

#[test]
fn synth_from_recv_with_a_custom_body_and_the_builtin_400() {
    let (o, _) = origin();
    let s = start(
        Some(&vcl(
            &o,
            "sub vcl_recv { if (req.url == \"/teapot\") { return (synth(418, \"Teapot\")); } }\n\
             sub vcl_synth { if (resp.status == 418) { set resp.http.Content-Type = \"text/plain\"; \
             synthetic(\"short and \" + \"stout\"); return (deliver); } }",
        )),
        &[],
    );
    let (head, body) = request(&s, b"GET /teapot HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 418 Teapot\r\n"), "{head}");
    assert_eq!(text(&body), "short and stout");
    assert_eq!(header(&head, "content-type").as_deref(), Some("text/plain"));
    assert!(header(&head, "x-varnish").is_some());

    let (head, body) = request(&s, b"GET / HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert!(text(&body).contains("<h1>Error 400 Bad Request</h1>"), "{}", text(&body));
    assert_eq!(header(&head, "retry-after").as_deref(), Some("5"));
}

#[test]
fn restart_loop_ends_in_503_after_max_restarts() {
    let (o, _) = origin();
    let s = start(
        Some(&vcl(
            &o,
            "sub vcl_recv { return (restart); }\nsub vcl_synth { set resp.http.X-Restarts = req.restarts; }",
        )),
        &["-p", "max_restarts=2"],
    );
    let (head, body) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{head}");
    assert_eq!(header(&head, "x-restarts").as_deref(), Some("3"));
    assert!(text(&body).contains("Error 503"));
}

#[test]
fn backend_down_gives_503_from_vcl_backend_error() {
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let s = start(None, &["-b", &closed]);
    let (head, body) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503 Backend fetch failed\r\n"), "{head}");
    assert!(text(&body).contains("<title>503 Backend fetch failed</title>"), "{}", text(&body));
}

#[test]
fn return_fail_gives_503_and_closes() {
    let (o, _) = origin();
    let s = start(Some(&vcl(&o, "sub vcl_recv { return (fail); }")), &[]);
    let (head, _) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503 VCL failed\r\n"), "{head}");
    assert_eq!(header(&head, "connection").as_deref(), Some("close"));
}

#[test]
fn malformed_request_gets_400_and_the_connection_closes() {
    let (o, _) = origin();
    let s = start(None, &["-b", &o]);
    for raw in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nBad: a\x01b\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"GET / HTTP/9.9\r\n\r\n",
    ] {
        let (mut c, mut r) = connect(&s);
        c.write_all(raw).unwrap();
        let mut all = Vec::new();
        r.read_to_end(&mut all).unwrap();
        assert_eq!(text(&all), "HTTP/1.1 400 Bad Request\r\n\r\n");
    }
}

#[test]
fn pipe_carries_arbitrary_bytes_both_ways() {
    // An origin that accepts an upgrade and then echoes every byte, each
    // one plus one.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let o = l.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(String::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        *seen.lock().unwrap() = read_head(&mut r).unwrap();
        w.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").unwrap();
        let mut b = [0u8; 256];
        while let Ok(n) = r.read(&mut b) {
            if n == 0 {
                break;
            }
            let out: Vec<u8> = b[..n].iter().map(|x| x.wrapping_add(1)).collect();
            w.write_all(&out).unwrap();
        }
        let _ = w.shutdown(Shutdown::Write);
    });
    let s = start(
        Some(&vcl(
            &o,
            "sub vcl_recv { if (req.http.upgrade) { return (pipe); } }\n\
             sub vcl_pipe { if (req.http.upgrade) { set bereq.http.upgrade = req.http.upgrade; \
             set bereq.http.connection = req.http.connection; } }",
        )),
        &[],
    );
    let (mut c, mut r) = connect(&s);
    c.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n").unwrap();
    let head = read_head(&mut r).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let bytes: Vec<u8> = (0u8..=255).collect();
    c.write_all(&bytes).unwrap();
    let mut back = vec![0u8; 256];
    r.read_exact(&mut back).unwrap();
    assert_eq!(back, bytes.iter().map(|x| x.wrapping_add(1)).collect::<Vec<_>>());
    c.shutdown(Shutdown::Write).unwrap();
    let mut rest = Vec::new();
    r.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let bereq = got.lock().unwrap().clone();
    assert_eq!(header(&bereq, "upgrade").as_deref(), Some("websocket"), "{bereq}");
    assert_eq!(header(&bereq, "connection").as_deref(), Some("Upgrade"));
    assert!(header(&bereq, "x-varnish").is_some());
}

#[test]
fn sigterm_stops_the_server_with_status_0() {
    let (o, _) = origin();
    let mut s = start(None, &["-b", &o]);
    let (head, _) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"));
    let st = Command::new("kill").arg("-TERM").arg(s.child.id().to_string()).status().unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(8), "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_vcl_and_bad_parameters_refuse_to_start() {
    let dir = scratch();
    let f = dir.join("bad.vcl");
    std::fs::write(
        &f,
        "vcl 4.1;\nbackend b { .host = \"127.0.0.1\"; }\nsub vcl_recv { set req.http.x = beresp.ttl; }\n",
    )
    .unwrap();
    let out = Command::new(LACQUER).args(["serve", "-a", "127.0.0.1:0", "-f"]).arg(&f).output().unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("Not available in subroutine 'vcl_recv'."), "{err}");

    let out = Command::new(LACQUER)
        .args(["serve", "-a", "127.0.0.1:0", "-b", "127.0.0.1:1", "-p", "no_such=1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Unknown parameter \"no_such\"."), "{}", text(&out.stderr));
    let out = Command::new(LACQUER)
        .args(["serve", "-a", "127.0.0.1:0", "-b", "127.0.0.1:1", "-p", "max_restarts=lots"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("Not a number (lots)"), "{}", text(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_demo_serves_its_site_through_the_fs_module_and_the_cache() {
    let mut cmd = Command::new(LACQUER);
    cmd.args(["demo", "-a", "127.0.0.1:0"]);
    let srv = launch(cmd, scratch());
    let get = |url: &str| {
        let raw = format!("GET {url} HTTP/1.1\r\nHost: demo\r\nUser-Agent: <test>\r\n\r\n");
        let (head, body) = request(&srv, raw.as_bytes());
        (head, String::from_utf8(body).unwrap())
    };
    let (head, body) = get("/");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert_eq!(header(&head, "x-cache").as_deref(), Some("MISS"), "{head}");
    assert!(body.contains("Lacquer is running"), "{body}");
    let site = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/site/index.html")).unwrap();
    assert_eq!(body, site, "the file, as it is");
    let (head, _) = get("/");
    assert_eq!(header(&head, "x-cache").as_deref(), Some("HIT (1)"), "{head}");
    let (head, _) = get("/docs");
    assert!(head.starts_with("HTTP/1.1 301"), "{head}");
    let (head, body) = get("/request");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(body.contains("Made by VCL") && body.contains("GET /request"), "{body}");
    assert!(body.contains("user agent: test"), "markup is stripped from the user agent: {body}");
}

/// An origin that takes one request, reads its head, and reports each
/// piece of body it reads (as raw wire bytes) on a channel before reading
/// more; when the body is complete (by length or the last chunk) it
/// answers 200 with the body bytes it got.
fn piecewise_origin() -> (String, std::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut w = s.try_clone().unwrap();
        let mut r = BufReader::new(s);
        let head = read_head(&mut r).unwrap();
        tx.send(head.clone()).unwrap();
        let len: Option<usize> = header(&head, "content-length").map(|v| v.parse().unwrap());
        let mut got = Vec::new();
        loop {
            let mut b = [0u8; 4096];
            let n = r.read(&mut b).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&b[..n]);
            tx.send(String::from_utf8_lossy(&b[..n]).into_owned()).unwrap();
            if len == Some(got.len()) || (len.is_none() && got.ends_with(b"0\r\n\r\n")) {
                break;
            }
        }
        let resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", got.len());
        w.write_all(resp.as_bytes()).unwrap();
        w.write_all(&got).unwrap();
    });
    (addr, rx)
}

#[test]
fn request_bodies_stream_to_the_backend_as_they_arrive() {
    for chunked in [false, true] {
        let (o, pieces) = piecewise_origin();
        let s = start(Some(&vcl(&o, "sub vcl_recv { return (pass); }")), &[]);
        let (mut c, mut r) = connect(&s);
        let framing = if chunked { "Transfer-Encoding: chunked" } else { "Content-Length: 10" };
        let (first, second) = if chunked { ("5\r\nhello\r\n", "5\r\nworld\r\n0\r\n\r\n") } else { ("hello", "world") };
        c.write_all(format!("POST /up HTTP/1.1\r\nHost: x\r\n{framing}\r\n\r\n{first}").as_bytes()).unwrap();
        let bereq = pieces.recv_timeout(WAIT).expect("the backend request head");
        assert_eq!(header(&bereq, "content-length").as_deref(), (!chunked).then_some("10"), "{bereq}");
        assert_eq!(header(&bereq, "transfer-encoding").as_deref(), chunked.then_some("chunked"), "{bereq}");
        // The first half reaches the backend while the client still holds
        // the second: the body is not buffered whole.
        let mut got = String::new();
        while !got.contains("hello") {
            got += &pieces.recv_timeout(WAIT).expect("the first half of the body, before the rest is sent");
        }
        assert!(!got.contains("world"), "{got}");
        c.write_all(second.as_bytes()).unwrap();
        let head = read_head(&mut r).expect("a response");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let body = text(&read_body(&mut r, &head));
        assert_eq!(body, format!("{first}{second}"), "chunked={chunked}");
    }
}

#[test]
fn a_small_body_at_hand_is_sent_again_on_retry() {
    let (o, seen) = origin();
    let s = start(
        Some(&vcl(
            &o,
            "sub vcl_recv { return (pass); }
             sub vcl_backend_response {
                 if (bereq.retries < 1) { return (retry); }
                 set beresp.http.retries = bereq.retries;
             }",
        )),
        &[],
    );
    let (head, body) = request(&s, b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "retries").as_deref(), Some("1"), "{head}");
    assert_eq!(text(&body), "POST /p xff=127.0.0.1 body=hello");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn a_streamed_body_cannot_be_retried() {
    let (o, pieces) = piecewise_origin();
    let s = start(Some(&vcl(&o, "sub vcl_recv { return (pass); }\nsub vcl_backend_response { return (retry); }")), &[]);
    let (mut c, mut r) = connect(&s);
    c.write_all(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello").unwrap();
    pieces.recv_timeout(WAIT).expect("the backend request head");
    c.write_all(b"world").unwrap();
    let head = read_head(&mut r).expect("a response");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
}

#[test]
fn storage_arguments_name_the_stores_vcl_can_use() {
    let uses_big = "vcl 4.1;\nbackend default none;\nsub vcl_backend_response { set beresp.storage = storage.big; }\n";
    let s = start(Some(uses_big), &["-s", "big=malloc,10M"]);
    let (head, _) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    drop(s);

    let dir = scratch();
    let f = dir.join("t.vcl");
    std::fs::write(&f, uses_big).unwrap();
    let out = Command::new(LACQUER).args(["serve", "-a", "127.0.0.1:0", "-f"]).arg(&f).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Symbol not found: 'storage.big'"), "{out:?}");
    for (arg, msg) in [("foo", "Unknown storage method \"foo\""), ("malloc,1k", "too small")] {
        let out = Command::new(LACQUER).args(["serve", "-a", "127.0.0.1:0", "-f"]).arg(&f).args(["-s", arg]).output();
        let err = String::from_utf8_lossy(&out.unwrap().stderr).into_owned();
        assert!(err.contains(msg), "-s {arg}: {err}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// An origin whose every response is an endless chunked body; it counts
/// the responses it had to stop because the other end went away.
fn endless_origin() -> (String, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let cut = Arc::new(AtomicUsize::new(0));
    let count = cut.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = read_head(&mut BufReader::new(s));
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
                let chunk = format!("{:x}\r\n{}\r\n", 65536, "x".repeat(65536));
                while w.write_all(chunk.as_bytes()).is_ok() {}
                count.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, cut)
}

#[test]
fn a_client_that_stops_reading_is_dropped_after_send_timeout() {
    for (subs, args) in [
        ("sub vcl_recv { return (pass); }", &["-p", "send_timeout=1", "-p", "idle_send_timeout=0.2"][..]),
        (
            "sub vcl_recv { return (pass); }
             sub vcl_deliver { set sess.send_timeout = 1s; set sess.idle_send_timeout = 0.2s; }",
            &[],
        ),
    ] {
        let (o, cut) = endless_origin();
        let s = start(Some(&vcl(&o, subs)), args);
        let (mut c, _r) = connect(&s);
        c.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        // The client reads nothing. Lacquer gives up on it, and so stops
        // reading the backend, whose writes then fail.
        let t0 = Instant::now();
        while cut.load(Ordering::SeqCst) == 0 {
            assert!(t0.elapsed() < Duration::from_secs(20), "the stalled response was never given up ({subs})");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn an_idle_pipe_is_closed_after_pipe_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let o = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        // Takes the piped request and says nothing more, holding the
        // connection open.
        let (s, _) = l.accept().unwrap();
        let _ = read_head(&mut BufReader::new(s.try_clone().unwrap()));
        std::thread::sleep(Duration::from_secs(30));
        drop(s);
    });
    let s = start(Some(&vcl(&o, "sub vcl_recv { return (pipe); }")), &["-p", "pipe_timeout=0.3"]);
    let (mut c, mut r) = connect(&s);
    c.write_all(b"GET /tunnel HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let t0 = Instant::now();
    let mut b = [0u8; 16];
    assert_eq!(r.read(&mut b).unwrap(), 0, "the tunnel closes");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
}

#[test]
fn without_streaming_a_body_cut_short_is_a_503_not_a_truncated_200() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let o = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for (i, s) in l.incoming().enumerate() {
            let Ok(s) = s else { return };
            std::thread::spawn(move || {
                let mut w = s.try_clone().unwrap();
                let _ = read_head(&mut BufReader::new(s));
                let _ = w.write_all(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nBaba\n");
                if i == 0 {
                    // The first answer stalls past between_bytes_timeout.
                    std::thread::sleep(Duration::from_secs(3));
                }
                let _ = w.write_all(b"Baba\n");
            });
        }
    });
    let (h, p) = o.rsplit_once(':').unwrap();
    let v = format!(
        "vcl 4.1;\nbackend default {{ .host = \"{h}\"; .port = \"{p}\"; .between_bytes_timeout = 0.3s; }}\n\
         sub vcl_backend_response {{ set beresp.do_stream = false; }}\n"
    );
    let s = start(Some(&v), &[]);
    let (head, _) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    let (head, body) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(header(&head, "content-length").as_deref(), Some("10"), "{head}");
    assert_eq!(text(&body), "Baba\nBaba\n");
}

#[test]
fn an_abandoned_fetch_is_a_503_for_the_client() {
    let (o, seen) = origin();
    for (sub, reaches_backend) in [("vcl_backend_response", true), ("vcl_backend_fetch", false)] {
        let s = start(Some(&vcl(&o, &format!("sub {sub} {{ return (abandon); }}"))), &[]);
        let before = seen.lock().unwrap().len();
        let (head, _) = request(&s, b"GET /gone HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 503"), "{sub}: {head}");
        assert_eq!(seen.lock().unwrap().len() - before, usize::from(reaches_backend), "{sub}");
    }
}
