//! The `server` and `client` actors: each runs its HTTP spec on a thread,
//! once per connection.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::ctx::Ctx;
use crate::http::{accept, Session, Stop};
use crate::net::{Listener, Stream};

/// How an actor runs its spec.
#[derive(Clone, Copy)]
pub struct Repeat {
    /// How many times.
    pub count: usize,
    /// `-keepalive`: every iteration on the same connection instead of a
    /// new one each.
    pub keepalive: bool,
}

/// Runs `spec` on `stream`; a failure is recorded on `ctx` and returned.
/// Answers the stream, still open, if the spec did not close it and
/// `keep` asks for it.
fn session(
    ctx: &Arc<Ctx>,
    name: &str,
    stream: Stream,
    listener: Option<&Listener>,
    spec: &str,
    keep: bool,
) -> Result<Option<Stream>, String> {
    let mut s = Session::new(ctx, name, stream, listener);
    let r = s.run(spec);
    // A failure is recorded before the connection closes, so that the
    // peer's end-of-file does not become the test's verdict.
    if let Err(Stop::Fail(m)) = &r {
        ctx.fail(name, m);
    }
    let left = if keep && r.is_ok() { s.take_stream() } else { None };
    s.close();
    match r {
        Ok(()) | Err(Stop::Quiet) => Ok(left),
        Err(Stop::Fail(m)) => Err(m),
    }
}

/// Starts server `name`: `repeat` connections accepted one after another
/// (or one connection, with `-keepalive`), or (with `dispatch`) every
/// connection on its own thread until the test ends.
pub fn start_server(
    ctx: Arc<Ctx>,
    name: String,
    listener: Arc<Listener>,
    spec: String,
    repeat: Repeat,
    dispatch: bool,
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        if dispatch {
            let mut workers = Vec::new();
            while let Some(stream) = accept(&ctx, &listener) {
                let (c, n, sp, l) = (ctx.clone(), name.clone(), spec.clone(), listener.clone());
                workers.push(std::thread::spawn(move || session(&c, &n, stream, Some(&l), &sp, false)));
            }
            let mut r = Ok(());
            for w in workers {
                if let Ok(Err(e)) = w.join() {
                    r = Err(e);
                }
            }
            return r;
        }
        let mut kept = None;
        for _ in 0..repeat.count {
            let stream = match kept.take() {
                Some(s) => s,
                None => {
                    let Some(s) = accept(&ctx, &listener) else {
                        return Ok(());
                    };
                    ctx.say(&name, "accepted a connection");
                    s
                }
            };
            kept = session(&ctx, &name, stream, Some(&listener), &spec, repeat.keepalive)?;
        }
        ctx.say(&name, "Ending");
        Ok(())
    })
}

/// Starts client `name`: `repeat` connections to `addr` (a Unix socket
/// path, `host:port` or `host port`), one after another, or one with
/// `-keepalive`.
pub fn start_client(
    ctx: Arc<Ctx>,
    name: String,
    addr: String,
    spec: String,
    repeat: Repeat,
) -> JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let mut kept = None;
        for _ in 0..repeat.count {
            if ctx.aborted() {
                return Ok(());
            }
            let stream = match kept.take() {
                Some(s) => s,
                None => match Stream::connect(&addr, ctx.session_timeout) {
                    Ok(s) => {
                        ctx.say(&name, &format!("connected to {addr}"));
                        s
                    }
                    Err(e) => {
                        let m = format!("Failed to open {addr}: {e}");
                        ctx.fail(&name, &m);
                        return Err(m);
                    }
                },
            };
            kept = session(&ctx, &name, stream, None, &spec, repeat.keepalive)?;
        }
        ctx.say(&name, "Ending");
        Ok(())
    })
}
