//! What the session core is told once, at the start: who to log in as,
//! whether to come back, which key to require, and the Login origin that
//! stays the same across reconnects (kept apart from the state machine in
//! `mod.rs`, which only reads it).

use udpchat_proto::PublicKey;

use super::{pacing, servers};
use crate::ClientOptions;

/// How to log in and whether to come back.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub nick: String,
    pub password: String,
    pub account_password: String,
    pub reconnect: bool,
    /// Rooms to join after logging in, besides the lobby.
    pub rooms: Vec<String>,
    /// The key to require: the user's, else the one remembered for this
    /// server, else none (trust on first use).
    pub server_key: Option<PublicKey>,
    /// `HOST:PORT` as the user gave it (or several, comma-separated,
    /// without blanks: [`servers::canonical`]), for messages.
    pub server: String,
    /// This client instance's random nonzero Login origin (§15.3), the
    /// same across its reconnects, so the server can tell a resend.
    pub origin: u64,
    /// The limits to keep to until the server sends `Limits`.
    pub assumed_limits: pacing::Limits,
    /// The known-servers file, named when the server's key changed.
    pub known_hosts: Option<std::path::PathBuf>,
}

impl SessionConfig {
    /// `known`: the key remembered for this server, if any.
    pub fn new(options: &ClientOptions, known: Option<PublicKey>) -> Self {
        Self {
            nick: options.nick.clone(),
            password: options.password.clone(),
            account_password: options.account_password.clone(),
            reconnect: options.reconnect,
            rooms: options.rooms.clone(),
            server_key: options.server_key.or(known),
            server: servers::canonical(&options.server),
            origin: random_origin(),
            assumed_limits: options.assumed_limits,
            known_hosts: options.known_hosts.clone(),
        }
    }
}

/// A random nonzero origin, below 2^62 (it is sent as a varint).
pub fn random_origin() -> u64 {
    let mut b = [0u8; 8];
    // The OS RNG failing is not something a chat client can work around.
    getrandom::getrandom(&mut b).expect("operating system random number generator");
    (u64::from_le_bytes(b) >> 2).max(1)
}
