//! Stateless reset (docs/PROTOCOL.md §5.5): how a server that lost a
//! session — usually because it restarted — tells the client at once,
//! instead of leaving it to wait out its idle timeout.
//!
//! The token for a session is a MAC of the server's connection id under a
//! key derived from the server's long-term secret, so it survives
//! restarts without storing anything, and only the server can make it.
//! The client learns it inside the encrypted handshake; it appears on the
//! wire only in a reset, when the session is already gone.

use ring::hmac;

use crate::crypto::ServerKey;
use crate::packet::ConnectionId;

pub const RESET_TOKEN_LEN: usize = 16;
pub type ResetToken = [u8; RESET_TOKEN_LEN];

pub struct ResetKey(hmac::Key);

impl ResetKey {
    pub fn new(key: &ServerKey) -> Self {
        // Domain-separated from the key's use in Noise.
        let derived = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key.secret), b"udpchat stateless reset key");
        Self(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    pub fn token(&self, cid: &ConnectionId) -> ResetToken {
        let tag = hmac::sign(&self.0, cid);
        let mut token = [0u8; RESET_TOKEN_LEN];
        token.copy_from_slice(&tag.as_ref()[..RESET_TOKEN_LEN]);
        token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_depends_on_key_and_cid_and_survives_restarts() {
        let key = ServerKey::generate([1; 32]);
        let a = ResetKey::new(&key);
        let again = ResetKey::new(&ServerKey::from_secret(key.secret).unwrap());
        assert_eq!(a.token(&[1; 8]), again.token(&[1; 8]));
        assert_ne!(a.token(&[1; 8]), a.token(&[2; 8]));
        let other = ResetKey::new(&ServerKey::generate([2; 32]));
        assert_ne!(a.token(&[1; 8]), other.token(&[1; 8]));
    }
}
