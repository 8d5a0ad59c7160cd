//! The one token bucket of the workspace: the endpoint's handshake and
//! stateless-reset budgets (`handshake_limit.rs`) and the chat server's
//! flood control per session use it. Sans-IO like the rest of this crate:
//! the caller passes the time, and the bucket's shape (`burst`,
//! `per_second`) with every call, so a bucket is only its level and the
//! time it was last refilled (16 bytes per session or address).

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    tokens: f64,
    updated: Instant,
}

impl TokenBucket {
    /// A bucket holding `burst` tokens.
    pub fn full(burst: u32, now: Instant) -> Self {
        Self { tokens: f64::from(burst), updated: now }
    }

    fn refill(&mut self, burst: u32, per_second: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * per_second).min(f64::from(burst));
        self.updated = now;
    }

    /// Takes a token; false when the bucket is empty.
    pub fn take(&mut self, burst: u32, per_second: f64, now: Instant) -> bool {
        self.refill(burst, per_second, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket has refilled completely (so forgetting it loses
    /// nothing).
    pub fn is_full(&self, burst: u32, per_second: f64, now: Instant) -> bool {
        let mut b = *self;
        b.refill(burst, per_second, now);
        b.tokens >= f64::from(burst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_then_refills_up_to_the_burst() {
        let now = Instant::now();
        let mut b = TokenBucket::full(5, now);
        assert!((0..5).all(|_| b.take(5, 2.0, now)));
        assert!(!b.take(5, 2.0, now));
        assert!(b.take(5, 2.0, now + Duration::from_millis(500)));
        assert!(!b.take(5, 2.0, now + Duration::from_millis(500)));
        assert!(!b.is_full(5, 2.0, now + Duration::from_secs(1)));
        assert!(b.is_full(5, 2.0, now + Duration::from_secs(60)));
        // A long pause refills to the burst, not beyond.
        let later = now + Duration::from_secs(3600);
        assert!((0..5).all(|_| b.take(5, 2.0, later)));
        assert!(!b.take(5, 2.0, later));
    }
}
