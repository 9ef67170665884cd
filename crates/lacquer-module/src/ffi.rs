//! The module side of the C ABI: the entry points `#[module]` exports call
//! [`enter`], which turns ABI values into [`Arg`]s, the host table into a
//! [`Host`], runs the Rust dispatcher and writes the result back. Also the
//! value conversions both sides share.

use std::ffi::c_void;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use lacquer_abi as abi;
use lacquer_abi::{CallCtx, EntryKind, HostTable, Priv, Str, TypeCode};

use crate::host::{Ctx, Host, PrivSlot, SharedSlot};
use crate::registry::{panic_failure, ModuleDef, Target};
use crate::types::*;

/// An IP in the ABI's layout.
pub fn ip_to_abi(ip: Option<SocketAddr>) -> abi::Ip {
    let mut out = abi::Ip::default();
    match ip {
        None => {}
        Some(SocketAddr::V4(a)) => {
            out.family = 4;
            out.port = a.port();
            out.addr[..4].copy_from_slice(&a.ip().octets());
        }
        Some(SocketAddr::V6(a)) => {
            out.family = 6;
            out.port = a.port();
            out.addr = a.ip().octets();
            out.scope_id = a.scope_id();
            out.flowinfo = a.flowinfo();
        }
    }
    out
}

/// An IP from the ABI's layout (`None` for family 0 or an unknown one).
pub fn ip_from_abi(ip: &abi::Ip) -> Option<SocketAddr> {
    match ip.family {
        4 => {
            let a = Ipv4Addr::new(ip.addr[0], ip.addr[1], ip.addr[2], ip.addr[3]);
            Some(SocketAddr::V4(SocketAddrV4::new(a, ip.port)))
        }
        6 => Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip.addr), ip.port, ip.flowinfo, ip.scope_id))),
        _ => None,
    }
}

fn tc(v: &abi::Value) -> Option<TypeCode> {
    TypeCode::from_u32(v.ty)
}

/// Reads ABI arguments. STRANDS parts are copied into `strands` first
/// (one list per STRANDS argument), which the returned args borrow.
///
/// # Safety
/// Every pointer in `args` must be valid for `'a`, as the ABI promises.
pub unsafe fn args_from_abi<'a>(args: &'a [abi::Value], strands: &'a mut Vec<Vec<Option<&'a [u8]>>>) -> Vec<Arg<'a>> {
    for v in args {
        if !v.is_absent() && tc(v) == Some(TypeCode::Strands) {
            // SAFETY: the caller's promise; ty says the field is live.
            let s = unsafe { v.data.strands };
            let parts = if s.parts.is_null() { &[][..] } else { unsafe { std::slice::from_raw_parts(s.parts, s.n) } };
            strands.push(parts.iter().map(|p| unsafe { p.as_bytes() }).collect());
        }
    }
    let mut strands = strands.iter();
    args.iter()
        .map(|v| {
            if v.is_absent() {
                return Arg::Absent;
            }
            let null = v.is_null();
            // SAFETY: each arm reads the field its type code selects.
            unsafe {
                match tc(v) {
                    Some(TypeCode::Int) => Arg::Int(v.data.int),
                    Some(TypeCode::Real) => Arg::Real(v.data.real),
                    Some(TypeCode::Duration) => Arg::Duration(v.data.real),
                    Some(TypeCode::Time) => Arg::Time(v.data.real),
                    Some(TypeCode::Bytes) => Arg::Bytes(v.data.real),
                    Some(TypeCode::Bool) => Arg::Bool(v.data.boolean != 0),
                    Some(TypeCode::String) => Arg::Str(if null { None } else { v.data.str.as_bytes() }),
                    Some(TypeCode::Enum) => {
                        Arg::Enum(v.data.str.as_bytes().and_then(|b| std::str::from_utf8(b).ok()).unwrap_or(""))
                    }
                    Some(TypeCode::Strands) => Arg::Strands(Strands(strands.next().map(Vec::as_slice).unwrap_or(&[]))),
                    Some(TypeCode::Ip) => Arg::Ip(if null { None } else { ip_from_abi(&v.data.ip) }),
                    Some(TypeCode::Header) => {
                        let h = v.data.header;
                        match Http::from_u32(h.which) {
                            Some(which) => Arg::Header(Header { which, name: h.name.as_bytes().unwrap_or(b"") }),
                            None => Arg::Absent,
                        }
                    }
                    Some(TypeCode::Http) => Http::from_u32(v.data.http).map(Arg::Http).unwrap_or(Arg::Absent),
                    Some(TypeCode::Backend) => Arg::Backend(Backend((!null).then_some(v.data.handle))),
                    Some(TypeCode::Probe) => Arg::Probe(Probe((!null).then_some(v.data.handle))),
                    Some(TypeCode::Acl) => Arg::Acl(Acl((!null).then_some(v.data.handle))),
                    Some(TypeCode::Sub) => Arg::Sub(Sub(v.data.handle)),
                    Some(TypeCode::Blob) => Arg::Blob(BlobRef(if null { None } else { v.data.str.as_bytes() })),
                    _ => Arg::Absent,
                }
            }
        })
        .collect()
}

/// Lays an argument out for the ABI. STRANDS parts go to `parts` first
/// (call with the same `parts` for every argument of one call and do not
/// touch it until the call is over: the values point into it).
pub fn arg_to_abi(a: &Arg<'_>, parts: &mut Vec<Box<[Str]>>) -> abi::Value {
    use abi::Data;
    let s = |b: Option<&[u8]>| b.map(Str::from_bytes).unwrap_or(Str::NULL);
    let nullable = |ty, v: Option<Data>| match v {
        Some(d) => abi::Value::new(ty, d),
        None => abi::Value::null(ty),
    };
    match *a {
        Arg::Absent => abi::Value::absent(),
        Arg::Int(v) => abi::Value::new(TypeCode::Int, Data { int: v }),
        Arg::Real(v) => abi::Value::new(TypeCode::Real, Data { real: v }),
        Arg::Duration(v) => abi::Value::new(TypeCode::Duration, Data { real: v }),
        Arg::Time(v) => abi::Value::new(TypeCode::Time, Data { real: v }),
        Arg::Bytes(v) => abi::Value::new(TypeCode::Bytes, Data { real: v }),
        Arg::Bool(v) => abi::Value::new(TypeCode::Bool, Data { boolean: v as u32 }),
        Arg::Str(v) => nullable(TypeCode::String, v.map(|b| Data { str: Str::from_bytes(b) })),
        Arg::Enum(v) => abi::Value::new(TypeCode::Enum, Data { str: Str::from_bytes(v.as_bytes()) }),
        Arg::Strands(st) => {
            let list: Box<[Str]> = st.0.iter().map(|p| s(*p)).collect();
            let d = Data { strands: abi::Strands { parts: list.as_ptr(), n: list.len() } };
            parts.push(list);
            abi::Value::new(TypeCode::Strands, d)
        }
        Arg::Ip(v) => nullable(TypeCode::Ip, v.map(|ip| Data { ip: ip_to_abi(Some(ip)) })),
        Arg::Header(h) => abi::Value::new(
            TypeCode::Header,
            Data { header: abi::HeaderRef { which: h.which as u32, name: Str::from_bytes(h.name) } },
        ),
        Arg::Http(h) => abi::Value::new(TypeCode::Http, Data { http: h as u32 }),
        Arg::Backend(b) => nullable(TypeCode::Backend, b.0.map(|handle| Data { handle })),
        Arg::Probe(p) => nullable(TypeCode::Probe, p.0.map(|handle| Data { handle })),
        Arg::Acl(x) => nullable(TypeCode::Acl, x.0.map(|handle| Data { handle })),
        Arg::Sub(x) => abi::Value::new(TypeCode::Sub, Data { handle: x.0 }),
        Arg::Blob(b) => nullable(TypeCode::Blob, b.0.map(|b| Data { str: Str::from_bytes(b) })),
    }
}

/// Reads a result written by a module (copying what it points to).
/// Objects are not handled here: the loader wraps them itself.
///
/// # Safety
/// The pointers in `v` must be valid, as the ABI promises.
pub unsafe fn value_from_abi(v: &abi::Value) -> Value {
    if v.is_absent() {
        return Value::Void;
    }
    let null = v.is_null();
    // SAFETY: each arm reads the field its type code selects.
    unsafe {
        let bytes = || if null { None } else { v.data.str.as_bytes().map(<[u8]>::to_vec) };
        match tc(v) {
            Some(TypeCode::Int) => Value::Int(v.data.int),
            Some(TypeCode::Real) => Value::Real(v.data.real),
            Some(TypeCode::Duration) => Value::Duration(v.data.real),
            Some(TypeCode::Time) => Value::Time(v.data.real),
            Some(TypeCode::Bytes) => Value::Bytes(v.data.real),
            Some(TypeCode::Bool) => Value::Bool(v.data.boolean != 0),
            Some(TypeCode::String) => Value::Str(bytes()),
            Some(TypeCode::Blob) => Value::Blob(bytes()),
            Some(TypeCode::Ip) => Value::Ip(if null { None } else { ip_from_abi(&v.data.ip) }),
            Some(TypeCode::Backend) => Value::Backend(Backend((!null).then_some(v.data.handle))),
            Some(TypeCode::Probe) => Value::Probe(Probe((!null).then_some(v.data.handle))),
            Some(TypeCode::Acl) => Value::Acl(Acl((!null).then_some(v.data.handle))),
            Some(TypeCode::Sub) => Value::Sub(Sub(v.data.handle)),
            Some(TypeCode::Stevedore) => Value::Stevedore(bytes().map(|b| String::from_utf8_lossy(&b).into_owned())),
            Some(TypeCode::Strands) => Value::Strands(strands_from_abi(v.data.strands)),
            _ => Value::Void,
        }
    }
}

/// The parts of a STRANDS result, copied.
///
/// # Safety
/// `st` must point to `n` valid parts, as the ABI promises.
unsafe fn strands_from_abi(st: abi::Strands) -> Vec<Option<Vec<u8>>> {
    if st.parts.is_null() {
        return Vec::new();
    }
    // SAFETY: the caller's promise.
    let parts = unsafe { std::slice::from_raw_parts(st.parts, st.n) };
    parts.iter().map(|p| p.as_bytes().map(<[u8]>::to_vec)).collect()
}

/// A callback added to the table after 1.1, if the host's table has it
/// (its `size` says how long it is).
macro_rules! since_1_1 {
    ($fh:expr, $field:ident) => {{
        let table: *const HostTable = $fh.table;
        // SAFETY: `size` is the table's first field, in every version.
        let size = unsafe { (*table).size };
        if HostTable::has(size, std::mem::offset_of!(HostTable, $field)) {
            // SAFETY: the table is long enough to hold the field.
            Some(unsafe { std::ptr::addr_of!((*table).$field).read() })
        } else {
            None
        }
    }};
}

/// The host, seen from inside a module through its callback table.
struct ForeignHost {
    host: *mut c_void,
    table: &'static HostTable,
    /// The method's name, asked of the host the first time a module
    /// wants it (most calls never do, and asking costs a crossing and a
    /// copy).
    method: std::cell::OnceCell<String>,
    /// The host's workspaces (client, backend, session, thread, the
    /// task's), when its table has `ws_op` (ABI 1.3).
    ws: Option<[crate::ws::ForeignWs; 5]>,
}

impl ForeignHost {
    fn new(host: *mut c_void, table: &'static HostTable) -> ForeignHost {
        let mut fh = ForeignHost { host, table, method: std::cell::OnceCell::new(), ws: None };
        if let Some(op) = since_1_1!(fh, ws_op) {
            use abi::WsWhich as W;
            let ws = |which| crate::ws::ForeignWs { host, op, which };
            fh.ws = Some([ws(W::Client), ws(W::Backend), ws(W::Session), ws(W::Thread), ws(W::Task)]);
        }
        fh
    }

    /// Workspace `i` of [`ForeignHost::ws`], if the task has it.
    fn foreign_ws(&self, i: usize) -> Option<&dyn crate::Workspace> {
        let ws = &self.ws.as_ref()?[i];
        // SAFETY: the table's callback, with the host pointer it gave.
        let free = unsafe { (ws.op)(self.host, ws.which as u32, abi::WsOp::Free as u32, 0) };
        (free >= 0).then_some(ws as &dyn crate::Workspace)
    }
    fn copy_out(&self, s: Str) -> Option<&[u8]> {
        // SAFETY: the host's strings live until the task ends, longer than
        // this call (and so longer than `&self`).
        unsafe { s.as_bytes() }
    }

    fn ok(&self, rc: i32, what: &str) -> Result<(), Failure> {
        if rc == 0 {
            Ok(())
        } else {
            Err(Failure(format!("{what} is not available in {}", Host::method(self))))
        }
    }
}

/// Calls a module's hook provider for the host ([`abi::Hook::call`]).
unsafe extern "C" fn hook_call_provider(data: *const c_void, arg: Str, sink: *mut c_void, put: abi::HookPut) -> i32 {
    let answer = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: `data` is the Box<HookFn> made in hook_provide, alive
        // until the host frees it; `arg` is valid during the call.
        let f = unsafe { &*(data as *const crate::HookFn) };
        f(unsafe { arg.as_bytes() }.unwrap_or(b""))
    }));
    match answer {
        Ok(Some(a)) => {
            // SAFETY: the host's sink and put, as the ABI promises.
            unsafe { put(sink, Str::from_bytes(&a)) };
            1
        }
        _ => 0,
    }
}

/// Releases a module's hook provider ([`abi::Hook::free`]).
unsafe extern "C" fn hook_free_provider(data: *const c_void) {
    // SAFETY: made by Box::into_raw in hook_provide; the host frees once.
    let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(data as *mut crate::HookFn) })));
}

impl Host for ForeignHost {
    fn workspace(&self, which: crate::WsId) -> Option<&dyn crate::Workspace> {
        self.foreign_ws(which as usize)
    }
    fn task_workspace(&self) -> Option<&dyn crate::Workspace> {
        self.foreign_ws(4)
    }
    fn log_record(&mut self, vxid: u64, tag: &str, client: bool, msg: &[u8]) -> Result<(), Failure> {
        let Some(f) = since_1_1!(self, log_record) else {
            return Err(Failure("this Lacquer cannot write log records for modules (ABI 1.2)".into()));
        };
        // SAFETY: the table's callbacks take the host pointer it gave.
        let rc =
            unsafe { f(self.host, vxid, Str::from_bytes(tag.as_bytes()), u32::from(client), Str::from_bytes(msg)) };
        if rc == 0 {
            Ok(())
        } else {
            Err(Failure(format!("no such log tag: {tag}")))
        }
    }
    fn method(&self) -> &str {
        self.method.get_or_init(|| {
            // SAFETY: the host's strings live until the task ends.
            let m = unsafe { (self.table.method)(self.host).as_bytes() }.unwrap_or(b"");
            String::from_utf8_lossy(m).into_owned()
        })
    }
    fn log_global(&mut self, tag: &str, msg: &[u8]) {
        if let Some(f) = since_1_1!(self, log_global) {
            // SAFETY: the table's callbacks take the host pointer it gave.
            unsafe { f(self.host, Str::from_bytes(tag.as_bytes()), Str::from_bytes(msg)) }
        }
    }
    fn vcl_name(&self) -> &str {
        let Some(f) = since_1_1!(self, vcl_name) else { return "" };
        // SAFETY: as above.
        let s = unsafe { f(self.host) };
        self.copy_out(s).and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
    }
    fn param(&self, name: &str) -> Option<String> {
        let f = since_1_1!(self, param)?;
        // SAFETY: as above.
        let s = unsafe { f(self.host, Str::from_bytes(name.as_bytes())) };
        self.copy_out(s).map(|b| String::from_utf8_lossy(b).into_owned())
    }
    fn object_name(&self) -> Option<&str> {
        let f = since_1_1!(self, object_name)?;
        // SAFETY: as above.
        let s = unsafe { f(self.host) };
        self.copy_out(s).and_then(|b| std::str::from_utf8(b).ok())
    }
    fn hook_provide(&mut self, name: &str, order: i32, f: crate::HookFn) -> Result<(), Failure> {
        let Some(provide) = since_1_1!(self, hook_provide) else {
            return Err(Failure("this Lacquer has no hooks (ABI 1.1)".into()));
        };
        let data = Box::into_raw(Box::new(f)) as *const c_void;
        let hook = abi::Hook { call: hook_call_provider, data, free: Some(hook_free_provider) };
        // SAFETY: as above; the host owns `hook` from here on.
        let s = unsafe { provide(self.host, Str::from_bytes(name.as_bytes()), order, hook) };
        match self.copy_out(s) {
            None => Ok(()),
            Some(e) => Err(Failure(String::from_utf8_lossy(e).into_owned())),
        }
    }
    fn hook_call(&self, name: &str, arg: &[u8]) -> Option<Vec<u8>> {
        let call = since_1_1!(self, hook_call)?;
        // SAFETY: as above; a non-NULL answer is in the workspace.
        let s = unsafe { call(self.host, Str::from_bytes(name.as_bytes()), Str::from_bytes(arg)) };
        self.copy_out(s).map(<[u8]>::to_vec)
    }
    fn blocking(&mut self, f: &mut dyn FnMut()) {
        let Some(run) = since_1_1!(self, blocking) else { return f() };
        /// Runs the module's closure from the host's side of the call.
        unsafe extern "C" fn trampoline(data: *mut c_void) {
            // SAFETY: `data` is the `&mut &mut dyn FnMut()` below, alive
            // for the whole call; a panic must not unwind into the host.
            let f = unsafe { &mut *(data as *mut &mut dyn FnMut()) };
            let _ = catch_unwind(AssertUnwindSafe(f));
        }
        let mut f = f;
        // SAFETY: as above; the host calls `trampoline(data)` before
        // returning, and `f` outlives that.
        unsafe { run(self.host, trampoline, &mut f as *mut &mut dyn FnMut() as *mut c_void) }
    }
    fn vcl_ref(&mut self, desc: &str) -> Result<crate::VclRef, Failure> {
        let (Some(take), Some(unref)) = (since_1_1!(self, vcl_ref), since_1_1!(self, vcl_unref)) else {
            return Err(Failure("the host cannot hold VCLs for modules".into()));
        };
        let mut hold = 0u64;
        // SAFETY: as above; `hold` is a valid place for the host to write.
        let s = unsafe { take(self.host, Str::from_bytes(desc.as_bytes()), &mut hold) };
        match self.copy_out(s) {
            None => Ok(crate::VclRef::new(move || {
                // SAFETY: the host's callback, which takes any number.
                unsafe { unref(hold) }
            })),
            Some(e) => Err(Failure(String::from_utf8_lossy(e).into_owned())),
        }
    }
    fn vcl_syntax(&self) -> Option<u32> {
        let f = since_1_1!(self, vcl_syntax)?;
        // SAFETY: as above.
        let v = unsafe { f(self.host) };
        (v != 0).then_some(v)
    }
    fn proxy_tlvs(&self) -> Option<Vec<u8>> {
        let f = since_1_1!(self, proxy_tlvs)?;
        // SAFETY: as above; a non-NULL answer is in the workspace.
        let s = unsafe { f(self.host) };
        self.copy_out(s).map(<[u8]>::to_vec)
    }
    fn peer_cred(&self) -> Result<(u32, u32), crate::PeerCredError> {
        let Some(f) = since_1_1!(self, peer_cred) else { return Err(crate::PeerCredError::Unavailable) };
        let (mut uid, mut gid) = (0u32, 0u32);
        // SAFETY: as above; the two pointers are valid for the call.
        match unsafe { f(self.host, &mut uid, &mut gid) } {
            0 => Ok((uid, gid)),
            -1 => Err(crate::PeerCredError::NotUnix),
            _ => Err(crate::PeerCredError::Unavailable),
        }
    }
    fn purge(&mut self, ttl: Option<f64>, grace: Option<f64>, keep: Option<f64>) -> Result<i64, Failure> {
        let Some(f) = since_1_1!(self, purge) else {
            return Err(Failure("this Lacquer cannot purge for a loaded module (ABI before 1.4)".into()));
        };
        let nan = |v: Option<f64>| v.unwrap_or(f64::NAN);
        // SAFETY: as above.
        match unsafe { f(self.host, nan(ttl), nan(grace), nan(keep)) } {
            n if n >= 0 => Ok(n),
            _ => Err(Failure(format!("purge is not available in {}", Host::method(self)))),
        }
    }
    fn connection(&mut self) -> Result<crate::Connection, Failure> {
        let Some(lend) = since_1_1!(self, connection) else {
            return Err(Failure("this Lacquer cannot lend the connection to a loaded module (ABI before 1.3)".into()));
        };
        let mut out = abi::ConnOut::default();
        // SAFETY: as above; `out` is a valid place to write.
        let err = unsafe { lend(self.host, &mut out) };
        if let Some(why) = self.copy_out(err) {
            return Err(Failure(String::from_utf8_lossy(why).into_owned()));
        }
        if out.fd < 0 {
            return Err(Failure("the host lent no connection".into()));
        }
        use std::os::fd::FromRawFd;
        // SAFETY: the host gave this module a descriptor of its own.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(out.fd) };
        let received = self.copy_out(out.received).unwrap_or(b"").to_vec();
        let none = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let info = crate::ConnInfo {
            client: ip_from_abi(&out.client).unwrap_or(none),
            server: ip_from_abi(&out.server).unwrap_or(none),
            remote: ip_from_abi(&out.remote).unwrap_or(none),
            local: ip_from_abi(&out.local).unwrap_or(none),
            xid: out.xid,
            sess_xid: out.sess_xid,
            listener: String::from_utf8_lossy(self.copy_out(out.listener).unwrap_or(b"")).into_owned(),
            proxy: out.proxy != 0,
        };
        let head_len = out.head_len.min(received.len());
        Ok(crate::Connection { fd, received, head_len, info })
    }
    fn end_request(&mut self, end: crate::RequestEnd) -> Result<(), Failure> {
        let Some(finish) = since_1_1!(self, end_request) else {
            return Err(Failure("this Lacquer cannot let a loaded module end the request (ABI before 1.3)".into()));
        };
        let (kind, status, reason, close, to) = match &end {
            crate::RequestEnd::HandedOff { to } => (1, 0, "", false, to.as_str()),
            crate::RequestEnd::Synth { status, reason, close } => (2, u32::from(*status), reason.as_str(), *close, ""),
        };
        // SAFETY: as above.
        let err = unsafe {
            finish(
                self.host,
                kind,
                status,
                Str::from_bytes(reason.as_bytes()),
                u32::from(close),
                Str::from_bytes(to.as_bytes()),
            )
        };
        match self.copy_out(err) {
            Some(why) => Err(Failure(String::from_utf8_lossy(why).into_owned())),
            None => Ok(()),
        }
    }
    fn log(&mut self, msg: &[u8]) {
        // SAFETY: the table's callbacks take the host pointer it gave.
        unsafe { (self.table.log)(self.host, Str::from_bytes(msg)) }
    }
    fn header(&self, which: Http, name: &[u8], nth: usize) -> Option<&[u8]> {
        let n = u32::try_from(nth).ok()?;
        // SAFETY: as above.
        let s = unsafe { (self.table.header_get)(self.host, which as u32, Str::from_bytes(name), n) };
        self.copy_out(s)
    }
    fn set_header(&mut self, which: Http, name: &[u8], value: &[u8]) -> Result<(), Failure> {
        // SAFETY: as above.
        let rc =
            unsafe { (self.table.header_set)(self.host, which as u32, Str::from_bytes(name), Str::from_bytes(value)) };
        self.ok(rc, which.as_str())
    }
    fn unset_header(&mut self, which: Http, name: &[u8]) -> Result<(), Failure> {
        // SAFETY: as above.
        let rc = unsafe { (self.table.header_unset)(self.host, which as u32, Str::from_bytes(name)) };
        self.ok(rc, which.as_str())
    }
    fn collect_header(&mut self, which: Http, name: &[u8], sep: &[u8]) -> Result<(), Failure> {
        let h = abi::HeaderRef { which: which as u32, name: Str::from_bytes(name) };
        // SAFETY: as above.
        let rc = unsafe { (self.table.header_collect)(self.host, h, Str::from_bytes(sep)) };
        self.ok(rc, which.as_str())
    }
    fn ip(&self, kind: IpKind) -> Option<SocketAddr> {
        let mut out = abi::Ip::default();
        // SAFETY: as above; `out` is a valid place to write.
        let rc = unsafe { (self.table.ip)(self.host, kind as u32, &mut out) };
        if rc == 0 {
            ip_from_abi(&out)
        } else {
            None
        }
    }
    fn take_priv(&mut self, scope: PrivScope) -> Option<PrivSlot> {
        // SAFETY: as above; the Priv is valid for this call and its ptr,
        // when set, is a Box<PrivSlot> this module made in put_priv.
        unsafe {
            let p = (self.table.priv_exclusive)(self.host, scope as u32);
            if p.is_null() {
                return None;
            }
            if (*p).ptr.is_null() {
                return Some(None);
            }
            Some((*((*p).ptr as *mut PrivSlot)).take())
        }
    }
    fn put_priv(&mut self, scope: PrivScope, slot: PrivSlot) {
        unsafe extern "C" fn free_slot(p: *mut c_void) {
            // SAFETY: made by Box::into_raw below; the host frees it once.
            drop(unsafe { Box::from_raw(p as *mut PrivSlot) });
        }
        // SAFETY: as in take_priv.
        unsafe {
            let p = (self.table.priv_exclusive)(self.host, scope as u32);
            if p.is_null() {
                return;
            }
            if (*p).ptr.is_null() {
                if slot.is_none() {
                    return;
                }
                (*p).ptr = Box::into_raw(Box::new(slot)) as *mut c_void;
                (*p).free = Some(free_slot);
            } else {
                *((*p).ptr as *mut PrivSlot) = slot;
            }
        }
    }
    fn shared_priv(&self, scope: PrivScope) -> Option<Arc<SharedSlot>> {
        unsafe extern "C" fn free_shared(p: *mut c_void) {
            // SAFETY: made by Box::into_raw in init_shared; freed once.
            drop(unsafe { Box::from_raw(p as *mut Arc<SharedSlot>) });
        }
        unsafe extern "C" fn init_shared() -> Priv {
            let b: Box<Arc<SharedSlot>> = Box::default();
            Priv { ptr: Box::into_raw(b) as *mut c_void, free: Some(free_shared) }
        }
        // SAFETY: the pointer the host returns is what init_shared made.
        unsafe {
            let p = (self.table.priv_shared)(self.host, scope as u32, init_shared);
            if p.is_null() {
                return None;
            }
            Some((*(p as *const Arc<SharedSlot>)).clone())
        }
    }
    fn backend_healthy(&self, be: Backend) -> Option<bool> {
        let id = be.0?;
        // SAFETY: as above.
        match unsafe { (self.table.backend_healthy)(self.host, id) } {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }
    }
    fn acl_match(&self, acl: Acl, ip: SocketAddr) -> Option<bool> {
        let acl = acl.0?;
        let ip = ip_to_abi(Some(ip));
        // SAFETY: as above.
        match unsafe { (self.table.acl_match)(self.host, acl, &ip) } {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }
    }
    fn rollback(&mut self, which: Http) -> Result<(), Failure> {
        // SAFETY: as above.
        match unsafe { (self.table.rollback)(self.host, which as u32) } {
            0 => Ok(()),
            _ => Err(Failure(String::new())),
        }
    }
    fn cache_req_body(&mut self, max: u64) -> Result<bool, Failure> {
        // SAFETY: as above.
        match unsafe { (self.table.cache_req_body)(self.host, max as f64) } {
            1 => Ok(true),
            0 => Ok(false),
            _ => Err(Failure(String::new())),
        }
    }
    fn late_100_continue(&mut self, late: bool) -> Result<(), Failure> {
        // SAFETY: as above.
        let rc = unsafe { (self.table.late_100_continue)(self.host, late as u32) };
        self.ok(rc, "late_100_continue")
    }
    fn set_ip_tos(&mut self, tos: i64) -> Result<(), Failure> {
        // SAFETY: as above.
        match unsafe { (self.table.set_ip_tos)(self.host, tos) } {
            0 => Ok(()),
            _ => Err(Failure(String::new())),
        }
    }
    fn timestamp(&mut self, label: &[u8]) {
        // SAFETY: as above.
        unsafe { (self.table.timestamp)(self.host, Str::from_bytes(label)) }
    }
    fn ban(&mut self, expr: Option<&[u8]>) -> Result<(), String> {
        // SAFETY: as above; a non-NULL answer is a string in the workspace.
        let s = unsafe { (self.table.ban)(self.host, expr.map_or(Str::NULL, Str::from_bytes)) };
        match self.copy_out(s) {
            None => Ok(()),
            Some(e) => Err(String::from_utf8_lossy(e).into_owned()),
        }
    }
}

/// Copies `b` into the task's workspace.
unsafe fn ws_copy(host: *mut c_void, table: &HostTable, b: &[u8]) -> Result<Str, Failure> {
    if b.is_empty() {
        return Ok(Str { ptr: b"".as_ptr(), len: 0 });
    }
    // SAFETY: the table's promise.
    let p = unsafe { (table.ws_alloc)(host, b.len()) };
    if p.is_null() {
        return Err(Failure("out of workspace".into()));
    }
    // SAFETY: ws_alloc returned `b.len()` writable bytes.
    unsafe { std::ptr::copy_nonoverlapping(b.as_ptr(), p, b.len()) };
    Ok(Str { ptr: p, len: b.len() })
}

/// Copies a STRANDS result into the task's workspace: each part, then
/// the list of them.
///
/// # Safety
/// `host` and `table` must be the caller's.
unsafe fn strands_to_ws(
    host: *mut c_void,
    table: &HostTable,
    parts: &[Option<Vec<u8>>],
) -> Result<abi::Strands, Failure> {
    let mut list = Vec::with_capacity(parts.len());
    for p in parts {
        list.push(match p {
            // SAFETY: the caller's host and table.
            Some(b) => unsafe { ws_copy(host, table, b)? },
            None => Str::NULL,
        });
    }
    let size = std::mem::size_of_val(list.as_slice());
    // SAFETY: the caller's host and table; the bytes are written below.
    let p = unsafe { (table.ws_alloc)(host, size + std::mem::align_of::<Str>()) };
    if p.is_null() {
        return Err(Failure("out of workspace".into()));
    }
    let at = p.align_offset(std::mem::align_of::<Str>());
    // SAFETY: `at` plus `size` bytes fit in what ws_alloc gave, aligned for `Str`.
    let dst = unsafe { p.add(at) }.cast::<Str>();
    unsafe { std::ptr::copy_nonoverlapping(list.as_ptr(), dst, list.len()) };
    Ok(abi::Strands { parts: dst, n: list.len() })
}

unsafe fn value_to_abi(v: Value, host: *mut c_void, table: &HostTable) -> Result<abi::Value, Failure> {
    use abi::Data;
    let nullable = |ty, v: Option<Data>| match v {
        Some(d) => abi::Value::new(ty, d),
        None => abi::Value::null(ty),
    };
    Ok(match v {
        Value::Void => abi::Value::absent(),
        Value::Int(i) => abi::Value::new(TypeCode::Int, Data { int: i }),
        Value::Real(r) => abi::Value::new(TypeCode::Real, Data { real: r }),
        Value::Duration(r) => abi::Value::new(TypeCode::Duration, Data { real: r }),
        Value::Time(r) => abi::Value::new(TypeCode::Time, Data { real: r }),
        Value::Bytes(r) => abi::Value::new(TypeCode::Bytes, Data { real: r }),
        Value::Bool(b) => abi::Value::new(TypeCode::Bool, Data { boolean: b as u32 }),
        // SAFETY (both): the caller's host and table.
        Value::Str(s) => match s {
            Some(b) => abi::Value::new(TypeCode::String, Data { str: unsafe { ws_copy(host, table, &b)? } }),
            None => abi::Value::null(TypeCode::String),
        },
        Value::Blob(s) => match s {
            Some(b) => abi::Value::new(TypeCode::Blob, Data { str: unsafe { ws_copy(host, table, &b)? } }),
            None => abi::Value::null(TypeCode::Blob),
        },
        Value::Ip(ip) => nullable(TypeCode::Ip, ip.map(|ip| Data { ip: ip_to_abi(Some(ip)) })),
        Value::Backend(b) => nullable(TypeCode::Backend, b.0.map(|handle| Data { handle })),
        Value::Probe(p) => nullable(TypeCode::Probe, p.0.map(|handle| Data { handle })),
        Value::Acl(a) => nullable(TypeCode::Acl, a.0.map(|handle| Data { handle })),
        Value::Sub(s) => abi::Value::new(TypeCode::Sub, Data { handle: s.0 }),
        // SAFETY (both): the caller's host and table.
        Value::Stevedore(name) => match name {
            Some(n) => {
                abi::Value::new(TypeCode::Stevedore, Data { str: unsafe { ws_copy(host, table, n.as_bytes())? } })
            }
            None => abi::Value::null(TypeCode::Stevedore),
        },
        Value::Strands(parts) => {
            abi::Value::new(TypeCode::Strands, Data { strands: unsafe { strands_to_ws(host, table, &parts)? } })
        }
        Value::Object(o) => abi::Value::new(TypeCode::Void, Data { object: Box::into_raw(Box::new(o)) as *mut c_void }),
    })
}

/// Runs one entry point of `def` (what every exported entry calls).
///
/// # Safety
/// The arguments must be as [`abi::EntryFn`] documents them.
#[allow(clippy::too_many_arguments)]
pub unsafe fn enter(
    def: &'static ModuleDef,
    kind: EntryKind,
    object: u32,
    index: u32,
    ctx: *const CallCtx,
    this: *mut c_void,
    args: *const abi::Value,
    nargs: usize,
    out: *mut abi::Value,
) -> i32 {
    if kind == EntryKind::Destructor {
        if !this.is_null() {
            // SAFETY: `this` came from value_to_abi's Box::into_raw.
            let r = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(this as *mut Instance) })));
            return r.is_err() as i32;
        }
        return 0;
    }
    if ctx.is_null() || out.is_null() || (nargs > 0 && args.is_null()) {
        return 1;
    }
    // SAFETY: the caller's promise.
    let (ctx, table) = unsafe { (&*ctx, &*(*ctx).table) };
    let host = ctx.host;
    let fail = |msg: &str| {
        // SAFETY: as above.
        unsafe { (table.fail)(host, Str::from_bytes(msg.as_bytes())) };
        1
    };
    let r = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller's promise.
        let raw = if nargs == 0 { &[][..] } else { unsafe { std::slice::from_raw_parts(args, nargs) } };
        let mut strands = Vec::new();
        // SAFETY: as above.
        let args = unsafe { args_from_abi(raw, &mut strands) };
        // SAFETY: the table outlives the call; ForeignHost does not keep it.
        let table_static: &'static HostTable = unsafe { &*(table as *const HostTable) };
        let mut fh = ForeignHost::new(host, table_static);
        let this_ref;
        let target = match kind {
            EntryKind::Function => Target::Function(index),
            EntryKind::Constructor => Target::Constructor(object),
            _ => {
                if this.is_null() {
                    return Err(Failure("method called without its object".into()));
                }
                // SAFETY: `this` is an Instance this module made.
                this_ref = unsafe { &*(this as *const Instance) };
                Target::Method { object, method: index, this: this_ref }
            }
        };
        let v = (def.call)(&mut Ctx::new(&mut fh), target, &args)?;
        // SAFETY: as above.
        unsafe { value_to_abi(v, host, table) }
    }));
    match r {
        Ok(Ok(v)) => {
            // SAFETY: `out` is valid to write, the caller's promise.
            unsafe { *out = v };
            0
        }
        Ok(Err(f)) => {
            if !f.0.is_empty() {
                fail(&f.0);
            }
            1
        }
        Err(p) => fail(&panic_failure(def.name, p).0),
    }
}
