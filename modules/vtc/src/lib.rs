//! Varnish 7.1's vmod_vtc for Lacquer: the helpers Varnish's own test
//! scripts import (`import vtc;`) to make the server wait, sleep, fail or
//! report sizes at a chosen point of a request. Written with
//! `lacquer-module` the way an outside author would write a module.
//!
//! The interface is vmod_vtc.vcc's of 7.1 (names, argument names, types
//! and defaults as varnishd's module spec has them), less what Lacquer
//! cannot do honestly:
//!
//! - `workspace_alloc`, `workspace_free`, `workspace_reserve`,
//!   `workspace_snapshot`, `workspace_reset`, `workspace_overflow`,
//!   `workspace_overflowed`, `workspace_dump`: Lacquer has no Varnish
//!   workspace (a fixed arena per task that allocations exhaust); there is
//!   nothing for them to measure or exhaust, and answers made up here would
//!   make the scripts that use them pass or fail for no reason.
//! - `no_stevedore`: the SDK has no STEVEDORE result type yet.
//! - `vsl`, `vsl_replay`: the host does not let a module write records for
//!   another transaction.
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

    use lacquer_module::{Backend, Blob, Ctx, Duration, Failure, Strands};

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
