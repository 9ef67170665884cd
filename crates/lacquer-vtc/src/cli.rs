//! One admin CLI connection kept for an instance's whole life, as
//! varnishtest keeps the one varnishd opens back to it (`-M`).
//!
//! Requests are serialized by a lock, so the test's thread and the log
//! readers (which send *markers*, see `vsl.rs`) can share it. The
//! connection is already authenticated when made: see `mgr.rs`.

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::Duration;

/// The command a marker sends: unknown to varnishd, which passes it to its
/// child, which logs it (`CLI Rd lacquer-vtc-mark-N`) and answers 101.
pub const MARK: &str = "lacquer-vtc-mark-";

/// An authenticated CLI connection.
pub struct Cli {
    inner: Mutex<Conn>,
}

struct Conn {
    r: BufReader<TcpStream>,
    w: TcpStream,
    /// The number of the last marker sent.
    marks: u64,
    closed: bool,
}

impl Cli {
    /// Wraps a connection already past its banner and authentication;
    /// an answer taking longer than `timeout` fails the request.
    pub fn new(stream: TcpStream, timeout: Duration) -> Result<Cli, String> {
        stream.set_read_timeout(Some(timeout)).map_err(|e| e.to_string())?;
        let w = stream.try_clone().map_err(|e| e.to_string())?;
        Ok(Cli { inner: Mutex::new(Conn { r: BufReader::new(stream), w, marks: 0, closed: false }) })
    }

    /// Sends one request (several lines for a here document) and reads
    /// its answer: status and body.
    pub fn ask(&self, request: &str) -> Result<(u16, String), String> {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if c.closed {
            return Err("CLI connection closed".into());
        }
        c.w.write_all(format!("{request}\n").as_bytes()).map_err(|e| format!("CLI write failed: {e}"))?;
        lacquer_cli::read_answer(&mut c.r)
    }

    /// Reads an answer nobody asked for: the banner a new connection
    /// gets.
    pub fn read_banner(&self) -> Result<(u16, String), String> {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        lacquer_cli::read_answer(&mut c.r)
    }

    /// Sends the next marker and returns its number; the child logs it
    /// only while it runs.
    pub fn mark(&self) -> Result<u64, String> {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if c.closed {
            return Err("CLI connection closed".into());
        }
        c.marks += 1;
        let n = c.marks;
        c.w.write_all(format!("{MARK}{n}\n").as_bytes()).map_err(|e| format!("CLI write failed: {e}"))?;
        lacquer_cli::read_answer(&mut c.r)?;
        Ok(n)
    }

    /// Closes the connection (varnishtest's `closefd(&v->cli_fd)`).
    pub fn close(&self) {
        let mut c = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        c.closed = true;
        let _ = c.w.shutdown(std::net::Shutdown::Both);
    }
}

/// The marker number a `CLI` record's payload carries, if it is one
/// (`Rd lacquer-vtc-mark-N`).
pub fn marker_in(payload: &[u8]) -> Option<u64> {
    let p = std::str::from_utf8(payload).ok()?;
    p.strip_prefix("Rd ")?.trim_end().strip_prefix(MARK)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn markers_are_recognized_in_cli_records() {
        assert_eq!(super::marker_in(b"Rd lacquer-vtc-mark-12 "), Some(12));
        assert_eq!(super::marker_in(b"Rd ping"), None);
        assert_eq!(super::marker_in(b"Wr 101 44 Unknown request."), None);
    }
}
