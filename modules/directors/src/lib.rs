//! Varnish 7.1's vmod_directors for Lacquer: directors that spread
//! requests over backends (or over other directors: they nest), written
//! with `lacquer-module` the way an outside author would.
//!
//! Each object makes one director with `Host::add_director` in its
//! constructor; `x.backend()` is the BACKEND that stands for it, which the
//! server resolves through the director at each fetch (Varnish's VDI).
//! The picking follows varnishd's code, so that the same VCL sends the
//! same requests to the same backends:
//!
//! - `round_robin`: the next healthy member after the last one picked;
//! - `fallback`: the first healthy member in the order added, or with
//!   `sticky = true` the one picked last as long as it stays healthy;
//! - `random`: a healthy member at random, in proportion to its weight;
//! - `hash`: `x.backend(key)` picks at once, by the SHA-256 of the key's
//!   parts, a healthy member in proportion to its weight (varnishd's
//!   `vdir_pick_be` over the digest's last four bytes, read as
//!   varnishd's `VRT_HashStrands32` reads them: checked against varnishd
//!   7.1, key by key, in the tests).
//!
//! - `shard`: consistent hashing on a ring, with parameter sets
//!   (`shard_param`) that a request may change for itself: see
//!   [`shard`] and [`vshard`].
//!
//! A director is healthy when one of its members is.

pub mod shard;
mod vshard;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use lacquer_module::{Backend, DirectorListing, MemberState};

/// A director's members and their weights (Varnish's `struct vdir`).
#[derive(Default)]
pub struct Members {
    list: RwLock<Vec<(Backend, f64)>>,
}

impl Members {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(Backend, f64)>> {
        self.list.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a member; NULL is refused as varnishd refuses it.
    pub fn add(&self, who: &str, be: Backend, weight: f64) -> Result<(), String> {
        if be.0.is_none() {
            return Err(format!("{who}: NULL backend cannot be added"));
        }
        self.list.write().unwrap_or_else(|e| e.into_inner()).push((be, weight));
        Ok(())
    }

    /// Removes every entry of a member.
    pub fn remove(&self, who: &str, be: Backend) -> Result<(), String> {
        if be.0.is_none() {
            return Err(format!("{who}: NULL backend cannot be removed"));
        }
        self.list.write().unwrap_or_else(|e| e.into_inner()).retain(|(b, _)| *b != be);
        Ok(())
    }

    /// Whether some member could serve (`vdir_any_healthy`).
    pub fn any_healthy(&self, healthy: &dyn Fn(Backend) -> bool) -> bool {
        self.read().iter().any(|(b, _)| healthy(*b))
    }

    /// The healthy member `w` (in `[0, 1)`) falls on when the healthy
    /// members' weights are laid end to end (`vdir_pick_be`).
    pub fn pick(&self, w: f64, healthy: &dyn Fn(Backend) -> bool) -> Option<Backend> {
        let list = self.read();
        let ok: Vec<(Backend, f64)> = list.iter().copied().filter(|(b, _)| healthy(*b)).collect();
        let total: f64 = ok.iter().map(|(_, w)| w).sum();
        if ok.is_empty() || total <= 0.0 {
            return None;
        }
        let mut w = w * total;
        for (b, weight) in &ok {
            if w < *weight {
                return Some(*b);
            }
            w -= weight;
        }
        ok.last().map(|(b, _)| *b)
    }
}

/// Round robin's side of the server: the rotation.
#[derive(Default)]
pub struct RoundRobinDirector {
    members: Members,
    next: AtomicUsize,
}

impl RoundRobinDirector {
    /// Its members.
    pub fn members(&self) -> &Members {
        &self.members
    }
}

impl Members {
    /// The listing of the members (`backend.list`): each with its health,
    /// and the cells and JSON fields `cells(member, weight, healthy)` makes.
    fn listing(
        &self,
        kind: &str,
        m: &dyn MemberState,
        columns: &[&str],
        cells: &dyn Fn(Backend, f64, bool) -> Cells,
    ) -> DirectorListing {
        let mut l = DirectorListing {
            kind: kind.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            ..Default::default()
        };
        for (b, w) in self.read().iter() {
            let ok = m.healthy(*b);
            let (row, json) = cells(*b, *w, ok);
            l.total += 1;
            l.healthy += usize::from(ok);
            l.rows.push((m.name(*b), row));
            l.json_members.push(json);
        }
        l
    }

    /// The weight of the healthy members.
    fn healthy_weight(&self, m: &dyn MemberState) -> f64 {
        self.read().iter().filter(|(b, _)| m.healthy(*b)).map(|(_, w)| w).sum()
    }
}

/// A member's cells in `backend.list -p`, and its JSON fields.
type Cells = (Vec<String>, Vec<(String, String)>);

/// A health as `backend.list` words it.
fn health_word(ok: bool) -> &'static str {
    if ok {
        "healthy"
    } else {
        "sick"
    }
}

impl lacquer_module::Director for RoundRobinDirector {
    fn listing(&self, m: &dyn MemberState) -> Option<DirectorListing> {
        Some(self.members.listing("round-robin", m, &["Weight", "Health"], &|_, _, ok| {
            let h = health_word(ok);
            (vec!["-".into(), h.into()], vec![("health".into(), format!("\"{h}\""))])
        }))
    }

    fn resolve(&self, healthy: &dyn Fn(Backend) -> bool) -> Option<Backend> {
        let list = self.members.read();
        let n = list.len();
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            if healthy(list[i].0) {
                return Some(list[i].0);
            }
        }
        None
    }

    fn healthy(&self, healthy: &dyn Fn(Backend) -> bool) -> bool {
        self.members.any_healthy(healthy)
    }
}

/// Fallback's side of the server.
pub struct FallbackDirector {
    members: Members,
    sticky: bool,
    /// The member picked last, plus one (0: none); kept as the member, not
    /// its place, so that removing others does not move it.
    current: std::sync::atomic::AtomicU64,
}

impl FallbackDirector {
    /// A fallback director with no members yet.
    pub fn new(sticky: bool) -> FallbackDirector {
        FallbackDirector { members: Members::default(), sticky, current: Default::default() }
    }

    /// Its members.
    pub fn members(&self) -> &Members {
        &self.members
    }
}

impl lacquer_module::Director for FallbackDirector {
    fn listing(&self, m: &dyn MemberState) -> Option<DirectorListing> {
        // The member it would pick now: the sticky one while healthy, else
        // the first healthy one.
        let current = self.current.load(Ordering::Relaxed).checked_sub(1);
        let now = {
            let list = self.members.read();
            match current {
                Some(c) if self.sticky && list.iter().any(|(b, _)| b.0 == Some(c) && m.healthy(*b)) => Some(c),
                _ => list.iter().find(|(b, _)| m.healthy(*b)).and_then(|(b, _)| b.0),
            }
        };
        let mut l = self.members.listing("fallback", m, &["Current", "Health"], &|b, _, ok| {
            let cur = b.0.is_some() && b.0 == now;
            let h = health_word(ok);
            let mark = if cur { "*" } else { "" };
            (
                vec![mark.into(), h.into()],
                vec![("current".into(), cur.to_string()), ("health".into(), format!("\"{h}\""))],
            )
        });
        l.json_settings.push(("sticky".into(), self.sticky.to_string()));
        Some(l)
    }

    fn resolve(&self, healthy: &dyn Fn(Backend) -> bool) -> Option<Backend> {
        let list = self.members.read();
        let n = list.len();
        let current = self.current.load(Ordering::Relaxed).checked_sub(1);
        let start = match current {
            Some(c) if self.sticky => list.iter().position(|(b, _)| b.0 == Some(c)).unwrap_or(0),
            _ => 0,
        };
        for k in 0..n {
            let (b, _) = list[(start + k) % n];
            if healthy(b) {
                self.current.store(b.0.map_or(0, |id| id + 1), Ordering::Relaxed);
                return Some(b);
            }
        }
        None
    }

    fn healthy(&self, healthy: &dyn Fn(Backend) -> bool) -> bool {
        self.members.any_healthy(healthy)
    }
}

/// Random's side of the server.
#[derive(Default)]
pub struct RandomDirector {
    members: Members,
}

impl lacquer_module::Director for RandomDirector {
    fn listing(&self, m: &dyn MemberState) -> Option<DirectorListing> {
        let total = self.members.healthy_weight(m);
        let mut l = self.members.listing("random", m, &["Weight", "Health"], &|_, w, ok| {
            let w = if ok { w } else { 0.0 };
            let share = if total > 0.0 { w / total * 100.0 } else { 0.0 };
            let h = health_word(ok);
            (
                vec![format!("{share:6.2}%"), h.into()],
                vec![("weight".into(), format!("{w:.6}")), ("health".into(), format!("\"{h}\""))],
            )
        });
        l.json_settings.push(("total_weight".into(), format!("{total:.6}")));
        Some(l)
    }

    fn resolve(&self, healthy: &dyn Fn(Backend) -> bool) -> Option<Backend> {
        self.members.pick(lacquer_module::rand::unit(), healthy)
    }

    fn healthy(&self, healthy: &dyn Fn(Backend) -> bool) -> bool {
        self.members.any_healthy(healthy)
    }
}

/// Hash's side of the server: as a director (`x.backend(...)` picks at
/// once, so this is only asked when VCL holds the hash object itself).
#[derive(Default)]
pub struct HashDirector {
    members: Members,
}

impl HashDirector {
    /// Its members.
    pub fn members(&self) -> &Members {
        &self.members
    }

    /// The member `key` maps to: the last four bytes of the SHA-256 of its
    /// non-empty parts, least significant first, as a fraction of 2³².
    pub fn pick(&self, key: &[u8], healthy: &dyn Fn(Backend) -> bool) -> Option<Backend> {
        let d = lacquer_cli::sha256(key);
        let r = u32::from_le_bytes([d[28], d[29], d[30], d[31]]);
        self.members.pick(f64::from(r) / 4_294_967_296.0, healthy)
    }
}

impl lacquer_module::Director for HashDirector {
    fn resolve(&self, healthy: &dyn Fn(Backend) -> bool) -> Option<Backend> {
        self.pick(b"", healthy)
    }

    fn healthy(&self, healthy: &dyn Fn(Backend) -> bool) -> bool {
        self.members.any_healthy(healthy)
    }
}

#[lacquer_module::module(name = "directors")]
pub mod vmod {
    //! Varnish Directors Module: round-robin, fallback, random and hash
    //! directors over backends and other directors.

    use std::sync::Arc;

    use lacquer_module::{Backend, BlobRef, Ctx, Duration, Failure, PrivTask, Strands};

    use super::{FallbackDirector, HashDirector, RandomDirector, RoundRobinDirector};
    use crate::shard::{Change, Healthy, Member};
    use crate::vshard::{
        backend_side, emit, housekeeping, ParamArgs, ParamInner, ParamSet, ParamTaskGuard, ShardCore, ShardDirector,
        ShardTask,
    };

    /// The director of that name, looked up at once (from `vcl_init` or
    /// `vcl_fini` only, as varnishd allows it).
    pub fn lookup(ctx: &mut Ctx, #[positional] name: &str) -> Result<Backend, Failure> {
        if !matches!(ctx.method(), "vcl_init" | "vcl_fini") {
            return Err(Failure("lookup() may only be called from vcl_init / vcl_fini".into()));
        }
        Ok(ctx.lookup_backend(name).unwrap_or(Backend(None)))
    }

    fn fail(e: String) -> Failure {
        Failure(e)
    }

    /// Picks the members in turn, skipping those that are sick.
    pub struct RoundRobin {
        d: Arc<RoundRobinDirector>,
        me: Backend,
    }

    impl RoundRobin {
        /// Makes a round-robin director.
        pub fn new(ctx: &mut Ctx) -> Result<RoundRobin, Failure> {
            let d = Arc::new(RoundRobinDirector::default());
            let me = ctx.add_director(d.clone())?;
            Ok(RoundRobin { d, me })
        }

        /// Adds a member.
        pub fn add_backend(&self, ctx: &mut Ctx, #[positional] be: Backend) -> Result<(), Failure> {
            self.d.members.add(ctx.object_name().unwrap_or("directors"), be, 1.0).map_err(fail)
        }

        /// Removes a member.
        pub fn remove_backend(&self, ctx: &mut Ctx, #[positional] be: Backend) -> Result<(), Failure> {
            self.d.members.remove(ctx.object_name().unwrap_or("directors"), be).map_err(fail)
        }

        /// The director, for `req.backend_hint` and the like.
        pub fn backend(&self) -> Backend {
            self.me
        }
    }

    /// Picks the first healthy member in the order they were added (with
    /// `sticky`, keeps to the one picked last while it stays healthy).
    pub struct Fallback {
        d: Arc<FallbackDirector>,
        me: Backend,
    }

    impl Fallback {
        /// Makes a fallback director.
        pub fn new(ctx: &mut Ctx, #[default(false)] sticky: bool) -> Result<Fallback, Failure> {
            let d = Arc::new(FallbackDirector::new(sticky));
            let me = ctx.add_director(d.clone())?;
            Ok(Fallback { d, me })
        }

        /// Adds a member, after those already there.
        pub fn add_backend(&self, ctx: &mut Ctx, #[positional] be: Backend) -> Result<(), Failure> {
            self.d.members.add(ctx.object_name().unwrap_or("directors"), be, 1.0).map_err(fail)
        }

        /// Removes a member.
        pub fn remove_backend(&self, ctx: &mut Ctx, #[positional] be: Backend) -> Result<(), Failure> {
            self.d.members.remove(ctx.object_name().unwrap_or("directors"), be).map_err(fail)
        }

        /// The director, for `req.backend_hint` and the like.
        pub fn backend(&self) -> Backend {
            self.me
        }
    }

    /// Picks a healthy member at random, each in proportion to its weight.
    pub struct Random {
        d: Arc<RandomDirector>,
        me: Backend,
    }

    impl Random {
        /// Makes a random director.
        pub fn new(ctx: &mut Ctx) -> Result<Random, Failure> {
            let d = Arc::new(RandomDirector::default());
            let me = ctx.add_director(d.clone())?;
            Ok(Random { d, me })
        }

        /// Adds a member with its weight.
        pub fn add_backend(
            &self,
            ctx: &mut Ctx,
            #[positional] be: Backend,
            #[positional] weight: f64,
        ) -> Result<(), Failure> {
            self.d.members.add(ctx.object_name().unwrap_or("directors"), be, weight).map_err(fail)
        }

        /// Removes a member.
        pub fn remove_backend(&self, ctx: &mut Ctx, #[positional] be: Backend) -> Result<(), Failure> {
            self.d.members.remove(ctx.object_name().unwrap_or("directors"), be).map_err(fail)
        }

        /// The director, for `req.backend_hint` and the like.
        pub fn backend(&self) -> Backend {
            self.me
        }
    }

    /// Picks a member by a key: the same key, the same member, as long as
    /// the healthy members stay the same.
    pub struct Hash {
        d: Arc<HashDirector>,
    }

    impl Hash {
        /// Makes a hash director.
        pub fn new(ctx: &mut Ctx) -> Result<Hash, Failure> {
            let d = Arc::new(HashDirector::default());
            ctx.add_director(d.clone())?;
            Ok(Hash { d })
        }

        /// Adds a member with its weight.
        pub fn add_backend(
            &self,
            ctx: &mut Ctx,
            #[positional] be: Backend,
            #[default(1.0)] weight: f64,
        ) -> Result<(), Failure> {
            self.d.members.add(ctx.object_name().unwrap_or("directors"), be, weight).map_err(fail)
        }

        /// Removes a member.
        pub fn remove_backend(&self, ctx: &mut Ctx, #[positional] be: Backend) -> Result<(), Failure> {
            self.d.members.remove(ctx.object_name().unwrap_or("directors"), be).map_err(fail)
        }

        /// The member the key (its parts joined) maps to, picked now.
        pub fn backend(&self, ctx: &mut Ctx, #[positional] key: Strands) -> Backend {
            let key = key.to_vec();
            let healthy = |b: Backend| ctx.backend_healthy(b).unwrap_or(false);
            Backend(self.d.pick(&key, &healthy).and_then(|b| b.0))
        }
    }

    /// A consistent-hashing director: each member holds `replicas` points
    /// on a ring, a key goes to the member of the next point (or the
    /// `alt`-th after it), so that most keys stay where they are when
    /// members come and go. Changes are queued and applied together by
    /// `reconfigure()` (or when the task ends).
    pub struct Shard {
        core: Arc<ShardCore>,
        me: Backend,
    }

    /// Runs `f` on the shard's task state (its PRIV_TASK).
    fn with_task<R>(core: &Arc<ShardCore>, task: &mut PrivTask<ShardTask>, f: impl FnOnce(&mut ShardTask) -> R) -> R {
        f(task.get_or_insert_with(|| ShardTask::new(core.clone())))
    }

    impl Shard {
        /// Makes a shard director with no members.
        pub fn new(ctx: &mut Ctx) -> Result<Shard, Failure> {
            let name = ctx.object_name().unwrap_or("shard").to_string();
            let core = Arc::new(ShardCore::new(&name));
            let me = ctx.add_director(Arc::new(ShardDirector(core.clone())))?;
            Ok(Shard { core, me })
        }

        /// The chance (0 to below 1) that a request goes to the next
        /// member instead, to warm it up.
        pub fn set_warmup(&self, ctx: &mut Ctx, #[default(0.0)] probability: f64) {
            if !(0.0..1.0).contains(&probability) {
                let msg = format!("vmod_directors: shard {}: .set_warmup({probability:.6}) ignored", self.core.name());
                emit(ctx, vec![("Notice".into(), msg)]);
                return;
            }
            self.core.shard.settings.write().unwrap_or_else(|e| e.into_inner()).warmup = probability;
        }

        /// How long a member that became healthy gets fewer requests.
        pub fn set_rampup(&self, #[default(0.0)] duration: Duration) {
            self.core.shard.settings.write().unwrap_or_else(|e| e.into_inner()).rampup = duration.0;
        }

        /// Uses the parameter set `p.use()` names by default (none: the
        /// built-in defaults).
        pub fn associate(&self, param: Option<BlobRef>) -> Result<(), Failure> {
            let p = match param {
                None | Some(BlobRef(None)) => None,
                Some(b) => {
                    Some(ParamInner::from_blob(b).ok_or_else(|| Failure("shard .associate param invalid".into()))?)
                }
            };
            *self.core.assoc.write().unwrap_or_else(|e| e.into_inner()) = p;
            Ok(())
        }

        /// Queues adding a member, hashed by `ident` (its name by default).
        pub fn add_backend(
            &self,
            ctx: &mut Ctx,
            mut task: PrivTask<ShardTask>,
            backend: Backend,
            ident: Option<&str>,
            rampup: Option<Duration>,
            weight: Option<f64>,
        ) -> Result<bool, Failure> {
            let name = self.core.name();
            if backend.0.is_none() {
                return Err(Failure(format!("vmod_directors: shard {name}: None backend cannot be added")));
            }
            let weight = match weight {
                Some(w) if w < 1.0 => {
                    let msg = format!("vmod_directors: shard {name}: .add_backend(weight={w:.6}) ignored");
                    emit(ctx, vec![("Notice".into(), msg)]);
                    1.0
                }
                Some(w) => w,
                None => 1.0,
            };
            let member = Member {
                backend,
                name: ctx.backend_name(backend).unwrap_or_default(),
                ident: ident.filter(|i| !i.is_empty()).map(str::to_string),
                rampup: rampup.map(|d| d.0),
                weight,
            };
            with_task(&self.core, &mut task, |t| t.changes.push(Change::Add(member)));
            Ok(true)
        }

        /// Queues removing the members of a backend, or of an ident.
        pub fn remove_backend(
            &self,
            mut task: PrivTask<ShardTask>,
            backend: Option<Backend>,
            ident: Option<&str>,
        ) -> Result<bool, Failure> {
            let backend = backend.filter(|b| b.0.is_some());
            let ident = ident.filter(|i| !i.is_empty()).map(str::to_string);
            if backend.is_none() && ident.is_none() {
                return Err(Failure(format!(
                    "vmod_directors: shard {}: .remove_backend(): either backend or ident are required",
                    self.core.name()
                )));
            }
            with_task(&self.core, &mut task, |t| t.changes.push(Change::Remove { backend, ident }));
            Ok(true)
        }

        /// Queues removing every member.
        pub fn clear(&self, mut task: PrivTask<ShardTask>) -> bool {
            with_task(&self.core, &mut task, |t| t.changes.push(Change::Clear));
            true
        }

        /// Applies the queued changes and rebuilds the ring with
        /// `replicas` points per member.
        pub fn reconfigure(&self, ctx: &mut Ctx, mut task: PrivTask<ShardTask>, #[default(67)] replicas: i64) -> bool {
            let name = self.core.name();
            let Ok(r) = u32::try_from(replicas).map_err(drop).and_then(|r| if r == 0 { Err(()) } else { Ok(r) }) else {
                let msg = format!("vmod_directors: shard {name}: .reconfigure() invalid replicas argument {replicas}");
                emit(ctx, vec![("Error".into(), msg)]);
                return false;
            };
            let changes = with_task(&self.core, &mut task, |t| std::mem::take(&mut t.changes));
            if changes.is_empty() {
                return true;
            }
            self.core.replicas.store(r, std::sync::atomic::Ordering::Relaxed);
            let mut logs = Vec::new();
            let ok = self.core.shard.reconfigure(&changes, r, &mut |t, m| logs.push((t.to_string(), m)));
            emit(ctx, logs);
            ok
        }

        /// The key the strings hash to, as `by=KEY` takes it.
        pub fn key(&self, #[positional] parts: Strands) -> i64 {
            let parts: Vec<&[u8]> = parts.parts().collect();
            i64::from(crate::shard::hash32(&parts))
        }

        /// A member picked now (`resolve=NOW`, the default outside
        /// `vcl_init`), or the director itself to pick at fetch time
        /// (`resolve=LAZY`), with the parameters given here for that task.
        #[allow(clippy::too_many_arguments)]
        pub fn backend(
            &self,
            ctx: &mut Ctx,
            mut task: PrivTask<ShardTask>,
            #[enum_values("HASH", "URL", "KEY", "BLOB")] by: Option<&str>,
            key: Option<i64>,
            key_blob: Option<BlobRef>,
            alt: Option<i64>,
            warmup: Option<f64>,
            rampup: Option<bool>,
            #[enum_values("CHOSEN", "IGNORE", "ALL")] healthy: Option<&str>,
            param: Option<BlobRef>,
            #[enum_values("NOW", "LAZY")] resolve: Option<&str>,
        ) -> Result<Backend, Failure> {
            let name = self.core.name();
            let fail = |what: &str| Failure(format!("vmod_directors: shard {name}: {what}"));
            let args = ParamArgs { by, key, key_blob, alt, warmup, rampup, healthy };
            let lazy = resolve.map_or(housekeeping(ctx), |r| r == "LAZY");
            if lazy && (args.any() || param.is_some()) && !backend_side(ctx) {
                return Err(fail(
                    ".backend(resolve=LAZY) with other parameters can only be used in backend/pipe context",
                ));
            }
            let param = match param {
                None => None,
                Some(b) => Some(ParamInner::from_blob(b).ok_or_else(|| fail(".backend(key_blob) param invalid"))?),
            };
            let mut logs = Vec::new();
            let set = args.check(&name, "shard.backend()", &mut |t, m| logs.push((t.to_string(), m)));
            emit(ctx, logs);
            let set = set?;
            if lazy {
                if args.any() || param.is_some() {
                    with_task(&self.core, &mut task, |t| t.lazy = Some((set, param)));
                }
                return Ok(self.me);
            }
            if housekeeping(ctx) {
                return Err(fail(".backend(resolve=NOW) can not be used in vcl_init{}/vcl_fini{}"));
            }
            let below = match (task.get().and_then(|t| t.lazy.clone()), param) {
                (_, Some(p)) => p.effective(ctx),
                (Some(l), None) => self.core.task_params(ctx, Some(&l)),
                (None, None) => self.core.task_params(ctx, None),
            };
            Ok(Backend(self.core.pick(ctx, &set.over(below)).and_then(|b| b.0)))
        }

        /// Logs the ring (and lookups, and rampup and warmup decisions) as
        /// `Debug` records: bits 2, 1 and 4 of `flags`.
        pub fn debug(&self, #[positional] flags: i64) {
            self.core.shard.settings.write().unwrap_or_else(|e| e.into_inner()).debug = flags;
        }
    }

    /// A set of parameters for shard directors (`by`, `key`, `alt` …),
    /// given to them as `p.use()`; `vcl_init` sets its defaults, a backend
    /// task may change them for itself.
    pub struct ShardParam {
        p: Arc<ParamInner>,
    }

    impl ShardParam {
        /// Makes a parameter set with nothing set.
        pub fn new(ctx: &mut Ctx) -> ShardParam {
            ShardParam { p: ParamInner::new(ctx.object_name().unwrap_or("shard_param")) }
        }

        fn writable(&self, ctx: &Ctx, func: &str) -> Result<(), Failure> {
            if housekeeping(ctx) || backend_side(ctx) {
                return Ok(());
            }
            Err(Failure(format!(
                "vmod_directors: shard {}: {func} may only be used in vcl_init and in backend/pipe context",
                self.p.name
            )))
        }

        /// Unsets every parameter (for the task, outside `vcl_init`).
        pub fn clear(&self, ctx: &mut Ctx, mut guard: PrivTask<ParamTaskGuard>) -> Result<(), Failure> {
            self.writable(ctx, "shard_param.clear()")?;
            let mut g = guard.take();
            self.p.update(ctx, &mut g, |_| ParamSet::default());
            if let Some(g) = g {
                guard.set(g);
            }
            Ok(())
        }

        /// Sets the parameters given, keeping the others.
        #[allow(clippy::too_many_arguments)]
        pub fn set(
            &self,
            ctx: &mut Ctx,
            mut guard: PrivTask<ParamTaskGuard>,
            #[enum_values("HASH", "URL", "KEY", "BLOB")] by: Option<&str>,
            key: Option<i64>,
            key_blob: Option<BlobRef>,
            alt: Option<i64>,
            warmup: Option<f64>,
            rampup: Option<bool>,
            #[enum_values("CHOSEN", "IGNORE", "ALL")] healthy: Option<&str>,
        ) -> Result<(), Failure> {
            self.writable(ctx, "shard_param.set()")?;
            let args = ParamArgs { by, key, key_blob, alt, warmup, rampup, healthy };
            let mut logs = Vec::new();
            let set = args.check(&self.p.name, "shard_param.set()", &mut |t, m| logs.push((t.to_string(), m)));
            emit(ctx, logs);
            let set = set?;
            let mut g = guard.take();
            self.p.update(ctx, &mut g, |old| set.over(old));
            if let Some(g) = g {
                guard.set(g);
            }
            Ok(())
        }

        /// `by` as it stands for the task.
        pub fn get_by(&self, ctx: &mut Ctx) -> String {
            self.p.effective(ctx).by().as_str().to_string()
        }

        /// The key the parameters make for the task.
        pub fn get_key(&self, ctx: &mut Ctx) -> i64 {
            i64::from(ShardCore::key(ctx, &self.p.effective(ctx)))
        }

        /// `alt` as it stands for the task.
        pub fn get_alt(&self, ctx: &mut Ctx) -> i64 {
            self.p.effective(ctx).alt.unwrap_or(0)
        }

        /// `warmup` as it stands for the task (-1: the director's).
        pub fn get_warmup(&self, ctx: &mut Ctx) -> f64 {
            self.p.effective(ctx).warmup.unwrap_or(-1.0)
        }

        /// `rampup` as it stands for the task.
        pub fn get_rampup(&self, ctx: &mut Ctx) -> bool {
            self.p.effective(ctx).rampup.unwrap_or(true)
        }

        /// `healthy` as it stands for the task.
        pub fn get_healthy(&self, ctx: &mut Ctx) -> String {
            self.p.effective(ctx).healthy.unwrap_or(Healthy::Chosen).as_str().to_string()
        }

        /// The BLOB that names this set, for `param=` and `associate()`.
        pub fn r#use(&self) -> lacquer_module::Blob {
            lacquer_module::Blob(self.p.blob())
        }
    }
}
