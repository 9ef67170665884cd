//! The sockets actors talk over: TCP, or a Unix socket where a server's
//! `-listen`, a client's `-connect` or an instance's `-a` is a path.
//!
//! One enum per role (`Listener`, `Stream`) rather than generics, so that
//! the HTTP session code (`http.rs`) is one code path whatever the
//! transport. Addresses are read as varnishtest reads them: a string
//! starting with `/` is a Unix socket path, anything else `host port` or
//! `host:port`. (varnishtest 7.1 has no abstract `@name` sockets: such a
//! name fails to resolve, here as there.)

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::Duration;

/// Whether `addr` names a Unix socket.
pub fn is_path(addr: &str) -> bool {
    addr.starts_with('/')
}

/// A connection, over TCP or a Unix socket.
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    /// Sends `bytes` as TCP urgent (out-of-band) data, `send(2)` with
    /// `MSG_OOB`; on a Unix socket, as plain data (there is no urgent
    /// data there).
    pub fn send_urgent(&mut self, bytes: &[u8]) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let fd = match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => return io::Write::write_all(s, bytes),
        };
        let mut sent = 0;
        while sent < bytes.len() {
            let rest = &bytes[sent..];
            // SAFETY: a send on a socket this stream owns, from a live buffer.
            let n = unsafe { libc::send(fd, rest.as_ptr().cast(), rest.len(), libc::MSG_OOB) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            sent += n as usize;
        }
        Ok(())
    }

    /// Connects to a Unix socket `/path`, or to `host:port` / `host port`
    /// (each address the name resolves to in turn), within `timeout`.
    pub fn connect(addr: &str, timeout: Duration) -> io::Result<Stream> {
        if is_path(addr) {
            return UnixStream::connect(addr).map(Stream::Unix);
        }
        let spec = match addr.split_once(' ') {
            Some((h, p)) => format!("{h}:{p}"),
            None => addr.to_string(),
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for a in spec.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout.max(Duration::from_millis(100))) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(Stream::Tcp(s));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Sets the socket's receive buffer size (`client -rcvbuf`), as
    /// `setsockopt(SO_RCVBUF)`; the kernel may round it.
    pub fn set_rcvbuf(&self, n: usize) {
        use std::os::fd::AsRawFd;
        let fd = match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
        };
        let v = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
        // SAFETY: setsockopt reads one c_int from a valid pointer.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }

    /// Another handle on the same connection (for a thread per direction).
    pub fn try_clone(&self) -> io::Result<Stream> {
        match self {
            Stream::Tcp(s) => s.try_clone().map(Stream::Tcp),
            Stream::Unix(s) => s.try_clone().map(Stream::Unix),
        }
    }

    pub fn set_read_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(d),
            Stream::Unix(s) => s.set_read_timeout(d),
        }
    }

    pub fn set_write_timeout(&self, d: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_write_timeout(d),
            Stream::Unix(s) => s.set_write_timeout(d),
        }
    }

    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(how),
            Stream::Unix(s) => s.shutdown(how),
        }
    }

    /// The peer's address as varnishtest's `remote.ip`, `remote.port` and
    /// `remote.path` see it: over a Unix socket `0.0.0.0`, `0` and the
    /// path; over TCP the address, the port and nothing.
    pub fn remote(&self) -> (String, String, Option<String>) {
        match self {
            Stream::Tcp(s) => s
                .peer_addr()
                .map(|a| (a.ip().to_string(), a.port().to_string(), None))
                .unwrap_or_else(|_| (String::new(), String::new(), None)),
            Stream::Unix(s) => {
                let path = s
                    .local_addr()
                    .ok()
                    .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                    .or_else(|| s.peer_addr().ok().and_then(|a| a.as_pathname().map(|p| p.display().to_string())));
                ("0.0.0.0".into(), "0".into(), path)
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

/// A server's listening socket.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl Listener {
    /// Listens on a Unix socket `/path` (replacing a socket left there, as
    /// varnishtest unlinks the path first; open to every user, as
    /// varnishtest's is, since varnishd's child runs as another), or on `host:port` /
    /// `host port` / `host` (port 0, as varnishtest's default).
    pub fn bind(addr: &str) -> io::Result<Listener> {
        if is_path(addr) {
            if std::fs::symlink_metadata(addr).is_ok_and(|m| m.file_type().is_socket()) {
                let _ = std::fs::remove_file(addr);
            }
            let l = UnixListener::bind(addr)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(addr, std::fs::Permissions::from_mode(0o777))?;
            return Ok(Listener::Unix(l));
        }
        let spec = match addr.split_once(' ') {
            Some((h, p)) => format!("{h}:{p}"),
            None if addr.parse::<IpAddr>().is_ok_and(|a| a.is_ipv6()) => format!("[{addr}]:0"),
            None if !addr.contains(':') => format!("{addr}:0"),
            None => addr.to_string(),
        };
        TcpListener::bind(spec).map(Listener::Tcp)
    }

    /// What varnishtest defines as `sN_addr`, `sN_port` and `sN_sock`: for
    /// a Unix socket `0.0.0.0`, `0` and the path.
    pub fn macros(&self) -> io::Result<(String, String, String)> {
        match self {
            Listener::Tcp(l) => {
                let a = l.local_addr()?;
                let (addr, port) = (a.ip().to_string(), a.port().to_string());
                let sock = if a.is_ipv6() { format!("[{addr}]:{port}") } else { format!("{addr}:{port}") };
                Ok((addr, port, sock))
            }
            Listener::Unix(l) => {
                let a = l.local_addr()?;
                let path = a.as_pathname().map(|p| p.display().to_string()).unwrap_or_default();
                Ok(("0.0.0.0".into(), "0".into(), path))
            }
        }
    }

    pub fn set_nonblocking(&self, on: bool) -> io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(on),
            Listener::Unix(l) => l.set_nonblocking(on),
        }
    }

    /// Accepts one connection, blocking as the listener is set to; the
    /// stream itself always blocks.
    pub fn accept(&self) -> io::Result<Stream> {
        match self {
            Listener::Tcp(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                let _ = s.set_nodelay(true);
                Ok(Stream::Tcp(s))
            }
            Listener::Unix(l) => {
                let (s, _) = l.accept()?;
                s.set_nonblocking(false)?;
                Ok(Stream::Unix(s))
            }
        }
    }
}
