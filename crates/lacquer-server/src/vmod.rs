//! The module host (Varnish's `cache_vrt_vmod.c` and the `VRT_*` calls a
//! vmod makes): which modules exist, how VCL's calls reach them, and what
//! a module may ask of the task it runs for ([`lacquer_module::Host`]).
//!
//! Built-in modules are linked in (`std`, `vtc`, `debug`); the compiler reads their specs
//! through [`Resolver`], so `import std;` type-checks exactly against the
//! code that runs. A call arrives from the interpreter as a [`CallId`]
//! with its arguments evaluated; here they become the module's [`Arg`]s
//! (an ENUM as its word, a HEADER as a reference to the header, STRANDS as
//! parts), the call is made through a [`TaskHost`] that knows which module,
//! call site and object is running, and the result comes back as a VCL
//! value.
//!
//! Private state is kept where its scope lives, and dropped (released)
//! exactly once when that scope ends: PRIV_TASK with the request or the
//! fetch, PRIV_TOP with the top request, lent to its ESI includes in turn, PRIV_SESS with the
//! connection, PRIV_CALL and PRIV_VCL with the loaded VCL.
//!
//! Objects (`new x = mod.class(…)` in `vcl_init`) are made when the server
//! starts, by running `vcl_init`; a failing `vcl_init` refuses the start.
//!
//! Named hooks between modules ([`Hooks`]) are the server's, one registry
//! for every VCL: a module provides one while a VCL loads (in `vcl_init`
//! or a VCL event), any module of any VCL calls it, and the providers a
//! VCL registered are unregistered when it is discarded — after its
//! modules are told `discard` — or dropped, whichever comes first. A
//! provider from a loaded library keeps the library mapped, and files
//! stay open while the process runs anyway.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use lacquer_defs::{Method, Var, VclType};
use lacquer_module::{
    Acl, Arg, Backend, BlobRef, Ctx, Failure as MFailure, Header, HookFn, Hooks, Host, Http, Instance, IpKind, Module,
    PrivScope, PrivSlot, Probe, Registry, SharedSlot, Strands, Target, Value as MValue, WsId,
};
use lacquer_shm::Side;
use lacquer_vcl::module::{ArgType, ResolveError};
use lacquer_vcl::program::{CallId, CallTarget, Expr};
use lacquer_vcl::{Failure, ModuleResolver, ModuleSpec, Program, Value};

use crate::msg::Msg;
use crate::vcl::Vcl;

/// The build a `source`-level module must have been built against.
const BUILD: &str = concat!("lacquer-", env!("CARGO_PKG_VERSION"));

/// The modules VCL can import: those linked into Lacquer (`import std;`)
/// and those loaded from files (`import kv from "/path/libkv.so";`), each
/// file opened once — its descriptor checked before anything else in it
/// is trusted (see `lacquer_module::loader`) — and kept open while the
/// process runs, shared by every VCL that imports it. The VCL compiler
/// reads specs from here ([`ModuleResolver`]); each loaded VCL gets a
/// [`Registry`] of exactly the modules it imports ([`Modules::registry_for`]).
#[derive(Debug)]
pub struct Modules {
    builtin: Registry,
    loaded: Mutex<Vec<(String, Module)>>,
    /// The named hooks modules provide one another, owned by VCLs.
    hooks: Arc<Hooks>,
}

impl Modules {
    /// Tells the modules that provide server event `name` (one of
    /// [`lacquer_module::server_events`]); the text is made only when one
    /// does.
    pub(crate) fn notify(&self, name: &str, arg: impl FnOnce() -> String) {
        if self.hooks.wanted(name) {
            self.hooks.notify(name, arg().as_bytes());
        }
    }
}

impl Default for Modules {
    fn default() -> Modules {
        let mut builtin = Registry::new();
        builtin.link(&lacquer_std::vmod::MODULE);
        builtin.link(&lacquer_vmod_vtc::vmod::MODULE);
        builtin.link(&lacquer_vmod_debug::vmod::MODULE);
        builtin.link(&lacquer_vmod_directors::vmod::MODULE);
        builtin.link(&lacquer_vmod_fs::vmod::MODULE);
        builtin.link(&lacquer_vmod_cookie::vmod::MODULE);
        builtin.link(&lacquer_vmod_blob::vmod::MODULE);
        builtin.link(&lacquer_vmod_handoff::vmod::MODULE);
        builtin.link(&lacquer_vmod_proxy::vmod::MODULE);
        builtin.link(&lacquer_vmod_purge::vmod::MODULE);
        builtin.link(&lacquer_vmod_unix::vmod::MODULE);
        Modules { builtin, loaded: Mutex::default(), hooks: Arc::default() }
    }
}

impl Modules {
    /// The module `import name [from "path"]` names, loading the file the
    /// first time; the error is what the compiler reports.
    fn module(&self, name: &str, path: Option<&str>) -> Result<Module, ResolveError> {
        let Some(path) = path else {
            return self.builtin.get(name).cloned().ok_or(ResolveError::NotFound);
        };
        let unusable = |reason: String| ResolveError::Unusable { file: path.to_string(), reason };
        let key = std::fs::canonicalize(path).map_err(|e| unusable(format!("cannot open: {e}")))?;
        let key = key.to_string_lossy().into_owned();
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, m)) = loaded.iter().find(|(k, _)| *k == key) {
            return Ok(m.clone());
        }
        let m = lacquer_module::loader::LoadedModule::open(std::path::Path::new(&key), BUILD)
            .map_err(|e| unusable(e.to_string()))?;
        let m = Module::Loaded(m);
        loaded.push((key, m.clone()));
        Ok(m)
    }

    /// The modules `program` imports, by the names it imports them as.
    pub(crate) fn registry_for(&self, program: &Program) -> Registry {
        let mut r = Registry::new();
        for imp in &program.imports {
            if let Ok(m) = self.module(&imp.name, imp.path.as_deref()) {
                r.add(m);
            }
        }
        r
    }
}

impl ModuleResolver for Modules {
    fn resolve(&self, name: &str, path: Option<&str>) -> Result<ModuleSpec, ResolveError> {
        let m = self.module(name, path)?;
        let file = path.unwrap_or(name).to_string();
        ModuleSpec::from_json(m.spec()).map_err(|reason| ResolveError::Unusable { file, reason })
    }
}

/// Private state keyed by scope and owner (a module for functions, an
/// object instance for methods, a call site for PRIV_CALL).
pub(crate) type PrivKey = (u8, u64);

/// A task's exclusive private state (TASK, TOP, SESS); dropping it is the
/// release.
#[derive(Default)]
pub(crate) struct Privs(HashMap<PrivKey, PrivSlot>);

impl Privs {
    /// Takes the PRIV_TOP state out, for an ESI include to use while it
    /// runs (PRIV_TASK and PRIV_TOP live in the same map).
    pub fn take_top(&mut self) -> Privs {
        let top = scope_code(PrivScope::Top);
        let keys: Vec<PrivKey> = self.0.keys().filter(|k| k.0 == top).copied().collect();
        Privs(keys.into_iter().filter_map(|k| self.0.remove_entry(&k)).collect())
    }

    /// Puts back what [`Privs::take_top`] took.
    pub fn put_back(&mut self, other: Privs) {
        self.0.extend(other.0);
    }
}

/// The host's side of modules for one loaded VCL.
pub(crate) struct Vmods {
    /// The modules the VCL imports.
    pub registry: Registry,
    /// The objects made in `vcl_init`, by instance index.
    pub instances: Vec<OnceLock<Instance>>,
    /// PRIV_CALL and PRIV_VCL.
    shared: Mutex<HashMap<PrivKey, Arc<SharedSlot>>>,
    /// The server's hooks, and this VCL's name for the providers it
    /// registers there (unique in the process, unlike VCL names).
    hooks: Arc<Hooks>,
    hook_owner: u64,
}

impl Vmods {
    pub fn new(modules: &Modules, program: &Program) -> Vmods {
        static OWNERS: AtomicU64 = AtomicU64::new(1);
        Vmods {
            registry: modules.registry_for(program),
            instances: program.instances.iter().map(|_| OnceLock::new()).collect(),
            shared: Mutex::new(HashMap::new()),
            hooks: modules.hooks.clone(),
            hook_owner: OWNERS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Unregisters the hook providers the VCL registered.
    /// `lacquer.reload`: VCL `active` is now the one new requests get
    /// (the registry is the server's; any VCL's handle on it will do).
    pub(crate) fn notify_reload(&self, active: &str) {
        let name = lacquer_module::server_events::RELOAD;
        if self.hooks.wanted(name) {
            self.hooks.notify(name, active.as_bytes());
        }
    }

    fn drop_hooks(&self) {
        self.hooks.remove_owner(self.hook_owner);
    }
}

impl Drop for Vmods {
    fn drop(&mut self) {
        self.drop_hooks();
    }
}

/// The records module calls logged (`VCL_Log`, workspace `Debug`, a
/// refused ban's `VCL_Error` …), with their tags, for the caller to write
/// to the task's log.
pub(crate) type ModLogs = Vec<(lacquer_defs::Tag, Vec<u8>)>;

/// A task as a module call sees it: lent mutably for a call made as a
/// statement, shared for one inside an expression (which then cannot
/// change headers).
pub(crate) enum Lent<'a, T> {
    Shared(&'a T),
    Mut(&'a mut T),
}

impl<T> Lent<'_, T> {
    fn get(&self) -> &T {
        match self {
            Lent::Shared(t) => t,
            Lent::Mut(t) => t,
        }
    }

    fn get_mut(&mut self) -> Option<&mut T> {
        match self {
            Lent::Shared(_) => None,
            Lent::Mut(t) => Some(t),
        }
    }
}

/// What part of a task a module call may reach.
pub(crate) enum Task<'a> {
    Req(Lent<'a, crate::req_fsm::Req>),
    Bo(Lent<'a, crate::fetch::Bo>),
    /// `vcl_init`: no request at all, only the task's own private state.
    Init(&'a std::cell::RefCell<Privs>),
}

/// A [`Host`] for one call: the task, and who is calling.
pub(crate) struct TaskHost<'a> {
    task: Task<'a>,
    method: Method,
    shared: &'a crate::Shared,
    vcl: &'a Vcl,
    /// The owner of TASK/TOP/SESS/VCL state: the module, or the object.
    owner: u64,
    call: CallId,
    /// The VCL name of the object whose constructor or method runs.
    object_name: Option<&'a str>,
    /// Records (`VCL_Log` lines and others), written to the task's log
    /// after the call.
    pub logs: ModLogs,
}

fn scope_code(s: PrivScope) -> u8 {
    s as u8
}

impl TaskHost<'_> {
    /// The import the running call belongs to: the owner itself for a
    /// function, the object's module for a constructor or method.
    fn module_import(&self) -> u64 {
        if self.owner >> 32 == 1 {
            let instance = (self.owner & 0xffff_ffff) as usize;
            self.vcl.program.instances.get(instance).map_or(self.owner, |i| u64::from(i.module))
        } else {
            self.owner
        }
    }

    /// The task's exclusive private state of `scope`, if the task has it.
    fn privs(&self, scope: PrivScope) -> Option<&std::cell::RefCell<Privs>> {
        match (&self.task, scope) {
            (Task::Req(r), PrivScope::Task | PrivScope::Top) => Some(&r.get().privs),
            (Task::Req(r), PrivScope::Sess) => Some(&r.get().sess_privs),
            (Task::Bo(b), PrivScope::Task) => Some(&b.get().privs),
            (Task::Init(p), PrivScope::Task) => Some(p),
            _ => None,
        }
    }

    fn msg(&self, which: Http) -> Option<&Msg> {
        match (&self.task, which) {
            (Task::Req(r), Http::Req) => Some(&r.get().req),
            (Task::Req(r), Http::Resp) => r.get().resp.as_ref(),
            (Task::Req(r), Http::Bereq) => r.get().bereq.as_ref(),
            (Task::Req(r), Http::Obj) => r.get().obj.as_ref().map(|(_, o)| &o.head),
            (Task::Bo(b), Http::Bereq) => Some(&b.get().bereq),
            (Task::Bo(b), Http::Beresp) => b.get().beresp.as_ref(),
            _ => None,
        }
    }

    /// A message to change, with the task's log, workspace and the tags
    /// its headers are logged under.
    fn msg_logged(
        &mut self,
        which: Http,
    ) -> Result<(&mut Msg, &mut crate::vsl::Vsl, &crate::ws::Ws, crate::vsl::HeadTags), MFailure> {
        use crate::vsl::{BEREQ, BERESP, REQ, RESP};
        let m = match (&mut self.task, which) {
            (Task::Req(Lent::Mut(r)), Http::Req) => Some((&mut r.req, &mut r.vsl, &r.ws, REQ)),
            (Task::Req(Lent::Mut(r)), Http::Resp) => r.resp.as_mut().map(|m| (m, &mut r.vsl, &r.ws, RESP)),
            (Task::Req(Lent::Mut(r)), Http::Bereq) => r.bereq.as_mut().map(|m| (m, &mut r.vsl, &r.ws, BEREQ)),
            (Task::Bo(Lent::Mut(b)), Http::Bereq) => Some((&mut b.bereq, &mut b.vsl, &b.ws, BEREQ)),
            (Task::Bo(Lent::Mut(b)), Http::Beresp) => b.beresp.as_mut().map(|m| (m, &mut b.vsl, &b.ws, BERESP)),
            _ => None,
        };
        m.ok_or_else(|| MFailure(format!("{which:?} cannot be changed here")))
    }
}

impl TaskHost<'_> {
    /// The client connection's ends, in a request or a fetch (a fetch
    /// carries its request's).
    fn endpoints(&self) -> Option<&crate::ctx::Endpoints> {
        match &self.task {
            Task::Req(r) => Some(&r.get().ep),
            Task::Bo(b) => Some(&b.get().ep),
            Task::Init(_) => None,
        }
    }

    /// The task's workspace `id`, if it has one.
    fn ws(&self, id: WsId) -> Option<&crate::ws::Ws> {
        match (&self.task, id) {
            (Task::Req(r), WsId::Client) => Some(&r.get().ws),
            (Task::Req(r), WsId::Session) => Some(&r.get().sess_ws),
            (Task::Req(r), WsId::Thread) => Some(&r.get().thr_ws),
            (Task::Bo(b), WsId::Backend) => Some(&b.get().ws),
            (Task::Bo(b), WsId::Thread) => Some(&b.get().thr_ws),
            _ => None,
        }
    }

    /// The workspace of the task itself: the client's or the backend's.
    fn task_ws(&self) -> Option<&crate::ws::Ws> {
        match &self.task {
            Task::Req(r) => Some(&r.get().ws),
            Task::Bo(b) => Some(&b.get().ws),
            Task::Init(_) => None,
        }
    }

    /// The request, for what only a statement in `vcl_recv` may do with
    /// it: take its connection, end it.
    fn recv_req(&mut self) -> Result<&mut crate::req_fsm::Req, MFailure> {
        if self.method != Method::Recv {
            return Err(MFailure(format!("not in {} (only in vcl_recv)", self.method.as_str())));
        }
        match &mut self.task {
            Task::Req(Lent::Mut(r)) => Ok(r),
            _ => Err(MFailure("only a call made as a statement can take the request's connection".into())),
        }
    }

    /// Puts what an object's constructor made for VCL into the object's
    /// slot; its BACKEND is the slot's id (see `director.rs`).
    fn add_mod_backend(
        &mut self,
        make: impl FnOnce(String) -> crate::director::ModBackend,
    ) -> Result<Backend, MFailure> {
        let (Some(name), true) = (self.object_name, self.owner >> 32 == 1) else {
            return Err(MFailure("only an object's constructor can make a backend or director".into()));
        };
        let instance = (self.owner & 0xffff_ffff) as usize;
        let slot = self.vcl.mod_backends.get(instance).ok_or_else(|| MFailure("no such object".into()))?;
        slot.set(make(name.to_string())).map_err(|_| MFailure(format!("{name} has made its backend already")))?;
        Ok(Backend(Some((self.vcl.backends.len() + instance) as u64)))
    }
}

impl Host for TaskHost<'_> {
    fn method(&self) -> &str {
        self.method.as_str()
    }

    fn log(&mut self, msg: &[u8]) {
        self.logs.push((lacquer_defs::Tag::VCL_Log, msg.to_vec()));
    }

    fn log_tag(&mut self, tag: &str, msg: &[u8]) {
        if let Some(tag) = lacquer_defs::Tag::from_name(tag) {
            self.logs.push((tag, msg.to_vec()));
        }
    }

    fn task_id(&self) -> Option<u64> {
        match &self.task {
            Task::Req(r) => Some(r.get().vxid),
            Task::Bo(b) => Some(b.get().vxid),
            Task::Init(_) => None,
        }
    }

    fn digest(&self) -> Option<[u8; 32]> {
        let hash = match &self.task {
            Task::Req(r) => &r.get().hash,
            Task::Bo(b) => &b.get().hash,
            Task::Init(_) => return None,
        };
        Some(lacquer_cli::sha256(hash))
    }

    fn url(&self, which: Http) -> Option<&[u8]> {
        let m = self.msg(which)?;
        Some(m.head.url(&m.buf))
    }

    fn new_backend(&mut self, spec: &lacquer_module::BackendSpec) -> Result<Backend, MFailure> {
        let name = self.object_name.ok_or_else(|| MFailure("only an object can make a backend".into()))?;
        let mut def = lacquer_vcl::program::BackendDef { name: name.to_string(), ..Default::default() };
        match (&spec.path, &spec.host) {
            (Some(path), _) => def.path = Some(path.clone()),
            (None, Some(host)) => {
                let port = spec.port.as_deref().unwrap_or("80");
                let n: u16 = port.parse().map_err(|_| MFailure(format!("{name}: invalid port '{port}'")))?;
                let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), n))
                    .map_err(|e| MFailure(format!("{name}: cannot resolve '{host}': {e}")))?
                    .collect();
                def.host = Some(host.clone());
                def.port = Some(port.to_string());
                def.addrs = addrs;
            }
            (None, None) => return Err(MFailure(format!("{name}: a backend needs a host or a path"))),
        }
        if let Some(p) = spec.probe.0 {
            let p = u32::try_from(p).ok().filter(|&p| (p as usize) < self.vcl.program.probes.len());
            def.probe = Some(p.ok_or_else(|| MFailure(format!("{name}: no such probe")))?);
        }
        let be = Arc::new(crate::vbe::Backend::new(def));
        let i = self.vcl.dynamic.add(be.clone()).ok_or_else(|| {
            MFailure(format!("{name}: too many backends made at run time (at most {})", crate::director::MAX_DYNAMIC))
        })?;
        self.vcl.probe_dynamic(&be);
        Ok(Backend(Some((self.vcl.dynamic_base() + i) as u64)))
    }

    fn delete_backend(&mut self, be: Backend) {
        let base = self.vcl.dynamic_base() as u64;
        if let Some(i) = be.0.and_then(|id| id.checked_sub(base)) {
            self.vcl.dynamic.delete(i as usize);
        }
    }

    fn lookup_backend(&self, name: &str) -> Option<Backend> {
        if let Some(i) = self.vcl.backends.iter().position(|b| b.def.name == name) {
            return Some(Backend(Some(i as u64)));
        }
        let n = self.vcl.backends.len();
        let found = self.vcl.mod_backends.iter().enumerate().find(|(_, slot)| {
            slot.get().is_some_and(|d| {
                crate::director::Director::name(match d {
                    crate::director::ModBackend::Director(d) => d as &dyn crate::director::Director,
                    crate::director::ModBackend::Native(b) => &**b as &dyn crate::director::Director,
                }) == name
            })
        });
        found.map(|(i, _)| Backend(Some((n + i) as u64)))
    }

    fn backend_name(&self, be: Backend) -> Option<String> {
        let id = u32::try_from(be.0?).ok()?;
        self.vcl.director(id).map(|d| d.name().to_string())
    }

    fn vcl_name(&self) -> &str {
        &self.vcl.name
    }

    fn hook_provide(&mut self, name: &str, order: i32, f: HookFn) -> Result<(), MFailure> {
        // While the VCL loads (vcl_init, its events), never from a task
        // or once it is being discarded.
        if !matches!(self.task, Task::Init(_)) || self.method != Method::Init {
            return Err(MFailure(format!("hooks cannot be provided in {}", self.method.as_str())));
        }
        self.vcl.vmods.hooks.provide(self.vcl.vmods.hook_owner, name, order, f).map_err(MFailure)
    }

    fn hook_call(&self, name: &str, arg: &[u8]) -> Option<Vec<u8>> {
        self.vcl.vmods.hooks.call(name, arg)
    }

    fn add_director(&mut self, d: Arc<dyn lacquer_module::Director>) -> Result<Backend, MFailure> {
        self.add_mod_backend(|name| crate::director::ModBackend::Director(crate::director::ModDirector { name, d }))
    }

    fn add_backend(&mut self, b: Arc<dyn lacquer_module::NativeBackend>) -> Result<Backend, MFailure> {
        self.add_mod_backend(|name| {
            crate::director::ModBackend::Native(Box::new(crate::vbe::Backend::native(&name, b)))
        })
    }

    fn counters(
        &mut self,
        group: &str,
        ident: &str,
        defs: &'static [lacquer_module::CounterDef],
    ) -> Result<Box<dyn lacquer_module::Counters>, MFailure> {
        use lacquer_defs::counters::{CounterDef, Kind, Level, Unit};
        let rows: Vec<CounterDef> = defs
            .iter()
            .map(|d| CounterDef {
                name: d.name,
                kind: if d.gauge { Kind::Gauge } else { Kind::Counter },
                level: Level::Info,
                unit: Unit::Count,
                doc: d.doc,
            })
            .collect();
        let seg = self.shared.vsc.segment(group, ident, &rows).map_err(|e| MFailure(e.to_string()))?;
        Ok(Box::new(ModCounters { seg, gauge: defs.iter().map(|d| d.gauge).collect() }))
    }

    fn param(&self, name: &str) -> Option<String> {
        self.shared.params.get().show(name)
    }

    fn log_global(&mut self, tag: &str, msg: &[u8]) {
        if let Some(tag) = lacquer_defs::Tag::from_name(tag) {
            crate::vsl::global(&self.shared.log, tag, msg);
        }
    }

    /// `std.rollback`: the message back to what it was before VCL, the
    /// task's workspace back to where it was then (an overflow counted
    /// and cleared) and its PRIV_TASK state released, as Varnish's
    /// `Req_Rollback` and `Bereq_Rollback` do.
    fn rollback(&mut self, which: Http) -> Result<(), MFailure> {
        let stats = &self.shared.stats;
        match (&mut self.task, which) {
            (Task::Req(_), Http::Req) if self.method == Method::Pipe => {
                Err(MFailure("Cannot rollback in vcl_pipe {}".into()))
            }
            (Task::Req(Lent::Mut(r)), Http::Req) => {
                let req0 = r.req0.clone().ok_or_else(|| MFailure("the request as received was not kept".into()))?;
                r.req = req0;
                if r.ws.rollback(r.ws_req) {
                    stats.ws_client_overflow.inc();
                }
                drop(std::mem::take(&mut *r.privs.borrow_mut()));
                Ok(())
            }
            (Task::Bo(Lent::Mut(b)), Http::Bereq) => {
                let bereq0 = b.bereq0.clone().ok_or_else(|| MFailure("the backend request was not kept".into()))?;
                b.bereq = bereq0;
                if self.method == Method::BackendResponse {
                    b.drop_conn(self.shared);
                }
                if b.ws.rollback(b.ws_bo) {
                    stats.ws_backend_overflow.inc();
                }
                drop(std::mem::take(&mut *b.privs.borrow_mut()));
                Ok(())
            }
            _ => Err(MFailure(format!("{which:?} cannot be rolled back here"))),
        }
    }

    fn workspace(&self, which: WsId) -> Option<&dyn lacquer_module::Workspace> {
        self.ws(which).map(|w| w as &dyn lacquer_module::Workspace)
    }

    fn task_workspace(&self) -> Option<&dyn lacquer_module::Workspace> {
        self.task_ws().map(|w| w as &dyn lacquer_module::Workspace)
    }

    fn log_record(&mut self, vxid: u64, tag: &str, client: bool, msg: &[u8]) -> Result<(), MFailure> {
        let tag = lacquer_defs::Tag::from_name(tag).ok_or_else(|| MFailure(format!("unknown log tag {tag}")))?;
        crate::vsl::record(&self.shared.log, vxid, if client { Side::Client } else { Side::Backend }, tag, msg);
        Ok(())
    }

    fn header(&self, which: Http, name: &[u8], nth: usize) -> Option<&[u8]> {
        let m = self.msg(which)?;
        let (head, buf) = (&m.head, &m.buf[..]);
        head.headers(buf).filter(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v).nth(nth)
    }

    /// As `set` in VCL: the header built in the workspace (lost, and the
    /// workspace overflowed, when it does not fit), what goes and what
    /// comes logged.
    fn set_header(&mut self, which: Http, name: &[u8], value: &[u8]) -> Result<(), MFailure> {
        let (m, vsl, ws, tags) = self.msg_logged(which)?;
        if !lacquer_module::Workspace::alloc(ws, crate::ws::header_size(name.len(), value.len())) {
            vsl.text(lacquer_shm::Tag::LostHeader, &[name, b":"].concat());
            return Ok(());
        }
        for old in m.head.header_all(&m.buf, name) {
            vsl.header(tags.unset, name, old);
        }
        m.set(name, value);
        vsl.header(tags.header, name, value);
        Ok(())
    }

    fn unset_header(&mut self, which: Http, name: &[u8]) -> Result<(), MFailure> {
        let (m, vsl, _, tags) = self.msg_logged(which)?;
        for old in m.head.header_all(&m.buf, name) {
            vsl.header(tags.unset, name, old);
        }
        m.unset(name);
        Ok(())
    }

    fn ip(&self, kind: IpKind) -> Option<SocketAddr> {
        let ep = self.endpoints()?;
        Some(match kind {
            IpKind::Client => ep.client,
            IpKind::Remote => ep.remote,
            IpKind::Server => ep.server,
            IpKind::Local => ep.local,
        })
    }

    fn take_priv(&mut self, scope: PrivScope) -> Option<PrivSlot> {
        let key = (scope_code(scope), self.owner);
        let privs = self.privs(scope)?;
        let slot = privs.borrow_mut().0.remove(&key).unwrap_or(None);
        Some(slot)
    }

    fn put_priv(&mut self, scope: PrivScope, slot: PrivSlot) {
        let key = (scope_code(scope), self.owner);
        if let Some(privs) = self.privs(scope) {
            privs.borrow_mut().0.insert(key, slot);
        }
    }

    fn shared_priv(&self, scope: PrivScope) -> Option<Arc<SharedSlot>> {
        let key = match scope {
            PrivScope::Call => (scope_code(scope), u64::from(self.call)),
            // One per module per VCL, as Varnish's: an object's methods
            // share it with the module's functions (and request_raw).
            PrivScope::Vcl => (scope_code(scope), self.module_import()),
            _ => return None,
        };
        let mut shared = self.vcl.vmods.shared.lock().unwrap_or_else(|e| e.into_inner());
        Some(shared.entry(key).or_default().clone())
    }

    fn backend_changed(&self, be: Backend) -> Option<f64> {
        let id = u32::try_from(be.0?).ok()?;
        let b = self.vcl.backends.get(id as usize).or_else(|| self.vcl.dynamic_backend(id));
        b.map(|b| b.changed())
    }

    fn testable_random(&self) -> Option<f64> {
        Some(lacquer_module::rand::fine_unit())
    }

    fn backend_healthy(&self, be: Backend) -> Option<bool> {
        let id = u32::try_from(be.0?).ok()?;
        self.vcl.director(id).map(|d| d.healthy(self.vcl))
    }

    fn acl_match(&self, acl: Acl, ip: SocketAddr) -> Option<bool> {
        let acl = self.vcl.program.acls.get(acl.0? as usize)?;
        Some(acl.acl.matches(ip.ip()))
    }

    fn timestamp(&mut self, label: &[u8]) {
        let now = crate::msg::now();
        let label = String::from_utf8_lossy(label).into_owned();
        match &mut self.task {
            Task::Req(r) => {
                if let Some(r) = r.get_mut() {
                    r.vsl.timestamp(&label, now);
                }
            }
            Task::Bo(b) => {
                if let Some(b) = b.get_mut() {
                    b.vsl.timestamp(&label, now);
                }
            }
            Task::Init(_) => {}
        }
    }

    fn object_name(&self) -> Option<&str> {
        self.object_name
    }

    fn blocking(&mut self, f: &mut dyn FnMut()) {
        // A worker of the multi-threaded runtime hands its other tasks
        // over before blocking; anywhere else the thread is ours.
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
            _ => f(),
        }
    }

    fn proxy_tlvs(&self) -> Option<Vec<u8>> {
        self.endpoints()?.proxy_tlvs.as_deref().map(<[u8]>::to_vec)
    }

    fn peer_cred(&self) -> Result<(u32, u32), lacquer_module::PeerCredError> {
        self.endpoints().map_or(Err(lacquer_module::PeerCredError::NotUnix), |ep| ep.peer_cred)
    }

    fn purge(&mut self, ttl: Option<f64>, grace: Option<f64>, keep: Option<f64>) -> Result<i64, MFailure> {
        let (Task::Req(r), Method::Hit | Method::Miss) = (&self.task, self.method) else {
            return Err(MFailure("purge can only happen in vcl_hit{} or vcl_miss{}".into()));
        };
        let r = r.get();
        Ok(self.shared.cache.soft_purge(&r.hash, r.t_req, ttl, grace, keep) as i64)
    }

    fn vcl_syntax(&self) -> Option<u32> {
        Some(u32::from(self.vcl.program.syntax))
    }

    fn vcl_ref(&mut self, desc: &str) -> Result<lacquer_module::VclRef, MFailure> {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let refs = self.vcl.refs.clone();
        refs.lock().unwrap_or_else(|e| e.into_inner()).push((id, desc.to_string()));
        Ok(lacquer_module::VclRef::new(move || {
            refs.lock().unwrap_or_else(|e| e.into_inner()).retain(|(i, _)| *i != id);
        }))
    }

    fn set_ip_tos(&mut self, tos: i64) -> Result<(), MFailure> {
        let fd = match &self.task {
            Task::Req(Lent::Mut(r)) => r.conn.fd(),
            Task::Req(Lent::Shared(r)) => r.conn.fd(),
            _ => return Err(MFailure("set_ip_tos is only for the client side".into())),
        };
        let tos = i32::try_from(tos).map_err(|_| MFailure(format!("set_ip_tos: {tos} is not a TOS value")))?;
        set_tos(fd, tos).map_err(|e| MFailure(format!("set_ip_tos: {e}")))
    }

    fn connection(&mut self) -> Result<lacquer_module::Connection, MFailure> {
        let req = self.recv_req()?;
        crate::handoff::connection(req)
    }

    fn end_request(&mut self, end: lacquer_module::RequestEnd) -> Result<(), MFailure> {
        let req = self.recv_req()?;
        crate::handoff::end_request(req, end)
    }

    /// `std.ban()`: as VCL's `ban()`, a refused ban is also logged.
    fn ban(&mut self, expr: Option<&[u8]>) -> Result<(), String> {
        match crate::ban::parse_vcl(expr) {
            Ok(spec) => {
                let t = crate::msg::now();
                self.shared.cache.ban(t, spec.into_ban(t));
                Ok(())
            }
            Err(e) => {
                self.logs.push((lacquer_defs::Tag::VCL_Error, format!("ban(): {e}").into_bytes()));
                Err(e)
            }
        }
    }
}

/// Sets the IP type-of-service byte of a client socket (`IP_TOS`, or
/// `IPV6_TCLASS` for IPv6); a Unix socket has none, and is left alone as
/// varnishd leaves it.
fn set_tos(fd: std::os::fd::RawFd, tos: i32) -> std::io::Result<()> {
    // SAFETY: plain system calls on a descriptor the session owns, with
    // buffers sized for what they write.
    unsafe {
        let mut addr: libc::sockaddr_storage = std::mem::zeroed();
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        if libc::getsockname(fd, (&mut addr as *mut libc::sockaddr_storage).cast(), &mut len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let (level, opt) = match i32::from(addr.ss_family) {
            libc::AF_INET => (libc::IPPROTO_IP, libc::IP_TOS),
            libc::AF_INET6 => (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
            _ => return Ok(()),
        };
        let v = (&tos as *const i32).cast();
        if libc::setsockopt(fd, level, opt, v, std::mem::size_of::<i32>() as libc::socklen_t) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A module's counters: its segment of the counters file, gone when dropped.
struct ModCounters {
    seg: lacquer_shm::vsc::Segment,
    gauge: Vec<bool>,
}

impl lacquer_module::Counters for ModCounters {
    fn add(&self, i: usize, n: u64) {
        match self.gauge.get(i) {
            Some(true) => self.seg.gauge(i).add(n),
            Some(false) => self.seg.counter(i).add(n),
            None => {}
        }
    }

    fn set(&self, i: usize, v: u64) {
        match self.gauge.get(i) {
            Some(true) => self.seg.gauge(i).set(v),
            Some(false) => self.seg.counter(i).set(v),
            None => {}
        }
    }

    fn get(&self, i: usize) -> u64 {
        match self.gauge.get(i) {
            Some(true) => self.seg.gauge(i).get(),
            Some(false) => self.seg.counter(i).get(),
            None => 0,
        }
    }
}

/// Makes a module call for a task: converts the arguments, runs the call
/// with a [`TaskHost`], logs what the module logged, converts the result.
pub(crate) fn call(
    shared: &crate::Shared,
    vcl: &Vcl,
    task: Task<'_>,
    method: Method,
    id: CallId,
    args: &[Option<Value<'_>>],
) -> Result<(Value<'static>, ModLogs), Failure> {
    let program = &vcl.program;
    let site = &program.calls[id as usize];
    let (import, target_obj) = match site.target {
        CallTarget::Function { module, func } => (module, (None, func)),
        CallTarget::Constructor { instance } => {
            let inst = &program.instances[instance as usize];
            (inst.module, (Some((instance, None)), inst.object))
        }
        CallTarget::Method { instance, method } => {
            let inst = &program.instances[instance as usize];
            (inst.module, (Some((instance, Some(method))), inst.object))
        }
    };
    let imp = &program.imports[import as usize];
    let module: &Module =
        vcl.vmods.registry.get(&imp.name).ok_or_else(|| Failure(format!("module {} is not loaded", imp.name)))?;
    let spec = imp.spec.as_ref().ok_or_else(|| Failure(format!("module {} has no interface", imp.name)))?;
    let fspec = match target_obj {
        (None, f) => spec.functions.get(f as usize),
        (Some((_, None)), o) => spec.objects.get(o as usize).map(|o| &o.ctor),
        (Some((_, Some(m))), o) => spec.objects.get(o as usize).and_then(|o| o.methods.get(m as usize)),
    }
    .ok_or_else(|| Failure("call to an unknown module function".into()))?;

    // Backing storage for arguments that are slices of slices.
    let strands: Vec<Vec<Option<&[u8]>>> = args
        .iter()
        .map(|a| match a {
            Some(Value::Str(s)) => vec![s.as_deref()],
            Some(Value::Strands(parts)) => parts.iter().map(|s| s.as_deref()).collect(),
            _ => Vec::new(),
        })
        .collect();
    let mut margs = Vec::with_capacity(args.len());
    for (i, (a, aspec)) in args.iter().zip(&fspec.args).enumerate() {
        let expr = site.args.get(i).and_then(Option::as_ref);
        margs.push(to_arg(program, a.as_ref(), &aspec.ty, expr, &strands[i]));
    }
    let owner = match target_obj.0 {
        Some((instance, _)) => (1 << 32) | u64::from(instance),
        None => u64::from(import),
    };
    let object_name = target_obj.0.map(|(instance, _)| program.instances[instance as usize].name.as_str());
    let mut host = TaskHost { task, method, shared, vcl, owner, call: id, object_name, logs: Vec::new() };
    let result = {
        let mut ctx = Ctx::new(&mut host);
        match target_obj {
            (None, f) => module.call(&mut ctx, Target::Function(f), &margs),
            (Some((instance, None)), o) => match module.call(&mut ctx, Target::Constructor(o), &margs) {
                Ok(MValue::Object(obj)) => {
                    let _ = vcl.vmods.instances[instance as usize].set(obj);
                    Ok(MValue::Void)
                }
                other => other,
            },
            (Some((instance, Some(m))), o) => match vcl.vmods.instances[instance as usize].get() {
                Some(this) => module.call(&mut ctx, Target::Method { object: o, method: m, this }, &margs),
                None => Err(MFailure("the object was never made (vcl_init failed?)".into())),
            },
        }
    };
    // What the workspaces traced (`debug=+workspace`) goes to the log
    // with what the module logged.
    for id in [WsId::Client, WsId::Backend, WsId::Session, WsId::Thread] {
        if let Some(ws) = host.ws(id) {
            let trace = ws.take_trace();
            host.logs.extend(trace.into_iter().map(|t| (lacquer_shm::Tag::Debug, t.into_bytes())));
        }
    }
    // A string a linked module returns is kept in the task's workspace
    // (a loaded module's was charged when it copied it there).
    if let (Ok(v), Some(ws), Module::Linked(_)) = (&result, host.task_ws(), module) {
        match v {
            MValue::Str(Some(s)) => ws.alloc_str(s.len()),
            MValue::Blob(Some(b)) if !b.is_empty() => {
                lacquer_module::Workspace::alloc(ws, crate::ws::blob_size(b.len()))
            }
            _ => true,
        };
    }
    let logs = std::mem::take(&mut host.logs);
    match result {
        Ok(v) => Ok((from_value(v), logs)),
        Err(e) => Err(Failure(e.0)),
    }
}

/// The task a director is resolved for.
pub(crate) enum TaskRef<'a> {
    Req(&'a crate::req_fsm::Req),
    Bo(&'a crate::fetch::Bo),
}

/// Resolves the director `id` to a backend for a task (Varnish's
/// `VDI_Resolve`): each module director on the way is asked through
/// [`lacquer_module::Director::resolve_task`] with a [`TaskHost`] made as
/// for a call of its object, so that it sees the task (its hash, its URL)
/// and its object's PRIV_TASK there. Returns what the directors logged.
pub(crate) fn resolve<'v>(
    shared: &crate::Shared,
    vcl: &'v Vcl,
    task: TaskRef<'_>,
    method: Method,
    id: lacquer_vcl::program::BackendId,
) -> (Option<&'v crate::vbe::Backend>, ModLogs) {
    let mut logs = Vec::new();
    let be = vcl.resolve_with(id, &mut |instance, d| {
        let task = match task {
            TaskRef::Req(r) => Task::Req(Lent::Shared(r)),
            TaskRef::Bo(b) => Task::Bo(Lent::Shared(b)),
        };
        let object_name = vcl.program.instances.get(instance).map(|i| i.name.as_str());
        let owner = (1 << 32) | instance as u64;
        let mut host = TaskHost { task, method, shared, vcl, owner, call: 0, object_name, logs: Vec::new() };
        let picked = d.resolve_task(&mut Ctx::new(&mut host));
        logs.append(&mut host.logs);
        picked
    });
    (be, logs)
}

/// One VCL value as the module's argument of type `ty`; `expr` is the
/// argument as written, for the types VCL evaluates to something else (a
/// HEADER argument evaluates to the header's value; the module wants the
/// header).
fn to_arg<'a>(
    program: &'a Program,
    v: Option<&'a Value<'a>>,
    ty: &ArgType,
    expr: Option<&'a Expr>,
    strands: &'a [Option<&'a [u8]>],
) -> Arg<'a> {
    let Some(v) = v else { return Arg::Absent };
    match ty {
        ArgType::Enum(_) => match v {
            Value::Str(Some(s)) => Arg::Enum(std::str::from_utf8(s).unwrap_or("")),
            _ => Arg::Absent,
        },
        // The pattern's text; the compiler has checked it.
        ArgType::Regex => match v {
            Value::Str(s) => Arg::Str(s.as_deref()),
            _ => Arg::Absent,
        },
        ArgType::Value(t) => match (t, v) {
            (VclType::Header, _) => match expr {
                Some(Expr::Header(fam, h)) => {
                    let which = match fam {
                        Var::RespHttp => Http::Resp,
                        Var::BereqHttp => Http::Bereq,
                        Var::BerespHttp => Http::Beresp,
                        Var::ObjHttp => Http::Obj,
                        _ => Http::Req,
                    };
                    Arg::Header(Header { which, name: program.headers[*h as usize].lower.as_bytes() })
                }
                _ => Arg::Absent,
            },
            (VclType::Http, _) => match expr {
                Some(Expr::Var(Var::Req, _)) => Arg::Http(Http::Req),
                Some(Expr::Var(Var::Resp, _)) => Arg::Http(Http::Resp),
                Some(Expr::Var(Var::Bereq, _)) => Arg::Http(Http::Bereq),
                Some(Expr::Var(Var::Beresp, _)) => Arg::Http(Http::Beresp),
                _ => Arg::Absent,
            },
            (VclType::Strands, _) => Arg::Strands(Strands(strands)),
            (VclType::Acl, _) => match expr {
                Some(Expr::Acl(id)) => Arg::Acl(Acl(Some(u64::from(*id)))),
                // A module's ACL result (`debug.acl(a)`), or NULL.
                _ => match v {
                    Value::Acl(a) => Arg::Acl(Acl(a.map(u64::from))),
                    _ => Arg::Absent,
                },
            },
            (VclType::Probe, _) => match expr {
                Some(Expr::Probe(id)) => Arg::Probe(Probe(Some(u64::from(*id)))),
                _ => Arg::Probe(Probe(None)),
            },
            (VclType::Blob, Value::Str(s)) => Arg::Blob(BlobRef(s.as_deref())),
            (_, Value::Str(s)) => Arg::Str(s.as_deref()),
            (_, Value::Int(i)) => Arg::Int(*i),
            (VclType::Real, Value::Real(r)) => Arg::Real(*r),
            (_, Value::Real(r)) => Arg::Real(*r),
            (_, Value::Duration(d)) => Arg::Duration(*d),
            (_, Value::Time(t)) => Arg::Time(*t),
            (_, Value::Bytes(b)) => Arg::Bytes(*b),
            (_, Value::Bool(b)) => Arg::Bool(*b),
            (_, Value::Ip(ip)) => Arg::Ip(*ip),
            // A `backend x none;` is NULL to modules, as to varnishd's.
            (_, Value::Backend(b)) => {
                let none = |id: &u32| program.backends.get(*id as usize).is_some_and(|d| d.none);
                Arg::Backend(Backend(b.filter(|id| !none(id)).map(u64::from)))
            }
            (_, Value::Opaque | Value::Strands(_) | Value::Acl(_)) => Arg::Absent,
        },
        _ => Arg::Absent,
    }
}

/// A module's result as a VCL value.
fn from_value(v: MValue) -> Value<'static> {
    match v {
        MValue::Void | MValue::Object(_) | MValue::Probe(_) | MValue::Sub(_) => Value::Opaque,
        MValue::Acl(a) => Value::Acl(a.0.map(|id| id as u32)),
        MValue::Int(i) => Value::Int(i),
        MValue::Real(r) => Value::Real(r),
        MValue::Duration(d) => Value::Duration(d),
        MValue::Time(t) => Value::Time(t),
        MValue::Bytes(b) => Value::Bytes(b),
        MValue::Bool(b) => Value::Bool(b),
        MValue::Str(s) => Value::Str(s.map(Cow::Owned)),
        MValue::Ip(ip) => Value::Ip(ip),
        MValue::Backend(b) => Value::Backend(b.0.map(|id| id as u32)),
        MValue::Blob(b) => Value::Str(b.map(Cow::Owned)),
        MValue::Strands(parts) => Value::Strands(parts.into_iter().map(|p| p.map(Cow::Owned)).collect()),
        // A STEVEDORE is its VCL name, as `storage.NAME` evaluates.
        MValue::Stevedore(name) => Value::Str(name.map(|n| Cow::Owned(format!("storage.{n}").into_bytes()))),
    }
}

/// Runs `vcl_init`, making the VCL's objects; the error says why it
/// failed (Varnish refuses to load such a VCL).
pub(crate) fn vcl_init(shared: &crate::Shared, vcl: &Vcl) -> Result<(), String> {
    let mut ctx = InitCtx { shared, vcl, method: Method::Init, privs: Default::default() };
    match lacquer_vcl::exec::run(&vcl.program, Method::Init, &mut ctx) {
        Ok(h) if matches!(h.action, lacquer_defs::Action::Ok) => Ok(()),
        Ok(h) => Err(format!("vcl_init returned {}", h.action.as_str())),
        Err(f) => Err(f.0),
    }
}

/// Sends a VCL event to each imported module that has an `#[event]`
/// function, with the VCL's PRIV_VCL for that module: in import order,
/// `Discard` in reverse. A module failing `Load` stops it, and the modules
/// told before are sent `Discard` (as varnishd's generated `VGC_Load`
/// does); the error is the module's message. After `Discard` (or a failed
/// `Load`) the hook providers the VCL registered are unregistered.
pub(crate) fn event(shared: &crate::Shared, vcl: &Vcl, ev: lacquer_module::Event) -> Result<(), String> {
    use lacquer_module::Event;
    let mut order: Vec<usize> = (0..vcl.program.imports.len()).collect();
    if ev == Event::Discard {
        order.reverse();
    }
    for (n, &i) in order.iter().enumerate() {
        if let Err(why) = event_one(shared, vcl, i, ev) {
            if ev == Event::Load {
                for &j in order[..n].iter().rev() {
                    let _ = event_one(shared, vcl, j, Event::Discard);
                }
                vcl.vmods.drop_hooks();
            }
            return Err(why);
        }
    }
    if ev == Event::Discard {
        // Every module has been told; nothing of this VCL answers hooks.
        vcl.vmods.drop_hooks();
    }
    Ok(())
}

/// Sends `ev` to the module of import `i`, if it takes events.
fn event_one(shared: &crate::Shared, vcl: &Vcl, i: usize, ev: lacquer_module::Event) -> Result<(), String> {
    let imp = &vcl.program.imports[i];
    let Some(spec) = imp.spec.as_ref() else { return Ok(()) };
    let Some(f) = spec.event else { return Ok(()) };
    let Some(module) = vcl.vmods.registry.get(&imp.name) else { return Ok(()) };
    let fspec = &spec.functions[f as usize];
    let margs: Vec<Arg<'_>> = fspec
        .args
        .iter()
        .map(|a| if matches!(a.ty, ArgType::Enum(_)) { Arg::Enum(ev.as_str()) } else { Arg::Absent })
        .collect();
    let method = if ev == lacquer_module::Event::Discard { Method::Fini } else { Method::Init };
    // The owner is the import, as for the module's functions: they share
    // the VCL's PRIV_VCL.
    let privs = std::cell::RefCell::default();
    let task = Task::Init(&privs);
    let mut host =
        TaskHost { task, method, shared, vcl, owner: i as u64, call: 0, object_name: None, logs: Vec::new() };
    let r = module.call(&mut Ctx::new(&mut host), Target::Function(f), &margs);
    for (tag, l) in &host.logs {
        crate::vsl::global(&shared.log, *tag, l);
    }
    r.map(drop).map_err(|e| e.0)
}

/// Gives each imported module with a `request_raw` function the request's
/// head as received, before VCL runs: in import order, with the request
/// lent as in `vcl_recv` (so a module may take the connection and end the
/// request; the first that ends it is the last asked). An error fails the
/// request as a VCL failure would.
pub(crate) fn request_raw(req: &mut crate::req_fsm::Req) -> Result<(), String> {
    let vcl = req.vcl.clone();
    for (i, imp) in vcl.program.imports.iter().enumerate() {
        let Some(f) = imp.spec.as_ref().and_then(|s| s.request_raw) else { continue };
        let Some(module) = vcl.vmods.registry.get(&imp.name) else { continue };
        if req.conn.end.is_some() {
            break;
        }
        let shared = req.shared.clone();
        let head = req.req.buf.clone();
        let spec = &imp.spec.as_ref().expect("checked above").functions[f as usize];
        let margs: Vec<Arg<'_>> = spec
            .args
            .iter()
            .map(|a| if matches!(a.ty, ArgType::Priv(_)) { Arg::Absent } else { Arg::Str(Some(&head)) })
            .collect();
        let task = Task::Req(Lent::Mut(&mut *req));
        let mut host = TaskHost {
            task,
            method: Method::Recv,
            shared: &shared,
            vcl: &vcl,
            owner: i as u64,
            call: 0,
            object_name: None,
            logs: Vec::new(),
        };
        let r = module.call(&mut Ctx::new(&mut host), Target::Function(f), &margs);
        let logs = std::mem::take(&mut host.logs);
        drop(host);
        for (tag, l) in logs {
            req.vsl.text(tag, &l);
        }
        r.map_err(|e| format!("{}: {}", imp.name, e.0))?;
    }
    Ok(())
}

/// Runs `vcl_fini` when a discarded VCL is finished; its objects are
/// dropped (their destructors run) when the last `Arc` of it goes, which
/// the caller's is. Varnish ignores what `vcl_fini` returns, and so does
/// this.
pub(crate) fn vcl_fini(shared: &crate::Shared, vcl: &Vcl) {
    let mut ctx = InitCtx { shared, vcl, method: Method::Fini, privs: Default::default() };
    let _ = lacquer_vcl::exec::run(&vcl.program, Method::Fini, &mut ctx);
}

/// The context `vcl_init` and `vcl_fini` run in: no request, only module
/// calls.
struct InitCtx<'a> {
    shared: &'a crate::Shared,
    vcl: &'a Vcl,
    method: Method,
    /// PRIV_TASK of `vcl_init` (or `vcl_fini`), released when it ends.
    privs: std::cell::RefCell<Privs>,
}

impl lacquer_vcl::VclContext for InitCtx<'_> {
    fn method(&self) -> Method {
        self.method
    }

    fn get(&self, var: Var) -> Value<'_> {
        match var {
            Var::Now => Value::Time(crate::msg::now()),
            Var::ServerIdentity => Value::Str(Some(Cow::Owned(self.shared.identity.clone().into_bytes()))),
            Var::ServerHostname => Value::Str(Some(Cow::Owned(self.shared.hostname.clone().into_bytes()))),
            _ => Value::Opaque,
        }
    }

    fn set(&mut self, _var: Var, _value: Value<'_>) -> Result<(), Failure> {
        Ok(())
    }

    fn unset(&mut self, _var: Var) -> Result<(), Failure> {
        Ok(())
    }

    fn header(&self, _family: Var, _name: &lacquer_vcl::program::Header) -> Option<&[u8]> {
        None
    }

    fn set_header(&mut self, _family: Var, _name: &lacquer_vcl::program::Header, _value: &[u8]) -> Result<(), Failure> {
        Ok(())
    }

    fn unset_header(&mut self, _family: Var, _name: &lacquer_vcl::program::Header) {}

    fn call(&self, _program: &Program, id: CallId, args: &[Option<Value<'_>>]) -> Result<Value<'static>, Failure> {
        // Outside any request: what modules log goes to vxid 0.
        let (v, logs) = call(self.shared, self.vcl, Task::Init(&self.privs), self.method, id, args)?;
        for (tag, l) in &logs {
            crate::vsl::global(&self.shared.log, *tag, l);
        }
        Ok(v)
    }
}
