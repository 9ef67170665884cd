//! `handoff`: gives a client's connection to another local process,
//! which answers on it directly (websockets, server-sent events, long
//! polls, big generated downloads), Lacquer out of the path.
//!
//! ```vcl
//! import handoff;
//! sub vcl_init {
//!     new app = handoff.endpoint(path = "/run/app.sock",
//!         command = "/usr/bin/app --socket /run/app.sock");
//! }
//! sub vcl_recv {
//!     if (req.url ~ "^/ws") {
//!         app.transfer();     # ends vcl_recv: nothing after it runs
//!     }
//! }
//! ```
//!
//! `app.transfer()` (in `vcl_recv`, as a statement) sends the client
//! socket, the request head as received and the bytes after it, and the
//! addresses to the process listening at `path` — the wire format of
//! `lacquer-handoff`, which is also that process's library — and waits up
//! to `timeout` for its answer. Then the request ends at once:
//!
//! - the process answered `OK`: the connection is its own; Lacquer logs
//!   `VCL_return handoff`, closes its copy and forgets it
//!   (`SessClose TX_HANDOFF`);
//! - anything else: a 503 through `vcl_synth`, reason `Handoff Failed`,
//!   and a `VCL_Log` line saying why (`handoff app: not accepting: …`,
//!   `… refused: …`, `… no answer: …`, `… busy: …`). The connection is
//!   kept alive when the process cannot have got it (it was not there,
//!   or too many transfers were under way), else closed after the 503.
//!
//! `app.route("/ws")` in `vcl_init` does the same before VCL runs, for
//! every request whose target starts with the prefix (the module's
//! `#[request_raw]` function): `vcl_recv` never sees those requests.
//!
//! Options of `handoff.endpoint`: `command`, a shell command starting the
//! process: run (with `sh -c`) on first use and again on the first use
//! after it died, no sooner than a back-off after its last start that
//! doubles from 100 ms to 10 s while it keeps dying within 10 s (in
//! back-off, transfers fail as not accepting); it is killed when the VCL
//! is discarded. `max_transfers` bounds the transfers under way at once
//! (beyond it: 503 "busy"); `timeout` bounds the wait for the socket
//! to appear after a start and for the process's answer.
//!
//! Security: only the path written in VCL is used; before each transfer
//! the path must be a socket owned by Lacquer's user or by root, so
//! another user cannot put a socket there and receive clients. Nothing a
//! client sends chooses where its connection goes except through VCL.
//!
//! Linked in, the module has the server's [`Host`](lacquer_module::Host);
//! built as a shared library it is refused the connection (the C ABI does
//! not carry `Host::connection` yet).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lacquer_module::{Ctx, Failure, NullStr, PrivVcl, RequestEnd};

use lacquer_handoff::wire::{self, Meta, SendError};

/// The process behind an endpoint, when Lacquer starts it.
struct Supervisor {
    command: String,
    child: Option<Child>,
    /// When it was last started, and the wait before the next start.
    started: Option<Instant>,
    backoff: Duration,
}

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

impl Supervisor {
    /// Starts the process unless it runs; `Ok(true)` when it was just
    /// started. In back-off the error says how long is left.
    fn ensure(&mut self) -> Result<bool, String> {
        if let Some(c) = &mut self.child {
            match c.try_wait() {
                Ok(None) => return Ok(false),
                _ => {
                    let _ = c.wait();
                    self.child = None;
                    // Died soon after its start: wait longer next time.
                    let lived = self.started.map_or(Duration::MAX, |t| t.elapsed());
                    self.backoff = if lived < BACKOFF_MAX { (self.backoff * 2).min(BACKOFF_MAX) } else { BACKOFF_MIN };
                }
            }
        }
        if let Some(t) = self.started {
            let since = t.elapsed();
            if since < self.backoff {
                return Err(format!("restarting in {:.1}s", (self.backoff - since).as_secs_f64()));
            }
        }
        let child = spawn(&self.command).map_err(|e| format!("cannot start '{}': {e}", self.command))?;
        self.child = Some(child);
        self.started = Some(Instant::now());
        Ok(true)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `sh -c command` from a thread that lives as long as the
/// process: the child is told to end (`SIGTERM`, Linux's
/// `PR_SET_PDEATHSIG`) when the thread that forked it ends, so it must
/// not be a worker thread that may come and go. Lacquer killed outright
/// thus takes its applications with it.
fn spawn(command: &str) -> std::io::Result<Child> {
    type Order = (String, std::sync::mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<Mutex<std::sync::mpsc::Sender<Order>>> = std::sync::OnceLock::new();
    let tx = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Order>();
        std::thread::Builder::new()
            .name("handoff-spawner".into())
            .spawn(move || {
                for (command, reply) in rx {
                    let _ = reply.send(spawn_here(&command));
                }
            })
            .expect("a thread");
        Mutex::new(tx)
    });
    let (reply, answer) = std::sync::mpsc::channel();
    tx.lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((command.to_string(), reply))
        .map_err(|_| std::io::Error::other("the spawner thread is gone"))?;
    answer.recv().map_err(|_| std::io::Error::other("the spawner thread is gone"))?
}

fn spawn_here(command: &str) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new("sh");
    cmd.arg("-c").arg(command).stdin(std::process::Stdio::null());
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Connects to `path`, waiting up to `wait` for a process that is
/// starting to listen.
fn connect(path: &Path, wait: Duration) -> Result<std::os::unix::net::UnixStream, String> {
    let deadline = Instant::now() + wait;
    loop {
        match wire::check_socket(path).and_then(|()| wire::connect(path).map_err(|e| e.to_string())) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Takes a slot of `max`, given back on drop.
struct Slot<'a>(&'a AtomicUsize);

impl<'a> Slot<'a> {
    fn take(n: &'a AtomicUsize, max: usize) -> Option<Slot<'a>> {
        let mut cur = n.load(Ordering::Relaxed);
        loop {
            if cur >= max {
                return None;
            }
            match n.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Some(Slot(n)),
                Err(now) => cur = now,
            }
        }
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An endpoint's state, shared by its VCL object and the routes that
/// name it (`app.route("/ws")`), which outlive no VCL.
struct Target {
    name: String,
    path: PathBuf,
    timeout: Duration,
    max: usize,
    busy: AtomicUsize,
    supervisor: Option<Mutex<Supervisor>>,
}

impl Target {
    /// Hands the client connection to the process and ends the request.
    fn transfer(&self, ctx: &mut Ctx) -> Result<(), Failure> {
        let conn = ctx.connection()?;
        let outcome = match Slot::take(&self.busy, self.max) {
            None => Err((format!("busy: {} transfers under way", self.max), false)),
            Some(_slot) => {
                let mut out = Err((String::new(), false));
                ctx.blocking(&mut || out = self.send(&conn));
                out
            }
        };
        drop(conn);
        match outcome {
            Ok(()) => {
                ctx.log(format!("handoff {}: handed to {}", self.name, self.path.display()).as_bytes());
                ctx.end_request(RequestEnd::HandedOff { to: self.path.display().to_string() })
            }
            Err((why, close)) => {
                ctx.log(format!("handoff {}: {}: {why}", self.name, self.path.display()).as_bytes());
                ctx.end_request(RequestEnd::Synth { status: 503, reason: "Handoff Failed".into(), close })
            }
        }
    }

    /// Starts the process if need be and sends the connection; the
    /// error says why and whether the process may have it.
    fn send(&self, conn: &lacquer_module::Connection) -> Result<(), (String, bool)> {
        let mut wait = Duration::ZERO;
        if let Some(s) = &self.supervisor {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            if s.ensure().map_err(|e| (format!("not accepting: {e}"), false))? {
                wait = self.timeout;
            }
        }
        let ctl = connect(&self.path, wait).map_err(|e| (format!("not accepting: {e}"), false))?;
        let i = &conn.info;
        let meta = Meta {
            client: Some(i.client),
            server: Some(i.server),
            remote: Some(i.remote),
            local: Some(i.local),
            xid: i.xid,
            sess_xid: i.sess_xid,
            listener: i.listener.clone(),
            proxy: i.proxy,
            head_len: conn.head_len,
            endpoint: self.name.clone(),
        };
        use std::os::fd::AsFd;
        wire::send_message(&ctl, conn.fd.as_fd(), &meta, &conn.received, self.timeout).map_err(|e: SendError| {
            let close = e.maybe_delivered();
            (e.to_string(), close)
        })
    }
}

/// The URL prefixes `route()` gave, per VCL, in the order given: what the
/// `request_raw` function hands off before VCL runs.
#[derive(Default)]
pub struct Routes(Mutex<Vec<(Vec<u8>, Arc<Target>)>>);

/// The request target of a head's first line (`GET /ws?x HTTP/1.1`).
fn request_target(head: &[u8]) -> &[u8] {
    let line = head.split(|&b| b == b'\n').next().unwrap_or(b"");
    line.split(|&b| b == b' ').nth(1).unwrap_or(b"")
}

#[lacquer_module::module(name = "handoff")]
pub mod vmod {
    //! Hands client connections to another local process.

    use super::*;

    /// A process that takes client connections on a Unix socket.
    pub struct Endpoint {
        t: Arc<Target>,
    }

    impl Endpoint {
        /// The process listening at *path* (an absolute path); *command*
        /// starts it on first use and again after it died; at most
        /// *max_transfers* transfers at once; *timeout* for the process
        /// to listen after a start and to answer a transfer.
        pub fn new(
            ctx: &mut Ctx,
            path: &str,
            command: Option<&str>,
            #[default(1000)] max_transfers: i64,
            #[default(5)] timeout: lacquer_module::Duration,
        ) -> Result<Endpoint, Failure> {
            let name = ctx.object_name().unwrap_or("handoff").to_string();
            if !path.starts_with('/') {
                return Err(Failure(format!("handoff.endpoint: path '{path}' is not absolute")));
            }
            if max_transfers < 1 {
                return Err(Failure(format!("handoff.endpoint: max_transfers {max_transfers} is below 1")));
            }
            if !(timeout.0 > 0.0 && timeout.0.is_finite()) {
                return Err(Failure(format!("handoff.endpoint: bad timeout {}", timeout.0)));
            }
            let supervisor = command.filter(|c| !c.is_empty()).map(|c| {
                Mutex::new(Supervisor { command: c.to_string(), child: None, started: None, backoff: BACKOFF_MIN })
            });
            let t = Target {
                name,
                path: PathBuf::from(path),
                timeout: Duration::from_secs_f64(timeout.0),
                max: max_transfers as usize,
                busy: AtomicUsize::new(0),
                supervisor,
            };
            Ok(Endpoint { t: Arc::new(t) })
        }

        /// Hands the client connection to the process and ends the
        /// request: handed off, or a 503 through `vcl_synth` when the
        /// process is not there, not accepting, or refuses.
        pub fn transfer(&self, ctx: &mut Ctx) -> Result<(), Failure> {
            self.t.transfer(ctx)
        }

        /// Hands off, before VCL runs, every request whose target starts
        /// with *prefix*: the zero-VCL route (`vcl_recv` never sees them;
        /// a failed transfer is its 503 all the same). Called in
        /// `vcl_init`; the first route that matches wins.
        #[restrict(vcl_init)]
        pub fn route(&self, prefix: &str, routes: PrivVcl<Routes>) -> Result<(), Failure> {
            if !prefix.starts_with('/') {
                return Err(Failure(format!("handoff {}: route '{prefix}' does not start with '/'", self.t.name)));
            }
            let routes = routes.get_or_init(Routes::default)?;
            routes.0.lock().unwrap_or_else(|e| e.into_inner()).push((prefix.as_bytes().to_vec(), self.t.clone()));
            Ok(())
        }
    }

    /// Sees each request's head before VCL: a request whose target a
    /// `route()` prefix starts is handed off there and then.
    #[request_raw]
    pub fn routed(ctx: &mut Ctx, head: NullStr, routes: PrivVcl<Routes>) -> Result<(), Failure> {
        let Ok(routes) = routes.get_or_init(Routes::default) else { return Ok(()) };
        let target = request_target(head.0.unwrap_or(b""));
        let hit = routes
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(p, _)| target.starts_with(p))
            .map(|(_, t)| t.clone());
        match hit {
            Some(t) => t.transfer(ctx),
            None => Ok(()),
        }
    }
}
