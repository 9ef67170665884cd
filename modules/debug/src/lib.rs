//! Varnish 7.1's vmod_debug for Lacquer: the module Varnish's test suite
//! imports (`import debug;`) to exercise the module interface itself —
//! private state of every scope, enum, optional and named arguments,
//! objects, STRANDS, HEADER and HTTP arguments, failures — and a few
//! helpers (`re_quote`, `validhdr`, `client_ip`). Written with
//! `lacquer-module` the way an outside author would write a module.
//!
//! The interface is vmod_debug.vcc's of 7.1: names, argument names, types
//! and defaults as varnishd's module spec has them, so scripts written for
//! varnishd type-check the same. Each function behaves as varnishd's does,
//! where an assertion in varnishd (which would panic the child) is a
//! failure of the task here.
//!
//! The event function logs `VCL_EVENT_WARM` and `VCL_EVENT_COLD` as
//! varnishd's does, and refuses to load when `nuke_limit` is 42 (and to
//! warm when `max_esi_depth` is), which Varnish's tests use to make a
//! module's load fail.
//!
//! Left out, because they need what the host does not offer modules yet:
//! object events and holds that keep a VCL warm (`register_obj_events`,
//! `vcl_prevent_cold`, `vcl_allow_cold`,
//! `cold_backend`, `cooling_backend`);
//! dynamic backends and directors (`dyn`, `dyn_uds`, `director`);
//! SUB arguments and
//! results (`call`, `check_call`, `bad_memory`, `total_recall`, `caller`),
//! REGEX (`just_return_regex`), ACL sweeps (`sweep_acl`, `time_acl`); the
//! lookup hook (`catflap`); parameters (`vre_limit`); task-end failures
//! (`fail_task_fini`, `ok_task_fini`); raw private-state lookups
//! (`priv_perf`); the stack and socket probes (`stk`, `sndbuf`). The
//! `Debug` log records some functions write in varnishd are not written.

mod fmt;
mod quote;

pub use fmt::c_g;
pub use quote::re_quote;

#[lacquer_module::module(name = "debug")]
pub mod vmod {
    //! Development, test and debug module: exercises the module interface.

    use std::net::SocketAddr;

    use lacquer_module::{
        Acl, Ctx, Failure, Header, Http, IpKind, NullStr, PrivCall, PrivTask, PrivTop, PrivVcl, Probe, Strands,
        StrandsBuf, Time,
    };

    /// What every function and method of the module keeps per loaded VCL
    /// (varnishd makes it in the load event; here the first user does).
    pub struct VclState {
        foo: String,
        /// What `vcl_discard_delay` asked: how long, in seconds, the
        /// module holds the VCL after it went cold (as bits of an `f64`).
        discard_delay: std::sync::atomic::AtomicU64,
    }

    /// The module's PRIV_TASK, one per task for all its functions (as in
    /// varnishd): the text `test_priv_task` and `priv_task_with_option`
    /// keep, and the address `store_ip` keeps (under a key of its own in
    /// varnishd).
    #[derive(Default)]
    pub struct TaskState {
        text: Option<Vec<u8>>,
        ip: Option<SocketAddr>,
    }

    fn vcl_state(p: &PrivVcl<VclState>) -> Result<&VclState, Failure> {
        p.get_or_init(|| VclState { foo: "FOO".into(), discard_delay: Default::default() })
    }

    /// The VCL's events: `Debug` records of warming and cooling, and the
    /// failures Varnish's tests ask for by setting `nuke_limit` (load) or
    /// `max_esi_depth` (warm) to 42.
    #[event]
    pub fn event_function(ctx: &mut Ctx, vcl: PrivVcl<VclState>, e: lacquer_module::Event) -> Result<(), Failure> {
        use lacquer_module::Event;
        let is_42 = |ctx: &Ctx, p: &str| ctx.param(p).as_deref() == Some("42");
        match e {
            Event::Load if is_42(ctx, "nuke_limit") => Err(Failure("nuke_limit is not the answer.".into())),
            Event::Warm => {
                let line = format!("{}: VCL_EVENT_WARM", ctx.vcl_name());
                ctx.log_global("Debug", line.as_bytes());
                if is_42(ctx, "max_esi_depth") {
                    return Err(Failure("max_esi_depth is not the answer.".into()));
                }
                Ok(())
            }
            Event::Cold => {
                let line = format!("{}: VCL_EVENT_COLD", ctx.vcl_name());
                ctx.log_global("Debug", line.as_bytes());
                hold_after_cold(ctx, &vcl)
            }
            _ => Ok(()),
        }
    }

    /// With a `vcl_discard_delay` set, holds the VCL that just went cold
    /// for that long (from a thread of its own), so that it stays
    /// `cooling` meanwhile, as varnishd's module does.
    fn hold_after_cold(ctx: &mut Ctx, vcl: &PrivVcl<VclState>) -> Result<(), Failure> {
        let delay = f64::from_bits(vcl_state(vcl)?.discard_delay.load(std::sync::atomic::Ordering::Relaxed));
        if delay <= 0.0 {
            return Ok(());
        }
        let desc = format!("vmod-debug ref on {}", ctx.vcl_name());
        let hold = ctx.vcl_ref(&desc)?;
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_secs_f64(delay));
            drop(hold);
        });
        Ok(())
    }

    /// Makes the module hold the VCL for *delay* after it goes cold, so
    /// that it is listed `cooling` and cannot be warmed or discarded
    /// until then.
    pub fn vcl_discard_delay(
        vcl: PrivVcl<VclState>,
        #[positional] delay: lacquer_module::Duration,
    ) -> Result<(), Failure> {
        if !(delay.0 >= 0.0 && delay.0.is_finite()) {
            return Err(Failure(format!("debug.vcl_discard_delay: {} is not a delay", delay.0)));
        }
        vcl_state(&vcl)?.discard_delay.store(delay.0.to_bits(), std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Returns the name of one of the authors (*someone* is ignored).
    pub fn author(
        #[enum_values("phk", "des", "kristian", "mithrandir")]
        #[default("phk")]
        person: &str,
        #[enum_values("phk", "slink", "geoff")]
        #[default("phk")]
        someone: &str,
    ) -> &'static str {
        let _ = someone;
        match person {
            "des" => "Dag-Erling",
            "kristian" => "Kristian",
            "mithrandir" => "Tollef",
            _ => "Poul-Henning",
        }
    }

    /// Keeps `BAR` for the call site the first time, and checks it is
    /// still there every other time.
    pub fn test_priv_call(priv_: PrivCall<String>) -> Result<(), Failure> {
        let v = priv_.get_or_init(|| "BAR".to_string())?;
        if v != "BAR" {
            return Err(Failure(format!("debug.test_priv_call: PRIV_CALL holds {v:?}, not \"BAR\"")));
        }
        Ok(())
    }

    /// Checks the module's PRIV_VCL state is there and intact.
    pub fn test_priv_vcl(priv_: PrivVcl<VclState>) -> Result<(), Failure> {
        let st = vcl_state(&priv_)?;
        if st.foo != "FOO" {
            return Err(Failure("debug.test_priv_vcl: PRIV_VCL was changed".into()));
        }
        Ok(())
    }

    /// Checks that no task state exists for a null owner; in Lacquer state
    /// always has an owner, so this holds.
    pub fn test_priv_task_get() {}

    /// With *s* non-empty: keeps *s* as the task's state the first time,
    /// appends a space and *s* every other time. Returns the state (NULL
    /// before any was kept).
    pub fn test_priv_task(mut priv_: PrivTask<TaskState>, #[default("")] s: NullStr) -> Option<Vec<u8>> {
        let st = priv_.get_or_insert_with(TaskState::default);
        let s = s.0.unwrap_or(b"");
        if !s.is_empty() {
            match &mut st.text {
                Some(v) => {
                    v.push(b' ');
                    v.extend_from_slice(s);
                }
                None => st.text = Some(s.to_vec()),
            }
        }
        st.text.clone()
    }

    /// Keeps *s* as the top request's state the first time; returns the
    /// state. Client side only (PRIV_TOP exists there alone).
    #[restrict(client)]
    pub fn test_priv_top(mut priv_: PrivTop<Option<Vec<u8>>>, #[positional] s: NullStr) -> Option<Vec<u8>> {
        priv_.get_or_insert_with(|| s.0.map(<[u8]>::to_vec)).clone()
    }

    /// A test object.
    pub struct Obj {
        string: Vec<u8>,
        number: String,
        foobar: i64,
    }

    impl Obj {
        /// Makes the object; *string* and *number* are what `.string()`
        /// and `.number()` return.
        pub fn new(
            #[default("default")] string: NullStr,
            #[enum_values("one", "two", "three")]
            #[default("one")]
            number: &str,
        ) -> Obj {
            Obj { string: string.0.unwrap_or(b"").to_vec(), number: number.into(), foobar: 42 }
        }

        fn check(&self) -> Result<(), Failure> {
            match self.foobar {
                42 => Ok(()),
                _ => Err(Failure("debug.obj: the object is damaged".into())),
            }
        }

        /// Checks that the argument is `martin`.
        pub fn r#enum(
            &self,
            #[positional]
            #[enum_values("phk", "des", "kristian", "mithrandir", "martin")]
            e: &str,
        ) -> Result<(), Failure> {
            if e != "martin" {
                return Err(Failure(format!("debug.obj.enum: {e} is not martin")));
            }
            Ok(())
        }

        /// Does nothing.
        pub fn obj(&self) {}

        /// Returns the constructor's *string*.
        pub fn string(&self) -> Result<Vec<u8>, Failure> {
            self.check()?;
            Ok(self.string.clone())
        }

        /// Returns the constructor's *number*.
        pub fn number(&self) -> Result<String, Failure> {
            self.check()?;
            Ok(self.number.clone())
        }

        /// Returns `BOO`.
        pub fn foo(&self, why: NullStr) -> Result<&'static str, Failure> {
            let _ = why;
            self.check()?;
            Ok("BOO")
        }

        /// The same as `.foo()` (an alias in varnishd).
        pub fn bar(&self, why: NullStr) -> Result<&'static str, Failure> {
            self.foo(why)
        }

        /// Returns 21.4 seconds after the epoch.
        pub fn date(&self) -> Result<Time, Failure> {
            self.check()?;
            Ok(Time(21.4))
        }

        /// As `debug.test_priv_call()`, for this call site.
        pub fn test_priv_call(&self, priv_: PrivCall<String>) -> Result<(), Failure> {
            test_priv_call(priv_)
        }

        /// As `debug.test_priv_vcl()`.
        pub fn test_priv_vcl(&self, priv_: PrivVcl<VclState>) -> Result<(), Failure> {
            test_priv_vcl(priv_)
        }

        /// With *s* non-empty, keeps *s* (replacing what was kept) as this
        /// object's state for the task and returns it; with *s* empty,
        /// returns the state kept, or an empty string.
        pub fn test_priv_task(&self, mut priv_: PrivTask<Vec<u8>>, #[default("")] s: NullStr) -> Vec<u8> {
            match s.0.filter(|s| !s.is_empty()) {
                Some(s) => {
                    priv_.set(s.to_vec());
                    s.to_vec()
                }
                None => priv_.get().cloned().unwrap_or_default(),
            }
        }

        /// With *s* non-empty, keeps *s* (replacing what was kept) as this
        /// object's state for the top request and returns it; with *s*
        /// empty, returns the state kept, or an empty string. Fails on the
        /// backend side, where there is no top request.
        pub fn test_priv_top(&self, mut priv_: PrivTop<Vec<u8>>, #[default("")] s: NullStr) -> Vec<u8> {
            match s.0.filter(|s| !s.is_empty()) {
                Some(s) => {
                    priv_.set(s.to_vec());
                    s.to_vec()
                }
                None => priv_.get().cloned().unwrap_or_default(),
            }
        }
    }

    /// Adds the header `Encrypted: ROT52` to *hdr*.
    pub fn rot52(ctx: &mut Ctx, hdr: Http) -> Result<(), Failure> {
        ctx.set_header(hdr, b"Encrypted", b"ROT52")
    }

    /// Prints its arguments: `one two three comma four valid_opt opt`,
    /// with *two* as C's `%g` does and *opt* as `<undef>` when left out.
    pub fn argtest(
        one: NullStr,
        #[default(2)] two: f64,
        #[default("3")] three: NullStr,
        #[default(",")] comma: NullStr,
        #[default(4)] four: i64,
        opt: Option<NullStr>,
    ) -> Vec<u8> {
        fn s(v: NullStr) -> String {
            v.0.map_or_else(|| "(null)".into(), |b| String::from_utf8_lossy(b).into_owned())
        }
        let o = match opt {
            Some(o) => format!("1 {}", s(o)),
            None => "0 <undef>".into(),
        };
        let out = format!("{} {} {} {} {four} {o}", s(one), crate::c_g(two), s(three), s(comma));
        // varnishd prints into a 100-byte buffer.
        let mut b = out.into_bytes();
        b.truncate(99);
        b
    }

    /// Fails the task with "Forced failure".
    pub fn fail() -> Result<(), Failure> {
        Err(Failure("Forced failure".into()))
    }

    /// Fails the task with "Forced failure" (a function with a result).
    pub fn fail2() -> Result<bool, Failure> {
        Err(Failure("Forced failure".into()))
    }

    /// Whether *ip* matches *acl*.
    pub fn match_acl(ctx: &mut Ctx, acl: Acl, ip: SocketAddr) -> Result<bool, Failure> {
        ctx.acl_match(acl, ip).ok_or_else(|| Failure("debug.match_acl: no such ACL".into()))
    }

    /// Returns the NULL ACL, which fails the task where it is matched.
    pub fn null_acl() -> Acl {
        Acl(None)
    }

    /// Returns *acl*.
    pub fn acl(acl: Acl) -> Acl {
        acl
    }

    /// An object holding an ACL (or NULL), made in `vcl_init`.
    pub struct Aclobj {
        acl: Acl,
    }

    impl Aclobj {
        /// Keeps *acl*.
        pub fn new(#[positional] acl: Acl) -> Aclobj {
            Aclobj { acl }
        }

        /// Returns the ACL kept.
        pub fn get(&self) -> Acl {
            self.acl
        }
    }

    /// Checks that *same*, when given, is the probe *probe*.
    pub fn test_probe(probe: Probe, same: Option<Probe>) -> Result<(), Failure> {
        if probe.0.is_none() {
            return Err(Failure("debug.test_probe: no probe".into()));
        }
        match same {
            Some(s) if s.0.is_some() && s != probe => Err(Failure("debug.test_probe: the probes differ".into())),
            _ => Ok(()),
        }
    }

    /// An object made of a string, concatenated once.
    pub struct Concat {
        s: Vec<u8>,
    }

    impl Concat {
        /// Concatenates the arguments.
        pub fn new(#[positional] s: Strands) -> Concat {
            Concat { s: s.to_vec() }
        }

        /// Returns the string.
        pub fn get(&self) -> Vec<u8> {
            self.s.clone()
        }
    }

    /// Returns the arguments concatenated.
    pub fn concatenate(#[positional] s: Strands) -> Vec<u8> {
        s.to_vec()
    }

    /// Returns the arguments collected into one string, made in the
    /// task's workspace as varnishd's `VRT_CollectStrands` makes it: when
    /// the workspace cannot hold it, the workspace overflows and the task
    /// fails.
    pub fn collect(ctx: &mut Ctx, #[positional] s: Strands) -> Result<Vec<u8>, Failure> {
        let v = s.to_vec();
        if let Some(ws) = ctx.task_workspace() {
            // The string and its NUL, as varnishd's.
            if ws.free() <= v.len() {
                ws.mark_overflow();
                return Err(Failure("Workspace overflow".into()));
            }
        }
        Ok(v)
    }

    /// Returns its argument, a STRANDS, as it is (not concatenated).
    pub fn return_strands(strand: Strands) -> StrandsBuf {
        StrandsBuf::from_strands(strand)
    }

    /// Sets the header *hdr* to the arguments concatenated (as `set`
    /// does); with no arguments at all, removes it.
    pub fn sethdr(ctx: &mut Ctx, #[positional] hdr: Header, #[positional] s: Strands) -> Result<(), Failure> {
        if s.0.is_empty() {
            return ctx.unset_header(hdr.which, hdr.name);
        }
        ctx.set_header(hdr.which, hdr.name, &s.to_vec())
            .map_err(|_| Failure("debug.sethdr(): header argument can not be used here".into()))
    }

    /// An object with optional arguments and private state everywhere.
    pub struct ObjOpt {
        name: String,
        s: Option<Vec<u8>>,
        b: Option<bool>,
    }

    fn opt_s(s: &Option<Vec<u8>>) -> String {
        s.as_deref().map_or_else(|| "*undef*".into(), |s| String::from_utf8_lossy(s).into_owned())
    }

    fn opt_b(b: Option<bool>) -> &'static str {
        match b {
            Some(true) => "true",
            Some(false) => "false",
            None => "*undef*",
        }
    }

    impl ObjOpt {
        /// Keeps *s* and *b*, each of which may be left out.
        pub fn new(
            ctx: &mut Ctx,
            call: PrivCall<()>,
            vcl: PrivVcl<VclState>,
            task: PrivTask<()>,
            s: Option<NullStr>,
            b: Option<bool>,
        ) -> ObjOpt {
            let _ = (call, vcl, task);
            let name = ctx.object_name().unwrap_or("").to_string();
            ObjOpt { name, s: s.map(|s| s.0.unwrap_or(b"").to_vec()), b }
        }

        /// Prints the object's name and what the constructor and this call
        /// were given: `obj NAME obj_s S obj_b B met_s S met_b B`.
        pub fn meth_opt(
            &self,
            call: PrivCall<()>,
            vcl: PrivVcl<VclState>,
            task: PrivTask<()>,
            s: Option<NullStr>,
            b: Option<bool>,
        ) -> String {
            let _ = (call, vcl, task);
            let met_s = s.map(|s| s.0.unwrap_or(b"").to_vec());
            format!(
                "obj {} obj_s {} obj_b {} met_s {} met_b {}",
                self.name,
                opt_s(&self.s),
                opt_b(self.b),
                opt_s(&met_s),
                opt_b(b)
            )
        }
    }

    /// Keeps *ip* for the task, for `get_ip`.
    pub fn store_ip(mut task: PrivTask<TaskState>, #[positional] ip: SocketAddr) {
        task.get_or_insert_with(TaskState::default).ip = Some(ip);
    }

    /// Returns what `store_ip` kept in this task (NULL when nothing).
    pub fn get_ip(task: PrivTask<TaskState>) -> Option<SocketAddr> {
        task.get().and_then(|t| t.ip)
    }

    /// The client's IP address as the session recorded it.
    pub fn client_ip(ctx: &mut Ctx) -> Option<String> {
        ctx.ip(IpKind::Client).map(|a| a.ip().to_string())
    }

    /// The client's port as the session recorded it.
    pub fn client_port(ctx: &mut Ctx) -> Option<String> {
        ctx.ip(IpKind::Client).map(|a| a.port().to_string())
    }

    /// Quotes *s* for use as a literal in a regular expression.
    pub fn re_quote(#[positional] s: NullStr) -> Vec<u8> {
        crate::re_quote(s.0.unwrap_or(b""))
    }

    /// Keeps *opt*, when given, as the task's state unless one is kept;
    /// returns the state (NULL when none).
    pub fn priv_task_with_option(mut priv_: PrivTask<TaskState>, opt: Option<NullStr>) -> Option<Vec<u8>> {
        let st = priv_.get_or_insert_with(TaskState::default);
        if let Some(o) = opt.and_then(|o| o.0) {
            if st.text.is_none() {
                st.text = Some(o.to_vec());
            }
        }
        st.text.clone()
    }

    /// The module's counters (varnishd's `debug.vsc`): `DEBUG.count`.
    const VSC: &[lacquer_module::CounterDef] =
        &[lacquer_module::CounterDef { name: "count", gauge: false, doc: "arbitrary counter" }];

    /// The counters while they exist, shared by every VCL (as varnishd's
    /// one static segment).
    static COUNTERS: std::sync::Mutex<Option<Box<dyn lacquer_module::Counters>>> = std::sync::Mutex::new(None);

    /// Makes the `DEBUG` counters, unless they exist.
    pub fn vsc_new(ctx: &mut Ctx) -> Result<(), Failure> {
        let mut c = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
        if c.is_none() {
            *c = Some(ctx.counters("DEBUG", "", VSC)?);
        }
        Ok(())
    }

    /// Adds `val` to `DEBUG.count`; the counters must exist (varnishd
    /// asserts, Lacquer fails the task).
    pub fn vsc_count(#[default(1)] val: i64) -> Result<(), Failure> {
        let c = COUNTERS.lock().unwrap_or_else(|e| e.into_inner());
        let c = c.as_ref().ok_or_else(|| Failure("debug.vsc_count: no counters (debug.vsc_new first)".into()))?;
        c.add(0, val as u64);
        Ok(())
    }

    /// Removes the `DEBUG` counters, if they exist.
    pub fn vsc_destroy() {
        COUNTERS.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Whether the arguments would make a valid header value: visible
    /// ASCII, space, tab and bytes from 0x80 (RFC 7230 field-vchar).
    pub fn validhdr(#[positional] s: Strands) -> bool {
        s.parts().all(|p| p.iter().all(|&c| c == b'\t' || c == b' ' || (0x21..=0x7e).contains(&c) || c >= 0x80))
    }

    /// Where a dynamic backend points now, and the backend made for it.
    struct DynState {
        spec: lacquer_module::BackendSpec,
        be: lacquer_module::Backend,
    }

    /// Makes the backend `spec` says, in place of the one in `state` (which
    /// is retired), unless it says what it said already.
    fn dyn_point(
        ctx: &mut Ctx,
        state: &std::sync::Mutex<Option<DynState>>,
        spec: lacquer_module::BackendSpec,
    ) -> Result<(), Failure> {
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        if st.as_ref().is_some_and(|s| s.spec == spec) {
            return Ok(());
        }
        let be = ctx.new_backend(&spec)?;
        if let Some(old) = st.replace(DynState { spec, be }) {
            ctx.delete_backend(old.be);
        }
        Ok(())
    }

    fn dyn_backend(state: &std::sync::Mutex<Option<DynState>>) -> lacquer_module::Backend {
        let st = state.lock().unwrap_or_else(|e| e.into_inner());
        st.as_ref().map_or(lacquer_module::Backend(None), |s| s.be)
    }

    /// A backend made at run time (varnishd's dynamic backends), pointed
    /// elsewhere by `refresh()`: the tasks that hold the old one finish
    /// with it.
    pub struct Dyn {
        state: std::sync::Mutex<Option<DynState>>,
    }

    impl Dyn {
        /// A backend for `addr` and `port`, judged by `probe`.
        pub fn new(ctx: &mut Ctx, addr: &str, port: &str, probe: Option<Probe>) -> Result<Dyn, Failure> {
            let d = Dyn { state: Default::default() };
            d.refresh(ctx, addr, port, probe)?;
            Ok(d)
        }

        /// The backend as it is now.
        pub fn backend(&self) -> lacquer_module::Backend {
            dyn_backend(&self.state)
        }

        /// Points it at `addr` and `port` (a new backend, unless they and
        /// the probe are what they were).
        pub fn refresh(&self, ctx: &mut Ctx, addr: &str, port: &str, probe: Option<Probe>) -> Result<(), Failure> {
            if addr.is_empty() || port.is_empty() {
                return Err(Failure("Missing dynamic backend address or port".into()));
            }
            let spec = lacquer_module::BackendSpec {
                host: Some(addr.to_string()),
                port: Some(port.to_string()),
                path: None,
                probe: probe.unwrap_or_default(),
            };
            dyn_point(ctx, &self.state, spec)
        }
    }

    /// A backend made at run time on a Unix socket.
    pub struct DynUds {
        state: std::sync::Mutex<Option<DynState>>,
    }

    impl DynUds {
        /// A backend for the socket at `path`.
        pub fn new(ctx: &mut Ctx, path: &str) -> Result<DynUds, Failure> {
            let d = DynUds { state: Default::default() };
            d.refresh(ctx, path)?;
            Ok(d)
        }

        /// The backend as it is now.
        pub fn backend(&self) -> lacquer_module::Backend {
            dyn_backend(&self.state)
        }

        /// Points it at the socket at `path`.
        pub fn refresh(&self, ctx: &mut Ctx, path: &str) -> Result<(), Failure> {
            use std::os::unix::fs::FileTypeExt;
            if !path.starts_with('/') {
                return Err(Failure(format!("path must be an absolute path: {path}")));
            }
            let meta = std::fs::metadata(path).map_err(|e| Failure(format!("Cannot stat path {path}: {e}")))?;
            if !meta.file_type().is_socket() {
                return Err(Failure(format!("{path} is not a socket")));
            }
            let spec = lacquer_module::BackendSpec { path: Some(path.to_string()), ..Default::default() };
            dyn_point(ctx, &self.state, spec)
        }
    }
}
