//! The `tunnel` actor, as `vtc_tunnel.c`: it accepts one connection,
//! connects on its behalf to the destination (`-connect`, by default
//! `${v1_sock}`) and moves bytes unchanged both ways, unless paused; while
//! paused, its spec lets exactly N bytes through with `send N` (from the
//! source to the destination) or `recv N` (back).
//!
//! `tunnel tNAME [-listen ADDR] [-connect ADDR] [SPEC] [-start |
//! -start+pause | -wait]`. Its listening socket is bound when the tunnel is
//! declared, so that `${tNAME_sock}` (`_addr`, `_port`) can be used at once.
//! The spec (`pause`, `resume`, `send N`, `recv N`, `barrier`, `delay`)
//! runs once both connections are up; a spec that ends paused resumes the
//! tunnel, which then runs until both directions are closed. An end that
//! closes before the spec is over fails the test (as varnishtest's doc
//! says) when the spec next tries to steer the tunnel: `pause`, `resume`,
//! `send` or `recv` on a closed tunnel fails, and so does a `send` or
//! `recv` whose bytes cannot come. (An end closing just after the spec's
//! last `resume` is no failure: that `resume` is what let it finish.)
//!
//! Each direction has its own thread, reading into a buffer and writing
//! on only what the tunnel lets through: bytes "move" when they are
//! written to the other end, so a pause stops them even if they were
//! already read.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ctx::{Ctx, POLL};
use crate::net::{Listener, Stream};
use crate::parse::tokenize;

/// The two directions: from the accepted source to the destination
/// (`send`), and back (`recv`).
const SEND: usize = 0;
const RECV: usize = 1;

/// What the spec and the two movers share.
#[derive(Default)]
struct State {
    paused: bool,
    /// Bytes each direction may still move while paused.
    budget: [usize; 2],
    /// Whether each direction has seen its end of file.
    closed: [bool; 2],
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A declared tunnel.
pub struct Tunnel {
    listener: Arc<Listener>,
    connect: Option<String>,
    spec: String,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Tunnel {
    /// A tunnel listening on `listen` (default `127.0.0.1:0`), its macros
    /// defined.
    pub fn declare(ctx: &Ctx, name: &str, listen: &str) -> Result<Tunnel, String> {
        let l = Listener::bind(listen).map_err(|e| format!("tunnel {name}: cannot listen on {listen}: {e}"))?;
        let (addr, port, sock) = l.macros().map_err(|e| format!("tunnel {name}: {e}"))?;
        ctx.define(&format!("{name}_addr"), &addr);
        ctx.define(&format!("{name}_port"), &port);
        ctx.define(&format!("{name}_sock"), &sock);
        ctx.say(name, &format!("Listen on {sock}"));
        Ok(Tunnel { listener: Arc::new(l), connect: None, spec: String::new(), thread: None })
    }

    /// Runs the arguments after `tunnel tNAME` (macros already expanded,
    /// but not in the spec, which is expanded as it runs).
    pub fn command(&mut self, ctx: &Arc<Ctx>, name: &str, args: &[String]) -> Result<(), String> {
        let mut i = 0;
        while i < args.len() {
            match args[i].as_str() {
                "-connect" => {
                    i += 1;
                    let a = args.get(i).ok_or_else(|| format!("tunnel {name} -connect: missing address"))?;
                    self.connect = Some(a.clone());
                }
                "-listen" => return Err(format!("tunnel {name} -listen: only when the tunnel is declared")),
                "-start" | "-start+pause" => {
                    self.wait(name)?;
                    let connect = match &self.connect {
                        Some(c) => c.clone(),
                        None => ctx.macro_value("v1_sock")?,
                    };
                    let paused = args[i] == "-start+pause";
                    let (c, n, l, spec) = (ctx.clone(), name.to_string(), self.listener.clone(), self.spec.clone());
                    self.thread = Some(std::thread::spawn(move || {
                        let r = run(&c, &n, &l, &connect, &spec, paused);
                        if let Err(e) = &r {
                            c.fail(&n, e);
                        }
                        r
                    }));
                }
                "-wait" => self.wait(name)?,
                a if a.starts_with('-') => return Err(format!("tunnel {name} {a}: unknown option")),
                spec => self.spec = spec.to_string(),
            }
            i += 1;
        }
        Ok(())
    }

    /// Joins the tunnel's thread if it runs.
    pub fn wait(&mut self, name: &str) -> Result<(), String> {
        match self.thread.take().map(JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(format!("tunnel {name}: {e}")),
            Some(Err(_)) => Err(format!("tunnel {name}: its thread panicked")),
        }
    }
}

/// One tunnelled connection: accept, connect, move bytes while the spec
/// runs, then until both ends are closed.
fn run(ctx: &Arc<Ctx>, name: &str, l: &Listener, connect: &str, spec: &str, paused: bool) -> Result<(), String> {
    let Some(src) = crate::http::accept(ctx, l) else { return Ok(()) };
    ctx.say(name, "Accepted");
    let dst = Stream::connect(connect, ctx.session_timeout).map_err(|e| format!("Failed to open {connect}: {e}"))?;
    ctx.say(name, &format!("Connected to {connect}"));
    let shared = Arc::new(Shared::default());
    shared.lock().paused = paused;
    let (src2, dst2) = (src.try_clone().map_err(|e| e.to_string())?, dst.try_clone().map_err(|e| e.to_string())?);
    let movers =
        [mover(ctx.clone(), shared.clone(), SEND, src, dst2), mover(ctx.clone(), shared.clone(), RECV, dst, src2)];
    let r = run_spec(ctx, name, &shared, spec);
    {
        let mut st = shared.lock();
        st.paused = false;
    }
    shared.changed.notify_all();
    let mut result = r;
    for m in movers {
        match m.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = result.and(Err(e)),
            Err(_) => result = result.and(Err("a tunnel thread panicked".into())),
        }
    }
    ctx.say(name, "Ending");
    result
}

/// Moves bytes from `from` to `to` as the shared state allows, until
/// `from` ends (then `to` is shut down for writing) or the test stops.
fn mover(
    ctx: Arc<Ctx>,
    shared: Arc<Shared>,
    dir: usize,
    mut from: Stream,
    mut to: Stream,
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let mut pending: Vec<u8> = Vec::new();
        let mut buf = vec![0u8; 16384];
        let mut eof = false;
        let _ = from.set_read_timeout(Some(POLL));
        loop {
            if ctx.aborted() {
                return Ok(());
            }
            // What may move now.
            let allowed = {
                let st = shared.lock();
                if st.paused {
                    st.budget[dir]
                } else {
                    usize::MAX
                }
            };
            let k = allowed.min(pending.len());
            if k > 0 {
                to.write_all(&pending[..k]).map_err(|e| format!("tunnel write failed: {e}"))?;
                pending.drain(..k);
                let mut st = shared.lock();
                if st.paused {
                    st.budget[dir] -= k;
                }
                drop(st);
                shared.changed.notify_all();
                continue;
            }
            if eof {
                if pending.is_empty() {
                    let _ = to.shutdown(Shutdown::Write);
                    shared.lock().closed[dir] = true;
                    shared.changed.notify_all();
                    return Ok(());
                }
                // Paused with bytes still held: wait for the spec.
                let st = shared.lock();
                let _ = shared.changed.wait_timeout(st, POLL);
                continue;
            }
            if pending.len() >= buf.len() {
                let st = shared.lock();
                let _ = shared.changed.wait_timeout(st, POLL);
                continue;
            }
            match from.read(&mut buf) {
                Ok(0) => eof = true,
                Ok(n) => pending.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => eof = true,
            }
        }
    })
}

/// Runs the tunnel's spec.
fn run_spec(ctx: &Arc<Ctx>, name: &str, shared: &Shared, spec: &str) -> Result<(), String> {
    for c in tokenize(spec).map_err(|e| format!("spec: {e}"))? {
        if ctx.aborted() {
            return Ok(());
        }
        let mut w = Vec::with_capacity(c.tokens.len());
        for t in &c.tokens {
            w.push(ctx.expand(t)?);
        }
        ctx.say(name, &format!("=== {}", w.join(" ")));
        if matches!(w[0].as_str(), "pause" | "resume" | "send" | "recv") {
            let st = shared.lock();
            if let Some(dir) = (0..2).find(|&d| st.closed[d]) {
                let side = if dir == SEND { "source" } else { "destination" };
                return Err(format!("{}: the {side} closed before the end of the spec", w[0]));
            }
        }
        match w[0].as_str() {
            "pause" => {
                let mut st = shared.lock();
                if st.paused {
                    return Err("Already paused".into());
                }
                st.paused = true;
                st.budget = [0, 0];
            }
            "resume" => {
                let mut st = shared.lock();
                if !st.paused {
                    return Err("Not paused".into());
                }
                st.paused = false;
                drop(st);
                shared.changed.notify_all();
            }
            "send" | "recv" => {
                let dir = if w[0] == "send" { SEND } else { RECV };
                let n: usize = w.get(1).and_then(|n| n.parse().ok()).ok_or_else(|| format!("{}: bad length", w[0]))?;
                let mut st = shared.lock();
                if !st.paused {
                    return Err(format!("{}: the tunnel is not paused", w[0]));
                }
                st.budget[dir] += n;
                shared.changed.notify_all();
                while st.budget[dir] > 0 {
                    if ctx.aborted() {
                        return Ok(());
                    }
                    if st.closed[dir] {
                        return Err(format!("{} {n}: the connection closed with {} bytes to go", w[0], st.budget[dir]));
                    }
                    st = shared.changed.wait_timeout(st, POLL).unwrap_or_else(|e| e.into_inner()).0;
                }
            }
            "barrier" => match crate::barrier::command(ctx, name, &w[1..]) {
                Ok(()) => {}
                Err(crate::barrier::Stop::Fail(m)) => return Err(m),
                Err(crate::barrier::Stop::Aborted) => return Ok(()),
            },
            "delay" => {
                let s: f64 = w.get(1).and_then(|a| a.parse().ok()).unwrap_or(0.0);
                ctx.sleep(Duration::from_secs_f64(s.clamp(0.0, 3600.0)));
            }
            other => return Err(format!("'{other}' is not a tunnel command")),
        }
    }
    Ok(())
}
