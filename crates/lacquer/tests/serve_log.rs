//! What `lacquer serve` writes to shared memory, read back from another
//! process by the real `lacquer log` and `lacquer stat`: a miss with its
//! fetch, a hit, and a malformed request, each logged as Varnish logs it,
//! and the counters they move.

mod common;

use common::*;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

/// The value of the first record with `tag` in `-g raw` output lines of
/// transaction `vxid`.
fn field(raw: &str, vxid: &str, tag: &str) -> Option<String> {
    raw.lines().find_map(|l| {
        let mut w = l.split_whitespace();
        (w.next()? == vxid && w.next()? == tag).then(|| w.skip(1).collect::<Vec<_>>().join(" "))
    })
}

#[test]
fn requests_fetches_and_sessions_are_logged_as_varnish_logs_them() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let o = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        use std::io::{BufReader, Write};
        for s in l.incoming() {
            let Ok(s) = s else { return };
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            while read_head(&mut r).is_some() {
                let _ = w.write_all(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello");
            }
        }
    });
    let s = start(Some(&vcl(&o, "sub vcl_deliver { set resp.http.X-Seen = \"yes\"; }")), &[]);
    let dir = s.dir.join("n");
    let (h1, _) = request(&s, b"GET /logged HTTP/1.1\r\nHost: example\r\n\r\n");
    let (h2, _) = request(&s, b"GET /logged HTTP/1.1\r\nHost: example\r\n\r\n");
    let (bad, _) = request(&s, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let miss = header(&h1, "x-varnish").unwrap();
    let hit = header(&h2, "x-varnish").unwrap();
    let fetch = hit.split(' ').nth(1).unwrap().to_string();

    let hit_vxid = hit.split(' ').next().unwrap();
    // Every transaction is in the log once each has ended.
    let ended = |raw: &str| [miss.as_str(), fetch.as_str(), hit_vxid].iter().all(|v| field(raw, v, "End").is_some());
    let raw = log_when(&dir, &["-g", "raw"], |raw| raw.contains("RX_JUNK") && ended(raw));
    assert_eq!(field(&raw, &miss, "ReqURL").as_deref(), Some("/logged"), "{raw}");
    assert_eq!(field(&raw, &miss, "Link").as_deref(), Some(format!("bereq {fetch} fetch").as_str()));
    assert_eq!(field(&raw, &fetch, "Begin").as_deref(), Some(format!("bereq {miss} fetch").as_str()));
    assert_eq!(field(&raw, &fetch, "BerespStatus").as_deref(), Some("200"));
    assert!(field(&raw, &fetch, "TTL").is_some_and(|t| t.starts_with("RFC 60 10 0 ")), "{raw}");
    assert!(field(&raw, hit_vxid, "Hit").is_some_and(|h| h.starts_with(&format!("{fetch} "))), "{raw}");
    assert!(raw.lines().any(|l| l.contains("RespHeader") && l.ends_with("X-Seen: yes")), "VCL's edit is logged");
    assert!(raw.lines().any(|l| l.contains("BogoHeader")), "{raw}");

    // Grouped by request, with a query: the client request and its fetch.
    let grouped = log_until(&dir, &["-g", "request", "-q", "ReqURL eq \"/logged\" and VCL_call eq MISS"], "<<");
    assert!(grouped.contains(&format!("*   << Request  >> {miss}")), "{grouped}");
    assert!(grouped.contains(&format!("**  << BeReq    >> {fetch}")), "{grouped}");
    assert!(!grouped.contains(&format!(">> {hit_vxid}")), "the hit did not call vcl_miss: {grouped}");
    let bad = log_until(&dir, &["-g", "raw", "-q", "RespStatus == 400", "-i", "RespStatus"], "400");
    assert!(bad.contains("RespStatus     c 400"), "{bad}");
}

#[test]
fn counters_count_what_the_server_did() {
    let vcl = "vcl 4.1;\nbackend default none;\nbackend b1 { .host = \"127.0.0.1\"; .port = \"9\"; }\n\
               sub vcl_recv { set req.backend_hint = b1; return (synth(200)); }\n";
    let s = start(Some(vcl), &[]);
    let dir = s.dir.join("n");
    for _ in 0..3 {
        request(&s, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    }
    request(&s, b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n");
    assert_eq!(counter_until(&dir, "MAIN.client_req", 3), 3);
    assert_eq!(counter_until(&dir, "MAIN.s_synth", 3), 3);
    assert_eq!(counter_until(&dir, "MAIN.sess_conn", 4), 4);
    assert_eq!(counter_until(&dir, "MAIN.client_req_400", 1), 1);
    assert_eq!(counter_until(&dir, "MAIN.sc_rx_junk", 1), 1);
    // A `none` backend is no backend: varnishd 7.1 counts only b1.
    assert_eq!(counter_until(&dir, "MAIN.n_backend", 1), 1);
}

/// `lacquer ncsa -n DIR -d ARGS…`, until it has `lines` lines.
fn ncsa_lines(dir: &std::path::Path, args: &[&str], lines: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = Command::new(LACQUER).arg("ncsa").arg("-n").arg(dir).arg("-d").args(args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let got: Vec<String> = text.lines().map(str::to_string).collect();
        if got.len() >= lines || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn ncsa_writes_access_log_lines_from_the_shared_memory_log() {
    let (o, _) = origin();
    let s = start(
        Some(&vcl(&o, "sub vcl_recv { std.log(\"who: tester\"); }").replace("vcl 4.1;", "vcl 4.1;\nimport std;")),
        &[],
    );
    let dir = s.dir.join("n");
    let (h, body) = request(
        &s,
        b"GET /page?q=1 HTTP/1.1\r\nHost: example.com\r\nReferer: http://ref/\r\nUser-Agent: tester/1\r\n\
          Authorization: Basic YWxpY2U6c2VjcmV0\r\n\r\n",
    );
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    let lines = ncsa_lines(&dir, &[], 1);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let l = &lines[0];
    assert!(l.starts_with("127.0.0.1 - alice ["), "{l}");
    let tail =
        format!("] \"GET http://example.com/page?q=1 HTTP/1.1\" 200 {} \"http://ref/\" \"tester/1\"", body.len());
    assert!(l.ends_with(&tail), "{l}");
    let custom = ncsa_lines(&dir, &["-F", "%m %U%q %s %{Varnish:handling}x %{VCL_Log:who}x %{Varnish:side}x"], 1);
    // Authorization makes the built-in vcl_recv pass.
    assert_eq!(custom, ["GET /page?q=1 200 pass tester c"]);
    // The fetch, from the backend side.
    let be = ncsa_lines(&dir, &["-b", "-F", "%m %U %s %{Varnish:side}x"], 1);
    assert_eq!(be, ["GET /page 200 b"]);
    let out = Command::new(LACQUER).arg("ncsa").arg("-n").arg(&dir).args(["-d", "-F", "%Q"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Unknown format specifier at: %Q"));
}

#[test]
fn lacquer_stat_serves_the_counters_to_prometheus() {
    use std::io::{BufRead, BufReader, Read, Write};
    let (o, _) = origin();
    let s = start(Some(&vcl(&o, "")), &[]);
    let dir = s.dir.join("n");
    request(&s, b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
    let mut exporter = Command::new(LACQUER)
        .arg("stat")
        .arg("-n")
        .arg(&dir)
        .args(["-P", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    BufReader::new(exporter.stderr.take().unwrap()).read_line(&mut said).unwrap();
    let addr = said.split("http://").nth(1).and_then(|a| a.strip_suffix("/metrics\n")).expect(&said).to_string();
    let scrape = |path: &str| {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: prometheus\r\n\r\n").as_bytes()).unwrap();
        let mut text = String::new();
        c.read_to_string(&mut text).unwrap();
        text
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut text = scrape("/metrics");
    // The server publishes its counters four times a second.
    while !text.contains("\nvarnish_main_client_req 1\n") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        text = scrape("/metrics");
    }
    let other = scrape("/other");
    let _ = exporter.kill();
    let _ = exporter.wait();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4"), "{text}");
    assert!(text.contains("\n# TYPE varnish_main_client_req counter\nvarnish_main_client_req 1\n"), "{text}");
    assert!(text.contains("varnish_backend_req{backend=\"default\",server=\"boot\"} 1\n"), "{text}");
    assert!(other.starts_with("HTTP/1.1 404 Not Found\r\n"), "{other}");
}
