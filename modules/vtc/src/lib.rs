//! Varnish 7.1's vmod_vtc for Lacquer: the helpers Varnish's own test
//! scripts import (`import vtc;`) to make the server wait, sleep, fail or
//! report sizes at a chosen point of a request. Written with
//! `lacquer-module` the way an outside author would write a module.
//!
//! The interface is vmod_vtc.vcc's of 7.1 (names, argument names, types
//! and defaults as varnishd's module spec has them), less what Lacquer
//! cannot do honestly:
//!
//! - `workspace_dump`: Lacquer's workspaces count bytes and hold none
//!   (see the server's `ws.rs`), so there is nothing to dump; made-up
//!   bytes would make the scripts that read them pass or fail for no
//!   reason.
//! - `no_stevedore`: the SDK has no STEVEDORE result type yet.
//!
//! The `workspace_*` functions work on the host's workspace accounting
//! ([`Host::workspace`](lacquer_module::Host::workspace)): they charge,
//! measure, overflow and reset the budgets the server fails tasks by.
//!
//! `barrier_sync` and `sleep` block the calling task, as they block the
//! worker thread in Varnish; they run through `Host::blocking`, so the
//! server's other tasks carry on meanwhile. `panic` ends the server as a
//! Varnish panic ends the child (`Host::panic`).

mod proxy;

pub use proxy::format as proxy_header;

#[lacquer_module::module(name = "vtc")]
pub mod vmod {
    //! Utility module for varnishtest: synchronisation with the test
    //! script, delays, panics, type sizes and PROXY headers.

    use std::io::Read;
    use std::net::{SocketAddr, TcpStream, ToSocketAddrs};

    use lacquer_module::{Backend, Blob, Bytes, Ctx, Duration, Failure, Strands, Workspace, WsId, WsSnap};

    /// An I/O error as strerror(3) words it, without Rust's "(os error N)".
    fn strerror(e: &std::io::Error) -> String {
        let s = e.to_string();
        match s.find(" (os error ") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    }

    /// Connects to `addr` (`host:port`, or `host port` as varnishtest's
    /// macros may give it) and reads until the other side closes, for at
    /// most `timeout` seconds when it is positive.
    pub(crate) fn sync(addr: &str, timeout: f64) -> Result<(), Failure> {
        let addr = addr.trim();
        let spec = match addr.rsplit_once(' ') {
            Some((h, p)) if !addr.contains(':') || addr.starts_with('[') => format!("{h}:{p}"),
            _ => addr.to_string(),
        };
        let addrs: Vec<SocketAddr> = spec
            .to_socket_addrs()
            .map_err(|e| Failure(format!("Barrier connection failed: {}", strerror(&e))))?
            .collect();
        let mut last = None;
        let mut sock = None;
        for a in addrs {
            match TcpStream::connect(a) {
                Ok(s) => {
                    sock = Some(s);
                    break;
                }
                Err(e) => last = Some(strerror(&e)),
            }
        }
        let Some(mut sock) = sock else {
            let why = last.unwrap_or_else(|| "no address".into());
            return Err(Failure(format!("Barrier connection failed: {why}")));
        };
        if timeout > 0.0 {
            let _ = sock.set_read_timeout(Some(std::time::Duration::from_secs_f64(timeout)));
        }
        let mut buf = [0u8; 32];
        loop {
            return match sock.read(&mut buf) {
                Ok(0) => Ok(()),
                Ok(n) => Err(Failure(format!("Barrier unexpected data ({n}B)"))),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(Failure(format!(
                    "Barrier read failed: {} (errno={})",
                    strerror(&e),
                    e.raw_os_error().unwrap_or(0)
                ))),
            };
        }
    }

    /// Connects to the barrier socket at *addr* (`${b1_sock}`) and waits
    /// until the barrier opens; a *timeout* of 0 waits for ever. The task
    /// fails when the barrier cannot be reached or the wait times out.
    pub fn barrier_sync(ctx: &mut Ctx, addr: &str, #[default(0)] timeout: Duration) -> Result<(), Failure> {
        if addr.is_empty() {
            return Err(Failure("Barrier connection failed: empty address".into()));
        }
        if timeout.0 < 0.0 {
            return Err(Failure("Barrier timeout must not be negative".into()));
        }
        let mut r = Ok(());
        ctx.blocking(&mut || r = sync(addr, timeout.0));
        r
    }

    /// Returns no backend (NULL).
    pub fn no_backend() -> Backend {
        Backend(None)
    }

    /// Returns no storage (NULL): assigned to `beresp.storage`, the
    /// server picks the next store in turn.
    pub fn no_stevedore() -> lacquer_module::Stevedore {
        lacquer_module::Stevedore(None)
    }

    /// Returns a null IP address, not even a bogo_ip.
    pub fn no_ip() -> Option<SocketAddr> {
        None
    }

    /// Panics the server (as a Varnish panic ends the child process), with
    /// the message `PANIC: ` and the arguments.
    pub fn panic(ctx: &mut Ctx, #[positional] s: Strands) {
        let msg = format!("PANIC: {}", String::from_utf8_lossy(&s.to_vec()));
        ctx.panic(&msg)
    }

    /// Sleeps the task for *t* seconds.
    pub fn sleep(ctx: &mut Ctx, #[positional] t: Duration) {
        if t.0 > 0.0 && t.0.is_finite() {
            let d = std::time::Duration::from_secs_f64(t.0);
            ctx.blocking(&mut || std::thread::sleep(d));
        }
    }

    /// The workspace an ENUM names, where the task has it.
    fn ws<'c>(ctx: &'c Ctx, which: &str) -> Option<&'c dyn Workspace> {
        ctx.workspace(WsId::from_word(which)?)
    }

    /// The snapshot `workspace_snapshot` took, for `workspace_reset`: one
    /// for the process, as vmod_vtc keeps it.
    static SNAPSHOT: std::sync::Mutex<Option<WsSnap>> = std::sync::Mutex::new(None);

    /// Allocates *size* bytes from workspace *which*; a negative *size*
    /// allocates all but that many of the free bytes. The task fails when
    /// they do not fit (the workspace is then overflowed).
    pub fn workspace_alloc(
        ctx: &mut Ctx,
        #[positional]
        #[enum_values("client", "backend", "session", "thread")]
        which: &str,
        size: i64,
    ) -> Result<(), Failure> {
        let Some(ws) = ws(ctx, which) else { return Ok(()) };
        let size = if size < 0 {
            let free = ws.reserve(None);
            ws.release(0);
            size + free as i64
        } else {
            size
        };
        if size <= 0 {
            return Err(Failure("Attempted negative WS allocation".into()));
        }
        if !ws.alloc(size as usize) {
            return Err(Failure("vtc.workspace_alloc".into()));
        }
        Ok(())
    }

    /// Reserves *size* bytes of workspace *which* and releases them at
    /// once: the bytes that could be reserved, 0 when fewer are free.
    pub fn workspace_reserve(
        ctx: &mut Ctx,
        #[positional]
        #[enum_values("client", "backend", "session", "thread")]
        which: &str,
        size: i64,
    ) -> Bytes {
        let Some(ws) = ws(ctx, which) else { return Bytes(0.0) };
        if size <= 0 {
            return Bytes(0.0);
        }
        let r = ws.reserve(Some(size as usize));
        ws.release(0);
        Bytes(r as f64)
    }

    /// The free bytes of workspace *which*; -1 where the task has none.
    pub fn workspace_free(
        ctx: &mut Ctx,
        #[positional]
        #[enum_values("client", "backend", "session", "thread")]
        which: &str,
    ) -> i64 {
        let Some(ws) = ws(ctx, which) else { return -1 };
        let free = ws.reserve(None);
        ws.release(0);
        free as i64
    }

    /// Takes a snapshot of workspace *which* for `workspace_reset`.
    pub fn workspace_snapshot(
        ctx: &mut Ctx,
        #[positional]
        #[enum_values("client", "backend", "session", "thread")]
        which: &str,
    ) {
        if let Some(ws) = ws(ctx, which) {
            *SNAPSHOT.lock().unwrap_or_else(|e| e.into_inner()) = Some(ws.snapshot());
        }
    }

    /// Resets workspace *which* to the last `workspace_snapshot`.
    pub fn workspace_reset(
        ctx: &mut Ctx,
        #[positional]
        #[enum_values("client", "backend", "session", "thread")]
        which: &str,
    ) -> Result<(), Failure> {
        let Some(ws) = ws(ctx, which) else { return Ok(()) };
        let snap = SNAPSHOT
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ok_or_else(|| Failure("vtc.workspace_reset: no snapshot taken (vtc.workspace_snapshot)".into()))?;
        ws.reset(snap);
        Ok(())
    }

    /// Whether workspace *which* has overflowed.
    pub fn workspace_overflowed(
        ctx: &mut Ctx,
        #[positional]
        #[enum_values("client", "backend", "session", "thread")]
        which: &str,
    ) -> bool {
        ws(ctx, which).is_some_and(|w| w.overflowed())
    }

    /// Marks workspace *which* overflowed, as running out of it would.
    pub fn workspace_overflow(
        ctx: &mut Ctx,
        #[positional]
        #[enum_values("client", "backend", "session", "thread")]
        which: &str,
    ) {
        if let Some(ws) = ws(ctx, which) {
            ws.mark_overflow();
        }
    }

    /// The size in bytes of a C struct made of the fields the letters of
    /// *s* name, in order, with the host's alignment and padding: `c`
    /// char, `d` double, `f` float, `i` int, `j` intmax_t, `l` long, `o`
    /// off_t, `p` pointer, `s` short, `u` unsigned, `z` size_t. Returns
    /// -1 for any other letter.
    pub fn typesize(#[positional] s: &str) -> Result<i64, Failure> {
        if s.is_empty() {
            return Err(Failure("vtc.typesize: empty type string".into()));
        }
        Ok(crate::typesize(s.as_bytes()).map_or(-1, |n| n as i64))
    }

    /// The PROXY protocol header a client connected from *client* to
    /// *server* would send, in *version* 1 (text) or 2 (binary, with
    /// *authority* as a PP2_TYPE_AUTHORITY TLV when given).
    pub fn proxy_header(
        #[enum_values("v1", "v2")] version: &str,
        client: SocketAddr,
        server: SocketAddr,
        authority: Option<&[u8]>,
    ) -> Result<Blob, Failure> {
        let v = if version == "v1" { 1 } else { 2 };
        crate::proxy::format(v, client, server, authority).map(Blob).map_err(Failure)
    }

    /// Writes a log record *tag* (a tag's name) with the text of *s* for
    /// transaction *vxid*, on *side* `c` (client) or `b` (backend).
    pub fn vsl(
        ctx: &mut Ctx,
        vxid: i64,
        tag: &str,
        #[enum_values("c", "b")] side: &str,
        s: Strands,
    ) -> Result<(), Failure> {
        if !(0..=i64::from(crate::VXID_MAX)).contains(&vxid) {
            return Err(Failure(format!("vtc.vsl: vxid {vxid} out of bounds")));
        }
        ctx.log_record(vxid as u64, tag, side == "c", &s.to_vec()).map_err(|f| Failure(format!("vtc.vsl: {}", f.0)))
    }

    /// Writes the log records of *s*, lines as `varnishtest -v` prints
    /// them (`**** v1    vsl|       1001 ReqURL          c /`): the
    /// vxid, tag, side and text after `vsl|`. Lines without `vsl|` are
    /// skipped.
    pub fn vsl_replay(ctx: &mut Ctx, s: Strands) -> Result<(), Failure> {
        let all = s.to_vec();
        for line in all.split(|&b| b == b'\n') {
            let Some(rec) = crate::replay_line(line).map_err(|e| Failure(format!("vtc.vsl_replay: {e}")))? else {
                continue;
            };
            ctx.log_record(rec.vxid, rec.tag, rec.client, rec.text)
                .map_err(|f| Failure(format!("vtc.vsl_replay: {}", f.0)))?;
        }
        Ok(())
    }
}

/// The largest vxid the log carries (30 bits).
pub const VXID_MAX: u32 = (1 << 30) - 1;

/// One record of a `vtc.vsl_replay` script.
#[derive(Debug, PartialEq)]
pub struct Replayed<'a> {
    pub vxid: u64,
    pub tag: &'a str,
    pub client: bool,
    pub text: &'a [u8],
}

/// Parses one line of a `vtc.vsl_replay` script: `None` for a line that
/// holds no record (no `vsl|`), an error for one that holds a bad one.
pub fn replay_line(line: &[u8]) -> Result<Option<Replayed<'_>>, String> {
    let Some(at) = line.windows(4).position(|w| w == b"vsl|") else { return Ok(None) };
    let rest = std::str::from_utf8(&line[at + 4..]).map_err(|_| "a record is not UTF-8".to_string())?;
    let rest = rest.strip_suffix('\r').unwrap_or(rest);
    let mut words = rest.trim_start();
    let mut next = |what: &str| -> Result<&str, String> {
        let w = words.split_ascii_whitespace().next().ok_or_else(|| format!("no {what} in {rest:?}"))?;
        let i = words.find(w).unwrap_or(0) + w.len();
        words = &words[i..];
        Ok(w)
    };
    let vxid: u64 = next("vxid")?.parse().map_err(|_| format!("bad vxid in {rest:?}"))?;
    if vxid > u64::from(VXID_MAX) {
        return Err(format!("vxid {vxid} out of bounds"));
    }
    let tag = next("tag")?;
    let side = next("side")?;
    let client = match side {
        "c" | "-" => true,
        "b" => false,
        _ => return Err(format!("bad side {side:?} in {rest:?}")),
    };
    // The text follows the side after one blank, and may be empty.
    let text = words.strip_prefix(' ').unwrap_or(words);
    Ok(Some(Replayed { vxid, tag, client, text: text.as_bytes() }))
}

/// `vtc.typesize`: the size of a C struct with fields of the types the
/// letters of `s` name (see the function's doc), or `None` for a letter
/// that names no type. Alignment is each type's size, as on the ABIs
/// Varnish runs on.
pub fn typesize(s: &[u8]) -> Option<usize> {
    use std::ffi::{c_char, c_int, c_long, c_short, c_uint};
    use std::mem::size_of;
    let (mut total, mut widest) = (0usize, 1usize);
    for c in s {
        let l = match c {
            b'c' => size_of::<c_char>(),
            b'd' => size_of::<f64>(),
            b'f' => size_of::<f32>(),
            b'i' => size_of::<c_int>(),
            b'j' => size_of::<i64>(),
            b'l' => size_of::<c_long>(),
            b'o' => size_of::<i64>(),
            b'p' => size_of::<*const u8>(),
            b's' => size_of::<c_short>(),
            b'u' => size_of::<c_uint>(),
            b'z' => size_of::<usize>(),
            _ => return None,
        };
        widest = widest.max(l);
        total = total.next_multiple_of(l) + l;
    }
    Some(total.next_multiple_of(widest))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_lines_as_varnishtest_prints_them() {
        let r = replay_line(b"**** v1    vsl|       1001 ReqHeader       c Host: 127.0.0.1").unwrap().unwrap();
        assert_eq!(r, Replayed { vxid: 1001, tag: "ReqHeader", client: true, text: b"Host: 127.0.0.1" });
        let r = replay_line(b"**** v1    vsl|       1001 Filters         b ").unwrap().unwrap();
        assert_eq!((r.client, r.text), (false, &b""[..]));
        assert_eq!(replay_line(b"just text").unwrap(), None);
        assert!(replay_line(b"vsl| x Begin c").is_err());
        assert!(replay_line(b"vsl| 1 Begin q").is_err());
    }
}
