//! The values that cross between a module and its host, on the Rust side.

use std::any::Any;
use std::fmt;
use std::net::SocketAddr;

pub use lacquer_abi::{Http, IpKind, PrivScope};

/// A director made by a module (Varnish's VDI): what a BACKEND made with
/// [`Host::add_director`](crate::Host::add_director) stands for. The server
/// asks it, at each fetch or pipe, which backend to use — another
/// director's BACKEND is fine, so directors nest (a fallback over two
/// round-robins) — and whether it could serve now (`std.healthy()`, and
/// for the directors above it). `healthy` answers for a member.
pub trait Director: Send + Sync {
    /// The member to use now, or `None` when none can serve.
    fn resolve(&self, healthy: &dyn Fn(Backend) -> bool) -> Option<Backend>;
    /// Whether some member could serve now.
    fn healthy(&self, healthy: &dyn Fn(Backend) -> bool) -> bool;
    /// The member to use now for the task `ctx` runs for (a fetch, a
    /// pipe): for directors that pick by the request (its hash, its URL)
    /// or by what VCL set for the task. The host makes `ctx` as for a call
    /// of the director's object, so its PRIV_TASK is the object's. The
    /// default asks [`resolve`](Director::resolve).
    fn resolve_task(&self, ctx: &mut crate::Ctx) -> Option<Backend> {
        self.resolve(&|b| ctx.backend_healthy(b).unwrap_or(false))
    }
    /// What `backend.list` shows of it (Varnish's director `list`
    /// callback), given each member's health and when that last changed;
    /// `None` shows only its name and health.
    fn listing(&self, _members: &dyn MemberState) -> Option<DirectorListing> {
        None
    }
}

/// What the host tells a director about its members for
/// [`Director::listing`].
pub trait MemberState {
    /// Whether the member could serve now.
    fn healthy(&self, be: Backend) -> bool;
    /// When its health last changed (seconds since the epoch), if known.
    fn changed(&self, be: Backend) -> Option<f64>;
    /// Its VCL name.
    fn name(&self, be: Backend) -> String;
    /// The time now, in the same seconds.
    fn now(&self) -> f64;
}

/// A director as `backend.list` shows it: with `-p`, a table of its
/// members under its line; with `-j`, the same as `probe_details`.
#[derive(Clone, Debug, Default)]
pub struct DirectorListing {
    /// Its type as varnishd names it in JSON (`round-robin`, `shard` …).
    pub kind: String,
    /// How many members could serve, of how many (the `Probe` column).
    pub healthy: usize,
    pub total: usize,
    /// The table's columns after `Backend`, for `-p`.
    pub columns: Vec<String>,
    /// One row per member: its name, then one cell per column.
    pub rows: Vec<(String, Vec<String>)>,
    /// `probe_details` fields before `backends`, as JSON values.
    pub json_settings: Vec<(String, String)>,
    /// Per member (in row order), its `probe_details.backends` fields, as
    /// JSON values.
    pub json_members: Vec<Vec<(String, String)>>,
}

/// One counter a module publishes in shared memory (an element of
/// Varnish's `.vsc` files): shown by `lacquer stat` as `GROUP.name`, with
/// the server's own, and to Prometheus.
#[derive(Clone, Copy, Debug)]
pub struct CounterDef {
    pub name: &'static str,
    /// A gauge goes up and down; a counter only grows.
    pub gauge: bool,
    /// A one-line description.
    pub doc: &'static str,
}

/// A module's counters, made with [`Host::counters`](crate::Host::counters):
/// row `i` is `defs[i]`. They leave shared memory when this is dropped.
pub trait Counters: Send + Sync {
    /// Adds `n` to row `i` (a counter or a gauge).
    fn add(&self, i: usize, n: u64);
    /// Sets gauge `i`.
    fn set(&self, i: usize, v: u64);
    /// Row `i`'s value.
    fn get(&self, i: usize) -> u64;
}

/// A request a module's own backend answers ([`NativeBackend`]): the
/// backend request's head as the fetch sends it.
#[derive(Debug, Clone, Default)]
pub struct BackendRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
}

impl BackendRequest {
    /// The first header `name`, case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The body of a [`BackendResponse`].
#[derive(Debug)]
pub enum ResponseBody {
    Empty,
    Bytes(Vec<u8>),
    /// `len` bytes of `file` from `offset`, copied by the server without
    /// the module holding the task.
    File {
        file: std::fs::File,
        offset: u64,
        len: u64,
    },
}

impl ResponseBody {
    /// The body's length.
    pub fn len(&self) -> u64 {
        match self {
            ResponseBody::Empty => 0,
            ResponseBody::Bytes(b) => b.len() as u64,
            ResponseBody::File { len, .. } => *len,
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a module's own backend answers. The server adds `Content-Length`
/// (the body's) and sends no body to a `HEAD` request.
#[derive(Debug)]
pub struct BackendResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: ResponseBody,
}

impl BackendResponse {
    /// A response with no headers yet.
    pub fn new(status: u16, body: ResponseBody) -> BackendResponse {
        BackendResponse { status, headers: Vec::new(), body }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> BackendResponse {
        self.headers.push((name.to_string(), value.into()));
        self
    }
}

/// A backend a module implements itself, which answers backend requests
/// without any network (the `fs` module serves files this way): what a
/// BACKEND made with [`Host::add_backend`](crate::Host::add_backend)
/// stands for. `respond` runs on a thread that may block (file reads).
pub trait NativeBackend: Send + Sync {
    fn respond(&self, req: &BackendRequest) -> BackendResponse;
}

/// A VCL's life event, as a module's `#[event]` function receives it
/// (Varnish's `enum vcl_event_e`): `Load` before `vcl_init` runs (an
/// error refuses the VCL, with the error's text), `Warm` when the VCL is
/// warmed (its backends are probed, it may be used), `Cold` when it cools
/// down, `Discard` when it goes, after `vcl_fini`. Each VCL sends each
/// event to each module that imported it, with that VCL's `PRIV_VCL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Load,
    Warm,
    Cold,
    Discard,
}

impl Event {
    /// The ENUM value VCL's spec gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Event::Load => "load",
            Event::Warm => "warm",
            Event::Cold => "cold",
            Event::Discard => "discard",
        }
    }

    /// The event an ENUM value names.
    pub fn parse(s: &str) -> Option<Event> {
        [Event::Load, Event::Warm, Event::Cold, Event::Discard].into_iter().find(|e| e.as_str() == s)
    }
}

/// A DURATION: seconds, possibly negative or fractional.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Duration(pub f64);

/// A TIME: seconds since the Unix epoch.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Time(pub f64);

/// A BYTES quantity. VCL keeps it as a real number; it is never negative.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Default)]
pub struct Bytes(pub f64);

/// A BACKEND: a handle the host gave out (a backend or a director), or
/// `None` for VCL's NULL backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backend(pub Option<u64>);

/// A PROBE handle, or `None` for no probe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Probe(pub Option<u64>);

/// An ACL handle, or `None` for VCL's NULL ACL (which a module may
/// return: matching it fails the task); match with
/// [`Host::acl_match`](crate::Host::acl_match).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Acl(pub Option<u64>);

/// A SUB handle (a VCL subroutine).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Sub(pub u64);

/// A STEVEDORE (a storage, `storage.s0`) by its name without the
/// `storage.` prefix, or `None` for VCL's NULL storage (which leaves the
/// choice to the server when assigned to `beresp.storage`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stevedore(pub Option<String>);

/// A STRANDS result: parts of a string, each possibly NULL, which the
/// caller concatenates only where it needs one string (a header) —
/// what a module returns where VCL's STRANDS goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StrandsBuf(pub Vec<Option<Vec<u8>>>);

impl StrandsBuf {
    /// The parts of a STRANDS argument, copied.
    pub fn from_strands(s: Strands<'_>) -> StrandsBuf {
        StrandsBuf(s.0.iter().map(|p| p.map(<[u8]>::to_vec)).collect())
    }

    /// The parts joined; a NULL part reads as empty.
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.iter().flatten().flat_map(|p| p.iter().copied()).collect()
    }
}

/// A STRING argument that tells NULL (an unset header) from empty, where
/// `&str` and `&[u8]` read NULL as empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NullStr<'a>(pub Option<&'a [u8]>);

/// A BLOB argument: the bytes, or `None` for VCL's NULL blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRef<'a>(pub Option<&'a [u8]>);

/// A REGEX argument: the pattern's text, as the VCL wrote it (a string
/// literal, which the VCL compiler has already checked compiles). The
/// module compiles it for matching, once per call site if it keeps the
/// result in a [`PrivCall`](crate::PrivCall).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Regex<'a>(pub &'a [u8]);

/// A BLOB result.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Blob(pub Vec<u8>);

/// A HEADER argument: `req.http.foo` is `Header { which: Http::Req, name: b"foo" }`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The message.
    pub which: Http,
    /// The name, without the colon.
    pub name: &'a [u8],
}

/// A STRANDS argument: a string in parts, concatenated only on demand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strands<'a>(pub &'a [Option<&'a [u8]>]);

impl<'a> Strands<'a> {
    /// The parts; a NULL part reads as empty.
    pub fn parts(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0.iter().map(|p| p.unwrap_or(b""))
    }

    /// The parts joined.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.parts().map(<[u8]>::len).sum());
        for p in self.parts() {
            v.extend_from_slice(p);
        }
        v
    }
}

/// An argument as the host passes it, aligned with the spec's arguments.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg<'a> {
    /// An optional argument left out, or a private-state argument (the
    /// module fetches private state itself).
    Absent,
    /// INT.
    Int(i64),
    /// REAL.
    Real(f64),
    /// DURATION.
    Duration(f64),
    /// TIME.
    Time(f64),
    /// BYTES.
    Bytes(f64),
    /// BOOL.
    Bool(bool),
    /// STRING; `None` is NULL.
    Str(Option<&'a [u8]>),
    /// ENUM: the chosen value's name.
    Enum(&'a str),
    /// STRANDS.
    Strands(Strands<'a>),
    /// IP; `None` is NULL.
    Ip(Option<SocketAddr>),
    /// HEADER.
    Header(Header<'a>),
    /// HTTP (`req`, `bereq` …).
    Http(Http),
    /// BACKEND.
    Backend(Backend),
    /// BLOB.
    Blob(BlobRef<'a>),
    /// PROBE.
    Probe(Probe),
    /// ACL.
    Acl(Acl),
    /// SUB.
    Sub(Sub),
}

/// A result, owned.
#[derive(Debug)]
pub enum Value {
    /// A procedure's result.
    Void,
    /// INT.
    Int(i64),
    /// REAL.
    Real(f64),
    /// DURATION.
    Duration(f64),
    /// TIME.
    Time(f64),
    /// BYTES.
    Bytes(f64),
    /// BOOL.
    Bool(bool),
    /// STRING; `None` is NULL.
    Str(Option<Vec<u8>>),
    /// IP; `None` is NULL.
    Ip(Option<SocketAddr>),
    /// BACKEND.
    Backend(Backend),
    /// BLOB; `None` is NULL.
    Blob(Option<Vec<u8>>),
    /// PROBE.
    Probe(Probe),
    /// ACL.
    Acl(Acl),
    /// SUB.
    Sub(Sub),
    /// STRANDS: the parts, each `None` when NULL.
    Strands(Vec<Option<Vec<u8>>>),
    /// STEVEDORE: the storage's name, `None` for NULL.
    Stevedore(Option<String>),
    /// What a constructor made: keep it, call its methods with it, drop
    /// it when the VCL is discarded (that runs the object's `Drop`).
    Object(Instance),
}

impl PartialEq for Value {
    fn eq(&self, o: &Value) -> bool {
        use Value::*;
        match (self, o) {
            (Void, Void) => true,
            (Int(a), Int(b)) => a == b,
            (Real(a), Real(b)) | (Duration(a), Duration(b)) | (Time(a), Time(b)) | (Bytes(a), Bytes(b)) => a == b,
            (Bool(a), Bool(b)) => a == b,
            (Str(a), Str(b)) | (Blob(a), Blob(b)) => a == b,
            (Ip(a), Ip(b)) => a == b,
            (Backend(a), Backend(b)) => a == b,
            (Probe(a), Probe(b)) => a == b,
            (Acl(a), Acl(b)) => a == b,
            (Sub(a), Sub(b)) => a == b,
            (Strands(a), Strands(b)) => a == b,
            (Stevedore(a), Stevedore(b)) => a == b,
            _ => false,
        }
    }
}

impl Value {
    /// A STRING result from text.
    pub fn str(s: impl Into<Vec<u8>>) -> Value {
        Value::Str(Some(s.into()))
    }
}

/// An object made by a constructor. It is `Send + Sync`: every task may
/// call its methods at once, so methods take `&self`.
pub struct Instance(Box<dyn Any + Send + Sync>);

impl Instance {
    /// Wraps a new object.
    pub fn new<T: Any + Send + Sync>(obj: T) -> Instance {
        Instance(Box::new(obj))
    }

    /// The object, if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        self.0.downcast_ref()
    }
}

impl fmt::Debug for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Instance(..)")
    }
}

/// A VCL failure (`VRT_fail`): the transaction ends as `return (fail)`
/// and the message is logged as `VCL_Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Failure {}
