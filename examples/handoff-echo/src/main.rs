//! `handoff-echo --socket PATH`: a process that takes client connections
//! from Lacquer's `handoff` module (through `lacquer-handoff`) and
//! answers them itself, on the same socket:
//!
//! - `GET /ws` with a websocket upgrade: echoes every message back (text
//!   and binary), until the client closes;
//! - `GET /events`: a server-sent-events clock, one `data: <unix time>`
//!   event a second (`--interval-ms` changes the period), until the
//!   client goes;
//! - `GET /pid`: its process id (for tests that restart it);
//! - anything else: `404`.
//!
//! Each connection is served on a thread of its own, so long-lived ones
//! do not hold up the next; the process never goes back to Lacquer.

use std::io::{self, Cursor, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lacquer_handoff::{Accepted, Listener};
use tungstenite::Message;

/// The socket, with the bytes Lacquer read after the head given first.
struct Replay {
    pre: Cursor<Vec<u8>>,
    s: TcpStream,
}

impl Read for Replay {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pre.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        self.s.read(buf)
    }
}

impl Write for Replay {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.s.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.s.flush()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut socket = None;
    let mut interval = Duration::from_secs(1);
    let mut i = 1;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--socket", Some(p)) => socket = Some(p.clone()),
            ("--interval-ms", Some(ms)) => interval = Duration::from_millis(ms.parse().unwrap_or(1000)),
            _ => {
                eprintln!("usage: handoff-echo --socket PATH [--interval-ms N]");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    let Some(socket) = socket else {
        eprintln!("usage: handoff-echo --socket PATH [--interval-ms N]");
        std::process::exit(2);
    };
    let l = match Listener::bind(&socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("handoff-echo: {socket}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("handoff-echo: listening on {socket}");
    let e = l.serve(move |t| {
        if let Ok(c) = t.accept() {
            serve(c, interval);
        }
    });
    eprintln!("handoff-echo: {e}");
    std::process::exit(1);
}

/// Answers one connection.
fn serve(c: Accepted, interval: Duration) {
    let head = String::from_utf8_lossy(c.head()).into_owned();
    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
    let path = path.split('?').next().unwrap_or("").to_string();
    let mut s = c.stream.try_clone().expect("a socket clones");
    match path.as_str() {
        "/ws" => {
            // tungstenite reads the handshake itself: give it the head
            // and what followed, then the socket.
            let replay = Replay { pre: Cursor::new(c.received.clone()), s: c.stream };
            let Ok(mut ws) = tungstenite::accept(replay) else { return };
            while let Ok(m) = ws.read() {
                let reply = match m {
                    Message::Text(_) | Message::Binary(_) => m,
                    Message::Close(_) => break,
                    _ => continue,
                };
                if ws.send(reply).is_err() {
                    return;
                }
            }
        }
        "/events" => {
            let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n";
            if s.write_all(head.as_bytes()).is_err() {
                return;
            }
            loop {
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
                if s.write_all(format!("data: {now}\n\n").as_bytes()).is_err() {
                    return;
                }
                std::thread::sleep(interval);
            }
        }
        "/pid" => {
            let pid = std::process::id().to_string();
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", pid.len());
            let _ = s.write_all(format!("{head}{pid}").as_bytes());
        }
        _ => {
            let _ =
                s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\nnot found\n");
        }
    }
}
