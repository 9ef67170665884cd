//! Loaded VCLs (Varnish's `mgt_vcl.c` and `cache_vcl.c`): several VCLs
//! live in a server at once, one of them active, and the admin CLI loads,
//! switches, labels, cools and discards them while traffic flows.
//!
//! A [`Vcl`] is a compiled program with everything made for it: its
//! backends and their `VBE.<vcl>.<backend>` counters, its probes, its
//! module objects and their private state. Each request takes the active
//! VCL (an `Arc`) when it starts and keeps it to its end, restarts
//! included, and hands it to its fetches; so `vcl.use` switches new
//! requests at once while the ones in flight finish on the VCL they
//! started with, and a VCL's *busy* count (`vcl.list`) is simply how many
//! tasks hold it.
//!
//! States and temperatures are Varnish's. A VCL is loaded `auto` (the
//! default), `warm` or `cold`. Warm means its probes run; cold means they
//! do not and it cannot be used. An `auto` VCL is warmed when `vcl.use`
//! makes it active (or a label points at it) and goes cold once it has
//! been unused for `vcl_cooldown`; a VCL asked to go cold while tasks
//! still hold it is `cooling` until the last lets go. `vcl.discard`
//! removes a VCL; if tasks still hold it, it is listed `discarded` until
//! they end, and then `vcl_fini` runs and its objects are dropped, which
//! is when module destructors run. The active VCL and VCLs with labels
//! cannot be discarded or set cold.
//!
//! Labels (`vcl.label NAME VCL`) are other names for a VCL; `vcl.use` may
//! name one. Requests then run the VCL the label points at, and moving
//! the label with another `vcl.label` switches them.
//!
//! The answers (texts and status codes) are varnishd's, so that
//! varnishadm scripts and `-cliexpect` lines in `.vtc` files read them
//! alike.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use lacquer_cli::status;
use lacquer_module::Event;
use lacquer_vcl::Program;

use crate::{vbe, vmod, Shared};

/// A CLI answer: status and text.
pub(crate) type Answer = (u16, String);

/// A compiled VCL and everything made for it.
pub(crate) struct Vcl {
    pub name: String,
    pub program: Program,
    /// The main source, for `vcl.show`: its name and text.
    pub source: (String, String),
    pub backends: Vec<Arc<vbe::Backend>>,
    /// Each backend's `VBE.<vcl>.<backend>` counters, indexed as
    /// `backends`; removed when the VCL goes.
    pub vbe: Vec<lacquer_shm::vsc::Vbe>,
    /// The modules, the VCL's objects and their shared private state.
    pub vmods: vmod::Vmods,
    /// The directors and backends module objects made, one slot per
    /// object instance (see `director.rs`).
    pub mod_backends: Vec<std::sync::OnceLock<crate::director::ModBackend>>,
    /// The backends modules made at run time (see `director.rs`).
    pub dynamic: crate::director::Dynamic,
    /// The holds modules took on it ([`lacquer_module::Host::vcl_ref`]),
    /// by number, with what each said it is: while any is held it stays
    /// `cooling`, cannot be warmed and is not discarded.
    pub refs: Arc<Mutex<Vec<(u64, String)>>>,
    /// Set while warm: the running probe tasks, stopped when it cools.
    warm: Mutex<Option<Vec<tokio::task::AbortHandle>>>,
    /// Whether the program calls a module function named `rollback`
    /// (`std.rollback`): only then do its tasks keep a copy of the request
    /// as received, which costs a copy per request.
    pub rolls_back: bool,
    /// Whether the program sets `beresp.do_esi` or `resp.do_esi`: only
    /// then do its requests keep the request as received for ESI includes
    /// to start from (an include under another VCL starts from the
    /// request as VCL left it).
    pub esi: bool,
}

/// Whether `program` sets `beresp.do_esi` or `resp.do_esi` anywhere.
fn sets_do_esi(program: &Program) -> bool {
    use lacquer_defs::Var;
    use lacquer_vcl::program::{Place, Stmt};
    fn walk(stmts: &[Stmt]) -> bool {
        stmts.iter().any(|s| match s {
            Stmt::Set(Place::Var(Var::BerespDoEsi | Var::RespDoEsi), _) => true,
            Stmt::If(arms, els) => arms.iter().any(|(_, b)| walk(b)) || walk(els),
            _ => false,
        })
    }
    program.subs.iter().any(|sub| walk(&sub.body))
}

/// Whether `program` calls a module function named `rollback`.
fn calls_rollback(program: &Program) -> bool {
    program.calls.iter().any(|c| match c.target {
        lacquer_vcl::program::CallTarget::Function { module, func } => program
            .imports
            .get(module as usize)
            .and_then(|i| i.spec.as_ref())
            .and_then(|s| s.functions.get(func as usize))
            .is_some_and(|f| f.name == "rollback"),
        _ => false,
    })
}

impl Vcl {
    /// Starts the probe of a backend made at run time, if the VCL is
    /// warm (else warming it up starts it).
    pub(crate) fn probe_dynamic(&self, be: &Arc<vbe::Backend>) {
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tasks) = warm.as_mut() {
            tasks.extend(crate::probe::start_one(self, be));
        }
    }

    /// What holds it (`- vmod-debug ref on vcl1` lines), empty when
    /// nothing does.
    fn held_by(&self) -> Vec<String> {
        self.refs.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(_, d)| d.clone()).collect()
    }

    pub fn is_warm(&self) -> bool {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Warms it, unless it is warm: starts the probes and tells the
    /// modules (`Event::Warm`).
    fn warm_up(&self, shared: &Shared) {
        let mut warm = self.warm.lock().unwrap_or_else(|e| e.into_inner());
        if warm.is_none() {
            *warm = Some(crate::probe::start(self));
            drop(warm);
            if let Err(why) = vmod::event(shared, self, Event::Warm) {
                eprintln!("lacquer: VCL {}: warm event: {why}", self.name);
            }
        }
    }

    /// Cools it, unless it is cold: stops the probes and tells the modules
    /// (`Event::Cold`).
    fn cool_down(&self, shared: &Shared) {
        let probes = self.warm.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(probes) = probes {
            for p in probes {
                p.abort();
            }
            if let Err(why) = vmod::event(shared, self, Event::Cold) {
                eprintln!("lacquer: VCL {}: cold event: {why}", self.name);
            }
        }
    }
}

impl Drop for Vcl {
    fn drop(&mut self) {
        for p in self.warm.get_mut().unwrap_or_else(|e| e.into_inner()).take().into_iter().flatten() {
            p.abort();
        }
    }
}

/// What `vcl.load` and `vcl.state` set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Auto,
    Cold,
    Warm,
}

impl State {
    fn parse(word: &str) -> Option<State> {
        match word {
            "auto" => Some(State::Auto),
            "cold" => Some(State::Cold),
            "warm" => Some(State::Warm),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            State::Auto => "auto",
            State::Cold => "cold",
            State::Warm => "warm",
        }
    }
}

/// One line of `vcl.list`: a VCL or a label.
enum Entry {
    Vcl(Loaded),
    Label { name: String, target: String },
}

impl Entry {
    fn name(&self) -> &str {
        match self {
            Entry::Vcl(l) => &l.vcl.name,
            Entry::Label { name, .. } => name,
        }
    }
}

/// A VCL as the list keeps it.
struct Loaded {
    vcl: Arc<Vcl>,
    state: State,
    /// Since when an `auto` VCL has been unused, for `vcl_cooldown`.
    idle_since: Option<f64>,
    /// Discarded while busy: gone from use, finished when the last task
    /// lets go.
    discarded: bool,
}

/// Every loaded VCL and which one is active.
#[derive(Default)]
pub(crate) struct Vcls {
    list: Mutex<List>,
    /// The VCL new requests run, read by every request: the list's lock is
    /// not on that path.
    active: RwLock<Option<Arc<Vcl>>>,
    /// The `-f` file, which SIGHUP loads again.
    reload_file: Mutex<Option<PathBuf>>,
}

#[derive(Default)]
struct List {
    entries: Vec<Entry>,
    /// The name `vcl.use` gave: a VCL or a label.
    active: Option<String>,
}

impl List {
    fn find(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.name() == name && !matches!(e, Entry::Vcl(l) if l.discarded))
    }

    fn loaded(&mut self, name: &str) -> Option<&mut Loaded> {
        let i = self.find(name)?;
        match &mut self.entries[i] {
            Entry::Vcl(l) => Some(l),
            Entry::Label { .. } => None,
        }
    }

    /// The labels pointing at the VCL `name`.
    fn labels_of(&self, name: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Label { name: l, target } if target == name => Some(l.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The VCLs whose `return (vcl(…))` names label `label`.
    fn users_of(&self, label: &str) -> Vec<&str> {
        self.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Vcl(l) if !l.discarded && l.vcl.program.vcl_labels.iter().any(|x| x == label) => {
                    Some(l.vcl.name.as_str())
                }
                _ => None,
            })
            .collect()
    }

    /// Whether pointing `label` at VCL `target` closes a loop of
    /// `return (vcl(…))` through labels; the path that does, in varnishd's
    /// words, when it would.
    fn loop_through(&self, label: &str, target: &str) -> Option<Vec<String>> {
        let loaded = self.resolve(target)?;
        for used in &loaded.vcl.program.vcl_labels {
            let mut path = vec![format!("Vcl {target} uses Label {used}")];
            if used == label {
                return Some(path);
            }
            let Some(next) = self.resolve(used) else { continue };
            let next = next.vcl.name.clone();
            path.push(format!("Label {used} points to vcl {next}"));
            if let Some(rest) = self.loop_through(label, &next) {
                path.extend(rest);
                return Some(path);
            }
        }
        None
    }

    /// The VCL `name` stands for: itself, or the one a label points at.
    fn resolve(&self, name: &str) -> Option<&Loaded> {
        match &self.entries[self.find(name)?] {
            Entry::Vcl(l) => Some(l),
            Entry::Label { target, .. } => match &self.entries[self.find(target)?] {
                Entry::Vcl(l) => Some(l),
                Entry::Label { .. } => None,
            },
        }
    }

    /// The name of the VCL requests run now.
    fn active_vcl(&self) -> Option<&str> {
        self.active.as_deref().and_then(|a| self.resolve(a)).map(|l| l.vcl.name.as_str())
    }
}

/// How many tasks hold `vcl`: every holder but the list and the active
/// slot (which the caller reads through its lock, adding no holder).
fn busy(vcl: &Arc<Vcl>, active: &Option<Arc<Vcl>>) -> usize {
    let held = 1 + usize::from(active.as_ref().is_some_and(|a| Arc::ptr_eq(a, vcl)));
    Arc::strong_count(vcl).saturating_sub(held)
}

/// Varnish's `mcf_bad_vclname`: a VCL or label name is a letter then
/// letters, digits, `-` and `_`.
fn bad_name(name: &str) -> Option<Answer> {
    let bad = name.char_indices().find(|&(i, c)| {
        if i == 0 {
            !c.is_ascii_alphabetic()
        } else {
            !(c.is_ascii_alphanumeric() || c == '-' || c == '_')
        }
    });
    bad.map(|(_, c)| (status::PARAM, format!("Illegal character in VCL name ('{c}')")))
}

/// Where a VCL to load comes from.
pub(crate) enum Origin<'a> {
    /// `vcl.load NAME FILE`; `-f FILE`.
    File(&'a Path),
    /// `vcl.inline NAME SOURCE`.
    Inline(&'a str),
}

impl Vcls {
    /// The VCL new requests run; none before the first `vcl.use` of a
    /// server started without one.
    pub fn active(&self) -> Option<Arc<Vcl>> {
        self.active.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `f` on each loaded VCL that is not discarded.
    pub fn each(&self, mut f: impl FnMut(&Vcl)) {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        for e in &list.entries {
            if let Entry::Vcl(l) = e {
                if !l.discarded {
                    f(&l.vcl);
                }
            }
        }
    }

    /// The names of the labels, which `return (vcl(LABEL))` may name.
    pub fn label_names(&self) -> Vec<String> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.entries
            .iter()
            .filter_map(|e| match e {
                Entry::Label { name, .. } => Some(name.clone()),
                Entry::Vcl(_) => None,
            })
            .collect()
    }

    /// The VCL called `name` (a label names the VCL it points at).
    pub fn get(&self, name: &str) -> Option<Arc<Vcl>> {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.resolve(name).map(|l| l.vcl.clone())
    }

    /// Publishes the active VCL for new requests.
    fn publish(&self, list: &List) {
        let vcl = list.active.as_deref().and_then(|a| list.resolve(a)).map(|l| l.vcl.clone());
        let name = vcl.as_ref().map(|v| v.name.clone());
        let before = std::mem::replace(&mut *self.active.write().unwrap_or_else(|e| e.into_inner()), vcl);
        // The modules' `lacquer.reload`, when the VCL new requests get is
        // another one (not for the first).
        if let (Some(before), Some(name)) = (before, name) {
            if before.name != name {
                before.vmods.notify_reload(&name);
            }
        }
    }

    /// `vcl.load` / `vcl.inline`: compiles, makes the backends and
    /// counters, runs `vcl_init`, and lists the VCL (active if it is the
    /// first).
    pub fn load(&self, shared: &Shared, name: &str, from: Origin<'_>, state: Option<&str>) -> Answer {
        if let Some(bad) = bad_name(name) {
            return bad;
        }
        let state = match state.map(State::parse) {
            None => State::Auto,
            Some(Some(s)) => s,
            Some(None) => return (status::PARAM, "State must be one of auto, cold or warm.".into()),
        };
        if self.list.lock().unwrap_or_else(|e| e.into_inner()).find(name).is_some() {
            return (status::PARAM, format!("Already a VCL named {name}"));
        }
        // `max_vcl`: past it, refuse (handling 2) or load and remind
        // (handling 1), as varnishd does.
        let params = shared.params.get();
        let loaded = self.loaded_count();
        let over = params.max_vcl_handling > 0.0 && loaded as f64 >= params.max_vcl;
        if over && params.max_vcl_handling >= 2.0 {
            return (
                status::CANT,
                format!("Too many ({loaded}) VCLs already loaded\n(See max_vcl and max_vcl_handling parameters)"),
            );
        }
        let opts = shared.compile_options();
        let compiled = match from {
            Origin::File(path) => {
                let path = find_file(path, &opts.vcl_path);
                lacquer_vcl::compile_path(&path, &opts).map(|p| {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    (p, (path.display().to_string(), text))
                })
            }
            Origin::Inline(src) => lacquer_vcl::compile_str("<vcl.inline>", src, &opts)
                .map(|p| (p, ("<vcl.inline>".to_string(), src.to_string()))),
        };
        let (mut program, source) = match compiled {
            Ok(c) => c,
            Err(e) => {
                // The compiler's text ends in a newline (a blank line after
                // a quoted source excerpt), as VCC's does.
                let text = format!(
                    "Message from VCC-compiler:\n{e}Running VCC-compiler failed, exited with 2\nVCL compilation failed"
                );
                return (status::PARAM, text);
            }
        };
        let warnings = std::mem::take(&mut program.warnings);
        let (code, mut text) = self.install(shared, name, program, source, state);
        if code == status::OK && !warnings.is_empty() {
            text = format!("Message from VCC-compiler:\n{warnings}VCL compiled.\n{text}");
        }
        if code == status::OK && over {
            text.push_str(&format!(
                "{} VCLs loaded\nRemember to vcl.discard the old/unused VCLs.\n\
                 (See max_vcl and max_vcl_handling parameters)",
                loaded + 1
            ));
        }
        (code, text)
    }

    /// How many VCLs are loaded (labels aside).
    fn loaded_count(&self) -> usize {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.entries.iter().filter(|e| matches!(e, Entry::Vcl(_))).count()
    }

    /// Loads an already compiled VCL, `auto` (the boot VCL).
    pub fn add(&self, shared: &Shared, name: &str, program: Program, source: (String, String)) -> Answer {
        self.install(shared, name, program, source, State::Auto)
    }

    fn install(&self, shared: &Shared, name: &str, program: Program, source: (String, String), state: State) -> Answer {
        let vcl = match self.make(shared, name, program, source) {
            Ok(v) => v,
            Err(why) => return (status::PARAM, why),
        };
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if list.find(name).is_some() {
            return (status::PARAM, format!("Already a VCL named {name}"));
        }
        let first = list.active.is_none();
        let warm = state != State::Cold;
        if warm {
            vcl.warm_up(shared);
        }
        let idle_since = (!first).then(crate::msg::now);
        list.entries.push(Entry::Vcl(Loaded { vcl, state, idle_since, discarded: false }));
        if first && warm {
            list.active = Some(name.to_string());
            self.publish(&list);
        }
        drop(list);
        self.count(shared);
        (status::OK, String::new())
    }

    /// SIGHUP: loads the file the boot VCL came from again, under a new
    /// name, and uses it if it compiles; otherwise the running VCL stays
    /// and the answer says why.
    pub fn reload(&self, shared: &Shared) -> Answer {
        let Some(file) = self.reload_file.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return (status::CANT, "no VCL file to reload (the server was not started with -f)".into());
        };
        let secs = crate::msg::now() as u64;
        let mut name = format!("reload_{secs}");
        let mut n = 1;
        while self.get(&name).is_some() {
            n += 1;
            name = format!("reload_{secs}_{n}");
        }
        let (code, text) = self.load(shared, &name, Origin::File(&file), None);
        if code != status::OK {
            return (code, text);
        }
        self.use_(shared, &name)
    }

    /// Remembers the file SIGHUP reloads.
    pub fn set_reload_file(&self, file: PathBuf) {
        *self.reload_file.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    }

    /// Makes a compiled program into a loaded VCL: backends, counters,
    /// module objects (`vcl_init`). The error is what `vcl.load` answers.
    fn make(
        &self,
        shared: &Shared,
        name: &str,
        program: Program,
        source: (String, String),
    ) -> Result<Arc<Vcl>, String> {
        // VCL 4.0 has no way to speak of a client on a Unix socket
        // (`client.ip` would lie), so varnishd refuses it when one listens.
        if program.syntax < 41 && shared.sockets.iter().any(|l| l.endpoint.starts_with('/')) {
            let v = format!("{}.{}", program.syntax / 10, program.syntax % 10);
            return Err(format!(
                "Compiled VCL version ({v}) not supported.\nVCL {v} cannot be used with a listener on a Unix socket; \
                 use vcl 4.1."
            ));
        }
        let backends =
            program.backends.iter().cloned().map(|d| Arc::new(vbe::Backend::pooled(d, &shared.pools))).collect();
        let vbe = program
            .backends
            .iter()
            .map(|b| shared.vsc.vbe(name, &b.name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("Cannot make the counters of VCL {name}: {e}"))?;
        let vmods = vmod::Vmods::new(&shared.modules, &program);
        let mod_backends = program.instances.iter().map(|_| std::sync::OnceLock::new()).collect();
        let name = name.to_string();
        let rolls_back = calls_rollback(&program);
        let esi = sets_do_esi(&program);
        let vcl = Arc::new(Vcl {
            name,
            program,
            source,
            backends,
            vbe,
            vmods,
            mod_backends,
            dynamic: Default::default(),
            warm: Mutex::new(None),
            refs: Arc::default(),
            rolls_back,
            esi,
        });
        let name = &vcl.name;
        let failed = |why: String| format!("VCL \"{name}\" Failed initialization\nMessage:\n\t{why}");
        vmod::event(shared, &vcl, Event::Load).map_err(failed)?;
        if let Err(why) = vmod::vcl_init(shared, &vcl) {
            // As varnishd: what vcl_init made is undone by vcl_fini, and
            // the modules told of the load are told of the discard.
            vmod::vcl_fini(shared, &vcl);
            let _ = vmod::event(shared, &vcl, Event::Discard);
            return Err(failed(why));
        }
        Ok(vcl)
    }

    /// `vcl.use NAME`: new requests run that VCL (or the one a label
    /// points at) from now on.
    pub fn use_(&self, shared: &Shared, name: &str) -> Answer {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let Some(target) = list.resolve(name).map(|l| l.vcl.name.clone()) else {
            return (status::PARAM, format!("No VCL named {name} known\n"));
        };
        let Some(l) = list.loaded(&target) else {
            return (status::PARAM, format!("No VCL named {name} known\n"));
        };
        if l.state == State::Cold {
            return (status::CANT, format!("VCL '{target}' is cold - set to auto or warm first"));
        }
        l.idle_since = None;
        l.vcl.warm_up(shared);
        let old = list.active_vcl().map(str::to_string);
        list.active = Some(name.to_string());
        if let Some(old) = old.filter(|o| *o != target) {
            if let Some(o) = list.loaded(&old) {
                o.idle_since = Some(crate::msg::now());
            }
        }
        self.publish(&list);
        drop(list);
        self.count(shared);
        (status::OK, format!("VCL '{name}' now active"))
    }

    /// `vcl.state NAME auto|cold|warm`.
    pub fn state(&self, shared: &Shared, name: &str, word: &str) -> Answer {
        let Some(state) = State::parse(word) else {
            return (status::PARAM, "State must be one of auto, cold or warm.".into());
        };
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(list.find(name).map(|i| &list.entries[i]), Some(Entry::Label { .. })) {
            return (status::PARAM, "Labels are always warm".into());
        }
        let labelled = !list.labels_of(name).is_empty();
        let active = list.active_vcl() == Some(name);
        let Some(l) = list.loaded(name) else {
            return (status::PARAM, format!("No VCL named {name} known\n"));
        };
        if state == State::Cold {
            if labelled {
                return (status::CANT, "A labeled VCL cannot be set cold".into());
            }
            if active {
                return (status::CANT, "Cannot set the active VCL cold.".into());
            }
        }
        let held = l.vcl.held_by();
        if state == State::Warm && !l.vcl.is_warm() && !held.is_empty() {
            let mut msg = format!("VCL {name} is waiting for:");
            for h in held {
                msg.push_str(&format!("\n- {h}"));
            }
            return (status::CANT, msg);
        }
        l.state = state;
        match state {
            State::Warm => l.vcl.warm_up(shared),
            State::Cold => l.vcl.cool_down(shared),
            State::Auto => l.idle_since = Some(crate::msg::now()),
        }
        drop(list);
        self.count(shared);
        (status::OK, String::new())
    }

    /// `vcl.label LABEL VCL`: makes or moves a label.
    pub fn label(&self, shared: &Shared, label: &str, target: &str) -> Answer {
        if let Some(bad) = bad_name(label) {
            return bad;
        }
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(list.find(target).map(|i| &list.entries[i]), Some(Entry::Label { .. })) {
            return (status::CANT, "VCL labels cannot point to labels".into());
        }
        if let Some(path) = list.loop_through(label, target) {
            let mut text = path.join("\n");
            text.push_str(&format!("\nPointing label {label} at {target} would create a loop"));
            return (status::PARAM, text);
        }
        let Some(t) = list.loaded(target) else {
            return (status::PARAM, format!("No VCL named {target} known\n"));
        };
        if t.state == State::Cold {
            return (status::CANT, format!("VCL '{target}' is cold - set to auto or warm first"));
        }
        t.idle_since = None;
        t.vcl.warm_up(shared);
        match list.find(label).map(|i| &mut list.entries[i]) {
            Some(Entry::Label { target: t, .. }) => *t = target.to_string(),
            Some(Entry::Vcl(_)) => return (status::PARAM, format!("{label} is not a label")),
            None => list.entries.push(Entry::Label { name: label.into(), target: target.into() }),
        }
        self.publish(&list);
        drop(list);
        self.count(shared);
        (status::OK, String::new())
    }

    /// `vcl.discard PATTERN…`: removes VCLs and labels; a busy VCL is
    /// finished when its last task ends.
    pub fn discard(&self, shared: &Shared, patterns: &[String]) -> Answer {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let mut names = Vec::new();
        for p in patterns {
            let found: Vec<String> = list
                .entries
                .iter()
                .filter(|e| !matches!(e, Entry::Vcl(l) if l.discarded))
                .map(|e| e.name().to_string())
                .filter(|n| lacquer_shm::stat::fnmatch(p.as_bytes(), n.as_bytes()))
                .collect();
            if found.is_empty() {
                return (status::PARAM, format!("No VCL name matches {p}\n"));
            }
            names.extend(found);
        }
        // Labels go first, so that discarding a label with its VCL works.
        let is_label =
            |list: &List, n: &str| matches!(list.find(n).map(|i| &list.entries[i]), Some(Entry::Label { .. }));
        for n in &names {
            if list.active.as_deref() == Some(n.as_str()) {
                return (status::CANT, format!("Cannot discard active VCL program {n}\n"));
            }
        }
        let doomed_labels: Vec<&String> = names.iter().filter(|n| is_label(&list, n)).collect();
        for l in &doomed_labels {
            let users: Vec<&str> = list.users_of(l).into_iter().filter(|u| !names.iter().any(|n| n == u)).collect();
            if !users.is_empty() {
                let mut text = format!("Cannot discard VCL label {l}, other VCLs depend on it:\n");
                for u in users {
                    let _ = writeln!(text, "\t{u}");
                }
                return (status::CANT, text);
            }
        }
        for n in names.iter().filter(|n| !is_label(&list, n)) {
            let left: Vec<&str> =
                list.labels_of(n).into_iter().filter(|l| !doomed_labels.iter().any(|d| d == l)).collect();
            if !left.is_empty() {
                let mut text = format!("Cannot discard labeled VCL program {n}:\n");
                for l in left {
                    let _ = writeln!(text, "\t{l}");
                }
                return (status::CANT, text);
            }
            if list.active_vcl() == Some(n.as_str()) {
                return (status::CANT, format!("Cannot discard active VCL program {n}\n"));
            }
        }
        let labels: Vec<String> = doomed_labels.into_iter().cloned().collect();
        list.entries.retain(|e| !matches!(e, Entry::Label { name, .. } if labels.contains(name)));
        for n in &names {
            if let Some(l) = list.loaded(n) {
                l.discarded = true;
            }
        }
        self.publish(&list);
        drop(list);
        self.reap(shared);
        self.count(shared);
        (status::OK, String::new())
    }

    /// Finishes discarded VCLs nobody holds any more: `vcl_fini`, then
    /// their objects and counters go.
    fn reap(&self, shared: &Shared) {
        let mut done = Vec::new();
        {
            let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
            let active = self.active.read().unwrap_or_else(|e| e.into_inner());
            let mut i = 0;
            while i < list.entries.len() {
                match &list.entries[i] {
                    Entry::Vcl(l) if l.discarded && busy(&l.vcl, &active) == 0 && l.vcl.held_by().is_empty() => {
                        if let Entry::Vcl(l) = list.entries.remove(i) {
                            done.push(l.vcl);
                        }
                    }
                    _ => i += 1,
                }
            }
        }
        for vcl in done {
            vmod::vcl_fini(shared, &vcl);
            vcl.cool_down(shared);
            if let Err(why) = vmod::event(shared, &vcl, Event::Discard) {
                eprintln!("lacquer: VCL {}: discard event: {why}", vcl.name);
            }
        }
    }

    /// Once a second: cools `auto` VCLs unused for `vcl_cooldown`, finishes
    /// cooling and discarded ones whose tasks have ended.
    pub fn tick(&self, shared: &Shared) {
        let cooldown = shared.params.get().vcl_cooldown;
        let now = crate::msg::now();
        {
            let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
            let active_name = list.active_vcl().map(str::to_string);
            let labelled: Vec<String> = list
                .entries
                .iter()
                .filter_map(|e| match e {
                    Entry::Label { target, .. } => Some(target.clone()),
                    _ => None,
                })
                .collect();
            for e in &mut list.entries {
                let Entry::Vcl(l) = e else { continue };
                let in_use = active_name.as_deref() == Some(l.vcl.name.as_str()) || labelled.contains(&l.vcl.name);
                if l.state == State::Auto && l.vcl.is_warm() && !in_use && !l.discarded {
                    let since = *l.idle_since.get_or_insert(now);
                    if now - since >= cooldown {
                        l.vcl.cool_down(shared);
                    }
                }
            }
        }
        self.reap(shared);
        self.count(shared);
    }

    /// `MAIN.n_vcl`, `n_vcl_avail`, `n_vcl_discard`, `n_backend`.
    fn count(&self, shared: &Shared) {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let (mut n, mut avail, mut discard, mut backends) = (0, 0, 0, 0);
        for e in &list.entries {
            if let Entry::Vcl(l) = e {
                n += 1;
                // A `backend x none;` is no backend (varnishd makes none).
                let real = l.vcl.backends.iter().filter(|b| !b.def.none).count();
                backends += (real + l.vcl.dynamic.live().count()) as u64;
                if l.discarded {
                    discard += 1;
                } else if l.vcl.is_warm() {
                    avail += 1;
                }
            }
        }
        let m = &shared.stats;
        m.n_vcl.set(n);
        m.n_vcl_avail.set(avail);
        m.n_vcl_discard.set(discard);
        m.n_backend.set(backends);
    }

    /// `vcl.list [-j]`. `busy` is `-` when the server is stopped.
    pub fn list(&self, json: bool, running: bool) -> Answer {
        let list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        let active = self.active.read().unwrap_or_else(|e| e.into_inner());
        let active_name = list.active.as_deref();
        let mut rows: Vec<[String; 7]> = Vec::new();
        let mut objs = Vec::new();
        for e in &list.entries {
            let is_active = active_name == Some(e.name());
            let (state, temp, busy_n, arrow, other) = match e {
                Entry::Vcl(l) => {
                    let b = busy(&l.vcl, &active);
                    let temp = if l.vcl.is_warm() {
                        "warm"
                    } else if (b > 0 || !l.vcl.held_by().is_empty()) && !l.discarded {
                        "cooling"
                    } else {
                        "cold"
                    };
                    let labels = list.labels_of(&l.vcl.name).len();
                    let (arrow, other) = if labels > 0 {
                        ("<-", format!("({labels} label{})", if labels > 1 { "s" } else { "" }))
                    } else {
                        ("", String::new())
                    };
                    (l.state.as_str(), temp, b, arrow, other)
                }
                Entry::Label { name, target } => {
                    let temp = match list.resolve(target) {
                        Some(l) if l.vcl.is_warm() => "warm",
                        _ => "cold",
                    };
                    let users = list.users_of(name).len();
                    let other = if users > 0 { format!("{target} ({users} return(vcl))") } else { target.clone() };
                    ("label", temp, 0, "->", other)
                }
            };
            let status_word = match e {
                Entry::Vcl(l) if l.discarded => "discarded",
                _ if is_active => "active",
                _ => "available",
            };
            let busy_s = if running { busy_n.to_string() } else { "-".to_string() };
            if json {
                let mut o = format!(
                    "{{\n    \"status\": \"{status_word}\",\n    \"state\": \"{state}\",\n    \"temperature\": \"{temp}\",\n    \"busy\": {},\n    \"name\": \"{}\"",
                    if running { busy_n.to_string() } else { "null".into() },
                    e.name()
                );
                match e {
                    Entry::Label { target, .. } => {
                        let _ = write!(o, ",\n    \"label\": {{\n      \"name\": \"{target}\"\n    }}");
                    }
                    Entry::Vcl(l) => {
                        let n = list.labels_of(&l.vcl.name).len();
                        if n > 0 {
                            let _ = write!(o, ",\n    \"labels\": {n}");
                        }
                    }
                }
                o.push_str("\n}");
                objs.push(o);
            } else {
                rows.push([
                    status_word.into(),
                    state.into(),
                    temp.into(),
                    format!("{busy_s:>6}"),
                    e.name().into(),
                    arrow.into(),
                    other,
                ]);
            }
        }
        if json {
            return (status::OK, objs.join(",\n"));
        }
        (status::OK, table(&rows))
    }

    /// `vcl.show [-v] [NAME]`: the source of a VCL (the active one by
    /// default); `-v` adds the built-in VCL, each headed as varnishd
    /// heads them.
    pub fn show(&self, args: &[String]) -> Answer {
        let verbose = args.iter().any(|a| a == "-v");
        let names: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
        if names.len() > 1 {
            return (status::TOOMANY, "Too many parameters".into());
        }
        let vcl = match names.first() {
            Some(n) => self.get(n),
            None => self.active(),
        };
        let Some(vcl) = vcl else {
            return (status::PARAM, format!("No VCL named '{}'", names.first().map_or("", |n| n.as_str())));
        };
        let (name, text) = &vcl.source;
        if !verbose {
            return (status::OK, text.clone());
        }
        let builtin = lacquer_vcl::BUILTIN_VCL;
        (
            status::OK,
            format!(
                "// VCL.SHOW 0 {} {name}\n{text}\n// VCL.SHOW 1 {} <builtin>\n{builtin}",
                text.len(),
                builtin.len()
            ),
        )
    }
}

/// `vcl.list`'s columns as varnishd aligns them: the first padded to its
/// widest plus three, the others to their widest plus four; empty cells at
/// the end of a line are left out.
fn table(rows: &[[String; 7]]) -> String {
    let mut widths = [0usize; 7];
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    for r in rows {
        let last = r.iter().rposition(|c| !c.is_empty()).unwrap_or(0);
        let mut line = String::new();
        for (i, c) in r.iter().enumerate().take(last + 1) {
            line.push_str(c);
            if i < last {
                let pad = widths[i] + if i == 0 { 3 } else { 4 } - c.len();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A relative `vcl.load` path is looked for where it is, then along
/// `vcl_path`.
fn find_file(path: &Path, vcl_path: &[PathBuf]) -> PathBuf {
    if path.is_absolute() || path.exists() {
        return path.to_path_buf();
    }
    vcl_path.iter().map(|d| d.join(path)).find(|p| p.exists()).unwrap_or_else(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_as_varnishd_checks_them() {
        assert_eq!(bad_name("vcl1"), None);
        assert_eq!(bad_name("a-b_c"), None);
        assert_eq!(bad_name("1a").unwrap().1, "Illegal character in VCL name ('1')");
        assert_eq!(bad_name("a.b").unwrap().1, "Illegal character in VCL name ('.')");
    }

    #[test]
    fn the_list_is_aligned_as_varnishds() {
        let row = |a: &str, b: &str, c: &str, d: &str, e: &str, f: &str, g: &str| {
            [a, b, c, &format!("{d:>6}"), e, f, g].map(String::from)
        };
        // Read off varnishd 7.1.1's vcl.list.
        let t = table(&[
            row("available", "auto", "warm", "0", "boot", "", ""),
            row("available", "auto", "warm", "0", "v2", "<-", "(1 label)"),
            row("active", "label", "warm", "0", "l1", "->", "v2"),
            row("available", "cold", "cold", "0", "v5", "", ""),
        ]);
        assert_eq!(
            t,
            "available   auto     warm         0    boot\n\
             available   auto     warm         0    v2      <-    (1 label)\n\
             active      label    warm         0    l1      ->    v2\n\
             available   cold     cold         0    v5\n"
        );
        let t = table(&[row("active", "auto", "warm", "0", "boot", "", "")]);
        assert_eq!(t, "active   auto    warm         0    boot\n");
    }
}
