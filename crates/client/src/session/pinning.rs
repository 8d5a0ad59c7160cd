//! The key-pinning decision, with no file in it: the key we already trust
//! for a server (the one the user gave with `--server-key`, or the one
//! remembered in `known_servers`) against the key the server presents in
//! the handshake (docs/PROTOCOL.md, "Server keys"). Reading and writing
//! `known_servers` stays at the edge (`crate::known_hosts`, driven by the
//! driver on [`super::Action::RememberKey`]).

use udpchat_proto::PublicKey;

/// What to make of the key a server presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The key we expected.
    Trusted,
    /// No key was known: trust it now and remember it (trust on first use).
    FirstUse,
    /// Another key than the one we trust: refuse the session.
    Mismatch { expected: PublicKey, presented: PublicKey },
}

/// Decides about `presented` given the key trusted for this server, if any.
pub fn check(known: Option<PublicKey>, presented: PublicKey) -> Trust {
    match known {
        None => Trust::FirstUse,
        Some(k) if k == presented => Trust::Trusted,
        Some(expected) => Trust::Mismatch { expected, presented },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_proto::ServerKey;

    #[test]
    fn known_first_use_and_mismatch() {
        let a = ServerKey::generate([1; 32]).public;
        let b = ServerKey::generate([2; 32]).public;
        assert_eq!(check(None, a), Trust::FirstUse);
        assert_eq!(check(Some(a), a), Trust::Trusted);
        assert_eq!(check(Some(a), b), Trust::Mismatch { expected: a, presented: b });
    }
}
