//! Frame decoding over arbitrary bytes (as if they were a decrypted DATA
//! payload): must never panic, every ACK frame's ranges must be walkable
//! and well formed, and every decoded frame must survive re-encoding.
//!
//! cargo +nightly fuzz run frames

#![no_main]

use libfuzzer_sys::fuzz_target;
use udpchat_proto::frame::{Frame, Frames, MAX_ACK_RANGES, encode_ack};

fuzz_target!(|data: &[u8]| {
    for frame in Frames::new(data) {
        let Ok(frame) = frame else { break };
        match &frame {
            Frame::Ack(ack) => {
                let ranges: Vec<_> = ack.ranges().collect();
                assert_eq!(ranges.first().map(|r| *r.end()), Some(ack.largest), "first range ends at largest");
                for (i, r) in ranges.iter().enumerate() {
                    assert!(r.start() <= r.end(), "inverted range {r:?}");
                    if i > 0 {
                        // Descending, not overlapping or touching.
                        let above = &ranges[i - 1];
                        assert!(
                            r.end().checked_add(2).is_some_and(|e| e <= *above.start()),
                            "ranges {above:?} then {r:?}"
                        );
                    }
                }
                // Re-encode (at most MAX_ACK_RANGES survive) and decode again.
                let mut out = Vec::new();
                encode_ack(&mut out, ack.delay_micros, &ranges);
                let mut again = Frames::new(&out);
                let Some(Ok(Frame::Ack(back))) = again.next() else { panic!("re-encoded ACK did not decode") };
                assert!(again.next().is_none());
                assert_eq!(back.largest, ack.largest);
                assert_eq!(back.delay_micros, ack.delay_micros);
                let kept = ranges.len().min(MAX_ACK_RANGES);
                assert_eq!(back.ranges().collect::<Vec<_>>(), ranges[..kept]);
            }
            other => {
                // Varints may be non-minimal on the wire, so compare values.
                let mut out = Vec::new();
                other.encode(&mut out);
                let back: Vec<_> = Frames::new(&out).collect();
                assert_eq!(back, vec![Ok(other.clone())], "frame did not round-trip");
            }
        }
    }
});
