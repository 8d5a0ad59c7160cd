//! Frames: the units inside an encrypted DATA packet (docs/PROTOCOL.md §4).
//! A packet's plaintext is a sequence of frames, each starting with its
//! type as a varint. Decoding borrows from the plaintext and allocates
//! nothing; an unknown frame type makes the whole packet invalid.

use std::ops::RangeInclusive;

use crate::coding::{DecodeError, Reader, VARINT_MAX, Writer, varint_len};

/// Longest close reason, in bytes of UTF-8.
pub const MAX_REASON_LEN: usize = 512;
/// Most ACK ranges one ACK frame carries; older ranges are left out.
pub const MAX_ACK_RANGES: usize = 64;

pub mod ty {
    pub const PADDING: u64 = 0x00;
    pub const PING: u64 = 0x01;
    pub const ACK: u64 = 0x02;
    pub const STREAM: u64 = 0x03;
    pub const MAX_DATA: u64 = 0x04;
    pub const CLOSE: u64 = 0x05;
    pub const CLOSE_ACK: u64 = 0x06;
    pub const PATH_CHALLENGE: u64 = 0x07;
    pub const PATH_RESPONSE: u64 = 0x08;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<'a> {
    Padding,
    Ping,
    Ack(AckFrame<'a>),
    /// Bytes of the message stream starting at `offset`.
    Stream {
        offset: u64,
        data: &'a [u8],
    },
    MaxData(u64),
    Close {
        code: u64,
        reason: &'a [u8],
    },
    CloseAck,
    PathChallenge([u8; 8]),
    PathResponse([u8; 8]),
}

impl Frame<'_> {
    /// Whether receiving this frame obliges the receiver to acknowledge
    /// the packet (RFC 9002 "ack-eliciting"). CLOSE is not: it is answered
    /// by CLOSE_ACK, and its receiver sends no more ACKs (docs/PROTOCOL.md
    /// §4.1, §7.3).
    pub fn is_ack_eliciting(&self) -> bool {
        !matches!(self, Frame::Padding | Frame::Ack(_) | Frame::Close { .. } | Frame::CloseAck)
    }
}

/// An ACK frame, kept as its encoded ranges: validated once when decoded,
/// then walked by [`AckFrame::ranges`] without allocating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckFrame<'a> {
    pub largest: u64,
    /// How long the receiver held the ACK back, in microseconds.
    pub delay_micros: u64,
    first_range: u64,
    range_count: u64,
    encoded_ranges: &'a [u8],
}

impl<'a> AckFrame<'a> {
    /// The acknowledged packet numbers as inclusive ranges, largest first.
    pub fn ranges(&self) -> impl Iterator<Item = RangeInclusive<u64>> + 'a {
        let mut r = Reader::new(self.encoded_ranges);
        let mut smallest = self.largest - self.first_range;
        let first = smallest..=self.largest;
        let mut left = self.range_count;
        std::iter::once(first).chain(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            // Validated in decode, so these reads and subtractions succeed.
            let gap = r.varint().ok()?;
            let len = r.varint().ok()?;
            let largest = smallest - gap - 2;
            smallest = largest - len;
            Some(smallest..=largest)
        }))
    }

    fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let largest = r.varint()?;
        let delay_micros = r.varint()?;
        let range_count = r.varint()?;
        let first_range = r.varint()?;
        let mut smallest = largest.checked_sub(first_range).ok_or(DecodeError::Invalid)?;
        let start = r.clone();
        let before = r.position();
        for _ in 0..range_count {
            let gap = r.varint()?;
            let len = r.varint()?;
            let next_largest = smallest.checked_sub(gap).and_then(|v| v.checked_sub(2)).ok_or(DecodeError::Invalid)?;
            smallest = next_largest.checked_sub(len).ok_or(DecodeError::Invalid)?;
        }
        let used = r.position() - before;
        let encoded_ranges = start.clone().bytes(used)?;
        Ok(Self { largest, delay_micros, first_range, range_count, encoded_ranges })
    }
}

/// Encodes an ACK frame for `ranges`, given largest first and not
/// overlapping or touching. At most [`MAX_ACK_RANGES`] are written.
pub fn encode_ack(out: &mut Vec<u8>, delay_micros: u64, ranges: &[RangeInclusive<u64>]) {
    let Some(first) = ranges.first() else { return };
    let ranges = &ranges[..ranges.len().min(MAX_ACK_RANGES)];
    out.put_varint(ty::ACK);
    out.put_varint(*first.end());
    out.put_varint(delay_micros.min(VARINT_MAX));
    out.put_varint(ranges.len() as u64 - 1);
    out.put_varint(first.end() - first.start());
    let mut smallest = *first.start();
    for range in &ranges[1..] {
        out.put_varint(smallest - range.end() - 2);
        out.put_varint(range.end() - range.start());
        smallest = *range.start();
    }
}

/// Bytes a STREAM frame header takes for `offset` and `len`.
pub fn stream_header_len(offset: u64, len: usize) -> usize {
    varint_len(ty::STREAM) + varint_len(offset) + varint_len(len as u64)
}

pub fn encode_stream(out: &mut Vec<u8>, offset: u64, data: &[u8]) {
    out.put_varint(ty::STREAM);
    out.put_varint(offset);
    out.put_varint_bytes(data);
}

/// Writes a STREAM frame header; the caller appends exactly `len` bytes.
pub fn encode_stream_header(out: &mut Vec<u8>, offset: u64, len: usize) {
    out.put_varint(ty::STREAM);
    out.put_varint(offset);
    out.put_varint(len as u64);
}

pub fn encode_close(out: &mut Vec<u8>, code: u64, reason: &str) {
    let mut end = reason.len().min(MAX_REASON_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    out.put_varint(ty::CLOSE);
    out.put_varint(code);
    out.put_varint_bytes(&reason.as_bytes()[..end]);
}

impl<'a> Frame<'a> {
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Frame::Padding => out.put_varint(ty::PADDING),
            Frame::Ping => out.put_varint(ty::PING),
            Frame::Ack(ack) => {
                let ranges: Vec<_> = ack.ranges().collect();
                encode_ack(out, ack.delay_micros, &ranges);
            }
            Frame::Stream { offset, data } => encode_stream(out, *offset, data),
            Frame::MaxData(max) => {
                out.put_varint(ty::MAX_DATA);
                out.put_varint(*max);
            }
            Frame::Close { code, reason } => {
                out.put_varint(ty::CLOSE);
                out.put_varint(*code);
                out.put_varint_bytes(reason);
            }
            Frame::CloseAck => out.put_varint(ty::CLOSE_ACK),
            Frame::PathChallenge(data) => {
                out.put_varint(ty::PATH_CHALLENGE);
                out.put_bytes(data);
            }
            Frame::PathResponse(data) => {
                out.put_varint(ty::PATH_RESPONSE);
                out.put_bytes(data);
            }
        }
    }
}

/// Iterates over the frames of a decrypted payload. After the first error
/// the iterator ends; the caller must then discard the whole packet.
pub struct Frames<'a> {
    r: Reader<'a>,
    failed: bool,
}

impl<'a> Frames<'a> {
    pub fn new(payload: &'a [u8]) -> Self {
        Self { r: Reader::new(payload), failed: false }
    }

    fn decode_one(&mut self) -> Result<Frame<'a>, DecodeError> {
        let r = &mut self.r;
        Ok(match r.varint()? {
            ty::PADDING => Frame::Padding,
            ty::PING => Frame::Ping,
            ty::ACK => Frame::Ack(AckFrame::decode(r)?),
            ty::STREAM => {
                let offset = r.varint()?;
                let data = r.varint_bytes()?;
                if offset + data.len() as u64 > VARINT_MAX {
                    return Err(DecodeError::Invalid);
                }
                Frame::Stream { offset, data }
            }
            ty::MAX_DATA => Frame::MaxData(r.varint()?),
            ty::CLOSE => {
                let code = r.varint()?;
                let reason = r.varint_bytes()?;
                if reason.len() > MAX_REASON_LEN {
                    return Err(DecodeError::Invalid);
                }
                Frame::Close { code, reason }
            }
            ty::CLOSE_ACK => Frame::CloseAck,
            ty::PATH_CHALLENGE => Frame::PathChallenge(r.array()?),
            ty::PATH_RESPONSE => Frame::PathResponse(r.array()?),
            _ => return Err(DecodeError::Invalid),
        })
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.r.is_empty() {
            return None;
        }
        let result = self.decode_one();
        self.failed = result.is_err();
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(frame: Frame<'_>) {
        let mut out = Vec::new();
        frame.encode(&mut out);
        let decoded: Vec<_> = Frames::new(&out).collect();
        assert_eq!(decoded, vec![Ok(frame)]);
    }

    #[test]
    fn simple_frames_round_trip() {
        round_trip(Frame::Ping);
        round_trip(Frame::Padding);
        round_trip(Frame::Stream { offset: 1 << 40, data: b"hello" });
        round_trip(Frame::MaxData(123_456));
        round_trip(Frame::Close { code: 0x101, reason: b"bye" });
        round_trip(Frame::CloseAck);
        round_trip(Frame::PathChallenge([1; 8]));
        round_trip(Frame::PathResponse([2; 8]));
    }

    #[test]
    fn ack_ranges_round_trip() {
        let ranges = vec![90..=100, 50..=80, 10..=10, 0..=5];
        let mut out = Vec::new();
        encode_ack(&mut out, 1234, &ranges);
        let frame = Frames::new(&out).next().unwrap().unwrap();
        let Frame::Ack(ack) = frame else { panic!("not an ack") };
        assert_eq!(ack.largest, 100);
        assert_eq!(ack.delay_micros, 1234);
        assert_eq!(ack.ranges().collect::<Vec<_>>(), ranges);
    }

    #[test]
    fn ack_below_zero_is_invalid() {
        // largest 5, first range 10: would acknowledge negative numbers.
        let bytes = [ty::ACK as u8, 5, 0, 0, 10];
        assert_eq!(Frames::new(&bytes).next(), Some(Err(DecodeError::Invalid)));
        // A gap that walks below zero.
        let bytes = [ty::ACK as u8, 5, 0, 1, 0, 10, 0];
        assert_eq!(Frames::new(&bytes).next(), Some(Err(DecodeError::Invalid)));
    }

    /// The "Ack-eliciting" column of docs/PROTOCOL.md §4.1.
    #[test]
    fn ack_eliciting_frames_are_those_of_the_spec_table() {
        let ack = {
            let mut out = Vec::new();
            encode_ack(&mut out, 0, &[0..=0]);
            out
        };
        let Some(Ok(ack)) = Frames::new(&ack).next() else { panic!("ACK decodes") };
        let table = [
            (Frame::Padding, false),
            (Frame::Ping, true),
            (ack, false),
            (Frame::Stream { offset: 0, data: b"x" }, true),
            (Frame::MaxData(1), true),
            (Frame::Close { code: 0, reason: b"" }, false),
            (Frame::CloseAck, false),
            (Frame::PathChallenge([1; 8]), true),
            (Frame::PathResponse([1; 8]), true),
        ];
        for (frame, eliciting) in table {
            assert_eq!(frame.is_ack_eliciting(), eliciting, "{frame:?}");
        }
    }

    #[test]
    fn unknown_frame_type_fails() {
        assert_eq!(Frames::new(&[0x3f]).next(), Some(Err(DecodeError::Invalid)));
    }

    fn arb_ranges() -> impl Strategy<Value = Vec<RangeInclusive<u64>>> {
        proptest::collection::vec((0u64..1000, 0u64..1000), 1..20).prop_map(|steps| {
            let mut ranges = Vec::new();
            let mut top = 1u64 << 40;
            for (gap, len) in steps {
                let end = top - gap;
                let start = end - len;
                ranges.push(start..=end);
                top = start - 2;
            }
            ranges
        })
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            for frame in Frames::new(&bytes) {
                if let Ok(Frame::Ack(ack)) = frame {
                    for r in ack.ranges() {
                        prop_assert!(r.start() <= r.end());
                    }
                }
            }
        }

        #[test]
        fn ack_round_trip(ranges in arb_ranges(), delay in 0u64..1_000_000) {
            let mut out = Vec::new();
            encode_ack(&mut out, delay, &ranges);
            let Some(Ok(Frame::Ack(ack))) = Frames::new(&out).next() else {
                return Err(TestCaseError::fail("no ack decoded"));
            };
            prop_assert_eq!(ack.ranges().collect::<Vec<_>>(), ranges);
        }

        #[test]
        fn stream_round_trip(offset in 0u64..(1 << 50), data in proptest::collection::vec(any::<u8>(), 0..1200)) {
            let mut out = Vec::new();
            encode_stream(&mut out, offset, &data);
            prop_assert_eq!(out.len(), stream_header_len(offset, data.len()) + data.len());
            let frames: Vec<_> = Frames::new(&out).collect();
            prop_assert_eq!(frames, vec![Ok(Frame::Stream { offset, data: &data })]);
        }
    }
}
