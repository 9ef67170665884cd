//! `lacquer log` as an operator runs it: another process reading the
//! shared-memory log that writer threads of this process fill, with the
//! grouping, query and filters of varnishlog, and noticing overruns.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lacquer_shm::{Log, Side, Tag};

fn lacquer() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lacquer"))
}

/// A working directory, removed when the test is done.
struct Workdir(PathBuf);

impl std::ops::Deref for Workdir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn workdir(name: &str) -> Workdir {
    let d = std::env::temp_dir().join(format!("lacquer-log-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    Workdir(d)
}

fn run(args: &[&str]) -> (String, String) {
    let out = lacquer().arg("log").args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "lacquer log {args:?}: {stderr}");
    (String::from_utf8(out.stdout).unwrap(), stderr)
}

/// Logs one session with one request and its backend fetch, each
/// transaction from its own buffer as the server's tasks do (so the fetch
/// is flushed before the request that started it).
fn session(log: &Log, sess: u32, url: &str, status: u16) {
    let (req, bereq) = (sess + 1, sess + 2);
    let mut s = log.buffer();
    let mut r = log.buffer();
    let mut b = log.buffer();
    let c = Side::Client;
    s.log_str(Tag::Begin, sess, c, "sess 0 HTTP/1");
    s.log_str(Tag::SessOpen, sess, c, "127.0.0.1 41000 a0 127.0.0.1 8080 1700000000.000000 17");
    s.log(Tag::Link, sess, c, format_args!("req {req} rxreq"));
    r.log(Tag::Begin, req, c, format_args!("req {sess} rxreq"));
    r.log_str(Tag::Timestamp, req, c, "Start: 1700000000.000000 0.000000 0.000000");
    r.log_str(Tag::ReqMethod, req, c, "GET");
    r.log_str(Tag::ReqURL, req, c, url);
    r.log_str(Tag::ReqHeader, req, c, "Host: example.com");
    r.log_str(Tag::VCL_call, req, c, "MISS");
    r.log(Tag::Link, req, c, format_args!("bereq {bereq} fetch"));
    b.log(Tag::Begin, bereq, Side::Backend, format_args!("bereq {req} fetch"));
    b.log_str(Tag::BereqURL, bereq, Side::Backend, url);
    b.log(Tag::BerespStatus, bereq, Side::Backend, format_args!("{status}"));
    b.log_str(Tag::End, bereq, Side::Backend, "");
    r.log(Tag::RespStatus, req, c, format_args!("{status}"));
    r.log_str(Tag::Timestamp, req, c, "Resp: 1700000000.250000 0.250000 0.000100");
    r.log_str(Tag::End, req, c, "");
    s.log_str(Tag::SessClose, sess, c, "REM_CLOSE 0.300");
    s.log_str(Tag::End, sess, c, "");
}

/// Three writer threads, each logging `n` sessions; thread `t`'s session
/// `i` has vxid 1000 + 3 × (n × t + i) and URL `/t{t}/{i}`.
fn write_concurrently(log: &Log, n: u32) {
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..n {
                    let status = if i % 5 == 4 { 503 } else { 200 };
                    session(&log, 1000 + 3 * (n * t + i), &format!("/t{t}/{i}"), status);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn n(dir: &Path) -> String {
    dir.to_str().unwrap().to_string()
}

#[test]
fn dump_groups_a_request_with_its_fetch() {
    let dir = workdir("request");
    let log = Log::create(&dir, 1 << 20).unwrap();
    write_concurrently(&log, 20);
    // Thread 1, session 3: vxids 1069, 1070, 1071.
    let (out, _) = run(&["-n", &n(&dir), "-d", "-g", "request", "-q", "ReqURL eq \"/t1/3\""]);
    assert_eq!(
        out,
        "\
*   << Request  >> 1070      
-   Begin          req 1069 rxreq
-   Timestamp      Start: 1700000000.000000 0.000000 0.000000
-   ReqMethod      GET
-   ReqURL         /t1/3
-   ReqHeader      Host: example.com
-   VCL_call       MISS
-   Link           bereq 1071 fetch
-   RespStatus     200
-   Timestamp      Resp: 1700000000.250000 0.250000 0.000100
-   End            
**  << BeReq    >> 1071      
--  Begin          bereq 1070 fetch
--  BereqURL       /t1/3
--  BerespStatus   200
--  End            

"
    );
}

#[test]
fn dump_with_queries_filters_and_groupings() {
    let dir = workdir("query");
    let log = Log::create(&dir, 1 << 20).unwrap();
    write_concurrently(&log, 20);
    let d = n(&dir);
    // Every fifth fetch failed: 4 per thread.
    let (out, _) = run(&["-n", &d, "-d", "-g", "request", "-q", "BerespStatus >= 500", "-i", "ReqURL"]);
    assert_eq!(out.matches("<< Request  >>").count(), 12, "{out}");
    assert_eq!(out.matches("<< BeReq    >>").count(), 12, "{out}");
    for t in 0..3 {
        for i in [4, 9, 14, 19] {
            assert!(out.contains(&format!("-   ReqURL         /t{t}/{i}\n")), "{out}");
        }
    }
    // Levels, fields and `not`.
    let (out, _) = run(&[
        "-n",
        &d,
        "-d",
        "-g",
        "request",
        "-q",
        "{2}BerespStatus == 503 and ReqURL ~ \"^/t2/\" and not Timestamp:Resp[2] > 0.3",
        "-i",
        "ReqURL",
    ]);
    assert_eq!(out.matches("<< Request  >>").count(), 4, "{out}");
    // Session grouping nests the request and the fetch under the session.
    let (out, _) = run(&["-n", &d, "-d", "-g", "session", "-q", "ReqURL eq \"/t0/0\"", "-i", "Begin"]);
    assert_eq!(
        out,
        "\
*   << Session  >> 1000      
-   Begin          sess 0 HTTP/1
**  << Request  >> 1001      
--  Begin          req 1000 rxreq
*** << BeReq    >> 1002      
--- Begin          bereq 1001 fetch

"
    );
    // Raw mode, with -x and a regex exclude.
    let (out, _) = run(&["-n", &d, "-d", "-g", "raw", "-q", "vxid == 1003", "-x", "Timestamp", "-X", "Host"]);
    assert_eq!(
        out,
        concat!(
            "      1003 Begin          c sess 0 HTTP/1\n",
            "      1003 SessOpen       c 127.0.0.1 41000 a0 127.0.0.1 8080 1700000000.000000 17\n",
            "      1003 Link           c req 1004 rxreq\n",
            "      1003 SessClose      c REM_CLOSE 0.300\n",
            "      1003 End            c \n",
        )
    );
    // Every group is there once (vxid grouping: 3 transactions a session).
    let (out, _) = run(&["-n", &d, "-d", "-i", "Begin"]);
    assert_eq!(out.matches("<< ").count(), 180);
}

#[test]
fn binary_files_round_trip_and_varnishlog_reads_them() {
    let dir = workdir("file");
    let log = Log::create(&dir, 1 << 20).unwrap();
    write_concurrently(&log, 5);
    let file = dir.join("out.vsl");
    run(&["-n", &n(&dir), "-d", "-g", "request", "-q", "ReqURL eq \"/t2/1\"", "-w", file.to_str().unwrap()]);
    let (from_file, _) = run(&["-r", file.to_str().unwrap(), "-g", "request"]);
    let (from_shm, _) = run(&["-n", &n(&dir), "-d", "-g", "request", "-q", "ReqURL eq \"/t2/1\""]);
    assert_eq!(from_file, from_shm);
    assert!(from_file.contains("-   ReqURL         /t2/1\n"));
    // The real varnishlog reads the file alike, where it is installed.
    if let Ok(out) = Command::new("varnishlog").args(["-r", file.to_str().unwrap(), "-g", "request"]).output() {
        if out.status.success() {
            assert_eq!(String::from_utf8_lossy(&out.stdout), from_file);
        }
    }
}

/// Waits for the child, killing it if it outlives `limit`.
fn wait_output(mut child: std::process::Child, limit: Duration) -> (String, String) {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    (out, err)
}

#[test]
fn follows_writers_live_from_another_process() {
    let dir = workdir("live");
    let log = Log::create(&dir, 1 << 20).unwrap();
    session(&log, 500, "/before", 200);
    let child = lacquer()
        .args(["log", "-n", &n(&dir), "-g", "request", "-i", "ReqURL,BereqURL", "-k", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Writers keep going until the reader has had its 30 groups and left.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|t| {
            let (log, stop) = (log.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) && i < 100_000 {
                    session(&log, 2000 + 3 * (2 * i + t), &format!("/live/{t}/{i}"), 200);
                    i += 1;
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        })
        .collect();
    let (out, err) = wait_output(child, Duration::from_secs(30));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(!out.contains("/before"), "started at the head: {out}");
    let groups: Vec<&str> = out.split_terminator("\n\n").collect();
    assert_eq!(groups.len(), 30, "{out}\n{err}");
    for g in groups {
        let lines: Vec<&str> = g.lines().collect();
        assert_eq!(lines.len(), 4, "{g}");
        let vxid: u32 = lines[0].strip_prefix("*   << Request  >> ").unwrap().trim().parse().unwrap();
        let k = (vxid - 2001) / 3;
        let url = format!("/live/{}/{}", k % 2, k / 2);
        assert_eq!(lines[1], format!("-   ReqURL         {url}"));
        assert_eq!(lines[2], format!("**  << BeReq    >> {:<10}", vxid + 1));
        assert_eq!(lines[3], format!("--  BereqURL       {url}"));
    }
}

#[test]
fn a_reader_that_falls_behind_says_log_overrun() {
    let dir = workdir("overrun");
    let log = Log::create(&dir, 16 << 10).unwrap();
    let child = lacquer()
        .args(["log", "-n", &n(&dir), "-g", "raw", "-i", "ReqURL", "-q", "ReqURL eq \"/last\""])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    std::thread::sleep(Duration::from_millis(500));
    // Freeze the reader, lap it many times over, let it go on.
    assert!(Command::new("kill").args(["-STOP", &pid]).status().unwrap().success());
    write_concurrently(&log, 300);
    let mut b = log.buffer();
    b.log_str(Tag::ReqURL, 9999, Side::Client, "/last");
    b.flush();
    assert!(Command::new("kill").args(["-CONT", &pid]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(1000));
    // A stopped reader keeps following; end it.
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let (out, err) = wait_output(child, Duration::from_secs(10));
    assert!(err.contains("Log overrun"), "{err}");
    assert_eq!(out, "      9999 ReqURL         c /last\n", "after the overrun it read on: {err}");
}

#[test]
fn notices_a_restarted_server() {
    let dir = workdir("restart");
    let log = Log::create(&dir, 64 << 10).unwrap();
    let child = lacquer()
        .args(["log", "-n", &n(&dir), "-g", "raw", "-k", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let mut b = log.buffer();
    b.log_str(Tag::CLI, 0, Side::None, "Rd ping");
    drop(b);
    drop(log);
    std::thread::sleep(Duration::from_millis(200));
    let log = Log::create(&dir, 64 << 10).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    let mut b = log.buffer();
    b.log_str(Tag::CLI, 0, Side::None, "Rd status");
    drop(b);
    let (out, err) = wait_output(child, Duration::from_secs(10));
    assert_eq!(out, "         0 CLI            - Rd ping\n         0 CLI            - Rd status\n", "{err}");
    assert!(err.contains("Log reacquired"), "{err}");
}

#[test]
fn errors_are_varnishlogs() {
    let dir = workdir("errors");
    Log::create(&dir, 64 << 10).unwrap();
    let out = lacquer().args(["log", "-n", &n(&dir), "-d", "-q", "Foo eq 1"]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Query expression error:\nTag name matches zero tags (Pos 1)\nFoo eq 1\n###-----\n\n"
    );
    let out = lacquer().args(["log", "-n", &n(&dir), "-d", "-i", "Nope"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "-i: \"Nope\" matches zero tags\n");
    let out = lacquer().args(["log", "-n", &n(&dir), "-g", "foo"]).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stderr), "Unknown grouping type: foo\n");
    let out = lacquer().args(["log", "-n", "/nonexistent/lacquer", "-t", "0"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("Cannot open log"));
}

/// `lacquer log -r` prints what varnishlog 7.1.1 printed for the same
/// arguments, on a log varnishd 7.1.1 wrote (ESI, a restart, synth, pass, a
/// dead backend, CLI traffic): `crates/lacquer-shm/tests/varnishd/`.
#[test]
fn prints_what_varnishlog_printed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../lacquer-shm/tests/varnishd");
    let cases = std::fs::read_to_string(dir.join("cases.txt")).unwrap();
    let log = dir.join("log.vsl");
    let mut n = 0;
    for line in cases.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut it = line.split('\t');
        let name = it.next().unwrap();
        let mut args = vec!["-r", log.to_str().unwrap()];
        args.extend(it);
        let (out, _) = run(&args);
        let want = std::fs::read_to_string(dir.join(format!("{name}.out"))).unwrap();
        assert!(out == want, "{name}: lacquer log {args:?} differs from varnishlog");
        n += 1;
    }
    assert_eq!(n, 9);
}
