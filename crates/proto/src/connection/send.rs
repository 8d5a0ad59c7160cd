//! Building outgoing datagrams. Each call writes at most one datagram and
//! packs into it every frame that is due and fits: ACKs, control frames and
//! as much stream data as flow and congestion control allow. Many small
//! messages queued for one peer therefore leave in one datagram, which is
//! what makes fan-out cheap (the kernel's cost is per datagram, not per
//! byte).

use std::net::SocketAddr;
use std::time::Instant;

use super::{Connection, SentPacket, State};
use crate::coding::{Writer, varint_len};
use crate::frame::{self, MAX_ACK_RANGES, encode_ack, encode_close};
use crate::packet::{DATA_HEADER_LEN, DataHeader, MAX_DATAGRAM_SIZE, TAG_LEN};

/// Smallest datagram worth building: header, tag and a few frame bytes.
const MIN_PACKET: usize = DATA_HEADER_LEN + TAG_LEN + 16;

impl Connection {
    /// Appends one datagram to `out` if anything is due, and returns where
    /// it goes. `max_size` caps its length (the endpoint passes the GSO
    /// segment size for all but the first datagram of a batch); `only_to`
    /// refuses datagrams for another address, since one batch has one
    /// destination.
    pub(crate) fn poll_transmit(
        &mut self,
        now: Instant,
        out: &mut Vec<u8>,
        max_size: usize,
        only_to: Option<SocketAddr>,
        scratch: &mut Vec<u8>,
    ) -> Option<SocketAddr> {
        let to_path = only_to.is_none_or(|a| a == self.path.remote);
        if let State::Connecting(c) = &mut self.state {
            if !c.send_pending || !to_path || max_size < c.datagram.len() {
                return None;
            }
            out.extend_from_slice(&c.datagram);
            c.send_pending = false;
            c.first_sent.get_or_insert(now);
            c.last_sent = Some(now);
            self.last_sent = now;
            self.stats.packets_sent += 1;
            self.stats.bytes_sent += c.datagram.len() as u64;
            return Some(self.path.remote);
        }
        if self.handshake_resend && to_path {
            self.handshake_resend = false;
            let response = self.handshake_response.as_ref()?;
            // Anti-amplification: never more than 3x what the address sent.
            if (response.len() as u64) > self.path.send_budget() || response.len() > max_size {
                return None;
            }
            out.extend_from_slice(response);
            self.path.bytes_sent += response.len() as u64;
            if self.handshake_sent_at.is_some() {
                self.handshake_resent = true;
            }
            self.handshake_sent_at.get_or_insert(now);
            self.last_sent = now;
            self.stats.packets_sent += 1;
            self.stats.bytes_sent += response.len() as u64;
            return Some(self.path.remote);
        }
        self.transport.as_ref()?;
        if matches!(self.state, State::Drained) {
            return None;
        }
        // A PATH_RESPONSE goes back to where its challenge came from, alone.
        if let Some((data, addr)) = self.path_response
            && addr != self.path.remote
        {
            if only_to.is_some_and(|a| a != addr) {
                return None;
            }
            scratch.clear();
            frame::Frame::PathResponse(data).encode(scratch);
            self.path_response = None;
            self.seal_packet(now, out, scratch, false, None);
            return Some(addr);
        }
        if !to_path {
            return None;
        }
        let budget = (max_size.min(MAX_DATAGRAM_SIZE) as u64).min(self.data_budget()) as usize;
        if budget < MIN_PACKET {
            return None;
        }
        let max_plain = budget - DATA_HEADER_LEN - TAG_LEN;
        scratch.clear();
        let mut record = SentPacket { time_sent: now, size: 0, stream: [(0, 0); 4], stream_count: 0, max_data: false };
        let mut ack_eliciting = false;

        match &self.state {
            State::Draining { .. } => {
                if self.close_ack_pending {
                    scratch.put_varint(frame::ty::CLOSE_ACK);
                    self.close_ack_pending = false;
                }
            }
            State::Closing { code, reason, .. } => {
                if self.close_ack_pending {
                    scratch.put_varint(frame::ty::CLOSE_ACK);
                    self.close_ack_pending = false;
                }
                if self.close_send_pending {
                    encode_close(scratch, *code, reason);
                    self.close_send_pending = false;
                }
            }
            _ => {
                ack_eliciting = self.write_frames(now, scratch, max_plain, &mut record);
            }
        }
        if scratch.is_empty() {
            return None;
        }
        // Closing packets are resent by the close timer, not loss recovery.
        let track = ack_eliciting && matches!(self.state, State::Established | State::Flushing { .. });
        self.seal_packet(now, out, scratch, track, Some(record));
        Some(self.path.remote)
    }

    /// Writes the frames of a packet in an open session. Returns whether the
    /// packet is ack-eliciting.
    fn write_frames(&mut self, now: Instant, scratch: &mut Vec<u8>, max_plain: usize, record: &mut SentPacket) -> bool {
        let mut ack_eliciting = false;
        if let Some((data, _)) = self.path_response.take() {
            frame::Frame::PathResponse(data).encode(scratch);
            ack_eliciting = true;
        }
        if let Some(m) = self.migration
            && m.send_pending
        {
            frame::Frame::PathChallenge(m.challenge).encode(scratch);
            self.on_challenge_sent(now);
            ack_eliciting = true;
        }
        // The ACK is encoded first but kept aside (frames may come in any
        // order): it goes last if it is due, or if the packet goes out
        // anyway (piggybacking costs nothing). Its buffers are reused, and
        // the other frames go straight into `scratch`: no allocation per
        // packet.
        let mut ack = std::mem::take(&mut self.ack_buf);
        ack.clear();
        if self.ack_pending > 0 || self.ack_now {
            let delay = self.largest_received_at.map_or(0, |t| now.saturating_duration_since(t).as_micros() as u64);
            let mut ranges = std::mem::take(&mut self.ack_ranges);
            ranges.clear();
            ranges.extend(self.received.iter_desc().take(MAX_ACK_RANGES).map(|r| r.start..=r.end - 1));
            encode_ack(&mut ack, delay, &ranges);
            self.ack_ranges = ranges;
        }
        let room = max_plain.saturating_sub(ack.len());
        if self.max_data_pending {
            scratch.put_varint(frame::ty::MAX_DATA);
            scratch.put_varint(self.recv_stream.advertised());
            self.max_data_pending = false;
            record.max_data = true;
            ack_eliciting = true;
        }
        if self.ping_pending {
            scratch.put_varint(frame::ty::PING);
            self.ping_pending = false;
            ack_eliciting = true;
        }
        // Stream data, within the congestion window unless this is a probe.
        let probing = self.probes_pending > 0;
        let cwnd_ok = probing || self.in_flight + MAX_DATAGRAM_SIZE as u64 <= self.cc.window();
        if cwnd_ok {
            while (record.stream_count as usize) < record.stream.len() {
                let space = room.saturating_sub(scratch.len());
                // Worst-case header: type, 8-byte offset, 2-byte length.
                if space <= 11 {
                    break;
                }
                let Some(chunk) = self.send_stream.next_chunk((space - 11) as u64, self.peer_max_data) else {
                    break;
                };
                let len = (chunk.end - chunk.start) as usize;
                debug_assert!(frame::stream_header_len(chunk.start, len) <= 11);
                frame::encode_stream_header(scratch, chunk.start, len);
                self.send_stream.copy_to(chunk.clone(), scratch);
                record.stream[record.stream_count as usize] = (chunk.start, chunk.end);
                record.stream_count += 1;
                ack_eliciting = true;
            }
        }
        if probing && !ack_eliciting {
            scratch.put_varint(frame::ty::PING);
            ack_eliciting = true;
        }
        if !ack.is_empty() && (self.ack_now || ack_eliciting || !scratch.is_empty()) {
            scratch.extend_from_slice(&ack);
            self.ack_pending = 0;
            self.ack_now = false;
            self.ack_deadline = None;
        }
        self.ack_buf = ack;
        debug_assert!(varint_len(0) == 1);
        ack_eliciting
    }

    /// Encrypts `plaintext` as the next packet and does the bookkeeping.
    fn seal_packet(
        &mut self,
        now: Instant,
        out: &mut Vec<u8>,
        plaintext: &[u8],
        track: bool,
        record: Option<SentPacket>,
    ) {
        let Some(transport) = &self.transport else { return };
        let pn = self.next_pn;
        self.next_pn += 1;
        let start = out.len();
        DataHeader { dest_cid: self.remote_cid, packet_number: pn }.encode(out);
        transport.seal(pn, plaintext, out);
        let size = out.len() - start;
        self.path.bytes_sent += size as u64;
        self.last_sent = now;
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += size as u64;
        if track && let Some(mut record) = record {
            record.size = size as u16;
            let carries_stream = record.stream_count > 0;
            if self.sent.is_empty() {
                self.sent_base = pn;
            }
            while self.sent_base + (self.sent.len() as u64) < pn {
                self.sent.push_back(None);
            }
            self.sent.push_back(Some(record));
            self.in_flight += size as u64;
            self.ack_eliciting_in_flight += 1;
            self.last_ack_eliciting_sent = Some(now);
            self.probes_pending = self.probes_pending.saturating_sub(1);
            if carries_stream {
                self.on_activity(now);
            }
        }
    }
}
