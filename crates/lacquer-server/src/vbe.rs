//! Backends (Varnish's `vbe`): where a backend is, how to open a connection
//! to it within its connect timeout, a small pool of idle connections kept
//! for reuse, its health as the probe ([`crate::probe`]) last judged it, and
//! how many connections it has in use against its `.max_connections`.
//!
//! As in Varnish's `vbe_dir_getfd`, a backend refuses before it connects:
//! a sick backend fails with "backend NAME: unhealthy", a backend at its
//! `.max_connections` with "backend NAME: busy", at once and without
//! waiting for a connection to come free. Both checks sit in
//! [`Backend::get`] and [`Backend::connect`], so a fetch and a pipe meet
//! them alike.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use lacquer_vcl::program::BackendDef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

/// A connection to a backend, over TCP or a Unix socket.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {
    /// The socket's descriptor and its local address, for `BackendOpen`
    /// (`0.0.0.0 0` over a Unix socket, as Varnish logs it).
    fn describe(&self) -> (i32, SocketAddr);
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

impl Io for TcpStream {
    fn describe(&self) -> (i32, SocketAddr) {
        (std::os::fd::AsRawFd::as_raw_fd(self), self.local_addr().unwrap_or_else(|_| unspecified()))
    }
}

impl Io for tokio::io::DuplexStream {
    fn describe(&self) -> (i32, SocketAddr) {
        (-1, unspecified())
    }
}

impl Io for UnixStream {
    fn describe(&self) -> (i32, SocketAddr) {
        (std::os::fd::AsRawFd::as_raw_fd(self), unspecified())
    }
}

/// What `backend.set_health` can say of a backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Admin {
    /// The probe decides (or healthy, without one).
    Auto = 0,
    Healthy = 1,
    Sick = 2,
}

impl std::fmt::Display for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Admin::Auto => "auto",
            Admin::Healthy => "healthy",
            Admin::Sick => "sick",
        })
    }
}

/// How many idle connections a backend keeps.
const POOL_MAX: usize = 16;

/// A connection taken from a backend, and whether it was used before (a
/// reused connection may have been closed by the backend meanwhile, so a
/// failure on it before any response byte is worth one more try on a new
/// one).
///
/// A `Conn` counts as one of the backend's connections in use (Varnish's
/// `n_conn`) for as long as it lives: given back with
/// [`Backend::recycle`] it goes idle and stops counting, and dropped it
/// stops counting as it closes. It reads and writes as its socket does, so
/// a pipe can tunnel through it directly.
pub(crate) struct Conn {
    pub io: Box<dyn Io>,
    pub reused: bool,
    /// This connection's place in the backend's count of connections in use.
    _slot: Slot,
}

/// One unit of a backend's count of connections in use, given back when
/// dropped.
struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// How long a backend is not tried after a connect failed (Varnish's
/// `backend_local_error_holddown` for a fault on our side, such as
/// EACCES or EADDRNOTAVAIL, and `backend_remote_error_holddown` for one on
/// the other, such as ECONNREFUSED or ENETUNREACH), so that a dead backend
/// is not hammered with connects.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Holddown {
    pub local: f64,
    pub remote: f64,
}

impl Holddown {
    pub fn from_params(p: &crate::Params) -> Holddown {
        Holddown { local: p.backend_local_error_holddown, remote: p.backend_remote_error_holddown }
    }

    /// How long a failed connect's error holds the backend down.
    fn after(&self, e: &io::Error) -> f64 {
        const EPERM: i32 = 1;
        const EACCES: i32 = 13;
        const EADDRNOTAVAIL: i32 = 99;
        const ENETUNREACH: i32 = 101;
        const ECONNREFUSED: i32 = 111;
        match e.raw_os_error() {
            Some(EPERM | EACCES | EADDRNOTAVAIL) => self.local,
            Some(ECONNREFUSED | ENETUNREACH) => self.remote,
            _ => 0.0,
        }
    }
}

/// The error of a connect not tried: the backend is held down.
#[derive(Debug)]
pub(crate) struct HeldDown;

impl std::fmt::Display for HeldDown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("held down after a failed connect")
    }
}

impl std::error::Error for HeldDown {}

/// Whether `e` says the backend was held down rather than tried.
pub(crate) fn is_held_down(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|r| r.is::<HeldDown>())
}

/// The connections to one place (Varnish's `VCP`, a connection pool):
/// the idle ones, and the hold-down after a failed connect. The backends
/// of every loaded VCL that point at the same place share one, so that a
/// new VCL goes on with the connections the old one opened.
#[derive(Default)]
pub(crate) struct ConnPool {
    idle: Mutex<Vec<Box<dyn Io>>>,
    /// Until when connects are not tried, after one failed ([`Holddown`]).
    held_until: Mutex<Option<std::time::Instant>>,
}

/// What makes two backends' connections interchangeable: where they go,
/// and what is sent first on each.
type PoolKey = (Option<String>, Vec<SocketAddr>, Option<Vec<u8>>, Option<u8>);

/// The connection pools in use, by the place they connect to; a pool goes
/// when the last backend using it does.
#[derive(Default)]
pub(crate) struct Pools(Mutex<std::collections::HashMap<PoolKey, std::sync::Weak<ConnPool>>>);

impl Pools {
    /// The pool of connections to where `def` points, shared with every
    /// other backend that points there.
    pub fn get(&self, def: &BackendDef) -> Arc<ConnPool> {
        let key = (def.path.clone(), def.addrs.clone(), def.preamble.clone(), def.proxy_header);
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = map.get(&key).and_then(std::sync::Weak::upgrade) {
            return pool;
        }
        map.retain(|_, w| w.strong_count() > 0);
        let pool = Arc::new(ConnPool::default());
        map.insert(key, Arc::downgrade(&pool));
        pool
    }
}

/// One backend of the running program, with its pool, its health and its
/// count of connections in use.
pub(crate) struct Backend {
    pub def: BackendDef,
    /// Idle connections and the hold-down, shared by every backend of
    /// every VCL that reaches the same endpoint the same way ([`Pools`]).
    pool: Arc<ConnPool>,
    /// Connections handed out and not yet given back (Varnish's `n_conn`);
    /// idle pooled connections do not count.
    in_use: Arc<AtomicU32>,
    /// Whether the probe last judged the backend sick (Varnish's
    /// `backend->sick`). Written only by the probe task, read without a lock
    /// by every fetch; a backend without a probe is never sick.
    sick: AtomicBool,
    /// What the admin said with `backend.set_health` (an [`Admin`] as a
    /// number): it overrides the probe until set back to auto.
    admin: std::sync::atomic::AtomicU8,
    /// When its health last changed (seconds since the epoch, as f64
    /// bits): made, set by the admin, or turned by the probe (Varnish's
    /// `health_changed`, which the shard director's rampup reads).
    changed: std::sync::atomic::AtomicU64,
    /// Set when a module deleted this backend it made at run time: the
    /// tasks holding it may still try it, but it is sick from then on
    /// (varnishd's retired backends).
    retired: AtomicBool,
    /// A module's own backend: a "connection" is an in-process pipe to a
    /// task that has the module answer ([`native`]).
    native: Option<Arc<dyn lacquer_module::NativeBackend>>,
    /// The probe's record, for `backend.list -p` (none without a probe).
    history: Mutex<Option<crate::probe::History>>,
}

impl Backend {
    /// A backend, healthy until its probe (if any) says otherwise: the
    /// probe sets its starting health from `.initial` before the server
    /// accepts its first connection.
    pub fn new(def: BackendDef) -> Backend {
        Backend {
            def,
            pool: Arc::default(),
            in_use: Arc::new(AtomicU32::new(0)),
            sick: AtomicBool::new(false),
            admin: Default::default(),
            changed: std::sync::atomic::AtomicU64::new(crate::msg::now().to_bits()),
            retired: AtomicBool::new(false),
            native: None,
            history: Mutex::new(None),
        }
    }

    /// A backend that shares its connections with the others that point
    /// where it does (those of other VCLs included).
    pub fn pooled(def: BackendDef, pools: &Pools) -> Backend {
        let pool = pools.get(&def);
        Backend { pool, ..Backend::new(def) }
    }

    /// A backend a module implements, called `name`.
    pub fn native(name: &str, b: Arc<dyn lacquer_module::NativeBackend>) -> Backend {
        let def = BackendDef { name: name.to_string(), ..BackendDef::default() };
        Backend { native: Some(b), ..Backend::new(def) }
    }

    /// The value a backend request's `Host` gets when it has none:
    /// `.host_header`, else `.host`.
    pub fn host_header(&self) -> Option<&str> {
        self.def.host_header.as_deref().or(self.def.host.as_deref())
    }

    /// Whether the backend may be used: always without a probe, else as the
    /// probe last judged (Varnish's `VRT_Healthy` for a plain backend).
    pub fn healthy(&self) -> bool {
        if self.retired.load(Ordering::Acquire) {
            return false;
        }
        match self.admin.load(Ordering::Acquire) {
            1 => return true,
            2 => return false,
            _ => {}
        }
        !self.sick.load(Ordering::Acquire)
    }

    /// Records the probe's verdict.
    /// The admin's say on the backend's health (`backend.list`'s Admin).
    pub fn admin(&self) -> Admin {
        match self.admin.load(Ordering::Acquire) {
            1 => Admin::Healthy,
            2 => Admin::Sick,
            _ => Admin::Auto,
        }
    }

    /// `backend.set_health`: the health counts as changed now, whatever
    /// it was (as in varnishd).
    pub fn set_admin(&self, a: Admin) {
        self.admin.store(a as u8, Ordering::Release);
        self.changed.store(crate::msg::now().to_bits(), Ordering::Release);
    }

    pub(crate) fn set_healthy(&self, healthy: bool) {
        if self.sick.swap(!healthy, Ordering::AcqRel) == healthy {
            self.changed.store(crate::msg::now().to_bits(), Ordering::Release);
        }
    }

    /// When the health last changed (or the backend was made, or
    /// retired), seconds since the epoch.
    pub fn changed(&self) -> f64 {
        f64::from_bits(self.changed.load(Ordering::Acquire))
    }

    pub(crate) fn set_history(&self, h: crate::probe::History) {
        *self.history.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
    }

    /// The probe's record, if the backend has a probe.
    pub(crate) fn history(&self) -> Option<crate::probe::History> {
        self.history.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Retires it (see `retired`).
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.changed.store(crate::msg::now().to_bits(), Ordering::Release);
    }

    /// An idle pooled connection, or a new one; fails at once if the
    /// backend is sick or at its `.max_connections`.
    pub async fn get(&self, connect_timeout: f64, hold: Holddown) -> io::Result<Conn> {
        let slot = self.admit()?;
        let pooled = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(io) = pooled {
            return Ok(Conn { io, reused: true, _slot: slot });
        }
        self.open_unless_held(connect_timeout, hold).await.map(|io| Conn { io, reused: false, _slot: slot })
    }

    /// A new connection, never a pooled one (for pipe, and for the second
    /// try after a reused connection failed); fails at once if the backend
    /// is sick or at its `.max_connections`.
    pub async fn connect(&self, connect_timeout: f64, hold: Holddown) -> io::Result<Conn> {
        let slot = self.admit()?;
        self.open_unless_held(connect_timeout, hold).await.map(|io| Conn { io, reused: false, _slot: slot })
    }

    /// Opens a connection unless a recent failure holds the backend down;
    /// a failure that calls for it starts a hold-down.
    async fn open_unless_held(&self, connect_timeout: f64, hold: Holddown) -> io::Result<Box<dyn Io>> {
        {
            let mut until = self.pool.held_until.lock().unwrap_or_else(|e| e.into_inner());
            match *until {
                Some(t) if std::time::Instant::now() < t => return Err(io::Error::other(HeldDown)),
                Some(_) => *until = None,
                None => {}
            }
        }
        let mut r = self.open(connect_timeout).await;
        // `.preamble`: bytes every new connection starts with.
        if let (Ok(io), Some(pre)) = (&mut r, &self.def.preamble) {
            tokio::io::AsyncWriteExt::write_all(io, pre).await?;
        }
        if let Err(e) = &r {
            let h = hold.after(e);
            if h > 0.0 {
                let until = std::time::Instant::now() + Duration::from_secs_f64(h);
                *self.pool.held_until.lock().unwrap_or_else(|e| e.into_inner()) = Some(until);
            }
        }
        r
    }

    /// The checks of Varnish's `vbe_dir_getfd` before it takes a
    /// connection: health, then the count of connections in use, which it
    /// raises by one for the caller when there is room.
    fn admit(&self) -> io::Result<Slot> {
        let name = &self.def.name;
        if self.def.none {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "backend is 'none'"));
        }
        if !self.healthy() {
            return Err(io::Error::new(io::ErrorKind::ConnectionRefused, format!("backend {name}: unhealthy")));
        }
        let max = self.def.max_connections.unwrap_or(0);
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (max == 0 || n < max).then_some(n + 1))
            .map_err(|_| io::Error::new(io::ErrorKind::WouldBlock, format!("backend {name}: busy")))?;
        Ok(Slot(self.in_use.clone()))
    }

    /// Opens a socket to the backend within `connect_timeout`, without the
    /// checks of [`Backend::admit`] and outside the count of connections in
    /// use: the probe connects this way, as Varnish's does.
    pub(crate) async fn open(&self, connect_timeout: f64) -> io::Result<Box<dyn Io>> {
        if let Some(b) = &self.native {
            return Ok(Box::new(native::connect(b.clone())));
        }
        if self.def.none {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "backend is 'none'"));
        }
        let limit = Duration::from_secs_f64(connect_timeout.max(0.001));
        let attempt = async {
            if let Some(path) = &self.def.path {
                return UnixStream::connect(path).await.map(|s| Box::new(s) as Box<dyn Io>);
            }
            let mut last = io::Error::new(io::ErrorKind::AddrNotAvailable, "backend has no address");
            for addr in &self.def.addrs {
                match TcpStream::connect(addr).await {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(Box::new(s) as Box<dyn Io>);
                    }
                    Err(e) => last = e,
                }
            }
            Err(last)
        };
        match tokio::time::timeout(limit, attempt).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "connect timeout")),
        }
    }

    /// Gives a connection whose last response was read to its end back to
    /// the pool; either way it stops counting as in use.
    pub fn recycle(&self, conn: Conn) {
        let mut pool = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(conn.io);
        }
    }
}

/// Module backends: the fetch talks HTTP/1 to them as to any backend, over
/// an in-process pipe, so that everything after connecting (timeouts,
/// framing, streaming into the cache, logging) is the same code. The other
/// end is a task that reads the request head, has the module answer it on
/// a thread that may block, and writes the response with its
/// `Content-Length` and `Connection: close` (no pooling: a pipe is cheap).
mod native {
    use std::sync::Arc;

    use lacquer_module::{BackendRequest, NativeBackend, ResponseBody};
    use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt, DuplexStream};

    /// How much a request head may take.
    const HEAD_MAX: usize = 64 << 10;

    /// A new "connection" to `b`.
    pub(super) fn connect(b: Arc<dyn NativeBackend>) -> DuplexStream {
        let (ours, theirs) = tokio::io::duplex(64 << 10);
        tokio::spawn(async move {
            let _ = serve(theirs, b).await;
        });
        ours
    }

    /// The request line and headers of a head.
    fn parse(head: &str) -> Option<BackendRequest> {
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let (method, url) = (first.next()?.to_string(), first.next()?.to_string());
        let headers = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.to_string(), v.trim().to_string()))
            .collect();
        Some(BackendRequest { method, url, headers })
    }

    async fn serve(mut io: DuplexStream, b: Arc<dyn NativeBackend>) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        let end = loop {
            if let Some(i) = memchr::memmem::find(&head, b"\r\n\r\n") {
                break i;
            }
            let n = io.read(&mut buf).await?;
            if n == 0 || head.len() > HEAD_MAX {
                return Ok(());
            }
            head.extend_from_slice(&buf[..n]);
        };
        let Some(req) = parse(&String::from_utf8_lossy(&head[..end])) else { return Ok(()) };
        let head_only = req.method.eq_ignore_ascii_case("HEAD");
        let resp = tokio::task::spawn_blocking(move || b.respond(&req)).await.map_err(std::io::Error::other)?;
        let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, crate::msg::reason(resp.status));
        for (n, v) in &resp.headers {
            out.push_str(&format!("{n}: {v}\r\n"));
        }
        out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", resp.body.len()));
        io.write_all(out.as_bytes()).await?;
        if !head_only {
            match resp.body {
                ResponseBody::Empty => {}
                ResponseBody::Bytes(bytes) => io.write_all(&bytes).await?,
                ResponseBody::File { file, offset, len } => {
                    let mut f = tokio::fs::File::from_std(file);
                    f.seek(std::io::SeekFrom::Start(offset)).await?;
                    tokio::io::copy(&mut f.take(len), &mut io).await?;
                }
            }
        }
        io.shutdown().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(max: Option<u32>) -> Backend {
        let def = BackendDef {
            name: "b1".into(),
            path: Some("/nonexistent/lacquer-vbe-test.sock".into()),
            max_connections: max,
            ..BackendDef::default()
        };
        Backend::new(def)
    }

    #[test]
    fn max_connections_counts_slots_until_dropped() {
        let be = backend(Some(2));
        let a = be.admit().unwrap();
        let b = be.admit().unwrap();
        let e = be.admit().err().unwrap();
        assert_eq!(e.to_string(), "backend b1: busy");
        drop(a);
        let _c = be.admit().unwrap();
        drop(b);
        assert_eq!(be.in_use.load(Ordering::Acquire), 1);
        assert!(backend(None).admit().is_ok(), "no limit without .max_connections");
    }

    #[test]
    fn a_sick_backend_refuses_before_connecting() {
        let be = backend(None);
        assert!(be.healthy());
        be.set_healthy(false);
        assert_eq!(be.admit().err().unwrap().to_string(), "backend b1: unhealthy");
        assert_eq!(be.in_use.load(Ordering::Acquire), 0, "a refusal takes no slot");
        be.set_healthy(true);
        assert!(be.admit().is_ok());
    }
}
