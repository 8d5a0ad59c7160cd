//! Per-source-IP handshake rate limiting for the server role: two token
//! buckets per IP, one for unproven handshakes and one for handshakes whose
//! address a retry cookie proved. Keeping them apart means a spoofer who
//! drains a victim's unproven bucket only forces the victim through a
//! cookie round trip; it cannot lock the victim out.
//!
//! The table is bounded ([`crate::ServerConfig::rate_limit_entries`]): when
//! it is full, entries whose buckets have refilled are evicted (a sweep at
//! most once a second, so a flood of new IPs cannot make every handshake
//! pay for a scan). If none can be evicted, an IP not in the table is
//! treated as over its unproven limit (it gets a retry cookie) but as
//! within its proven limit: a cookie-proven address cannot be spoofed, so
//! it must not be locked out by spoofed traffic filling the table.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Instant;

use crate::config::RateLimit;
use crate::token_bucket::TokenBucket;

/// The shared [`TokenBucket`] shaped by a [`RateLimit`] (also used for the
/// endpoint's stateless-reset budget).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bucket(TokenBucket);

impl Bucket {
    pub(crate) fn full(limit: RateLimit, now: Instant) -> Self {
        Self(TokenBucket::full(limit.burst, now))
    }

    pub(crate) fn take(&mut self, limit: RateLimit, now: Instant) -> bool {
        self.0.take(limit.burst, f64::from(limit.per_second), now)
    }

    fn is_full(&self, limit: RateLimit, now: Instant) -> bool {
        self.0.is_full(limit.burst, f64::from(limit.per_second), now)
    }
}

pub struct HandshakeLimiter {
    unproven: RateLimit,
    proven: RateLimit,
    max_entries: usize,
    table: HashMap<IpAddr, [Bucket; 2]>,
    last_sweep: Option<Instant>,
}

impl HandshakeLimiter {
    pub fn new(unproven: RateLimit, proven: RateLimit, max_entries: usize) -> Self {
        Self { unproven, proven, max_entries, table: HashMap::new(), last_sweep: None }
    }

    /// Takes a token for a handshake from `ip`; false means over the limit.
    pub fn admit(&mut self, now: Instant, ip: IpAddr, proven: bool) -> bool {
        if !self.table.contains_key(&ip) && self.table.len() >= self.max_entries {
            let due = self.last_sweep.is_none_or(|t| now.saturating_duration_since(t).as_secs() >= 1);
            if due {
                self.last_sweep = Some(now);
                let (u, p) = (self.unproven, self.proven);
                self.table.retain(|_, [a, b]| !(a.is_full(u, now) && b.is_full(p, now)));
            }
            if self.table.len() >= self.max_entries {
                return proven;
            }
        }
        let (u, p) = (self.unproven, self.proven);
        let buckets = self.table.entry(ip).or_insert_with(|| [Bucket::full(u, now), Bucket::full(p, now)]);
        if proven { buckets[1].take(p, now) } else { buckets[0].take(u, now) }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_limit_and_refill_independently() {
        let now = Instant::now();
        let limit = RateLimit { burst: 2, per_second: 1 };
        let mut l = HandshakeLimiter::new(limit, limit, 2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.admit(now, ip, false));
        assert!(l.admit(now, ip, false));
        assert!(!l.admit(now, ip, false));
        // The proven bucket is untouched by the unproven one.
        assert!(l.admit(now, ip, true));
        assert!(l.admit(now + Duration::from_secs(1), ip, false));
        // Table bound: a third IP is refused while both entries are busy,
        // unless its address is proven...
        assert!(l.admit(now, "192.0.2.2".parse().unwrap(), false));
        assert!(!l.admit(now, "192.0.2.3".parse().unwrap(), false));
        assert!(l.admit(now, "192.0.2.3".parse().unwrap(), true));
        // ...and admitted once an entry has refilled and can be evicted.
        assert!(l.admit(now + Duration::from_secs(10), "192.0.2.3".parse().unwrap(), false));
        assert_eq!(l.len(), 1);
    }
}
