//! The HTTP/1 session language that `server` and `client` specs are written
//! in, as `vtc_http.c`: `txreq`, `rxresp`, `expect` and their kin, run
//! against one connection (TCP or a Unix socket, see `net.rs`).
//!
//! The parser is lenient on purpose, as varnishtest's is: a head ends at an
//! empty line (`\r\n` or `\n`), its first line is split in three fields,
//! and a body is framed by chunked encoding, Content-Length, or (for a
//! response with status 200 only) the end of the connection.
//!
//! Bodies may be gzipped as they are sent (`-gzipbody`, `-gziplen`, with
//! the session's `-gziplevel` and `-gzipresidual`) and gunzipped once
//! received (`gunzip`), with zlib as varnishtest does: see `gzip.rs`.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ctx::{Ctx, POLL};
use crate::net::{Listener, Stream};
use crate::parse::tokenize;

/// Why a spec stopped early.
#[derive(Debug)]
pub enum Stop {
    /// The test fails with this message.
    Fail(String),
    /// A receive error under `non_fatal`: the spec ends quietly.
    Quiet,
}

type R<T> = Result<T, Stop>;

fn fail<T>(msg: impl Into<String>) -> R<T> {
    Err(Stop::Fail(msg.into()))
}

/// A received head: the three fields of its first line (the third may be
/// missing) and its header lines, whole.
#[derive(Default, Clone)]
struct HeadData {
    first: [Option<String>; 3],
    headers: Vec<String>,
}

impl HeadData {
    /// `http_find_header`: the value of the first header called `name`,
    /// leading blanks skipped.
    fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find_map(|h| {
            let (n, v) = h.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim_start_matches([' ', '\t']).to_string())
        })
    }
}

/// One HTTP session: a connection and what was last received on it.
pub struct Session<'a> {
    ctx: &'a Arc<Ctx>,
    name: String,
    stream: Option<Stream>,
    listener: Option<&'a Listener>,
    /// `remote.ip`, `remote.port` and `remote.path` of the connection.
    remote: (String, String, Option<String>),
    rx: Vec<u8>,
    timeout: Duration,
    fatal: bool,
    req: HeadData,
    resp: HeadData,
    body: Option<Vec<u8>>,
    bodylen: String,
    chunklen: Option<String>,
    /// `-gziplevel`: zlib's level for `-gzipbody` and `-gziplen`, kept for
    /// the rest of the session as varnishtest keeps it (0: stored).
    gziplevel: i32,
    /// `-gzipresidual`: the bits of the last byte the next gzip bodies
    /// must use (see `gzip.rs`), kept likewise.
    gzipresidual: Option<u64>,
    /// Where the body being received is, for `rxrespbody -max`.
    body_rx: BodyRx,
    /// Set by `server -break`: the spec stops quietly.
    brk: Option<Arc<AtomicBool>>,
}

/// How much of a message's body is still to come.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum BodyRx {
    /// Its head was just received.
    Unstarted,
    /// This many bytes.
    Length(usize),
    /// Chunked, a chunk-size line next.
    Chunked,
    /// Up to the end of the connection.
    Eof,
    /// All of it was received.
    Done,
}

/// `synth_body`: `len` bytes of printable text, a newline every 64.
pub fn synth_body(len: usize) -> Vec<u8> {
    let mut b = Vec::with_capacity(len);
    let (mut k, mut l) = (b'!', b'!');
    for j in 0..len {
        if j % 64 == 63 {
            b.push(b'\n');
            k += 1;
            if k == b'~' {
                k = b'!';
            }
            l = k;
        } else {
            b.push(l);
            l += 1;
            if l == b'~' {
                l = b'!';
            }
        }
    }
    if let Some(last) = b.last_mut() {
        *last = b'\n';
    }
    b
}

/// `strtod`-like: the number at the start of `s`, 0 if none.
fn number(s: &str) -> f64 {
    let s = s.trim_start();
    let mut end = 0;
    for (i, c) in s.char_indices() {
        if c.is_ascii_digit() || c == '.' || ((c == '-' || c == '+') && i == 0) || c == 'e' || c == 'E' {
            end = i + 1;
        } else {
            break;
        }
    }
    (0..=end).rev().find_map(|e| s[..e].parse::<f64>().ok()).unwrap_or(0.0)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Makes log text of raw bytes, one line per line, escaping controls.
fn dump(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &c in bytes {
        match c {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push('\n'),
            b'\t' => s.push('\t'),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s
}

impl<'a> Session<'a> {
    /// A session on `stream`; `listener` is the server's, for `accept`.
    pub fn new(ctx: &'a Arc<Ctx>, name: &str, stream: Stream, listener: Option<&'a Listener>) -> Session<'a> {
        Session {
            remote: stream.remote(),
            ctx,
            name: name.to_string(),
            stream: Some(stream),
            listener,
            rx: Vec::new(),
            timeout: ctx.session_timeout,
            fatal: true,
            req: HeadData::default(),
            resp: HeadData::default(),
            body: None,
            bodylen: "0".into(),
            chunklen: None,
            gziplevel: 0,
            gzipresidual: None,
            body_rx: BodyRx::Unstarted,
            brk: None,
        }
    }

    fn say(&self, msg: &str) {
        self.ctx.say(&self.name, msg);
    }

    /// Makes the session stop quietly once `brk` is set (`server -break`).
    pub fn set_break(&mut self, brk: Arc<AtomicBool>) {
        self.brk = Some(brk);
    }

    fn broken(&self) -> bool {
        self.brk.as_ref().is_some_and(|b| b.load(Ordering::SeqCst))
    }

    fn dump(&self, tag: &str, bytes: &[u8]) {
        let text = dump(bytes);
        let mut lines: Vec<&str> = text.split('\n').collect();
        if lines.len() > 1 && lines.last() == Some(&"") {
            lines.pop();
        }
        let mut out = String::new();
        for l in lines {
            out.push_str(tag);
            out.push('|');
            out.push_str(l);
            out.push('\n');
        }
        self.say(&out);
    }

    /// A receive error: fatal, or the quiet end of the spec under
    /// `non_fatal`.
    fn rx_err<T>(&self, msg: String) -> R<T> {
        if self.fatal {
            fail(msg)
        } else {
            self.say(&msg);
            Err(Stop::Quiet)
        }
    }

    /// Runs a whole spec.
    pub fn run(&mut self, spec: &str) -> R<()> {
        let cmds = tokenize(spec).or_else(|e| fail(format!("spec: {e}")))?;
        for c in cmds {
            if self.ctx.aborted() || self.broken() {
                return Err(Stop::Quiet);
            }
            let mut words = Vec::with_capacity(c.tokens.len());
            let is_loop = c.tokens.first().is_some_and(|w| w == "loop");
            for (i, t) in c.tokens.iter().enumerate() {
                // A loop's body is expanded as it runs.
                if is_loop && i == 2 {
                    words.push(t.clone());
                } else {
                    words.push(self.ctx.expand(t).map_err(Stop::Fail)?);
                }
            }
            self.say(&format!("=== {}", words.join(" ")));
            self.command(&words)?;
        }
        Ok(())
    }

    fn command(&mut self, w: &[String]) -> R<()> {
        let args = &w[1..];
        match w[0].as_str() {
            "txreq" => self.txreq(args),
            "txresp" => self.txresp(args),
            "rxreq" => {
                self.rx_head(true)?;
                self.swallow_body(true, false, None)
            }
            "rxreqhdrs" => self.rx_head(true),
            "rxreqbody" => self.swallow_body(true, false, None),
            "rxresp" => {
                let no_obj = args.iter().any(|a| a == "-no_obj");
                self.rx_head(false)?;
                if no_obj {
                    self.body = Some(Vec::new());
                    self.bodylen = "0".into();
                    return Ok(());
                }
                let eof_ok = self.resp.first[1].as_deref() == Some("200");
                self.swallow_body(false, eof_ok, None)
            }
            "rxresphdrs" => self.rx_head(false),
            "rxrespbody" => {
                let max = match args {
                    [] => None,
                    [m, n] if m == "-max" => match n.trim().parse::<usize>() {
                        Ok(0) => None,
                        Ok(n) => Some(n),
                        Err(_) => return fail(format!("rxrespbody -max: bad number {n:?}")),
                    },
                    _ => return fail(format!("rxrespbody: unknown arguments {args:?}")),
                };
                let eof_ok = self.resp.first[1].as_deref() == Some("200");
                self.swallow_body(false, eof_ok, max)
            }
            "rxchunk" => {
                let mut body = self.body.take().unwrap_or_default();
                let r = self.rx_chunk(&mut body);
                self.bodylen = body.len().to_string();
                self.body = Some(body);
                r.map(|_| ())
            }
            "expect" => self.expect(args),
            "gunzip" => self.gunzip(),
            "chunked" => {
                let data = args.first().map(String::as_bytes).unwrap_or_default();
                let mut out = format!("{:x}\r\n", data.len()).into_bytes();
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
                self.tx("chunked", &out)
            }
            "chunkedlen" => {
                let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
                let mut out = format!("{n:x}\r\n").into_bytes();
                out.extend((0..n).map(|i| b'0' + (i & 7) as u8));
                out.extend_from_slice(b"\r\n");
                self.tx("chunked", &out)
            }
            "send" => {
                let data = args.first().cloned().unwrap_or_default();
                self.tx("send", data.as_bytes())
            }
            "send_urgent" => {
                let data = args.first().cloned().unwrap_or_default();
                self.dump("send_urgent", data.as_bytes());
                let Some(s) = self.stream.as_mut() else {
                    return fail("write on a closed connection");
                };
                match s.send_urgent(data.as_bytes()) {
                    Ok(()) => Ok(()),
                    Err(e) => self.rx_err(format!("Write failed: {e}")),
                }
            }
            "send_n" => {
                let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
                let data = args.get(1).cloned().unwrap_or_default();
                for _ in 0..n {
                    self.tx("send_n", data.as_bytes())?;
                }
                Ok(())
            }
            "sendhex" => {
                let hex: String = args.first().map(|a| a.split_whitespace().collect()).unwrap_or_default();
                if hex.len() & 1 != 0 {
                    return fail(format!("sendhex: odd number of hex digits in {hex:?}"));
                }
                let mut out = Vec::new();
                for i in (0..hex.len()).step_by(2) {
                    let b = u8::from_str_radix(&hex[i..i + 2], 16)
                        .or_else(|_| fail(format!("sendhex: bad hex {:?}", &hex[i..i + 2])))?;
                    out.push(b);
                }
                self.tx("sendhex", &out)
            }
            "recv" => {
                let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
                let got = self.rx_bytes(n)?;
                self.dump("recv", &got);
                Ok(())
            }
            "timeout" => {
                let s: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0.0);
                self.timeout = Duration::from_secs_f64(s.clamp(0.0, 86400.0));
                Ok(())
            }
            "delay" => {
                let s: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(0.0);
                self.ctx.sleep(Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
                Ok(())
            }
            "expect_close" => self.expect_close(),
            "shell" => self.ctx.shell(&self.name, args).map_err(Stop::Fail),
            "write_body" => {
                // Relative to the test's temporary directory, where a
                // `shell` that checks the file runs.
                let Some(file) = args.first() else {
                    return fail("write_body: needs a file name");
                };
                let Some(body) = self.body.as_ref() else {
                    return fail("write_body: no body received yet");
                };
                let dir = self.ctx.macro_value("tmpdir").map_err(Stop::Fail)?;
                std::fs::write(std::path::Path::new(&dir).join(file), body)
                    .or_else(|e| fail(format!("write_body {file}: {e}")))
            }
            "close" => {
                self.close();
                self.say("Closed");
                Ok(())
            }
            "accept" => self.accept(),
            "loop" => {
                let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
                let body = args.get(1).cloned().unwrap_or_default();
                for _ in 0..n {
                    self.run(&body)?;
                }
                Ok(())
            }
            "barrier" => match crate::barrier::command(self.ctx, &self.name, args) {
                Ok(()) => Ok(()),
                Err(crate::barrier::Stop::Fail(m)) => fail(m),
                Err(crate::barrier::Stop::Aborted) => Err(Stop::Quiet),
            },
            "non_fatal" => {
                self.fatal = false;
                Ok(())
            }
            "fatal" => {
                self.fatal = true;
                Ok(())
            }
            "txpri" | "rxpri" | "stream" | "settings" => fail(format!("{}: h2 not supported", w[0])),
            other => fail(format!("'{other}' is not supported by lacquer vtc yet")),
        }
    }

    // ----- transmit -----

    fn tx(&mut self, tag: &str, bytes: &[u8]) -> R<()> {
        self.dump(tag, bytes);
        let Some(s) = self.stream.as_mut() else {
            return fail("write on a closed connection");
        };
        let _ = s.set_write_timeout(Some(self.timeout.max(Duration::from_millis(1))));
        if let Err(e) = s.write_all(bytes) {
            return self.rx_err(format!("Write failed: {e}"));
        }
        Ok(())
    }

    /// `http_tx_parse_args`: headers, then a body, then Host and
    /// Content-Length as the flags say; returns the message.
    fn tx_message(
        &mut self,
        first: String,
        args: &[String],
        mut body: Option<Vec<u8>>,
        mut nohost: bool,
    ) -> R<Vec<u8>> {
        let mut out = first.into_bytes();
        out.extend_from_slice(b"\r\n");
        let mut nolen = false;
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "-nolen" => nolen = true,
                "-nohost" => nohost = true,
                "-hdr" => {
                    let h = args.get(i + 1).ok_or_else(|| Stop::Fail("-hdr: missing argument".into()))?;
                    let lower = h.to_ascii_lowercase();
                    if lower.starts_with("content-length:") || lower.starts_with("transfer-encoding:") {
                        nolen = true;
                    }
                    if lower.starts_with("host:") {
                        nohost = true;
                    }
                    out.extend_from_slice(h.as_bytes());
                    out.extend_from_slice(b"\r\n");
                    i += 1;
                }
                "-hdrlen" => {
                    let (Some(n), Some(l)) = (args.get(i + 1), args.get(i + 2)) else {
                        return fail("-hdrlen: needs a name and a length");
                    };
                    let l: usize = l.parse().unwrap_or(0);
                    out.extend_from_slice(format!("{n}: ").as_bytes());
                    out.extend((0..l).rev().map(|k| b'0' + (k % 10) as u8));
                    out.extend_from_slice(b"\r\n");
                    i += 2;
                }
                _ => break,
            }
            i += 1;
        }
        while i < args.len() {
            match args[i].as_str() {
                "-body" => {
                    let b = args.get(i + 1).ok_or_else(|| Stop::Fail("-body: missing argument".into()))?;
                    // As varnishtest, `\0` in a body is a NUL byte.
                    let mut v = Vec::with_capacity(b.len());
                    let mut k = 0;
                    let bytes = b.as_bytes();
                    while k < bytes.len() {
                        if bytes[k] == b'\\' && bytes.get(k + 1) == Some(&b'0') {
                            v.push(0);
                            k += 2;
                        } else {
                            v.push(bytes[k]);
                            k += 1;
                        }
                    }
                    body = Some(v);
                    i += 1;
                }
                "-bodylen" => {
                    let n: usize = args.get(i + 1).and_then(|a| a.parse().ok()).unwrap_or(0);
                    body = Some(synth_body(n));
                    i += 1;
                }
                "-gziplevel" | "-gzipresidual" => {
                    let a = &args[i];
                    let n = args.get(i + 1).and_then(|v| v.trim().parse::<i64>().ok());
                    let n = n.ok_or_else(|| Stop::Fail(format!("{a}: needs a number")))?;
                    if a == "-gziplevel" {
                        self.gziplevel = n as i32;
                    } else {
                        self.gzipresidual = u64::try_from(n).ok();
                    }
                    i += 1;
                }
                "-gzipbody" | "-gziplen" => {
                    let a = &args[i];
                    let v = args.get(i + 1).ok_or_else(|| Stop::Fail(format!("{a}: missing argument")))?;
                    let plain = if a == "-gzipbody" {
                        v.as_bytes().to_vec()
                    } else {
                        crate::gzip::random_body(v.trim().parse().unwrap_or(0))
                    };
                    body = Some(self.gzip(&plain)?);
                    out.extend_from_slice(b"Content-Encoding: gzip\r\n");
                    i += 1;
                }
                "-bodyfrom" => {
                    let f = args.get(i + 1).ok_or_else(|| Stop::Fail("-bodyfrom: missing argument".into()))?;
                    body = Some(std::fs::read(f).or_else(|e| fail(format!("-bodyfrom {f}: {e}")))?);
                    i += 1;
                }
                _ => break,
            }
            i += 1;
        }
        if let Some(extra) = args.get(i) {
            return fail(format!("Unknown http spec: {extra}"));
        }
        if !nohost {
            out.extend_from_slice(b"Host: 127.0.0.1\r\n");
        }
        if let (Some(b), false) = (&body, nolen) {
            out.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        if let Some(b) = body {
            out.extend_from_slice(&b);
        }
        Ok(out)
    }

    /// `vtc_gzip`: `plain` compressed at the session's level, its
    /// residual checked against `-gzipresidual`.
    fn gzip(&mut self, plain: &[u8]) -> R<Vec<u8>> {
        let (g, bits) = crate::gzip::gzip(plain, self.gziplevel).map_err(Stop::Fail)?;
        self.say(&bits.log());
        if let Some(want) = self.gzipresidual {
            if bits.residual() != want {
                return fail(format!("Wrong gzip residual got {} wanted {want}", bits.residual()));
            }
        }
        self.say(&format!("new bodylen {}", g.len()));
        self.dump("body", &g);
        Ok(g)
    }

    /// `gunzip`: the body last received, gunzipped in place.
    fn gunzip(&mut self) -> R<()> {
        let Some(body) = self.body.as_ref() else {
            return fail("gunzip: no body received yet");
        };
        let g = crate::gzip::gunzip(body).map_err(Stop::Fail)?;
        self.say(&g.bits.log());
        self.say(&format!("new bodylen {}", g.body.len()));
        self.dump("body", &g.body);
        self.bodylen = g.body.len().to_string();
        self.body = Some(g.body);
        Ok(())
    }

    fn txreq(&mut self, args: &[String]) -> R<()> {
        let (mut method, mut url, mut proto) = ("GET".to_string(), "/".to_string(), "HTTP/1.1".to_string());
        let mut i = 0;
        while i < args.len() {
            let v = || args.get(i + 1).cloned().ok_or_else(|| Stop::Fail(format!("{}: missing argument", args[i])));
            match args[i].as_str() {
                "-url" => url = v()?,
                "-proto" => proto = v()?,
                "-method" | "-req" => method = v()?,
                "-up" => return fail("txreq -up: h2 not supported"),
                _ => break,
            }
            i += 2;
        }
        let msg = self.tx_message(format!("{method} {url} {proto}"), &args[i..], None, false)?;
        self.tx("txreq", &msg)
    }

    fn txresp(&mut self, args: &[String]) -> R<()> {
        let (mut proto, mut status, mut reason) = ("HTTP/1.1".to_string(), "200".to_string(), "OK".to_string());
        let mut i = 0;
        while i < args.len() {
            let v = || args.get(i + 1).cloned().ok_or_else(|| Stop::Fail(format!("{}: missing argument", args[i])));
            match args[i].as_str() {
                "-proto" => proto = v()?,
                "-status" => status = v()?,
                "-reason" => reason = v()?,
                _ => break,
            }
            i += 2;
        }
        let msg = self.tx_message(format!("{proto} {status} {reason}"), &args[i..], Some(Vec::new()), true)?;
        self.tx("txresp", &msg)
    }

    // ----- receive -----

    /// Reads once more into the receive buffer; returns how many bytes
    /// came (0 at the end of the connection).
    fn fill(&mut self, what: &str) -> R<usize> {
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 16384];
        loop {
            if self.ctx.aborted() || self.broken() {
                return Err(Stop::Quiet);
            }
            let now = Instant::now();
            if now >= deadline {
                return self.rx_err(format!("HTTP rx timeout ({what}, {} ms)", self.timeout.as_millis()));
            }
            let Some(s) = self.stream.as_mut() else {
                return fail("read on a closed connection");
            };
            let _ = s.set_read_timeout(Some((deadline - now).min(POLL).max(Duration::from_millis(1))));
            match s.read(&mut buf) {
                Ok(n) => {
                    self.rx.extend_from_slice(&buf[..n]);
                    return Ok(n);
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(0),
                Err(e) => return self.rx_err(format!("HTTP rx failed ({what}): {e}")),
            }
        }
    }

    /// Takes exactly `n` bytes.
    fn rx_bytes(&mut self, n: usize) -> R<Vec<u8>> {
        while self.rx.len() < n {
            if self.fill("body")? == 0 {
                return self.rx_err(format!("HTTP rx EOF (wanted {n} bytes, got {})", self.rx.len()));
            }
        }
        Ok(self.rx.drain(..n).collect())
    }

    /// Takes a line, its `\n` included.
    fn rx_line(&mut self) -> R<Vec<u8>> {
        loop {
            if let Some(i) = self.rx.iter().position(|&c| c == b'\n') {
                return Ok(self.rx.drain(..=i).collect());
            }
            if self.fill("line")? == 0 {
                return self.rx_err("HTTP rx EOF (line)".into());
            }
        }
    }

    /// `http_rxhdr` and `http_splitheader`.
    fn rx_head(&mut self, is_req: bool) -> R<()> {
        let end = loop {
            let a = find(&self.rx, b"\r\n\r\n").map(|i| i + 4);
            let b = find(&self.rx, b"\n\n").map(|i| i + 2);
            if let Some(e) = match (a, b) {
                (Some(x), Some(y)) => Some(x.min(y)),
                (x, y) => x.or(y),
            } {
                break e;
            }
            if self.fill("hdr")? == 0 {
                return self.rx_err("HTTP rx EOF (hdr)".into());
            }
        };
        let head: Vec<u8> = self.rx.drain(..end).collect();
        self.dump("rxhdr", &head);
        self.say(&format!("rxhdrlen = {}", head.len()));
        let text = String::from_utf8_lossy(&head).into_owned();
        let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().unwrap_or("").trim_start();
        let mut h = HeadData::default();
        let (f0, rest) = first.split_once([' ', '\t']).unwrap_or((first, ""));
        let rest = rest.trim_start_matches([' ', '\t']);
        h.first[0] = Some(f0.to_string());
        if !rest.is_empty() {
            let (f1, rest) = rest.split_once([' ', '\t']).unwrap_or((rest, ""));
            h.first[1] = Some(f1.to_string());
            if !rest.is_empty() || first.ends_with(' ') {
                h.first[2] = Some(rest.trim_start_matches([' ', '\t']).to_string());
            }
        } else {
            h.first[1] = Some(String::new());
        }
        for l in lines {
            if l.is_empty() {
                break;
            }
            h.headers.push(l.to_string());
        }
        let mut log = String::new();
        for (n, f) in h.first.iter().flatten().chain(h.headers.iter()).enumerate() {
            log.push_str(&format!("http[{n:2}] |{f}\n"));
        }
        self.say(&log);
        if is_req {
            self.req = h;
        } else {
            self.resp = h;
        }
        self.body = None;
        self.bodylen = "0".into();
        self.body_rx = BodyRx::Unstarted;
        Ok(())
    }

    /// One chunk onto `body`; true at the last (empty) chunk.
    fn rx_chunk(&mut self, body: &mut Vec<u8>) -> R<bool> {
        let line = self.rx_line()?;
        let text = String::from_utf8_lossy(&line);
        let hex: String = text.trim_start().chars().take_while(char::is_ascii_hexdigit).collect();
        let Ok(n) = usize::from_str_radix(&hex, 16) else {
            return fail(format!("chunked: bad chunk size line {:?}", text.trim_end()));
        };
        self.chunklen = Some(n.to_string());
        if n == 0 {
            let _ = self.rx_line()?;
            return Ok(true);
        }
        let data = self.rx_bytes(n)?;
        self.dump("chunk", &data);
        body.extend_from_slice(&data);
        let crlf = self.rx_line()?;
        if crlf.as_slice() != b"\r\n" && crlf.as_slice() != b"\n" {
            return fail("chunked: no CRLF after the chunk's data");
        }
        Ok(false)
    }

    /// `http_swallow_body`: chunked, then Content-Length, then (where
    /// `eof_ok`) up to the end of the connection. With `max` (`rxrespbody
    /// -max N`), at most N more bytes are read (chunked: whole chunks until
    /// N or more came), and the next call goes on where this one stopped,
    /// adding to the same body.
    fn swallow_body(&mut self, is_req: bool, eof_ok: bool, max: Option<usize>) -> R<()> {
        if self.body_rx == BodyRx::Unstarted {
            let h = if is_req { &self.req } else { &self.resp };
            let te = h.header("transfer-encoding");
            let cl = h.header("content-length");
            self.body_rx = if te.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
                if cl.is_some() {
                    return self.rx_err("Both C-E: Chunked and C-L".into());
                }
                BodyRx::Chunked
            } else if let Some(cl) = cl {
                BodyRx::Length(number(&cl).max(0.0) as usize)
            } else if eof_ok {
                BodyRx::Eof
            } else {
                BodyRx::Length(0)
            };
            self.body = Some(Vec::new());
        }
        let mut body = self.body.take().unwrap_or_default();
        let r = self.body_part(&mut body, max.unwrap_or(usize::MAX));
        self.bodylen = body.len().to_string();
        self.say(&format!("bodylen = {}", body.len()));
        self.body = Some(body);
        r
    }

    /// Up to `max` more bytes of the body being received onto `body`.
    fn body_part(&mut self, body: &mut Vec<u8>, max: usize) -> R<()> {
        let mut left = max;
        while left > 0 {
            match self.body_rx {
                BodyRx::Unstarted | BodyRx::Done => break,
                BodyRx::Length(n) => {
                    let k = n.min(left);
                    let data = self.rx_bytes(k)?;
                    self.dump("c-l", &data);
                    body.extend_from_slice(&data);
                    left -= k;
                    self.body_rx = if n == k { BodyRx::Done } else { BodyRx::Length(n - k) };
                }
                BodyRx::Chunked => {
                    // Whole chunks, as varnishtest reads them even under
                    // `-max`.
                    let line = self.rx_line()?;
                    let text = String::from_utf8_lossy(&line);
                    let hex: String = text.trim_start().chars().take_while(char::is_ascii_hexdigit).collect();
                    let Ok(n) = usize::from_str_radix(&hex, 16) else {
                        return fail(format!("chunked: bad chunk size line {:?}", text.trim_end()));
                    };
                    self.chunklen = Some(n.to_string());
                    if n == 0 {
                        let _ = self.rx_line()?;
                        self.body_rx = BodyRx::Done;
                        break;
                    }
                    let data = self.rx_bytes(n)?;
                    self.dump("chunk", &data);
                    body.extend_from_slice(&data);
                    left = left.saturating_sub(n);
                    let crlf = self.rx_line()?;
                    if crlf.as_slice() != b"\r\n" && crlf.as_slice() != b"\n" {
                        return fail("chunked: no CRLF after the chunk's data");
                    }
                }
                BodyRx::Eof => {
                    if self.rx.is_empty() && self.fill("body")? == 0 {
                        self.body_rx = BodyRx::Done;
                        break;
                    }
                    let k = self.rx.len().min(left);
                    let data: Vec<u8> = self.rx.drain(..k).collect();
                    self.dump("rxeof", &data);
                    body.extend_from_slice(&data);
                    left -= k;
                }
            }
        }
        Ok(())
    }

    fn expect_close(&mut self) -> R<()> {
        loop {
            if !self.rx.is_empty() {
                let c = self.rx.remove(0);
                if c.is_ascii_whitespace() {
                    continue;
                }
                return fail(format!("Expecting close: read = 1, c = 0x{c:02x}"));
            }
            let n = match self.fill("expect_close") {
                Ok(n) => n,
                Err(Stop::Fail(m)) => return fail(format!("Expected close: {m}")),
                Err(q) => return Err(q),
            };
            if n == 0 {
                self.say("EOF, as expected");
                return Ok(());
            }
        }
    }

    /// The connection, taken away so that `close` leaves it open: how a
    /// `-keepalive` actor runs its next iteration on it.
    pub fn take_stream(&mut self) -> Option<Stream> {
        self.stream.take()
    }

    /// Shuts the connection down.
    pub fn close(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        self.rx.clear();
    }

    fn accept(&mut self) -> R<()> {
        let Some(l) = self.listener else {
            return fail("accept: only servers accept");
        };
        self.close();
        let s = accept_unless(self.ctx, l, self.brk.as_deref()).ok_or(Stop::Quiet)?;
        self.say("Accepted");
        self.remote = s.remote();
        self.stream = Some(s);
        Ok(())
    }

    // ----- expect -----

    fn resolve(&self, spec: &str) -> Option<String> {
        let body = || Some(self.body.as_ref().map_or(spec.to_string(), |b| body_text(b)));
        match spec {
            "req.method" => self.req.first[0].clone(),
            "req.url" => self.req.first[1].clone(),
            "req.proto" => self.req.first[2].clone(),
            "resp.proto" => self.resp.first[0].clone(),
            "resp.status" => self.resp.first[1].clone(),
            "resp.reason" => self.resp.first[2].clone(),
            "resp.chunklen" => self.chunklen.clone(),
            "req.bodylen" | "resp.bodylen" => Some(self.bodylen.clone()),
            "req.body" | "resp.body" => body(),
            "remote.ip" => Some(self.remote.0.clone()),
            "remote.port" => Some(self.remote.1.clone()),
            "remote.path" => self.remote.2.clone(),
            _ => {
                if let Some(h) = spec.strip_prefix("req.http.") {
                    self.req.header(h)
                } else if let Some(h) = spec.strip_prefix("resp.http.") {
                    self.resp.header(h)
                } else {
                    Some(spec.to_string())
                }
            }
        }
    }

    fn expect(&mut self, a: &[String]) -> R<()> {
        let [lhs_s, op, rhs_s] = a else {
            return fail("expect: needs three arguments");
        };
        if lhs_s.starts_with("h2.") || lhs_s.starts_with("stream.") {
            return fail(format!("expect {lhs_s}: not supported by lacquer vtc yet"));
        }
        let lhs = self.resolve(lhs_s);
        let rhs = self.resolve(rhs_s);
        let cl = lhs.clone().unwrap_or_else(|| "<undef>".into());
        let cr = rhs.clone().unwrap_or_else(|| "<undef>".into());
        let ok = match op.as_str() {
            "~" | "!~" => {
                let re = pcre2::bytes::RegexBuilder::new()
                    .build(&cr)
                    .or_else(|e| fail(format!("expect: bad regex {cr:?}: {e}")))?;
                re.is_match(cl.as_bytes()).unwrap_or(false) ^ (op == "!~")
            }
            "==" => cl == cr,
            "!=" => cl != cr,
            _ if lhs.is_none() || rhs.is_none() => false,
            // varnishtest compares numbers (as `strtod` reads them) with
            // both the C and the shell spelling of each operator.
            "<" | "-lt" => number(&cl) < number(&cr),
            ">" | "-gt" => number(&cl) > number(&cr),
            "<=" | "-le" => number(&cl) <= number(&cr),
            ">=" | "-ge" => number(&cl) >= number(&cr),
            "-eq" => number(&cl) == number(&cr),
            "-ne" => number(&cl) != number(&cr),
            _ => return fail(format!("EXPECT {lhs_s} ({cl}) {op} {rhs_s} ({cr}) test not implemented")),
        };
        if !ok {
            return fail(format!("EXPECT {lhs_s} ({cl}) {op} \"{cr}\" failed"));
        }
        self.say(&format!("EXPECT {lhs_s} ({cl}) {op} \"{cr}\" match"));
        Ok(())
    }
}

/// A body as `expect` sees it: text up to the first NUL.
fn body_text(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Accepts one connection, giving up (None) when the test is aborted.
pub fn accept(ctx: &Ctx, l: &Listener) -> Option<Stream> {
    accept_unless(ctx, l, None)
}

/// Accepts one connection, giving up (None) when the test is aborted or
/// `brk` is set (`server -break`).
pub fn accept_unless(ctx: &Ctx, l: &Listener, brk: Option<&AtomicBool>) -> Option<Stream> {
    let _ = l.set_nonblocking(true);
    loop {
        if ctx.aborted() || brk.is_some_and(|b| b.load(Ordering::SeqCst)) {
            return None;
        }
        match l.accept() {
            Ok(s) => return Some(s),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::Interrupted => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_bodies_are_varnishtests() {
        let b = synth_body(130);
        assert_eq!(b.len(), 130);
        assert_eq!(b[0], b'!');
        assert_eq!(b[63], b'\n');
        assert_eq!(b[64], b'"');
        assert_eq!(*b.last().unwrap(), b'\n');
    }

    #[test]
    fn numbers_parse_like_strtod() {
        assert_eq!(number("12abc"), 12.0);
        assert_eq!(number("  -3.5"), -3.5);
        assert_eq!(number("x"), 0.0);
    }
}
