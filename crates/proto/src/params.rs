//! Transport parameters exchanged in the handshake payloads
//! (docs/PROTOCOL.md §5.3): a list of (id, length, value) entries, so later
//! versions can add parameters that older peers skip.

use std::time::Duration;

use crate::coding::{DecodeError, Reader, Writer};
use crate::packet::{CID_LEN, ConnectionId};

mod id {
    pub const IDLE_TIMEOUT_MS: u64 = 0x01;
    pub const INITIAL_MAX_DATA: u64 = 0x02;
    pub const CONNECTION_ID: u64 = 0x03;
    pub const STATELESS_RESET_TOKEN: u64 = 0x04;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportParams {
    /// 0 means the sender has no idle timeout.
    pub idle_timeout: Duration,
    pub initial_max_data: u64,
    /// The server's connection id; absent in the client's parameters.
    pub connection_id: Option<ConnectionId>,
    /// The server's reset token for this session; absent from the client.
    pub reset_token: Option<[u8; 16]>,
}

impl TransportParams {
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut value = Vec::new();
        let put = |out: &mut Vec<u8>, id: u64, value: &mut Vec<u8>| {
            out.put_varint(id);
            out.put_varint_bytes(value);
            value.clear();
        };
        value.put_varint(self.idle_timeout.as_millis().min(1 << 40) as u64);
        put(out, id::IDLE_TIMEOUT_MS, &mut value);
        value.put_varint(self.initial_max_data);
        put(out, id::INITIAL_MAX_DATA, &mut value);
        if let Some(cid) = self.connection_id {
            value.put_bytes(&cid);
            put(out, id::CONNECTION_ID, &mut value);
        }
        if let Some(token) = self.reset_token {
            value.put_bytes(&token);
            put(out, id::STATELESS_RESET_TOKEN, &mut value);
        }
    }

    /// Decodes a parameter list. Unknown ids are skipped; a missing
    /// INITIAL_MAX_DATA or a malformed value is an error.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let mut idle = None;
        let mut max_data = None;
        let mut cid = None;
        let mut reset_token = None;
        while !r.is_empty() {
            let pid = r.varint()?;
            let mut v = Reader::new(r.varint_bytes()?);
            match pid {
                id::IDLE_TIMEOUT_MS => idle = Some(Duration::from_millis(v.varint()?)),
                id::INITIAL_MAX_DATA => max_data = Some(v.varint()?),
                id::CONNECTION_ID => cid = Some(v.array::<CID_LEN>()?),
                id::STATELESS_RESET_TOKEN => reset_token = Some(v.array::<16>()?),
                _ => continue,
            }
            if !v.is_empty() {
                return Err(DecodeError::Invalid);
            }
        }
        Ok(Self {
            idle_timeout: idle.unwrap_or(Duration::ZERO),
            initial_max_data: max_data.ok_or(DecodeError::Invalid)?,
            connection_id: cid,
            reset_token,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_skip_unknown() {
        let p = TransportParams {
            idle_timeout: Duration::from_secs(30),
            initial_max_data: 1 << 20,
            connection_id: Some([3; 8]),
            reset_token: Some([9; 16]),
        };
        let mut out = Vec::new();
        p.encode(&mut out);
        // An unknown parameter 0x3f with 2 bytes of value.
        out.extend_from_slice(&[0x3f, 2, 0xaa, 0xbb]);
        assert_eq!(TransportParams::decode(&out), Ok(p));
    }

    /// Senders write at most 2^40 ms, but a receiver takes any varint
    /// (docs/PROTOCOL.md §5.3): the largest is 2^62 − 1 ms, and a session
    /// deadline that far ahead is still a representable `Instant`.
    #[test]
    fn idle_timeout_above_2_40_is_taken_as_is() {
        let mut bytes = vec![0x01, 0x08];
        // An 8-byte varint (prefix 0b11) holding 2^62 − 1.
        bytes.extend_from_slice(&u64::MAX.to_be_bytes());
        bytes.extend_from_slice(&[0x02, 0x04, 0x80, 0x10, 0x00, 0x00]);
        let p = TransportParams::decode(&bytes).unwrap();
        assert_eq!(p.idle_timeout, Duration::from_millis((1 << 62) - 1));
        assert!(std::time::Instant::now().checked_add(p.idle_timeout).is_some());

        // Our own encoder caps what it writes.
        let mut out = Vec::new();
        TransportParams { idle_timeout: p.idle_timeout, ..p }.encode(&mut out);
        assert_eq!(TransportParams::decode(&out).unwrap().idle_timeout, Duration::from_millis(1 << 40));
    }

    proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = TransportParams::decode(&bytes);
        }
    }
}
