//! Loss injection for tests and benchmarks (`udpchat-bench --drop`): the
//! bench's udpchat members plug it into their client link, its text
//! members into their socket loop. It lives here, not in the client
//! library: real clients never drop datagrams on purpose.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// Drops a fraction of datagrams. ChaCha8 costs a few nanoseconds per
/// datagram, so the aid does not slow what it measures.
pub struct Loss {
    /// Drop when a uniform u32 falls below this (rate × 2^32).
    threshold: u64,
    // Boxed: the generator keeps a 256-byte block, and members hold a Loss
    // in small enums.
    rng: Box<ChaCha8Rng>,
}

impl Loss {
    pub fn new(rate: f64) -> Self {
        let mut seed = [0u8; 32];
        // The OS RNG failing is not something a benchmark can work around.
        getrandom::getrandom(&mut seed).expect("operating system random number generator");
        let threshold = (rate.clamp(0.0, 1.0) * 4_294_967_296.0) as u64;
        Self { threshold, rng: Box::new(ChaCha8Rng::from_seed(seed)) }
    }

    /// Whether to drop the next datagram.
    pub fn drop(&mut self) -> bool {
        self.threshold > 0 && u64::from(self.rng.next_u32()) < self.threshold
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_about_the_rate_asked() {
        let mut none = Loss::new(0.0);
        assert!((0..10_000).all(|_| !none.drop()));
        let mut all = Loss::new(1.0);
        assert!((0..10_000).all(|_| all.drop()));
        let mut tenth = Loss::new(0.1);
        let dropped = (0..100_000).filter(|_| tenth.drop()).count();
        // 10,000 expected; the standard deviation is about 95.
        assert!((9_000..11_000).contains(&dropped), "{dropped}");
    }
}
