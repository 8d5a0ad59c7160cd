//! The network path to the peer (docs/PROTOCOL.md §10): which address a
//! server session sends to, the anti-amplification budget of an address
//! not yet validated (§5.1), path validation with a retransmitted
//! PATH_CHALLENGE, and the client's silence probe (§9), which makes a
//! receive-only client behind a NAT that rebinds speak up soon enough for
//! the server to find its new address.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Connection, Events, Side, State};
use crate::event::Event;
use crate::recovery::{MAX_ACK_DELAY, MAX_PTO, RttEstimator};

/// Budget kept back on an unvalidated address while it is being
/// validated, so stream data cannot spend the 3x allowance that the next
/// PATH_CHALLENGE needs (header 17 + tag 16 + frame 9 + a small ACK).
pub(crate) const CHALLENGE_RESERVE: u64 = 64;
/// A client probes (PING) this long after the last activity on the
/// session, then again after twice that, and so on.
pub(crate) const SILENCE_PROBE: Duration = Duration::from_secs(1);
/// Silence probes after one burst of activity: at 1, 2, 4 and 8 s. Beyond
/// that the keepalive (10 s by default) takes over.
pub(crate) const MAX_SILENCE_PROBES: u32 = 4;

/// The network path to the peer, with the anti-amplification counters
/// that apply until the path is validated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Path {
    pub(crate) remote: SocketAddr,
    pub(crate) validated: bool,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
}

impl Path {
    pub(crate) fn new(remote: SocketAddr, validated: bool) -> Self {
        Self { remote, validated, bytes_received: 0, bytes_sent: 0 }
    }

    /// Bytes that may still be sent here: three times what was received
    /// until the path is validated (docs/PROTOCOL.md §5.1).
    pub(crate) fn send_budget(&self) -> u64 {
        if self.validated { u64::MAX } else { (3 * self.bytes_received).saturating_sub(self.bytes_sent) }
    }
}

/// A path being validated after the peer's address changed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Migration {
    /// The last validated path, to go back to if the new address turns out
    /// to be a one-off.
    pub(crate) previous: Path,
    /// Sent unchanged in every retransmission, so a response to any of
    /// them completes the validation.
    pub(crate) challenge: [u8; 8],
    pub(crate) send_pending: bool,
    /// Challenges sent so far; the retransmission interval is the PTO for
    /// the first two, then doubles with each, up to [`MAX_PTO`].
    pub(crate) sends: u32,
    /// When the challenge is due again (set once it has been sent).
    pub(crate) resend_at: Option<Instant>,
    /// End of the current validation window ([`Connection::validation_window`]).
    pub(crate) deadline: Instant,
    /// An authenticated packet arrived from the new address during the
    /// current window: the peer is there, so the window is extended
    /// instead of going back.
    pub(crate) heard: bool,
}

impl Connection {
    /// A packet from a new address moves the session there (servers only;
    /// a client always talks to the address it dialled). Only the
    /// highest-numbered packet so far may move it, so reordering cannot
    /// flap between addresses, and the new address is challenged before
    /// the 3x limit is lifted.
    pub(super) fn update_path(&mut self, now: Instant, from: SocketAddr, is_largest: bool, len: usize) {
        if from == self.path.remote {
            self.path.bytes_received += len as u64;
            if let Some(m) = &mut self.migration {
                m.heard = true;
            }
            return;
        }
        if self.side == Side::Client || !is_largest || !self.confirmed {
            return;
        }
        let previous = match self.migration {
            Some(m) if m.previous.remote == from => {
                // Back to the address we came from: it was validated.
                self.path = m.previous;
                self.migration = None;
                self.path.bytes_received += len as u64;
                self.resend_after_path_change();
                return;
            }
            Some(m) => m.previous,
            None => self.path,
        };
        let mut challenge = [0u8; 8];
        challenge.copy_from_slice(&self.local_cid);
        challenge[0] ^= (self.next_pn as u8).wrapping_add(len as u8);
        // Mix in time so each challenge differs; secrecy is not needed, the
        // response only has to come from someone who can read our packets.
        let nanos = now.saturating_duration_since(self.started).as_nanos() as u64;
        for (c, b) in challenge.iter_mut().zip(nanos.to_le_bytes()) {
            *c ^= b;
        }
        self.path = Path::new(from, false);
        self.path.bytes_received = len as u64;
        self.migration = Some(Migration {
            previous,
            challenge,
            send_pending: true,
            sends: 0,
            resend_at: None,
            deadline: now + self.validation_window(),
            heard: false,
        });
        self.resend_after_path_change();
    }

    /// What was in flight went to the old address, most likely into a
    /// binding that no longer exists: probe at once on the new one instead
    /// of waiting out a probe timer backed off against the dead address.
    fn resend_after_path_change(&mut self) {
        if self.ack_eliciting_in_flight > 0 {
            self.on_probe_timeout();
        }
        self.pto_count = 0;
    }

    /// A PATH_RESPONSE completes the validation if it echoes our challenge
    /// and comes from the address being validated.
    pub(super) fn on_path_response(&mut self, from: SocketAddr, data: [u8; 8], events: &mut Events) {
        if let Some(m) = self.migration
            && m.challenge == data
            && from == self.path.remote
        {
            self.path.validated = true;
            self.migration = None;
            self.emit(Event::Migrated { remote: from }, events);
        }
    }

    /// How long a new address has to answer before the server may go back:
    /// RFC 9000 §8.2.4's three times the larger of the session's PTO and
    /// the PTO of a path with no RTT sample (kInitialRtt), about 3 s. The
    /// new path's RTT is unknown, and a shorter window made the server
    /// give up on a genuine address after one lost challenge.
    pub(super) fn validation_window(&self) -> Duration {
        let fresh = RttEstimator::default().pto_base(MAX_ACK_DELAY);
        self.pto_base().max(fresh) * 3
    }

    /// Called when a packet carrying the PATH_CHALLENGE is built.
    pub(super) fn on_challenge_sent(&mut self, now: Instant) {
        let base = self.pto_base();
        let Some(m) = &mut self.migration else { return };
        m.send_pending = false;
        // The first retransmission is not backed off: a challenge is tiny,
        // and the 3x limit already bounds what an address that never
        // answers can receive.
        let doublings = m.sends.saturating_sub(1).min(16);
        let backed_off = base.saturating_mul(1 << doublings).min(MAX_PTO.max(base));
        m.sends += 1;
        m.resend_at = Some(now + backed_off);
    }

    pub(super) fn migration_deadline(&self) -> Option<Instant> {
        let m = self.migration?;
        let resend = if m.send_pending { None } else { m.resend_at };
        Some(resend.map_or(m.deadline, |r| r.min(m.deadline)))
    }

    pub(super) fn handle_migration_timeout(&mut self, now: Instant) {
        let window = self.validation_window();
        let Some(m) = &mut self.migration else { return };
        if now >= m.deadline {
            if !m.heard {
                // Nothing but the packet that moved us came from the new
                // address: go back to the last validated one.
                self.path = m.previous;
                self.migration = None;
                return;
            }
            // The peer keeps talking from there: keep validating.
            m.heard = false;
            m.deadline = now + window;
        }
        if !m.send_pending && m.resend_at.is_some_and(|t| now >= t) {
            m.send_pending = true;
        }
    }

    /// Bytes the next packet may have on the current path: while an
    /// address is being validated, what is left of its 3x budget beyond
    /// [`CHALLENGE_RESERVE`], so data can never starve the challenge's
    /// retransmissions; a packet that carries the challenge may use the
    /// reserve itself.
    pub(super) fn data_budget(&self) -> u64 {
        let budget = self.path.send_budget();
        let Some(m) = self.migration else { return budget };
        let beyond_reserve = budget.saturating_sub(CHALLENGE_RESERVE);
        if m.send_pending { beyond_reserve.max(budget.min(CHALLENGE_RESERVE)) } else { beyond_reserve }
    }

    /// Something the application cares about crossed the path: a packet
    /// of the peer that needs acknowledging, or our own stream data.
    pub(super) fn on_activity(&mut self, now: Instant) {
        self.last_activity = Some(now);
        self.silence_probes = 0;
    }

    /// Client: when to PING because nothing has happened for a while
    /// after activity (docs/PROTOCOL.md §9). A NAT that rebinds while the
    /// server is sending leaves a client that only receives with nothing to
    /// say, and the server with a dead address; this probe ends that within
    /// about a second. Nothing in flight is required: otherwise the probe
    /// timer is already watching the path.
    pub(super) fn silence_probe_deadline(&self) -> Option<Instant> {
        if self.side != Side::Client
            || self.ping_pending
            || self.ack_eliciting_in_flight > 0
            || self.silence_probes >= MAX_SILENCE_PROBES
            || !matches!(self.state, State::Established)
        {
            return None;
        }
        Some(self.last_activity? + SILENCE_PROBE * (1 << self.silence_probes))
    }
}
