//! The shard director's VCL side (Varnish 7.1's `vmod_directors_shard.c`):
//! parameter sets, what a task queues and sets for itself, and the
//! director the server resolves.
//!
//! Parameters come in layers, the first that sets a field wins: the
//! arguments of `x.backend(…)`; what `x.backend(resolve=LAZY, …)` set
//! earlier in the same backend task; the `shard_param` given as `param=`
//! (or associated with the director), as the task set it with `p.set()`
//! or else as `vcl_init` did; last the built-in defaults (`by=HASH`,
//! `alt=0`, `warmup=-1` (the director's), `rampup=true`,
//! `healthy=CHOSEN`).
//!
//! A `shard_param` is named in VCL by the BLOB `p.use()` returns: a magic
//! and the object's number in a process-wide table of live parameter
//! sets. What a task sets on one is kept there under the task's id and
//! removed when the task ends, by a guard in the object's PRIV_TASK.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};

use lacquer_module::{Backend, BlobRef, Ctx, Failure, PrivScope};

use crate::shard::{self, Change, Healthy, PickArgs};

/// What a key is made from (`by=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum By {
    Hash,
    Url,
    Key,
    Blob,
}

impl By {
    pub fn parse(s: &str) -> By {
        match s {
            "URL" => By::Url,
            "KEY" => By::Key,
            "BLOB" => By::Blob,
            _ => By::Hash,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            By::Hash => "HASH",
            By::Url => "URL",
            By::Key => "KEY",
            By::Blob => "BLOB",
        }
    }
}

/// Some of the parameters: those a layer sets.
#[derive(Clone, Copy, Debug, Default)]
pub struct ParamSet {
    pub by: Option<By>,
    pub key: Option<u32>,
    pub alt: Option<i64>,
    pub warmup: Option<f64>,
    pub rampup: Option<bool>,
    pub healthy: Option<Healthy>,
}

impl ParamSet {
    /// These, and what they leave unset from `below`.
    pub fn over(self, below: ParamSet) -> ParamSet {
        ParamSet {
            by: self.by.or(below.by),
            key: self.key.or(below.key),
            alt: self.alt.or(below.alt),
            warmup: self.warmup.or(below.warmup),
            rampup: self.rampup.or(below.rampup),
            healthy: self.healthy.or(below.healthy),
        }
    }

    pub fn by(&self) -> By {
        self.by.unwrap_or(By::Hash)
    }
}

/// The arguments a call gives for parameters, as VCL passed them.
#[derive(Default)]
pub struct ParamArgs<'a> {
    pub by: Option<&'a str>,
    pub key: Option<i64>,
    pub key_blob: Option<BlobRef<'a>>,
    pub alt: Option<i64>,
    pub warmup: Option<f64>,
    pub rampup: Option<bool>,
    pub healthy: Option<&'a str>,
}

impl ParamArgs<'_> {
    /// Whether any parameter is given.
    pub fn any(&self) -> bool {
        self.by.is_some()
            || self.key.is_some()
            || self.key_blob.is_some()
            || self.alt.is_some()
            || self.warmup.is_some()
            || self.rampup.is_some()
            || self.healthy.is_some()
    }

    /// Checks them and makes a layer of them (`shard_param_args`); `who`
    /// and `func` name the object and the call in the messages, a notice
    /// goes to `log`.
    pub fn check(&self, who: &str, func: &str, log: &mut dyn FnMut(&str, String)) -> Result<ParamSet, Failure> {
        let err = |what: String| Failure(format!("vmod_directors: shard {who}: {func} {what}"));
        let by = self.by.map(By::parse);
        let by_name = by.unwrap_or(By::Hash).as_str();
        let mut p = ParamSet { by, ..Default::default() };
        match by.unwrap_or(By::Hash) {
            By::Key => {
                let Some(k) = self.key else {
                    return Err(err(format!("missing key argument with by={by_name}")));
                };
                p.key = Some(u32::try_from(k).map_err(|_| err(format!("invalid key argument {k} with by={by_name}")))?);
            }
            By::Blob => {
                let Some(b) = self.key_blob else {
                    return Err(err(format!("missing key_blob argument with by={by_name}")));
                };
                p.key = Some(match b.0 {
                    Some(b) if !b.is_empty() => shard::blob_key(b),
                    _ => {
                        log(
                            "Error",
                            format!(
                                "vmod_directors: shard {who}: {func} by=BLOB but no or empty key_blob - using key 0"
                            ),
                        );
                        0
                    }
                });
            }
            By::Hash | By::Url => {
                if self.key.is_some() || self.key_blob.is_some() {
                    return Err(err(format!("key and key_blob arguments are invalid with by={by_name}")));
                }
            }
        }
        if let Some(alt) = self.alt {
            if alt < 0 {
                return Err(err(format!("invalid alt argument {alt}")));
            }
            p.alt = Some(alt);
        }
        if let Some(w) = self.warmup {
            // -1 stands for the director's own; else a probability.
            if w != -1.0 && !(0.0..=1.0).contains(&w) {
                return Err(err(format!("invalid warmup argument {w:.6}")));
            }
            p.warmup = Some(w);
        }
        p.rampup = self.rampup;
        p.healthy = self.healthy.map(Healthy::parse);
        Ok(p)
    }
}

/// Writes what the shard code logged: `Debug` records (the `debug()`
/// output) at vxid 0 as varnishd's `SHDBG` does, the others to the task
/// (outside one, at vxid 0 too, in the order they came).
pub fn emit(ctx: &mut Ctx, logs: Vec<(String, String)>) {
    for (tag, msg) in logs {
        if tag == "Debug" || ctx.task_id().is_none() {
            ctx.log_global(&tag, msg.as_bytes());
        } else {
            ctx.log_tag(&tag, msg.as_bytes());
        }
    }
}

/// Whether the running subroutine is on the backend side (or `vcl_pipe`,
/// which has a backend request too).
pub fn backend_side(ctx: &Ctx) -> bool {
    let m = ctx.method();
    m.starts_with("vcl_backend_") || m == "vcl_pipe"
}

/// Whether the running subroutine is `vcl_init` or `vcl_fini`.
pub fn housekeeping(ctx: &Ctx) -> bool {
    matches!(ctx.method(), "vcl_init" | "vcl_fini")
}

/// A `shard_param` object.
pub struct ParamInner {
    pub name: String,
    id: u64,
    /// What `vcl_init` set.
    defaults: RwLock<ParamSet>,
    /// What running tasks set, by task id.
    tasks: Mutex<HashMap<u64, ParamSet>>,
}

/// The magic a `p.use()` BLOB starts with.
const PARAM_MAGIC: &[u8; 8] = b"shardprm";

/// Every live `shard_param`, by number.
fn params() -> &'static Mutex<HashMap<u64, Weak<ParamInner>>> {
    static PARAMS: OnceLock<Mutex<HashMap<u64, Weak<ParamInner>>>> = OnceLock::new();
    PARAMS.get_or_init(Default::default)
}

/// Releases what a task set on a `shard_param` when the task ends.
pub struct ParamTaskGuard {
    param: Arc<ParamInner>,
    task: u64,
}

impl Drop for ParamTaskGuard {
    fn drop(&mut self) {
        self.param.tasks.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.task);
    }
}

impl ParamInner {
    pub fn new(name: &str) -> Arc<ParamInner> {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let p =
            Arc::new(ParamInner { name: name.to_string(), id, defaults: RwLock::default(), tasks: Mutex::default() });
        let mut all = params().lock().unwrap_or_else(|e| e.into_inner());
        all.retain(|_, w| w.strong_count() > 0);
        all.insert(id, Arc::downgrade(&p));
        p
    }

    /// The BLOB that names it.
    pub fn blob(&self) -> Vec<u8> {
        let mut b = PARAM_MAGIC.to_vec();
        b.extend_from_slice(&self.id.to_le_bytes());
        b
    }

    /// The parameter set a BLOB names; `None` for any other BLOB.
    pub fn from_blob(b: BlobRef) -> Option<Arc<ParamInner>> {
        let b = b.0?;
        let id = b.strip_prefix(PARAM_MAGIC.as_slice())?;
        let id = u64::from_le_bytes(id.try_into().ok()?);
        params().lock().unwrap_or_else(|e| e.into_inner()).get(&id)?.upgrade()
    }

    /// Its values for the task `ctx` runs (as it set them, else as
    /// `vcl_init` did).
    pub fn effective(&self, ctx: &Ctx) -> ParamSet {
        let defaults = *self.defaults.read().unwrap_or_else(|e| e.into_inner());
        match ctx.task_id() {
            Some(t) => self.tasks.lock().unwrap_or_else(|e| e.into_inner()).get(&t).copied().unwrap_or(defaults),
            None => defaults,
        }
    }

    /// Changes its values for the running task (in `vcl_init`: for good);
    /// `set` makes the new values from the old. The task's values start as
    /// a copy of `vcl_init`'s.
    pub fn update(
        self: &Arc<Self>,
        ctx: &Ctx,
        guard: &mut Option<ParamTaskGuard>,
        set: impl FnOnce(ParamSet) -> ParamSet,
    ) {
        match ctx.task_id() {
            None => {
                let mut d = self.defaults.write().unwrap_or_else(|e| e.into_inner());
                *d = set(*d);
            }
            Some(task) => {
                let defaults = *self.defaults.read().unwrap_or_else(|e| e.into_inner());
                let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
                let v = tasks.entry(task).or_insert(defaults);
                *v = set(*v);
                if guard.is_none() {
                    *guard = Some(ParamTaskGuard { param: self.clone(), task });
                }
            }
        }
    }
}

/// A shard director's side of the server.
pub struct ShardCore {
    pub shard: shard::Shard,
    /// The parameter set `associate()` gave.
    pub assoc: RwLock<Option<Arc<ParamInner>>>,
    /// The replicas of the last `reconfigure()`, for the implicit one at
    /// the end of a task.
    pub replicas: AtomicU32,
}

/// What a task queued and set on a shard director (its PRIV_TASK).
pub struct ShardTask {
    core: Arc<ShardCore>,
    pub changes: Vec<Change>,
    /// What `backend(resolve=LAZY, …)` set for the task, and the
    /// parameter set it was given.
    pub lazy: Option<(ParamSet, Option<Arc<ParamInner>>)>,
}

impl ShardTask {
    pub fn new(core: Arc<ShardCore>) -> ShardTask {
        ShardTask { core, changes: Vec::new(), lazy: None }
    }
}

impl Drop for ShardTask {
    /// Changes left when the task ends are applied then, as varnishd's
    /// `shard_change_fini` does.
    fn drop(&mut self) {
        if !self.changes.is_empty() {
            let replicas = self.core.replicas.load(Ordering::Relaxed);
            self.core.shard.reconfigure(&std::mem::take(&mut self.changes), replicas, &mut |_, _| {});
        }
    }
}

/// A JSON string.
fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The seconds since the epoch.
fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl ShardCore {
    pub fn new(name: &str) -> ShardCore {
        ShardCore { shard: shard::Shard::new(name), assoc: RwLock::default(), replicas: AtomicU32::new(67) }
    }

    pub fn name(&self) -> String {
        self.shard.settings().name.clone()
    }

    /// The key the parameters make for the task `ctx` runs
    /// (`shard_get_key`): the hash's first four bytes on the backend
    /// side, else (and for `by=URL`) the URL's hash.
    pub fn key(ctx: &Ctx, p: &ParamSet) -> u32 {
        match p.by() {
            By::Key | By::Blob => p.key.unwrap_or(0),
            By::Hash if backend_side(ctx) => ctx.digest().map_or(0, |d| u32::from_be_bytes([d[0], d[1], d[2], d[3]])),
            By::Hash | By::Url => {
                let url = ctx.url(lacquer_module::Http::Req).or_else(|| ctx.url(lacquer_module::Http::Bereq));
                shard::hash32(&[url.unwrap_or(b"")])
            }
        }
    }

    /// Picks the member for the parameters.
    pub fn pick(&self, ctx: &mut Ctx, p: &ParamSet) -> Option<Backend> {
        let key = Self::key(ctx, p);
        let mut logs = Vec::new();
        let picked = {
            let ctx: &Ctx = ctx;
            let health = |b: Backend| (ctx.backend_healthy(b).unwrap_or(false), ctx.backend_changed(b).unwrap_or(0.0));
            let mut random = || ctx.testable_random().unwrap_or_else(lacquer_module::rand::fine_unit);
            let mut args = PickArgs {
                alt: p.alt.unwrap_or(0),
                warmup: p.warmup.unwrap_or(-1.0),
                rampup: p.rampup.unwrap_or(true),
                healthy: p.healthy.unwrap_or(Healthy::Chosen),
                health: &health,
                now: now(),
                random: &mut random,
            };
            let ring = self.shard.ring();
            let set = self.shard.settings();
            shard::pick(&ring, &set, key, &mut args, &mut |t, m| logs.push((t.to_string(), m)))
        };
        emit(ctx, logs);
        picked
    }

    /// The parameters a pick at resolution uses for the task: what the
    /// task set lazily, over its parameter set's (or the associated one's).
    pub fn task_params(&self, ctx: &Ctx, lazy: Option<&(ParamSet, Option<Arc<ParamInner>>)>) -> ParamSet {
        let assoc = self.assoc.read().unwrap_or_else(|e| e.into_inner()).clone();
        match lazy {
            Some((args, param)) => {
                let below = param.as_ref().or(assoc.as_ref()).map(|p| p.effective(ctx)).unwrap_or_default();
                args.over(below)
            }
            None => assoc.map(|p| p.effective(ctx)).unwrap_or_default(),
        }
    }
}

/// The director the server resolves for a shard object.
pub struct ShardDirector(pub Arc<ShardCore>);

impl lacquer_module::Director for ShardDirector {
    fn resolve(&self, healthy: &dyn Fn(Backend) -> bool) -> Option<Backend> {
        // Without a task there is no request to take a key from: key 0.
        let health = |b: Backend| (healthy(b), 0.0);
        let mut random = lacquer_module::rand::fine_unit;
        let mut args = PickArgs {
            alt: 0,
            warmup: -1.0,
            rampup: true,
            healthy: Healthy::Chosen,
            health: &health,
            now: now(),
            random: &mut random,
        };
        shard::pick(&self.0.shard.ring(), &self.0.shard.settings(), 0, &mut args, &mut |_, _| {})
    }

    fn healthy(&self, healthy: &dyn Fn(Backend) -> bool) -> bool {
        self.0.shard.ring().members.iter().flatten().any(|m| healthy(m.backend))
    }

    fn listing(&self, m: &dyn lacquer_module::MemberState) -> Option<lacquer_module::DirectorListing> {
        let ring = self.0.shard.ring();
        let set = self.0.shard.settings();
        let now = m.now();
        let mut l = lacquer_module::DirectorListing {
            kind: "shard".into(),
            columns: ["Ident", "Health", "Rampup", "Remaining"].map(String::from).to_vec(),
            json_settings: vec![
                ("warmup".into(), format!("{:.6}", set.warmup)),
                ("rampup_duration".into(), format!("{:.6}", set.rampup)),
            ],
            ..Default::default()
        };
        for member in ring.members.iter().flatten() {
            let ok = m.healthy(member.backend);
            // How far into its rampup a healthy member is (1: done).
            let rampup = member.rampup.unwrap_or(set.rampup);
            let since = now - m.changed(member.backend).unwrap_or(0.0);
            let (part, left) = match ok {
                false => (0.0, 0.0),
                true if rampup > 0.0 && since < rampup => (since / rampup, rampup - since),
                true => (1.0, 0.0),
            };
            l.total += 1;
            l.healthy += usize::from(ok);
            let health = if ok { "healthy" } else { "sick" };
            l.rows.push((
                member.name.clone(),
                vec![
                    member.ident().to_string(),
                    health.into(),
                    format!("{:6.2}%", part * 100.0),
                    format!("{left:8.3}s"),
                ],
            ));
            l.json_members.push(vec![
                ("ident".into(), json_str(member.ident())),
                ("health".into(), json_str(health)),
                ("rampup".into(), format!("{part:.6}")),
                ("rampup_remaining".into(), format!("{left:.3}")),
            ]);
        }
        Some(l)
    }

    fn resolve_task(&self, ctx: &mut Ctx) -> Option<Backend> {
        let slot = ctx.take_priv(PrivScope::Task);
        let lazy = slot
            .as_ref()
            .and_then(|s| s.as_ref())
            .and_then(|b| b.downcast_ref::<ShardTask>())
            .and_then(|t| t.lazy.clone());
        if let Some(slot) = slot {
            ctx.put_priv(PrivScope::Task, slot);
        }
        let p = self.0.task_params(ctx, lazy.as_ref());
        self.0.pick(ctx, &p)
    }
}
