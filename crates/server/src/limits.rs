//! Login failures per source address, which lock that address out for a
//! growing time (bounded table; the oldest entry is evicted when it is
//! full). The other rate limit of the chat layer, flood control per
//! session (ergo's default of a burst of 5, then 2 per second), holds
//! requests rather than refusing them: `chat/pacing.rs`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Failures before an address is slowed down, and the longest lockout.
const FREE_FAILURES: u32 = 3;
const MAX_LOCKOUT: Duration = Duration::from_secs(60);
const MAX_TRACKED: usize = 10_000;
/// Failures this long after the last one start the count over.
const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

#[derive(Default)]
pub struct LoginFailures {
    table: HashMap<IpAddr, (u32, Instant)>,
}

impl LoginFailures {
    /// If the address is locked out, until when.
    pub fn locked_until(&self, ip: IpAddr, now: Instant) -> Option<Instant> {
        self.table.get(&ip).map(|&(_, until)| until).filter(|&until| until > now)
    }

    /// Records a failure; after the first few each one doubles the lockout.
    pub fn fail(&mut self, ip: IpAddr, now: Instant) {
        if self.table.len() >= MAX_TRACKED && !self.table.contains_key(&ip) {
            self.table.retain(|_, (_, until)| *until > now);
            if self.table.len() >= MAX_TRACKED
                && let Some(oldest) = self.table.iter().min_by_key(|(_, (_, until))| *until).map(|(ip, _)| *ip)
            {
                self.table.remove(&oldest);
            }
        }
        let entry = self.table.entry(ip).or_insert((0, now));
        if now.saturating_duration_since(entry.1) > FORGET_AFTER {
            *entry = (0, now);
        }
        entry.0 += 1;
        if entry.0 <= FREE_FAILURES {
            entry.1 = now;
        }
        if entry.0 > FREE_FAILURES {
            let secs = 1u64 << (entry.0 - FREE_FAILURES - 1).min(6);
            entry.1 = now + Duration::from_secs(secs).min(MAX_LOCKOUT);
        }
    }

    pub fn succeed(&mut self, ip: IpAddr) {
        self.table.remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_out_growing() {
        let now = Instant::now();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut f = LoginFailures::default();
        for _ in 0..3 {
            f.fail(ip, now);
        }
        assert_eq!(f.locked_until(ip, now), None);
        f.fail(ip, now);
        assert_eq!(f.locked_until(ip, now), Some(now + Duration::from_secs(1)));
        f.fail(ip, now);
        assert_eq!(f.locked_until(ip, now), Some(now + Duration::from_secs(2)));
        f.succeed(ip);
        assert_eq!(f.locked_until(ip, now), None);
    }
}
