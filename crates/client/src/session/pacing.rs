//! The client's half of rate limiting (docs/PROTOCOL.md §15.6, "Requests
//! after login"): the server gives each session a token bucket and says
//! its size and rate in `Limits`; a client that keeps to that bucket
//! itself is never slowed down or refused by the server, and its lines
//! wait in the outbox instead (never dropped).
//!
//! Until a server sends `Limits` (servers older than issue 10 never do),
//! the client keeps to the reference server's defaults: a burst of 5,
//! then 2 per second, and lines of at most 4096 bytes.
//!
//! Not `udpchat_proto::TokenBucket`: pacing needs to know *when* the next
//! token comes (the session's timer), which that bucket does not say.

use std::time::{Duration, Instant};

/// The reference server's defaults (§15.6), used until `Limits` arrives.
pub const DEFAULT_BURST: u64 = 5;
pub const DEFAULT_RATE_MILLI: u64 = 2000;
pub const DEFAULT_MAX_LINE_BYTES: u64 = 4096;

/// What a server's `Limits` says, or what is assumed before it says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_line_bytes: u64,
    pub rate_burst: u64,
    /// Requests per second × 1000; 0 = unlimited.
    pub rate_milli: u64,
}

impl Limits {
    /// The reference server's defaults: what a client assumes until told.
    pub const REFERENCE: Limits =
        Limits { max_line_bytes: DEFAULT_MAX_LINE_BYTES, rate_burst: DEFAULT_BURST, rate_milli: DEFAULT_RATE_MILLI };
    /// No pacing (for a server known to have no rate limit that does not
    /// send `Limits`, such as one older than issue 10 run with a rate of 0).
    pub const UNPACED: Limits = Limits { max_line_bytes: DEFAULT_MAX_LINE_BYTES, rate_burst: 0, rate_milli: 0 };
}

impl Default for Limits {
    fn default() -> Self {
        Self::REFERENCE
    }
}

#[derive(Debug, Clone)]
pub struct Pacing {
    /// Tokens the bucket holds when full; at least 1.
    burst: f64,
    /// Tokens per second; 0 = unlimited.
    per_second: f64,
    tokens: f64,
    updated: Instant,
    pub max_line_bytes: u64,
}

impl Pacing {
    /// `assumed` until the server says otherwise, with a full bucket.
    pub fn new(assumed: Limits, now: Instant) -> Self {
        let mut p =
            Self { burst: 0.0, per_second: 0.0, tokens: 0.0, updated: now, max_line_bytes: DEFAULT_MAX_LINE_BYTES };
        p.set(assumed.max_line_bytes, assumed.rate_burst, assumed.rate_milli, now);
        p.tokens = p.burst;
        p
    }

    /// The server's `Limits`. The tokens already spent stay spent: the
    /// server's bucket remembers them too.
    pub fn set(&mut self, max_line_bytes: u64, burst: u64, rate_milli: u64, now: Instant) {
        self.refill(now);
        self.burst = burst.max(1) as f64;
        self.per_second = rate_milli as f64 / 1000.0;
        self.tokens = self.tokens.min(self.burst);
        self.max_line_bytes = if max_line_bytes == 0 { DEFAULT_MAX_LINE_BYTES } else { max_line_bytes };
    }

    /// A new session starts with a full bucket on the server's side.
    pub fn refilled(&mut self, now: Instant) {
        self.tokens = self.burst;
        self.updated = now;
    }

    fn unlimited(&self) -> bool {
        self.per_second == 0.0
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_second).min(self.burst);
        self.updated = now;
    }

    /// Whether a request may go at `now`.
    pub fn ready(&self, now: Instant) -> bool {
        if self.unlimited() {
            return true;
        }
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens + elapsed * self.per_second >= 1.0
    }

    /// A request went: one token spent.
    pub fn take(&mut self, now: Instant) {
        if !self.unlimited() {
            self.refill(now);
            self.tokens -= 1.0;
        }
    }

    /// When the next token will be there (now or in the past if it is).
    pub fn next_token(&self) -> Instant {
        if self.unlimited() || self.tokens >= 1.0 {
            return self.updated;
        }
        // Rounded up to the millisecond, so that waking at this instant
        // finds the token there (no busy loop on a fraction).
        let wait = (1.0 - self.tokens) / self.per_second;
        self.updated + Duration::from_millis((wait * 1000.0).ceil() as u64)
    }

    /// How long `n` more requests take to go at this pace, from `now`.
    pub fn time_for(&self, n: usize, now: Instant) -> Duration {
        if self.unlimited() {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        let have = (self.tokens + elapsed * self.per_second).min(self.burst);
        Duration::from_secs_f64(((n as f64 - have).max(0.0)) / self.per_second)
    }

    /// Requests per second, for estimates (None: unlimited).
    pub fn rate(&self) -> Option<f64> {
        (!self.unlimited()).then_some(self.per_second)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_allow_a_burst_then_two_per_second() {
        let t0 = Instant::now();
        let mut p = Pacing::new(Limits::REFERENCE, t0);
        for _ in 0..5 {
            assert!(p.ready(t0));
            p.take(t0);
        }
        assert!(!p.ready(t0));
        assert_eq!(p.next_token(), t0 + Duration::from_millis(500));
        assert!(p.ready(p.next_token()));
        p.take(t0 + Duration::from_millis(500));
        assert!(!p.ready(t0 + Duration::from_millis(999)));
        assert!(p.ready(t0 + Duration::from_millis(1000)));
        assert_eq!(p.time_for(4, t0 + Duration::from_millis(1000)), Duration::from_millis(1500));
    }

    #[test]
    fn limits_change_the_rate_and_zero_is_unlimited() {
        let t0 = Instant::now();
        let mut p = Pacing::new(Limits::REFERENCE, t0);
        p.set(100, 1, 10_000, t0);
        assert_eq!(p.max_line_bytes, 100);
        p.take(t0);
        assert_eq!(p.next_token(), t0 + Duration::from_millis(100));
        p.set(100, 1, 0, t0);
        for _ in 0..1000 {
            assert!(p.ready(t0));
            p.take(t0);
        }
    }
}
