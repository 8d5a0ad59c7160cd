//! The reliable message stream: one ordered byte stream per direction, in
//! which every application message is a varint length and that many bytes
//! (docs/PROTOCOL.md §6). Working in byte offsets, as QUIC streams do,
//! makes fragmentation, retransmission and duplicate removal one mechanism:
//! a 64 KiB message is simply a run of offsets spread over many packets.
//!
//! Memory is bounded on both sides: the sender refuses messages beyond
//! `send_buffer` bytes of unacknowledged data (back-pressure), and the
//! receiver never holds more than the window it advertised in MAX_DATA.

use std::collections::{BTreeMap, VecDeque};
use std::ops::Range;

use crate::coding::{Reader, encode_varint};
use crate::ranges::RangeSet;

/// Largest application message, in bytes.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Outgoing stream data: everything from the lowest unacknowledged offset
/// to the end of the last queued message.
#[derive(Debug)]
pub struct SendStream {
    /// Bytes `base..end`; dropped from the front as they are acknowledged.
    buf: VecDeque<u8>,
    base: u64,
    /// Offsets below this have been sent at least once.
    next: u64,
    /// Acknowledged offsets at or above `base`.
    acked: RangeSet,
    /// Offsets declared lost, to send again before new data.
    retransmit: RangeSet,
    limit: usize,
}

impl SendStream {
    pub fn new(limit: usize) -> Self {
        Self { buf: VecDeque::new(), base: 0, next: 0, acked: RangeSet::new(), retransmit: RangeSet::new(), limit }
    }

    pub fn end(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Bytes queued or unacknowledged.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether a message of `len` bytes fits under the buffer limit now.
    pub fn has_room_for(&self, len: usize) -> bool {
        self.buf.len() + len + 8 <= self.limit
    }

    /// Room under the hard limit (twice the soft one), which replies may
    /// use so that a full queue of bulk data never swallows them.
    pub fn has_reserve_for(&self, len: usize) -> bool {
        self.buf.len() + len + 8 <= self.limit.saturating_mul(2)
    }

    /// Appends one framed message. The caller checked size and room.
    pub fn push_message(&mut self, msg: &[u8]) {
        let (header, len) = encode_varint(msg.len() as u64);
        self.buf.extend(&header[..len]);
        self.buf.extend(msg);
    }

    /// Whether everything queued has been acknowledged.
    pub fn is_fully_acked(&self) -> bool {
        self.buf.is_empty()
    }

    /// The next offsets to send, at most `max_len` of them: lost data first,
    /// then new data below `flow_limit`.
    pub fn next_chunk(&mut self, max_len: u64, flow_limit: u64) -> Option<Range<u64>> {
        if max_len == 0 {
            return None;
        }
        while let Some(range) = self.retransmit.pop_min(max_len) {
            // Skip parts acknowledged since they were declared lost.
            let range = range.start.max(self.base)..range.end;
            if let Some(gap) = self.acked.gaps_in(range.clone()).next() {
                // Put back what follows the first gap for the next call.
                self.retransmit.insert(gap.end..range.end);
                return Some(gap);
            }
        }
        let end = self.end().min(flow_limit).min(self.next + max_len);
        if end <= self.next {
            return None;
        }
        let range = self.next..end;
        self.next = end;
        Some(range)
    }

    /// Copies the bytes of `range` (within `base..end`) to `out`.
    pub fn copy_to(&self, range: Range<u64>, out: &mut Vec<u8>) {
        let start = (range.start - self.base) as usize;
        let end = (range.end - self.base) as usize;
        let (a, b) = self.buf.as_slices();
        if end <= a.len() {
            out.extend_from_slice(&a[start..end]);
        } else if start >= a.len() {
            out.extend_from_slice(&b[start - a.len()..end - a.len()]);
        } else {
            out.extend_from_slice(&a[start..]);
            out.extend_from_slice(&b[..end - a.len()]);
        }
    }

    pub fn on_ack(&mut self, range: Range<u64>) {
        let range = range.start.max(self.base)..range.end;
        if range.is_empty() {
            return;
        }
        self.acked.insert(range);
        if self.acked.min() == Some(self.base) {
            let done = self.acked.pop_min(u64::MAX).map_or(0, |r| r.end - self.base);
            self.buf.drain(..done as usize);
            self.base += done;
        }
    }

    pub fn on_lost(&mut self, range: Range<u64>) {
        let range = range.start.max(self.base)..range.end;
        for gap in self.acked.gaps_in(range).collect::<Vec<_>>() {
            self.retransmit.insert(gap);
        }
    }
}

/// Why received stream data was refused; each is a protocol violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvError {
    /// Data beyond the advertised window.
    FlowControl,
    /// A length prefix above [`MAX_MESSAGE_SIZE`].
    MessageTooLarge,
}

/// Incoming stream data: reassembles, removes duplicates and yields
/// complete messages in order.
#[derive(Debug)]
pub struct RecvStream {
    /// Contiguous bytes; those from `read` on are not yet parsed into
    /// messages. Parsed ones are dropped in one go when no complete
    /// message is left, not one message at a time (a packet carries many).
    assembled: Vec<u8>,
    read: usize,
    /// Stream offset of `assembled[read]`: bytes handed to the application.
    consumed: u64,
    /// Data above the contiguous end, keyed by offset, never overlapping.
    out_of_order: BTreeMap<u64, Vec<u8>>,
    /// Offsets held in `out_of_order`.
    held: RangeSet,
    window: u64,
    /// The limit last sent to the peer.
    advertised: u64,
}

impl RecvStream {
    pub fn new(window: u64) -> Self {
        Self {
            assembled: Vec::new(),
            read: 0,
            consumed: 0,
            out_of_order: BTreeMap::new(),
            held: RangeSet::new(),
            window,
            advertised: window,
        }
    }

    fn contiguous_end(&self) -> u64 {
        self.consumed + (self.assembled.len() - self.read) as u64
    }

    /// Takes a STREAM frame. Duplicated parts are dropped here, so each byte
    /// reaches the application once however often it was sent.
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> Result<(), RecvError> {
        let end = offset + data.len() as u64;
        if end > self.advertised {
            return Err(RecvError::FlowControl);
        }
        let contiguous = self.contiguous_end();
        if end <= contiguous {
            return Ok(());
        }
        // Only the parts we do not have yet.
        let wanted = offset.max(contiguous)..end;
        if self.held.is_empty() && offset <= contiguous {
            // In order, nothing held: the common case, without the gap walk.
            self.assembled.extend_from_slice(&data[(contiguous - offset) as usize..]);
            return Ok(());
        }
        let gaps: Vec<Range<u64>> = self.held.gaps_in(wanted).collect();
        for gap in gaps {
            let piece = &data[(gap.start - offset) as usize..(gap.end - offset) as usize];
            if gap.start == self.contiguous_end() {
                self.assembled.extend_from_slice(piece);
            } else {
                self.held.insert(gap.clone());
                self.out_of_order.insert(gap.start, piece.to_vec());
            }
        }
        // Pull in held data that now continues the contiguous run.
        loop {
            let next = self.contiguous_end();
            let Some(entry) = self.out_of_order.first_entry() else { break };
            if *entry.key() != next {
                break;
            }
            let (start, piece) = entry.remove_entry();
            self.held.remove(start..start + piece.len() as u64);
            self.assembled.extend_from_slice(&piece);
        }
        Ok(())
    }

    /// The next complete message, if one has fully arrived.
    #[cfg(test)]
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, RecvError> {
        let mut msg = Vec::new();
        Ok(self.next_message_into(&mut msg)?.then_some(msg))
    }

    /// Like [`next_message`](Self::next_message), into `out` (cleared
    /// first); returns whether there was one.
    pub fn next_message_into(&mut self, out: &mut Vec<u8>) -> Result<bool, RecvError> {
        out.clear();
        let unread = &self.assembled[self.read..];
        let mut r = Reader::new(unread);
        let Ok(len) = r.varint() else {
            self.compact();
            return Ok(false);
        };
        if len > MAX_MESSAGE_SIZE as u64 {
            return Err(RecvError::MessageTooLarge);
        }
        let header = r.position();
        let total = header + len as usize;
        if unread.len() < total {
            self.compact();
            return Ok(false);
        }
        out.extend_from_slice(&unread[header..total]);
        self.read += total;
        self.consumed += total as u64;
        Ok(true)
    }

    fn compact(&mut self) {
        self.assembled.drain(..self.read);
        self.read = 0;
    }

    /// A new flow-control limit to send, once the application has consumed
    /// half a window since the last one.
    pub fn max_data_update(&mut self) -> Option<u64> {
        let limit = self.consumed + self.window;
        if limit - self.advertised >= self.window / 2 {
            self.advertised = limit;
            Some(limit)
        } else {
            None
        }
    }

    /// The current limit, for retransmitting a lost MAX_DATA frame.
    pub fn advertised(&self) -> u64 {
        self.advertised
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coding::Writer;
    use proptest::prelude::*;

    fn framed(messages: &[Vec<u8>]) -> Vec<u8> {
        let mut s = SendStream::new(usize::MAX / 2);
        for m in messages {
            s.push_message(m);
        }
        let mut out = Vec::new();
        s.copy_to(0..s.end(), &mut out);
        out
    }

    #[test]
    fn send_stream_retransmits_only_unacked_bytes() {
        let mut s = SendStream::new(1 << 20);
        s.push_message(&[1; 100]);
        assert_eq!(s.next_chunk(40, u64::MAX), Some(0..40));
        assert_eq!(s.next_chunk(100, u64::MAX), Some(40..102));
        s.on_ack(20..30);
        s.on_lost(0..40);
        assert_eq!(s.next_chunk(100, u64::MAX), Some(0..20));
        assert_eq!(s.next_chunk(100, u64::MAX), Some(30..40));
        assert_eq!(s.next_chunk(100, u64::MAX), None);
        s.on_ack(0..20);
        s.on_ack(30..102);
        assert!(s.is_fully_acked());
    }

    #[test]
    fn flow_limit_holds_back_new_data() {
        let mut s = SendStream::new(1 << 20);
        s.push_message(&[1; 100]);
        assert_eq!(s.next_chunk(1000, 50), Some(0..50));
        assert_eq!(s.next_chunk(1000, 50), None);
    }

    #[test]
    fn receiver_refuses_data_past_window() {
        let mut r = RecvStream::new(100);
        assert_eq!(r.insert(90, &[0; 20]), Err(RecvError::FlowControl));
    }

    #[test]
    fn oversized_length_prefix_is_an_error() {
        let mut bytes = Vec::new();
        bytes.put_varint(MAX_MESSAGE_SIZE as u64 + 1);
        let mut r = RecvStream::new(1 << 20);
        r.insert(0, &bytes).unwrap();
        assert_eq!(r.next_message(), Err(RecvError::MessageTooLarge));
    }

    proptest! {
        /// Chunks delivered in any order, with duplicates and overlaps,
        /// yield each message once and in order.
        #[test]
        fn reassembles_any_delivery_order(
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..8),
            cuts in proptest::collection::vec((any::<prop::sample::Index>(), 1usize..200), 1..40),
        ) {
            let stream = framed(&messages);
            let mut r = RecvStream::new(1 << 20);
            let mut got = Vec::new();
            let mut chunks: Vec<(usize, usize)> = cuts.iter()
                .map(|(i, len)| { let s = i.index(stream.len()); (s, (s + len).min(stream.len())) })
                .collect();
            // Always cover everything at the end, as retransmission would.
            chunks.push((0, stream.len()));
            for (s, e) in chunks {
                r.insert(s as u64, &stream[s..e]).unwrap();
                while let Some(m) = r.next_message().unwrap() {
                    got.push(m);
                }
            }
            prop_assert_eq!(got, messages);
        }
    }
}
