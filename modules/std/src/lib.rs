//! Varnish 7.1's vmod_std for Lacquer, written with `lacquer-module` the
//! way an outside author would write a module.
//!
//! Every function behaves as varnishd 7.1's does; the conversion tests
//! hold values read off varnishd. What the module cannot do itself (read
//! the request body, roll back a request, set the socket's TOS, add a ban,
//! know a backend's health) it asks the host through `lacquer_module::Host`.
//! Left out: `syntax` (the host does not tell modules the VCL syntax
//! version yet).

mod fnmatch;
mod net;
mod num;
mod query;
mod strftime;

#[doc(hidden)]
pub use fnmatch::{fnmatch as fnmatch_bytes, Flags as FnmatchFlags};

#[lacquer_module::module(name = "std")]
pub mod vmod {
    //! Varnish Standard Module: conversions, string helpers, logging,
    //! files, and access to request handling the VCL language lacks.

    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use lacquer_module::{
        Backend, Blob, Bytes, Ctx, Duration, Failure, Header, Http, NullStr, PrivCall, PrivTask, Strands, Time,
    };

    use crate::fnmatch::{fnmatch as fnm, Flags};
    use crate::{net, num, query, strftime as sft};

    /// The largest INT VCL can print (`VRT_INTEGER_MAX`).
    const INTEGER_MAX: f64 = 999_999_999_999_999.0;
    /// The largest REAL VCL can print (`VRT_DECIMAL_MAX`).
    const DECIMAL_MAX: f64 = 999_999_999_999.999;

    fn onearg(f: &str, n: usize) -> Result<(), Failure> {
        match n {
            1 => Ok(()),
            0 => Err(Failure(format!("std.{f}: not enough arguments"))),
            _ => Err(Failure(format!("std.{f}: too many arguments"))),
        }
    }

    /// Whether the running VCL's version (`vcl 4.0;`, `vcl 4.1;`) is at
    /// least *v*.
    pub fn syntax(ctx: &mut Ctx, #[positional] v: f64) -> Result<bool, Failure> {
        let have = ctx.vcl_syntax().ok_or_else(|| Failure("std.syntax: the VCL version is not known here".into()))?;
        Ok((v * 10.0).round() <= f64::from(have))
    }

    /// Returns a random REAL number between *lo* and *hi*.
    pub fn random(lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * lacquer_module::rand::fine_unit()
    }

    /// Rounds the real *r* to the nearest integer, but round halfway cases
    /// away from zero (see round(3)).
    pub fn round(r: f64) -> f64 {
        r.round()
    }

    /// Collapses multiple *hdr* headers into one long header. The values
    /// are joined by *sep*. The cached object (`obj.http`) is read only, so
    /// collecting its headers fails the VCL.
    pub fn collect(ctx: &mut Ctx, hdr: Header, #[default(", ")] sep: &[u8]) -> Result<(), Failure> {
        if hdr.which == Http::Obj {
            return Err(Failure("std.collect(): header argument cannot be used here".into()));
        }
        ctx.collect_header(hdr.which, hdr.name, sep)
    }

    /// Returns the URL with its query-string sorted by parameter; empty
    /// parameters are removed.
    pub fn querysort(#[positional] url: NullStr) -> Option<Vec<u8>> {
        url.0.map(query::sort)
    }

    /// Converts the string *s* to uppercase (ASCII only).
    pub fn toupper(s: Strands) -> Vec<u8> {
        s.to_vec().to_ascii_uppercase()
    }

    /// Converts the string *s* to lowercase (ASCII only).
    pub fn tolower(s: Strands) -> Vec<u8> {
        s.to_vec().to_ascii_lowercase()
    }

    /// Returns a string beginning at the first occurrence of the string
    /// *s2* in the string *s1*, or an empty string (NULL) if not found.
    pub fn strstr(s1: NullStr, s2: NullStr) -> Option<Vec<u8>> {
        let (a, b) = (s1.0?, s2.0?);
        if b.is_empty() {
            return Some(a.to_vec());
        }
        a.windows(b.len()).position(|w| w == b).map(|i| a[i..].to_vec())
    }

    /// Shell-style pattern matching (fnmatch(3)): whether *subject*
    /// matches *pattern*.
    pub fn fnmatch(
        pattern: NullStr,
        subject: NullStr,
        #[default(true)] pathname: bool,
        #[default(false)] noescape: bool,
        #[default(false)] period: bool,
    ) -> Result<bool, Failure> {
        let p = pattern.0.ok_or_else(|| Failure("std.fnmatch(): pattern is NULL".into()))?;
        let s = subject.0.ok_or_else(|| Failure("std.fnmatch(): subject is NULL".into()))?;
        Ok(fnm(p, s, Flags { pathname, noescape, period }))
    }

    /// What `fileread` and `blobread` keep per call site: contents by path.
    pub type FileCache = Mutex<HashMap<Vec<u8>, Arc<Vec<u8>>>>;

    fn read_cached(cache: &PrivCall<FileCache>, path: &[u8]) -> Result<Option<Arc<Vec<u8>>>, Failure> {
        let files = cache.get_or_init(FileCache::default)?;
        let mut files = files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = files.get(path) {
            return Ok(Some(c.clone()));
        }
        let p = std::path::Path::new(std::str::from_utf8(path).unwrap_or(""));
        match std::fs::read(p) {
            Ok(c) => {
                let c = Arc::new(c);
                files.insert(path.to_vec(), c.clone());
                Ok(Some(c))
            }
            Err(_) => Ok(None),
        }
    }

    /// Reads a text file and returns a string with the content. The file
    /// is read once, the first time this call site runs, and kept for the
    /// life of the VCL; NULL when it cannot be read.
    pub fn fileread(cache: PrivCall<FileCache>, #[positional] path: NullStr) -> Result<Option<Vec<u8>>, Failure> {
        let Some(path) = path.0 else { return Ok(None) };
        Ok(read_cached(&cache, path)?.map(|c| {
            let end = c.iter().position(|&b| b == 0).unwrap_or(c.len());
            c[..end].to_vec()
        }))
    }

    /// Reads any file and returns a blob with the content, cached as for
    /// `fileread`; NULL when it cannot be read.
    pub fn blobread(cache: PrivCall<FileCache>, #[positional] path: NullStr) -> Result<Option<Blob>, Failure> {
        let Some(path) = path.0 else { return Ok(None) };
        Ok(read_cached(&cache, path)?.map(|c| Blob(c.to_vec())))
    }

    /// Returns true if path or the file pointed to by path exists.
    pub fn file_exists(path: &str) -> bool {
        std::fs::metadata(path).is_ok()
    }

    /// Returns true if the backend *be* is healthy.
    pub fn healthy(ctx: &mut Ctx, be: Backend) -> bool {
        ctx.backend_healthy(be).unwrap_or(false)
    }

    /// Returns the port number of the IP address *ip*.
    pub fn port(ip: SocketAddr) -> i64 {
        i64::from(ip.port())
    }

    /// Converts the string *s* (a number with a unit: `1.5s`, `10m`, `1d`)
    /// or the *real* or *integer* to a DURATION; *fallback* when *s* does
    /// not convert. Exactly one of *s*, *real*, *integer* must be given.
    pub fn duration(
        s: Option<NullStr>,
        fallback: Option<Duration>,
        real: Option<f64>,
        integer: Option<i64>,
    ) -> Result<Duration, Failure> {
        onearg("duration", s.is_some() as usize + real.is_some() as usize + integer.is_some() as usize)?;
        if let Some(r) = real {
            return Ok(Duration(r));
        }
        if let Some(i) = integer {
            return Ok(Duration(i as f64));
        }
        if let Some(v) = s.and_then(|s| s.0).and_then(num::duration) {
            return Ok(Duration(v));
        }
        fallback.ok_or_else(|| Failure("std.duration: conversion failed".into()))
    }

    /// Converts the string *s* (a byte count with an optional multiplier:
    /// `10K`, `1.5MB`), the *real* or the *integer* to BYTES; *fallback*
    /// when it does not convert.
    pub fn bytes(
        s: Option<NullStr>,
        fallback: Option<Bytes>,
        real: Option<f64>,
        integer: Option<i64>,
    ) -> Result<Bytes, Failure> {
        onearg("bytes", s.is_some() as usize + real.is_some() as usize + integer.is_some() as usize)?;
        if let Some(v) = s.and_then(|s| s.0).and_then(num::bytes) {
            if v <= INTEGER_MAX {
                return Ok(Bytes(v));
            }
        }
        if let Some(r) = real.filter(|r| !r.is_nan() && *r >= 0.0).map(f64::trunc) {
            if r <= INTEGER_MAX {
                return Ok(Bytes(r));
            }
        }
        if let Some(i) = integer.filter(|i| *i >= 0) {
            return Ok(Bytes(i as f64));
        }
        fallback.ok_or_else(|| Failure("std.bytes: conversion failed".into()))
    }

    /// Converts the string *s*, or the *bool*, *bytes*, *duration*, *real*
    /// or *time* (truncated toward zero, as a C cast does) to an INT;
    /// *fallback* when it does not convert.
    #[allow(clippy::too_many_arguments)]
    pub fn integer(
        s: Option<NullStr>,
        fallback: Option<i64>,
        bool: Option<bool>,
        bytes: Option<Bytes>,
        duration: Option<Duration>,
        real: Option<f64>,
        time: Option<Time>,
    ) -> Result<i64, Failure> {
        let n = [s.is_some(), bool.is_some(), bytes.is_some(), duration.is_some(), real.is_some(), time.is_some()];
        onearg("integer", n.iter().filter(|b| **b).count())?;
        if let Some(b) = bool {
            return Ok(b as i64);
        }
        if let Some(b) = bytes {
            return Ok(b.0 as i64);
        }
        if let Some(v) = s.and_then(|s| s.0).and_then(num::integer) {
            return Ok(v);
        }
        let r = duration.map(|d| d.0).or(real).or(time.map(|t| t.0)).map(f64::trunc);
        if let Some(r) = r.filter(|r| !r.is_nan() && r.abs() <= INTEGER_MAX) {
            return Ok(r as i64);
        }
        fallback.ok_or_else(|| Failure("std.integer: conversion failed".into()))
    }

    /// Converts the string *s* to an IP address (resolving names when
    /// *resolve*, with port *p*, 80 when neither gives one); *fallback*
    /// when it does not convert.
    pub fn ip(
        s: NullStr,
        fallback: Option<SocketAddr>,
        #[default(true)] resolve: bool,
        p: Option<&str>,
    ) -> Result<SocketAddr, Failure> {
        let s = s.0.map(String::from_utf8_lossy);
        if let Some(a) = s.and_then(|s| net::resolve_first(&s, p.unwrap_or("80"), resolve)) {
            return Ok(a);
        }
        fallback.ok_or_else(|| Failure("std.ip: conversion failed".into()))
    }

    /// Converts the string *s*, or the *integer*, *bool*, *bytes*,
    /// *duration* or *time* to a REAL; *fallback* when it does not convert.
    #[allow(clippy::too_many_arguments)]
    pub fn real(
        s: Option<NullStr>,
        fallback: Option<f64>,
        integer: Option<i64>,
        bool: Option<bool>,
        bytes: Option<Bytes>,
        duration: Option<Duration>,
        time: Option<Time>,
    ) -> Result<f64, Failure> {
        let n = [s.is_some(), integer.is_some(), bool.is_some(), bytes.is_some(), duration.is_some(), time.is_some()];
        onearg("real", n.iter().filter(|b| **b).count())?;
        if let Some(i) = integer {
            return Ok(i as f64);
        }
        if let Some(b) = bool {
            return Ok(f64::from(u8::from(b)));
        }
        if let Some(v) = bytes.map(|b| b.0).or(duration.map(|d| d.0)).or(time.map(|t| t.0)) {
            return Ok(v);
        }
        if let Some(v) = s.and_then(|s| s.0).and_then(num::vnum) {
            return Ok(v);
        }
        fallback.ok_or_else(|| Failure("std.real: conversion failed".into()))
    }

    /// Converts the string *s* (an HTTP date, an ISO 8601 `YYYY-MM-DDTHH:MM:SS`
    /// in UTC, or seconds since the epoch),
    /// the *real* or the *integer* to a TIME; *fallback* when it does not
    /// convert. With `feature=+http_date_postel` a one-digit day of the
    /// month is accepted in an RFC 1123 date.
    pub fn time(
        ctx: &mut Ctx,
        s: Option<NullStr>,
        fallback: Option<Time>,
        real: Option<f64>,
        integer: Option<i64>,
    ) -> Result<Time, Failure> {
        onearg("time", s.is_some() as usize + real.is_some() as usize + integer.is_some() as usize)?;
        if let Some(i) = integer {
            return Ok(Time(i as f64));
        }
        if let Some(r) = real {
            return Ok(Time(r));
        }
        if let Some(s) = s.and_then(|s| s.0) {
            let postel = ctx.param("feature").is_some_and(|f| f.split(',').any(|b| b == "+http_date_postel"));
            if let Some(t) = num::http_date(s, postel).or_else(|| num::iso8601(s)) {
                return Ok(Time(t));
            }
            if let Some(t) = num::vnum(s).filter(|t| *t > 0.0) {
                return Ok(Time(t));
            }
        }
        fallback.ok_or_else(|| Failure("std.time: conversion failed".into()))
    }

    /// Formats the *time* as strftime(3) does, in UTC.
    pub fn strftime(time: Time, format: &[u8]) -> Option<Vec<u8>> {
        sft::strftime(time.0, format)
    }

    /// Logs the string *s* to the shared memory log (a `VCL_Log` record).
    pub fn log(ctx: &mut Ctx, s: Strands) {
        let msg = s.to_vec();
        ctx.log(&msg);
    }

    /// Logs the string *s* to syslog with the *priority* (a `LOG_*`
    /// facility and level sum; `LOG_USER` when it has no facility).
    ///
    /// The message is built in the task's workspace for the call only (a
    /// snapshot, then a reset, as Varnish's does): nothing is sent when it
    /// does not fit.
    pub fn syslog(ctx: &mut Ctx, priority: i64, s: Strands) {
        let text = s.to_vec();
        if let Some(ws) = ctx.task_workspace() {
            let snap = ws.snapshot();
            let fits = ws.alloc(text.len() + 1);
            ws.reset(snap);
            if !fits {
                return;
            }
        }
        let pri = if priority & 0x3f8 == 0 { priority | 8 } else { priority };
        let mut msg = format!("<{pri}>lacquer[{}]: ", std::process::id()).into_bytes();
        msg.extend_from_slice(&text);
        if let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() {
            // Like syslog(3), a missing log daemon is not the caller's problem.
            let _ = sock.send_to(&msg, "/dev/log");
        }
    }

    /// Emits a `Timestamp` record to the log with the label *s* (the
    /// current time, since the start of the task, since the last one).
    pub fn timestamp(ctx: &mut Ctx, s: NullStr) {
        if let Some(label) = s.0.filter(|l| !l.is_empty()) {
            ctx.timestamp(label);
        }
    }

    /// Returns the value of the environment variable *name*, or NULL.
    pub fn getenv(name: NullStr) -> Option<Vec<u8>> {
        use std::os::unix::ffi::{OsStrExt, OsStringExt};
        std::env::var_os(std::ffi::OsStr::from_bytes(name.0?)).map(|v| v.into_vec())
    }

    /// Caches the request body up to *size* bytes, so it can be used again
    /// (retries, restarts). Only in `vcl_recv`. Returns whether it was cached.
    pub fn cache_req_body(ctx: &mut Ctx, size: Bytes) -> Result<bool, Failure> {
        if ctx.method() != "vcl_recv" {
            return Err(Failure("req.body can only be cached in vcl_recv{}".into()));
        }
        ctx.cache_req_body(size.0.max(0.0) as u64)
    }

    /// Controls when a `100 Continue` is sent: at once (false, the
    /// default) or only when the body is read (true). Only in `vcl_recv`.
    pub fn late_100_continue(ctx: &mut Ctx, late: bool) -> Result<(), Failure> {
        if ctx.method() != "vcl_recv" {
            ctx.log(b"std.late_100_continue() only valid in vcl_recv{}");
            return Ok(());
        }
        ctx.late_100_continue(late)
    }

    /// Sets the IP type-of-service (TOS) field of the client connection.
    pub fn set_ip_tos(ctx: &mut Ctx, tos: i64) -> Result<(), Failure> {
        ctx.set_ip_tos(tos)
    }

    /// Restores the *h* HTTP headers (`req` or `bereq`) to their state
    /// before any VCL changes.
    pub fn rollback(ctx: &mut Ctx, h: Http) -> Result<(), Failure> {
        ctx.rollback(h)
    }

    /// Invalidates all objects in cache that match the ban expression.
    /// Returns whether the ban was added; `ban_error` tells why not.
    pub fn ban(ctx: &mut Ctx, #[positional] expr: NullStr, err: PrivTask<String>) -> bool {
        let mut err = err;
        match ctx.ban(expr.0) {
            Ok(()) => {
                err.take();
                true
            }
            Err(e) => {
                err.set(e);
                false
            }
        }
    }

    /// Returns the error of the last `std.ban()` in this task, or "".
    pub fn ban_error(err: PrivTask<String>) -> String {
        err.get().cloned().unwrap_or_default()
    }

    /// Rounds the real *r* to an INT; *fallback* when it cannot.
    pub fn real2integer(r: f64, fallback: i64) -> i64 {
        if !r.is_finite() || r.abs() > DECIMAL_MAX {
            return fallback;
        }
        let v = r.round();
        if v.abs() > INTEGER_MAX {
            fallback
        } else {
            v as i64
        }
    }

    /// Converts the real *r* to a TIME; *fallback* when it is not finite.
    pub fn real2time(r: f64, fallback: Time) -> Time {
        if r.is_finite() {
            Time(r)
        } else {
            fallback
        }
    }

    /// Rounds the time *t* to an INT; *fallback* when it cannot.
    pub fn time2integer(t: Time, fallback: i64) -> i64 {
        let v = t.0.round();
        if !v.is_finite() || v.abs() > INTEGER_MAX {
            fallback
        } else {
            v as i64
        }
    }

    /// Converts the time *t* to a REAL; *fallback* when it is not finite.
    pub fn time2real(t: Time, fallback: f64) -> f64 {
        if t.0.is_finite() {
            t.0
        } else {
            fallback
        }
    }
}
