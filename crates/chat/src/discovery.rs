//! LAN discovery datagrams (docs/PROTOCOL.md §16): the probe a client
//! broadcasts and the beacon a server answers with. They are outside any
//! session (first bytes `0x80`–`0xFF`, §13.1), unauthenticated, and
//! self-describing: a beacon says the server's name, where to connect, its
//! key (which the client still pins on first use: nothing here proves it),
//! whether a password is needed, how many are logged in and the protocol
//! version. A beacon is never larger than the probe it answers.

/// The protocol version this implementation speaks (§11), as beacons say.
pub const VERSION: u32 = 1;
/// First byte of a probe.
pub const PROBE: u8 = 0x80;
/// First byte of a beacon.
pub const BEACON: u8 = 0x81;
/// Follows the first byte of both, so that stray datagrams in the range
/// are not taken for discovery.
pub const MAGIC: &[u8; 7] = b"udpchat";
/// Type, magic and nonce: the shortest probe.
pub const PROBE_HEADER: usize = 1 + 7 + 8;
/// What the reference client pads its probes to: room for any beacon
/// (whose name is at most [`MAX_NAME`] bytes).
pub const PROBE_SIZE: usize = 512;
/// Longest server name a beacon carries (cut at a character boundary).
pub const MAX_NAME: usize = 255;
/// Longest address text a beacon carries (an IPv6 address with a zone
/// fits).
pub const MAX_ADDRESS: usize = 64;

/// Beacon flag: logging in needs the shared server password.
pub const FLAG_PASSWORD: u8 = 0x01;
/// Beacon flag: the server has a plain-text gateway (§17).
pub const FLAG_PLAIN: u8 = 0x02;

/// A probe's nonce, echoed by beacons so a client can tell answers to its
/// own probe from others'.
pub type Nonce = [u8; 8];

/// What a server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beacon {
    pub nonce: Nonce,
    /// The highest protocol version the server speaks (§11).
    pub version: u32,
    pub flags: u8,
    /// The udpchat port.
    pub port: u16,
    /// The plain-text gateway's port (§17; `port` when they share it), 0
    /// for none.
    pub plain_port: u16,
    /// Sessions logged in now.
    pub members: u32,
    /// The server's static public key (§5).
    pub key: [u8; 32],
    pub name: String,
    /// The address to connect to, as text (an IP address); empty: the
    /// address the beacon came from.
    pub address: String,
}

/// A probe of `size` bytes (at least [`PROBE_HEADER`]).
pub fn probe(nonce: Nonce, size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size.max(PROBE_HEADER));
    out.push(PROBE);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&nonce);
    out.resize(size.max(PROBE_HEADER), 0);
    out
}

/// The nonce of a well-formed probe.
pub fn parse_probe(datagram: &[u8]) -> Option<Nonce> {
    if datagram.len() < PROBE_HEADER || datagram[0] != PROBE || &datagram[1..8] != MAGIC {
        return None;
    }
    datagram[8..16].try_into().ok()
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Beacon {
    pub fn encode(&self) -> Vec<u8> {
        let name = cut(&self.name, MAX_NAME);
        let address = cut(&self.address, MAX_ADDRESS);
        let mut out = Vec::with_capacity(64 + name.len() + address.len());
        out.push(BEACON);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.version.to_be_bytes());
        out.push(self.flags);
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(&self.plain_port.to_be_bytes());
        out.extend_from_slice(&self.members.to_be_bytes());
        out.extend_from_slice(&self.key);
        out.push(name.len() as u8);
        out.extend_from_slice(name.as_bytes());
        out.push(address.len() as u8);
        out.extend_from_slice(address.as_bytes());
        out
    }

    /// Reads a beacon; bytes after its last field are ignored (room for
    /// later fields).
    pub fn decode(datagram: &[u8]) -> Option<Self> {
        let mut r = Reader(datagram);
        if r.take(1)?[0] != BEACON || r.take(7)? != MAGIC {
            return None;
        }
        let nonce = r.take(8)?.try_into().ok()?;
        let version = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
        let flags = r.take(1)?[0];
        let port = u16::from_be_bytes(r.take(2)?.try_into().ok()?);
        let plain_port = u16::from_be_bytes(r.take(2)?.try_into().ok()?);
        let members = u32::from_be_bytes(r.take(4)?.try_into().ok()?);
        let key = r.take(32)?.try_into().ok()?;
        let n = usize::from(r.take(1)?[0]);
        let name = std::str::from_utf8(r.take(n)?).ok()?.to_owned();
        let n = usize::from(r.take(1)?[0]);
        let address = std::str::from_utf8(r.take(n)?).ok()?.to_owned();
        Some(Self { nonce, version, flags, port, plain_port, members, key, name, address })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beacon(name: &str) -> Beacon {
        Beacon {
            nonce: [1, 2, 3, 4, 5, 6, 7, 8],
            version: 1,
            flags: FLAG_PASSWORD,
            port: 7667,
            plain_port: 0,
            members: 3,
            key: [9; 32],
            name: name.into(),
            address: String::new(),
        }
    }

    #[test]
    fn round_trips_and_fits_the_reference_probe() {
        let b = beacon("GAS chatroom");
        assert_eq!(Beacon::decode(&b.encode()), Some(b));
        let long = beacon(&"é".repeat(300));
        let bytes = long.encode();
        assert!(bytes.len() <= PROBE_SIZE, "{}", bytes.len());
        assert_eq!(Beacon::decode(&bytes).unwrap().name.len(), 254, "cut at a character boundary");
        for n in 0..bytes.len() {
            assert_eq!(Beacon::decode(&bytes[..n]), None, "truncated at {n}");
        }
    }

    #[test]
    fn probes() {
        let p = probe([7; 8], PROBE_SIZE);
        assert_eq!(p.len(), PROBE_SIZE);
        assert_eq!(parse_probe(&p), Some([7; 8]));
        assert_eq!(parse_probe(&p[..PROBE_HEADER]), Some([7; 8]));
        assert_eq!(parse_probe(&p[..PROBE_HEADER - 1]), None);
        let mut other = p.clone();
        other[3] = b'X';
        assert_eq!(parse_probe(&other), None);
    }
}
