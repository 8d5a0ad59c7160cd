//! When to try again after a session ends: exponential backoff (1 s, 2 s,
//! 4 s, 8 s, then every 10 s), starting over once a session got as far as
//! logging in, and never after a final close (a ban, a kick, a failed
//! login, a key or version mismatch: see docs/PROTOCOL.md, "Close codes").

use std::time::Duration;

use udpchat_proto::CloseReason;

/// The longest wait between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Whether a session end means trying again is pointless.
pub fn is_final(reason: &CloseReason) -> bool {
    match reason {
        CloseReason::KeyMismatch { .. } | CloseReason::VersionMismatch { .. } | CloseReason::ProtocolViolation(_) => {
            true
        }
        CloseReason::Peer { code, .. } => udpchat_chat::close::is_final(*code),
        _ => false,
    }
}

/// Counts connection attempts and says how long to wait before the next.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    /// Attempts since the last session that logged in (the current one
    /// included once it has started).
    attempt: u32,
}

impl Backoff {
    /// Starts the next attempt; returns its number (1 for the first).
    pub fn start(&mut self) -> u32 {
        self.attempt += 1;
        self.attempt
    }

    /// A session logged in: the next failure waits the shortest time.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// How long to wait before the next attempt.
    pub fn delay(&self) -> Duration {
        Duration::from_secs(1u64 << self.attempt.min(4)).min(MAX_BACKOFF)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut b = Backoff::default();
        let mut waits = Vec::new();
        for _ in 0..6 {
            b.start();
            waits.push(b.delay().as_secs());
        }
        assert_eq!(waits, [2, 4, 8, 10, 10, 10]);
        b.reset();
        assert_eq!(b.delay(), Duration::from_secs(1));
        assert_eq!(b.start(), 1);
    }

    #[test]
    fn final_codes() {
        let kicked = CloseReason::Peer { code: udpchat_chat::close::KICKED, reason: String::new() };
        assert!(is_final(&kicked));
        assert!(is_final(&CloseReason::ProtocolViolation("x")));
        assert!(!is_final(&CloseReason::TimedOut));
        assert!(!is_final(&CloseReason::Reset));
        assert!(!is_final(&CloseReason::Peer { code: udpchat_proto::code::NORMAL, reason: String::new() }));
    }
}
