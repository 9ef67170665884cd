//! The accelerator: sockets, tasks and the two state machines that run a
//! request through VCL.
//!
//! `lacquer-server` is the only crate that owns sockets, threads and the
//! process's life. It listens, accepts client connections, reads requests,
//! runs the compiled VCL at each step of a request's life, talks to the
//! backends, writes responses, and stops cleanly on SIGTERM or SIGINT. It
//! does not parse HTTP (that is `lacquer-http`: a head is offsets into the
//! session's buffer, a body is fed through its `BodyDecoder`), it does not
//! compile or interpret VCL (that is `lacquer-vcl`: this crate implements
//! its `VclContext` twice, once per kind of task, in `ctx`), and it does
//! not cache yet: the cache will plug into the `Lookup` step, which today
//! answers "miss" without reshaping anything around it.
//!
//! The key design decision is that a request's life is one explicit state
//! machine, as in Varnish: one enum of steps ([`req_fsm`], Varnish's
//! `REQ_STEPS`), one function per step named after Varnish's (`cnt_recv`
//! …), and one loop that calls the step the last one named. The backend
//! fetch is a second machine of the same shape running in its own task
//! ([`fetch`], Varnish's `F_STP_*`), which hands the response head back
//! to the client task and then streams the body to it through a bounded
//! channel. Nothing else decides where a request goes next.
//!
//! ```text
//!  client task (req_fsm)                          fetch task (fetch)
//!
//!  Transport ─► Recv ─┬─ hash ─► [vcl_hash] ─► Lookup ─► Miss ─┐
//!     ▲               ├─ purge ─► [vcl_hash] ─► Purge ─► Synth │
//!     │               ├─ pass ─────────────────► Pass ─────────┤
//!     │               ├─ pipe ─► Pipe ─► (tunnel) ─► Finish    ▼
//!  Restart ◄──────────┤                                      Fetch ══► StartFetch ─ fetch ─► Send
//!  (> max_restarts:   ├─ synth ─────────────────► Synth        │          │ error     ok │ │ failed
//!   503 via Synth)    └─ fail ─► VclFail ─► Synth │            │          ▼              │ ▼
//!                                                 │            │        Error ◄── error ─ Response
//!                                                 ▼            ▼          │ deliver      │ deliver
//!                                   Transmit ◄── Synth    Deliver ◄══════╧══════════ FetchBody ─► Done
//!                                      │                     │ deliver      retry: Retry ─► StartFetch
//!                                      ▼                     ▼               abandon, fail: Fail ─► Done
//!                                   Finish ◄── Transmit ◄────┘
//! ```
//!
//! Restart is reachable from vcl_recv, vcl_pass, vcl_miss, vcl_purge,
//! vcl_deliver and vcl_synth; a VCL failure anywhere on the client side
//! leads to `VclFail`, which answers 503 through vcl_synth and closes.
//!
//! The modules, with the Varnish source each follows:
//!
//! | here | Varnish | what |
//! |---|---|---|
//! | `lib.rs` | `cache_acceptor.c`, `mgt_main.c` | accepting, starting and shutting down |
//! | `cli.rs` | `mgt_cli.c`, `cache_cli.c` | the admin CLI on `-T`, as varnishadm expects it |
//! | `acceptor.rs` | `mgt_acceptor.c`, `cache_acceptor.c` | `-a` arguments, listening sockets, client streams |
//! | `http1.rs` | `cache_http1_fsm.c` | a client connection: heads, bodies, keep-alive |
//! | `proxy.rs` | `proxy/cache_proxy_proto.c` | PROXY protocol headers on `-a …,PROXY` listeners |
//! | `req_fsm.rs` | `cache_req_fsm.c` | the client request state machine |
//! | `fetch.rs` | `cache_fetch.c` | the backend fetch state machine and task |
//! | `ctx.rs` | `cache_vrt_var.c` | the two `VclContext`s |
//! | `director.rs` | `cache_director.c` | directors: what VCL names, resolved per fetch |
//! | `vbe.rs` | `cache_backend.c` | backends, connecting, connection pools |
//! | `probe.rs` | `cache_backend_probe.c` | backend health probes |
//! | `msg.rs` | `cache_http.c` | a head with its buffer; hop-by-hop headers, reasons |
//! | `params.rs` | `tbl/params.h` | the `-p` parameters |
//! | `stevedore.rs` | `mgt_stevedore.c` | the `-s` storage arguments |
//! | `rfc2616.rs` | `cache_rfc2616.c` | TTLs from response headers; what `Vary` records |
//! | `vsl.rs` | `cache_shmlog.c` | each task's shared-memory log writer |
//! | `vmod.rs` | `cache_vrt_vmod.c` | the module host: calls, private state, `vcl_init` |
//! | `gzip.rs` | `cache_gzip.c` | gzip and gunzip as bodies pass; Accept-Encoding |
//! | `ban.rs` | `cache_ban_build.c` | ban expressions, tested by the cache |
//! | `esi.rs` | `cache_esi_parse.c` | ESI parsing at fetch, the instructions kept with objects |
//! | `ved.rs` | `cache_esi_deliver.c` | ESI delivery: verbatim parts and includes as requests of their own |
//! | `deliver.rs` | `cache_range.c`, `cache_rfc2616.c` | 304s for conditional requests, ranges |

mod acceptor;
mod ban;
mod cli;
mod ctx;
mod deliver;
mod director;
mod esi;
mod fetch;
mod gzip;
mod handoff;
mod http1;
mod msg;
pub mod params;
mod probe;
mod proxy;
mod req_fsm;
mod rfc2616;
pub mod stevedore;
mod vbe;
mod vcl;
mod ved;
mod vmod;
mod vsl;
mod ws;

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lacquer_vcl::Program;
use tokio::sync::{mpsc, watch};

pub use params::{LiveParams, ParamError, Params};
pub use vmod::Modules;

/// The `Via` header value Lacquer adds to responses.
pub const VIA: &str = "1.1 lacquer (Lacquer/0.1)";

/// How long in-flight requests get to finish after SIGTERM or SIGINT.
const DRAIN: Duration = Duration::from_secs(5);

/// What the server needs to start.
pub struct Config {
    /// The `-a` arguments: `[name=][host][:port][,proto]`.
    pub listen: Vec<String>,
    /// The VCL to start with (`-f`, `-b`), loaded as `boot`; none with
    /// `-d`, where the CLI loads one.
    pub boot: Option<Boot>,
    pub params: Params,
    /// The stores `-s` named; the first holds the cache.
    pub storage: Vec<stevedore::StorageSpec>,
    /// `-i`: what `server.identity` answers (the host name if none).
    pub identity: Option<String>,
    /// `-n`: where the shared-memory log and counters live.
    pub workdir: std::path::PathBuf,
    /// The modules VCL may import (see [`modules`]).
    pub modules: Arc<Modules>,
    /// What VCL is compiled with; `vcc_*` parameters and `vcl_path` are
    /// applied over it for each load ([`compile_options`]).
    pub compile: lacquer_vcl::Options,
    /// `-T`: where the admin CLI listens.
    pub cli: Option<String>,
    /// `-M`: where the admin CLI calls (`ADDR PORT`), varnishtest's way.
    pub cli_call: Option<String>,
    /// `-S`: the secret's bytes; without one, a random secret is made in
    /// `<workdir>/_.secret`, as varnishd makes it.
    pub secret: Option<Vec<u8>>,
    /// `-S`: the secret's file, published with the `-T` address for
    /// clients given only the working directory (`varnishadm -n`).
    pub secret_file: Option<std::path::PathBuf>,
    /// `-P`: a file to write the process id to.
    pub pid_file: Option<std::path::PathBuf>,
    /// `-d`: accept client connections only once the CLI says `start`
    /// (varnishd's debug mode, which varnishtest uses), and stop when
    /// standard input ends.
    pub wait_for_start: bool,
}

/// A compiled VCL to start with, and its main source for `vcl.show`.
pub struct Boot {
    pub program: Program,
    /// The source's name (a file name) and text.
    pub source: (String, String),
    /// The file it came from, which SIGHUP loads again.
    pub file: Option<std::path::PathBuf>,
}

/// The compiler settings for a load under parameters `p`: `base` with
/// `vcc_err_unref`, `vcc_allow_inline_c` and `vcl_path` applied.
pub fn compile_options(base: &lacquer_vcl::Options, p: &Params) -> lacquer_vcl::Options {
    use lacquer_defs::params::Value;
    let mut o = base.clone();
    let flag = |name: &str| match p.values().get(name) {
        Some(Value::Bool(b)) => Some(*b),
        _ => None,
    };
    if let Some(b) = flag("vcc_err_unref") {
        o.err_unref = b;
    }
    if let Some(b) = flag("vcc_unsafe_path") {
        o.unsafe_path = b;
    }
    if let Some(b) = flag("vcc_allow_inline_c") {
        o.allow_inline_c = b;
    }
    if let Some(path) = p.show("vcl_path") {
        for d in path.split(':').filter(|d| !d.is_empty() && !d.contains("${")) {
            let d = std::path::PathBuf::from(d);
            if !o.vcl_path.contains(&d) {
                o.vcl_path.push(d);
            }
        }
    }
    o
}

/// The modules VCL can import: those built into Lacquer, and those
/// loaded from files. The same value is the VCL compiler's resolver
/// (`lacquer_vcl::Options::modules`), so `import` type-checks against
/// exactly the code that runs.
pub fn modules() -> Arc<Modules> {
    Arc::new(Modules::default())
}

/// Why the server could not start.
#[derive(Debug)]
pub enum ServeError {
    /// An `-a` argument that does not parse, with the reason.
    Listen(String),
    /// An `-a` address that does not resolve.
    Address(String),
    /// An address that could not be bound.
    Bind(String, io::Error),
    /// The runtime could not be made.
    Runtime(io::Error),
    /// The shared-memory log could not be made in the working directory.
    Log(std::path::PathBuf, io::Error),
    /// The boot VCL could not be loaded (`vcl_init` failed …).
    VclInit(String),
    /// A store could not be made (its file could not be mapped).
    Storage(String, io::Error),
}

impl fmt::Display for ServeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServeError::Listen(why) => write!(f, "bad -a argument {why}"),
            ServeError::Address(a) => write!(f, "cannot resolve listen address '{a}'"),
            ServeError::Bind(a, e) => write!(f, "cannot listen on {a}: {e}"),
            ServeError::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
            ServeError::VclInit(why) => write!(f, "{why}"),
            ServeError::Storage(name, e) => write!(f, "cannot make storage {name}: {e}"),
            ServeError::Log(d, e) => write!(f, "cannot make the shared-memory log in {}: {e}", d.display()),
        }
    }
}

impl std::error::Error for ServeError {}

/// The cache as the server uses it: heads kept as `Msg`s.
pub(crate) type Cache = lacquer_cache::Cache<msg::Msg>;

/// What every task shares: the loaded VCLs, the parameters, the cache,
/// the log and counters.
pub(crate) struct Shared {
    /// The loaded VCLs; each request runs the one active when it started.
    pub vcls: vcl::Vcls,
    pub params: LiveParams,
    pub hostname: String,
    /// `server.identity`.
    pub identity: String,
    /// The listeners, indexed by `Endpoints::socket`.
    pub sockets: Vec<acceptor::ListenInfo>,
    pub cache: Arc<Cache>,
    /// The shared-memory log.
    pub log: lacquer_shm::Log,
    /// The `MAIN` counters.
    pub stats: lacquer_shm::vsc::Main,
    /// The counters file; the segments live as long as it does.
    pub vsc: lacquer_shm::Vsc,
    /// Per store of the cache, in its order: its `SMA.<name>` or
    /// `SMF.<name>` counters and their table.
    store_vsc: Vec<(lacquer_shm::vsc::Segment, &'static [lacquer_defs::counters::CounterDef])>,
    /// The modules VCL may import.
    pub modules: Arc<Modules>,
    /// What VCL is compiled with, before the parameters.
    compile: lacquer_vcl::Options,
    /// Whether client connections are accepted (`start` / `stop`).
    pub child: acceptor::Child,
    /// The backend connection pools, shared across VCLs.
    pub pools: vbe::Pools,
}

impl Shared {
    /// The compiler settings for a load now.
    pub fn compile_options(&self) -> lacquer_vcl::Options {
        let mut o = compile_options(&self.compile, &self.params.get());
        o.labels = self.vcls.label_names();
        o
    }
}

/// The next transaction id (Varnish's vxid), shared by sessions, requests
/// and fetches, and shown in `X-Varnish`. The first is 1000, as in
/// varnishd: a fresh server's first request is `X-Varnish: 1001`.
pub(crate) fn next_vxid() -> u64 {
    NEXT_VXID.fetch_add(1, Ordering::Relaxed)
}

static NEXT_VXID: AtomicU64 = AtomicU64::new(1000);

/// `debug.xid N`: the next transaction is N + 1 (varnishtest sets 999).
pub(crate) fn set_last_vxid(n: u64) {
    NEXT_VXID.store(n + 1, Ordering::Relaxed);
}

/// The VCL `-b HOST[:PORT]` stands for: one backend called `default`.
pub fn backend_vcl(spec: &str) -> String {
    // varnishd's `-b none` (any case) and `-b /path/to.sock`.
    if spec.eq_ignore_ascii_case("none") {
        return "vcl 4.1;\nbackend default none;\n".into();
    }
    if spec.starts_with('/') {
        return format!("vcl 4.1;\nbackend default {{ .path = \"{spec}\"; }}\n");
    }
    let (host, port) = if let Some(rest) = spec.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => (spec, None),
        }
    } else {
        match spec.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            _ => (spec, None),
        }
    };
    let port = port.map(|p| format!(" .port = \"{p}\";")).unwrap_or_default();
    format!("vcl 4.1;\nbackend default {{ .host = \"{host}\";{port} }}\n")
}

/// Runs the server until SIGTERM or SIGINT, then lets in-flight requests
/// finish for up to five seconds. Prints `listening on ADDR` on standard
/// error for each bound address.
pub fn run(cfg: Config) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(ServeError::Runtime)?;
    let r = rt.block_on(serve(cfg));
    rt.shutdown_timeout(Duration::from_millis(100));
    r
}

async fn serve(cfg: Config) -> Result<(), ServeError> {
    // Before anything is printed: whoever waits for "listening on" may
    // signal at once.
    let signals = Signals::new();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let listen = if cfg.listen.is_empty() { vec![":80".to_string()] } else { cfg.listen };
    let bound = acceptor::bind_all(&listen).await?;
    let mut listeners = Vec::new();
    let mut sockets = Vec::new();
    for (l, info) in bound {
        eprintln!("lacquer: listening on {}", info.endpoint);
        listeners.push(l);
        sockets.push(info);
    }
    // Every store `-s` named, Transient last (`stevedore::parse_all`); which
    // one an object goes to is the fetch's choice (`fetch::choose_store`).
    let mut stores = Vec::new();
    for spec in &cfg.storage {
        let store = stevedore::open(spec).map_err(|e| ServeError::Storage(spec.name.clone(), e))?;
        if let (stevedore::Kind::File { .. }, Some(n)) = (&spec.kind, store.limit()) {
            // As varnishd's child says it.
            eprintln!("lacquer: SMF.{} mmap'ed {n} bytes of {n}", spec.name);
        }
        stores.push(store);
    }
    let cache = Cache::with_stores(stores);
    tokio::spawn(cache.clone().run_expiry(msg::now));
    let identity = cfg.identity.unwrap_or_else(|| hostname.clone());
    let log = open_log(&cfg.workdir, &cfg.params)?;
    let exp_log = log.clone();
    cache.set_exp_log(Box::new(move |what| {
        vsl::global(&exp_log, lacquer_shm::Tag::ExpKill, what.to_string().as_bytes());
    }));
    let vsc_err = |e| ServeError::Log(cfg.workdir.clone(), e);
    let vsc = lacquer_shm::Vsc::create(&cfg.workdir).map_err(vsc_err)?;
    let stats = vsc.main().map_err(vsc_err)?;
    let mut store_vsc = Vec::new();
    for store in cache.stores() {
        let group = store.storage().group();
        let defs = lacquer_defs::counters::GROUPS.iter().find(|(g, _)| *g == group).map_or(&[][..], |(_, d)| *d);
        store_vsc.push((vsc.segment(group, store.name(), defs).map_err(vsc_err)?, defs));
    }
    let (alive_tx, mut alive_rx) = mpsc::channel::<()>(1);
    let shared = Arc::new(Shared {
        vcls: vcl::Vcls::default(),
        params: LiveParams::new(cfg.params),
        hostname,
        identity,
        sockets,
        cache,
        log,
        stats,
        vsc,
        store_vsc,
        modules: cfg.modules,
        compile: cfg.compile,
        child: acceptor::Child::new(listeners, alive_tx),
        pools: vbe::Pools::default(),
    });
    // The ban list reads the live parameters; the lurker is a thread of
    // its own, as varnishd's.
    let weak = Arc::downgrade(&shared);
    shared.cache.set_ban_params(Box::new(move || weak.upgrade().map(|s| s.params.get().bans()).unwrap_or_default()));
    let weak = Arc::downgrade(&shared);
    shared.cache.set_lurker_log(Box::new(move |event| {
        if let Some(shared) = weak.upgrade() {
            lurker_log(&shared, event);
        }
    }));
    shared.cache.spawn_lurker(msg::now);
    if let Some(boot) = cfg.boot {
        if let Some(file) = boot.file {
            shared.vcls.set_reload_file(file);
        }
        let (code, why) = shared.vcls.add(&shared, "boot", boot.program, boot.source);
        if code != lacquer_cli::status::OK {
            return Err(ServeError::VclInit(why));
        }
    }
    // Running before the CLI answers: a `status` or `vcl.list` right
    // after "CLI listening" sees the child running.
    if !cfg.wait_for_start {
        shared.child.start(&shared).map_err(ServeError::VclInit)?;
    }
    if let Some(f) = &cfg.pid_file {
        std::fs::write(f, format!("{}\n", std::process::id())).map_err(|e| ServeError::Log(f.clone(), e))?;
    }
    let secret = match cfg.secret {
        Some(s) => s,
        None => cli::make_secret(&cfg.workdir).map_err(|e| ServeError::Log(cfg.workdir.join("_.secret"), e))?,
    };
    let secret = Arc::new(secret);
    if let Some(addr) = cfg.cli {
        let l = tokio::net::TcpListener::bind(addr.as_str()).await.map_err(|e| ServeError::Bind(addr.clone(), e))?;
        let bound = l.local_addr().map(|a| a.to_string()).unwrap_or(addr);
        eprintln!("lacquer: CLI listening on {bound}");
        let secret_file = cfg.secret_file.clone().unwrap_or_else(|| cfg.workdir.join("_.secret"));
        let secret_file = std::path::absolute(&secret_file).unwrap_or(secret_file);
        let endpoint = lacquer_cli::Endpoint { address: bound, secret: secret_file };
        endpoint
            .publish(&cfg.workdir)
            .map_err(|e| ServeError::Log(cfg.workdir.join(lacquer_cli::Endpoint::FILE), e))?;
        tokio::spawn(cli::serve(shared.clone(), l, secret.clone()));
    }
    if let Some(addr) = cfg.cli_call {
        let target = match addr.split_once(' ') {
            Some((h, p)) => format!("{}:{p}", if h.contains(':') { format!("[{h}]") } else { h.to_string() }),
            None => addr.clone(),
        };
        let s = tokio::net::TcpStream::connect(&target).await.map_err(|e| ServeError::Bind(addr.clone(), e))?;
        tokio::spawn(cli::call(shared.clone(), s, secret.clone()));
    }
    tokio::spawn(publish_counters(shared.clone()));
    let stdin_eof = cfg.wait_for_start.then(stdin_closed);
    signals.wait(&shared, stdin_eof).await;
    eprintln!("lacquer: stopping");
    lacquer_cli::Endpoint::withdraw(&cfg.workdir);
    shared.child.shutdown();
    // Every session and acceptor holds a sender; when the last is gone,
    // `recv` answers `None`.
    let _ = tokio::time::timeout(DRAIN, alive_rx.recv()).await;
    Ok(())
}

/// Logs what the ban lurker reports as varnishd's lurker does, outside any
/// transaction; its sleeps only with `debug +lurker`.
fn lurker_log(shared: &Shared, event: lacquer_cache::LurkerEvent) {
    use lacquer_cache::LurkerEvent;
    let (tag, text) = match event {
        LurkerEvent::Banned(xid) => (lacquer_defs::Tag::ExpBan, format!("{xid} banned by lurker")),
        LurkerEvent::CutOff(xid) => (lacquer_defs::Tag::ExpBan, format!("{xid} killed for lurker cutoff")),
        LurkerEvent::Sleep(dt) => {
            if !shared.params.get().show("debug").is_some_and(|d| d.contains("+lurker")) {
                return;
            }
            (lacquer_defs::Tag::Debug, format!("lurker: sleep = {dt:.6}"))
        }
    };
    vsl::global(&shared.log, tag, text.as_bytes());
}

/// Copies what the cache and the store count into the shared counters,
/// four times a second (Varnish's workers also hand their counts over in
/// batches), and keeps `MAIN.uptime`; once a second it lets the VCLs cool
/// down ([`vcl::Vcls::tick`]).
async fn publish_counters(shared: Arc<Shared>) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut ticks = 0u64;
    loop {
        let (c, m) = (shared.cache.stats(), &shared.stats);
        m.uptime.set(shared.vsc.uptime());
        m.n_object.set(c.n_object.load(Relaxed));
        m.n_objectcore.set(c.n_objectcore.load(Relaxed));
        m.n_objecthead.set(c.n_objecthead.load(Relaxed));
        m.cache_hit.set(c.cache_hit.load(Relaxed));
        m.cache_hit_grace.set(c.cache_hit_grace.load(Relaxed));
        m.cache_hitpass.set(c.cache_hitpass.load(Relaxed));
        m.cache_hitmiss.set(c.cache_hitmiss.load(Relaxed));
        m.busy_sleep.set(c.busy_sleep.load(Relaxed));
        m.busy_wakeup.set(c.busy_wakeup.load(Relaxed));
        m.n_expired.set(c.n_expired.load(Relaxed));
        m.n_lru_nuked.set(c.n_lru_nuked.load(Relaxed));
        m.n_purges.set(c.n_purges.load(Relaxed));
        m.n_obj_purged.set(c.n_obj_purged.load(Relaxed));
        m.bans.set(c.bans.load(Relaxed));
        m.bans_added.set(c.bans_added.load(Relaxed));
        m.bans_deleted.set(c.bans_deleted.load(Relaxed));
        m.bans_completed.set(c.bans_completed.load(Relaxed));
        m.bans_obj.set(c.bans_obj.load(Relaxed));
        m.bans_req.set(c.bans_req.load(Relaxed));
        m.bans_dups.set(c.bans_dups.load(Relaxed));
        m.bans_tested.set(c.bans_tested.load(Relaxed));
        m.bans_tests_tested.set(c.bans_tests_tested.load(Relaxed));
        m.bans_obj_killed.set(c.bans_obj_killed.load(Relaxed));
        m.bans_lurker_tested.set(c.bans_lurker_tested.load(Relaxed));
        m.bans_lurker_tests_tested.set(c.bans_lurker_tests_tested.load(Relaxed));
        m.bans_lurker_obj_killed.set(c.bans_lurker_obj_killed.load(Relaxed));
        m.bans_lurker_obj_killed_cutoff.set(c.bans_lurker_obj_killed_cutoff.load(Relaxed));
        for (store, (seg, defs)) in shared.cache.stores().iter().zip(&shared.store_vsc) {
            for (i, (v, def)) in store.storage().counters().into_iter().zip(defs.iter()).enumerate() {
                match def.kind {
                    lacquer_defs::counters::Kind::Counter => seg.counter(i).set(v),
                    lacquer_defs::counters::Kind::Gauge => seg.gauge(i).set(v),
                    lacquer_defs::counters::Kind::Bitmap => seg.bitmap(i).set(v),
                }
            }
        }
        shared.vcls.each(|vcl| {
            for (be, vbe) in vcl.backends.iter().zip(&vcl.vbe) {
                vbe.happy.set(u64::from(be.healthy()));
            }
        });
        ticks += 1;
        if ticks.is_multiple_of(4) {
            shared.vcls.tick(&shared);
            shared.modules.notify(lacquer_module::server_events::TICK, || format!("{}", msg::now() as u64));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Makes the shared-memory log in `dir`, sized and masked by the `vsl_*`
/// parameters.
fn open_log(dir: &std::path::Path, p: &Params) -> Result<lacquer_shm::Log, ServeError> {
    use lacquer_defs::params::Value;
    let space = match p.values().get("vsl_space") {
        Some(Value::Bytes(b)) => *b as usize,
        _ => lacquer_shm::ring::DEFAULT_SPACE,
    };
    let log = lacquer_shm::Log::create(dir, space).map_err(|e| ServeError::Log(dir.to_path_buf(), e))?;
    apply_log_params(&log, p);
    Ok(log)
}

/// Applies the `vsl_mask`, `vsl_reclen` and `vsl_buffer` parameters, and
/// `debug=+syncvsl`, to the log: when it is made, and again after
/// `param.set`.
pub(crate) fn apply_log_params(log: &lacquer_shm::Log, p: &Params) {
    use lacquer_defs::params::Value;
    if let Some(Value::Bits(bits)) = p.values().get("vsl_mask") {
        log.set_mask_bits(*bits);
    }
    if let Some(n) = p.values().get("vsl_reclen").and_then(Value::as_f64) {
        log.set_reclen(n as usize);
    }
    if let Some(n) = p.values().get("vsl_buffer").and_then(Value::as_f64) {
        log.set_buffer_size(n as usize);
    }
    if let Some(Value::Bits(bits)) = p.values().get("debug") {
        let at = lacquer_defs::params::DEBUG_BITS.names.iter().position(|n| *n == "syncvsl");
        log.set_sync(at.is_some_and(|i| bits & (1 << i) != 0));
    }
}

/// The signals the server answers: SIGTERM and SIGINT stop it, SIGHUP
/// reloads the boot VCL's file ([`vcl::Vcls::reload`]).
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    hup: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        Signals { term: signal(SignalKind::terminate()).ok(), hup: signal(SignalKind::hangup()).ok() }
    }

    /// Waits for SIGTERM or SIGINT (or for `stdin_eof`), reloading on each
    /// SIGHUP meanwhile.
    async fn wait(mut self, shared: &Arc<Shared>, stdin_eof: Option<tokio::sync::oneshot::Receiver<()>>) {
        async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                Some(s) => {
                    s.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let mut eof = std::pin::pin!(async move {
            match stdin_eof {
                Some(rx) => {
                    let _ = rx.await;
                }
                None => std::future::pending().await,
            }
        });
        loop {
            tokio::select! {
                _ = &mut eof => return,
                _ = recv(&mut self.term) => return,
                _ = tokio::signal::ctrl_c() => return,
                _ = recv(&mut self.hup) => {
                    let (_, said) = shared.vcls.reload(shared);
                    eprintln!("lacquer: SIGHUP: {}", if said.is_empty() { "reloaded" } else { &said });
                }
            }
        }
    }
}

/// Answers when standard input ends (varnishd's debug mode: its manager
/// stops when the terminal, or varnishtest, closes its input).
fn stdin_closed() -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut sink = [0u8; 512];
        let mut stdin = std::io::stdin().lock();
        while std::io::Read::read(&mut stdin, &mut sink).is_ok_and(|n| n > 0) {}
        let _ = tx.send(());
    });
    rx
}

/// Accepts connections on one listener until the server stops.
async fn accept_loop(
    l: Arc<acceptor::Listener>,
    socket: usize,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        tokio::select! {
            r = l.accept() => match r {
                Ok(a) => {
                    let mut ep = ctx::Endpoints::accepted(a.peer, a.local, socket);
                    ep.peer_cred = a.peer_cred;
                    tokio::spawn(http1::session(shared.clone(), a.stream, ep, stop.clone(), alive.clone()));
                }
                // Out of file descriptors and the like: wait a little.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = stop.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_vcl_splits_host_and_port() {
        assert!(backend_vcl("127.0.0.1:8080").contains(".host = \"127.0.0.1\"; .port = \"8080\";"));
        assert!(backend_vcl("[::1]:81").contains(".host = \"::1\"; .port = \"81\";"));
        assert!(backend_vcl("example.com").contains(".host = \"example.com\"; }"));
        assert!(backend_vcl("None").contains("backend default none;"));
        assert!(backend_vcl("/run/app.sock").contains(".path = \"/run/app.sock\";"));
        for b in ["None", "/run/app.sock"] {
            assert!(lacquer_vcl::compile_str("-b", &backend_vcl(b), &Default::default()).is_ok(), "{b}");
        }
        assert!(lacquer_vcl::compile_str("-b", &backend_vcl("127.0.0.1:8080"), &Default::default()).is_ok());
    }

    #[test]
    fn shared_crosses_threads() {
        fn is_send_sync<T: Send + Sync>() {}
        is_send_sync::<Shared>();
    }
}
