//! Loss recovery and congestion control, after RFC 9002: the RTT
//! estimator (§5), the loss-detection thresholds and probe timeout (§6)
//! and NewReno congestion control (§7). The constants are RFC 9002's, with
//! one deliberate change, [`MAX_PTO`], explained there.

use std::time::Duration;

use crate::packet::MAX_DATAGRAM_SIZE;

/// RFC 9002 kPacketThreshold: a packet is lost once a packet sent this many
/// packets after it is acknowledged.
pub const PACKET_THRESHOLD: u64 = 3;
/// RFC 9002 kTimeThreshold, as a fraction: 9/8 of an RTT.
pub const TIME_THRESHOLD_NUM: u32 = 9;
pub const TIME_THRESHOLD_DEN: u32 = 8;
/// RFC 9002 kGranularity.
pub const GRANULARITY: Duration = Duration::from_millis(1);
/// RFC 9002 kInitialRtt: the RTT assumed before the first sample.
pub const INITIAL_RTT: Duration = Duration::from_millis(333);
/// The ack delay each end promises not to exceed (RFC 9000 max_ack_delay).
pub const MAX_ACK_DELAY: Duration = Duration::from_millis(25);
/// Ceiling of the backed-off probe timeout. RFC 9002 doubles the PTO
/// without limit; a chat session would then sit silent for many seconds
/// after an outage ends. Capping it means a session notices the end of an
/// outage within about a second, at the cost of one small probe packet per
/// second while a peer is unreachable (the idle timeout still ends it).
pub const MAX_PTO: Duration = Duration::from_secs(1);
/// RFC 9002 kInitialWindow: min(10 * max_datagram_size, max(14720, 2 * max_datagram_size)).
pub const INITIAL_WINDOW: u64 = 10 * MAX_DATAGRAM_SIZE as u64;
/// kMinimumWindow: four datagrams, twice RFC 9002's recommendation. With
/// two, a lost datagram under steady random loss leaves the receiver one
/// packet to acknowledge (after max_ack_delay) and nothing to reveal the
/// loss, so each loss stalls the session; see docs/PROTOCOL.md §8.8.
pub const MINIMUM_WINDOW: u64 = 4 * MAX_DATAGRAM_SIZE as u64;
/// Upper bound on the congestion window, which bounds the sender's bytes
/// in flight and so the memory a receiver may need for reordering.
pub const MAXIMUM_WINDOW: u64 = 4 * 1024 * 1024;

/// Smoothed RTT and its variation (RFC 9002 §5.3).
#[derive(Debug, Clone)]
pub struct RttEstimator {
    latest: Duration,
    smoothed: Duration,
    var: Duration,
    min: Duration,
    has_sample: bool,
}

impl Default for RttEstimator {
    fn default() -> Self {
        Self { latest: INITIAL_RTT, smoothed: INITIAL_RTT, var: INITIAL_RTT / 2, min: INITIAL_RTT, has_sample: false }
    }
}

impl RttEstimator {
    pub fn smoothed(&self) -> Duration {
        self.smoothed
    }

    /// Adds a sample. `ack_delay` is what the peer reported, already capped
    /// at its max_ack_delay; it is subtracted only when that leaves at least
    /// the minimum RTT, as RFC 9002 §5.3 says.
    pub fn update(&mut self, sample: Duration, ack_delay: Duration) {
        self.latest = sample;
        if !self.has_sample {
            self.has_sample = true;
            self.min = sample;
            self.smoothed = sample;
            self.var = sample / 2;
            return;
        }
        self.min = self.min.min(sample);
        let adjusted = if sample >= self.min + ack_delay { sample.saturating_sub(ack_delay) } else { sample };
        let diff = self.smoothed.abs_diff(adjusted);
        self.var = (self.var * 3 + diff) / 4;
        self.smoothed = (self.smoothed * 7 + adjusted) / 8;
    }

    /// The probe timeout before backoff (RFC 9002 §6.2.1).
    pub fn pto_base(&self, max_ack_delay: Duration) -> Duration {
        self.smoothed + (self.var * 4).max(GRANULARITY) + max_ack_delay
    }

    /// How long after a later packet was sent an unacknowledged one counts
    /// as lost (RFC 9002 §6.1.2).
    pub fn loss_delay(&self) -> Duration {
        (self.smoothed.max(self.latest) * TIME_THRESHOLD_NUM / TIME_THRESHOLD_DEN).max(GRANULARITY)
    }
}

/// NewReno (RFC 9002 §7 and Appendix B), counted in bytes.
#[derive(Debug, Clone)]
pub struct NewReno {
    window: u64,
    ssthresh: u64,
    /// Packets sent before this number do not shrink the window again:
    /// one reduction per round trip (the recovery period).
    recovery_start_pn: Option<u64>,
    bytes_acked: u64,
}

impl Default for NewReno {
    fn default() -> Self {
        Self { window: INITIAL_WINDOW, ssthresh: u64::MAX, recovery_start_pn: None, bytes_acked: 0 }
    }
}

impl NewReno {
    pub fn window(&self) -> u64 {
        self.window
    }

    pub fn on_ack(&mut self, pn: u64, bytes: u64) {
        if self.recovery_start_pn.is_some_and(|start| pn < start) {
            return;
        }
        if self.window < self.ssthresh {
            self.window += bytes;
        } else {
            // Congestion avoidance: one datagram per window acknowledged.
            self.bytes_acked += bytes;
            if self.bytes_acked >= self.window {
                self.bytes_acked -= self.window;
                self.window += MAX_DATAGRAM_SIZE as u64;
            }
        }
        self.window = self.window.min(MAXIMUM_WINDOW);
    }

    /// A packet `pn` was lost; `next_pn` is the next number to be sent.
    pub fn on_loss(&mut self, pn: u64, next_pn: u64) {
        if self.recovery_start_pn.is_some_and(|start| pn < start) {
            return;
        }
        self.recovery_start_pn = Some(next_pn);
        self.window = (self.window / 2).max(MINIMUM_WINDOW);
        self.ssthresh = self.window;
        self.bytes_acked = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_sample_sets_estimate() {
        let mut rtt = RttEstimator::default();
        rtt.update(Duration::from_millis(10), Duration::ZERO);
        assert_eq!(rtt.smoothed(), Duration::from_millis(10));
        assert_eq!(rtt.pto_base(MAX_ACK_DELAY), Duration::from_millis(10 + 20 + 25));
    }

    #[test]
    fn window_halves_once_per_recovery_period() {
        let mut cc = NewReno::default();
        cc.on_loss(5, 10);
        assert_eq!(cc.window(), INITIAL_WINDOW / 2);
        cc.on_loss(7, 12);
        assert_eq!(cc.window(), INITIAL_WINDOW / 2);
        cc.on_loss(11, 13);
        // A quarter of the initial window is below the floor.
        assert_eq!(cc.window(), (INITIAL_WINDOW / 4).max(MINIMUM_WINDOW));
        for _ in 0..100 {
            cc.on_loss(u64::MAX - 1, u64::MAX);
        }
        assert_eq!(cc.window(), MINIMUM_WINDOW);
    }
}
