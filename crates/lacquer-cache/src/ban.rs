//! The ban list (Varnish's `cache_ban.c` and `cache_ban_lurker.c`).
//!
//! Bans are kept newest first in Varnish; here the vector is oldest first
//! and read backwards. Every published object points at one ban (its
//! `oc->ban`): the newest when it was made, later the newest it has been
//! tested up to. A ban's reference count is the number of objects pointing
//! at it, which is what `ban.list` shows and what keeps it in the list.
//!
//! - A lookup tests an object only against the bans newer than the one it
//!   points at; when it points at the newest ban (`ban_start`), a single
//!   atomic load says so and no lock is taken.
//! - The list starts with a "magic" ban that is already completed, so that
//!   every object always has a ban to point at.
//! - `ban_dups` marks older identical bans completed when one is added;
//!   bans on `obj.ttl` or `obj.age` are never duplicates, as they are
//!   relative to the time they were made.
//! - The lurker (a thread of its own, as in Varnish) tests the objects of
//!   older bans against the bans on `obj.*` that are at least
//!   `ban_lurker_age` old, moves the survivors up, marks those bans
//!   completed, and deletes unreferenced bans from the tail; bans on
//!   `req.*` are barriers it cannot pass. Past `ban_cutoff` bans it kills
//!   objects untested.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::{bump, lock, Cache, Kind, Lifetime, ObjCore};

/// What a ban may look at in a request: its URL and headers.
pub struct BanReq<'a> {
    pub url: &'a [u8],
    pub header: &'a dyn Fn(&[u8]) -> Option<Vec<u8>>,
}

/// A ban's test of one object: its head and lifetimes, and the request
/// when there is one (the lurker has none, and tests no ban on `req.*`).
/// It adds the conditions it evaluated to the count (Varnish's
/// `bans_tests_tested`) and answers whether every condition held.
pub type BanTest<H> = Box<dyn Fn(&H, &Lifetime, Option<&BanReq<'_>>, &mut u64) -> bool + Send + Sync>;

/// A ban to add: its test and what `ban.list` and `ban_dups` know of it.
pub struct NewBan<H> {
    /// The expression as `ban.list` renders it.
    pub spec: String,
    /// What makes two bans identical for `ban_dups`; `None` for a ban that
    /// is never a duplicate (one on `obj.ttl` or `obj.age`).
    pub dedup: Option<String>,
    /// Whether a condition looks at the request (`BANS_FLAG_REQ`).
    pub uses_req: bool,
    /// Whether a condition looks at the object (`BANS_FLAG_OBJ`).
    pub uses_obj: bool,
    pub test: BanTest<H>,
}

/// One ban (Varnish's `struct ban`).
pub struct Ban<H> {
    pub(crate) id: u64,
    /// When it was added.
    pub t: f64,
    spec: String,
    dedup: Option<String>,
    /// Whether a condition looks at the request.
    pub uses_req: bool,
    /// Whether a condition looks at the object.
    pub uses_obj: bool,
    completed: AtomicBool,
    /// The objects pointing at it.
    refs: AtomicI64,
    test: BanTest<H>,
}

impl<H> Ban<H> {
    /// The expression; empty once completed (Varnish then keeps only the
    /// ban's header).
    pub fn spec(&self) -> &str {
        if self.completed() {
            ""
        } else {
            &self.spec
        }
    }

    /// Whether nothing is left for it to test.
    pub fn completed(&self) -> bool {
        self.completed.load(Ordering::Acquire)
    }

    /// How many objects point at it.
    pub fn refs(&self) -> i64 {
        self.refs.load(Ordering::Acquire)
    }
}

/// Which ban an object points at (its `oc->ban`).
pub(crate) enum BanRef<H> {
    /// Not published yet.
    Unset,
    At(Arc<Ban<H>>),
    /// Dead: it never points at a ban again.
    Gone,
}

/// The parameters the ban list works by (`ban_*` in `param.show`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BanParams {
    pub dups: bool,
    /// 0: no cutoff.
    pub cutoff: u64,
    pub lurker_age: f64,
    /// 0: the lurker only trims the tail.
    pub lurker_sleep: f64,
    pub lurker_batch: u64,
}

impl Default for BanParams {
    /// Varnish's defaults.
    fn default() -> BanParams {
        BanParams { dups: true, cutoff: 0, lurker_age: 60.0, lurker_sleep: 0.01, lurker_batch: 1000 }
    }
}

/// Where the ban list's parameters come from: the server's live ones.
pub type BanParamSource = Box<dyn Fn() -> BanParams + Send + Sync>;

/// What the lurker reports, for the server to log (varnishd's lurker logs
/// them outside any transaction).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LurkerEvent {
    /// The object made by this transaction was banned (`ExpBan … banned
    /// by lurker`).
    Banned(u64),
    /// The object was killed untested, past `ban_cutoff` (`ExpBan …
    /// killed for lurker cutoff`).
    CutOff(u64),
    /// The lurker goes to sleep for this long unless kicked.
    Sleep(f64),
}

/// Where the lurker's reports go.
pub type LurkerLog = Box<dyn Fn(LurkerEvent) + Send + Sync>;

/// The ban list and what wakes its lurker.
pub(crate) struct Bans<H> {
    /// Oldest first; never empty once the cache exists.
    list: Mutex<Vec<Arc<Ban<H>>>>,
    /// The newest ban's id (Varnish's `ban_start`), read without a lock.
    start: AtomicU64,
    params: Mutex<Option<BanParamSource>>,
    log: Mutex<Option<LurkerLog>>,
    /// Kicks of the lurker (Varnish's `ban_generation`).
    kicks: Mutex<u64>,
    kicked: Condvar,
    /// Objects the lurker handled since it last slept (`ban_batch`).
    batch: AtomicU64,
}

impl<H> Bans<H> {
    pub(crate) fn new() -> Bans<H> {
        Bans {
            list: Mutex::new(Vec::new()),
            start: AtomicU64::new(0),
            params: Mutex::new(None),
            log: Mutex::new(None),
            kicks: Mutex::new(0),
            kicked: Condvar::new(),
            batch: AtomicU64::new(0),
        }
    }

    fn kick(&self) {
        *lock(&self.kicks) += 1;
        self.kicked.notify_one();
    }
}

/// Renders a duration as `ban.list` does (Varnish's `vdur_render`): whole
/// years, weeks, days, hours, minutes or seconds when it is a whole number
/// of them, else seconds with milliseconds. The integer conversions wrap
/// as C's do, so a negative duration shows as varnishd shows it.
pub fn render_duration(d: f64) -> String {
    let dec = (d.floor() as i64) as u64;
    let frac = ((d * 1e3).floor() as i64) as u64 % 1000;
    if dec == 0 && frac == 0 {
        return "0s".into();
    }
    if dec == 0 {
        return format!("{frac}ms");
    }
    if frac != 0 {
        return format!("{dec}.{frac:03}s");
    }
    const M: u64 = 60;
    for (unit, s) in [("y", 365 * 24 * 3600), ("w", 7 * 24 * 3600), ("d", 24 * 3600), ("h", 3600), ("m", M)] {
        if dec >= s && dec.is_multiple_of(s) {
            return format!("{}{unit}", dec / s);
        }
    }
    format!("{dec}s")
}

impl<H: Send + Sync + 'static> Cache<H> {
    /// Puts the "magic" ban every first object points at: already
    /// completed, as varnishd's boot ban.
    pub(crate) fn magic_ban(&self) {
        let test: BanTest<H> = Box::new(|_, _, _, _| false);
        let new = NewBan { spec: String::new(), dedup: None, uses_req: false, uses_obj: false, test };
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        let b = self.insert_ban(t, new, false);
        let _list = lock(&self.bans.list);
        self.complete(&b);
    }

    /// Takes the ban list's parameters from `source` from now on.
    pub fn set_ban_params(&self, source: BanParamSource) {
        *lock(&self.bans.params) = Some(source);
    }

    /// Sends the lurker's reports to `log` from now on.
    pub fn set_lurker_log(&self, log: LurkerLog) {
        *lock(&self.bans.log) = Some(log);
    }

    fn lurker_log(&self, event: LurkerEvent) {
        if let Some(log) = lock(&self.bans.log).as_ref() {
            log(event);
        }
    }

    fn ban_params(&self) -> BanParams {
        lock(&self.bans.params).as_ref().map_or_else(BanParams::default, |f| f())
    }

    /// Adds a ban made at `t` (Varnish's `BAN_Commit`): every object in
    /// the cache now that its test matches is gone. Older identical bans
    /// are completed when `ban_dups` is on. Answers the ban.
    pub fn ban(&self, t: f64, new: NewBan<H>) -> Arc<Ban<H>> {
        let dups = self.ban_params().dups;
        self.insert_ban(t, new, dups)
    }

    fn insert_ban(&self, t: f64, new: NewBan<H>, dups: bool) -> Arc<Ban<H>> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let b = Arc::new(Ban {
            id,
            t,
            spec: new.spec,
            dedup: new.dedup,
            uses_req: new.uses_req,
            uses_obj: new.uses_obj,
            completed: AtomicBool::new(false),
            refs: AtomicI64::new(0),
            test: new.test,
        });
        let mut list = lock(&self.bans.list);
        list.push(b.clone());
        self.bans.start.store(id, Ordering::Release);
        bump(&self.stats.bans);
        bump(&self.stats.bans_added);
        if b.uses_obj {
            bump(&self.stats.bans_obj);
        }
        if b.uses_req {
            bump(&self.stats.bans_req);
        }
        if dups && b.dedup.is_some() {
            for old in list.iter().rev().skip(1) {
                if !old.completed() && old.dedup == b.dedup {
                    self.complete(old);
                    bump(&self.stats.bans_dups);
                }
            }
        }
        if !b.uses_req {
            self.bans.kick();
        }
        b
    }

    /// Marks a ban completed; the list's lock is held.
    fn complete(&self, b: &Ban<H>) {
        if !b.completed.swap(true, Ordering::AcqRel) {
            bump(&self.stats.bans_completed);
        }
    }

    /// The bans, newest first (`ban.list`).
    pub fn bans(&self) -> Vec<Arc<Ban<H>>> {
        lock(&self.bans.list).iter().rev().cloned().collect()
    }

    /// The bans, newest first, each with the addresses of the objects
    /// pointing at it (what `ban.list` shows with `debug +lurker`); it
    /// walks the whole cache.
    pub fn bans_with_objects(&self) -> Vec<(Arc<Ban<H>>, Vec<usize>)> {
        let by = self.objects_by_ban();
        let addr = |oc: &Arc<ObjCore<H>>| Arc::as_ptr(oc) as usize;
        let objects = |b: &Ban<H>| by.get(&b.id).map_or_else(Vec::new, |v| v.iter().map(addr).collect());
        self.bans().into_iter().map(|b| (b.clone(), objects(&b))).collect()
    }

    /// Points a newly published object at the newest ban
    /// (`BAN_NewObjCore`).
    pub(crate) fn ban_new_object(&self, oc: &ObjCore<H>) {
        let list = lock(&self.bans.list);
        let newest = list.last().expect("the magic ban is always there").clone();
        Self::point(oc, &newest, None);
        drop(list);
    }

    /// Points `oc` at `b` instead of the ban `from` it pointed at (`None`:
    /// none yet), moving the reference; the list's lock is held, so `b`
    /// cannot be deleted. Nothing happens when `oc` has moved meanwhile or
    /// died, so a dead object never holds a reference.
    fn point(oc: &ObjCore<H>, b: &Arc<Ban<H>>, from: Option<u64>) {
        let mut cur = lock(&oc.ban);
        let at = match &*cur {
            BanRef::Unset => None,
            BanRef::At(old) => Some(old.id),
            BanRef::Gone => return,
        };
        if at != from {
            return;
        }
        if let BanRef::At(old) = &*cur {
            old.refs.fetch_sub(1, Ordering::AcqRel);
        }
        b.refs.fetch_add(1, Ordering::AcqRel);
        oc.ban_seen.store(b.id, Ordering::Release);
        *cur = BanRef::At(b.clone());
    }

    /// Lets go of a dying object's ban for good (`BAN_DestroyObj`).
    pub(crate) fn ban_drop_object(&self, oc: &ObjCore<H>) {
        let mut cur = lock(&oc.ban);
        if let BanRef::At(b) = std::mem::replace(&mut *cur, BanRef::Gone) {
            b.refs.fetch_sub(1, Ordering::AcqRel);
        }
        oc.ban_seen.store(0, Ordering::Release);
    }

    /// Tests an object found at lookup against the bans newer than the
    /// one it points at (`BAN_CheckObject`); answers whether one matched.
    /// When none does, it now points at the newest. An object already at
    /// the newest ban costs one atomic load.
    pub(crate) fn ban_check(&self, oc: &ObjCore<H>, head: &H, life: &Lifetime, req: &BanReq<'_>) -> bool {
        let seen = oc.ban_seen.load(Ordering::Acquire);
        if seen == 0 || seen == self.bans.start.load(Ordering::Acquire) {
            return false;
        }
        let newer: Vec<Arc<Ban<H>>> = {
            let list = lock(&self.bans.list);
            list.iter().rev().take_while(|b| b.id > seen).cloned().collect()
        };
        let Some(b0) = newer.first().cloned() else { return false };
        let mut tests = 0;
        let hit = newer.iter().filter(|b| !b.completed()).any(|b| (b.test)(head, life, Some(req), &mut tests));
        let list = lock(&self.bans.list);
        bump(&self.stats.bans_tested);
        self.stats.bans_tests_tested.fetch_add(tests, Ordering::Relaxed);
        if hit {
            bump(&self.stats.bans_obj_killed);
        } else {
            Self::point(oc, &b0, Some(seen));
        }
        if list.first().is_some_and(|tail| tail.refs() == 0) {
            self.bans.kick();
        }
        hit
    }

    /// Deletes the unreferenced bans at the tail of the list, never the
    /// newest (`ban_cleantail`); answers the ids deleted.
    fn ban_cleantail(&self) -> Vec<u64> {
        let mut list = lock(&self.bans.list);
        let n = list.iter().take(list.len().saturating_sub(1)).take_while(|b| b.refs() == 0).count();
        let gone: Vec<Arc<Ban<H>>> = list.drain(..n).collect();
        drop(list);
        for b in &gone {
            if b.completed() {
                self.stats.bans_completed.fetch_sub(1, Ordering::Relaxed);
            }
            if b.uses_obj {
                self.stats.bans_obj.fetch_sub(1, Ordering::Relaxed);
            }
            if b.uses_req {
                self.stats.bans_req.fetch_sub(1, Ordering::Relaxed);
            }
            self.stats.bans.fetch_sub(1, Ordering::Relaxed);
            bump(&self.stats.bans_deleted);
        }
        gone.iter().map(|b| b.id).collect()
    }

    /// Wakes the lurker now (as `ban.list` does in varnishd).
    pub fn kick_lurker(&self) {
        self.bans.kick();
    }

    /// One round of the lurker at time `now` (`ban_lurker_work`): answers
    /// how long it may sleep before the next unless kicked.
    pub fn lurker_work(&self, now: f64) -> f64 {
        let p = self.ban_params();
        let mut dt = 49.62;
        if p.lurker_sleep == 0.0 {
            self.ban_cleantail();
            return dt;
        }
        let cutoff = if p.cutoff > 0 { p.cutoff } else { u64::MAX };
        let list = self.bans();
        let d = now - p.lurker_age;
        // The ban survivors move to, and the bans old enough to test
        // (`obans`), newest first.
        let mut bd: Option<Arc<Ban<H>>> = None;
        let mut obans: Vec<Arc<Ban<H>>> = Vec::new();
        let mut objects: Option<ObjectsByBan<H>> = None;
        for (count, b) in list.iter().enumerate() {
            let count = count as u64;
            // Objects are gathered once, and only when a ban that has
            // some is reached: a lurker kicked again finds nothing to scan.
            if let Some(to) = bd.as_ref().filter(|_| b.refs() > 0) {
                let objects = objects.get_or_insert_with(|| self.objects_by_ban());
                self.lurker_test_ban(b, objects, &mut obans, to, count > cutoff, &p);
            }
            if b.completed() {
                continue;
            }
            if b.uses_req && count <= cutoff {
                if bd.is_some() {
                    bd = list.get(count as usize + 1).cloned();
                }
                continue;
            }
            let n = b.t - d;
            if n < 0.0 {
                obans.push(b.clone());
                bd.get_or_insert_with(|| b.clone());
            } else if n < dt {
                dt = n;
            }
        }
        // Conceptually every oban is now completed: the tail goes, and
        // what remains of them is marked.
        let gone = self.ban_cleantail();
        obans.retain(|b| !gone.contains(&b.id));
        let _list = lock(&self.bans.list);
        for b in &obans {
            self.complete(b);
        }
        dt
    }

    /// The published objects, by the ban they point at, oldest first.
    fn objects_by_ban(&self) -> ObjectsByBan<H> {
        let mut by: ObjectsByBan<H> = std::collections::HashMap::new();
        for shard in &self.shards {
            let heads: Vec<_> = lock(shard).values().cloned().collect();
            for oh in heads {
                for oc in lock(&oh.cores).iter() {
                    let id = oc.ban_seen.load(Ordering::Acquire);
                    if id != 0 {
                        by.entry(id).or_default().push(oc.clone());
                    }
                }
            }
        }
        for v in by.values_mut() {
            v.sort_by_key(|oc| oc.id);
        }
        by
    }

    /// Tests the objects pointing at `bt` against `obans`, oldest ban
    /// first (`ban_lurker_test_ban`): kills those a ban matches (all of
    /// them when `kill`, past `ban_cutoff`) and points the others at `bd`.
    fn lurker_test_ban(
        &self,
        bt: &Arc<Ban<H>>,
        objects: &ObjectsByBan<H>,
        obans: &mut Vec<Arc<Ban<H>>>,
        bd: &Arc<Ban<H>>,
        kill: bool,
        p: &BanParams,
    ) {
        let Some(ocs) = objects.get(&bt.id) else { return };
        let (mut tested, mut tests, mut killed, mut cut) = (0u64, 0u64, 0u64, 0u64);
        for oc in ocs {
            if self.bans.batch.fetch_add(1, Ordering::Relaxed) + 1 > p.lurker_batch {
                std::thread::sleep(Duration::from_secs_f64(p.lurker_sleep.max(0.0)));
                self.bans.batch.store(0, Ordering::Relaxed);
            }
            let (head, life) = {
                let st = lock(&oc.state);
                match (&st.obj, &st.marker) {
                    _ if st.ban_head().is_none() => continue,
                    (Some(obj), _) if st.kind == Kind::Object => (Held::Object(obj.clone()), st.life),
                    (_, Some(head)) => (Held::Marker(head.clone()), st.life),
                    _ => continue,
                }
            };
            let mut hit = false;
            let mut i = obans.len();
            while i > 0 {
                i -= 1;
                if oc.ban_seen.load(Ordering::Acquire) != bt.id {
                    // A lookup tested it meanwhile, or it died.
                    break;
                }
                let bl = &obans[i];
                if bl.completed() {
                    // Overtaken by a newer identical ban.
                    obans.remove(i);
                    continue;
                }
                hit = kill || {
                    tested += 1;
                    (bl.test)(head.head(), &life, None, &mut tests)
                };
                if hit {
                    let xid = oc.xid();
                    if self.kill(oc) {
                        if kill {
                            cut += 1;
                            self.lurker_log(LurkerEvent::CutOff(xid));
                        } else {
                            killed += 1;
                            self.lurker_log(LurkerEvent::Banned(xid));
                        }
                    }
                    break;
                }
            }
            if !hit && !Arc::ptr_eq(bt, bd) {
                let _list = lock(&self.bans.list);
                Self::point(oc, bd, Some(bt.id));
            }
        }
        self.stats.bans_lurker_tested.fetch_add(tested, Ordering::Relaxed);
        self.stats.bans_lurker_tests_tested.fetch_add(tests, Ordering::Relaxed);
        self.stats.bans_lurker_obj_killed.fetch_add(killed, Ordering::Relaxed);
        self.stats.bans_lurker_obj_killed_cutoff.fetch_add(cut, Ordering::Relaxed);
    }

    /// Starts the lurker's thread, which works until the cache is gone,
    /// sleeping between rounds as long as `lurker_work` says unless kicked
    /// (`ban_lurker`). `now` gives the wall clock.
    pub fn spawn_lurker(self: &Arc<Self>, now: fn() -> f64) {
        let weak = Arc::downgrade(self);
        let spawned = std::thread::Builder::new().name("ban-lurker".into()).spawn(move || {
            let mut seen = 0;
            loop {
                let Some(cache) = weak.upgrade() else { return };
                let dt = cache.lurker_work(now());
                cache.lurker_log(LurkerEvent::Sleep(dt));
                drop(cache);
                let until = std::time::Instant::now() + Duration::from_secs_f64(dt.clamp(0.0, 3600.0));
                // Sleeps until kicked or `dt` is up, waking once a second
                // to notice the cache going.
                loop {
                    let Some(cache) = weak.upgrade() else { return };
                    let kicks = lock(&cache.bans.kicks);
                    let left = until.saturating_duration_since(std::time::Instant::now());
                    if *kicks != seen || left.is_zero() {
                        seen = *kicks;
                        break;
                    }
                    let wait = left.min(Duration::from_secs(1));
                    let kicks = cache.bans.kicked.wait_timeout(kicks, wait).unwrap_or_else(|e| e.into_inner()).0;
                    cache.bans.batch.store(0, Ordering::Relaxed);
                    if *kicks != seen {
                        seen = *kicks;
                        break;
                    }
                }
            }
        });
        if let Err(e) = spawned {
            eprintln!("lacquer: cannot start the ban lurker: {e}");
        }
    }
}

/// What the lurker holds of an object while it tests it.
enum Held<H> {
    Object(Arc<crate::Object<H>>),
    Marker(Arc<H>),
}

impl<H> Held<H> {
    fn head(&self) -> &H {
        match self {
            Held::Object(o) => &o.head,
            Held::Marker(h) => h,
        }
    }
}

/// The lurker's view of which objects point at which ban.
type ObjectsByBan<H> = std::collections::HashMap<u64, Vec<Arc<ObjCore<H>>>>;
