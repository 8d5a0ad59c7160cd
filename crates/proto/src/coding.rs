//! Byte-level encoding shared by every packet and frame: a bounds-checked
//! reader, a writer over `Vec<u8>`, and QUIC variable-length integers
//! (RFC 9000 §16), chosen because every language already has an
//! implementation of them and small values cost one byte.

use thiserror::Error;

/// The largest value a variable-length integer can hold (2^62 - 1).
pub const VARINT_MAX: u64 = (1 << 62) - 1;

/// Input ended before a field did, or a field held an impossible value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecodeError {
    #[error("input ended inside a field")]
    Truncated,
    #[error("a field holds an invalid value")]
    Invalid,
}

/// A cursor over received bytes. Every read is bounds-checked and returns
/// an error instead of panicking, because all input comes from the network.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Bytes already consumed.
    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let first = self.u8()?;
        let len = 1usize << (first >> 6);
        let mut value = u64::from(first & 0x3f);
        for &b in self.bytes(len - 1)? {
            value = (value << 8) | u64::from(b);
        }
        Ok(value)
    }

    /// A varint length followed by that many bytes.
    pub fn varint_bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
        self.bytes(len)
    }
}

/// Number of bytes `value` takes as a varint.
pub fn varint_len(value: u64) -> usize {
    match value {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// `v` as a varint: the bytes, of which the first `len` are used. For
/// writing one into something that is not a `Vec` without allocating.
pub fn encode_varint(v: u64) -> ([u8; 8], usize) {
    assert!(v <= VARINT_MAX, "varint out of range");
    let len = varint_len(v);
    let bytes = match len {
        1 => [v as u8, 0, 0, 0, 0, 0, 0, 0],
        2 => {
            let [a, b] = ((v as u16) | 0x4000).to_be_bytes();
            [a, b, 0, 0, 0, 0, 0, 0]
        }
        4 => {
            let [a, b, c, d] = ((v as u32) | 0x8000_0000).to_be_bytes();
            [a, b, c, d, 0, 0, 0, 0]
        }
        _ => (v | 0xc000_0000_0000_0000).to_be_bytes(),
    };
    (bytes, len)
}

/// Writing into a `Vec<u8>`. Values above [`VARINT_MAX`] are a programming
/// error (never input), so `put_varint` asserts rather than failing.
pub trait Writer {
    fn put_u8(&mut self, v: u8);
    fn put_u16(&mut self, v: u16);
    fn put_u32(&mut self, v: u32);
    fn put_u64(&mut self, v: u64);
    fn put_varint(&mut self, v: u64);
    fn put_bytes(&mut self, v: &[u8]);
    fn put_varint_bytes(&mut self, v: &[u8]) {
        self.put_varint(v.len() as u64);
        self.put_bytes(v);
    }
}

impl Writer for Vec<u8> {
    fn put_u8(&mut self, v: u8) {
        self.push(v);
    }
    fn put_u16(&mut self, v: u16) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u32(&mut self, v: u32) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_u64(&mut self, v: u64) {
        self.extend_from_slice(&v.to_be_bytes());
    }
    fn put_varint(&mut self, v: u64) {
        let (bytes, len) = encode_varint(v);
        self.extend_from_slice(&bytes[..len]);
    }
    fn put_bytes(&mut self, v: &[u8]) {
        self.extend_from_slice(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rfc9000_examples() {
        // RFC 9000 Appendix A.1 sample encodings.
        let cases: [(&[u8], u64); 4] = [
            (&[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c], 151_288_809_941_952_652),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, value) in cases {
            assert_eq!(Reader::new(bytes).varint(), Ok(value));
            let mut out = Vec::new();
            out.put_varint(value);
            assert_eq!(out, bytes);
        }
        // Non-minimal encodings are accepted on input (RFC 9000 §16).
        assert_eq!(Reader::new(&[0x40, 0x25]).varint(), Ok(37));
    }

    #[test]
    fn truncated_reads_fail() {
        assert_eq!(Reader::new(&[0x80, 1]).varint(), Err(DecodeError::Truncated));
        assert_eq!(Reader::new(&[]).u8(), Err(DecodeError::Truncated));
        assert_eq!(Reader::new(&[5, 1, 2]).varint_bytes(), Err(DecodeError::Truncated));
    }

    proptest! {
        #[test]
        fn varint_round_trip(v in 0..=VARINT_MAX) {
            let mut out = Vec::new();
            out.put_varint(v);
            prop_assert_eq!(out.len(), varint_len(v));
            let mut r = Reader::new(&out);
            prop_assert_eq!(r.varint(), Ok(v));
            prop_assert!(r.is_empty());
        }
    }
}
