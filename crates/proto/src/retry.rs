//! Stateless retry cookies (docs/PROTOCOL.md §5.2). When the server does
//! not want to keep state for an unproven source address, it answers the
//! INITIAL with a token that only that address can echo back: a MAC over
//! the address, the client's connection id and the issue time, under a
//! secret that rotates, so nothing is stored per client and old cookies
//! stop working by themselves.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ring::hmac;

use crate::packet::ConnectionId;

/// How long a cookie is accepted after it was issued.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(10);
/// How often the MAC key changes. A cookie is checked against the key
/// named in it, so the previous key must outlive [`TOKEN_LIFETIME`].
pub const KEY_LIFETIME: Duration = Duration::from_secs(30);
const MAC_LEN: usize = 16;
/// key slot (1) + issue time in seconds (4) + MAC.
pub const TOKEN_LEN: usize = 1 + 4 + MAC_LEN;

pub struct RetryTokens {
    keys: [hmac::Key; 2],
    current: u8,
    epoch: Instant,
    rotated_at: Instant,
}

impl RetryTokens {
    pub fn new(now: Instant, mut random: impl FnMut() -> [u8; 32]) -> Self {
        Self {
            keys: [hmac::Key::new(hmac::HMAC_SHA256, &random()), hmac::Key::new(hmac::HMAC_SHA256, &random())],
            current: 0,
            epoch: now,
            rotated_at: now,
        }
    }

    /// Replaces the older key when the current one has served its time.
    pub fn rotate(&mut self, now: Instant, random: impl FnOnce() -> [u8; 32]) {
        if now.saturating_duration_since(self.rotated_at) >= KEY_LIFETIME {
            self.current ^= 1;
            self.keys[self.current as usize] = hmac::Key::new(hmac::HMAC_SHA256, &random());
            self.rotated_at = now;
        }
    }

    fn seconds(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_secs() as u32
    }

    fn mac(&self, slot: u8, addr: SocketAddr, cid: &ConnectionId, issued: u32) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.keys[slot as usize & 1]);
        ctx.update(b"udpchat retry");
        match addr.ip() {
            IpAddr::V4(ip) => ctx.update(&ip.octets()),
            IpAddr::V6(ip) => ctx.update(&ip.octets()),
        }
        ctx.update(&addr.port().to_be_bytes());
        ctx.update(cid);
        ctx.update(&issued.to_be_bytes());
        ctx.sign()
    }

    pub fn issue(&self, now: Instant, addr: SocketAddr, cid: &ConnectionId) -> [u8; TOKEN_LEN] {
        let issued = self.seconds(now);
        let tag = self.mac(self.current, addr, cid, issued);
        let mut token = [0u8; TOKEN_LEN];
        token[0] = self.current;
        token[1..5].copy_from_slice(&issued.to_be_bytes());
        token[5..].copy_from_slice(&tag.as_ref()[..MAC_LEN]);
        token
    }

    /// Whether `token` was issued by us, to this address and connection id,
    /// within [`TOKEN_LIFETIME`].
    pub fn validate(&self, now: Instant, addr: SocketAddr, cid: &ConnectionId, token: &[u8]) -> bool {
        if token.len() != TOKEN_LEN || token[0] > 1 {
            return false;
        }
        let issued = u32::from_be_bytes([token[1], token[2], token[3], token[4]]);
        let age = self.seconds(now).wrapping_sub(issued);
        if u64::from(age) > TOKEN_LIFETIME.as_secs() {
            return false;
        }
        let expected = self.mac(token[0], addr, cid, issued);
        // Constant-time comparison, so timing reveals nothing about the MAC.
        expected.as_ref()[..MAC_LEN].iter().zip(&token[5..]).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_binds_address_cid_and_time() {
        let start = Instant::now();
        let mut n = 0u8;
        let mut random = || {
            n += 1;
            [n; 32]
        };
        let mut tokens = RetryTokens::new(start, &mut random);
        let addr: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let token = tokens.issue(start, addr, &[1; 8]);
        assert!(tokens.validate(start + Duration::from_secs(3), addr, &[1; 8], &token));
        assert!(!tokens.validate(start, "192.0.2.1:5001".parse().unwrap(), &[1; 8], &token));
        assert!(!tokens.validate(start, addr, &[2; 8], &token));
        assert!(!tokens.validate(start + Duration::from_secs(12), addr, &[1; 8], &token));
        let mut forged = token;
        forged[10] ^= 1;
        assert!(!tokens.validate(start, addr, &[1; 8], &forged));
        // Survives one rotation, not two.
        let later = start + KEY_LIFETIME;
        let token = tokens.issue(later.checked_sub(Duration::from_secs(1)).unwrap(), addr, &[1; 8]);
        tokens.rotate(later, &mut random);
        assert!(tokens.validate(later, addr, &[1; 8], &token));
        tokens.rotate(later + KEY_LIFETIME, &mut random);
        assert!(!tokens.validate(later, addr, &[1; 8], &token));
    }
}
