//! Varnish 7.1's vmod_purge for Lacquer: purges from `vcl_hit` and
//! `vcl_miss`, where the request has found its hash key, so that VCL can
//! go on afterwards (answer with its own synthetic response, restart)
//! instead of going through `vcl_purge` as `return (purge)` does, and so
//! that a purge can be soft: the objects stay, their time to live cut,
//! to be served stale while they are fetched again.
//!
//! The host does the work ([`Host::purge`](lacquer_module::Host::purge)),
//! on every variant (`Vary`) under the key.

#[lacquer_module::module(name = "purge")]
pub mod vmod {
    //! Varnish Purge Module: hard and soft purges of the objects under
    //! the request's hash key, from `vcl_hit` or `vcl_miss`.

    use lacquer_module::{Ctx, Duration, Failure};

    /// Removes every object under the request's hash key, as
    /// `return (purge)` does. Returns how many. Only in `vcl_hit` and
    /// `vcl_miss`.
    pub fn hard(ctx: &mut Ctx) -> Result<i64, Failure> {
        ctx.purge(Some(0.0), Some(0.0), Some(0.0))
    }

    /// Cuts the lifetimes of every object under the request's hash key:
    /// fresh for at most *ttl* more, then at most *grace* in grace and
    /// *keep* kept. A negative *grace* or *keep* leaves that one as it
    /// is, and no lifetime is lengthened. All three zero is a hard purge.
    /// Returns how many objects. Only in `vcl_hit` and `vcl_miss`.
    pub fn soft(
        ctx: &mut Ctx,
        #[default(0.0)] ttl: Duration,
        #[default(-1.0)] grace: Duration,
        #[default(-1.0)] keep: Duration,
    ) -> Result<i64, Failure> {
        let given = |d: Duration| (d.0 >= 0.0).then_some(d.0);
        ctx.purge(Some(ttl.0.max(0.0)), given(grace), given(keep))
    }
}
