//! What a module receives: the host's callback table and the entry points
//! it exports.

use std::ffi::c_void;

use crate::{HeaderRef, Ip, Str, Value};

/// The context of one call: the host's opaque pointer, passed back to every
/// callback, and the table of callbacks.
#[repr(C)]
#[derive(Debug)]
pub struct CallCtx {
    /// The host's state for this call; modules never look inside.
    pub host: *mut c_void,
    /// The callbacks, valid for the duration of the call.
    pub table: *const HostTable,
}

/// Private state as the ABI stores it (Varnish's `struct vmod_priv`): a
/// pointer the module owns and the function that releases it. The host
/// runs `free` exactly once, when the scope ends.
#[repr(C)]
#[derive(Debug)]
pub struct Priv {
    /// The module's state; null until the module sets it.
    pub ptr: *mut c_void,
    /// Releases `ptr`; `None` when there is nothing to release.
    pub free: Option<unsafe extern "C" fn(*mut c_void)>,
}

/// The scopes of private state, as the `scope` argument of the callbacks.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PrivScope {
    /// One per call site, shared by every task running it (PRIV_CALL).
    Call = 1,
    /// One per client request or backend fetch (PRIV_TASK).
    Task = 2,
    /// One per top-level request, shared with its ESI children (PRIV_TOP).
    Top = 3,
    /// One per loaded VCL, shared by every task (PRIV_VCL).
    Vcl = 4,
    /// One per client connection (PRIV_SESS).
    Sess = 5,
}

impl PrivScope {
    /// Decodes a scope code.
    pub fn from_u32(v: u32) -> Option<PrivScope> {
        match v {
            1 => Some(PrivScope::Call),
            2 => Some(PrivScope::Task),
            3 => Some(PrivScope::Top),
            4 => Some(PrivScope::Vcl),
            5 => Some(PrivScope::Sess),
            _ => None,
        }
    }

    /// Whether tasks share the state at once (so it is reached through
    /// [`HostTable::priv_shared`], not [`HostTable::priv_exclusive`]).
    pub fn is_shared(self) -> bool {
        matches!(self, PrivScope::Call | PrivScope::Vcl)
    }

    /// The spec's spelling (`PRIV_TASK` …).
    pub fn as_str(self) -> &'static str {
        match self {
            PrivScope::Call => "PRIV_CALL",
            PrivScope::Task => "PRIV_TASK",
            PrivScope::Top => "PRIV_TOP",
            PrivScope::Vcl => "PRIV_VCL",
            PrivScope::Sess => "PRIV_SESS",
        }
    }
}

/// The addresses of a task (the `which` of [`HostTable::ip`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpKind {
    /// `client.ip`: the client, or what PROXY protocol said it is.
    Client = 1,
    /// `server.ip`: the address the connection was accepted on.
    Server = 2,
    /// `local.ip`: the local end of the TCP connection.
    Local = 3,
    /// `remote.ip`: the remote end of the TCP connection.
    Remote = 4,
}

impl IpKind {
    /// Decodes an address kind.
    pub fn from_u32(v: u32) -> Option<IpKind> {
        match v {
            1 => Some(IpKind::Client),
            2 => Some(IpKind::Server),
            3 => Some(IpKind::Local),
            4 => Some(IpKind::Remote),
            _ => None,
        }
    }
}

/// The host's callbacks. Every function gets [`CallCtx::host`] first.
/// A callback the host cannot serve where the call runs (a request header
/// in `vcl_init`) answers as documented for "unavailable"; none of them
/// panics or unwinds into the module.
#[repr(C)]
#[derive(Debug)]
pub struct HostTable {
    /// `size_of::<HostTable>()` in the host: a module built against a
    /// newer minor checks it before using a callback added later.
    pub size: usize,
    /// The VCL subroutine being run (`vcl_recv` …), or empty outside one.
    pub method: unsafe extern "C" fn(host: *mut c_void) -> Str,
    /// Logs `msg` to the transaction log as a `VCL_Log` record.
    pub log: unsafe extern "C" fn(host: *mut c_void, msg: Str),
    /// Fails the task like `VRT_fail`: the message is logged as
    /// `VCL_Error` and the transaction ends as `return (fail)`. The entry
    /// point then returns non-zero.
    pub fail: unsafe extern "C" fn(host: *mut c_void, msg: Str),
    /// Allocates `len` bytes from the task's workspace, valid until the
    /// task ends; null when the workspace is exhausted. Results that point
    /// to memory (strings, blobs) must point here or to static data.
    pub ws_alloc: unsafe extern "C" fn(host: *mut c_void, len: usize) -> *mut u8,
    /// The `nth` (from 0) header called `name` in message `which`
    /// (an [`Http`](crate::Http) as u32), case-insensitively; NULL when
    /// there are fewer or the message does not exist here.
    pub header_get: unsafe extern "C" fn(host: *mut c_void, which: u32, name: Str, nth: u32) -> Str,
    /// Replaces every header called `name` with one `name: value`.
    /// 0 on success, -1 when the message cannot be written here.
    pub header_set: unsafe extern "C" fn(host: *mut c_void, which: u32, name: Str, value: Str) -> i32,
    /// Removes every header called `name`. 0, or -1 as for `header_set`.
    pub header_unset: unsafe extern "C" fn(host: *mut c_void, which: u32, name: Str) -> i32,
    /// Merges every header `hdr` into the first, joined by `sep`
    /// (`std.collect`). 0, or -1 as for `header_set`.
    pub header_collect: unsafe extern "C" fn(host: *mut c_void, hdr: HeaderRef, sep: Str) -> i32,
    /// Writes address `which` (an [`IpKind`] as u32) to `out`; 0, or -1
    /// when the task has no such address (`out` is then untouched).
    pub ip: unsafe extern "C" fn(host: *mut c_void, which: u32, out: *mut Ip) -> i32,
    /// The task-scoped private state `scope` (TASK, TOP or SESS) of the
    /// running call, for this call only; null where the scope does not
    /// exist (no session in `vcl_init`). The host runs its `free` once at
    /// the end of the scope.
    pub priv_exclusive: unsafe extern "C" fn(host: *mut c_void, scope: u32) -> *mut Priv,
    /// The shared private state `scope` (CALL or VCL) of the running call:
    /// the first caller's `init` makes it (the host makes sure only one
    /// does), every caller gets its `ptr`; null where the scope does not
    /// exist. The host runs its `free` once, when the VCL is discarded.
    pub priv_shared:
        unsafe extern "C" fn(host: *mut c_void, scope: u32, init: unsafe extern "C" fn() -> Priv) -> *mut c_void,
    /// 1 when `backend` (a BACKEND handle) is healthy, 0 when sick, -1
    /// when there is no such backend.
    pub backend_healthy: unsafe extern "C" fn(host: *mut c_void, backend: u64) -> i32,
    /// 1 when `ip` matches ACL `acl` (an ACL handle), 0 when not, -1 when
    /// there is no such ACL.
    pub acl_match: unsafe extern "C" fn(host: *mut c_void, acl: u64, ip: *const Ip) -> i32,
    /// Restores message `which` (req or bereq) to what it was when
    /// received (`std.rollback`). 0, or -1 after calling `fail`.
    pub rollback: unsafe extern "C" fn(host: *mut c_void, which: u32) -> i32,
    /// Reads and keeps the request body up to `max` bytes so it can be
    /// sent again (`std.cache_req_body`): 1 when kept, 0 when it was
    /// larger or could not be read, -1 after calling `fail`.
    pub cache_req_body: unsafe extern "C" fn(host: *mut c_void, max: f64) -> i32,
    /// Whether `100 Continue` is sent only when the body is read (1) or at
    /// once (0) (`std.late_100_continue`). 0, or -1 where meaningless.
    pub late_100_continue: unsafe extern "C" fn(host: *mut c_void, late: u32) -> i32,
    /// Sets the IP TOS/traffic class of the client connection. 0, or -1
    /// after calling `fail`.
    pub set_ip_tos: unsafe extern "C" fn(host: *mut c_void, tos: i64) -> i32,
    /// Logs a `Timestamp` record called `label` (now, since the start of
    /// the task, since the last timestamp).
    pub timestamp: unsafe extern "C" fn(host: *mut c_void, label: Str),
    /// Adds a ban; `expr` NULL is VCL's NULL string, which the host refuses.
    /// NULL on success, else the reason (in the workspace).
    pub ban: unsafe extern "C" fn(host: *mut c_void, expr: Str) -> Str,
    // Since 1.2: a module checks `size` before calling anything below
    // ([`HostTable::has`]).
    /// Logs `msg` outside any transaction (vxid 0) with the tag named
    /// `tag` (`Debug` …); a tag the host does not know drops the record.
    pub log_global: unsafe extern "C" fn(host: *mut c_void, tag: Str, msg: Str),
    /// The name of the VCL the call runs in (`boot` …); empty if unknown.
    pub vcl_name: unsafe extern "C" fn(host: *mut c_void) -> Str,
    /// A parameter's value as `param.show` writes it; NULL when there is
    /// no such parameter.
    pub param: unsafe extern "C" fn(host: *mut c_void, name: Str) -> Str,
    /// The VCL name of the object whose constructor or method is running
    /// (`x` of `new x = mod.obj()`); NULL in a function.
    pub object_name: unsafe extern "C" fn(host: *mut c_void) -> Str,
    /// Registers `hook` as a provider of the named hook with `order`
    /// (lower is asked first; equal orders in registration order). The
    /// host owns `hook` from now on, whatever it answers: it runs
    /// `hook.free` exactly once, when the provider is unregistered (its
    /// VCL is discarded) or at once when it refuses. NULL on success, else
    /// the reason (in the workspace).
    pub hook_provide: unsafe extern "C" fn(host: *mut c_void, name: Str, order: i32, hook: Hook) -> Str,
    /// Calls the named hook with `arg`: the providers are asked in order
    /// until one answers. The answer (in the workspace; possibly empty),
    /// or NULL when nobody answered.
    pub hook_call: unsafe extern "C" fn(host: *mut c_void, name: Str, arg: Str) -> Str,
    // Since 1.3.
    /// One [`WsOp`] (as u32) on workspace `which` (a [`WsWhich`] as u32)
    /// with `arg`: the answer the op documents, or -1 when the task has
    /// no such workspace.
    pub ws_op: unsafe extern "C" fn(host: *mut c_void, which: u32, op: u32, arg: i64) -> i64,
    /// Writes a log record for transaction `vxid` with the tag named
    /// `tag`, on the client side when `client` is 1: 0, or -1 when the
    /// tag is unknown or such records cannot be written here.
    pub log_record: unsafe extern "C" fn(host: *mut c_void, vxid: u64, tag: Str, client: u32, msg: Str) -> i32,
    /// Lends the module the request's client connection (the `handoff`
    /// module's `Host::connection`): fills `out`, whose `fd` the module
    /// then owns (a duplicate; it must close it). NULL on success, else
    /// the reason (in the workspace), `out` untouched.
    pub connection: unsafe extern "C" fn(host: *mut c_void, out: *mut ConnOut) -> Str,
    /// Ends the request at once (`Host::end_request`): `kind` 1 handed
    /// off (`to` says where), 2 a synthetic `status`/`reason` answer, the
    /// connection closing after it when `close` is 1. NULL on success,
    /// else the reason (in the workspace).
    pub end_request:
        unsafe extern "C" fn(host: *mut c_void, kind: u32, status: u32, reason: Str, close: u32, to: Str) -> Str,
    /// Runs `f(data)`, which may block (connect, wait, read a file), where
    /// blocking does not hold up other tasks (`Host::blocking`).
    pub blocking:
        unsafe extern "C" fn(host: *mut c_void, f: unsafe extern "C" fn(data: *mut c_void), data: *mut c_void),
    /// The VCL version of the running VCL's main source, times ten (40,
    /// 41); 0 when unknown (`std.syntax`).
    pub vcl_syntax: unsafe extern "C" fn(host: *mut c_void) -> u32,
    /// Holds the running VCL (`Host::vcl_ref`), naming the hold `desc`:
    /// writes the hold's number to `out` and answers NULL, or answers the
    /// reason it cannot (in the workspace).
    pub vcl_ref: unsafe extern "C" fn(host: *mut c_void, desc: Str, out: *mut u64) -> Str,
    /// Lets go of a hold [`HostTable::vcl_ref`] made, from any thread, at
    /// any time after (no task needed); a number not held is ignored.
    pub vcl_unref: unsafe extern "C" fn(hold: u64),
    // Since 1.4.
    /// The TLVs of the PROXY version 2 header the client connection
    /// opened with, as they were on the wire (in the workspace); NULL
    /// when it had none (`vmod_proxy`).
    pub proxy_tlvs: unsafe extern "C" fn(host: *mut c_void) -> Str,
    /// The credentials of the process at the other end of the client
    /// connection (`SO_PEERCRED`, `vmod_unix`) into `uid` and `gid`: 0,
    /// -1 when the connection did not come through a Unix domain socket,
    /// -2 when the system does not say.
    pub peer_cred: unsafe extern "C" fn(host: *mut c_void, uid: *mut u32, gid: *mut u32) -> i32,
    /// Purges the objects under the request's hash key (`vmod_purge`),
    /// cutting their `ttl`, `grace` and `keep` (NaN: leave it; all zero:
    /// remove them): how many, or -1 outside `vcl_hit` and `vcl_miss`.
    pub purge: unsafe extern "C" fn(host: *mut c_void, ttl: f64, grace: f64, keep: f64) -> i64,
}

/// The workspaces [`HostTable::ws_op`] reaches.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsWhich {
    Client = 0,
    Backend = 1,
    Session = 2,
    Thread = 3,
    /// The task's own: the client's in a request, the backend's in a fetch.
    Task = 4,
}

impl WsWhich {
    pub fn from_u32(v: u32) -> Option<WsWhich> {
        Some(match v {
            0 => WsWhich::Client,
            1 => WsWhich::Backend,
            2 => WsWhich::Session,
            3 => WsWhich::Thread,
            4 => WsWhich::Task,
            _ => return None,
        })
    }
}

/// The operations of [`HostTable::ws_op`] (Varnish's `WS_*`), with what
/// `arg` is and what they answer.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WsOp {
    /// Charges `arg` bytes: 1, or 0 when they did not fit (overflowed).
    Alloc = 0,
    /// The free bytes.
    Free = 1,
    /// 1 when overflowed, else 0.
    Overflowed = 2,
    /// Marks it overflowed; 0.
    MarkOverflow = 3,
    /// Reserves `arg` bytes, or all that is free when `arg` is negative:
    /// the bytes reserved.
    Reserve = 4,
    /// Ends the reservation keeping `arg` bytes; 0.
    Release = 5,
    /// A snapshot: the bytes in use, or -2 when overflowed.
    Snapshot = 6,
    /// Resets to the snapshot `arg`; 0.
    Reset = 7,
}

impl WsOp {
    pub fn from_u32(v: u32) -> Option<WsOp> {
        Some(match v {
            0 => WsOp::Alloc,
            1 => WsOp::Free,
            2 => WsOp::Overflowed,
            3 => WsOp::MarkOverflow,
            4 => WsOp::Reserve,
            5 => WsOp::Release,
            6 => WsOp::Snapshot,
            7 => WsOp::Reset,
            _ => return None,
        })
    }
}

/// A client connection as [`HostTable::connection`] lends it.
#[repr(C)]
#[derive(Debug)]
pub struct ConnOut {
    /// A duplicate of the client socket's descriptor, the module's to close.
    pub fd: i32,
    /// Every byte read off the connection and not used, the head first
    /// (in the workspace).
    pub received: Str,
    /// How many bytes of `received` are the request head.
    pub head_len: usize,
    /// `client.ip`, `server.ip`, `remote.ip`, `local.ip` with their ports.
    pub client: Ip,
    pub server: Ip,
    pub remote: Ip,
    pub local: Ip,
    /// The request's and the session's transaction ids.
    pub xid: u64,
    pub sess_xid: u64,
    /// The listener's name (in the workspace).
    pub listener: Str,
    /// 1 when the connection began with a PROXY protocol header.
    pub proxy: u32,
}

impl Default for ConnOut {
    fn default() -> ConnOut {
        ConnOut {
            fd: -1,
            received: Str::NULL,
            head_len: 0,
            client: Ip::default(),
            server: Ip::default(),
            remote: Ip::default(),
            local: Ip::default(),
            xid: 0,
            sess_xid: 0,
            listener: Str::NULL,
            proxy: 0,
        }
    }
}

impl HostTable {
    /// The size of the table of ABI 1.1, the first: a host built against
    /// 1.1 sets `size` to this, and a callback at or past it is missing.
    pub const SIZE_1_1: usize = std::mem::offset_of!(HostTable, log_global);
    /// The size of the table of ABI 1.2.
    pub const SIZE_1_2: usize = std::mem::offset_of!(HostTable, ws_op);
    /// The size of the table of ABI 1.3.
    pub const SIZE_1_3: usize = std::mem::offset_of!(HostTable, proxy_tlvs);

    /// Whether a table of `size` bytes holds the callback at byte `offset`
    /// (`std::mem::offset_of!(HostTable, field)`): what a module checks
    /// before calling a callback added after 1.1.
    pub fn has(size: usize, offset: usize) -> bool {
        size >= offset + std::mem::size_of::<usize>()
    }
}

/// What a host does with a hook's answer: `put(sink, answer)` copies it.
pub type HookPut = unsafe extern "C" fn(sink: *mut c_void, answer: Str);

/// A provider of a named hook, as a module hands it to
/// [`HostTable::hook_provide`] (Apache EAPI's `ap_hook_register`).
///
/// `call(data, arg, sink, put)` answers by calling `put(sink, answer)`
/// once and returning 1, or declines by returning 0 without calling it.
/// It runs outside any task (no [`CallCtx`]), on any thread, possibly on
/// several at once, and never unwinds. `free(data)` releases `data`.
#[repr(C)]
#[derive(Debug)]
pub struct Hook {
    /// Asks the provider.
    pub call: unsafe extern "C" fn(data: *const c_void, arg: Str, sink: *mut c_void, put: HookPut) -> i32,
    /// The provider's state, passed to `call` and `free`.
    pub data: *const c_void,
    /// Releases `data`; `None` when there is nothing to release.
    pub free: Option<unsafe extern "C" fn(data: *const c_void)>,
}

/// What an [`Entry`] is.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// Function `index` of the spec's `functions`.
    Function = 1,
    /// The constructor of object class `object`: `out` gets the new
    /// object in [`Data::object`](crate::Data::object).
    Constructor = 2,
    /// Method `index` of object class `object`, called with the object.
    Method = 3,
    /// Frees an object of class `object` (its `Drop`); no arguments.
    Destructor = 4,
}

impl EntryKind {
    /// Decodes an entry kind.
    pub fn from_u32(v: u32) -> Option<EntryKind> {
        match v {
            1 => Some(EntryKind::Function),
            2 => Some(EntryKind::Constructor),
            3 => Some(EntryKind::Method),
            4 => Some(EntryKind::Destructor),
            _ => None,
        }
    }
}

/// An entry point: `ctx` for the callbacks, `this` the object (null for
/// functions and constructors), `args`/`nargs` the arguments in the spec's
/// order, `out` the result. Returns 0, or non-zero after calling
/// [`HostTable::fail`]. A module never lets a panic unwind out of it.
pub type EntryFn = unsafe extern "C" fn(
    ctx: *const CallCtx,
    this: *mut c_void,
    args: *const Value,
    nargs: usize,
    out: *mut Value,
) -> i32;

/// One row of the descriptor's entry table.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// An [`EntryKind`] as u32.
    pub kind: u32,
    /// The object class (index in the spec's `objects`); 0 for functions.
    pub object: u32,
    /// The function or method index; 0 for constructors and destructors.
    pub index: u32,
    /// Reserved; zero.
    pub reserved: u32,
    /// The code.
    pub call: EntryFn,
}
