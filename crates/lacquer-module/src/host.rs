//! What a module may ask of the request it runs for: the [`Host`] trait,
//! which the server implements, and [`Ctx`], what module functions get.

use std::any::Any;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, OnceLock};

use crate::types::{Acl, Backend, Failure, Http, IpKind, PrivScope};

/// Task-scoped private state as the host keeps it: empty until a module
/// fills it; dropping the box is the release, which the host does exactly
/// once, when the scope ends.
pub type PrivSlot = Option<Box<dyn Any + Send>>;

/// Shared private state (PRIV_CALL, PRIV_VCL) as the host keeps it: made
/// once by the first caller, then read by every task at once.
pub type SharedSlot = OnceLock<Box<dyn Any + Send + Sync>>;

/// The request-side services a module can use. The server implements this
/// for the task running VCL; a test implements it with a few maps.
///
/// The host knows which call is running (module, call site, object), so
/// private state needs no key: `take_priv(PrivScope::Task)` is the running
/// module's task state. Methods with a default answer "not available".
pub trait Host {
    /// The VCL subroutine being run (`vcl_recv` …), or `""` outside one.
    fn method(&self) -> &str;
    /// Logs a `VCL_Log` record.
    fn log(&mut self, msg: &[u8]);
    /// Logs a record outside any transaction (vxid 0), as Varnish's
    /// `VSL(tag, 0, …)` does: `tag` is a tag's name (`Debug` …); a name
    /// the host does not know is dropped.
    fn log_global(&mut self, _tag: &str, _msg: &[u8]) {}
    /// Logs a record of the task under a tag's name (`Debug`, `Error`,
    /// `Notice` …), as Varnish's `VSLb(ctx->vsl, tag, …)`; outside a task
    /// (`vcl_init`) it goes to vxid 0. A name the host does not know is
    /// dropped.
    fn log_tag(&mut self, tag: &str, msg: &[u8]) {
        self.log_global(tag, msg)
    }
    /// A number that names the running task (a request or a fetch: its
    /// vxid) while it runs; `None` outside one (`vcl_init`). A module keeps
    /// state another object must see for the task under it, released by a
    /// guard in its PRIV_TASK.
    fn task_id(&self) -> Option<u64> {
        None
    }
    /// The request's hash (`req.hash`, and the fetch's): the SHA-256 of
    /// what `vcl_hash` added, once it has run.
    fn digest(&self) -> Option<[u8; 32]> {
        None
    }
    /// The URL of `req` or `bereq`.
    fn url(&self, _which: Http) -> Option<&[u8]> {
        None
    }
    /// The VCL name of a backend or director (what `std.log(b)` shows).
    fn backend_name(&self, _be: Backend) -> Option<String> {
        None
    }
    /// The backend or director VCL names `name` (a backend, or a
    /// director object such as `rr` of `new rr = …`).
    fn lookup_backend(&self, _name: &str) -> Option<Backend> {
        None
    }
    /// The name of the VCL the call runs in (`vcl1` …); `""` if unknown.
    fn vcl_name(&self) -> &str {
        ""
    }
    /// A parameter's value as `param.show` writes it (`nuke_limit` …).
    fn param(&self, _name: &str) -> Option<String> {
        None
    }
    /// Registers `f` as a provider of the named hook, asked in `order`
    /// (lower first; equal orders in registration order) by every module
    /// that calls the hook, until the VCL whose load registered it is
    /// discarded. A server allows it while a VCL loads: in a module's
    /// `load` event or in `vcl_init` (an object's constructor). See
    /// [`Hooks`](crate::Hooks).
    fn hook_provide(&mut self, _name: &str, _order: i32, _f: crate::HookFn) -> Result<(), Failure> {
        Err(Failure("hooks cannot be provided here".into()))
    }
    /// Calls the named hook with `arg`: the first provider's answer, or
    /// `None` when nobody answered (no provider, or all declined).
    fn hook_call(&self, _name: &str, _arg: &[u8]) -> Option<Vec<u8>> {
        None
    }
    /// Publishes counters `GROUP[.IDENT].name` for each of `defs` in
    /// shared memory (Varnish's `VRT_VSC_Alloc`); a second live set of the
    /// same names is refused.
    fn counters(
        &mut self,
        _group: &str,
        _ident: &str,
        _defs: &'static [crate::CounterDef],
    ) -> Result<Box<dyn crate::Counters>, Failure> {
        Err(Failure("counters cannot be made here".into()))
    }
    /// Makes `d` a director of the VCL: the BACKEND VCL holds for it,
    /// which the server resolves through `d` at each fetch. Only an
    /// object's constructor (in `vcl_init`) may make one, and one each:
    /// the director is the object's, named after it.
    fn add_director(&mut self, _d: std::sync::Arc<dyn crate::Director>) -> Result<Backend, Failure> {
        Err(Failure("directors cannot be made here".into()))
    }
    /// Makes `b` a backend of the VCL, answering fetches itself; as for
    /// [`add_director`](Host::add_director), one per object, from its
    /// constructor, named after it.
    fn add_backend(&mut self, _b: std::sync::Arc<dyn crate::NativeBackend>) -> Result<Backend, Failure> {
        Err(Failure("backends cannot be made here".into()))
    }
    /// Makes an HTTP backend at run time (Varnish's `VRT_new_backend`),
    /// named after the running object, for as long as the VCL lives or
    /// until [`delete_backend`](Host::delete_backend): the BACKEND to give
    /// VCL. Any task of the VCL may make one.
    fn new_backend(&mut self, _spec: &BackendSpec) -> Result<Backend, Failure> {
        Err(Failure("backends cannot be made here".into()))
    }
    /// Retires a backend [`new_backend`](Host::new_backend) made: tasks
    /// that hold it finish with it; it leaves `backend.list` and the count.
    fn delete_backend(&mut self, _be: Backend) {}
    /// The `nth` (from 0) header `name` of message `which`,
    /// case-insensitively; `None` when there are fewer or no such message.
    fn header(&self, which: Http, name: &[u8], nth: usize) -> Option<&[u8]>;
    /// Replaces every header `name` with `name: value`.
    fn set_header(&mut self, which: Http, name: &[u8], value: &[u8]) -> Result<(), Failure>;
    /// Removes every header `name`.
    fn unset_header(&mut self, which: Http, name: &[u8]) -> Result<(), Failure>;
    /// Merges every header `name` into one, values joined by `sep`
    /// (`std.collect`). The default puts the merged header last; a server
    /// keeps it where the first one was, as Varnish does.
    fn collect_header(&mut self, which: Http, name: &[u8], sep: &[u8]) -> Result<(), Failure> {
        let mut all: Vec<u8> = Vec::new();
        let mut n = 0;
        while let Some(v) = self.header(which, name, n) {
            if n > 0 {
                all.extend_from_slice(sep);
            }
            all.extend_from_slice(v);
            n += 1;
        }
        if n > 1 {
            self.set_header(which, name, &all)?;
        }
        Ok(())
    }
    /// An address of the task; `None` where there is none (`vcl_init`).
    fn ip(&self, kind: IpKind) -> Option<SocketAddr>;
    /// Takes the running call's private state of an exclusive scope (TASK,
    /// TOP, SESS) for the duration of the call; `None` where the scope does
    /// not exist. [`put_priv`](Host::put_priv) gives it back.
    fn take_priv(&mut self, scope: PrivScope) -> Option<PrivSlot>;
    /// Gives back what [`take_priv`](Host::take_priv) took.
    fn put_priv(&mut self, scope: PrivScope, slot: PrivSlot);
    /// The running call's shared private state (CALL, VCL); `None` where
    /// the scope does not exist.
    fn shared_priv(&self, scope: PrivScope) -> Option<Arc<SharedSlot>>;
    /// When a backend's health last changed (seconds since the epoch):
    /// when it was made, set by the admin or turned by its probe. `None`
    /// when unknown (a director, no such backend).
    fn backend_changed(&self, _be: Backend) -> Option<f64> {
        None
    }
    /// A number in `[0, 1)` from the server's testable generator
    /// (varnishd's `VRND_RandomTestableDouble`), which `debug.srandom`
    /// seeds so that tests repeat; `None` where the host has none.
    fn testable_random(&self) -> Option<f64> {
        None
    }
    /// Whether a backend is healthy; `None` when there is no such backend.
    fn backend_healthy(&self, _be: Backend) -> Option<bool> {
        None
    }
    /// Whether `ip` matches an ACL; `None` when there is no such ACL.
    fn acl_match(&self, _acl: Acl, _ip: SocketAddr) -> Option<bool> {
        None
    }
    /// Restores `req` or `bereq` to what it was when received.
    fn rollback(&mut self, _which: Http) -> Result<(), Failure> {
        Err(Failure("rollback is not available here".into()))
    }
    /// Reads and keeps the request body up to `max` bytes: `Ok(false)` when
    /// it is larger or could not be read.
    fn cache_req_body(&mut self, _max: u64) -> Result<bool, Failure> {
        Err(Failure("caching the request body is not available here".into()))
    }
    /// Sends `100 Continue` only when the body is read (`true`), or at once.
    fn late_100_continue(&mut self, _late: bool) -> Result<(), Failure> {
        Err(Failure("late_100_continue is not available here".into()))
    }
    /// Sets the IP TOS of the client connection.
    fn set_ip_tos(&mut self, _tos: i64) -> Result<(), Failure> {
        Err(Failure("set_ip_tos is not available here".into()))
    }
    /// Logs a `Timestamp` record: `label: now since-start since-last`.
    fn timestamp(&mut self, _label: &[u8]) {}
    /// Adds a ban; the error is the reason it was refused. `None` is VCL's
    /// NULL string, which the host refuses in its own words.
    fn ban(&mut self, _expr: Option<&[u8]>) -> Result<(), String> {
        Err("bans are not available here".into())
    }
    /// The VCL name of the object whose constructor or method is running
    /// (`x` of `new x = mod.obj()`, Varnish's `vcl_name`); `None` in a
    /// function.
    fn object_name(&self) -> Option<&str> {
        None
    }
    /// Runs `f`, which blocks its thread (a sleep, a wait on a socket),
    /// and lets the server get on with its other work meanwhile. Varnish
    /// gives every task a thread of its own; a server whose tasks share
    /// threads moves the others elsewhere here. The default just runs `f`.
    fn blocking(&mut self, f: &mut dyn FnMut()) {
        f()
    }
    /// The VCL version of the running VCL, times ten (40 for `vcl 4.0;`),
    /// if the host knows it.
    fn vcl_syntax(&self) -> Option<u32> {
        None
    }
    /// The TLVs of the PROXY version 2 header the client connection
    /// opened with, as sent (`None` without one): `vmod_proxy` reads them.
    fn proxy_tlvs(&self) -> Option<Vec<u8>> {
        None
    }
    /// The user and group ids of the process at the other end of the
    /// client connection, when it came through a Unix domain socket.
    fn peer_cred(&self) -> Result<(u32, u32), PeerCredError> {
        Err(PeerCredError::NotUnix)
    }
    /// Purges the objects under the request's hash key from `vcl_hit` or
    /// `vcl_miss`, cutting each one's lifetimes to `ttl`, `grace` and
    /// `keep` (`None`: leave it as it is; all zero: remove the objects).
    /// How many objects it touched.
    fn purge(&mut self, _ttl: Option<f64>, _grace: Option<f64>, _keep: Option<f64>) -> Result<i64, Failure> {
        Err(Failure("purge is not available here".into()))
    }
    /// The client connection of the request, for a module to hand over
    /// to another process (the `handoff` module): a duplicate of the
    /// socket's descriptor, what Lacquer read off it already and what it
    /// knows about it. Nothing changes for the request yet: the module
    /// then ends it with [`end_request`](Host::end_request), saying
    /// whether the connection went ([`RequestEnd::HandedOff`]) or not.
    /// A server allows it in `vcl_recv`, from a call made as a statement.
    fn connection(&mut self) -> Result<Connection, Failure> {
        Err(Failure("the client connection cannot be taken here".into()))
    }
    /// Ends the request at once, as a `return` would: nothing after the
    /// running call in VCL runs for it. See [`RequestEnd`].
    fn end_request(&mut self, _end: RequestEnd) -> Result<(), Failure> {
        Err(Failure("a module cannot end the request here".into()))
    }
    /// A workspace of the task, for modules that account for memory as
    /// Varnish's do (`vtc.workspace_*`, a module's scratch strings);
    /// `None` where the task has no such workspace (no fetch in a client
    /// request, nothing in `vcl_init`).
    fn workspace(&self, _which: crate::WsId) -> Option<&dyn crate::Workspace> {
        None
    }
    /// The task's own workspace: the client's in a request, the backend's
    /// in a fetch.
    fn task_workspace(&self) -> Option<&dyn crate::Workspace> {
        None
    }
    /// Writes a log record for any transaction (`vtc.vsl`): `tag` is a
    /// tag's name, `client` the side. `Err` when the tag is unknown or the
    /// host cannot write such records.
    fn log_record(&mut self, _vxid: u64, _tag: &str, _client: bool, _msg: &[u8]) -> Result<(), Failure> {
        Err(Failure("log records cannot be written here".into()))
    }
    /// Holds the running VCL (Varnish's `VRT_VCL_Prevent_Discard`) until
    /// the [`VclRef`] is dropped: meanwhile it cannot finish cooling (it
    /// is listed `cooling`), be warmed again or be discarded; the server
    /// names `desc` to whoever waits for it. A module takes one to finish
    /// work of its own on the VCL's objects after the VCL went cold.
    fn vcl_ref(&mut self, _desc: &str) -> Result<VclRef, Failure> {
        Err(Failure("VCL references cannot be taken here".into()))
    }
    /// Ends the server as a Varnish panic ends the child process: the
    /// message (`PANIC: …` for `vtc.panic`) goes to standard error, then
    /// the process aborts. A host that keeps panics for `panic.show`
    /// records the message first.
    fn panic(&mut self, msg: &str) -> ! {
        eprintln!("Panic from VCL:\n  {msg}");
        std::process::abort()
    }
}

/// A module's hold on a VCL ([`Host::vcl_ref`]), let go when dropped.
pub struct VclRef {
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl VclRef {
    /// A hold that runs `release` when dropped (for hosts).
    pub fn new(release: impl FnOnce() + Send + 'static) -> VclRef {
        VclRef { release: Some(Box::new(release)) }
    }
}

impl Drop for VclRef {
    fn drop(&mut self) {
        if let Some(f) = self.release.take() {
            f()
        }
    }
}

impl std::fmt::Debug for VclRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VclRef(..)")
    }
}

/// Where a backend made at run time connects ([`Host::new_backend`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackendSpec {
    /// A host name or address and a port, for TCP.
    pub host: Option<String>,
    pub port: Option<String>,
    /// A Unix socket's path, instead.
    pub path: Option<String>,
    /// The probe that judges its health.
    pub probe: crate::Probe,
}

/// A client connection lent to a module by [`Host::connection`].
///
/// `fd` is a *duplicate* of the client socket's descriptor (made
/// close-on-exec), the module's own: dropping it closes only that copy.
/// The server keeps its copy until the request ends; after
/// [`RequestEnd::HandedOff`] it closes it without writing anything or
/// shutting the socket down, so whoever holds the other copy owns the
/// connection. The socket is non-blocking (that flag belongs to the
/// socket, shared by every copy).
#[derive(Debug)]
pub struct Connection {
    /// The module's copy of the client socket.
    pub fd: std::os::fd::OwnedFd,
    /// Every byte read off the connection and not used: the request head
    /// exactly as received (before any VCL change), then whatever came
    /// after it (a body's first part, pipelined requests).
    pub received: Vec<u8>,
    /// How many bytes of `received` are the head.
    pub head_len: usize,
    /// Addresses and names.
    pub info: ConnInfo,
}

/// What the server knows about a client connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// `client.ip` and its port: the PROXY header's source, else `remote`.
    pub client: SocketAddr,
    /// `server.ip`: the PROXY header's destination, else `local`.
    pub server: SocketAddr,
    /// The socket's peer (`remote.ip`; `0.0.0.0:0` on a Unix listener).
    pub remote: SocketAddr,
    /// The socket's own address (`local.ip`).
    pub local: SocketAddr,
    /// The request's transaction id (`X-Varnish`, `req.xid`).
    pub xid: u64,
    /// The session's transaction id.
    pub sess_xid: u64,
    /// The listener's name (`local.socket`, `a0` …).
    pub listener: String,
    /// Whether the connection began with a PROXY protocol header.
    pub proxy: bool,
}

/// How a module ends the request it runs for ([`Host::end_request`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestEnd {
    /// The connection now belongs to another process: the server writes
    /// nothing more on it, forgets it and closes its copy. `to` says
    /// where it went, for the log.
    HandedOff { to: String },
    /// Answer with a synthetic response through `vcl_synth`, as
    /// `return (synth(status, reason))`; with `close` the connection
    /// closes after it.
    Synth { status: u16, reason: String, close: bool },
}

/// What a module function gets as `ctx: &mut Ctx`: the host, through
/// `Deref`, so `ctx.log(b"…")` and `ctx.header(…)` read as they should.
pub struct Ctx<'a> {
    host: &'a mut dyn Host,
}

impl<'a> Ctx<'a> {
    /// Wraps the host for one call.
    pub fn new(host: &'a mut dyn Host) -> Ctx<'a> {
        Ctx { host }
    }

    #[doc(hidden)]
    pub fn __take_priv(&mut self, scope: PrivScope) -> Result<PrivSlot, Failure> {
        self.host
            .take_priv(scope)
            .ok_or_else(|| Failure(format!("{} is not available in {}", scope.as_str(), self.host.method())))
    }

    #[doc(hidden)]
    pub fn __shared_priv(&self, scope: PrivScope) -> Result<Arc<SharedSlot>, Failure> {
        self.host
            .shared_priv(scope)
            .ok_or_else(|| Failure(format!("{} is not available in {}", scope.as_str(), self.host.method())))
    }
}

impl<'a> Deref for Ctx<'a> {
    type Target = dyn Host + 'a;
    fn deref(&self) -> &(dyn Host + 'a) {
        self.host
    }
}

impl<'a> DerefMut for Ctx<'a> {
    fn deref_mut(&mut self) -> &mut (dyn Host + 'a) {
        self.host
    }
}

/// Private state of an exclusive scope, typed. What [`PrivTask`],
/// [`PrivTop`] and [`PrivSess`] share.
pub struct Exclusive<'a, T, const S: u32> {
    slot: &'a mut PrivSlot,
    _t: PhantomData<T>,
}

/// PRIV_TASK: one `T` per client request or backend fetch, released
/// (dropped) when it ends.
pub type PrivTask<'a, T> = Exclusive<'a, T, { PrivScope::Task as u32 }>;
/// PRIV_TOP: one `T` per top-level request, shared with its ESI children.
pub type PrivTop<'a, T> = Exclusive<'a, T, { PrivScope::Top as u32 }>;
/// PRIV_SESS: one `T` per client connection, released when it closes.
pub type PrivSess<'a, T> = Exclusive<'a, T, { PrivScope::Sess as u32 }>;

impl<'a, T: Any + Send, const S: u32> Exclusive<'a, T, S> {
    #[doc(hidden)]
    pub fn __new(slot: &'a mut PrivSlot) -> Self {
        Exclusive { slot, _t: PhantomData }
    }

    /// The state, if set (and a `T`).
    pub fn get(&self) -> Option<&T> {
        self.slot.as_ref()?.downcast_ref()
    }

    /// The state, if set (and a `T`), to change.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.slot.as_mut()?.downcast_mut()
    }

    /// The state, made with `f` first if unset (or of another type, which
    /// is released).
    pub fn get_or_insert_with(&mut self, f: impl FnOnce() -> T) -> &mut T {
        if self.get().is_none() {
            *self.slot = Some(Box::new(f()));
        }
        self.slot.as_mut().and_then(|b| b.downcast_mut()).expect("just set")
    }

    /// Replaces the state; the old one is released now.
    pub fn set(&mut self, v: T) {
        *self.slot = Some(Box::new(v));
    }

    /// Takes the state out, leaving it unset.
    pub fn take(&mut self) -> Option<T> {
        match self.slot.take()?.downcast::<T>() {
            Ok(b) => Some(*b),
            Err(_) => None,
        }
    }
}

/// Private state of a shared scope, typed: made once, then read by every
/// task at once (so `T` is `Sync`; use a lock inside to change it).
pub struct Shared<T, const S: u32> {
    slot: Arc<SharedSlot>,
    _t: PhantomData<fn() -> T>,
}

/// PRIV_CALL: one `T` per call site, for the life of the VCL.
pub type PrivCall<T> = Shared<T, { PrivScope::Call as u32 }>;
/// PRIV_VCL: one `T` per loaded VCL, released when it is discarded.
pub type PrivVcl<T> = Shared<T, { PrivScope::Vcl as u32 }>;

impl<T: Any + Send + Sync, const S: u32> Shared<T, S> {
    #[doc(hidden)]
    pub fn __new(slot: Arc<SharedSlot>) -> Self {
        Shared { slot, _t: PhantomData }
    }

    /// The state, if made (and a `T`).
    pub fn get(&self) -> Option<&T> {
        self.slot.get()?.downcast_ref()
    }

    /// The state, made with `f` by the first caller. Fails when another
    /// function of the module made it with another type.
    pub fn get_or_init(&self, f: impl FnOnce() -> T) -> Result<&T, Failure> {
        self.slot
            .get_or_init(|| Box::new(f()))
            .downcast_ref()
            .ok_or_else(|| Failure(format!("private state holds another type than {}", std::any::type_name::<T>())))
    }
}

/// Why [`Host::peer_cred`] has no credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerCredError {
    /// The connection did not come through a Unix domain socket.
    NotUnix,
    /// The system did not say who the peer is.
    Unavailable,
}
