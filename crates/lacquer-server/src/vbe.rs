//! Backends (Varnish's `vbe`): where a backend is, how to open a connection
//! to it within its connect timeout, and a small pool of idle connections
//! kept for reuse.

use std::io;
use std::sync::Mutex;
use std::time::Duration;

use lacquer_vcl::program::BackendDef;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// A connection to a backend, over TCP or a Unix socket.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How many idle connections a backend keeps.
const POOL_MAX: usize = 16;

/// A connection taken from a backend, and whether it was used before (a
/// reused connection may have been closed by the backend meanwhile, so a
/// failure on it before any response byte is worth one more try on a new
/// one).
pub(crate) struct Conn {
    pub io: Box<dyn Io>,
    pub reused: bool,
}

/// One backend of the running program, with its pool.
pub(crate) struct Backend {
    pub def: BackendDef,
    pool: Mutex<Vec<Box<dyn Io>>>,
}

impl Backend {
    pub fn new(def: BackendDef) -> Backend {
        Backend { def, pool: Mutex::new(Vec::new()) }
    }

    /// The value a backend request's `Host` gets when it has none:
    /// `.host_header`, else `.host`.
    pub fn host_header(&self) -> Option<&str> {
        self.def.host_header.as_deref().or(self.def.host.as_deref())
    }

    /// An idle pooled connection, or a new one.
    pub async fn get(&self, connect_timeout: f64) -> io::Result<Conn> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(io) = pooled {
            return Ok(Conn { io, reused: true });
        }
        self.connect(connect_timeout).await.map(|io| Conn { io, reused: false })
    }

    /// A new connection, never a pooled one (for pipe, and for the second
    /// try after a reused connection failed).
    pub async fn connect(&self, connect_timeout: f64) -> io::Result<Box<dyn Io>> {
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
    /// the pool.
    pub fn recycle(&self, io: Box<dyn Io>) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_MAX {
            pool.push(io);
        }
    }
}
