//! The tokio flavour: the same listener and transfers, with the client
//! socket given back as a `tokio::net::TcpStream`. Accept in a loop and
//! spawn a task per [`Incoming`], so no transfer waits for another:
//!
//! ```no_run
//! # async fn run() -> std::io::Result<()> {
//! use tokio::io::AsyncWriteExt;
//! let l = lacquer_handoff::tokio::Listener::bind("/run/app.sock")?;
//! loop {
//!     let inc = l.accept().await?;
//!     tokio::spawn(async move {
//!         let Ok(t) = inc.receive().await else { return };
//!         let Ok(mut c) = t.accept() else { return };
//!         let _ = c.stream.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
//!     });
//! }
//! # }
//! ```

use std::io;
use std::path::{Path, PathBuf};

use crate::Meta;

/// A Unix socket transfers arrive on (tokio).
pub struct Listener {
    inner: tokio::net::UnixListener,
    path: PathBuf,
}

impl Listener {
    /// As [`crate::Listener::bind`]; must be called inside a runtime.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<Listener> {
        let l = crate::Listener::bind(path)?;
        let path = l.path.clone();
        let std = l.inner.try_clone()?;
        // The file now belongs to this listener's `Drop`.
        std::mem::forget(l);
        std.set_nonblocking(true)?;
        Ok(Listener { inner: tokio::net::UnixListener::from_std(std)?, path })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next control connection.
    pub async fn accept(&self) -> io::Result<Incoming> {
        let (s, _) = self.inner.accept().await?;
        Ok(Incoming(s))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A control connection whose message is still to be read.
pub struct Incoming(tokio::net::UnixStream);

impl Incoming {
    /// Reads the message, as [`crate::Incoming::receive`] does, on a
    /// blocking thread.
    pub async fn receive(self) -> io::Result<Transfer> {
        let s = self.0.into_std()?;
        s.set_nonblocking(false)?;
        let t = tokio::task::spawn_blocking(move || crate::Incoming(s).receive()).await.map_err(io::Error::other)??;
        Ok(Transfer(t))
    }
}

/// A transferred connection not yet accepted.
pub struct Transfer(crate::Transfer);

impl Transfer {
    /// What Lacquer knows about the connection.
    pub fn meta(&self) -> &Meta {
        &self.0.meta
    }

    /// The request head as received.
    pub fn head(&self) -> &[u8] {
        self.0.head()
    }

    /// Takes the connection (answers `OK`); must be called inside a
    /// runtime.
    pub fn accept(self) -> io::Result<Accepted> {
        let (fd, meta, received, control) = self.0.into_parts();
        std::io::Write::write_all(&mut &control, &crate::Reply::Ok.encode())?;
        let std = std::net::TcpStream::from(fd);
        std.set_nonblocking(true)?;
        Ok(Accepted { stream: tokio::net::TcpStream::from_std(std)?, meta, received })
    }

    /// Refuses the connection with `reason`.
    pub fn refuse(self, reason: &str) -> io::Result<()> {
        self.0.refuse(reason)
    }
}

/// A connection that is the task's own now.
#[derive(Debug)]
pub struct Accepted {
    /// The client socket (see [`crate::Accepted::stream`] for one that
    /// came from a Unix listener).
    pub stream: tokio::net::TcpStream,
    pub meta: Meta,
    /// The bytes Lacquer read: the head, then whatever came after it.
    pub received: Vec<u8>,
}

impl Accepted {
    /// The request head as received.
    pub fn head(&self) -> &[u8] {
        &self.received[..self.meta.head_len.min(self.received.len())]
    }

    /// What came after the head.
    pub fn after_head(&self) -> &[u8] {
        &self.received[self.meta.head_len.min(self.received.len())..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Two transfers at once: the first one's handler is slow, and the
    /// second is answered before it finishes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn transfers_are_taken_concurrently() {
        let path = std::env::temp_dir().join(format!("lqho-tokio-{}.sock", std::process::id()));
        let l = Listener::bind(&path).unwrap();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let inc = l.accept().await.unwrap();
                tokio::spawn(async move {
                    let t = inc.receive().await.unwrap();
                    let mut c = t.accept().unwrap();
                    let n = c.meta.xid;
                    if n == 1 {
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    }
                    let mut more = [0u8; 4];
                    c.stream.read_exact(&mut more).await.unwrap();
                    let mut reply = c.received.clone();
                    reply.extend_from_slice(&more);
                    c.stream.write_all(&reply).await.unwrap();
                });
            }
            l
        });
        let send = |xid: u64| {
            let path = path.clone();
            std::thread::spawn(move || {
                let (mut mine, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
                let meta = Meta { xid, head_len: 4, ..Meta::default() };
                crate::transfer(&path, &theirs, &meta, b"head", std::time::Duration::from_secs(5)).unwrap();
                drop(theirs);
                mine.write_all(b"tail").unwrap();
                let mut got = [0u8; 8];
                mine.read_exact(&mut got).unwrap();
                assert_eq!(&got, b"headtail");
                std::time::Instant::now()
            })
        };
        let slow = send(1);
        std::thread::sleep(std::time::Duration::from_millis(50));
        let fast = send(2);
        let (slow, fast) = (slow.join().unwrap(), fast.join().unwrap());
        assert!(fast < slow, "the second transfer waited for the first");
        let l = server.await.unwrap();
        drop(l);
        assert!(!path.exists());
    }
}
