//! The `barrier` command, as `vtc_barrier.c` of varnishtest 7.1.1: named
//! meeting points that any actor (the top level, a server, a client) can
//! declare and sync on.
//!
//! A `cond` barrier counts the actors that sync on it; the last one wakes
//! them all. A `sock` barrier listens on a socket, defines `${bN_addr}`,
//! `${bN_port}` and `${bN_sock}` (`host:port`), and counts connections:
//! a local `sync` connects and reads until the barrier closes the
//! connection, and so can any other process (a shell command, a VMOD). A
//! non-cyclic barrier is used once (a sock barrier then stops listening
//! and its macros are undefined); a `-cyclic` one resets after each round.
//!
//! The options `-start`, `-wait` and `-sync` do not exist in varnishtest
//! 7.1.1 and are refused as it refuses them ("Unknown barrier argument").
//!
//! Waits never hang a test: they poll its abort flag, which its end, its
//! first failure or its timeout sets, and a wait given up on is logged with
//! how many had arrived. `Ctx::barrier_report` names the barriers still
//! being waited on, for the message of a test that timed out.

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::ctx::{Ctx, POLL};

/// Why a barrier command did not complete.
#[derive(Debug, PartialEq)]
pub enum Stop {
    /// The test fails with this message.
    Fail(String),
    /// The test was aborted while waiting; whoever aborted it says why.
    Aborted,
}

fn fail<T>(msg: impl Into<String>) -> Result<T, Stop> {
    Err(Stop::Fail(msg.into()))
}

/// A barrier's kind, set by its declaration.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    None,
    Cond,
    Sock,
}

#[derive(Debug)]
struct State {
    kind: Kind,
    expected: u32,
    waiters: u32,
    cyclic: bool,
    /// How many rounds of a cond barrier have completed.
    cycle: u64,
}

/// One barrier.
#[derive(Debug)]
struct Barrier {
    name: String,
    state: Mutex<State>,
    cond: Condvar,
}

impl Barrier {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The barriers of one test, by name.
#[derive(Default)]
pub struct Barriers {
    map: Mutex<HashMap<String, Arc<Barrier>>>,
}

impl Barriers {
    /// Barrier `name`, made on first use.
    fn get(&self, name: &str) -> Arc<Barrier> {
        let mut m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Barrier {
                    name: name.to_string(),
                    state: Mutex::new(State { kind: Kind::None, expected: 0, waiters: 0, cyclic: false, cycle: 0 }),
                    cond: Condvar::new(),
                })
            })
            .clone()
    }

    /// The barriers some actor is waiting on, as `b1 (1 of 2)`.
    pub fn report(&self) -> Vec<String> {
        let m = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<String> = m
            .values()
            .filter_map(|b| {
                let s = b.lock();
                (s.waiters > 0 && s.waiters < s.expected)
                    .then(|| format!("{} ({} of {})", b.name, s.waiters, s.expected))
            })
            .collect();
        v.sort();
        v
    }
}

/// `strtoul(s, NULL, 0)`: decimal, `0x` hexadecimal or `0` octal, up to
/// the first character that is not a digit; 0 if none.
fn strtoul(s: &str) -> u64 {
    let s = s.trim_start();
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let end = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    u64::from_str_radix(&digits[..end], radix).unwrap_or(0)
}

/// Runs `barrier ARGS...` for actor `who`; `args` start with the
/// barrier's name.
pub fn command(ctx: &Arc<Ctx>, who: &str, args: &[String]) -> Result<(), Stop> {
    let Some((name, rest)) = args.split_first() else {
        return fail("barrier: missing name");
    };
    if !name.starts_with('b') {
        return fail(format!("Barrier name must start with 'b' (got {name})"));
    }
    let b = ctx.barriers.get(name);
    let mut i = 0;
    while i < rest.len() {
        match rest[i].as_str() {
            k @ ("cond" | "sock") => {
                i += 1;
                let Some(n) = rest.get(i) else {
                    return fail(format!("Barrier({name}) {k}: missing count"));
                };
                expect(&b, n)?;
                if k == "cond" {
                    b.lock().kind = Kind::Cond;
                } else {
                    start_sock(ctx, &b)?;
                }
            }
            "-cyclic" => {
                let mut s = b.lock();
                if s.kind == Kind::None {
                    return fail(format!("Barrier({name}) use error: not initialized"));
                }
                if s.waiters != 0 {
                    return fail(format!("Barrier({name}) use error: already in use"));
                }
                s.cyclic = true;
            }
            "sync" => sync(ctx, who, &b)?,
            other => return fail(format!("Unknown barrier argument: {other}")),
        }
        i += 1;
    }
    Ok(())
}

/// `barrier_expect`: a declaration's count, once per barrier.
fn expect(b: &Barrier, n: &str) -> Result<(), Stop> {
    let mut s = b.lock();
    if s.kind != Kind::None {
        return fail(format!("Barrier({}) use error: already initialized", b.name));
    }
    let n = strtoul(n);
    if n < 2 {
        return fail(format!("Barrier({}) use error: wrong expectation ({n})", b.name));
    }
    s.expected = u32::try_from(n).or_else(|_| fail(format!("Barrier({}): count {n} is too large", b.name)))?;
    Ok(())
}

fn sync(ctx: &Arc<Ctx>, who: &str, b: &Barrier) -> Result<(), Stop> {
    let kind = b.lock().kind;
    match kind {
        Kind::None => fail(format!("Barrier({}) use error: not initialized", b.name)),
        Kind::Cond => cond_sync(ctx, who, b),
        Kind::Sock => sock_sync(ctx, who, b),
    }
}

fn cond_sync(ctx: &Ctx, who: &str, b: &Barrier) -> Result<(), Stop> {
    let mut s = b.lock();
    if s.waiters == s.expected {
        return fail(format!("Barrier({}) use error: more waiters than the {} expected", b.name, s.expected));
    }
    s.waiters += 1;
    if s.waiters == s.expected {
        ctx.say(who, &format!("Barrier({}) wake {}", b.name, s.expected));
        s.cycle += 1;
        if s.cyclic {
            s.waiters = 0;
        }
        b.cond.notify_all();
        return Ok(());
    }
    ctx.say(who, &format!("Barrier({}) wait {} of {}", b.name, s.waiters, s.expected));
    let cycle = s.cycle;
    while s.cycle == cycle {
        if ctx.aborted() {
            ctx.say(
                who,
                &format!("Barrier({}) given up: {} of {} arrived before the test ended", b.name, s.waiters, s.expected),
            );
            return Err(Stop::Aborted);
        }
        s = b.cond.wait_timeout(s, POLL).unwrap_or_else(|e| e.into_inner()).0;
    }
    Ok(())
}

/// `barrier_sock`: listens, defines the macros, and counts connections on
/// a thread of its own until the test ends (or, unless cyclic, until the
/// first round completes).
fn start_sock(ctx: &Arc<Ctx>, b: &Arc<Barrier>) -> Result<(), Stop> {
    let l = TcpListener::bind("127.0.0.1:0").or_else(|e| fail(format!("Barrier({}): cannot listen: {e}", b.name)))?;
    let a = l.local_addr().or_else(|e| fail(format!("Barrier({}): {e}", b.name)))?;
    let _ = l.set_nonblocking(true);
    let name = &b.name;
    let macros = [
        (format!("{name}_addr"), a.ip().to_string()),
        (format!("{name}_port"), a.port().to_string()),
        (format!("{name}_sock"), a.to_string()),
    ];
    for (k, v) in &macros {
        ctx.define(k, v);
        ctx.say(name, &format!("macro def {k}={v}"));
    }
    b.lock().kind = Kind::Sock;
    let (ctx, b) = (ctx.clone(), b.clone());
    std::thread::spawn(move || {
        let mut conns: Vec<TcpStream> = Vec::new();
        while !ctx.aborted() {
            let s = match l.accept() {
                Ok((s, _)) => s,
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
            };
            conns.push(s);
            let mut st = b.lock();
            st.waiters += 1;
            if st.waiters < st.expected {
                ctx.say(&b.name, &format!("Barrier({}) wait {} of {}", b.name, st.waiters, st.expected));
                continue;
            }
            ctx.say(&b.name, &format!("Barrier({}) wake {}", b.name, st.expected));
            // Closing the connections is what wakes the waiters.
            conns.clear();
            if !st.cyclic {
                for (k, _) in &macros {
                    ctx.undefine(k);
                    ctx.say(&b.name, &format!("macro undef {k}"));
                }
                break;
            }
            st.waiters = 0;
        }
    });
    Ok(())
}

/// `barrier_sock_sync`: connects to the barrier and reads until it closes
/// the connection.
fn sock_sync(ctx: &Ctx, who: &str, b: &Barrier) -> Result<(), Stop> {
    let addr = ctx.macro_value(&format!("{}_sock", b.name)).map_err(Stop::Fail)?;
    ctx.say(who, &format!("Barrier({}) sync with socket", b.name));
    let mut last = None;
    let mut stream = None;
    for a in addr.to_socket_addrs().or_else(|e| fail(format!("Barrier({}) connection failed: {e}", b.name)))? {
        match TcpStream::connect_timeout(&a, ctx.session_timeout.max(Duration::from_millis(100))) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some(mut s) = stream else {
        let e = last.map_or_else(|| "no address".to_string(), |e| e.to_string());
        return fail(format!("Barrier({}) connection failed: {e}", b.name));
    };
    let _ = s.set_read_timeout(Some(POLL));
    let mut buf = [0u8; 32];
    loop {
        if ctx.aborted() {
            let st = b.lock();
            ctx.say(
                who,
                &format!(
                    "Barrier({}) given up: {} of {} arrived before the test ended",
                    b.name, st.waiters, st.expected
                ),
            );
            return Err(Stop::Aborted);
        }
        match s.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => return fail(format!("Barrier({}) unexpected data ({n}B)", b.name)),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(()),
            Err(e) => return fail(format!("Barrier({}) read failed: {e}", b.name)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn counts_parse_like_strtoul() {
        assert_eq!(strtoul("2"), 2);
        assert_eq!(strtoul("0x3"), 3);
        assert_eq!(strtoul("010"), 8);
        assert_eq!(strtoul("7x"), 7);
        assert_eq!(strtoul("x"), 0);
    }

    #[test]
    fn declarations_are_checked() {
        let ctx = Arc::new(Ctx::new(Duration::from_secs(1)));
        assert!(command(&ctx, "top", &words("x1 cond 2")).is_err());
        assert!(command(&ctx, "top", &words("b1 cond 1")).is_err());
        assert!(command(&ctx, "top", &words("b2 sync")).is_err());
        assert!(command(&ctx, "top", &words("b2 -cyclic")).is_err());
        assert!(command(&ctx, "top", &words("b3 cond 2 -cyclic")).is_ok());
        assert!(command(&ctx, "top", &words("b3 cond 2")).is_err());
        assert!(command(&ctx, "top", &words("b3 -start")).is_err());
    }

    #[test]
    fn a_cond_barrier_meets_and_a_used_one_refuses_more() {
        let ctx = Arc::new(Ctx::new(Duration::from_secs(1)));
        command(&ctx, "top", &words("b1 cond 2")).unwrap();
        let c = ctx.clone();
        let t = std::thread::spawn(move || command(&c, "c1", &words("b1 sync")));
        command(&ctx, "top", &words("b1 sync")).unwrap();
        t.join().unwrap().unwrap();
        assert!(matches!(command(&ctx, "top", &words("b1 sync")), Err(Stop::Fail(m)) if m.contains("more waiters")));
    }

    #[test]
    fn a_wait_ends_when_the_test_is_aborted() {
        let ctx = Arc::new(Ctx::new(Duration::from_secs(1)));
        command(&ctx, "top", &words("b1 cond 2")).unwrap();
        let c = ctx.clone();
        let t = std::thread::spawn(move || command(&c, "top", &words("b1 sync")));
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(ctx.barriers.report(), vec!["b1 (1 of 2)".to_string()]);
        ctx.abort();
        assert_eq!(t.join().unwrap(), Err(Stop::Aborted));
    }

    #[test]
    fn a_cyclic_sock_barrier_counts_outside_connections() {
        let ctx = Arc::new(Ctx::new(Duration::from_secs(1)));
        command(&ctx, "top", &words("b1 sock 2 -cyclic")).unwrap();
        let addr = ctx.macro_value("b1_sock").unwrap();
        for _ in 0..2 {
            let a = addr.clone();
            let t = std::thread::spawn(move || {
                let mut s = TcpStream::connect(a).unwrap();
                let mut v = Vec::new();
                s.read_to_end(&mut v).unwrap();
                v.len()
            });
            command(&ctx, "top", &words("b1 sync")).unwrap();
            assert_eq!(t.join().unwrap(), 0);
        }
        ctx.abort();
    }
}
