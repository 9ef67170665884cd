//! The cache (Varnish's `cache_hash.c`, `cache_expire.c`, `cache_lru.c`
//! and the `malloc` stevedore): objects found by their hash key, variants
//! told apart by `Vary`, one fetch per object however many clients want
//! it, expiry on a timer, eviction by least recent use, purges.
//!
//! It knows nothing about VCL or sockets. The server computes the hash key
//! (the `hash_data()` pieces), the lifetimes (from the response headers and
//! VCL) and what `Vary` asks for, and keeps response heads in its own type
//! `H`; the cache keeps them, finds them, streams bodies from a fetch to
//! every reader, and forgets them on time.
//!
//! The shapes follow Varnish:
//!
//! - an **object head** ([`ObjHead`]) per hash key holds the **object
//!   cores** ([`ObjCore`]) made under that key, newest first: cached
//!   objects, markers that say "hit-for-miss" or "hit-for-pass" for a
//!   while, and **busy** cores whose fetch is under way;
//! - [`Cache::lookup`] walks them as `HSH_Lookup` does and answers a
//!   [`Lookup`]: a hit, a hit in grace (maybe with a background fetch to
//!   start), a hit-for-pass, or a miss, which inserts a busy core the
//!   caller must complete with a [`Busy`]; when only a busy core is there
//!   the answer is to wait (the **waiting list**) and look again when it
//!   is completed, so concurrent misses share one backend fetch;
//! - a published object is readable while its body is still arriving
//!   ([`object::BodyReader`]), which is how waiting clients are served
//!   from the one fetch as it streams;
//! - lifetimes are Varnish's `t_origin + ttl (+ grace (+ keep))`; expiry
//!   is a timer heap worked by [`Cache::run_expiry`], never a scan;
//! - each object lives in one store ([`Store`]), which charges every byte of
//!   head and body against its limit and evicts the least recently used
//!   objects of that store to make room (`n_lru_nuked`); a fetch that
//!   cannot get room fails. What a store is made of (the heap, a mapped
//!   file) is behind the [`Storage`] trait ([`storage`]): lookup, expiry,
//!   bans and eviction never ask.
//!
//! Locks are short and never held across an await: one per shard of the
//! key map, one per object head, one for the LRU, one for the timer heap,
//! one for the ban list (see [`ban`]).

pub mod ban;
pub mod object;
pub mod storage;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;

pub use ban::{render_duration, Ban, BanParams, BanReq, BanTest, LurkerEvent, NewBan};
pub use object::{BodyReader, NoSpace, Object};
pub use storage::{Space, Storage};

/// How many shards the key map has; a power of two.
const SHARDS: usize = 64;

/// How long after its last move an object may be moved to the young end of
/// the LRU again (Varnish's `lru_interval`): hits on hot objects then cost
/// no LRU lock.
const LRU_INTERVAL: f64 = 2.0;

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The counters the cache keeps, with Varnish's names.
#[derive(Debug, Default)]
pub struct Stats {
    /// `MAIN.n_object`: objects in the cache.
    pub n_object: AtomicU64,
    /// `MAIN.n_objectcore`: object cores (objects, markers, busy ones).
    pub n_objectcore: AtomicU64,
    /// `MAIN.n_objecthead`: object heads (distinct hash keys).
    pub n_objecthead: AtomicU64,
    /// `MAIN.cache_hit`.
    pub cache_hit: AtomicU64,
    /// `MAIN.cache_hit_grace`: hits on a stale object in grace.
    pub cache_hit_grace: AtomicU64,
    /// `MAIN.cache_hitpass`.
    pub cache_hitpass: AtomicU64,
    /// `MAIN.cache_hitmiss`.
    pub cache_hitmiss: AtomicU64,
    /// `MAIN.cache_miss`.
    pub cache_miss: AtomicU64,
    /// `MAIN.busy_sleep`: lookups that waited for a busy object.
    pub busy_sleep: AtomicU64,
    /// `MAIN.busy_wakeup`: waiting lookups woken to look again.
    pub busy_wakeup: AtomicU64,
    /// `MAIN.n_expired`.
    pub n_expired: AtomicU64,
    /// `MAIN.n_lru_nuked`.
    pub n_lru_nuked: AtomicU64,
    /// `MAIN.n_purges`.
    pub n_purges: AtomicU64,
    /// `MAIN.n_obj_purged`.
    pub n_obj_purged: AtomicU64,
    /// `MAIN.bans`: bans in the ban list.
    pub bans: AtomicU64,
    /// `MAIN.bans_added`.
    pub bans_added: AtomicU64,
    /// `MAIN.bans_deleted`.
    pub bans_deleted: AtomicU64,
    /// `MAIN.bans_completed`: bans with nothing left to test.
    pub bans_completed: AtomicU64,
    /// `MAIN.bans_obj`: bans with a condition on `obj.*`.
    pub bans_obj: AtomicU64,
    /// `MAIN.bans_req`: bans with a condition on `req.*`.
    pub bans_req: AtomicU64,
    /// `MAIN.bans_dups`: bans completed by a newer identical one.
    pub bans_dups: AtomicU64,
    /// `MAIN.bans_tested`: objects tested against bans at lookup.
    pub bans_tested: AtomicU64,
    /// `MAIN.bans_tests_tested`: ban conditions evaluated at lookup.
    pub bans_tests_tested: AtomicU64,
    /// `MAIN.bans_obj_killed`: objects killed by bans at lookup.
    pub bans_obj_killed: AtomicU64,
    /// `MAIN.bans_lurker_tested`: bans tested by the lurker.
    pub bans_lurker_tested: AtomicU64,
    /// `MAIN.bans_lurker_tests_tested`: ban conditions the lurker evaluated.
    pub bans_lurker_tests_tested: AtomicU64,
    /// `MAIN.bans_lurker_obj_killed_cutoff`: objects the lurker killed
    /// untested, past `ban_cutoff`.
    pub bans_lurker_obj_killed_cutoff: AtomicU64,
    /// `MAIN.bans_lurker_obj_killed`: objects the lurker killed.
    pub bans_lurker_obj_killed: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Frees at least the given number of bytes if it can; answers whether it
/// freed anything.
type Evictor = Box<dyn Fn(u64) -> bool + Send + Sync>;

/// A store's objects by age of last use: place → core.
type Lru<H> = Mutex<BTreeMap<u64, Weak<ObjCore<H>>>>;

/// One shard of the key map.
type Shard<H> = Mutex<HashMap<Box<[u8]>, Arc<ObjHead<H>>>>;

/// The expiry timers: (deadline in ms, core id, core), earliest first.
type Timers<H> = Mutex<BinaryHeap<Reverse<(u64, u64, TimerRef<H>)>>>;

/// The bytes an object costs in its store besides its head and body: what
/// varnishd's `struct object` and its fixed attributes (`OA_VXID`,
/// `OA_FLAGS`, `OA_GZIPBITS`, `OA_LASTMODIFIED`) take there, so that a
/// store fills as varnishd's does.
pub const OBJECT_OVERHEAD: u64 = 128;

/// A store as the cache uses it: a [`Storage`] of any kind, and the
/// eviction that makes room in it (Varnish's `struct stevedore` with its
/// LRU).
pub struct Store {
    imp: Arc<dyn Storage>,
    /// Frees room by evicting from this store's LRU; set once the cache
    /// exists.
    evict: Mutex<Option<Evictor>>,
}

impl Store {
    fn new(imp: Arc<dyn Storage>) -> Store {
        Store { imp, evict: Mutex::new(None) }
    }

    /// Room for `n` bytes, evicting least recently used objects of this
    /// store while there is none; `None` when no room can be made.
    fn allocate(&self, n: u64) -> Option<Space> {
        loop {
            if let Some(space) = self.imp.allocate(n) {
                return Some(space);
            }
            let evicted = lock(&self.evict).as_ref().is_some_and(|f| f(n));
            if !evicted {
                return None;
            }
        }
    }

    /// The storage behind it.
    pub fn storage(&self) -> &dyn Storage {
        &*self.imp
    }

    /// `storage.NAME`.
    pub fn name(&self) -> &str {
        self.imp.name()
    }

    /// The bytes in use.
    pub fn used(&self) -> u64 {
        self.imp.used()
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<u64> {
        self.imp.limit()
    }
}

/// What an object core is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A fetch is under way; lookups that find only this wait.
    Busy,
    /// A cached object.
    Object,
    /// "Fetch this yourself, don't wait" until it expires (uncacheable).
    HitForMiss,
    /// "Pass this" until it expires (`return (pass(DURATION))`).
    HitForPass,
}

/// An object's lifetimes, as Varnish keeps them: fresh until
/// `t_origin + ttl`, then deliverable in grace, then kept for
/// revalidation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lifetime {
    /// When the response was made (its age already taken off).
    pub t_origin: f64,
    pub ttl: f64,
    pub grace: f64,
    pub keep: f64,
}

impl Lifetime {
    fn fresh_until(&self) -> f64 {
        self.t_origin + self.ttl
    }

    fn grace_until(&self) -> f64 {
        self.fresh_until() + self.grace.max(0.0)
    }

    fn keep_until(&self) -> f64 {
        self.grace_until() + self.keep.max(0.0)
    }
}

/// What `Vary` recorded: for each header the response varies on
/// (lower-cased), the value the request that made it had, or none.
/// `None` as a whole is `Vary: *`, which nothing matches.
pub type VarySpec = Option<Vec<(Vec<u8>, Option<Vec<u8>>)>>;

impl<H> CoreState<H> {
    /// The head bans test: a live object's, or a marker's.
    fn ban_head(&self) -> Option<&H> {
        match (self.kind, &self.obj, &self.marker) {
            _ if self.dead => None,
            (Kind::Object, Some(obj), _) => Some(&obj.head),
            (Kind::HitForMiss | Kind::HitForPass, _, Some(head)) => Some(head),
            _ => None,
        }
    }
}

struct CoreState<H> {
    kind: Kind,
    life: Lifetime,
    /// The variant this core is for; empty when the response had no Vary.
    vary: VarySpec,
    obj: Option<Arc<Object<H>>>,
    /// A hit-for-miss or hit-for-pass marker's response head, which bans
    /// test as they test objects (varnishd keeps markers as objects).
    marker: Option<Arc<H>>,
    /// Removed from its head (expired, evicted, purged, withdrawn).
    dead: bool,
}

/// One object, marker or busy fetch under a hash key.
pub struct ObjCore<H> {
    id: u64,
    /// The transaction id of the fetch that made it (0 while busy).
    xid: AtomicU64,
    head: Weak<ObjHead<H>>,
    state: Mutex<CoreState<H>>,
    hits: AtomicU64,
    /// The ban it points at (Varnish's `oc->ban`): it has been tested
    /// against every ban up to that one; only newer ones need testing.
    ban: Mutex<ban::BanRef<H>>,
    /// That ban's id (0: none), for the lookup's lock-free check.
    ban_seen: AtomicU64,
    /// When it last moved in the LRU, and its place there.
    lru: Mutex<(f64, u64)>,
    /// Which store (and so which LRU) its object is in.
    store: AtomicUsize,
    in_lru: AtomicBool,
}

impl<H> ObjCore<H> {
    /// The object, for cores that are objects.
    pub fn object(&self) -> Option<Arc<Object<H>>> {
        lock(&self.state).obj.clone()
    }

    /// The lifetimes.
    pub fn lifetime(&self) -> Lifetime {
        lock(&self.state).life
    }

    /// What the core is.
    pub fn kind(&self) -> Kind {
        lock(&self.state).kind
    }

    /// The transaction id of the fetch that made it (what `Hit`,
    /// `HitPass` and `HitMiss` log).
    pub fn xid(&self) -> u64 {
        self.xid.load(Ordering::Relaxed)
    }

    /// How many hits it had (`obj.hits`).
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// The cores under one hash key, and the clients waiting on its busy ones.
pub struct ObjHead<H> {
    key: Box<[u8]>,
    cores: Mutex<Vec<Arc<ObjCore<H>>>>,
    /// The waiting list: woken whenever a core under the key changes.
    waiting: Notify,
    /// How many times the waiting list was woken; a waiter that saw an
    /// older count knows it missed a wake-up and looks again at once.
    woken: AtomicU64,
}

impl<H> ObjHead<H> {
    fn wake(&self) {
        self.woken.fetch_add(1, Ordering::SeqCst);
        self.waiting.notify_waiters();
    }
}

/// What a lookup found.
pub enum Lookup<H: Send + Sync + 'static> {
    /// A fresh object.
    Hit(Arc<ObjCore<H>>),
    /// A stale object in grace; with a busy core when no fetch is under
    /// way yet, which the caller completes with a background fetch.
    Grace(Arc<ObjCore<H>>, Option<Busy<H>>),
    /// A hit-for-pass marker: pass.
    HitPass(Arc<ObjCore<H>>),
    /// A hit-for-miss marker (the second) was found: fetch, without
    /// others waiting on it.
    HitMiss(Busy<H>, Arc<ObjCore<H>>),
    /// Nothing usable: fetch it; others wait for this busy core. The stale
    /// object, if one is kept, can be revalidated.
    Miss(Busy<H>, Option<Arc<ObjCore<H>>>),
    /// Only a fetch under way: wait on this and look again.
    Wait(WaitTicket<H>),
}

/// A place on an object head's waiting list.
pub struct WaitTicket<H> {
    head: Arc<ObjHead<H>>,
    /// The wake-up count when the lookup began.
    seen: u64,
    stats: Arc<Stats>,
}

impl<H> WaitTicket<H> {
    /// Waits until a core under the key changes (a busy one completed or
    /// withdrawn); then the caller looks again.
    pub async fn wait(self) {
        loop {
            let woken = self.head.waiting.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if self.head.woken.load(Ordering::SeqCst) != self.seen {
                break;
            }
            woken.await;
        }
        bump(&self.stats.busy_wakeup);
    }
}

/// What the request offers for variant selection.
pub struct Want<'a> {
    /// The request's URL (for bans on `req.url`).
    pub url: &'a [u8],
    /// The request header `name` (lower-case), if present.
    pub header: &'a dyn Fn(&[u8]) -> Option<Vec<u8>>,
    /// `req.hash_ignore_busy`.
    pub ignore_busy: bool,
    /// `req.hash_always_miss`.
    pub always_miss: bool,
    /// `req.hash_ignore_vary`.
    pub ignore_vary: bool,
    /// Headers (lower-case) whose every value matches in Vary: Varnish does
    /// not vary on Accept-Encoding when it gzips and gunzips itself.
    pub vary_ignore: &'a [&'a [u8]],
    /// `req.grace` when set: the most grace this request accepts.
    pub grace: Option<f64>,
    /// The time of the request.
    pub now: f64,
}

/// A published object: its core (for lifetimes and hits) and the object.
pub type Published<H> = (Arc<ObjCore<H>>, Arc<Object<H>>);

/// A busy core the caller must complete: [`Busy::publish`] an object,
/// mark the key [`Busy::hit_for_miss`] or [`Busy::hit_for_pass`], or drop
/// it to withdraw (the fetch failed or was not made). Waiting clients are
/// woken in every case.
pub struct Busy<H: Send + Sync + 'static> {
    cache: Arc<Cache<H>>,
    oc: Option<Arc<ObjCore<H>>>,
    /// What the object is born with besides its head (see
    /// [`Busy::set_esidata`]).
    esidata: Option<Arc<Vec<u8>>>,
}

/// The cache.
pub struct Cache<H: Send + Sync + 'static> {
    shards: Vec<Shard<H>>,
    hasher: std::collections::hash_map::RandomState,
    /// Per store, its published objects by age of last use: place → core.
    lru: Vec<Lru<H>>,
    /// Cores by when they stop being useful: (deadline in ms, id).
    timers: Timers<H>,
    timer_added: Notify,
    next_id: AtomicU64,
    /// The stores, in `-s` order, Transient last.
    stores: Vec<Arc<Store>>,
    /// Turns through the stores for [`Cache::next_store`].
    next_store: AtomicUsize,
    stats: Arc<Stats>,
    /// The ban list and its lurker's wake-ups.
    bans: ban::Bans<H>,
    /// Where the expiry's events go (`ExpKill` records), once the server
    /// says.
    exp_log: std::sync::OnceLock<ExpLog>,
}

/// Takes one expiry event, as Varnish's `ExpKill` record words it
/// (`EXP_When p=… e=… f=…`, `EXP_expire p=… e=… f=…`).
pub type ExpLog = Box<dyn Fn(std::fmt::Arguments<'_>) + Send + Sync>;

/// A timer heap entry's core, compared by nothing (the heap orders by the
/// deadline and id before it).
struct TimerRef<H>(Weak<ObjCore<H>>);

impl<H> PartialEq for TimerRef<H> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<H> Eq for TimerRef<H> {}
impl<H> PartialOrd for TimerRef<H> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<H> Ord for TimerRef<H> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<H: Send + Sync + 'static> Cache<H> {
    /// A cache with one malloc store `s0` whose objects may hold `limit`
    /// bytes (unbounded if `None`), and an unbounded `Transient`.
    pub fn new(limit: Option<u64>) -> Arc<Cache<H>> {
        Cache::with_stores(vec![
            Arc::new(storage::Malloc::new("s0", limit)),
            Arc::new(storage::Malloc::new("Transient", None)),
        ])
    }

    /// A cache over these stores, of whatever kinds; each has its own LRU.
    pub fn with_stores(stores: Vec<Arc<dyn Storage>>) -> Arc<Cache<H>> {
        let cache = Arc::new(Cache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: Default::default(),
            lru: stores.iter().map(|_| Mutex::new(BTreeMap::new())).collect(),
            timers: Mutex::new(BinaryHeap::new()),
            timer_added: Notify::new(),
            next_id: AtomicU64::new(1),
            stores: stores.into_iter().map(|s| Arc::new(Store::new(s))).collect(),
            next_store: AtomicUsize::new(0),
            stats: Arc::new(Stats::default()),
            bans: ban::Bans::new(),
            exp_log: std::sync::OnceLock::new(),
        });
        cache.magic_ban();
        for (i, store) in cache.stores.iter().enumerate() {
            let weak = Arc::downgrade(&cache);
            *lock(&store.evict) = Some(Box::new(move |need| weak.upgrade().is_some_and(|c| c.evict(i, need))));
        }
        cache
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The first store.
    pub fn store(&self) -> &Store {
        &self.stores[0]
    }

    /// Every store, in the order given.
    pub fn stores(&self) -> &[Arc<Store>] {
        &self.stores
    }

    /// The store the next object goes to when nothing else decides
    /// (varnishd's `STV_next`): every store but the last (Transient) in
    /// turn; Transient when it is the only one.
    pub fn next_store(&self) -> usize {
        let n = self.stores.len().saturating_sub(1).max(1);
        self.next_store.fetch_add(1, Ordering::Relaxed) % n
    }

    /// The index of the store named `name`.
    pub fn store_index(&self, name: &str) -> Option<usize> {
        self.stores.iter().position(|s| s.name() == name)
    }

    fn shard(&self, key: &[u8]) -> &Shard<H> {
        &self.shards[self.hasher.hash_one(key) as usize & (SHARDS - 1)]
    }

    fn head_for(&self, key: &[u8]) -> Arc<ObjHead<H>> {
        let mut shard = lock(self.shard(key));
        if let Some(oh) = shard.get(key) {
            return oh.clone();
        }
        let oh = Arc::new(ObjHead {
            key: key.into(),
            cores: Mutex::new(Vec::new()),
            waiting: Notify::new(),
            woken: AtomicU64::new(0),
        });
        shard.insert(key.into(), oh.clone());
        bump(&self.stats.n_objecthead);
        oh
    }

    /// Drops an object head from the map once it holds nothing.
    fn maybe_forget(&self, oh: &ObjHead<H>) {
        let mut shard = lock(self.shard(&oh.key));
        if lock(&oh.cores).is_empty() && shard.remove(&oh.key).is_some() {
            self.stats.n_objecthead.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn new_core(&self, oh: &Arc<ObjHead<H>>, kind: Kind) -> Arc<ObjCore<H>> {
        bump(&self.stats.n_objectcore);
        Arc::new(ObjCore {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            xid: AtomicU64::new(0),
            head: Arc::downgrade(oh),
            state: Mutex::new(CoreState {
                kind,
                life: Lifetime { t_origin: 0.0, ttl: 0.0, grace: 0.0, keep: 0.0 },
                vary: Some(Vec::new()),
                obj: None,
                marker: None,
                dead: false,
            }),
            hits: AtomicU64::new(0),
            ban: Mutex::new(ban::BanRef::Unset),
            ban_seen: AtomicU64::new(0),
            lru: Mutex::new((0.0, 0)),
            store: AtomicUsize::new(0),
            in_lru: AtomicBool::new(false),
        })
    }

    /// Looks `key` up as `HSH_Lookup` does.
    pub fn lookup(self: &Arc<Self>, key: &[u8], want: &Want<'_>) -> Lookup<H> {
        self.lookup_noting_bans(key, want, &mut Vec::new())
    }

    /// [`lookup`](Cache::lookup), noting in `banned_xids` the transaction
    /// ids of the objects a ban caught on the way (what varnishd logs as
    /// `ExpBan <xid> banned lookup`).
    pub fn lookup_noting_bans(self: &Arc<Self>, key: &[u8], want: &Want<'_>, banned_xids: &mut Vec<u64>) -> Lookup<H> {
        let mut banned = Vec::new();
        let found = self.walk(key, want, &mut banned);
        for oc in banned {
            banned_xids.push(oc.xid());
            self.kill(&oc);
        }
        found
    }

    /// The walk of `lookup`, under the head's lock; objects a ban caught
    /// are left in `banned` to be removed once the lock is let go.
    fn walk(self: &Arc<Self>, key: &[u8], want: &Want<'_>, banned: &mut Vec<Arc<ObjCore<H>>>) -> Lookup<H> {
        let oh = self.head_for(key);
        let mut cores = lock(&oh.cores);
        // Read before the walk: a busy core that changes after we looked at
        // it bumps the count after this, so the waiter cannot miss it.
        let seen = oh.woken.load(Ordering::SeqCst);
        let mut busy_found = false;
        let mut stale: Option<(Arc<ObjCore<H>>, Lifetime)> = None;
        if !want.always_miss {
            for oc in cores.iter() {
                let st = lock(&oc.state);
                if st.dead {
                    continue;
                }
                if st.kind == Kind::Busy {
                    // A busy core carries the variant it is predicted to
                    // be: a request for another variant does not wait.
                    if !want.ignore_busy && (want.ignore_vary || vary_matches(&st.vary, want.header, want.vary_ignore))
                    {
                        busy_found = true;
                    }
                    continue;
                }
                // An object made with no TTL at all was only ever for the
                // request that fetched it (Varnish skips `ttl <= 0` too).
                if st.life.ttl <= 0.0 {
                    continue;
                }
                // Bans before Vary, as in `HSH_Lookup`: every variant and
                // marker met on the way is tested.
                if let Some(head) = st.ban_head() {
                    let req = BanReq { url: want.url, header: want.header };
                    if self.ban_check(oc, head, &st.life, &req) {
                        banned.push(oc.clone());
                        continue;
                    }
                }
                if !want.ignore_vary && !vary_matches(&st.vary, want.header, want.vary_ignore) {
                    continue;
                }
                let life = st.life;
                if life.fresh_until() > want.now {
                    let kind = st.kind;
                    drop(st);
                    match kind {
                        Kind::HitForPass => {
                            bump(&self.stats.cache_hitpass);
                            return Lookup::HitPass(oc.clone());
                        }
                        Kind::HitForMiss => {
                            bump(&self.stats.cache_hitmiss);
                            let marker = oc.clone();
                            let busy = self.insert_busy(&oh, &mut cores, want);
                            return Lookup::HitMiss(busy, marker);
                        }
                        _ => {
                            oc.hits.fetch_add(1, Ordering::Relaxed);
                            bump(&self.stats.cache_hit);
                            self.touch(oc, want.now);
                            return Lookup::Hit(oc.clone());
                        }
                    }
                }
                if st.kind == Kind::Object
                    && life.keep_until() > want.now
                    && stale.as_ref().is_none_or(|(_, l)| l.t_origin < life.t_origin)
                {
                    stale = Some((oc.clone(), life));
                }
            }
        }
        let in_grace = stale.as_ref().is_some_and(|(_, l)| {
            let grace = want.grace.map_or(l.grace, |g| g.min(l.grace));
            l.fresh_until() + grace.max(0.0) > want.now
        });
        if in_grace {
            let (oc, _) = stale.expect("checked");
            oc.hits.fetch_add(1, Ordering::Relaxed);
            bump(&self.stats.cache_hit);
            bump(&self.stats.cache_hit_grace);
            let busy = (!busy_found).then(|| self.insert_busy(&oh, &mut cores, want));
            return Lookup::Grace(oc, busy);
        }
        if busy_found {
            bump(&self.stats.busy_sleep);
            drop(cores);
            return Lookup::Wait(WaitTicket { head: oh.clone(), seen, stats: self.stats.clone() });
        }
        bump(&self.stats.cache_miss);
        let busy = self.insert_busy(&oh, &mut cores, want);
        Lookup::Miss(busy, stale.map(|(oc, _)| oc))
    }

    /// Inserts a busy core for the request's variant. Its variant is
    /// predicted (Varnish's "predictive vary"): the newest object under
    /// the key says which headers matter, and this request's values of
    /// them are what the fetch will most likely be for.
    fn insert_busy(
        self: &Arc<Self>,
        oh: &Arc<ObjHead<H>>,
        cores: &mut Vec<Arc<ObjCore<H>>>,
        want: &Want<'_>,
    ) -> Busy<H> {
        let predicted = cores.iter().find_map(|oc| {
            let st = lock(&oc.state);
            (st.kind != Kind::Busy && !st.dead).then(|| st.vary.clone())
        });
        let oc = self.new_core(oh, Kind::Busy);
        if let Some(Some(spec)) = predicted {
            let mine = spec.into_iter().map(|(name, _)| {
                let value = (want.header)(&name).map(|v| v.trim_ascii().to_vec());
                (name, value)
            });
            lock(&oc.state).vary = Some(mine.collect());
        }
        cores.insert(0, oc.clone());
        Busy { cache: self.clone(), oc: Some(oc), esidata: None }
    }

    /// Moves a core to the young end of the LRU, at most once per
    /// `LRU_INTERVAL`.
    fn touch(&self, oc: &Arc<ObjCore<H>>, now: f64) {
        if !oc.in_lru.load(Ordering::Relaxed) {
            return;
        }
        let mut place = lock(&oc.lru);
        if now - place.0 < LRU_INTERVAL {
            return;
        }
        let mut lru = lock(&self.lru[oc.store.load(Ordering::Relaxed)]);
        lru.remove(&place.1);
        let at = self.next_id.fetch_add(1, Ordering::Relaxed);
        lru.insert(at, Arc::downgrade(oc));
        *place = (now, at);
    }

    /// Evicts the least recently used objects of store `store` until
    /// `need` bytes are freed (or nothing more can go); objects still being
    /// fetched are skipped.
    fn evict(&self, store: usize, need: u64) -> bool {
        let mut freed = 0;
        let mut skipped = Vec::new();
        while freed < need {
            let next = lock(&self.lru[store]).pop_first();
            let Some((at, weak)) = next else { break };
            let Some(oc) = weak.upgrade() else { continue };
            let obj = oc.object();
            if obj.as_ref().is_some_and(|o| o.is_open()) {
                skipped.push((at, weak));
                continue;
            }
            freed += obj.map_or(0, |o| o.size());
            if self.kill(&oc) {
                bump(&self.stats.n_lru_nuked);
            }
        }
        lock(&self.lru[store]).extend(skipped);
        freed > 0
    }

    /// Removes a core from its head and the LRU; answers whether it was
    /// still alive.
    fn kill(&self, oc: &Arc<ObjCore<H>>) -> bool {
        let was_object = {
            let mut st = lock(&oc.state);
            if st.dead {
                return false;
            }
            st.dead = true;
            st.obj = None;
            st.marker = None;
            st.kind == Kind::Object
        };
        if was_object {
            self.stats.n_object.fetch_sub(1, Ordering::Relaxed);
        }
        self.stats.n_objectcore.fetch_sub(1, Ordering::Relaxed);
        self.ban_drop_object(oc);
        if oc.in_lru.swap(false, Ordering::Relaxed) {
            let place = lock(&oc.lru).1;
            lock(&self.lru[oc.store.load(Ordering::Relaxed)]).remove(&place);
        }
        if let Some(oh) = oc.head.upgrade() {
            lock(&oh.cores).retain(|c| !Arc::ptr_eq(c, oc));
            oh.wake();
            self.maybe_forget(&oh);
        }
        true
    }

    fn add_timer(&self, oc: &Arc<ObjCore<H>>, until: f64) {
        self.exp_when(oc, until);
        let ms = (until.max(0.0) * 1000.0) as u64;
        let mut timers = lock(&self.timers);
        let earliest = timers.peek().is_none_or(|Reverse((t, _, _))| ms < *t);
        timers.push(Reverse((ms, oc.id, TimerRef(Arc::downgrade(oc)))));
        drop(timers);
        if earliest {
            self.timer_added.notify_one();
        }
    }

    /// Removes a core at once: an object whose fetch failed mid-body must
    /// not be found again.
    pub fn remove(&self, oc: &Arc<ObjCore<H>>) {
        self.kill(oc);
        // The expiry looks again, as Varnish's thread does when a killed
        // object comes through its inbox.
        self.timer_added.notify_one();
    }

    /// Removes every core whose time is up at `now`; answers how many.
    pub fn expire(&self, now: f64) -> usize {
        let ms = (now * 1000.0) as u64;
        let mut n = 0;
        loop {
            let due = {
                let mut timers = lock(&self.timers);
                // Each look at the next core due is logged, due or not,
                // with the time it has left (Varnish's `exp_expire`).
                if let (Some(log), Some(Reverse((t, _, TimerRef(weak))))) = (self.exp_log.get(), timers.peek()) {
                    let left = *t as f64 / 1000.0 - now;
                    log(format_args!("EXP_expire p={:p} e={left:.6} f=0x0", weak.as_ptr()));
                }
                match timers.peek() {
                    Some(Reverse((t, _, _))) if *t <= ms => timers.pop(),
                    _ => None,
                }
            };
            let Some(Reverse((_, _, TimerRef(weak)))) = due else { break };
            if let Some(oc) = weak.upgrade() {
                if self.kill_logged(&oc, now) {
                    bump(&self.stats.n_expired);
                    n += 1;
                }
            }
        }
        n
    }

    /// Has the expiry's events logged by `f` from now on; the first call
    /// wins.
    pub fn set_exp_log(&self, f: ExpLog) {
        let _ = self.exp_log.set(f);
    }

    /// Kills `oc` at `now` as the expiry does, logging it (`EXP_Expired`,
    /// with the transaction that made it and how long it had left to
    /// live, as varnishd's expiry thread logs both expired and purged
    /// objects). Whether it was still alive.
    fn kill_logged(&self, oc: &Arc<ObjCore<H>>, now: f64) -> bool {
        let left = oc.lifetime().fresh_until().min(now) - now;
        if !self.kill(oc) {
            return false;
        }
        if let Some(log) = self.exp_log.get() {
            log(format_args!("EXP_Expired x={} t={left:.0}", oc.xid()));
        }
        true
    }

    /// Logs that `oc` is due at `t` (`EXP_When`), naming it by its
    /// address as Varnish names it by its pointer.
    fn exp_when(&self, oc: &Arc<ObjCore<H>>, t: f64) {
        if let Some(log) = self.exp_log.get() {
            log(format_args!("EXP_When p={:p} e={t:.6} f=0x0", Arc::as_ptr(oc)));
        }
    }

    /// The time the next core is due to expire, if any.
    fn next_expiry(&self) -> Option<f64> {
        lock(&self.timers).peek().map(|Reverse((t, _, _))| *t as f64 / 1000.0)
    }

    /// Expires cores as their time comes, until the cache is dropped
    /// (Varnish's expiry thread). `now` gives the wall clock.
    pub async fn run_expiry(self: Arc<Self>, now: fn() -> f64) {
        loop {
            self.expire(now());
            let wait = self
                .next_expiry()
                .map_or(Duration::from_secs(3600), |t| Duration::from_secs_f64((t - now()).clamp(0.001, 3600.0)));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.timer_added.notified() => {}
            }
        }
    }

    /// Removes every object and marker (not fetches under way): what a
    /// varnishd child restart does to a malloc store. Answers how many went.
    pub fn clear(&self) -> usize {
        let mut victims = Vec::new();
        for shard in &self.shards {
            let heads: Vec<Arc<ObjHead<H>>> = lock(shard).values().cloned().collect();
            for oh in heads {
                victims.extend(lock(&oh.cores).iter().filter(|oc| oc.kind() != Kind::Busy).cloned());
            }
        }
        victims.iter().filter(|oc| self.kill(oc)).count()
    }

    /// Removes every object and marker under `key` (`return (purge)`) at
    /// `now`; answers how many went.
    pub fn purge(&self, key: &[u8], now: f64) -> usize {
        bump(&self.stats.n_purges);
        let oh = lock(self.shard(key)).get(key).cloned();
        let Some(oh) = oh else { return 0 };
        let victims: Vec<_> = lock(&oh.cores).iter().filter(|oc| oc.kind() != Kind::Busy).cloned().collect();
        let n = victims.iter().filter(|oc| self.kill_logged(oc, now)).count();
        self.stats.n_obj_purged.fetch_add(n as u64, Ordering::Relaxed);
        n
    }

    /// Purges under `key` from `vcl_hit` or `vcl_miss` (`vmod_purge`,
    /// varnishd's `HSH_Purge`): with `ttl`, `grace` and `keep` all zero
    /// every object goes, as with [`purge`](Cache::purge); otherwise each
    /// one's lifetimes are cut (`EXP_Reduce`) so that it is fresh at most
    /// until `now + ttl`, then in grace at most `grace`, kept at most
    /// `keep`. `None` leaves that lifetime as it is, and a lifetime is
    /// never lengthened. Answers how many objects were touched.
    pub fn soft_purge(&self, key: &[u8], now: f64, ttl: Option<f64>, grace: Option<f64>, keep: Option<f64>) -> usize {
        if ttl == Some(0.0) && grace == Some(0.0) && keep == Some(0.0) {
            return self.purge(key, now);
        }
        bump(&self.stats.n_purges);
        let oh = lock(self.shard(key)).get(key).cloned();
        let Some(oh) = oh else { return 0 };
        let victims: Vec<_> = lock(&oh.cores).iter().filter(|oc| oc.kind() != Kind::Busy).cloned().collect();
        let mut n = 0;
        for oc in &victims {
            let life = {
                let mut st = lock(&oc.state);
                if st.dead {
                    continue;
                }
                let life = &mut st.life;
                if let Some(t) = ttl.map(|t| now + t - life.t_origin).filter(|t| *t < life.ttl) {
                    life.ttl = t;
                }
                if let Some(g) = grace.filter(|g| *g < life.grace) {
                    life.grace = g;
                }
                if let Some(k) = keep.filter(|k| *k < life.keep) {
                    life.keep = k;
                }
                *life
            };
            // The core's old timer comes later and finds it gone.
            self.add_timer(oc, life.keep_until());
            n += 1;
        }
        self.stats.n_obj_purged.fetch_add(n as u64, Ordering::Relaxed);
        n
    }
}

/// Whether a core made for `vary` serves a request with these headers
/// (Varnish's `VRY_Match`): every header the response varied on has the
/// same value, or is absent in both.
fn vary_matches(vary: &VarySpec, header: &dyn Fn(&[u8]) -> Option<Vec<u8>>, ignore: &[&[u8]]) -> bool {
    let Some(spec) = vary else { return false };
    spec.iter().all(|(name, want)| {
        ignore.contains(&name.as_slice()) || header(name).as_deref().map(<[u8]>::trim_ascii) == want.as_deref()
    })
}

impl<H: Send + Sync + 'static> Busy<H> {
    fn take(&mut self) -> Arc<ObjCore<H>> {
        self.oc.take().expect("a busy core is completed once")
    }

    /// The id the core will keep (for tests and logs).
    pub fn id(&self) -> u64 {
        self.oc.as_ref().map_or(0, |oc| oc.id)
    }

    /// Gives the object about to be published opaque delivery
    /// instructions that the server made while reading its body
    /// (Varnish's `OA_ESIDATA`), readable with [`Object::esidata`] from
    /// the moment the object can be found.
    pub fn set_esidata(&mut self, data: Vec<u8>) {
        self.esidata = Some(Arc::new(data));
    }

    /// [`Busy::publish_in`] the first store.
    pub fn publish(
        self,
        head: H,
        head_size: u64,
        xid: u64,
        life: Lifetime,
        vary: VarySpec,
    ) -> Result<Published<H>, NoSpace> {
        self.publish_in(0, head, head_size, xid, life, vary).map_err(|(_, e)| e)
    }

    /// Makes the object available in store `store` (an index into
    /// [`Cache::stores`]): the core becomes a cached object with these
    /// lifetimes, findable for the variant `vary`, and every client
    /// waiting on the key looks again. The body may still be arriving.
    /// `head_size` is what the head costs in the store (with
    /// [`OBJECT_OVERHEAD`] on top); it fails, and the busy core comes back
    /// for another try, when there is no room for it.
    pub fn publish_in(
        mut self,
        store: usize,
        head: H,
        head_size: u64,
        xid: u64,
        life: Lifetime,
        vary: VarySpec,
    ) -> Result<Published<H>, (Busy<H>, NoSpace)> {
        let oc = self.take();
        let cache = self.cache.clone();
        let Some(space) = cache.stores[store].allocate(head_size + OBJECT_OVERHEAD) else {
            self.oc = Some(oc);
            return Err((self, NoSpace));
        };
        let mut obj = Object::new(head, space, xid, cache.stores[store].clone());
        obj.esidata = self.esidata.take();
        let obj = Arc::new(obj);
        oc.store.store(store, Ordering::Relaxed);
        oc.xid.store(xid, Ordering::Relaxed);
        {
            let mut st = lock(&oc.state);
            st.kind = Kind::Object;
            st.life = life;
            st.vary = vary;
            st.obj = Some(obj.clone());
        }
        bump(&cache.stats.n_object);
        cache.ban_new_object(&oc);
        {
            let at = cache.next_id.fetch_add(1, Ordering::Relaxed);
            *lock(&oc.lru) = (life.t_origin.max(0.0), at);
            lock(&cache.lru[store]).insert(at, Arc::downgrade(&oc));
            oc.in_lru.store(true, Ordering::Relaxed);
        }
        cache.add_timer(&oc, life.keep_until());
        if let Some(oh) = oc.head.upgrade() {
            oh.wake();
        }
        Ok((oc, obj))
    }

    /// Marks the key hit-for-miss for `life.ttl` (uncacheable): later
    /// lookups fetch for themselves instead of waiting. `head` is the
    /// response, for bans.
    pub fn hit_for_miss(mut self, xid: u64, life: Lifetime, vary: VarySpec, head: H) {
        let oc = self.take();
        oc.xid.store(xid, Ordering::Relaxed);
        self.cache.mark(oc, Kind::HitForMiss, life, vary, head);
    }

    /// Marks the key hit-for-pass for `life.ttl`.
    pub fn hit_for_pass(mut self, xid: u64, life: Lifetime, vary: VarySpec, head: H) {
        let oc = self.take();
        oc.xid.store(xid, Ordering::Relaxed);
        self.cache.mark(oc, Kind::HitForPass, life, vary, head);
    }
}

impl<H: Send + Sync + 'static> Cache<H> {
    fn mark(&self, oc: Arc<ObjCore<H>>, kind: Kind, life: Lifetime, vary: VarySpec, head: H) {
        let life = Lifetime { grace: 0.0, keep: 0.0, ..life };
        {
            let mut st = lock(&oc.state);
            st.kind = kind;
            st.life = life;
            st.vary = vary;
            st.marker = Some(Arc::new(head));
        }
        if life.ttl > 0.0 {
            self.ban_new_object(&oc);
            self.add_timer(&oc, life.fresh_until());
        } else {
            self.kill(&oc);
        }
        if let Some(oh) = oc.head.upgrade() {
            oh.wake();
        }
    }
}

impl<H: Send + Sync + 'static> Drop for Busy<H> {
    fn drop(&mut self) {
        if let Some(oc) = self.oc.take() {
            self.cache.kill(&oc);
        }
    }
}

#[cfg(test)]
mod tests;
