//! Loss injection for tests and benchmarks (`ClientOptions::drop_rate`,
//! `udpchat bench --drop`): one small generator shared by the client
//! driver and the bench's peer drivers.

/// Drops a fraction of datagrams for tests and benchmarks. A xorshift64*
/// generator: statistical quality is plenty for this, and it costs a few
/// nanoseconds per datagram, so the aid does not slow what it measures.
pub struct Loss {
    rate: f64,
    state: u64,
}

impl Loss {
    pub fn new(rate: f64) -> Self {
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&crate::link::random_seed()[..8]);
        let seed = u64::from_le_bytes(seed);
        // Zero is xorshift's one fixed point.
        Self { rate, state: seed | 1 }
    }

    /// Whether any datagram will be dropped.
    pub fn is_active(&self) -> bool {
        self.rate > 0.0
    }

    /// Whether to drop the next datagram.
    pub fn drop(&mut self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let x = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // The top 53 bits as a uniform value in [0, 1).
        ((x >> 11) as f64 / (1u64 << 53) as f64) < self.rate
    }
}
