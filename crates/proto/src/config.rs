//! Settings for the endpoint, its server role and each client session.
//! Defaults are the values docs/PROTOCOL.md names; `validate` turns
//! settings that could never work into an error instead of a stuck session.

use std::time::Duration;

use thiserror::Error;

use crate::crypto::{PublicKey, ServerKey};
use crate::stream::MAX_MESSAGE_SIZE;

/// Per-session settings, for either side.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// A session with no packet from its peer for this long is closed. The
    /// effective value is the smaller of both ends' (0 means none).
    pub idle_timeout: Duration,
    /// Send a PING after this long without sending anything, to hold NAT
    /// bindings open and prove the peer is alive. `None`: never.
    pub keepalive_interval: Option<Duration>,
    /// Receive window: stream bytes the peer may send beyond what the
    /// application has taken. Bounds reassembly memory per session.
    pub receive_window: u64,
    /// Bytes of queued plus unacknowledged messages before `send` reports
    /// back-pressure.
    pub send_buffer: usize,
}

impl TransportConfig {
    pub fn client() -> Self {
        Self { keepalive_interval: Some(Duration::from_secs(10)), ..Self::server() }
    }

    pub fn server() -> Self {
        Self {
            idle_timeout: Duration::from_secs(30),
            keepalive_interval: None,
            receive_window: 1024 * 1024,
            send_buffer: 1024 * 1024,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        // Room for two whole messages, so one large message never stalls
        // the stream waiting for a window update.
        let min_window = 2 * (MAX_MESSAGE_SIZE as u64 + 8);
        if self.receive_window < min_window || self.receive_window > (1 << 30) {
            return Err(ConfigError::ReceiveWindow(min_window));
        }
        if self.send_buffer < MAX_MESSAGE_SIZE + 8 {
            return Err(ConfigError::SendBuffer(MAX_MESSAGE_SIZE + 8));
        }
        if let Some(k) = self.keepalive_interval
            && k.is_zero()
        {
            return Err(ConfigError::Keepalive);
        }
        Ok(())
    }
}

/// A token bucket's shape: `burst` tokens, refilled at `per_second`.
#[derive(Debug, Clone, Copy)]
pub struct RateLimit {
    pub burst: u32,
    pub per_second: u32,
}

/// What an endpoint that accepts sessions needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub key: ServerKey,
    pub transport: TransportConfig,
    /// Sessions beyond this are refused with close code SERVER_BUSY.
    pub max_connections: usize,
    /// Handshakes answered but not yet confirmed by the client. Past this,
    /// every new client must first echo a retry cookie.
    pub max_half_open: usize,
    /// Ask every new client for a retry cookie (one more round trip, no
    /// state for unproven addresses at all).
    pub retry_always: bool,
    /// Unproven handshakes per source IP; past it, that IP gets retry
    /// cookies instead of state.
    pub handshake_rate: RateLimit,
    /// Handshakes per source IP whose address was proven by a cookie; past
    /// it, they are dropped.
    pub validated_handshake_rate: RateLimit,
    /// Source IPs tracked by the rate limiter. When full, idle entries are
    /// evicted; if none are idle, unknown IPs get retry cookies.
    pub rate_limit_entries: usize,
    /// A half-open session that has not heard from its client for this long
    /// is forgotten.
    pub handshake_timeout: Duration,
    /// Answer DATA for unknown sessions with a stateless reset, so clients
    /// of a restarted server reconnect at once rather than after their idle
    /// timeout. On by default: the reply (17 bytes) is always smaller than
    /// the packet that triggered it, goes at most once per 250 ms to one
    /// address and is rate-limited in all, so it can neither amplify nor
    /// loop; what it costs is telling a scanner that sends well-formed
    /// DATA that a udpchat server listens here (docs/PROTOCOL.md §5.5).
    pub stateless_reset: bool,
    /// Stateless resets sent, in all; bounds the work they cost. The
    /// default lets 10,000 clients of a restarted server learn of it
    /// within about a second.
    pub reset_rate: RateLimit,
}

impl ServerConfig {
    pub fn new(key: ServerKey) -> Self {
        Self {
            key,
            transport: TransportConfig::server(),
            max_connections: 100_000,
            max_half_open: 1024,
            retry_always: false,
            handshake_rate: RateLimit { burst: 16, per_second: 8 },
            validated_handshake_rate: RateLimit { burst: 64, per_second: 32 },
            rate_limit_entries: 65_536,
            handshake_timeout: Duration::from_secs(10),
            stateless_reset: true,
            reset_rate: RateLimit { burst: 10_000, per_second: 10_000 },
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.transport.validate()?;
        if self.max_connections == 0 || self.max_half_open == 0 || self.rate_limit_entries == 0 {
            return Err(ConfigError::ZeroLimit);
        }
        Ok(())
    }
}

/// What a client needs to open one session.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The server key the client expects. `None` accepts any key; the
    /// caller then pins the key reported in [`crate::Event::Connected`].
    pub server_key: Option<PublicKey>,
    pub transport: TransportConfig,
    /// Give up if the handshake has not completed after this long.
    pub handshake_timeout: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self { server_key: None, transport: TransportConfig::client(), handshake_timeout: Duration::from_secs(15) }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("receive window must be between {0} bytes and 1 GiB")]
    ReceiveWindow(u64),
    #[error("send buffer must be at least {0} bytes")]
    SendBuffer(usize),
    #[error("keepalive interval must not be zero")]
    Keepalive,
    #[error("connection limits must not be zero")]
    ZeroLimit,
}
