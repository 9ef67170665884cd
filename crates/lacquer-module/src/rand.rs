//! The "testable" random numbers behind `std.random()` and the random
//! director.
//!
//! Varnish draws these from its own copy of the BSD `random(3)` generator
//! (additive feedback, 31 words of state, seeded through the Park–Miller
//! "minimal standard" generator), so that `debug.srandom` makes a test's
//! random choices repeatable. Lacquer keeps the same generator, seeded the
//! same way, so a script seeded with `debug.srandom` sees the numbers it
//! sees under varnishd: `std.random(0, 1)` after `debug.srandom 1` is
//! 0.656 on both, and a random director over four backends picks the
//! third, fourth, first, first, second … on both.
//!
//! This is not for secrets; it is for spreading load and for tests. The
//! generator is process-wide behind a mutex: it is called once per random
//! pick, never in a loop, so contention does not matter. A module built as
//! its own shared library has its own copy, seeded from the clock.

use std::sync::Mutex;

const DEG: usize = 31;
const SEP: usize = 3;

/// The generator's state: BSD's TYPE_3 table and its two pointers.
struct Bsd {
    state: [u32; DEG],
    front: usize,
    rear: usize,
}

/// Park–Miller step as FreeBSD seeds with it (the `[1, 2^31 - 2]` variant).
fn good_rand(ctx: u32) -> u32 {
    let x = (ctx % 0x7fff_fffe) as i32 + 1;
    let hi = x / 127_773;
    let lo = x % 127_773;
    let mut x = 16_807 * lo - 2_836 * hi;
    if x < 0 {
        x += 0x7fff_ffff;
    }
    (x - 1) as u32
}

impl Bsd {
    fn seeded(seed: u32) -> Bsd {
        let mut state = [0u32; DEG];
        state[0] = seed;
        for i in 1..DEG {
            state[i] = good_rand(state[i - 1]);
        }
        let mut g = Bsd { state, front: SEP, rear: 0 };
        // Stir, as srandom(3) does, so the first outputs do not show the seed.
        for _ in 0..10 * DEG {
            g.next();
        }
        g
    }

    /// One number in `[0, 2^31)`, as `random(3)` returns.
    fn next(&mut self) -> u32 {
        let sum = self.state[self.front].wrapping_add(self.state[self.rear]);
        self.state[self.front] = sum;
        self.front = (self.front + 1) % DEG;
        self.rear = (self.rear + 1) % DEG;
        sum >> 1
    }
}

static GEN: Mutex<Option<Bsd>> = Mutex::new(None);

fn with<T>(f: impl FnOnce(&mut Bsd) -> T) -> T {
    let mut g = GEN.lock().unwrap_or_else(|e| e.into_inner());
    let g = g.get_or_insert_with(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        Bsd::seeded(now.map_or(1, |d| d.as_nanos() as u32 ^ d.as_secs() as u32))
    });
    f(g)
}

/// Re-seeds the generator (the CLI's `debug.srandom [SEED]`, 1 by default).
pub fn seed(seed: u32) {
    *GEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(Bsd::seeded(seed));
}

/// A number in `[0, 2^31)`.
pub fn next_u31() -> u32 {
    with(Bsd::next)
}

/// A number in `[0, 1)` from one draw (31 bits): what the random
/// director picks with, one draw a pick, as varnishd's does.
pub fn unit() -> f64 {
    f64::from(next_u31()) / 2_147_483_648.0
}

/// A number in `[0, 1)` from two draws (62 bits), the first the high
/// part: what `std.random()` scales, as Varnish's testable doubles are made.
pub fn fine_unit() -> f64 {
    with(|g| {
        let hi = f64::from(g.next());
        let lo = f64::from(g.next());
        (hi + lo / 2_147_483_648.0) / 2_147_483_648.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence FreeBSD's `srandom(1)` gives (and so varnishd after
    /// `debug.srandom`): 0.656113, 0.762838, 0.039045 … as fractions of 2^31.
    #[test]
    fn seeded_like_bsd() {
        let mut g = Bsd::seeded(1);
        let first: Vec<u32> = (0..3).map(|_| g.next()).collect();
        let fr: Vec<String> = first.iter().map(|&v| format!("{:.6}", f64::from(v) / 2_147_483_648.0)).collect();
        assert_eq!(fr, ["0.656113", "0.762838", "0.039045"]);
    }

    #[test]
    fn unit_stays_below_one() {
        seed(7);
        for _ in 0..10_000 {
            let (u, f) = (unit(), fine_unit());
            assert!((0.0..1.0).contains(&u) && (0.0..1.0).contains(&f), "{u} {f}");
        }
    }
}
