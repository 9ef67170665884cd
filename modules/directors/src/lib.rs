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
//! A director is healthy when one of its members is. Left out for now:
//! `shard`, `shard_param` and `lookup`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::RwLock;

use lacquer_module::Backend;

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

impl lacquer_module::Director for RoundRobinDirector {
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

    use lacquer_module::{Backend, Ctx, Failure, Strands};

    use super::{FallbackDirector, HashDirector, RandomDirector, RoundRobinDirector};

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
}
