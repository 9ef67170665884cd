//! The shard director's ring (Varnish 7.1's `shard_cfg.c` and
//! `shard_dir.c`): consistent hashing over the members, so that a key
//! keeps its backend while the others come and go.
//!
//! Each member puts `replicas` points on a ring of 2³² (times its weight):
//! point `j` is `VRT_HashStrands32(ident, j)`, the last four bytes of the
//! SHA-256 of the member's ident (its name unless given) and `j` in
//! decimal, read little-endian. A key picks the first point at or after
//! it, and then the members in ring order, each once, until one fits:
//! the `alt`-th one, healthy or not as `healthy=` says. Everything here
//! follows varnishd's code step by step, quirks included (a key past the
//! last point takes the last point, not the first), so that the same VCL
//! sends every key to the same backend as varnishd does.
//!
//! Changes (`add_backend`, `remove_backend`, `clear`) are queued by the
//! task that makes them and applied together by `reconfigure()`, or when
//! that task ends; members keep their places, a removed member's place is
//! filled by the last one (what varnishd's debug output shows as `host`).

use std::sync::{Mutex, RwLock};

use lacquer_module::Backend;

/// `debug()` flags: log each lookup.
pub const DEBUG_LOOKUP: i64 = 1;
/// `debug()` flags: log the ring after each reconfiguration.
pub const DEBUG_CIRCLE: i64 = 2;
/// `debug()` flags: log rampup and warmup decisions.
pub const DEBUG_RAMPWARM: i64 = 4;

/// Varnish's `VRT_HashStrands32`: the SHA-256 of the non-empty parts, its
/// last four bytes read least significant first.
pub fn hash32(parts: &[&[u8]]) -> u32 {
    let mut all = Vec::new();
    for p in parts {
        all.extend_from_slice(p);
    }
    let d = lacquer_cli::sha256(&all);
    u32::from_le_bytes([d[28], d[29], d[30], d[31]])
}

/// A key from a BLOB: its first four bytes, most significant first; a
/// shorter blob fills the low bytes (`shard_blob_key`).
pub fn blob_key(b: &[u8]) -> u32 {
    let mut k = [0u8; 4];
    let n = b.len().min(4);
    k[4 - n..].copy_from_slice(&b[..n]);
    u32::from_be_bytes(k)
}

/// One member.
#[derive(Clone)]
pub struct Member {
    pub backend: Backend,
    /// The backend's VCL name, for its default ident and the logs.
    pub name: String,
    pub ident: Option<String>,
    /// Its own rampup duration, else the director's.
    pub rampup: Option<f64>,
    pub weight: f64,
}

impl Member {
    /// The ident its points are hashed from.
    pub fn ident(&self) -> &str {
        self.ident.as_deref().unwrap_or(&self.name)
    }

    /// `s1` or `s1/ident`, as varnishd names a member in its notices.
    fn label(&self) -> String {
        match &self.ident {
            Some(i) => format!("{}/{}", self.name, i),
            None => self.name.clone(),
        }
    }
}

/// A queued change.
#[derive(Clone)]
pub enum Change {
    Add(Member),
    /// Removes the members of this ident, or without one of this backend.
    Remove {
        backend: Option<Backend>,
        ident: Option<String>,
    },
    Clear,
}

/// A point on the ring and the member (its place) it belongs to.
#[derive(Clone, Copy, Debug)]
pub struct Point {
    pub point: u32,
    pub host: usize,
}

/// The director's configuration, replaced under a lock by reconfiguring.
#[derive(Default)]
pub struct Ring {
    /// Members by place; `None` only while changes are applied.
    pub members: Vec<Option<Member>>,
    pub points: Vec<Point>,
}

/// Where messages go: `(tag, text)`, the tag a log tag's name.
pub type Log<'a> = &'a mut dyn FnMut(&str, String);

impl Ring {
    fn live(&self) -> impl Iterator<Item = &Member> {
        self.members.iter().flatten()
    }

    /// The place of the member with this ident (`shardcfg_backend_lookup`).
    fn find(&self, ident: &str) -> Option<&Member> {
        self.live().find(|m| m.ident() == ident)
    }

    /// Applies `changes` in order, as varnishd does: only what follows the
    /// last `clear` counts; a member added twice (same ident) is skipped
    /// with a notice; a removed member leaves a hole that the next add
    /// fills, and the holes left at the end are filled by the last members.
    pub fn apply(&mut self, changes: &[Change], name: &str, log: Log<'_>) {
        let from = match changes.iter().rposition(|c| matches!(c, Change::Clear)) {
            Some(i) => {
                self.members.clear();
                i + 1
            }
            None => 0,
        };
        for c in &changes[from..] {
            match c {
                Change::Add(m) => {
                    if let Some(old) = self.find(m.ident()) {
                        log(
                            "Notice",
                            format!("vmod_directors: shard {name}: backend {} already exists - skipping", old.label()),
                        );
                        continue;
                    }
                    match self.members.iter().position(Option::is_none) {
                        Some(hole) => self.members[hole] = Some(m.clone()),
                        None => self.members.push(Some(m.clone())),
                    }
                }
                Change::Remove { backend, ident } => {
                    for slot in &mut self.members {
                        // An ident picks by ident alone, whatever the
                        // backend (`shardcfg_backend_del_cmp`).
                        let gone = slot.as_ref().is_some_and(|m| match ident.as_deref() {
                            Some(i) => i == m.ident(),
                            None => backend.is_some_and(|b| b == m.backend),
                        });
                        if gone {
                            *slot = None;
                        }
                    }
                }
                Change::Clear => unreachable!("only changes after the last clear are applied"),
            }
        }
        self.compact();
    }

    /// Fills the holes from the end (`shardcfg_backend_finalize`).
    fn compact(&mut self) {
        loop {
            while matches!(self.members.last(), Some(None)) {
                self.members.pop();
            }
            let Some(hole) = self.members.iter().position(Option::is_none) else { return };
            let last = self.members.pop().flatten();
            self.members[hole] = last;
        }
    }

    /// Builds the ring from the members (`shardcfg_hashcircle`).
    pub fn build(&mut self, replicas: u32, debug: i64, log: Log<'_>) {
        let n = self.members.len() as u32;
        let rmax = (u32::MAX - 1) / n.max(1);
        let mut points = Vec::new();
        for (host, m) in self.members.iter().enumerate() {
            let Some(m) = m else { continue };
            let r = ((f64::from(replicas) * m.weight) as u32).min(rmax);
            let ident = m.ident().as_bytes();
            for j in 0..r {
                let s = j.to_string();
                points.push(Point { point: hash32(&[ident, s.as_bytes()]), host });
            }
        }
        points.sort_by_key(|p| p.point);
        if debug & DEBUG_CIRCLE != 0 {
            for (i, p) in points.iter().enumerate() {
                log(
                    "Debug",
                    format!(
                        "vmod_directors: shard: hashcircle[{i:5}] = {{point = {:8x}, host = {:2}}}",
                        p.point, p.host
                    ),
                );
            }
        }
        self.points = points;
    }

    /// The index of the point `key` maps to (`shard_lookup`, with its
    /// quirk: a key past the last point takes the last).
    fn lookup(&self, key: u32) -> usize {
        let n = self.points.len();
        let (mut low, mut high) = (0usize, n);
        loop {
            let i = (high + low) / 2;
            let p = self.points[i].point;
            if p == key {
                return i;
            } else if i == n - 1 {
                return n - 1;
            } else if p < key && self.points[i + 1].point >= key {
                return i + 1;
            } else if p > key {
                if i == 0 {
                    return 0;
                }
                high = i;
            } else {
                low = i;
            }
        }
    }

    /// The member at a place.
    pub fn member(&self, host: usize) -> Option<&Member> {
        self.members.get(host)?.as_ref()
    }
}

/// How health counts in a pick (`healthy=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Healthy {
    Chosen,
    Ignore,
    All,
}

impl Healthy {
    pub fn parse(s: &str) -> Healthy {
        match s {
            "IGNORE" => Healthy::Ignore,
            "ALL" => Healthy::All,
            _ => Healthy::Chosen,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Healthy::Chosen => "CHOSEN",
            Healthy::Ignore => "IGNORE",
            Healthy::All => "ALL",
        }
    }
}

/// What a pick needs to know besides the key.
pub struct PickArgs<'a> {
    pub alt: i64,
    /// The chance to take the next member instead when the chosen one is
    /// not ramping up; -1: the director's.
    pub warmup: f64,
    pub rampup: bool,
    pub healthy: Healthy,
    /// Whether a backend is healthy, and since when (seconds since the
    /// epoch; 0 when unknown).
    pub health: &'a dyn Fn(Backend) -> (bool, f64),
    pub now: f64,
    pub random: &'a mut dyn FnMut() -> f64,
}

/// One member as a pick saw it.
#[derive(Clone, Copy)]
struct Seen {
    host: usize,
    changed: f64,
}

/// The walk along the ring (`struct shard_state`).
struct Walk<'r> {
    ring: &'r Ring,
    idx: usize,
    picked: Vec<bool>,
    count: usize,
    previous: Option<Seen>,
    last: Option<Seen>,
}

impl Walk<'_> {
    /// The `skip`-th next member not seen yet (`shard_next`): counting
    /// only healthy ones when `only_healthy`, else every one.
    fn next(&mut self, mut skip: i64, only_healthy: bool, health: &dyn Fn(Backend) -> (bool, f64)) -> Option<usize> {
        let n = self.ring.members.len();
        let mut chosen = None;
        while self.count < n && skip >= 0 {
            let host = self.ring.points[self.idx].host;
            if !self.picked[host] {
                self.picked[host] = true;
                self.count += 1;
                let be = self.ring.member(host).map_or(Backend(None), |m| m.backend);
                let (ok, changed) = health(be);
                let mut into_last = false;
                let mut seen = false;
                if ok {
                    seen = true;
                    if skip == 0 {
                        chosen = Some(host);
                        into_last = true;
                    }
                    skip -= 1;
                } else if !only_healthy {
                    if skip == 0 {
                        chosen = Some(host);
                        into_last = true;
                        seen = true;
                    }
                    skip -= 1;
                }
                if seen {
                    let s = Some(Seen { host, changed });
                    if into_last {
                        if self.last.is_some() {
                            self.previous = self.last;
                        }
                        self.last = s;
                    } else {
                        self.previous = s;
                    }
                }
                if chosen.is_some() {
                    break;
                }
            }
            self.idx += 1;
            if self.idx == self.ring.points.len() {
                self.idx = 0;
            }
        }
        chosen
    }
}

/// The director's settings a pick reads.
pub struct Settings {
    pub name: String,
    pub warmup: f64,
    pub rampup: f64,
    pub debug: i64,
}

/// Picks the member for `key` (`sharddir_pick_be_locked`).
pub fn pick(ring: &Ring, set: &Settings, key: u32, a: &mut PickArgs<'_>, log: Log<'_>) -> Option<Backend> {
    let n = ring.members.len();
    if n == 0 || ring.points.is_empty() {
        return None;
    }
    let mut alt = a.alt;
    if alt < 0 {
        log("Error", format!("vmod_directors: shard {}: invalid negative parameter alt={alt}, set to 0", set.name));
        alt = 0;
    } else if alt >= n as i64 {
        log("Error", format!("vmod_directors: shard {}: parameter alt={alt} limited to {}", set.name, n - 1));
        alt = n as i64 - 1;
    }
    let idx = ring.lookup(key);
    if set.debug & DEBUG_LOOKUP != 0 {
        log("Debug", format!("vmod_directors: shard: lookup key {key:x} idx {idx} host {}", ring.points[idx].host));
    }
    let mut w = Walk { ring, idx, picked: vec![false; n], count: 0, previous: None, last: None };
    let be_of = |s: Option<Seen>| s.and_then(|s| ring.member(s.host)).map(|m| m.backend);
    if alt > 0 && w.next(alt - 1, a.healthy == Healthy::All, a.health).is_none() {
        return be_of(w.previous);
    }
    if w.next(0, a.healthy != Healthy::Ignore, a.health).is_none() {
        return be_of(w.previous);
    }
    let be = be_of(w.last);
    let warmup = if a.warmup == -1.0 { set.warmup } else { a.warmup };
    if alt > 0 || a.healthy == Healthy::Ignore || (!a.rampup && warmup == 0.0) || w.next(0, true, a.health).is_none() {
        return be;
    }
    let (Some(chosen), Some(other)) = (w.previous, w.last) else { return be };
    let rampup_of = |host: usize| ring.member(host).and_then(|m| m.rampup).unwrap_or(set.rampup);
    let (chosen_r, alt_r) = (rampup_of(chosen.host), rampup_of(other.host));
    if set.debug & DEBUG_RAMPWARM != 0 {
        log(
            "Debug",
            format!(
                "vmod_directors: shard: chosen host {} rampup {chosen_r:.6} changed {:.6}",
                chosen.host,
                a.now - chosen.changed
            ),
        );
        log(
            "Debug",
            format!(
                "vmod_directors: shard: alt host {} rampup {alt_r:.6} changed {:.6}",
                other.host,
                a.now - other.changed
            ),
        );
    }
    if a.now - chosen.changed < chosen_r {
        // The chosen member ramps up: it keeps the request unless the
        // other one ramps up too, or the dice say so.
        if !a.rampup || a.now - other.changed < alt_r || (a.random)() * chosen_r < a.now - chosen.changed {
            return be;
        }
    } else if warmup == 0.0 || (a.random)() > warmup {
        return be;
    }
    be_of(Some(other))
}

/// A shard director: its ring and settings, and the changes vcl_init has
/// queued (a request's own are in its PRIV_TASK).
pub struct Shard {
    pub ring: RwLock<Ring>,
    pub settings: RwLock<Settings>,
    pub init_changes: Mutex<Vec<Change>>,
}

impl Shard {
    pub fn new(name: &str) -> Shard {
        Shard {
            ring: RwLock::default(),
            settings: RwLock::new(Settings { name: name.to_string(), warmup: 0.0, rampup: 0.0, debug: 0 }),
            init_changes: Mutex::default(),
        }
    }

    pub fn settings(&self) -> std::sync::RwLockReadGuard<'_, Settings> {
        self.settings.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn ring(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies `changes` and rebuilds the ring (`shardcfg_reconfigure`);
    /// `false` when it ends with no members.
    pub fn reconfigure(&self, changes: &[Change], replicas: u32, log: Log<'_>) -> bool {
        let (name, debug) = {
            let s = self.settings();
            (s.name.clone(), s.debug)
        };
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        ring.apply(changes, &name, log);
        if ring.members.is_empty() {
            ring.points.clear();
            log("Error", format!("vmod_directors: shard {name}: .reconfigure() no backends"));
            return false;
        }
        ring.build(replicas, debug, log);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: u64, name: &str, ident: Option<&str>) -> Member {
        Member {
            backend: Backend(Some(id)),
            name: name.into(),
            ident: ident.map(Into::into),
            rampup: None,
            weight: 1.0,
        }
    }

    /// The points varnishd 7.1 logs for these idents with one replica.
    #[test]
    fn points_match_varnishd() {
        assert_eq!(hash32(&[b"s1", b"0"]), 0xf08ad325);
        assert_eq!(hash32(&[b"s2", b"0"]), 0x6e040182);
        assert_eq!(hash32(&[b"s1_1", b"0"]), 0xbae80b0b);
        assert_eq!(hash32(&[b"4", b"0"]), 0x03d1fe97);
    }

    #[test]
    fn holes_are_filled_from_the_end() {
        let mut r = Ring::default();
        let mut log = |_: &str, _: String| {};
        let adds: Vec<Change> = (1..=9).map(|i| Change::Add(member(3, "s3", Some(&i.to_string())))).collect();
        r.apply(&adds, "vd", &mut log);
        r.apply(&[Change::Remove { backend: None, ident: Some("8".into()) }], "vd", &mut log);
        let idents: Vec<&str> = r.live().map(|m| m.ident()).collect();
        assert_eq!(idents, ["1", "2", "3", "4", "5", "6", "7", "9"]);
    }

    #[test]
    fn duplicates_are_skipped_by_ident() {
        let mut r = Ring::default();
        let mut notes = Vec::new();
        let mut log = |_: &str, s: String| notes.push(s);
        r.apply(&[Change::Add(member(1, "s1", None)), Change::Add(member(2, "s2", Some("s1")))], "vd", &mut log);
        assert_eq!(r.members.len(), 1);
        assert_eq!(notes, ["vmod_directors: shard vd: backend s1 already exists - skipping"]);
    }

    #[test]
    fn blob_keys_are_big_endian() {
        assert_eq!(blob_key(&[1, 2, 3, 4, 5]), 0x0102_0304);
        assert_eq!(blob_key(&[1]), 1);
    }
}
