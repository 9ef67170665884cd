//! What the socket tests of `lacquer serve` share: starting the built
//! binary on 127.0.0.1 port 0, a small origin made from std threads, and
//! reading HTTP/1 heads and bodies off a stream. Each test kills only the
//! child it started.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const LACQUER: &str = env!("CARGO_BIN_EXE_lacquer");
pub const WAIT: Duration = Duration::from_secs(5);

/// A running `lacquer serve`, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: String,
    /// Every address it printed, in order (`addr` is the first).
    pub addrs: Vec<String>,
    pub dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh scratch directory for one test.
pub fn scratch() -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "lacquer-serve-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts `lacquer serve -a 127.0.0.1:0` with the given VCL (or `-b`) and
/// extra arguments, and waits for the address it prints.
pub fn start(vcl: Option<&str>, args: &[&str]) -> Server {
    let dir = scratch();
    let mut cmd = Command::new(LACQUER);
    cmd.arg("serve").arg("-a").arg("127.0.0.1:0").arg("-n").arg(dir.join("n"));
    if let Some(v) = vcl {
        let f = dir.join("t.vcl");
        std::fs::write(&f, v).unwrap();
        cmd.arg("-f").arg(f);
    }
    cmd.args(args);
    launch(cmd, dir)
}

/// Runs a server command and waits for the address it prints.
pub fn launch(cmd: Command, dir: PathBuf) -> Server {
    launch_n(cmd, dir, 1)
}

/// Runs a server command and waits for the `n` addresses it prints.
pub fn launch_n(mut cmd: Command, dir: PathBuf, n: usize) -> Server {
    // Standard input stays open as long as the `Server` (a server in
    // debug mode, `-d`, stops when it ends).
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(a) = line.split("listening on ").nth(1) {
                let _ = tx.send(a.trim().to_string());
            }
        }
    });
    let mut addrs = Vec::new();
    while addrs.len() < n {
        match rx.recv_timeout(WAIT) {
            Ok(a) => addrs.push(a),
            Err(_) => {
                let _ = child.kill();
                panic!("the server did not print its address");
            }
        }
    }
    Server { child, addr: addrs[0].clone(), addrs, dir }
}

/// A VCL with one backend at `origin` and the given subroutines.
pub fn vcl(origin: &str, subs: &str) -> String {
    let (h, p) = origin.rsplit_once(':').unwrap();
    format!("vcl 4.1;\nbackend default {{ .host = \"{h}\"; .port = \"{p}\"; }}\n{subs}\n")
}

/// Reads one HTTP/1 head (up to the blank line) off a stream.
pub fn read_head(r: &mut impl BufRead) -> Option<String> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return if head.is_empty() { None } else { Some(head) };
        }
        if line == "\r\n" || line == "\n" {
            return Some(head);
        }
        head.push_str(&line);
    }
}

/// The value of a header in a head, compared without case.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// Reads a body framed by Content-Length or chunked encoding.
pub fn read_body(r: &mut impl BufRead, head: &str) -> Vec<u8> {
    if let Some(n) = header(head, "content-length") {
        let mut b = vec![0; n.parse().unwrap()];
        r.read_exact(&mut b).unwrap();
        return b;
    }
    if header(head, "transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let n = usize::from_str_radix(line.trim(), 16).unwrap();
            let mut b = vec![0; n + 2];
            r.read_exact(&mut b).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&b[..n]);
        }
    }
    Vec::new()
}

/// An origin: answers every request with 200 and a body telling what it
/// got (`METHOD URL xff=… body=…`), keeping connections alive, and records
/// each request head.
pub fn origin() -> (String, Arc<Mutex<Vec<String>>>) {
    let (addr, seen, _) = counting_origin();
    (addr, seen)
}

/// [`origin`], also counting the connections it accepted.
pub fn counting_origin() -> (String, Arc<Mutex<Vec<String>>>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let conns = Arc::new(AtomicUsize::new(0));
    let count = conns.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { return };
            count.fetch_add(1, Ordering::SeqCst);
            let log = log.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                while let Some(head) = read_head(&mut r) {
                    let body = read_body(&mut r, &head);
                    log.lock().unwrap().push(head.clone());
                    let first: Vec<&str> = head.lines().next().unwrap_or("").split(' ').collect();
                    let text = format!(
                        "{} {} xff={} body={}",
                        first[0],
                        first.get(1).unwrap_or(&""),
                        header(&head, "x-forwarded-for").unwrap_or_default(),
                        String::from_utf8_lossy(&body)
                    );
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Origin: yes\r\nConnection: keep-alive, X-Hop\r\nX-Hop: no\r\n\r\n{text}",
                        text.len()
                    );
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen, conns)
}

/// A client connection with a time limit on every read.
pub fn connect(s: &Server) -> (TcpStream, BufReader<TcpStream>) {
    let c = TcpStream::connect(&s.addr).unwrap();
    c.set_read_timeout(Some(WAIT)).unwrap();
    let r = BufReader::new(c.try_clone().unwrap());
    (c, r)
}

/// Sends one request and reads one response: (head, body).
pub fn request(s: &Server, raw: &[u8]) -> (String, Vec<u8>) {
    let (mut c, mut r) = connect(s);
    c.write_all(raw).unwrap();
    let head = read_head(&mut r).expect("a response");
    let body = read_body(&mut r, &head);
    (head, body)
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An admin CLI connection (`-T`): reads answers, sends commands.
pub struct Cli {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Cli {
    /// Connects; the first answer (a challenge or the banner) is unread.
    pub fn connect(addr: &str) -> Cli {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        Cli { r: BufReader::new(s.try_clone().unwrap()), w: s }
    }

    /// Connects and answers the challenge with `secret`.
    pub fn open(addr: &str, secret: &[u8]) -> Cli {
        let mut c = Cli::connect(addr);
        let (status, body) = c.answer();
        assert_eq!(status, 107, "{body}");
        let challenge = body.lines().next().unwrap().to_string();
        let (status, banner) = c.send(&["auth", &lacquer_cli::auth_response(&challenge, secret)]);
        assert_eq!(status, 200, "{banner}");
        c
    }

    pub fn answer(&mut self) -> (u16, String) {
        lacquer_cli::read_answer(&mut self.r).expect("a CLI answer")
    }

    /// Sends one command, each word quoted as needed.
    pub fn send(&mut self, words: &[&str]) -> (u16, String) {
        let line = words.iter().map(|w| lacquer_cli::quote(w)).collect::<Vec<_>>().join(" ");
        self.w.write_all(format!("{line}\n").as_bytes()).unwrap();
        self.answer()
    }

    /// Sends `text` as it is (one command, with any here document).
    pub fn raw(&mut self, text: &str) -> (u16, String) {
        self.w.write_all(text.as_bytes()).unwrap();
        self.answer()
    }

    /// Sends one command whose answer must be 200; returns the text.
    pub fn ok(&mut self, words: &[&str]) -> String {
        let (status, body) = self.send(words);
        assert_eq!(status, 200, "{words:?}: {body}");
        body
    }
}

/// `lacquer serve` with the admin CLI on `-T 127.0.0.1:0 -S secret` and the
/// extra arguments; `addrs[1]` is the CLI's address.
pub fn start_with_cli(args: &[&str], secret: &[u8]) -> Server {
    let dir = scratch();
    let file = dir.join("secret");
    std::fs::write(&file, secret).unwrap();
    let mut cmd = Command::new(LACQUER);
    cmd.args(["serve", "-a", "127.0.0.1:0", "-T", "127.0.0.1:0", "-S"]).arg(&file);
    cmd.arg("-n").arg(dir.join("n")).args(args);
    launch_n(cmd, dir, 2)
}

/// `lacquer log -n DIR -d ARGS…`, until `want` shows up in it (the log is
/// written when each transaction ends, which may be just after the client
/// has its answer), or five seconds.
pub fn log_until(dir: &std::path::Path, args: &[&str], want: &str) -> String {
    log_when(dir, args, |t| t.contains(want))
}

/// `lacquer log -n DIR -d ARGS…`, until `done` says the output is whole.
pub fn log_when(dir: &std::path::Path, args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = Command::new(LACQUER).arg("log").arg("-n").arg(dir).arg("-d").args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if done(&text) || std::time::Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `lacquer stat -1 -f NAME` until the counter reads `want` (counters are
/// published a few times a second), or five seconds.
pub fn counter_until(dir: &std::path::Path, name: &str, want: u64) -> u64 {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let out = Command::new(LACQUER).arg("stat").arg("-n").arg(dir).args(["-1", "-f", name]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let v = text.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
        if v == want || std::time::Instant::now() > deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
