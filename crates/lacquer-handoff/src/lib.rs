//! `lacquer-handoff`: the receiving side of Lacquer's connection handoff.
//!
//! Lacquer's `handoff` module can give a client's connection, right after
//! its request head was read, to a local process: the socket itself
//! travels over a Unix stream socket as `SCM_RIGHTS` ancillary data,
//! together with the bytes Lacquer already read off it (the head exactly
//! as received, and whatever followed it) and what Lacquer knows about it
//! (addresses, transaction ids). The process then reads the rest of the
//! request and writes its response on the socket itself; Lacquer is out
//! of the path. This crate is that process's library:
//!
//! ```no_run
//! use std::io::Write;
//! let l = lacquer_handoff::Listener::bind("/run/app.sock").unwrap();
//! l.serve(|t| {
//!     let mut c = t.accept().unwrap(); // answers OK: the socket is ours
//!     let _ = c.stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n");
//! });
//! ```
//!
//! Two flavours: blocking ([`Listener`], [`Incoming`], a thread per
//! transfer with [`Listener::serve`]), and tokio ([`tokio`], feature
//! `tokio`, on by default). Either way accepting a control connection
//! and reading its message are two steps, so a slow sender never holds
//! up the next transfer.
//!
//! The wire format is [`wire`]'s, documented there and in
//! `docs/handoff.md`; the sending side (the `handoff` module) uses the
//! same code. Failure modes: a message that is not version 1 of the
//! format, that is too large, or that carries no descriptor (or more
//! than one) is refused with `NO <reason>` and its descriptors closed; a
//! sender that goes away mid-message is an `io::Error`. Nothing here
//! panics on what a peer sends.
//!
//! Architecture invariant: this crate knows nothing about Lacquer's
//! server, VCL or modules; the wire format is the whole contract.

pub mod wire;

#[cfg(feature = "tokio")]
pub mod tokio;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

pub use wire::{Meta, Reply};

/// A Unix socket transfers arrive on.
pub struct Listener {
    inner: UnixListener,
    path: PathBuf,
}

impl Listener {
    /// Listens on `path`, replacing a stale socket file there (never
    /// another kind of file), readable and writable by the owner only
    /// (mode 0600): Lacquer must run as the same user, or the mode be
    /// widened with [`Listener::set_mode`].
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Listener> {
        let path = path.as_ref();
        remove_stale(path)?;
        let inner = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        Ok(Listener { inner, path: path.to_path_buf() })
    }

    /// Changes the socket file's permission bits.
    pub fn set_mode(&self, mode: u32) -> io::Result<()> {
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(mode))
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next control connection. Its message is read by
    /// [`Incoming::receive`], which the caller may do on another thread.
    pub fn accept(&self) -> io::Result<Incoming> {
        let (s, _) = self.inner.accept()?;
        Ok(Incoming(s))
    }

    /// Accepts transfers forever, each received and handled by `f` on a
    /// thread of its own. A message that cannot be read is dropped (its
    /// sender told why when it can be); `f` decides to
    /// [`accept`](Transfer::accept) or [`refuse`](Transfer::refuse).
    pub fn serve<F>(&self, f: F) -> io::Error
    where
        F: Fn(Transfer) + Send + Sync + 'static,
    {
        let f = std::sync::Arc::new(f);
        loop {
            let inc = match self.accept() {
                Ok(i) => i,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return e,
            };
            let f = f.clone();
            std::thread::spawn(move || {
                if let Ok(t) = inc.receive() {
                    f(t)
                }
            });
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes a socket file left at `path` by a process that died; refuses
/// to touch anything else.
fn remove_stale(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => {
            Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{} exists and is not a socket", path.display())))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A control connection whose message is still to be read.
pub struct Incoming(UnixStream);

impl Incoming {
    /// Reads the message (within 10 seconds: Lacquer sends it whole at
    /// once). A bad message is answered `NO <reason>` and is an error of
    /// kind `InvalidData`.
    pub fn receive(self) -> io::Result<Transfer> {
        let s = self.0;
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
        match wire::recv_message(&s) {
            Ok((fd, meta, received)) => Ok(Transfer { fd, meta, received, control: s }),
            Err(e) => {
                if e.kind() == io::ErrorKind::InvalidData {
                    let _ = (&s).write_all(&Reply::No(e.to_string()).encode());
                }
                Err(e)
            }
        }
    }
}

/// A transferred connection not yet accepted: Lacquer waits for the
/// answer (within its `timeout`), then forgets the connection either way.
pub struct Transfer {
    fd: OwnedFd,
    /// What Lacquer knows about the connection.
    pub meta: Meta,
    /// The bytes Lacquer read: the head (`meta.head_len` bytes), then
    /// whatever came after it.
    pub received: Vec<u8>,
    control: UnixStream,
}

impl Transfer {
    /// The request head as received.
    pub fn head(&self) -> &[u8] {
        &self.received[..self.meta.head_len.min(self.received.len())]
    }

    /// Takes the connection: answers `OK` (Lacquer then closes its copy
    /// and writes nothing more on it) and gives back the socket in
    /// blocking mode. When Lacquer is gone already (it gave up waiting)
    /// this fails and the socket is closed unanswered — Lacquer has
    /// answered the client itself (a 503) or closed the connection.
    pub fn accept(self) -> io::Result<Accepted> {
        (&self.control).write_all(&Reply::Ok.encode())?;
        let stream = TcpStream::from(self.fd);
        stream.set_nonblocking(false)?;
        Ok(Accepted { stream, meta: self.meta, received: self.received })
    }

    /// Refuses the connection: Lacquer answers the client (a 503 through
    /// `vcl_synth`) with `reason` in its log. The socket is not touched.
    pub fn refuse(self, reason: &str) -> io::Result<()> {
        drop(self.fd);
        (&self.control).write_all(&Reply::No(reason.to_string()).encode())
    }

    /// The control connection, for the tokio flavour.
    #[cfg(feature = "tokio")]
    fn into_parts(self) -> (OwnedFd, Meta, Vec<u8>, UnixStream) {
        (self.fd, self.meta, self.received, self.control)
    }
}

/// A connection that is the process's own now.
#[derive(Debug)]
pub struct Accepted {
    /// The client socket, blocking. It is a `TcpStream` for reading and
    /// writing whatever the socket is: a connection Lacquer accepted on a
    /// Unix listener is a Unix socket, whose addresses this type cannot
    /// tell (see `meta`).
    pub stream: TcpStream,
    pub meta: Meta,
    /// The bytes Lacquer read: the head, then whatever came after it.
    pub received: Vec<u8>,
}

impl Accepted {
    /// The request head as received.
    pub fn head(&self) -> &[u8] {
        &self.received[..self.meta.head_len.min(self.received.len())]
    }

    /// What came after the head: a body's first part, or more requests.
    pub fn after_head(&self) -> &[u8] {
        &self.received[self.meta.head_len.min(self.received.len())..]
    }

    /// A reader that gives the bytes after the head first, then the
    /// socket's.
    pub fn reader(&self) -> impl Read + '_ {
        self.after_head().chain(&self.stream)
    }
}

/// Sends a connection to the process listening at `path`, the way the
/// `handoff` module does: connects without waiting on a full backlog,
/// sends the message with `fd`, and waits up to `timeout` for the answer.
/// For tests and for programs that forward connections themselves.
pub fn transfer(
    path: &Path,
    fd: impl AsFd,
    meta: &Meta,
    received: &[u8],
    timeout: std::time::Duration,
) -> Result<(), wire::SendError> {
    let s = wire::connect(path).map_err(wire::SendError::Connect)?;
    wire::send_message(&s, fd.as_fd(), meta, received, timeout)
}
