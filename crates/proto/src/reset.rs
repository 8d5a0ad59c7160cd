//! Stateless reset (docs/PROTOCOL.md §5.5): how a server that lost a
//! session — usually because it restarted — tells the client at once,
//! instead of leaving it to wait out its idle timeout.
//!
//! The token for a session is a MAC of the server's connection id under a
//! key derived from the server's long-term secret, so it survives
//! restarts without storing anything, and only the server can make it.
//! The client learns it inside the encrypted handshake; it appears on the
//! wire only in a reset, when the session is already gone.
//!
//! Resets answer unauthenticated datagrams, so they are bounded
//! ([`ResetLimiter`]): never larger than the datagram that triggered them,
//! one per source address per [`ADDRESS_INTERVAL`], and a token bucket for
//! the whole endpoint (RFC 9000 §10.3).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ring::hmac;

use crate::config::RateLimit;
use crate::crypto::ServerKey;
use crate::handshake_limit::Bucket;
use crate::packet::{ConnectionId, STATELESS_RESET_SIZE};

/// An address that was just sent a reset gets no other for at least this
/// long (and at most twice it): a client's burst of packets earns one
/// reset, and a retransmission after a lost reset earns the next.
pub const ADDRESS_INTERVAL: Duration = Duration::from_millis(250);

pub const RESET_TOKEN_LEN: usize = 16;
pub type ResetToken = [u8; RESET_TOKEN_LEN];

pub struct ResetKey(hmac::Key);

impl ResetKey {
    pub fn new(key: &ServerKey) -> Self {
        // Domain-separated from the key's use in Noise.
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key.secret), b"udpchat stateless reset key");
        Self(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    pub fn token(&self, cid: &ConnectionId) -> ResetToken {
        let tag = hmac::sign(&self.0, cid);
        let mut token = [0u8; RESET_TOKEN_LEN];
        token.copy_from_slice(&tag.as_ref()[..RESET_TOKEN_LEN]);
        token
    }
}

/// Decides whether a stateless reset may be sent. Addresses are remembered
/// in two generations of [`ADDRESS_INTERVAL`] each; an address is refused
/// while it is in either. Each generation holds at most `max_addresses`;
/// when the current one is full, resets to addresses not in it are refused
/// until the next generation begins (with the default budget, a generation
/// never fills: the bucket admits at most burst + rate/4 resets per
/// generation).
pub struct ResetLimiter {
    bucket: Option<Bucket>,
    current: HashSet<SocketAddr>,
    previous: HashSet<SocketAddr>,
    generation_start: Option<Instant>,
    max_addresses: usize,
}

impl ResetLimiter {
    pub fn new(max_addresses: usize) -> Self {
        Self { bucket: None, current: HashSet::new(), previous: HashSet::new(), generation_start: None, max_addresses }
    }

    /// Whether a reset may answer a datagram of `trigger_len` bytes from
    /// `to`; if so, it is counted.
    pub fn admit(&mut self, now: Instant, to: SocketAddr, trigger_len: usize, limit: RateLimit) -> bool {
        // Smaller than what triggered it: a reset can never amplify, and
        // two endpoints cannot reset each other in a loop.
        if trigger_len <= STATELESS_RESET_SIZE {
            return false;
        }
        let start = *self.generation_start.get_or_insert(now);
        if now.saturating_duration_since(start) >= ADDRESS_INTERVAL {
            self.previous = std::mem::take(&mut self.current);
            if now.saturating_duration_since(start) >= 2 * ADDRESS_INTERVAL {
                self.previous.clear();
            }
            self.generation_start = Some(now);
        }
        if self.current.contains(&to) || self.previous.contains(&to) || self.current.len() >= self.max_addresses {
            return false;
        }
        let bucket = self.bucket.get_or_insert_with(|| Bucket::full(limit, now));
        if !bucket.take(limit, now) {
            return false;
        }
        self.current.insert(to);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn never_answers_a_datagram_not_larger_than_a_reset() {
        let mut l = ResetLimiter::new(16);
        let limit = RateLimit { burst: 10, per_second: 10 };
        let now = Instant::now();
        assert!(!l.admit(now, addr(1), STATELESS_RESET_SIZE, limit));
        assert!(l.admit(now, addr(1), STATELESS_RESET_SIZE + 1, limit));
    }

    #[test]
    fn one_reset_per_address_per_interval() {
        let mut l = ResetLimiter::new(16);
        let limit = RateLimit { burst: 100, per_second: 100 };
        let t0 = Instant::now();
        assert!(l.admit(t0, addr(1), 40, limit));
        assert!(!l.admit(t0, addr(1), 40, limit), "a burst earns one reset");
        assert!(l.admit(t0, addr(2), 40, limit), "other addresses are not affected");
        assert!(!l.admit(t0 + ADDRESS_INTERVAL, addr(1), 40, limit), "still in the previous generation");
        assert!(l.admit(t0 + 2 * ADDRESS_INTERVAL, addr(1), 40, limit));
        // A long pause forgets both generations at once.
        assert!(l.admit(t0 + 10 * ADDRESS_INTERVAL, addr(2), 40, limit));
    }

    #[test]
    fn endpoint_budget_and_address_table_are_bounded() {
        let now = Instant::now();
        let limit = RateLimit { burst: 5, per_second: 4 };
        let mut l = ResetLimiter::new(1000);
        let sent = (0..100).filter(|&p| l.admit(now, addr(p), 40, limit)).count();
        assert_eq!(sent, 5, "the burst bounds resets at one instant");
        // A second later the bucket has refilled by 4.
        let later = now + Duration::from_secs(1);
        assert_eq!((100..200).filter(|&p| l.admit(later, addr(p), 40, limit)).count(), 4);

        let mut l = ResetLimiter::new(3);
        let big = RateLimit { burst: 100, per_second: 100 };
        assert_eq!((0..10).filter(|&p| l.admit(now, addr(p), 40, big)).count(), 3, "table full");
        assert!(l.admit(now + ADDRESS_INTERVAL, addr(50), 40, big), "a new generation has room");
    }

    #[test]
    fn token_depends_on_key_and_cid_and_survives_restarts() {
        let key = ServerKey::generate([1; 32]);
        let a = ResetKey::new(&key);
        let again = ResetKey::new(&ServerKey::from_secret(key.secret).unwrap());
        assert_eq!(a.token(&[1; 8]), again.token(&[1; 8]));
        assert_ne!(a.token(&[1; 8]), a.token(&[2; 8]));
        let other = ResetKey::new(&ServerKey::generate([2; 32]));
        assert_ne!(a.token(&[1; 8]), other.token(&[1; 8]));
    }
}
