//! Receiving: the client's handshake packets, and for established sessions
//! decryption, replay checks, address migration, frame handling, ACK
//! processing and loss detection (RFC 9002 §6).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Connection, Events, State};
use crate::crypto::Transport;
use crate::event::{CloseReason, Event, code};
use crate::frame::{AckFrame, Frame, Frames, MAX_ACK_RANGES};
use crate::packet::{Initial, MIN_INITIAL_SIZE, SUPPORTED_VERSIONS, VERSION_1};
use crate::params::TransportParams;
use crate::recovery::PACKET_THRESHOLD;
use crate::stream::{MAX_MESSAGE_SIZE, RecvError};

/// The smallest receive window a peer may announce: one whole message with
/// its length prefix.
pub(crate) const MIN_PEER_WINDOW: u64 = MAX_MESSAGE_SIZE as u64 + 8;

/// A received DATA packet, as the endpoint parsed it.
pub(crate) struct DataPacket<'a> {
    pub(crate) from: SocketAddr,
    pub(crate) pn: u64,
    pub(crate) ciphertext: &'a [u8],
    /// The whole datagram's length, for the anti-amplification budget.
    pub(crate) datagram_len: usize,
}

impl Connection {
    /// Client: the server's HANDSHAKE arrived.
    pub(crate) fn handle_handshake(&mut self, now: Instant, noise: &[u8], events: &mut Events) {
        let State::Connecting(connecting) = std::mem::replace(&mut self.state, State::Drained) else {
            return;
        };
        let connecting = *connecting;
        let Ok((transport, key, payload)) = connecting.handshake.finish(noise) else {
            // Only someone on the path sees our connection id, and such an
            // attacker could as well drop our packets: ending the attempt
            // with a clear error costs nothing more.
            self.finish(CloseReason::ProtocolViolation("handshake from server did not authenticate"), events);
            return;
        };
        let Ok(params) = TransportParams::decode(&payload) else {
            self.finish(CloseReason::ProtocolViolation("invalid transport parameters"), events);
            return;
        };
        let Some(server_cid) = params.connection_id else {
            self.finish(CloseReason::ProtocolViolation("server sent no connection id"), events);
            return;
        };
        if let Some(expected) = connecting.expected_key
            && expected != key
        {
            self.finish(CloseReason::KeyMismatch { expected, got: key }, events);
            return;
        }
        if connecting.retransmits == 0
            && let Some(sent) = connecting.first_sent
        {
            self.rtt.update(now.saturating_duration_since(sent), Duration::ZERO);
        }
        if !self.apply_peer_params(&params) {
            self.finish(CloseReason::ProtocolViolation("server's receive window is below one message"), events);
            return;
        }
        self.remote_cid = server_cid;
        self.reset_token = params.reset_token;
        self.transport = Some(transport);
        self.server_key = Some(key);
        self.state = State::Established;
        self.last_received = now;
        // A session that just opened expects traffic (a login, history):
        // the silence probe watches it from here (path.rs).
        self.on_activity(now);
        // Confirm to the server at once: it keeps half-open state until it
        // hears an authenticated packet from us.
        self.ping_pending = true;
        self.emit(Event::Connected { server_key: key }, events);
    }

    /// Client: the server says it has no such session. The token proved
    /// it is really the server (docs/PROTOCOL.md §5.5).
    pub(crate) fn handle_reset(&mut self, events: &mut Events) {
        if self.is_open() || matches!(self.state, State::Flushing { .. } | State::Closing { .. }) {
            self.finish(CloseReason::Reset, events);
        }
    }

    /// Client: the server asked for a retry cookie.
    pub(crate) fn handle_retry(&mut self, token: &[u8]) {
        let State::Connecting(c) = &mut self.state else { return };
        // Retry is unauthenticated; accepting a few lets a genuine one
        // through after an injected one, without looping forever.
        if c.retries_accepted >= 3 || token.is_empty() {
            return;
        }
        c.retries_accepted += 1;
        // The RTT sample must not include the retry round trip.
        c.first_sent = None;
        c.retransmits = 0;
        let mut datagram = Vec::with_capacity(MIN_INITIAL_SIZE);
        Initial { version: VERSION_1, client_cid: self.local_cid, token, noise: &c.noise_msg1 }.encode(&mut datagram);
        c.datagram = datagram;
        c.send_pending = true;
    }

    /// Client: the server speaks other versions.
    pub(crate) fn handle_version_negotiation(&mut self, versions: &[u32], events: &mut Events) {
        if !matches!(self.state, State::Connecting(_)) || versions.iter().any(|v| SUPPORTED_VERSIONS.contains(v)) {
            // A list that includes our version is bogus: ignore it.
            return;
        }
        self.finish(CloseReason::VersionMismatch { offered: versions.to_vec() }, events);
    }

    /// Adopts the peer's parameters; false if they cannot work (a receive
    /// window too small for one whole message would stall the stream).
    pub(crate) fn apply_peer_params(&mut self, params: &TransportParams) -> bool {
        if params.initial_max_data < MIN_PEER_WINDOW {
            return false;
        }
        if !params.idle_timeout.is_zero() {
            self.idle_timeout = if self.idle_timeout.is_zero() {
                params.idle_timeout
            } else {
                self.idle_timeout.min(params.idle_timeout)
            };
        }
        self.peer_max_data = params.initial_max_data;
        true
    }

    /// Server: the same INITIAL again (our HANDSHAKE was lost).
    pub(crate) fn handle_initial_retransmit(&mut self, len: usize) {
        if self.confirmed {
            return;
        }
        self.path.bytes_received += len as u64;
        self.handshake_resend = self.handshake_response.is_some();
    }

    /// An encrypted DATA packet for this session.
    pub(crate) fn handle_data(
        &mut self,
        now: Instant,
        packet: DataPacket<'_>,
        plaintext: &mut Vec<u8>,
        events: &mut Events,
    ) {
        let DataPacket { from, pn, ciphertext, datagram_len } = packet;
        let Some(transport) = &self.transport else { return };
        if matches!(self.state, State::Drained) {
            return;
        }
        if !self.replay.check(pn) {
            self.stats.packets_replayed += 1;
            return;
        }
        if transport.open(pn, ciphertext, plaintext).is_err() {
            self.stats.packets_forged += 1;
            return;
        }
        let is_largest = self.replay.largest().is_none_or(|l| pn > l);
        self.replay.record(pn);
        self.stats.packets_received += 1;
        self.stats.bytes_received += datagram_len as u64;
        self.last_received = now;

        if let State::Draining { .. } = self.state {
            // Only a retransmitted CLOSE needs an answer now.
            if Frames::new(plaintext).any(|f| matches!(f, Ok(Frame::Close { .. }))) {
                self.close_ack_pending = true;
            }
            return;
        }
        self.update_path(now, from, is_largest, datagram_len);
        if !self.confirmed && self.side == super::Side::Server {
            self.confirm(now, events);
        }

        let mut ack_eliciting = false;
        let payload = std::mem::take(plaintext);
        for frame in Frames::new(&payload) {
            let Ok(frame) = frame else {
                self.violation(now, code::PROTOCOL_VIOLATION, "malformed frame", events);
                break;
            };
            ack_eliciting |= frame.is_ack_eliciting();
            self.handle_frame(now, from, frame, events);
            if self.closed_reported || matches!(self.state, State::Drained | State::Draining { .. }) {
                break;
            }
        }
        *plaintext = payload;
        self.on_packet_received(now, pn, ack_eliciting);
    }

    /// The server's half-open session heard its client: the address is
    /// proven and the application learns of the session.
    fn confirm(&mut self, now: Instant, events: &mut Events) {
        self.confirmed = true;
        self.path.validated = true;
        self.handshake_response = None;
        self.handshake_resend = false;
        // A resent HANDSHAKE makes the sample ambiguous (RFC 9002 §5.1).
        if let (Some(sent), false) = (self.handshake_sent_at, self.handshake_resent) {
            self.rtt.update(now.saturating_duration_since(sent), Duration::ZERO);
        }
        if let Some(code) = self.refuse {
            // Confirmed (no longer half-open), but the application never
            // sees it: report_closed stays silent for refused sessions.
            self.start_closing(now, code, "server is full".to_owned());
            return;
        }
        if let Some(key) = self.server_key {
            self.emit(Event::Connected { server_key: key }, events);
        }
    }

    /// Hands the application every complete message, unless it paused
    /// reading, and extends the peer's window by what it consumed.
    pub(crate) fn deliver_messages(&mut self, now: Instant, events: &mut Events) {
        while self.reading {
            let mut msg = events.buffer();
            match self.recv_stream.next_message_into(&mut msg) {
                Ok(true) => self.emit(Event::Message(msg), events),
                Ok(false) => {
                    events.recycle(msg);
                    break;
                }
                Err(e) => {
                    self.recv_error(now, e, events);
                    return;
                }
            }
        }
        if self.recv_stream.max_data_update().is_some() {
            self.max_data_pending = true;
        }
    }

    fn handle_frame(&mut self, now: Instant, from: SocketAddr, frame: Frame<'_>, events: &mut Events) {
        match frame {
            Frame::Padding | Frame::Ping => {}
            Frame::Ack(ack) => self.handle_ack(now, &ack, events),
            Frame::Stream { offset, data } => {
                if let Err(e) = self.recv_stream.insert(offset, data) {
                    self.recv_error(now, e, events);
                    return;
                }
                self.deliver_messages(now, events);
            }
            Frame::MaxData(max) => self.peer_max_data = self.peer_max_data.max(max),
            Frame::Close { code, reason } => {
                let reason = String::from_utf8_lossy(reason).into_owned();
                self.close_ack_pending = true;
                match self.state {
                    State::Closing { code: ours, .. } => {
                        // Both ended at once: our close is as good as acknowledged.
                        self.finish(CloseReason::Local { code: ours }, events);
                        self.state = State::Draining { deadline: now + self.pto_base() * 3 };
                    }
                    _ => self.drain(now, CloseReason::Peer { code, reason }, events),
                }
            }
            Frame::CloseAck => {
                if let State::Closing { code, .. } = self.state {
                    self.finish(CloseReason::Local { code }, events);
                }
            }
            Frame::PathChallenge(data) => self.path_response = Some((data, from)),
            Frame::PathResponse(data) => self.on_path_response(from, data, events),
        }
    }

    fn recv_error(&mut self, now: Instant, e: RecvError, events: &mut Events) {
        let (code, what) = match e {
            RecvError::FlowControl => (code::FLOW_CONTROL, "data beyond the flow-control limit"),
            RecvError::MessageTooLarge => (code::MESSAGE_TOO_LARGE, "message over 64 KiB"),
        };
        self.violation(now, code, what, events);
    }

    /// Bookkeeping for the ACKs we owe (RFC 9000 §13.2: acknowledge at least
    /// every second ack-eliciting packet, at once when one arrives out of
    /// order, and otherwise within max_ack_delay).
    fn on_packet_received(&mut self, now: Instant, pn: u64, ack_eliciting: bool) {
        let out_of_order = self.received.max().is_some_and(|m| pn != m + 1);
        self.received.insert(pn..pn + 1);
        self.received.truncate_low(MAX_ACK_RANGES);
        if self.received.max() == Some(pn) {
            self.largest_received_at = Some(now);
        }
        if !ack_eliciting {
            return;
        }
        self.on_activity(now);
        self.ack_pending += 1;
        if self.ack_pending >= 2 || out_of_order {
            self.ack_now = true;
        } else if self.ack_deadline.is_none() {
            self.ack_deadline = Some(now + crate::recovery::MAX_ACK_DELAY);
        }
    }

    fn handle_ack(&mut self, now: Instant, ack: &AckFrame<'_>, events: &mut Events) {
        if ack.largest >= self.next_pn {
            self.violation(now, code::PROTOCOL_VIOLATION, "acknowledged an unsent packet", events);
            return;
        }
        let mut largest_newly_acked = None;
        let mut newly_acked = false;
        for range in ack.ranges() {
            let lo = (*range.start()).max(self.sent_base);
            let hi = (*range.end()).min(self.next_pn.saturating_sub(1));
            if lo > hi {
                continue;
            }
            for pn in lo..=hi {
                let idx = (pn - self.sent_base) as usize;
                let Some(p) = self.sent.get_mut(idx).and_then(Option::take) else { continue };
                newly_acked = true;
                if pn == ack.largest {
                    largest_newly_acked = Some(p.time_sent);
                }
                self.in_flight -= u64::from(p.size);
                self.ack_eliciting_in_flight -= 1;
                self.cc.on_ack(pn, u64::from(p.size));
                for &(start, end) in &p.stream[..p.stream_count as usize] {
                    self.send_stream.on_ack(start..end);
                }
            }
        }
        self.largest_acked = Some(self.largest_acked.map_or(ack.largest, |l| l.max(ack.largest)));
        if let Some(sent) = largest_newly_acked {
            let delay = Duration::from_micros(ack.delay_micros).min(crate::recovery::MAX_ACK_DELAY);
            self.rtt.update(now.saturating_duration_since(sent), delay);
        }
        // RFC 9002 §6.2.1: the backoff resets only when something new is acked.
        if newly_acked {
            self.pto_count = 0;
        }
        self.detect_lost(now);
        self.trim_sent();
        self.check_writable(now, events);
    }

    /// RFC 9002 §6.1: declare lost what is 3 packets or 9/8 RTT behind the
    /// largest acknowledged packet, and arm the timer for the rest.
    pub(crate) fn detect_lost(&mut self, now: Instant) {
        self.loss_time = None;
        let Some(largest) = self.largest_acked else { return };
        let loss_delay = self.rtt.loss_delay();
        let lost_before = now.checked_sub(loss_delay);
        let end = largest.saturating_add(1).min(self.sent_base + self.sent.len() as u64);
        for pn in self.sent_base..end {
            let idx = (pn - self.sent_base) as usize;
            let Some(p) = &self.sent[idx] else { continue };
            let by_count = largest - pn >= PACKET_THRESHOLD;
            let by_time = lost_before.is_some_and(|t| p.time_sent <= t);
            if by_count || by_time {
                let p = self.sent[idx].take().expect("checked above");
                self.in_flight -= u64::from(p.size);
                self.ack_eliciting_in_flight -= 1;
                self.stats.packets_lost += 1;
                self.cc.on_loss(pn, self.next_pn);
                for &(start, end) in &p.stream[..p.stream_count as usize] {
                    self.send_stream.on_lost(start..end);
                }
                self.max_data_pending |= p.max_data;
            } else {
                let t = p.time_sent + loss_delay;
                self.loss_time = Some(self.loss_time.map_or(t, |l| l.min(t)));
            }
        }
        self.trim_sent();
    }

    fn trim_sent(&mut self) {
        while let Some(None) = self.sent.front() {
            self.sent.pop_front();
            self.sent_base += 1;
        }
    }

    pub(crate) fn set_transport(&mut self, transport: Transport) {
        self.transport = Some(transport);
    }
}
