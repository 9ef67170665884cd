//! The `server` and `client` actors: each runs its HTTP spec on a thread,
//! once per connection.
//!
//! A server stops quietly, wherever it is in its spec, when `server -break`
//! sets its break flag. A client may open each connection with a PROXY
//! protocol header (`-proxy1`, `-proxy2`, as `vtc_proxy.c` writes them)
//! and a receive buffer size (`-rcvbuf`).

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::ctx::Ctx;
use crate::http::{accept_unless, Session, Stop};
use crate::net::{Listener, Stream};

/// How an actor runs its spec.
#[derive(Clone, Copy)]
pub struct Repeat {
    /// How many times.
    pub count: usize,
    /// `-keepalive`: every iteration on the same connection instead of a
    /// new one each.
    pub keepalive: bool,
}

/// Runs `spec` on `stream`; a failure is recorded on `ctx` and returned.
/// Answers the stream, still open, if the spec did not close it and
/// `keep` asks for it.
fn session(
    ctx: &Arc<Ctx>,
    name: &str,
    stream: Stream,
    listener: Option<&Listener>,
    spec: &str,
    keep: bool,
    brk: Option<&Arc<AtomicBool>>,
) -> Result<Option<Stream>, String> {
    let mut s = Session::new(ctx, name, stream, listener);
    if let Some(b) = brk {
        s.set_break(b.clone());
    }
    let r = s.run(spec);
    // A failure is recorded before the connection closes, so that the
    // peer's end-of-file does not become the test's verdict.
    if let Err(Stop::Fail(m)) = &r {
        ctx.fail(name, m);
    }
    let left = if keep && r.is_ok() { s.take_stream() } else { None };
    s.close();
    match r {
        Ok(()) | Err(Stop::Quiet) => Ok(left),
        Err(Stop::Fail(m)) => Err(m),
    }
}

/// Starts server `name`: `repeat` connections accepted one after another
/// (or one connection, with `-keepalive`), or (with `dispatch`) every
/// connection on its own thread until the test ends; all of it until
/// `brk` is set.
pub fn start_server(
    ctx: Arc<Ctx>,
    name: String,
    listener: Arc<Listener>,
    spec: String,
    repeat: Repeat,
    dispatch: bool,
    brk: Arc<AtomicBool>,
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        if dispatch {
            let mut workers = Vec::new();
            while let Some(stream) = accept_unless(&ctx, &listener, Some(&brk)) {
                let (c, n, sp, l, b) = (ctx.clone(), name.clone(), spec.clone(), listener.clone(), brk.clone());
                workers.push(std::thread::spawn(move || session(&c, &n, stream, Some(&l), &sp, false, Some(&b))));
            }
            let mut r = Ok(());
            for w in workers {
                if let Ok(Err(e)) = w.join() {
                    r = Err(e);
                }
            }
            return r;
        }
        let mut kept = None;
        for _ in 0..repeat.count {
            let stream = match kept.take() {
                Some(s) => s,
                None => {
                    let Some(s) = accept_unless(&ctx, &listener, Some(&brk)) else {
                        return Ok(());
                    };
                    ctx.say(&name, "accepted a connection");
                    s
                }
            };
            kept = session(&ctx, &name, stream, Some(&listener), &spec, repeat.keepalive, Some(&brk))?;
            if brk.load(std::sync::atomic::Ordering::SeqCst) {
                ctx.say(&name, "Broken");
                return Ok(());
            }
        }
        ctx.say(&name, "Ending");
        Ok(())
    })
}

/// What a client does with each connection it opens, before its spec.
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// `-proxy1` (1) or `-proxy2` (2) and its `CLIENTIP:PORT SERVERIP:PORT`.
    pub proxy: Option<(u8, String)>,
    /// `-rcvbuf`: the socket's receive buffer size.
    pub rcvbuf: Option<usize>,
}

/// A PROXY protocol header, version 1 or 2, as varnishtest's
/// `vtc_send_proxy` writes it for `CLIENTIP:PORT SERVERIP:PORT`.
pub fn proxy_header(version: u8, spec: &str) -> Result<Vec<u8>, String> {
    let bad = || format!("-proxy{version}: expected \"CLIENTIP:PORT SERVERIP:PORT\", got {spec:?}");
    let (c, s) = spec.trim().split_once(char::is_whitespace).ok_or_else(bad)?;
    // An address without a port has port 0, as varnishtest resolves it.
    let addr = |a: &str| -> Result<SocketAddr, String> {
        let a = a.trim();
        a.parse::<SocketAddr>()
            .or_else(|_| a.parse::<std::net::IpAddr>().map(|ip| SocketAddr::new(ip, 0)))
            .map_err(|_| bad())
    };
    let (c, s) = (addr(c)?, addr(s)?);
    if c.is_ipv4() != s.is_ipv4() {
        return Err(format!("-proxy{version}: the two addresses are not of one family: {spec:?}"));
    }
    if version == 1 {
        let fam = if c.is_ipv4() { "TCP4" } else { "TCP6" };
        return Ok(format!("PROXY {fam} {} {} {} {}\r\n", c.ip(), s.ip(), c.port(), s.port()).into_bytes());
    }
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    // Version 2, PROXY; TCP over IPv4 or IPv6; the addresses' length.
    h.push(0x21);
    match (c.ip(), s.ip()) {
        (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) => {
            h.extend_from_slice(&[0x11, 0x00, 0x0c]);
            h.extend_from_slice(&a.octets());
            h.extend_from_slice(&b.octets());
        }
        (a, b) => {
            let v6 = |ip: std::net::IpAddr| match ip {
                std::net::IpAddr::V6(x) => x.octets(),
                std::net::IpAddr::V4(x) => x.to_ipv6_mapped().octets(),
            };
            h.extend_from_slice(&[0x21, 0x00, 0x24]);
            h.extend_from_slice(&v6(a));
            h.extend_from_slice(&v6(b));
        }
    }
    h.extend_from_slice(&c.port().to_be_bytes());
    h.extend_from_slice(&s.port().to_be_bytes());
    Ok(h)
}

/// Starts client `name`: `repeat` connections to `addr` (a Unix socket
/// path, `host:port` or `host port`), one after another, or one with
/// `-keepalive`.
pub fn start_client(
    ctx: Arc<Ctx>,
    name: String,
    addr: String,
    spec: String,
    repeat: Repeat,
    opts: ClientOptions,
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let mut kept = None;
        for _ in 0..repeat.count {
            if ctx.aborted() {
                return Ok(());
            }
            let stream = match kept.take() {
                Some(s) => s,
                None => match Stream::connect(&addr, ctx.session_timeout) {
                    Ok(mut s) => {
                        ctx.say(&name, &format!("connected to {addr}"));
                        if let Some(n) = opts.rcvbuf {
                            s.set_rcvbuf(n);
                        }
                        if let Some((v, p)) = &opts.proxy {
                            let sent = proxy_header(*v, p).and_then(|h| s.write_all(&h).map_err(|e| e.to_string()));
                            if let Err(m) = sent {
                                ctx.fail(&name, &m);
                                return Err(m);
                            }
                            ctx.say(&name, &format!("sent a PROXY version {v} header for {p}"));
                        }
                        s
                    }
                    Err(e) => {
                        let m = format!("Failed to open {addr}: {e}");
                        ctx.fail(&name, &m);
                        return Err(m);
                    }
                },
            };
            kept = session(&ctx, &name, stream, None, &spec, repeat.keepalive, None)?;
        }
        ctx.say(&name, "Ending");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::proxy_header;

    #[test]
    fn proxy_headers_are_varnishtests() {
        assert_eq!(proxy_header(1, "1.2.3.4:1234 5.6.7.8:5678").unwrap(), b"PROXY TCP4 1.2.3.4 5.6.7.8 1234 5678\r\n");
        assert_eq!(proxy_header(1, "[1:f::2]:1234 [5:a::8]:5678").unwrap(), b"PROXY TCP6 1:f::2 5:a::8 1234 5678\r\n");
        let h = proxy_header(2, "1.2.3.4:2314 5.6.7.8:2828").unwrap();
        assert_eq!(h[..12], *b"\r\n\r\n\0\r\nQUIT\n");
        assert_eq!(h[12..], [0x21, 0x11, 0, 12, 1, 2, 3, 4, 5, 6, 7, 8, 0x09, 0x0a, 0x0b, 0x0c]);
        assert_eq!(proxy_header(2, "[::1]:1 [::2]:2").unwrap().len(), 16 + 36);
        assert_eq!(proxy_header(1, "1.2.3.4 5.6.7.8").unwrap(), b"PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n");
        assert!(proxy_header(1, "1.2.3.4:1").is_err());
        assert!(proxy_header(1, "localhost:1 5.6.7.8:2").is_err());
        assert!(proxy_header(1, "1.2.3.4:1 [::1]:2").is_err());
    }
}
