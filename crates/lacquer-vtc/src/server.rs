//! The `server` and `client` actors: each runs its HTTP spec on a thread,
//! once per connection.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::http::{accept, Session, Stop};

/// Runs `spec` on one connection; a failure is recorded on `ctx` and
/// returned.
fn session(
    ctx: &Arc<Ctx>,
    name: &str,
    stream: TcpStream,
    listener: Option<&TcpListener>,
    spec: &str,
) -> Result<(), String> {
    let mut s = Session::new(ctx, name, stream, listener);
    let r = s.run(spec);
    s.close();
    match r {
        Ok(()) | Err(Stop::Quiet) => Ok(()),
        Err(Stop::Fail(m)) => {
            ctx.fail(name, &m);
            Err(m)
        }
    }
}

/// Starts server `name`: `repeat` connections accepted one after another,
/// or (with `dispatch`) every connection on its own thread until the test
/// ends.
pub fn start_server(
    ctx: Arc<Ctx>,
    name: String,
    listener: Arc<TcpListener>,
    spec: String,
    repeat: usize,
    dispatch: bool,
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        if dispatch {
            let mut workers = Vec::new();
            while let Some(stream) = accept(&ctx, &listener) {
                let (c, n, sp, l) = (ctx.clone(), name.clone(), spec.clone(), listener.clone());
                workers.push(std::thread::spawn(move || session(&c, &n, stream, Some(&l), &sp)));
            }
            let mut r = Ok(());
            for w in workers {
                if let Ok(Err(e)) = w.join() {
                    r = Err(e);
                }
            }
            return r;
        }
        for _ in 0..repeat {
            let Some(stream) = accept(&ctx, &listener) else {
                return Ok(());
            };
            ctx.say(&name, "accepted a connection");
            session(&ctx, &name, stream, Some(&listener), &spec)?;
        }
        ctx.say(&name, "Ending");
        Ok(())
    })
}

/// Starts client `name`: `repeat` connections to `addr`, one after another.
pub fn start_client(
    ctx: Arc<Ctx>,
    name: String,
    addr: String,
    spec: String,
    repeat: usize,
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        for _ in 0..repeat {
            if ctx.aborted() {
                return Ok(());
            }
            let stream = match connect(&addr, ctx.session_timeout) {
                Ok(s) => s,
                Err(e) => {
                    let m = format!("Failed to open {addr}: {e}");
                    ctx.fail(&name, &m);
                    return Err(m);
                }
            };
            ctx.say(&name, &format!("connected to {addr}"));
            session(&ctx, &name, stream, None, &spec)?;
        }
        ctx.say(&name, "Ending");
        Ok(())
    })
}

/// Connects to `host:port` or `host port`.
fn connect(addr: &str, timeout: Duration) -> std::io::Result<TcpStream> {
    let spec = match addr.split_once(' ') {
        Some((h, p)) => format!("{h}:{p}"),
        None => addr.to_string(),
    };
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
    for a in spec.to_socket_addrs()? {
        match TcpStream::connect_timeout(&a, timeout.max(Duration::from_millis(100))) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
