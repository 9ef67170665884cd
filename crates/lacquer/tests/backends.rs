//! Backends through real sockets: health probes, `.max_connections`, the
//! backend timeouts, `return (retry)` and Unix socket backends. Each test
//! starts the built binary with an origin made here from std threads whose
//! answers the test can switch, and checks what the origin saw as well as
//! what the client got. Probes poll every 0.1–0.5 s; every wait on them is
//! a poll with a deadline of a few seconds, never a fixed sleep.

mod common;

use common::*;
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long a test waits for probes to change a backend's health.
const HEALTH_WAIT: Duration = Duration::from_secs(5);

/// An origin on 127.0.0.1 that reads each request head (and body) and lets
/// `answer` write the response; `answer` says whether to keep the
/// connection for another request, and the connection closes when it says
/// no. Answers the origin's address.
fn origin_with(answer: impl Fn(&str, &mut TcpStream) -> bool + Send + Sync + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let answer = Arc::new(answer);
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let answer = answer.clone();
            thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                while let Some(head) = read_head(&mut r) {
                    read_body(&mut r, &head);
                    if !answer(&head, &mut w) {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Writes a response with a body; answers whether that worked.
fn reply(w: &mut impl Write, status: u16, body: &str) -> bool {
    let resp = format!("HTTP/1.1 {status} Whatever\r\nContent-Length: {}\r\n\r\n{body}", body.len());
    w.write_all(resp.as_bytes()).is_ok()
}

/// The request line's URL.
fn url(head: &str) -> &str {
    head.split(' ').nth(1).unwrap_or("")
}

/// A backend declaration for `origin` with extra fields.
fn backend(name: &str, origin: &str, fields: &str) -> String {
    let (h, p) = origin.rsplit_once(':').unwrap();
    format!("backend {name} {{ .host = \"{h}\"; .port = \"{p}\"; {fields} }}\n")
}

/// Calls `f` until it answers true or `within` has passed; answers
/// whether it did.
fn until(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The status of a response head.
fn status(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// A GET of `path`: (status, body).
fn get(s: &Server, path: &str) -> (u16, String) {
    let (head, body) = request(s, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    (status(&head), text(&body))
}

#[test]
fn a_sick_backend_gets_no_traffic_until_its_probe_is_good_again() {
    let probe_status = Arc::new(AtomicU16::new(200));
    let (probes, hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let probe_head = Arc::new(Mutex::new(String::new()));
    let o = {
        let (probe_status, probes, hits, probe_head) =
            (probe_status.clone(), probes.clone(), hits.clone(), probe_head.clone());
        origin_with(move |head, w| {
            if url(head) == "/probe" {
                *probe_head.lock().unwrap() = head.to_string();
                probes.fetch_add(1, Ordering::SeqCst);
                reply(w, probe_status.load(Ordering::SeqCst), "");
                return false;
            }
            hits.fetch_add(1, Ordering::SeqCst);
            reply(w, 200, "hello")
        })
    };
    let probe = ".probe = { .url = \"/probe\"; .interval = 0.1s; .timeout = 1s; .window = 3; .threshold = 2; \
                 .initial = 2; }";
    let vcl = format!("vcl 4.1;\n{}sub vcl_recv {{ return (pass); }}\n", backend("default", &o, probe));
    let s = start(Some(&vcl), &[]);

    assert_eq!(get(&s, "/"), (200, "hello".into()), ".initial = .threshold starts healthy");
    assert!(until(HEALTH_WAIT, || probes.load(Ordering::SeqCst) >= 1), "the probe polls");
    let h = o.rsplit_once(':').unwrap().0;
    assert_eq!(
        *probe_head.lock().unwrap(),
        format!("GET /probe HTTP/1.1\r\nHost: {h}\r\nConnection: close\r\n"),
        "Varnish's default probe request"
    );

    probe_status.store(500, Ordering::SeqCst);
    assert!(until(HEALTH_WAIT, || get(&s, "/").0 == 503), "two bad polls make the backend sick");
    let (hits_when_sick, probes_when_sick) = (hits.load(Ordering::SeqCst), probes.load(Ordering::SeqCst));
    for _ in 0..3 {
        let (head, _) = request(&s, b"GET /again HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 503 Backend fetch failed\r\n"), "{head}");
    }
    assert!(until(HEALTH_WAIT, || probes.load(Ordering::SeqCst) >= probes_when_sick + 2), "still polled when sick");
    assert_eq!(hits.load(Ordering::SeqCst), hits_when_sick, "a sick backend is not connected to");

    probe_status.store(200, Ordering::SeqCst);
    assert!(until(HEALTH_WAIT, || get(&s, "/").0 == 200), "good polls make it healthy again");
    assert!(hits.load(Ordering::SeqCst) > hits_when_sick);
}

#[test]
fn initial_threshold_and_window_decide_health() {
    let probes = Arc::new(Mutex::new(std::collections::HashMap::<String, usize>::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let o = {
        let (probes, hits) = (probes.clone(), hits.clone());
        origin_with(move |head, w| {
            if let Some(which) = url(head).strip_prefix("/probe-") {
                *probes.lock().unwrap().entry(which.to_string()).or_default() += 1;
                reply(w, if which == "a" { 200 } else { 500 }, "");
                return false;
            }
            hits.fetch_add(1, Ordering::SeqCst);
            reply(w, 200, url(head))
        })
    };
    let count = |which: &str| probes.lock().unwrap().get(which).copied().unwrap_or(0);
    // `a` answers its probe well but starts with no good poll and needs
    // three; `b` fails every poll but starts with three good ones, which
    // take six bad polls to leave its window of eight.
    let a = ".probe = { .url = \"/probe-a\"; .interval = 0.5s; .initial = 0; .threshold = 3; .window = 3; }";
    let b = ".probe = { .url = \"/probe-b\"; .interval = 0.2s; .initial = 3; .threshold = 3; .window = 8; }";
    let vcl = format!(
        "vcl 4.1;\n{}{}sub vcl_recv {{ if (req.url ~ \"^/a\") {{ set req.backend_hint = a; }} \
         else {{ set req.backend_hint = b; }} return (pass); }}\n",
        backend("a", &o, a),
        backend("b", &o, b)
    );
    let s = start(Some(&vcl), &[]);

    assert_eq!(get(&s, "/b"), (200, "/b".into()), "three initial good polls: healthy at once");
    assert_eq!(get(&s, "/a").0, 503, ".initial = 0 starts sick");
    assert_eq!(hits.load(Ordering::SeqCst), 1, "only /b reached the origin");
    assert!(until(HEALTH_WAIT, || get(&s, "/a").0 == 200), "three good polls make `a` healthy");
    assert!(count("a") >= 3, "healthy after {} polls, before the threshold of 3", count("a"));
    assert!(until(HEALTH_WAIT, || get(&s, "/b").0 == 503), "`b` goes sick");
    assert!(count("b") >= 6, "sick after {} bad polls, before the initial ones left the window", count("b"));
}

#[test]
fn a_custom_probe_request_is_sent_verbatim_and_expected_response_decides() {
    let probe_status = Arc::new(AtomicU16::new(200));
    let (probes, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(String::new())));
    let o = {
        let (probe_status, probes, seen) = (probe_status.clone(), probes.clone(), seen.clone());
        origin_with(move |head, w| {
            if head.starts_with("OPTIONS ") {
                *seen.lock().unwrap() = head.to_string();
                probes.fetch_add(1, Ordering::SeqCst);
                let _ = w.write_all(format!("HTTP/1.1 {} X\r\n\r\n", probe_status.load(Ordering::SeqCst)).as_bytes());
                return false;
            }
            reply(w, 200, "hi")
        })
    };
    let probe = ".probe = { .request = \"OPTIONS /custom HTTP/1.1\" \"Host: probe.example\" \"X-Probe: yes\" \
                 \"Connection: close\"; .expected_response = 204; .interval = 0.1s; .initial = 0; \
                 .threshold = 1; .window = 1; }";
    let vcl = format!("vcl 4.1;\n{}sub vcl_recv {{ return (pass); }}\n", backend("default", &o, probe));
    let s = start(Some(&vcl), &[]);

    assert!(until(HEALTH_WAIT, || probes.load(Ordering::SeqCst) >= 2));
    assert_eq!(get(&s, "/").0, 503, "200 is not the expected 204");
    assert_eq!(
        *seen.lock().unwrap(),
        "OPTIONS /custom HTTP/1.1\r\nHost: probe.example\r\nX-Probe: yes\r\nConnection: close\r\n"
    );
    probe_status.store(204, Ordering::SeqCst);
    assert!(until(HEALTH_WAIT, || get(&s, "/") == (200, "hi".into())), "204 makes it healthy");
}

#[test]
fn max_connections_refuses_the_second_concurrent_fetch_at_once() {
    let (hits, busy) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let o = {
        let (hits, busy) = (hits.clone(), busy.clone());
        origin_with(move |head, w| {
            hits.fetch_add(1, Ordering::SeqCst);
            if url(head) == "/slow" {
                busy.fetch_add(1, Ordering::SeqCst);
                thread::sleep(Duration::from_millis(1000));
                busy.fetch_sub(1, Ordering::SeqCst);
            }
            reply(w, 200, "done")
        })
    };
    let vcl =
        format!("vcl 4.1;\n{}sub vcl_recv {{ return (pass); }}\n", backend("default", &o, ".max_connections = 1;"));
    let s = Arc::new(start(Some(&vcl), &[]));
    let first = {
        let s = s.clone();
        thread::spawn(move || get(&s, "/slow"))
    };
    assert!(until(HEALTH_WAIT, || busy.load(Ordering::SeqCst) == 1), "the first fetch reaches the origin");
    let t = Instant::now();
    assert_eq!(get(&s, "/slow").0, 503, "the second finds the backend busy");
    assert!(t.elapsed() < Duration::from_millis(700), "without waiting: {:?}", t.elapsed());
    assert_eq!(first.join().unwrap(), (200, "done".into()));
    assert_eq!(hits.load(Ordering::SeqCst), 1, "the busy fetch never reached the origin");
    // The connection went back to the pool, where it does not count.
    assert_eq!(get(&s, "/fast"), (200, "done".into()));
    assert_eq!(get(&s, "/fast"), (200, "done".into()));
}

#[test]
fn first_byte_and_between_bytes_timeouts_of_the_backend() {
    let o = origin_with(|head, w| match url(head) {
        "/first-byte" => {
            thread::sleep(Duration::from_millis(1500));
            reply(w, 200, "late")
        }
        "/between-bytes" => {
            let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello");
            let _ = w.flush();
            thread::sleep(Duration::from_millis(1500));
            let _ = w.write_all(b"world");
            false
        }
        _ => reply(w, 200, "quick"),
    });
    let fields = ".first_byte_timeout = 0.3s; .between_bytes_timeout = 0.3s;";
    let vcl = format!("vcl 4.1;\n{}sub vcl_recv {{ return (pass); }}\n", backend("default", &o, fields));
    let s = start(Some(&vcl), &[]);

    assert_eq!(get(&s, "/quick"), (200, "quick".into()));
    let t = Instant::now();
    assert_eq!(get(&s, "/first-byte").0, 503);
    assert!(t.elapsed() < Duration::from_millis(1200), "the backend's .first_byte_timeout: {:?}", t.elapsed());

    // Varnish sends the head of a passed response before the body; a
    // backend that stalls mid-body gets the client connection closed with
    // the body cut short.
    let (mut c, mut r) = connect(&s);
    c.write_all(b"GET /between-bytes HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let t = Instant::now();
    let head = read_head(&mut r).unwrap();
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(header(&head, "content-length").as_deref(), Some("10"));
    let mut body = Vec::new();
    r.read_to_end(&mut body).unwrap();
    assert!(body.len() < 10, "the body is cut short: {:?}", text(&body));
    assert!(t.elapsed() < Duration::from_millis(1200), "closed after .between_bytes_timeout: {:?}", t.elapsed());
}

#[test]
fn retry_counts_in_bereq_retries_and_stops_at_max_retries() {
    let hits = Arc::new(AtomicUsize::new(0));
    let o = {
        let hits = hits.clone();
        origin_with(move |_, w| {
            let n = hits.fetch_add(1, Ordering::SeqCst);
            reply(w, 200, &format!("try {n}"))
        })
    };
    let vcl = format!(
        "vcl 4.1;\n{}sub vcl_recv {{ return (pass); }}\n\
         sub vcl_backend_response {{ if (bereq.retries < 2) {{ return (retry); }} \
         set beresp.http.X-Retries = bereq.retries; }}\n\
         sub vcl_backend_error {{ set beresp.http.X-Retries = bereq.retries; }}\n",
        backend("default", &o, "")
    );
    let s = start(Some(&vcl), &[]);
    let (head, body) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status(&head), 200, "{head}");
    assert_eq!(header(&head, "x-retries").as_deref(), Some("2"));
    assert_eq!(text(&body), "try 2");
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    drop(s);

    hits.store(0, Ordering::SeqCst);
    let s = start(Some(&vcl), &["-p", "max_retries=1"]);
    let (head, _) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status(&head), 503, "too many retries: {head}");
    // Varnish counts the refused retry too: `bo->retries++ < max_retries`.
    assert_eq!(header(&head, "x-retries").as_deref(), Some("2"), "{head}");
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the first try and one retry");
}

#[test]
fn a_backend_on_a_unix_socket() {
    let dir = scratch();
    let path = dir.join("origin.sock");
    let l = UnixListener::bind(&path).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    {
        let seen = seen.clone();
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let seen = seen.clone();
                thread::spawn(move || {
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    while let Some(head) = read_head(&mut r) {
                        read_body(&mut r, &head);
                        seen.lock().unwrap().push(head.clone());
                        if !reply(&mut w, 200, &format!("unix {}", url(&head))) {
                            return;
                        }
                    }
                });
            }
        });
    }
    let vcl =
        format!("vcl 4.1;\nbackend default {{ .path = \"{}\"; }}\nsub vcl_recv {{ return (pass); }}\n", path.display());
    let s = start(Some(&vcl), &[]);
    assert_eq!(get(&s, "/u1"), (200, "unix /u1".into()));
    assert_eq!(get(&s, "/u2"), (200, "unix /u2".into()));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].starts_with("GET /u1 HTTP/1.1\r\n"), "{}", seen[0]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn host_header_fills_in_a_missing_host() {
    let o = origin_with(|head, w| {
        let host = header(head, "host").unwrap_or_else(|| "(none)".into());
        reply(w, 200, &host)
    });
    let vcl = format!(
        "vcl 4.1;\n{}sub vcl_recv {{ return (pass); }}\n",
        backend("default", &o, ".host_header = \"origin.example\";")
    );
    let s = start(Some(&vcl), &[]);
    // An HTTP/1.0 request may come without Host: the backend's stands in.
    let (_, body) = request(&s, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(text(&body), "origin.example");
    // A client's own Host goes through unchanged.
    let (_, body) = request(&s, b"GET / HTTP/1.1\r\nHost: mine.example\r\n\r\n");
    assert_eq!(text(&body), "mine.example");
}
