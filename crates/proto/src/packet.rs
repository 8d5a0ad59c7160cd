//! Datagram layouts: the first byte names the packet type, and everything
//! before the encrypted part of a packet is parsed here. See
//! docs/PROTOCOL.md §3 for the byte-by-byte description.
//!
//! Parsing is a pure function of the bytes: it allocates nothing and never
//! panics, so the endpoint can throw garbage away before it costs anything.

use crate::coding::{DecodeError, Reader, Writer};

/// Protocol versions this implementation speaks, most preferred first.
pub const SUPPORTED_VERSIONS: &[u32] = &[VERSION_1];
/// Wire version 1 (this document).
pub const VERSION_1: u32 = 1;

/// Datagrams that open a session must be at least this long, so that a
/// spoofed source can never be sent more than it sent (§5.1).
pub const MIN_INITIAL_SIZE: usize = 1200;
/// No datagram this implementation sends is longer; it fits the IPv6
/// minimum MTU (1280) with room for IP and UDP headers.
pub const MAX_DATAGRAM_SIZE: usize = 1200;
/// Connection ids are fixed-size random bytes.
pub const CID_LEN: usize = 8;
/// Poly1305 tag appended to every encrypted payload.
pub const TAG_LEN: usize = 16;
/// Longest retry token the server sends or a client echoes.
pub const MAX_TOKEN_LEN: usize = 64;
/// Header bytes in front of a DATA packet's ciphertext.
pub const DATA_HEADER_LEN: usize = 1 + CID_LEN + 8;

pub type ConnectionId = [u8; CID_LEN];

/// First byte of every datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum PacketType {
    Initial = 0x01,
    Handshake = 0x02,
    Retry = 0x03,
    VersionNegotiation = 0x04,
    Data = 0x05,
    StatelessReset = 0x06,
}

impl PacketType {
    pub fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::Initial,
            0x02 => Self::Handshake,
            0x03 => Self::Retry,
            0x04 => Self::VersionNegotiation,
            0x05 => Self::Data,
            0x06 => Self::StatelessReset,
            _ => return None,
        })
    }
}

/// A client's first datagram (type 0x01).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Initial<'a> {
    pub version: u32,
    pub client_cid: ConnectionId,
    pub token: &'a [u8],
    pub noise: &'a [u8],
}

impl<'a> Initial<'a> {
    /// Parses everything after the type byte. Trailing padding is ignored.
    pub fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let version = r.u32()?;
        let client_cid = r.array()?;
        let token = r.varint_bytes()?;
        if token.len() > MAX_TOKEN_LEN {
            return Err(DecodeError::Invalid);
        }
        let noise = r.varint_bytes()?;
        Ok(Self { version, client_cid, token, noise })
    }

    /// Encodes the whole datagram, zero-padded to [`MIN_INITIAL_SIZE`].
    pub fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.put_u8(PacketType::Initial as u8);
        out.put_u32(self.version);
        out.put_bytes(&self.client_cid);
        out.put_varint_bytes(self.token);
        out.put_varint_bytes(self.noise);
        let len = out.len() - start;
        if len < MIN_INITIAL_SIZE {
            out.resize(start + MIN_INITIAL_SIZE, 0);
        }
    }
}

/// The server's handshake answer (type 0x02). The Noise message runs to
/// the end of the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake<'a> {
    pub version: u32,
    pub client_cid: ConnectionId,
    pub noise: &'a [u8],
}

impl<'a> Handshake<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        Ok(Self { version: r.u32()?, client_cid: r.array()?, noise: r.rest() })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(PacketType::Handshake as u8);
        out.put_u32(self.version);
        out.put_bytes(&self.client_cid);
        out.put_bytes(self.noise);
    }
}

/// A stateless request to prove the source address (type 0x03). The token
/// runs to the end of the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry<'a> {
    pub version: u32,
    pub client_cid: ConnectionId,
    pub token: &'a [u8],
}

impl<'a> Retry<'a> {
    pub fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let version = r.u32()?;
        let client_cid = r.array()?;
        let token = r.rest();
        if token.is_empty() || token.len() > MAX_TOKEN_LEN {
            return Err(DecodeError::Invalid);
        }
        Ok(Self { version, client_cid, token })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(PacketType::Retry as u8);
        out.put_u32(self.version);
        out.put_bytes(&self.client_cid);
        out.put_bytes(self.token);
    }
}

/// The server's list of versions, sent when it does not speak the
/// client's (type 0x04).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionNegotiation {
    pub client_cid: ConnectionId,
    pub versions: Vec<u32>,
}

impl VersionNegotiation {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let client_cid = r.array()?;
        let rest = r.rest();
        if rest.is_empty() || !rest.len().is_multiple_of(4) || rest.len() > 4 * 16 {
            return Err(DecodeError::Invalid);
        }
        let versions = rest.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Self { client_cid, versions })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(PacketType::VersionNegotiation as u8);
        out.put_bytes(&self.client_cid);
        for v in &self.versions {
            out.put_u32(*v);
        }
    }
}

/// The cleartext header of an encrypted packet (type 0x05); the ciphertext
/// follows it to the end of the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataHeader {
    pub dest_cid: ConnectionId,
    pub packet_number: u64,
}

impl DataHeader {
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self { dest_cid: r.array()?, packet_number: r.u64()? })
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.put_u8(PacketType::Data as u8);
        out.put_bytes(&self.dest_cid);
        out.put_u64(self.packet_number);
    }
}

/// Any datagram, parsed as far as can be done without keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Datagram<'a> {
    Initial(Initial<'a>),
    Handshake(Handshake<'a>),
    Retry(Retry<'a>),
    VersionNegotiation(VersionNegotiation),
    Data {
        header: DataHeader,
        ciphertext: &'a [u8],
    },
    /// The server has no session for the connection id the client used.
    StatelessReset {
        token: [u8; 16],
    },
}

impl<'a> Datagram<'a> {
    /// Parses a received datagram. Datagrams of unknown type, INITIALs
    /// shorter than [`MIN_INITIAL_SIZE`] and DATA too short to hold a tag
    /// are errors, which the endpoint drops silently.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let ty = PacketType::from_byte(r.u8()?).ok_or(DecodeError::Invalid)?;
        Ok(match ty {
            PacketType::Initial => {
                if bytes.len() < MIN_INITIAL_SIZE {
                    return Err(DecodeError::Invalid);
                }
                Self::Initial(Initial::decode(&mut r)?)
            }
            PacketType::Handshake => Self::Handshake(Handshake::decode(&mut r)?),
            PacketType::Retry => Self::Retry(Retry::decode(&mut r)?),
            PacketType::VersionNegotiation => Self::VersionNegotiation(VersionNegotiation::decode(&mut r)?),
            PacketType::Data => {
                let header = DataHeader::decode(&mut r)?;
                let ciphertext = r.rest();
                if bytes.len() < MIN_DATA_SIZE {
                    return Err(DecodeError::Truncated);
                }
                Self::Data { header, ciphertext }
            }
            PacketType::StatelessReset => {
                let token = r.array()?;
                if !r.is_empty() {
                    return Err(DecodeError::Invalid);
                }
                Self::StatelessReset { token }
            }
        })
    }
}

/// Length of a STATELESS_RESET datagram: type byte and token.
pub const STATELESS_RESET_SIZE: usize = 1 + 16;

/// A stateless reset: type byte and token, 17 bytes, always smaller than
/// the DATA packet (at least 34 bytes) that provokes it.
pub fn encode_stateless_reset(token: &[u8; 16], out: &mut Vec<u8>) {
    out.put_u8(PacketType::StatelessReset as u8);
    out.put_bytes(token);
}

/// The smallest DATA datagram: header, one byte of payload, the tag.
pub const MIN_DATA_SIZE: usize = DATA_HEADER_LEN + 1 + TAG_LEN;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn initial_is_padded_and_round_trips() {
        let init = Initial { version: 1, client_cid: [7; 8], token: b"tok", noise: &[9; 40] };
        let mut out = Vec::new();
        init.encode(&mut out);
        assert_eq!(out.len(), MIN_INITIAL_SIZE);
        assert_eq!(Datagram::parse(&out), Ok(Datagram::Initial(init)));
        // One byte short of the minimum is refused.
        assert!(Datagram::parse(&out[..MIN_INITIAL_SIZE - 1]).is_err());
    }

    #[test]
    fn data_header_layout() {
        let mut out = Vec::new();
        DataHeader { dest_cid: [1, 2, 3, 4, 5, 6, 7, 8], packet_number: 0x0102 }.encode(&mut out);
        assert_eq!(out, [5, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(out.len(), DATA_HEADER_LEN);
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _ = Datagram::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_with_valid_type(ty in 1u8..=6, rest in proptest::collection::vec(any::<u8>(), 0..1300)) {
            let mut bytes = vec![ty];
            bytes.extend(rest);
            let _ = Datagram::parse(&bytes);
        }

        #[test]
        fn handshake_round_trip(cid: [u8; 8], noise in proptest::collection::vec(any::<u8>(), 0..200)) {
            let h = Handshake { version: 1, client_cid: cid, noise: &noise };
            let mut out = Vec::new();
            h.encode(&mut out);
            prop_assert_eq!(Datagram::parse(&out), Ok(Datagram::Handshake(h)));
        }

        #[test]
        fn retry_round_trip(cid: [u8; 8], token in proptest::collection::vec(any::<u8>(), 1..=MAX_TOKEN_LEN)) {
            let r = Retry { version: 1, client_cid: cid, token: &token };
            let mut out = Vec::new();
            r.encode(&mut out);
            prop_assert_eq!(Datagram::parse(&out), Ok(Datagram::Retry(r)));
        }

        #[test]
        fn version_negotiation_round_trip(cid: [u8; 8], versions in proptest::collection::vec(any::<u32>(), 1..16)) {
            let vn = VersionNegotiation { client_cid: cid, versions };
            let mut out = Vec::new();
            vn.encode(&mut out);
            prop_assert_eq!(Datagram::parse(&out), Ok(Datagram::VersionNegotiation(vn)));
        }
    }
}
