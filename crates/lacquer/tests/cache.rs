//! The cache through real sockets: hits, coalesced misses, lifetimes,
//! Vary, hit-for-miss, grace, purge and eviction, each shown by what the
//! origin saw and what the client got.

mod common;

use common::*;
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// An origin whose answer to each URL is set by the test: extra header
/// lines, a body, and a delay before answering. It counts the requests
/// per URL, and `body` may contain `{n}` for the request's number.
/// What the origin answers a URL with: header lines, body, delay.
type Route = (String, String, Duration);

#[derive(Clone, Default)]
struct Origin {
    routes: Arc<Mutex<HashMap<String, Route>>>,
    seen: Arc<Mutex<HashMap<String, usize>>>,
    /// URLs whose requests are held until this many are in at once (for
    /// at most five seconds); their body then says `met`, else `alone`.
    gates: Arc<Mutex<HashMap<String, usize>>>,
    arrived: Arc<(Mutex<usize>, Condvar)>,
    /// Each request's If-None-Match, in order.
    inm: Arc<Mutex<Vec<Option<String>>>>,
}

impl Origin {
    fn start() -> (String, Origin) {
        let o = Origin::default();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let me = o.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(s) = s else { return };
                let me = me.clone();
                std::thread::spawn(move || {
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    while let Some(head) = read_head(&mut r) {
                        let _ = read_body(&mut r, &head);
                        let url = head.split(' ').nth(1).unwrap_or("").to_string();
                        let n = {
                            let mut seen = me.seen.lock().unwrap();
                            let c = seen.entry(url.clone()).or_insert(0);
                            *c += 1;
                            *c
                        };
                        let (hdrs, mut body, delay) = me.routes.lock().unwrap().get(&url).cloned().unwrap_or_default();
                        std::thread::sleep(delay);
                        let gate = me.gates.lock().unwrap().get(&url).copied();
                        if let Some(want) = gate {
                            let (lock, cv) = &*me.arrived;
                            let mut n = lock.lock().unwrap();
                            *n += 1;
                            cv.notify_all();
                            let (n, _) = cv.wait_timeout_while(n, Duration::from_secs(5), |n| *n < want).unwrap();
                            body = if *n >= want { "met".into() } else { "alone".into() };
                        }
                        let body = body.replace("{n}", &n.to_string());
                        let lang = header(&head, "accept-language").unwrap_or_default();
                        let body = body.replace("{lang}", &lang);
                        me.inm.lock().unwrap().push(header(&head, "if-none-match"));
                        // A revalidation that names the current ETag gets 304.
                        let etag = hdrs.lines().find_map(|l| l.strip_prefix("ETag: ")).map(str::to_string);
                        let resp = if etag.is_some() && header(&head, "if-none-match") == etag {
                            format!("HTTP/1.1 304 Not Modified\r\n{hdrs}\r\n")
                        } else {
                            format!("HTTP/1.1 200 OK\r\n{hdrs}Content-Length: {}\r\n\r\n{body}", body.len())
                        };
                        if w.write_all(resp.as_bytes()).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, o)
    }

    fn route(&self, url: &str, headers: &str, body: &str) {
        self.route_slow(url, headers, body, Duration::ZERO);
    }

    fn route_slow(&self, url: &str, headers: &str, body: &str, delay: Duration) {
        self.routes.lock().unwrap().insert(url.into(), (headers.into(), body.into(), delay));
    }

    fn gate(&self, url: &str, together: usize) {
        self.gates.lock().unwrap().insert(url.into(), together);
    }

    fn count(&self, url: &str) -> usize {
        self.seen.lock().unwrap().get(url).copied().unwrap_or(0)
    }
}

fn get(s: &Server, url: &str, extra: &str) -> (String, String) {
    let (head, body) = request(s, format!("GET {url} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes());
    (head, String::from_utf8_lossy(&body).into_owned())
}

#[test]
fn a_second_request_is_a_hit_with_both_transaction_ids_and_an_age() {
    let (o, origin) = Origin::start();
    origin.route("/a", "Cache-Control: max-age=60\r\nAge: 5\r\n", "body {n}");
    let s = start(Some(&vcl(&o, "")), &[]);
    let (h1, b1) = get(&s, "/a", "");
    let (h2, b2) = get(&s, "/a", "");
    assert_eq!((b1.as_str(), b2.as_str()), ("body 1", "body 1"));
    assert_eq!(origin.count("/a"), 1);
    let x1 = header(&h1, "x-varnish").unwrap();
    let x2 = header(&h2, "x-varnish").unwrap();
    assert_eq!(x1.split(' ').count(), 1, "a miss names one transaction: {x1}");
    let ids: Vec<u64> = x2.split(' ').map(|v| v.parse().unwrap()).collect();
    assert_eq!(ids.len(), 2, "a hit names the fetch too: {x2}");
    assert!(ids[1] > x1.parse::<u64>().unwrap(), "the fetch came after the first request");
    assert!(header(&h2, "age").unwrap().parse::<u64>().unwrap() >= 5, "{h2}");
    assert_eq!(header(&h2, "content-length").as_deref(), Some("6"));
}

#[test]
fn concurrent_misses_share_one_fetch_that_streams_to_all() {
    let (o, origin) = Origin::start();
    origin.route_slow("/slow", "Cache-Control: max-age=60\r\n", &"x".repeat(100_000), Duration::from_millis(400));
    let s = Arc::new(start(Some(&vcl(&o, "")), &[]));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || get(&s, "/slow", ""))
        })
        .collect();
    for c in clients {
        let (head, body) = c.join().unwrap();
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert_eq!(body.len(), 100_000);
    }
    assert_eq!(origin.count("/slow"), 1, "one backend fetch for eight clients");
}

#[test]
fn uncacheable_responses_become_hit_for_miss_and_do_not_serialise() {
    let (o, origin) = Origin::start();
    origin.route("/private", "Cache-Control: private\r\n", "mine {n}");
    let s = Arc::new(start(Some(&vcl(&o, "")), &[]));
    let (_, b) = get(&s, "/private", "");
    assert_eq!(b, "mine 1");
    // Now marked hit-for-miss: two at once both reach the backend at the
    // same time; had the second waited for the first, the origin would
    // have seen them one at a time.
    origin.gate("/private", 2);
    let both: Vec<_> = (0..2)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || get(&s, "/private", "").1)
        })
        .collect();
    let bodies: Vec<String> = both.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(bodies, ["met", "met"]);
    assert_eq!(origin.count("/private"), 3);
}

#[test]
fn lifetimes_come_from_the_response_and_vcl() {
    let (o, origin) = Origin::start();
    origin.route("/short", "Cache-Control: max-age=1\r\n", "v{n}");
    origin.route("/vcl", "", "v{n}");
    let s =
        start(Some(&vcl(&o, "sub vcl_backend_response { if (bereq.url == \"/vcl\") { set beresp.ttl = 0s; } }")), &[]);
    assert_eq!(get(&s, "/short", "").1, "v1");
    assert_eq!(get(&s, "/short", "").1, "v1");
    std::thread::sleep(Duration::from_millis(1300));
    // Past max-age, in default grace: the stale copy, and a refresh.
    assert_eq!(get(&s, "/short", "").1, "v1");
    let deadline = Instant::now() + Duration::from_secs(5);
    while origin.count("/short") < 2 {
        assert!(Instant::now() < deadline, "the background fetch never came");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(get(&s, "/short", "").1, "v2");
    // A TTL of 0 from VCL: every request fetches.
    assert_eq!(get(&s, "/vcl", "").1, "v1");
    assert_eq!(get(&s, "/vcl", "").1, "v2");
}

#[test]
fn vary_keeps_one_variant_per_header_value() {
    let (o, origin) = Origin::start();
    origin.route("/v", "Vary: Accept-Language\r\nCache-Control: max-age=60\r\n", "{lang}");
    let s = start(Some(&vcl(&o, "")), &[]);
    for _ in 0..2 {
        for lang in ["en", "fr"] {
            assert_eq!(get(&s, "/v", &format!("Accept-Language: {lang}\r\n")).1, lang);
        }
    }
    assert_eq!(origin.count("/v"), 2, "one fetch per variant");
}

#[test]
fn purge_and_hash_always_miss() {
    let (o, origin) = Origin::start();
    origin.route("/p", "Cache-Control: max-age=60\r\n", "v{n}");
    let subs = r#"
        sub vcl_recv {
            if (req.method == "PURGE") { return (purge); }
            if (req.http.x-refresh) { set req.hash_always_miss = true; }
        }
    "#;
    let s = start(Some(&vcl(&o, subs)), &[]);
    assert_eq!(get(&s, "/p", "").1, "v1");
    assert_eq!(get(&s, "/p", "").1, "v1");
    let (head, _) = request(&s, b"PURGE /p HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 Purged"), "{head}");
    assert_eq!(get(&s, "/p", "").1, "v2");
    assert_eq!(get(&s, "/p", "x-refresh: 1\r\n").1, "v3");
    assert_eq!(get(&s, "/p", "").1, "v3", "the refreshed object replaced the old one");
}

#[test]
fn a_full_store_evicts_the_least_recently_used() {
    let (o, origin) = Origin::start();
    let big = "x".repeat(400 * 1024);
    for u in ["/1", "/2", "/3"] {
        origin.route(u, "Cache-Control: max-age=60\r\n", &big);
    }
    let s = start(Some(&vcl(&o, "")), &["-s", "malloc,1M"]);
    for u in ["/1", "/2", "/3", "/1"] {
        assert_eq!(get(&s, u, "").1.len(), big.len());
    }
    assert_eq!(origin.count("/1"), 2, "/1 was evicted to make room for /3");
    assert_eq!(origin.count("/3"), 1);
}

#[test]
fn conditional_and_range_requests_are_answered_from_the_cache() {
    let (o, origin) = Origin::start();
    let validators = "Cache-Control: max-age=60\r\nETag: \"v1\"\r\nLast-Modified: Wed, 11 Sep 2013 13:36:55 GMT\r\n";
    origin.route("/r", validators, "0123456789");
    let s = start(Some(&vcl(&o, "")), &[]);
    let (head, body) = get(&s, "/r", "If-None-Match: \"v1\"\r\n");
    assert!(head.starts_with("HTTP/1.1 304 Not Modified"), "{head}");
    assert_eq!(body, "");
    let (head, _) = get(&s, "/r", "If-Modified-Since: Wed, 11 Sep 2013 13:36:55 GMT\r\n");
    assert!(head.starts_with("HTTP/1.1 304"), "{head}");
    let (head, body) = get(&s, "/r", "If-None-Match: \"v0\"\r\n");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "0123456789");
    let (head, body) = get(&s, "/r", "Range: bytes=2-5\r\n");
    assert!(head.starts_with("HTTP/1.1 206 Partial Content"), "{head}");
    assert_eq!(header(&head, "content-range").as_deref(), Some("bytes 2-5/10"));
    assert_eq!(body, "2345");
    assert_eq!(get(&s, "/r", "Range: bytes=-3\r\n").1, "789");
    let (head, body) = get(&s, "/r", "Range: bytes=10-\r\n");
    assert!(head.starts_with("HTTP/1.1 416"), "{head}");
    assert_eq!(header(&head, "content-range").as_deref(), Some("bytes */10"));
    assert_eq!(body, "");
    assert_eq!(origin.count("/r"), 1, "one fetch, the client's conditions and ranges not sent on");
}

#[test]
fn bans_from_vcl_invalidate_by_url_and_by_object_header() {
    let (o, origin) = Origin::start();
    for u in ["/news/1", "/news/2", "/sport/1"] {
        let tag = if u.starts_with("/news") { "news" } else { "sport" };
        origin.route(u, &format!("Cache-Control: max-age=60\r\nX-Tag: {tag}\r\n"), "v{n}");
    }
    let subs = r#"
        sub vcl_recv {
            if (req.method == "BAN") {
                if (req.http.x-tag) {
                    ban("obj.http.x-tag == " + req.http.x-tag);
                } else {
                    ban("req.url ~ ^" + req.url);
                }
                return (synth(200, "Banned"));
            }
        }
    "#;
    let s = start(Some(&vcl(&o, subs)), &["-p", "ban_lurker_age=0", "-p", "ban_lurker_sleep=0.05"]);
    for u in ["/news/1", "/news/2", "/sport/1"] {
        assert_eq!(get(&s, u, "").1, "v1");
    }
    let (head, _) = request(&s, b"BAN /news/1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 Banned"), "{head}");
    assert_eq!(get(&s, "/news/1", "").1, "v2", "banned by URL");
    assert_eq!(get(&s, "/news/2", "").1, "v1", "another URL");
    // An object ban (the lurker's to work, or the next lookup's if that
    // comes first; the cache's unit tests show the lurker alone).
    request(&s, b"BAN / HTTP/1.1\r\nHost: x\r\nX-Tag: sport\r\n\r\n");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(get(&s, "/sport/1", "").1, "v2");
    assert_eq!(get(&s, "/news/2", "").1, "v1");
}

#[test]
fn a_stale_object_in_keep_is_revalidated_and_a_304_renews_it() {
    let (o, origin) = Origin::start();
    origin.route("/k", "ETag: \"e1\"\r\nX-Gen: {n}\r\n", "body{n}");
    let subs = r#"
        sub vcl_backend_response {
            set beresp.ttl = 1s;
            set beresp.grace = 0s;
            set beresp.keep = 60s;
            set beresp.http.x-was-304 = beresp.was_304;
        }
    "#;
    let s = start(Some(&vcl(&o, subs)), &[]);
    let (h1, b1) = get(&s, "/k", "");
    assert_eq!(b1, "body1");
    assert_eq!(header(&h1, "x-was-304").as_deref(), Some("false"));
    std::thread::sleep(Duration::from_millis(1300));
    // Stale, past grace, within keep: the backend is asked whether "e1"
    // still holds; its 304 renews the object with the old body.
    let (h2, b2) = get(&s, "/k", "");
    assert_eq!(b2, "body1", "{h2}");
    assert_eq!(header(&h2, "x-was-304").as_deref(), Some("true"), "{h2}");
    assert_eq!(header(&h2, "content-length").as_deref(), Some("5"), "{h2}");
    assert_eq!(origin.inm.lock().unwrap().clone(), [None, Some("\"e1\"".to_string())]);
    // The renewed object is fresh again.
    assert_eq!(get(&s, "/k", "").1, "body1");
    assert_eq!(origin.count("/k"), 2);
}

/// Gunzips a whole gzip body.
fn gunzip(data: &[u8]) -> String {
    // Minimal gzip reader for the test: the body is one member written by
    // Lacquer; decompress with the same library the server uses would hide
    // bugs, so use the system's gzip instead.
    use std::io::Write;
    let mut child = std::process::Command::new("gzip")
        .arg("-dc")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip(1)");
    child.stdin.take().unwrap().write_all(data).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

#[test]
fn gzip_is_stored_once_and_gunzipped_for_clients_that_do_not_take_it() {
    let (o, origin) = Origin::start();
    let text = "hello gzip ".repeat(200);
    origin.route("/z", "Cache-Control: max-age=60\r\nETag: \"z1\"\r\n", &text);
    let s = start(Some(&vcl(&o, "sub vcl_backend_response { set beresp.do_gzip = true; }")), &[]);
    let raw = |extra: &str| {
        let (mut c, mut r) = connect(&s);
        c.write_all(format!("GET /z HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes()).unwrap();
        let head = read_head(&mut r).unwrap();
        let body = read_body(&mut r, &head);
        (head, body)
    };
    let (head, body) = raw("Accept-Encoding: deflate, gzip\r\n");
    assert_eq!(header(&head, "content-encoding").as_deref(), Some("gzip"), "{head}");
    assert_eq!(header(&head, "vary").as_deref(), Some("Accept-Encoding"));
    assert_eq!(header(&head, "etag").as_deref(), Some("W/\"z1\""));
    assert!(body.len() < text.len() / 4, "compressed: {} bytes", body.len());
    assert_eq!(gunzip(&body), text);
    let (head, body) = raw("");
    assert_eq!(header(&head, "content-encoding"), None, "{head}");
    assert_eq!(String::from_utf8(body).unwrap(), text);
    assert_eq!(origin.count("/z"), 1, "one object serves both");
}

/// A file store's path in a directory of its own.
fn store_file(name: &str) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("lacquer-cache-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("store").display().to_string();
    (dir, f)
}

#[test]
fn objects_in_a_file_store_are_served_from_it_and_evicted_when_it_is_full() {
    let (o, origin) = Origin::start();
    let big: String = (0..400 * 1024).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    for u in ["/1", "/2", "/3"] {
        origin.route(u, "Cache-Control: max-age=60\r\n", &big);
    }
    let (dir, f) = store_file("evict");
    let s = start(Some(&vcl(&o, "")), &["-s", &format!("file,{f},1M")]);
    // Stored, then a hit served from the mapped file, byte for byte.
    assert_eq!(get(&s, "/1", "").1, big);
    let (head, body) = get(&s, "/1", "");
    assert!(
        head.contains("X-Varnish: ") && head.split("X-Varnish: ").nth(1).unwrap().lines().next().unwrap().contains(' '),
        "{head}"
    );
    assert_eq!(body, big);
    assert_eq!(origin.count("/1"), 1);
    // Two objects fill the megabyte; the third pushes out the oldest.
    for u in ["/2", "/3", "/1"] {
        assert_eq!(get(&s, u, "").1, big);
    }
    assert_eq!(origin.count("/1"), 2, "/1 was evicted to make room for /3");
    assert_eq!(origin.count("/3"), 1);
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 1 << 20, "the file is the store's size");
    drop(s);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_bad_file_store_stops_the_start_with_varnishd_s_words() {
    let (dir, f) = store_file("bad");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lacquer"))
        .args(["serve", "-a", "127.0.0.1:0", "-b", "127.0.0.1:9", "-s", &format!("file,{f}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("(-sfile) no size specified"), "{out:?}");
    std::fs::remove_dir_all(dir).unwrap();
}
