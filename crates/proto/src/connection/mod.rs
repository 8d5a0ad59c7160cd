//! One session's state machine: handshake progress, packet numbers, loss
//! recovery, the message streams, timers and closing. It is driven only by
//! the [`crate::Endpoint`], which owns every session; receiving lives in
//! `recv.rs`, building packets in `send.rs`, and this file holds the state,
//! the application-facing operations and the timers.

mod path;
mod recv;
mod send;

use path::Migration;
pub(crate) use path::Path;

pub(crate) use recv::{DataPacket, MIN_PEER_WINDOW};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::TransportConfig;
use crate::crypto::{ClientHandshake, PublicKey, Transport};
use crate::event::{CloseReason, Event, SendError};
use crate::handle::ConnectionHandle;
use crate::packet::ConnectionId;
use crate::ranges::RangeSet;
use crate::recovery::{MAX_ACK_DELAY, MAX_PTO, NewReno, RttEstimator};
use crate::replay::ReplayWindow;
use crate::stream::{MAX_MESSAGE_SIZE, RecvStream, SendStream};

pub(crate) use crate::event::Events;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Client,
    Server,
}

/// Where the client is in its handshake.
pub(crate) struct ClientConnecting {
    pub(crate) handshake: ClientHandshake,
    /// The INITIAL datagram, resent as is until the server answers.
    pub(crate) datagram: Vec<u8>,
    pub(crate) noise_msg1: Vec<u8>,
    pub(crate) retries_accepted: u8,
    pub(crate) send_pending: bool,
    pub(crate) first_sent: Option<Instant>,
    pub(crate) last_sent: Option<Instant>,
    pub(crate) retransmits: u32,
    pub(crate) expected_key: Option<PublicKey>,
}

pub(crate) enum State {
    /// Client only: waiting for HANDSHAKE.
    Connecting(Box<ClientConnecting>),
    /// Keys are set. On the server, `confirmed` becomes true with the first
    /// authenticated packet from the client.
    Established,
    /// `close` was called while data was unacknowledged: keep sending it,
    /// then send CLOSE.
    Flushing { code: u64, reason: String, deadline: Instant },
    /// Sending CLOSE until CLOSE_ACK (or the deadline).
    Closing { code: u64, reason: String, deadline: Instant, resend_at: Instant },
    /// The peer closed: answer its CLOSE retransmissions until the deadline.
    Draining { deadline: Instant },
    /// Nothing left to do; the endpoint frees the slot.
    Drained,
}

/// What a sent packet carried that must be resent if it is lost.
#[derive(Debug, Clone)]
pub(crate) struct SentPacket {
    pub(crate) time_sent: Instant,
    pub(crate) size: u16,
    pub(crate) stream: [(u64, u64); 4],
    pub(crate) stream_count: u8,
    pub(crate) max_data: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub packets_lost: u64,
    /// Probe timeouts (RFC 9002 §6.2): each resends the oldest
    /// unacknowledged data.
    pub probe_timeouts: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Authenticated packets dropped as replays or too old.
    pub packets_replayed: u64,
    /// Packets for this session that failed authentication.
    pub packets_forged: u64,
    pub rtt: Duration,
    pub congestion_window: u64,
}

pub(crate) struct Connection {
    pub(crate) handle: ConnectionHandle,
    pub(crate) side: Side,
    pub(crate) state: State,
    pub(crate) local_cid: ConnectionId,
    pub(crate) remote_cid: ConnectionId,
    pub(crate) path: Path,
    pub(crate) migration: Option<Migration>,
    pub(crate) path_response: Option<([u8; 8], SocketAddr)>,
    pub(crate) transport: Option<Transport>,
    pub(crate) server_key: Option<PublicKey>,
    /// Client: the server's stateless reset token for this session.
    pub(crate) reset_token: Option<[u8; 16]>,
    /// Server: the HANDSHAKE datagram, kept to answer retransmitted
    /// INITIALs until the client confirms.
    pub(crate) handshake_response: Option<Vec<u8>>,
    pub(crate) handshake_resend: bool,
    pub(crate) handshake_sent_at: Option<Instant>,
    pub(crate) handshake_resent: bool,
    /// Server: the client has sent an authenticated packet.
    pub(crate) confirmed: bool,
    /// Server: refuse the session with this code once confirmed.
    pub(crate) refuse: Option<u64>,
    /// The application has had its `Closed` event; nothing follows it.
    pub(crate) closed_reported: bool,
    pub(crate) config: TransportConfig,
    pub(crate) idle_timeout: Duration,
    pub(crate) started: Instant,
    pub(crate) handshake_timeout: Duration,

    // Sending.
    pub(crate) next_pn: u64,
    pub(crate) sent: VecDeque<Option<SentPacket>>,
    pub(crate) sent_base: u64,
    pub(crate) in_flight: u64,
    pub(crate) ack_eliciting_in_flight: u64,
    pub(crate) largest_acked: Option<u64>,
    pub(crate) rtt: RttEstimator,
    pub(crate) cc: NewReno,
    pub(crate) loss_time: Option<Instant>,
    pub(crate) pto_count: u32,
    pub(crate) probes_pending: u8,
    pub(crate) last_ack_eliciting_sent: Option<Instant>,
    pub(crate) last_sent: Instant,
    pub(crate) ping_pending: bool,
    /// Client silence probe (path.rs): the last activity, and probes sent
    /// since it.
    pub(crate) last_activity: Option<Instant>,
    pub(crate) silence_probes: u32,
    pub(crate) max_data_pending: bool,
    pub(crate) close_ack_pending: bool,
    pub(crate) close_send_pending: bool,
    pub(crate) send_stream: SendStream,
    pub(crate) peer_max_data: u64,
    pub(crate) blocked: bool,

    // Receiving.
    pub(crate) replay: ReplayWindow,
    pub(crate) received: RangeSet,
    pub(crate) largest_received_at: Option<Instant>,
    pub(crate) ack_pending: u32,
    pub(crate) ack_now: bool,
    pub(crate) ack_deadline: Option<Instant>,
    /// Reused for every packet's ACK frame and its ranges.
    pub(crate) ack_buf: Vec<u8>,
    pub(crate) ack_ranges: Vec<std::ops::RangeInclusive<u64>>,
    pub(crate) last_received: Instant,
    pub(crate) recv_stream: RecvStream,
    /// False while the application has paused reading
    /// ([`crate::Endpoint::set_reading`]): messages stay in the stream,
    /// unconsumed, so the window is not extended and the peer blocks.
    pub(crate) reading: bool,

    pub(crate) stats: ConnectionStats,
}

impl Connection {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        handle: ConnectionHandle,
        side: Side,
        state: State,
        local_cid: ConnectionId,
        remote_cid: ConnectionId,
        path: Path,
        config: TransportConfig,
        handshake_timeout: Duration,
        now: Instant,
    ) -> Self {
        Self {
            handle,
            side,
            state,
            local_cid,
            remote_cid,
            path,
            migration: None,
            path_response: None,
            transport: None,
            server_key: None,
            reset_token: None,
            handshake_response: None,
            handshake_resend: false,
            handshake_sent_at: None,
            handshake_resent: false,
            confirmed: side == Side::Client,
            refuse: None,
            closed_reported: false,
            idle_timeout: config.idle_timeout,
            send_stream: SendStream::new(config.send_buffer),
            recv_stream: RecvStream::new(config.receive_window),
            config,
            started: now,
            handshake_timeout,
            next_pn: 0,
            sent: VecDeque::new(),
            sent_base: 0,
            in_flight: 0,
            ack_eliciting_in_flight: 0,
            largest_acked: None,
            rtt: RttEstimator::default(),
            cc: NewReno::default(),
            loss_time: None,
            pto_count: 0,
            probes_pending: 0,
            last_ack_eliciting_sent: None,
            last_sent: now,
            ping_pending: false,
            last_activity: None,
            silence_probes: 0,
            max_data_pending: false,
            close_ack_pending: false,
            close_send_pending: false,
            peer_max_data: 0,
            blocked: false,
            replay: ReplayWindow::default(),
            received: RangeSet::new(),
            largest_received_at: None,
            ack_pending: 0,
            ack_now: false,
            ack_deadline: None,
            ack_buf: Vec::new(),
            ack_ranges: Vec::new(),
            last_received: now,
            reading: true,
            stats: ConnectionStats::default(),
        }
    }

    pub(crate) fn is_drained(&self) -> bool {
        matches!(self.state, State::Drained)
    }

    /// Whether the application may still use the session.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.state, State::Connecting(_) | State::Established)
    }

    pub(crate) fn stats(&self) -> ConnectionStats {
        ConnectionStats { rtt: self.rtt.smoothed(), congestion_window: self.cc.window(), ..self.stats }
    }

    pub(crate) fn send(&mut self, msg: &[u8], reserve: bool) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        if msg.len() > MAX_MESSAGE_SIZE {
            return Err(SendError::TooLarge { size: msg.len(), max: MAX_MESSAGE_SIZE });
        }
        let room = if reserve {
            self.send_stream.has_reserve_for(msg.len())
        } else {
            self.send_stream.has_room_for(msg.len())
        };
        if !room {
            self.blocked = true;
            return Err(SendError::Blocked);
        }
        self.send_stream.push_message(msg);
        Ok(())
    }

    /// Starts a graceful close: data already accepted is delivered first,
    /// then CLOSE is sent until the peer acknowledges it.
    pub(crate) fn close(&mut self, now: Instant, code: u64, reason: &str, events: &mut Events) {
        match self.state {
            State::Connecting(_) => {
                // No keys yet, so nothing can be said to the server.
                self.finish(CloseReason::Local { code }, events);
            }
            State::Established => {
                let reason = reason.to_owned();
                if self.send_stream.is_fully_acked() {
                    self.start_closing(now, code, reason);
                } else {
                    let patience = if self.idle_timeout.is_zero() {
                        Duration::from_secs(30)
                    } else {
                        self.idle_timeout.max(Duration::from_secs(1))
                    };
                    let deadline = now + patience;
                    self.state = State::Flushing { code, reason, deadline };
                }
            }
            _ => {}
        }
    }

    pub(crate) fn start_closing(&mut self, now: Instant, code: u64, reason: String) {
        let pto = self.pto_base();
        self.state = State::Closing { code, reason, deadline: now + pto * 3, resend_at: now + pto };
        self.close_send_pending = true;
    }

    /// Ends the session for the application with `reason`; the slot is
    /// freed once the endpoint sees the drained state.
    pub(crate) fn finish(&mut self, reason: CloseReason, events: &mut Events) {
        self.report_closed(reason, events);
        self.state = State::Drained;
    }

    /// Gives the application its one `Closed` event. A server session the
    /// application never saw (unconfirmed or refused) ends silently.
    pub(crate) fn report_closed(&mut self, reason: CloseReason, events: &mut Events) {
        let seen = self.side == Side::Client || (self.confirmed && self.refuse.is_none());
        if seen && !self.closed_reported {
            events.push_back((self.handle, Event::Closed(reason)));
        }
        self.closed_reported = true;
    }

    /// Queues an event unless the application was already told of the end.
    pub(crate) fn emit(&mut self, event: Event, events: &mut Events) {
        if !self.closed_reported {
            events.push_back((self.handle, event));
        }
    }

    /// Enters draining after the peer closed (or broke the protocol).
    pub(crate) fn drain(&mut self, now: Instant, reason: CloseReason, events: &mut Events) {
        let deadline = now + self.pto_base() * 3;
        self.finish(reason, events);
        self.state = State::Draining { deadline };
    }

    /// Closes because the peer sent something invalid.
    pub(crate) fn violation(&mut self, now: Instant, code: u64, what: &'static str, events: &mut Events) {
        if !self.is_open() && !matches!(self.state, State::Flushing { .. }) {
            return;
        }
        self.report_closed(CloseReason::ProtocolViolation(what), events);
        self.start_closing(now, code, what.to_owned());
    }

    pub(crate) fn pto_base(&self) -> Duration {
        self.rtt.pto_base(MAX_ACK_DELAY)
    }

    /// The backed-off probe timeout, capped at [`MAX_PTO`].
    fn pto_period(&self) -> Duration {
        let base = self.pto_base();
        let count = match &self.state {
            State::Connecting(c) => c.retransmits,
            _ => self.pto_count,
        };
        let backed_off = base.saturating_mul(1 << count.min(16));
        backed_off.min(MAX_PTO.max(base))
    }

    fn idle_deadline(&self) -> Instant {
        match self.state {
            State::Connecting(_) => self.started + self.handshake_timeout,
            _ if !self.confirmed => self.last_received + self.handshake_timeout,
            _ if self.idle_timeout.is_zero() => self.last_received + Duration::from_secs(86_400 * 365),
            _ => self.last_received + self.idle_timeout,
        }
    }

    fn pto_deadline(&self) -> Option<Instant> {
        if let Some(t) = self.loss_time {
            return Some(t);
        }
        // Probes already due wait for poll_transmit, not for a timer.
        if self.ack_eliciting_in_flight == 0 || self.probes_pending > 0 {
            return None;
        }
        self.last_ack_eliciting_sent.map(|t| t + self.pto_period())
    }

    /// Keepalives go out at the configured interval, but at least twice per
    /// effective idle timeout so a peer with a shorter timeout keeps us.
    fn keepalive_deadline(&self) -> Option<Instant> {
        if self.ping_pending || !matches!(self.state, State::Established) {
            return None;
        }
        let interval = self.config.keepalive_interval?;
        let interval = if self.idle_timeout.is_zero() { interval } else { interval.min(self.idle_timeout / 2) };
        Some(self.last_sent + interval)
    }

    /// The earliest time [`Self::handle_timeout`] has work to do.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let mut deadline = self.idle_deadline();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                deadline = deadline.min(t);
            }
        };
        match &self.state {
            State::Drained => return None,
            State::Connecting(c) => {
                if !c.send_pending {
                    consider(c.last_sent.map(|t| t + self.pto_period()));
                }
                return Some(deadline);
            }
            // Only the close timers matter once closing has begun.
            State::Draining { deadline: d } => return Some(*d),
            State::Closing { deadline: d, resend_at, .. } => {
                return Some((*d).min(*resend_at));
            }
            State::Flushing { deadline: d, .. } => consider(Some(*d)),
            State::Established => {}
        }
        consider(self.pto_deadline());
        consider(self.ack_deadline);
        consider(self.keepalive_deadline());
        consider(self.migration_deadline());
        consider(self.silence_probe_deadline());
        Some(deadline)
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant, events: &mut Events) {
        let period = self.pto_period();
        match &mut self.state {
            State::Drained => return,
            State::Connecting(c) => {
                if now >= self.started + self.handshake_timeout {
                    self.finish(CloseReason::HandshakeTimedOut, events);
                } else if c.last_sent.is_some_and(|t| now >= t + period) {
                    c.send_pending = true;
                    c.retransmits += 1;
                }
                return;
            }
            State::Draining { deadline } => {
                if now >= *deadline {
                    self.state = State::Drained;
                }
                return;
            }
            State::Closing { deadline, resend_at, code, .. } => {
                if now >= *deadline {
                    let code = *code;
                    self.finish(CloseReason::Local { code }, events);
                    return;
                }
                if now >= *resend_at {
                    *resend_at = now + self.rtt.pto_base(MAX_ACK_DELAY);
                    self.close_send_pending = true;
                }
                // Only the close timers run now; its deadline ends it.
                return;
            }
            State::Flushing { deadline, code, reason } => {
                if now >= *deadline {
                    let (code, reason) = (*code, std::mem::take(reason));
                    self.start_closing(now, code, reason);
                }
            }
            State::Established => {}
        }
        if now >= self.idle_deadline() {
            let reason = if self.confirmed { CloseReason::TimedOut } else { CloseReason::HandshakeTimedOut };
            self.finish(reason, events);
            return;
        }
        self.handle_migration_timeout(now);
        if self.ack_deadline.is_some_and(|t| now >= t) {
            self.ack_now = true;
            self.ack_deadline = None;
        }
        if self.loss_time.is_some_and(|t| now >= t) {
            self.detect_lost(now);
        } else if self.pto_deadline().is_some_and(|t| now >= t) {
            self.on_probe_timeout();
        }
        if self.keepalive_deadline().is_some_and(|t| now >= t) {
            self.ping_pending = true;
        }
        if self.silence_probe_deadline().is_some_and(|t| now >= t) {
            self.ping_pending = true;
            self.silence_probes += 1;
        }
    }

    /// RFC 9002 §6.2.4: send probes, resending the oldest unacknowledged
    /// data so the probe is useful if the original was lost.
    pub(super) fn on_probe_timeout(&mut self) {
        self.pto_count += 1;
        self.stats.probe_timeouts += 1;
        self.probes_pending = 2;
        let oldest = self.sent.iter().flatten().find(|p| p.stream_count > 0 || p.max_data).cloned();
        match oldest {
            Some(p) => {
                for &(start, end) in &p.stream[..p.stream_count as usize] {
                    self.send_stream.on_lost(start..end);
                }
                self.max_data_pending |= p.max_data;
            }
            None => self.ping_pending = true,
        }
    }

    pub(crate) fn remote(&self) -> SocketAddr {
        self.path.remote
    }

    /// After acks free send-buffer space, tell a blocked application.
    pub(crate) fn check_writable(&mut self, now: Instant, events: &mut Events) {
        if self.blocked && self.send_stream.has_room_for(MAX_MESSAGE_SIZE / 2) && self.is_open() {
            self.blocked = false;
            self.emit(Event::Writable, events);
        }
        if let State::Flushing { code, reason, .. } = &mut self.state
            && self.send_stream.is_fully_acked()
        {
            let (code, reason) = (*code, std::mem::take(reason));
            self.start_closing(now, code, reason);
        }
    }
}
