//! The host side of the C ABI (feature `loader`): opening a module's shared
//! library, checking its descriptor before trusting anything else in it,
//! and calling its entry points with a [`Host`] behind a callback table.

use std::any::Any;
use std::ffi::{c_void, CStr};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use lacquer_abi as abi;
use lacquer_abi::{CallCtx, Entry, EntryKind, HostTable, ModuleDescriptor, Priv, Str};

use crate::ffi::{arg_to_abi, ip_from_abi, ip_to_abi, value_from_abi};
use crate::host::{Ctx, Host};
use crate::registry::Target;
use crate::types::*;

/// Why a library could not be used as a module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadError {
    /// The file could not be opened as a shared library.
    Open(String),
    /// It has no `LACQUER_MODULE_DESCRIPTOR`: not a Lacquer module.
    NotAModule,
    /// The descriptor's head was refused (magic, versions, level).
    Version(abi::VersionError),
    /// The descriptor is inconsistent (bad name, spec, entries).
    Corrupt(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Open(e) => write!(f, "cannot open: {e}"),
            LoadError::NotAModule => write!(f, "not a Lacquer module (no {} symbol)", abi::DESCRIPTOR_SYMBOL),
            LoadError::Version(v) => v.fmt(f),
            LoadError::Corrupt(e) => write!(f, "corrupt module descriptor: {e}"),
        }
    }
}

impl std::error::Error for LoadError {}

/// A module loaded from a shared library. The library stays mapped while
/// the module (any clone of it), or any object or private state it made,
/// is alive.
#[derive(Clone)]
pub struct LoadedModule {
    lib: Arc<libloading::Library>,
    name: String,
    spec: String,
    entries: Vec<Entry>,
    abi: (u32, u32),
    level: abi::ApiLevel,
}

impl fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedModule").field("name", &self.name).field("abi", &self.abi).finish()
    }
}

unsafe fn cstr(p: *const u8, what: &str) -> Result<String, LoadError> {
    if p.is_null() {
        return Err(LoadError::Corrupt(format!("no {what}")));
    }
    // SAFETY: the descriptor's promise: NUL-terminated.
    let c = unsafe { CStr::from_ptr(p as *const std::ffi::c_char) };
    c.to_str().map(str::to_string).map_err(|_| LoadError::Corrupt(format!("{what} is not UTF-8")))
}

impl LoadedModule {
    /// Opens `path` and checks its descriptor: first the head (magic, ABI
    /// version, level), then the rest. For the `source` level the build
    /// hash must equal `build_hash`.
    pub fn open(path: &Path, build_hash: &str) -> Result<LoadedModule, LoadError> {
        // SAFETY: loading a library runs its initializers; that is what
        // loading a module means. Everything after is checked.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| LoadError::Open(e.to_string()))?;
        // SAFETY: the symbol is a static ModuleDescriptor in every module.
        let desc: &ModuleDescriptor = unsafe {
            let sym = lib
                .get::<*const ModuleDescriptor>(abi::DESCRIPTOR_SYMBOL.as_bytes())
                .map_err(|_| LoadError::NotAModule)?;
            let p: *const ModuleDescriptor = *sym;
            p.as_ref().ok_or(LoadError::NotAModule)?
        };
        let level = abi::check_version(desc.magic, desc.abi_major, desc.abi_minor, desc.api_level)
            .map_err(LoadError::Version)?;
        // SAFETY: the head checked out, so the rest is laid out as we know.
        let name = unsafe { cstr(desc.name, "name")? };
        if level == abi::ApiLevel::Source {
            // SAFETY: as above.
            let theirs = unsafe { cstr(desc.build_hash, "build hash")? };
            if theirs != build_hash {
                return Err(LoadError::Corrupt(format!(
                    "built against Lacquer build {theirs}, this is build {build_hash}: rebuild the module against this Lacquer"
                )));
            }
        }
        if desc.spec.is_null() {
            return Err(LoadError::Corrupt("no spec".into()));
        }
        // SAFETY: spec_len bytes at spec, the descriptor's promise.
        let spec = unsafe { std::slice::from_raw_parts(desc.spec, desc.spec_len) };
        let spec = std::str::from_utf8(spec).map_err(|_| LoadError::Corrupt("spec is not UTF-8".into()))?.to_string();
        let entries = if desc.n_entries == 0 {
            Vec::new()
        } else if desc.entries.is_null() {
            return Err(LoadError::Corrupt("no entry table".into()));
        } else {
            // SAFETY: as above.
            unsafe { std::slice::from_raw_parts(desc.entries, desc.n_entries) }.to_vec()
        };
        if let Some(e) = entries.iter().find(|e| EntryKind::from_u32(e.kind).is_none()) {
            return Err(LoadError::Corrupt(format!("unknown entry kind {}", e.kind)));
        }
        let abi = (desc.abi_major, desc.abi_minor);
        Ok(LoadedModule { lib: Arc::new(lib), name, spec, entries, abi, level })
    }

    /// The module's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its interface spec (JSON).
    pub fn spec(&self) -> &str {
        &self.spec
    }

    /// The ABI version it was built against.
    pub fn abi(&self) -> (u32, u32) {
        self.abi
    }

    /// Its API level.
    pub fn level(&self) -> abi::ApiLevel {
        self.level
    }

    fn entry(&self, kind: EntryKind, object: u32, index: u32) -> Option<&Entry> {
        self.entries.iter().find(|e| e.kind == kind as u32 && e.object == object && e.index == index)
    }

    /// Calls `target`, as [`Module::call`](crate::Module::call).
    pub fn call(&self, ctx: &mut Ctx<'_>, target: Target<'_>, args: &[Arg<'_>]) -> Result<Value, Failure> {
        let (entry, this) = match target {
            Target::Function(i) => (self.entry(EntryKind::Function, 0, i), std::ptr::null_mut()),
            Target::Constructor(o) => (self.entry(EntryKind::Constructor, o, 0), std::ptr::null_mut()),
            Target::Method { object, method, this } => {
                let obj = this
                    .downcast_ref::<ForeignObject>()
                    .ok_or_else(|| Failure(format!("{}: object of another module", self.name)))?;
                (self.entry(EntryKind::Method, object, method), obj.ptr)
            }
        };
        let entry = entry.ok_or_else(|| Failure(format!("{}: no such entry point", self.name)))?;
        let mut parts = Vec::new();
        let raw: Vec<abi::Value> = args.iter().map(|a| arg_to_abi(a, &mut parts)).collect();
        let mut bridge =
            Bridge { host: &mut **ctx, lib: &self.lib, arena: Vec::new(), taken: Vec::new(), failure: None };
        let cctx = CallCtx { host: &mut bridge as *mut Bridge as *mut c_void, table: &TABLE };
        let mut out = abi::Value::absent();
        // SAFETY: the entry's contract: ctx, args and out are valid for
        // the call.
        let rc = unsafe { (entry.call)(&cctx, this, raw.as_ptr(), raw.len(), &mut out) };
        let v = if rc != 0 {
            Err(Failure(bridge.failure.take().unwrap_or_else(|| format!("{}: call failed", self.name))))
        } else if matches!(target, Target::Constructor(_)) {
            // SAFETY: a constructor's result is its object.
            let ptr = unsafe { out.data.object };
            let destroy = self.entry(EntryKind::Destructor, entry.object, 0).map(|e| e.call);
            Ok(Value::Object(Instance::new(ForeignObject { ptr, destroy, _lib: self.lib.clone() })))
        } else {
            // SAFETY: the result points to the arena or static data.
            Ok(unsafe { value_from_abi(&out) })
        };
        bridge.give_back();
        v
    }
}

/// An object made by a loaded module; dropping it runs its destructor.
struct ForeignObject {
    ptr: *mut c_void,
    destroy: Option<abi::EntryFn>,
    _lib: Arc<libloading::Library>,
}

// SAFETY: module objects are Send + Sync by the SDK's contract (Instance).
unsafe impl Send for ForeignObject {}
unsafe impl Sync for ForeignObject {}

impl Drop for ForeignObject {
    fn drop(&mut self) {
        if let Some(d) = self.destroy {
            let mut out = abi::Value::absent();
            // SAFETY: destructors take a null ctx and no arguments.
            unsafe { d(std::ptr::null(), self.ptr, std::ptr::null(), 0, &mut out) };
        }
    }
}

/// Private state made by a loaded module, kept in the host's slot.
struct ForeignPriv {
    p: Priv,
    _lib: Arc<libloading::Library>,
}

// SAFETY: the module's state is Send by the SDK's contract.
unsafe impl Send for ForeignPriv {}
unsafe impl Sync for ForeignPriv {}

impl Drop for ForeignPriv {
    fn drop(&mut self) {
        if let (Some(free), false) = (self.p.free, self.p.ptr.is_null()) {
            // SAFETY: the module's own release, run once.
            unsafe { free(self.p.ptr) }
        }
    }
}

/// A hook provider a loaded module registered: asking it crosses the ABI;
/// dropping it (when the host unregisters it) runs the module's `free`.
/// It keeps the library mapped, so it can never be called, nor freed,
/// after the library is gone.
struct ForeignHook {
    hook: abi::Hook,
    _lib: Arc<libloading::Library>,
}

// SAFETY: a provider may be called from any thread, by the ABI's contract
// (the SDK makes them from `Send + Sync` closures).
unsafe impl Send for ForeignHook {}
unsafe impl Sync for ForeignHook {}

impl ForeignHook {
    fn ask(&self, arg: &[u8]) -> Option<Vec<u8>> {
        unsafe extern "C" fn put(sink: *mut c_void, answer: Str) {
            guard((), || {
                // SAFETY: `sink` is the Option in `ask`, alive during the
                // call; the answer is valid during this callback.
                let out = unsafe { &mut *(sink as *mut Option<Vec<u8>>) };
                *out = Some(unsafe { answer.as_bytes() }.unwrap_or(b"").to_vec());
            })
        }
        let mut out: Option<Vec<u8>> = None;
        // SAFETY: the provider's contract: `data` is its own, `arg` is
        // valid during the call, `put` copies the answer into `out`.
        let rc = unsafe {
            (self.hook.call)(self.hook.data, Str::from_bytes(arg), &mut out as *mut Option<Vec<u8>> as *mut c_void, put)
        };
        if rc != 0 {
            out
        } else {
            None
        }
    }
}

impl Drop for ForeignHook {
    fn drop(&mut self) {
        if let Some(free) = self.hook.free {
            // SAFETY: the module's own release, run once; the library is
            // still mapped (`_lib` is dropped after this).
            unsafe { free(self.hook.data) }
        }
    }
}

/// What the callbacks see as `host` during one call.
struct Bridge<'h, 'l> {
    host: &'h mut dyn Host,
    lib: &'l Arc<libloading::Library>,
    arena: Vec<Box<[u8]>>,
    taken: Vec<(PrivScope, Box<ForeignPriv>)>,
    failure: Option<String>,
}

impl Bridge<'_, '_> {
    fn alloc(&mut self, b: &[u8]) -> Str {
        let copy: Box<[u8]> = b.into();
        let s = Str { ptr: copy.as_ptr(), len: copy.len() };
        self.arena.push(copy);
        s
    }

    fn give_back(&mut self) {
        for (scope, p) in self.taken.drain(..) {
            self.host.put_priv(scope, Some(p as Box<dyn Any + Send>));
        }
    }
}

fn guard<T>(dflt: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(dflt)
}

unsafe fn b<'a>(host: *mut c_void) -> &'a mut Bridge<'a, 'a> {
    // SAFETY: every callback gets the Bridge pointer call() made.
    unsafe { &mut *(host as *mut Bridge) }
}

unsafe fn bytes<'a>(s: Str) -> &'a [u8] {
    // SAFETY: the module's strings are valid during the callback.
    unsafe { s.as_bytes() }.unwrap_or(b"")
}

fn rc(r: Result<(), Failure>) -> i32 {
    r.map_or(-1, |_| 0)
}

unsafe extern "C" fn cb_method(host: *mut c_void) -> Str {
    guard(Str::NULL, || {
        let br = unsafe { b(host) };
        let m = br.host.method().as_bytes().to_vec();
        br.alloc(&m)
    })
}
unsafe extern "C" fn cb_log(host: *mut c_void, msg: Str) {
    guard((), || unsafe { b(host).host.log(bytes(msg)) })
}
unsafe extern "C" fn cb_fail(host: *mut c_void, msg: Str) {
    guard((), || unsafe { b(host).failure = Some(String::from_utf8_lossy(bytes(msg)).into_owned()) })
}
unsafe extern "C" fn cb_ws_alloc(host: *mut c_void, len: usize) -> *mut u8 {
    guard(std::ptr::null_mut(), || {
        let br = unsafe { b(host) };
        // The memory is the heap's; the task's workspace budget pays for
        // it, and null is the answer once it is spent, as in Varnish.
        if br.host.task_workspace().is_some_and(|ws| !ws.alloc(len)) {
            return std::ptr::null_mut();
        }
        let mut buf = vec![0u8; len].into_boxed_slice();
        let p = buf.as_mut_ptr();
        br.arena.push(buf);
        p
    })
}
unsafe extern "C" fn cb_header_get(host: *mut c_void, which: u32, name: Str, nth: u32) -> Str {
    guard(Str::NULL, || {
        let br = unsafe { b(host) };
        let Some(which) = Http::from_u32(which) else { return Str::NULL };
        match br.host.header(which, unsafe { bytes(name) }, nth as usize).map(<[u8]>::to_vec) {
            Some(v) => br.alloc(&v),
            None => Str::NULL,
        }
    })
}
unsafe extern "C" fn cb_header_set(host: *mut c_void, which: u32, name: Str, value: Str) -> i32 {
    guard(-1, || {
        let Some(which) = Http::from_u32(which) else { return -1 };
        rc(unsafe { b(host).host.set_header(which, bytes(name), bytes(value)) })
    })
}
unsafe extern "C" fn cb_header_unset(host: *mut c_void, which: u32, name: Str) -> i32 {
    guard(-1, || {
        let Some(which) = Http::from_u32(which) else { return -1 };
        rc(unsafe { b(host).host.unset_header(which, bytes(name)) })
    })
}
unsafe extern "C" fn cb_header_collect(host: *mut c_void, hdr: abi::HeaderRef, sep: Str) -> i32 {
    guard(-1, || {
        let Some(which) = Http::from_u32(hdr.which) else { return -1 };
        rc(unsafe { b(host).host.collect_header(which, bytes(hdr.name), bytes(sep)) })
    })
}
unsafe extern "C" fn cb_ip(host: *mut c_void, which: u32, out: *mut abi::Ip) -> i32 {
    guard(-1, || {
        let Some(kind) = IpKind::from_u32(which) else { return -1 };
        match unsafe { b(host).host.ip(kind) } {
            Some(ip) if !out.is_null() => {
                unsafe { *out = ip_to_abi(Some(ip)) };
                0
            }
            _ => -1,
        }
    })
}
unsafe extern "C" fn cb_priv_exclusive(host: *mut c_void, scope: u32) -> *mut Priv {
    guard(std::ptr::null_mut(), || {
        let br = unsafe { b(host) };
        let Some(scope) = PrivScope::from_u32(scope).filter(|s| !s.is_shared()) else { return std::ptr::null_mut() };
        if let Some((_, p)) = br.taken.iter_mut().find(|(s, _)| *s == scope) {
            return &mut p.p as *mut Priv;
        }
        let Some(slot) = br.host.take_priv(scope) else { return std::ptr::null_mut() };
        let mut fp = match slot.map(|s| s.downcast::<ForeignPriv>()) {
            Some(Ok(fp)) => fp,
            _ => Box::new(ForeignPriv { p: Priv { ptr: std::ptr::null_mut(), free: None }, _lib: br.lib.clone() }),
        };
        let p = &mut fp.p as *mut Priv;
        br.taken.push((scope, fp));
        p
    })
}
unsafe extern "C" fn cb_priv_shared(
    host: *mut c_void,
    scope: u32,
    init: unsafe extern "C" fn() -> Priv,
) -> *mut c_void {
    guard(std::ptr::null_mut(), || {
        let br = unsafe { b(host) };
        let Some(scope) = PrivScope::from_u32(scope).filter(|s| s.is_shared()) else { return std::ptr::null_mut() };
        let Some(slot) = br.host.shared_priv(scope) else { return std::ptr::null_mut() };
        let lib = br.lib.clone();
        let v = slot.get_or_init(|| Box::new(ForeignPriv { p: unsafe { init() }, _lib: lib }));
        match v.downcast_ref::<ForeignPriv>() {
            Some(fp) => fp.p.ptr,
            None => std::ptr::null_mut(),
        }
    })
}
unsafe extern "C" fn cb_backend_healthy(host: *mut c_void, be: u64) -> i32 {
    guard(-1, || match unsafe { b(host).host.backend_healthy(Backend(Some(be))) } {
        Some(true) => 1,
        Some(false) => 0,
        None => -1,
    })
}
unsafe extern "C" fn cb_acl_match(host: *mut c_void, acl: u64, ip: *const abi::Ip) -> i32 {
    guard(-1, || {
        let Some(ip) = (unsafe { ip.as_ref() }).and_then(ip_from_abi) else { return -1 };
        match unsafe { b(host).host.acl_match(Acl(Some(acl)), ip) } {
            Some(true) => 1,
            Some(false) => 0,
            None => -1,
        }
    })
}
fn failed(br: &mut Bridge<'_, '_>, f: Failure) -> i32 {
    br.failure = Some(f.0);
    -1
}
unsafe extern "C" fn cb_rollback(host: *mut c_void, which: u32) -> i32 {
    guard(-1, || {
        let br = unsafe { b(host) };
        let Some(which) = Http::from_u32(which) else { return -1 };
        match br.host.rollback(which) {
            Ok(()) => 0,
            Err(f) => failed(br, f),
        }
    })
}
unsafe extern "C" fn cb_cache_req_body(host: *mut c_void, max: f64) -> i32 {
    guard(-1, || {
        let br = unsafe { b(host) };
        match br.host.cache_req_body(max as u64) {
            Ok(k) => k as i32,
            Err(f) => failed(br, f),
        }
    })
}
unsafe extern "C" fn cb_late_100_continue(host: *mut c_void, late: u32) -> i32 {
    guard(-1, || rc(unsafe { b(host).host.late_100_continue(late != 0) }))
}
unsafe extern "C" fn cb_set_ip_tos(host: *mut c_void, tos: i64) -> i32 {
    guard(-1, || {
        let br = unsafe { b(host) };
        match br.host.set_ip_tos(tos) {
            Ok(()) => 0,
            Err(f) => failed(br, f),
        }
    })
}
unsafe extern "C" fn cb_timestamp(host: *mut c_void, label: Str) {
    guard((), || unsafe { b(host).host.timestamp(bytes(label)) })
}
unsafe extern "C" fn cb_ban(host: *mut c_void, expr: Str) -> Str {
    guard(Str::NULL, || {
        let br = unsafe { b(host) };
        let expr = (!expr.ptr.is_null()).then(|| unsafe { bytes(expr) });
        match br.host.ban(expr) {
            Ok(()) => Str::NULL,
            Err(e) => br.alloc(e.as_bytes()),
        }
    })
}

unsafe extern "C" fn cb_log_global(host: *mut c_void, tag: Str, msg: Str) {
    guard((), || {
        let br = unsafe { b(host) };
        let tag = String::from_utf8_lossy(unsafe { bytes(tag) }).into_owned();
        br.host.log_global(&tag, unsafe { bytes(msg) })
    })
}
unsafe extern "C" fn cb_vcl_name(host: *mut c_void) -> Str {
    guard(Str::NULL, || {
        let br = unsafe { b(host) };
        let n = br.host.vcl_name().as_bytes().to_vec();
        br.alloc(&n)
    })
}
unsafe extern "C" fn cb_param(host: *mut c_void, name: Str) -> Str {
    guard(Str::NULL, || {
        let br = unsafe { b(host) };
        let Ok(name) = std::str::from_utf8(unsafe { bytes(name) }) else { return Str::NULL };
        match br.host.param(name) {
            Some(v) => br.alloc(v.as_bytes()),
            None => Str::NULL,
        }
    })
}
unsafe extern "C" fn cb_object_name(host: *mut c_void) -> Str {
    guard(Str::NULL, || {
        let br = unsafe { b(host) };
        match br.host.object_name().map(|n| n.as_bytes().to_vec()) {
            Some(n) => br.alloc(&n),
            None => Str::NULL,
        }
    })
}
unsafe extern "C" fn cb_hook_provide(host: *mut c_void, name: Str, order: i32, hook: abi::Hook) -> Str {
    const PANICKED: &[u8] = b"the host failed registering the hook";
    // The host owns the hook from here: whatever happens below drops it
    // (releasing it) at most once.
    let br = unsafe { b(host) };
    let hook = ForeignHook { hook, _lib: br.lib.clone() };
    guard(Str::from_bytes(PANICKED), move || {
        let Ok(name) = std::str::from_utf8(unsafe { bytes(name) }) else {
            return br.alloc(b"a hook's name must be UTF-8");
        };
        let f: crate::HookFn = Arc::new(move |arg: &[u8]| hook.ask(arg));
        match br.host.hook_provide(name, order, f) {
            Ok(()) => Str::NULL,
            Err(e) => br.alloc(e.0.as_bytes()),
        }
    })
}
unsafe extern "C" fn cb_hook_call(host: *mut c_void, name: Str, arg: Str) -> Str {
    guard(Str::NULL, || {
        let br = unsafe { b(host) };
        let Ok(name) = std::str::from_utf8(unsafe { bytes(name) }) else { return Str::NULL };
        match br.host.hook_call(name, unsafe { bytes(arg) }) {
            Some(v) => br.alloc(&v),
            None => Str::NULL,
        }
    })
}

unsafe extern "C" fn cb_connection(host: *mut c_void, out: *mut abi::ConnOut) -> Str {
    guard(Str::from_bytes(b"the host failed lending the connection"), || {
        let br = unsafe { b(host) };
        if out.is_null() {
            return br.alloc(b"no place to put the connection");
        }
        match br.host.connection() {
            Ok(c) => {
                use std::os::fd::IntoRawFd;
                let received = br.alloc(&c.received);
                let listener = br.alloc(c.info.listener.as_bytes());
                let i = &c.info;
                let lent = abi::ConnOut {
                    head_len: c.head_len,
                    client: ip_to_abi(Some(i.client)),
                    server: ip_to_abi(Some(i.server)),
                    remote: ip_to_abi(Some(i.remote)),
                    local: ip_to_abi(Some(i.local)),
                    xid: i.xid,
                    sess_xid: i.sess_xid,
                    proxy: u32::from(i.proxy),
                    received,
                    listener,
                    // The module owns the duplicate from here.
                    fd: c.fd.into_raw_fd(),
                };
                // SAFETY: the module gave a valid place to write.
                unsafe { *out = lent };
                Str::NULL
            }
            Err(f) => br.alloc(f.0.as_bytes()),
        }
    })
}
unsafe extern "C" fn cb_end_request(
    host: *mut c_void,
    kind: u32,
    status: u32,
    reason: Str,
    close: u32,
    to: Str,
) -> Str {
    guard(Str::from_bytes(b"the host failed ending the request"), || {
        let br = unsafe { b(host) };
        let text = |s: Str| String::from_utf8_lossy(unsafe { bytes(s) }).into_owned();
        let end = match (kind, u16::try_from(status)) {
            (1, _) => crate::RequestEnd::HandedOff { to: text(to) },
            (2, Ok(status)) => crate::RequestEnd::Synth { status, reason: text(reason), close: close != 0 },
            _ => return br.alloc(format!("no such way to end a request: {kind} (status {status})").as_bytes()),
        };
        match br.host.end_request(end) {
            Ok(()) => Str::NULL,
            Err(f) => br.alloc(f.0.as_bytes()),
        }
    })
}
unsafe extern "C" fn cb_blocking(host: *mut c_void, f: unsafe extern "C" fn(data: *mut c_void), data: *mut c_void) {
    guard((), || {
        let br = unsafe { b(host) };
        // SAFETY: the module's function and data, valid for this call.
        br.host.blocking(&mut || unsafe { f(data) });
    })
}

unsafe extern "C" fn cb_proxy_tlvs(host: *mut c_void) -> Str {
    guard(Str::NULL, || {
        let br = unsafe { b(host) };
        match br.host.proxy_tlvs() {
            Some(v) => br.alloc(&v),
            None => Str::NULL,
        }
    })
}

/// The holds loaded modules took on their VCLs, by the number they were
/// given: a module lets go later, from any thread, with only the number.
static VCL_HOLDS: std::sync::Mutex<Vec<(u64, crate::VclRef)>> = std::sync::Mutex::new(Vec::new());

unsafe extern "C" fn cb_vcl_ref(host: *mut c_void, desc: Str, out: *mut u64) -> Str {
    guard(Str::from_bytes(b"the host failed holding the VCL"), || {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let br = unsafe { b(host) };
        let desc = String::from_utf8_lossy(unsafe { bytes(desc) }).into_owned();
        match br.host.vcl_ref(&desc) {
            Ok(hold) => {
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                VCL_HOLDS.lock().unwrap_or_else(|e| e.into_inner()).push((n, hold));
                // SAFETY: the module gave a valid place to write.
                unsafe { *out = n };
                Str::NULL
            }
            Err(f) => br.alloc(f.0.as_bytes()),
        }
    })
}

unsafe extern "C" fn cb_peer_cred(host: *mut c_void, uid: *mut u32, gid: *mut u32) -> i32 {
    guard(-2, || match unsafe { b(host) }.host.peer_cred() {
        Ok(_) if uid.is_null() || gid.is_null() => -2,
        Ok((u, g)) => {
            // SAFETY: checked non-NULL; the module passes its own u32s.
            unsafe { (uid.write(u), gid.write(g)) };
            0
        }
        Err(crate::PeerCredError::NotUnix) => -1,
        Err(crate::PeerCredError::Unavailable) => -2,
    })
}

unsafe extern "C" fn cb_purge(host: *mut c_void, ttl: f64, grace: f64, keep: f64) -> i64 {
    let given = |v: f64| (!v.is_nan()).then_some(v);
    guard(-1, || unsafe { b(host) }.host.purge(given(ttl), given(grace), given(keep)).unwrap_or(-1))
}

unsafe extern "C" fn cb_vcl_unref(hold: u64) {
    guard((), || {
        let mut holds = VCL_HOLDS.lock().unwrap_or_else(|e| e.into_inner());
        let gone: Vec<_> = holds.iter().position(|(n, _)| *n == hold).map(|i| holds.remove(i)).into_iter().collect();
        drop(holds);
        // Let go outside the lock: the host's release may take its own.
        drop(gone);
    })
}

unsafe extern "C" fn cb_vcl_syntax(host: *mut c_void) -> u32 {
    guard(0, || unsafe { b(host) }.host.vcl_syntax().unwrap_or(0))
}

unsafe extern "C" fn cb_ws_op(host: *mut c_void, which: u32, op: u32, arg: i64) -> i64 {
    guard(-1, || {
        let br = unsafe { b(host) };
        let ws = match abi::WsWhich::from_u32(which) {
            Some(abi::WsWhich::Task) => br.host.task_workspace(),
            Some(abi::WsWhich::Client) => br.host.workspace(crate::WsId::Client),
            Some(abi::WsWhich::Backend) => br.host.workspace(crate::WsId::Backend),
            Some(abi::WsWhich::Session) => br.host.workspace(crate::WsId::Session),
            Some(abi::WsWhich::Thread) => br.host.workspace(crate::WsId::Thread),
            None => None,
        };
        let (Some(ws), Some(op)) = (ws, abi::WsOp::from_u32(op)) else { return -1 };
        crate::ws::apply(ws, op, arg)
    })
}
unsafe extern "C" fn cb_log_record(host: *mut c_void, vxid: u64, tag: Str, client: u32, msg: Str) -> i32 {
    guard(-1, || {
        let br = unsafe { b(host) };
        let tag = String::from_utf8_lossy(unsafe { bytes(tag) }).into_owned();
        rc(br.host.log_record(vxid, &tag, client == 1, unsafe { bytes(msg) }))
    })
}

pub(crate) static TABLE: HostTable = HostTable {
    size: std::mem::size_of::<HostTable>(),
    method: cb_method,
    log: cb_log,
    fail: cb_fail,
    ws_alloc: cb_ws_alloc,
    header_get: cb_header_get,
    header_set: cb_header_set,
    header_unset: cb_header_unset,
    header_collect: cb_header_collect,
    ip: cb_ip,
    priv_exclusive: cb_priv_exclusive,
    priv_shared: cb_priv_shared,
    backend_healthy: cb_backend_healthy,
    acl_match: cb_acl_match,
    rollback: cb_rollback,
    cache_req_body: cb_cache_req_body,
    late_100_continue: cb_late_100_continue,
    set_ip_tos: cb_set_ip_tos,
    timestamp: cb_timestamp,
    ban: cb_ban,
    log_global: cb_log_global,
    vcl_name: cb_vcl_name,
    param: cb_param,
    object_name: cb_object_name,
    hook_provide: cb_hook_provide,
    hook_call: cb_hook_call,
    ws_op: cb_ws_op,
    log_record: cb_log_record,
    connection: cb_connection,
    end_request: cb_end_request,
    blocking: cb_blocking,
    vcl_syntax: cb_vcl_syntax,
    vcl_ref: cb_vcl_ref,
    vcl_unref: cb_vcl_unref,
    proxy_tlvs: cb_proxy_tlvs,
    peer_cred: cb_peer_cred,
    purge: cb_purge,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{PrivSlot, SharedSlot};
    use crate::registry::ModuleDef;
    use crate::Hooks;
    use std::net::SocketAddr;

    /// A host with the 1.2 and 1.3 services, a hook registry and a
    /// workspace of 1000 bytes.
    #[derive(Default)]
    struct TestHost {
        global: Vec<(String, Vec<u8>)>,
        records: Vec<(u64, String, bool, Vec<u8>)>,
        hooks: Hooks,
        ws: TestWs,
    }

    /// A workspace that only counts, as the server's does.
    #[derive(Default)]
    struct TestWs {
        used: std::cell::Cell<usize>,
        overflowed: std::cell::Cell<bool>,
    }

    impl crate::Workspace for TestWs {
        fn alloc(&self, len: usize) -> bool {
            let fits = self.used.get() + len <= 1000;
            if fits {
                self.used.set(self.used.get() + len);
            } else {
                self.overflowed.set(true);
            }
            fits
        }
        fn free(&self) -> usize {
            1000 - self.used.get()
        }
        fn overflowed(&self) -> bool {
            self.overflowed.get()
        }
        fn mark_overflow(&self) {
            self.overflowed.set(true)
        }
        fn reserve(&self, _: Option<usize>) -> usize {
            self.free()
        }
        fn release(&self, len: usize) {
            self.used.set(self.used.get() + len)
        }
        fn snapshot(&self) -> crate::WsSnap {
            crate::WsSnap::At(self.used.get())
        }
        fn reset(&self, snap: crate::WsSnap) {
            if let crate::WsSnap::At(n) = snap {
                self.used.set(n)
            }
        }
    }

    impl Host for TestHost {
        fn task_workspace(&self) -> Option<&dyn crate::Workspace> {
            Some(&self.ws)
        }
        fn workspace(&self, which: crate::WsId) -> Option<&dyn crate::Workspace> {
            (which == crate::WsId::Client).then_some(&self.ws as &dyn crate::Workspace)
        }
        fn log_record(&mut self, vxid: u64, tag: &str, client: bool, msg: &[u8]) -> Result<(), Failure> {
            self.records.push((vxid, tag.into(), client, msg.into()));
            Ok(())
        }
        fn method(&self) -> &str {
            "vcl_init"
        }
        fn log(&mut self, _msg: &[u8]) {}
        fn log_global(&mut self, tag: &str, msg: &[u8]) {
            self.global.push((tag.into(), msg.into()));
        }
        fn vcl_name(&self) -> &str {
            "vcl7"
        }
        fn param(&self, name: &str) -> Option<String> {
            (name == "nuke_limit").then(|| "50".into())
        }
        fn object_name(&self) -> Option<&str> {
            Some("obj")
        }
        fn hook_provide(&mut self, name: &str, order: i32, f: crate::HookFn) -> Result<(), Failure> {
            self.hooks.provide(1, name, order, f).map_err(Failure)
        }
        fn hook_call(&self, name: &str, arg: &[u8]) -> Option<Vec<u8>> {
            self.hooks.call(name, arg)
        }
        fn header(&self, _: Http, _: &[u8], _: usize) -> Option<&[u8]> {
            None
        }
        fn set_header(&mut self, _: Http, _: &[u8], _: &[u8]) -> Result<(), Failure> {
            Ok(())
        }
        fn unset_header(&mut self, _: Http, _: &[u8]) -> Result<(), Failure> {
            Ok(())
        }
        fn ip(&self, _: IpKind) -> Option<SocketAddr> {
            None
        }
        fn take_priv(&mut self, _: PrivScope) -> Option<PrivSlot> {
            None
        }
        fn put_priv(&mut self, _: PrivScope, _: PrivSlot) {}
        fn shared_priv(&self, _: PrivScope) -> Option<Arc<SharedSlot>> {
            None
        }
    }

    /// What a module sees of the 1.2 services, as one string.
    fn probe(ctx: &mut Ctx<'_>, _: Target<'_>, _: &[Arg<'_>]) -> Result<Value, Failure> {
        ctx.log_global("Debug", b"from the module");
        let provided = ctx.hook_provide("twice", 0, Arc::new(|a: &[u8]| Some([a, a].concat())));
        let answer = ctx.hook_call("twice", b"ab").map(|v| String::from_utf8(v).unwrap());
        let ws = ctx.task_workspace().map(|w| (w.alloc(8), w.free()));
        let backend = ctx.workspace(crate::WsId::Backend).is_some();
        let vsl = ctx.log_record(1001, "ReqURL", true, b"/").is_ok();
        let text = format!(
            "vcl={:?} param={:?} object={:?} provided={:?} answer={answer:?} ws={ws:?} backend={backend} vsl={vsl}",
            ctx.vcl_name(),
            ctx.param("nuke_limit"),
            ctx.object_name(),
            provided.map_err(|e| e.0),
        );
        Ok(Value::Str(Some(text.into_bytes())))
    }

    static PROBE: ModuleDef = ModuleDef { name: "probe", spec: "{}", call: probe };

    /// Calls PROBE as a loaded module would be called, through the
    /// loader's table cut to `size` bytes.
    fn call_through_table(host: &mut TestHost, size: usize) -> String {
        // Any library will do to stand for the module's.
        let lib = Arc::new(unsafe { libloading::Library::new("libm.so.6") }.unwrap());
        let table = HostTable { size, ..TABLE };
        let mut bridge = Bridge { host, lib: &lib, arena: Vec::new(), taken: Vec::new(), failure: None };
        let cctx = CallCtx { host: &mut bridge as *mut Bridge as *mut c_void, table: &table };
        let mut out = abi::Value::absent();
        let null = std::ptr::null_mut();
        // SAFETY: as LoadedModule::call makes a call.
        let rc =
            unsafe { crate::ffi::enter(&PROBE, EntryKind::Function, 0, 0, &cctx, null, std::ptr::null(), 0, &mut out) };
        assert_eq!(rc, 0, "{:?}", bridge.failure);
        // SAFETY: the result points to the bridge's arena, still alive.
        match unsafe { value_from_abi(&out) } {
            Value::Str(Some(s)) => String::from_utf8(s).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_module_reaches_the_services_of_abi_1_2() {
        let mut host = TestHost::default();
        let text = call_through_table(&mut host, std::mem::size_of::<HostTable>());
        assert_eq!(
            text,
            r#"vcl="vcl7" param=Some("50") object=Some("obj") provided=Ok(()) answer=Some("abab") ws=Some((true, 992)) backend=false vsl=true"#
        );
        assert_eq!(host.records, [(1001, "ReqURL".to_string(), true, b"/".to_vec())]);
        // The answer itself was copied into the workspace.
        assert_eq!(crate::Workspace::free(&host.ws), 992 - text.len());
        assert_eq!(host.global, [("Debug".to_string(), b"from the module".to_vec())]);
        // The provider stays registered after the call, and is the module's
        // closure behind the ABI.
        assert_eq!(host.hooks.call("twice", b"x"), Some(b"xx".to_vec()));
        assert_eq!(host.hooks.remove_owner(1), 1);
    }

    #[test]
    fn a_module_in_a_host_of_abi_1_1_does_not_call_past_the_table() {
        let mut host = TestHost::default();
        let text = call_through_table(&mut host, HostTable::SIZE_1_1);
        assert_eq!(
            text,
            r#"vcl="" param=None object=None provided=Err("this Lacquer has no hooks (ABI 1.1)") answer=None ws=None backend=false vsl=false"#,
            "the defaults of a host without them"
        );
        assert!(host.global.is_empty());
        assert_eq!(host.hooks.providers("twice"), 0);
    }

    #[test]
    fn a_module_in_a_host_of_abi_1_2_has_no_workspaces() {
        let mut host = TestHost::default();
        let text = call_through_table(&mut host, HostTable::SIZE_1_2);
        assert!(text.ends_with("ws=None backend=false vsl=false"), "{text}");
        assert!(host.records.is_empty());
    }

    #[test]
    fn ws_alloc_answers_null_once_the_workspace_is_spent() {
        let mut host = TestHost::default();
        let lib = Arc::new(unsafe { libloading::Library::new("libm.so.6") }.unwrap());
        let mut bridge = Bridge { host: &mut host, lib: &lib, arena: Vec::new(), taken: Vec::new(), failure: None };
        let bp = &mut bridge as *mut Bridge as *mut c_void;
        assert!(!unsafe { cb_ws_alloc(bp, 600) }.is_null());
        assert!(unsafe { cb_ws_alloc(bp, 600) }.is_null());
        assert_eq!(unsafe { cb_ws_op(bp, abi::WsWhich::Task as u32, abi::WsOp::Overflowed as u32, 0) }, 1);
        assert_eq!(unsafe { cb_ws_op(bp, abi::WsWhich::Thread as u32, abi::WsOp::Free as u32, 0) }, -1);
    }

    #[test]
    fn a_refused_hook_is_released_once() {
        // The registry refuses an empty name: the module's provider is
        // freed at once.
        let mut host = TestHost::default();
        let lib = Arc::new(unsafe { libloading::Library::new("libm.so.6") }.unwrap());
        let mut bridge = Bridge { host: &mut host, lib: &lib, arena: Vec::new(), taken: Vec::new(), failure: None };
        let bp = &mut bridge as *mut Bridge as *mut c_void;
        static FREED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        unsafe extern "C" fn never(_: *const c_void, _: Str, _: *mut c_void, _: abi::HookPut) -> i32 {
            unreachable!()
        }
        unsafe extern "C" fn free(_: *const c_void) {
            FREED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        let hook = abi::Hook { call: never, data: std::ptr::null(), free: Some(free) };
        let s = unsafe { cb_hook_provide(bp, Str::from_bytes(b""), 0, hook) };
        assert_eq!(unsafe { s.as_bytes() }, Some(&b"a hook needs a name"[..]));
        assert_eq!(FREED.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
