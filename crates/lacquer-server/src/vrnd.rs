//! Varnish's `vrnd.c` in part: the "testable" random numbers that module
//! code draws where a test wants them to repeat (the shard director's
//! warmup and rampup dice). They come from one generator for the process,
//! seeded from the clock at start and again by `debug.srandom [SEED]`;
//! after a seed, the same draws come in the same order.

use std::sync::Mutex;

/// The generator's state (xorshift64*; never 0).
static STATE: Mutex<u64> = Mutex::new(0);

/// Seeds the generator (`debug.srandom`).
pub(crate) fn seed(seed: u64) {
    // Spread small seeds over the bits (splitmix64's step), so that 1 and
    // 2 do not start alike; 0 is not a state xorshift can leave.
    let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    *STATE.lock().unwrap_or_else(|e| e.into_inner()) = (z ^ (z >> 31)) | 1;
}

/// The next number, in `[0, 1)`.
pub(crate) fn testable_double() -> f64 {
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if *s == 0 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        *s = now.map_or(1, |d| d.as_nanos() as u64) | 1;
    }
    let mut x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_seed_repeats_the_draws() {
        super::seed(1);
        let a: Vec<f64> = (0..3).map(|_| super::testable_double()).collect();
        super::seed(1);
        let b: Vec<f64> = (0..3).map(|_| super::testable_double()).collect();
        assert_eq!(a, b);
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
    }
}
