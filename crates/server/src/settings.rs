//! Server settings: built-in defaults, overridden by a TOML file, overridden
//! by command-line flags and environment variables (the binary applies
//! those). Every key is listed in README.md's configuration reference.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::discovery::LanDiscovery;
use crate::store::SyncPolicy;

/// The port udpchat listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 7667;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address and port to listen on; `[::]` accepts IPv4 and IPv6.
    pub listen: SocketAddr,
    /// Holds the server key.
    pub data_dir: PathBuf,
    /// A file whose first line is the shared server password.
    pub password_file: Option<PathBuf>,
    /// The shared password itself (set from the environment, never a flag).
    #[serde(skip)]
    pub password: Option<String>,
    pub server_name: String,
    /// Message of the day, sent with the welcome.
    pub motd: String,
    /// Longest line, in bytes of UTF-8.
    pub max_line_bytes: usize,
    /// Lines and commands a session may send at once...
    pub rate_burst: u32,
    /// ...and per second after that; 0 lifts the limit (for benchmarks).
    pub rate_per_second: f64,
    pub max_sessions: usize,
    pub max_sessions_per_address: usize,
    pub max_rooms: usize,
    /// Bytes queued for one session before live lines stop and it is fed
    /// from the store instead.
    pub send_queue_bytes: usize,
    pub idle_timeout_secs: u64,
    /// Seconds a session may take to log in.
    pub login_timeout_secs: u64,
    /// Print every room line on the console.
    pub console_log: bool,
    /// Ask every new client to prove its address with a retry cookie.
    pub retry_always: bool,
    /// New sessions one source address may open at once before it must
    /// prove itself with a retry cookie (cookie-proven addresses get four
    /// times as many)...
    pub handshake_burst: u32,
    /// ...and per second after that. 0 lifts the limit (for benchmarks
    /// that open thousands of sessions from one address).
    pub handshake_per_second: u32,
    /// Tell clients of sessions this server does not know (after a
    /// restart) at once, so they reconnect without waiting out the idle
    /// timeout. On by default: a reset is never larger than the packet it
    /// answers and is rate-limited (docs/PROTOCOL.md §5.5), so answering
    /// unauthenticated packets this way amplifies nothing.
    pub stateless_reset: bool,
    /// Lines of a room sent, as history, to someone joining it.
    pub history_on_join: usize,
    /// Most lines one /history request returns.
    pub history_page_max: usize,
    /// `full`: fsync every commit (an acknowledged line survives power
    /// loss). `normal`: fsync at checkpoints (survives a crash of the
    /// server, not a power cut).
    pub history_sync: SyncPolicy,
    /// Cap on the history database's size; past it, new lines are refused
    /// as on a full disk. None: no cap.
    pub max_database_mb: Option<u64>,
    /// Lines each room keeps (0: all).
    pub history_max_lines: Option<u64>,
    /// Days each room keeps lines (None: forever).
    pub history_max_age_days: Option<u64>,
    /// Per-room retention overrides: `[rooms.NAME]` tables.
    pub rooms: BTreeMap<String, RoomSettings>,
    /// Where the plain-text gateway listens (docs/PROTOCOL.md §17): the
    /// classic clients' protocol, unencrypted and unverified, so off
    /// (None) unless asked for. May equal `listen`: the first byte tells
    /// the kinds apart (§13.1).
    pub plain_listen: Option<SocketAddr>,
    /// Plain-text members at once (addresses); new ones past it get no
    /// answer.
    pub plain_max_members: usize,
    /// A plain member silent this long is dropped (classic clients send no
    /// keepalives, so this is longer than `idle_timeout_secs`).
    pub plain_idle_timeout_secs: u64,
    /// Also send every live line of `plain_broadcast_room` to this
    /// broadcast address in plain text (§17.6), for the classic LAN
    /// clients that only listen there. Everyone on the segment reads it.
    pub plain_broadcast: Option<SocketAddr>,
    pub plain_broadcast_room: String,
    /// Answer LAN discovery probes and announce over mDNS
    /// (docs/PROTOCOL.md §16): `auto` (on for a private or link-local
    /// listen address), `on` or `off`.
    pub lan_discovery: LanDiscovery,
    /// Where to serve Prometheus metrics (`GET /metrics`); None: off.
    pub metrics_listen: Option<SocketAddr>,
    /// Run as a node of a cluster on these NATS servers
    /// (`nats://host:port`, comma-separated; docs/SCALING.md). None: one
    /// server, SQLite only.
    pub cluster: Option<String>,
    /// Copies NATS JetStream keeps of the cluster's stream: 1 for one NATS
    /// server, 3 for a three-node NATS cluster.
    pub cluster_replicas: usize,
    /// The server key from this file instead of `data_dir/server.key`:
    /// every node of a cluster uses the same key, so clients that fail
    /// over see no key change.
    pub key_file: Option<PathBuf>,
}

/// Retention for one room, overriding the server-wide values.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomSettings {
    pub max_lines: Option<u64>,
    pub max_age_days: Option<u64>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 0], DEFAULT_PORT)),
            data_dir: default_data_dir(),
            password_file: None,
            password: None,
            server_name: "udpchat".into(),
            motd: "Welcome to udpchat! Type /help for commands.".into(),
            max_line_bytes: 4096,
            rate_burst: 5,
            rate_per_second: 2.0,
            max_sessions: 10_000,
            max_sessions_per_address: 100,
            max_rooms: 10_000,
            send_queue_bytes: 1024 * 1024,
            idle_timeout_secs: 30,
            login_timeout_secs: 30,
            console_log: true,
            retry_always: false,
            handshake_burst: 16,
            handshake_per_second: 8,
            stateless_reset: true,
            history_on_join: 50,
            history_page_max: 200,
            history_sync: SyncPolicy::Full,
            max_database_mb: None,
            history_max_lines: Some(100_000),
            history_max_age_days: None,
            rooms: BTreeMap::new(),
            plain_listen: None,
            plain_max_members: 256,
            plain_idle_timeout_secs: 600,
            plain_broadcast: None,
            plain_broadcast_room: udpchat_chat::LOBBY.to_owned(),
            lan_discovery: LanDiscovery::Auto,
            metrics_listen: None,
            cluster: None,
            cluster_replicas: 1,
            key_file: None,
        }
    }
}

/// `$XDG_DATA_HOME/udpchat`, else `~/.local/share/udpchat`, else `./udpchat-data`.
pub fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("udpchat"))
        .unwrap_or_else(|| PathBuf::from("udpchat-data"))
}

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read config file {path}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("cannot read password file {path}")]
    PasswordFile { path: PathBuf, source: std::io::Error },
    #[error("password file {path} is empty")]
    EmptyPassword { path: PathBuf },
    #[error("setting {name}: {message}")]
    Invalid { name: &'static str, message: String },
}

impl Settings {
    pub fn from_file(path: &Path) -> Result<Self, SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read { path: path.into(), source })?;
        toml::from_str(&text).map_err(|e| SettingsError::Parse { path: path.into(), message: e.to_string() })
    }

    /// Reads the password file, if one is set and no password is yet.
    pub fn load_password(&mut self) -> Result<(), SettingsError> {
        if self.password.is_some() {
            return Ok(());
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| SettingsError::PasswordFile { path: path.clone(), source })?;
            let first = text.lines().next().unwrap_or("").trim_end_matches('\r').to_owned();
            if first.is_empty() {
                return Err(SettingsError::EmptyPassword { path: path.clone() });
            }
            self.password = Some(first);
        }
        Ok(())
    }

    /// Rejects values that cannot work, naming the setting.
    pub fn validate(&self) -> Result<(), SettingsError> {
        let invalid = |name, message: &str| Err(SettingsError::Invalid { name, message: message.into() });
        if self.max_line_bytes == 0 || self.max_line_bytes > 60_000 {
            return invalid("max_line_bytes", "must be between 1 and 60000");
        }
        if self.rate_burst == 0 {
            return invalid("rate_burst", "must be at least 1");
        }
        if !(self.rate_per_second >= 0.0 && self.rate_per_second.is_finite()) {
            return invalid("rate_per_second", "must be 0 (unlimited) or more");
        }
        if self.max_sessions == 0 || self.max_sessions_per_address == 0 || self.max_rooms == 0 {
            return invalid("max_sessions / max_sessions_per_address / max_rooms", "must be at least 1");
        }
        if self.send_queue_bytes < 128 * 1024 {
            return invalid("send_queue_bytes", "must be at least 131072");
        }
        if self.idle_timeout_secs < 5 {
            return invalid("idle_timeout_secs", "must be at least 5");
        }
        if self.login_timeout_secs == 0 {
            return invalid("login_timeout_secs", "must be at least 1");
        }
        if self.history_on_join > 1000 || self.history_page_max == 0 || self.history_page_max > 1000 {
            return invalid("history_on_join / history_page_max", "must be at most 1000 (history_page_max at least 1)");
        }
        if self.plain_max_members == 0 || self.plain_idle_timeout_secs < 5 {
            return invalid("plain_max_members / plain_idle_timeout_secs", "must be at least 1 / 5");
        }
        if let Err(e) = udpchat_chat::names::room_name(&self.plain_broadcast_room) {
            return invalid("plain_broadcast_room", &e);
        }
        if let Some(urls) = &self.cluster
            && (urls.trim().is_empty() || urls.split(',').any(|u| u.trim().is_empty()))
        {
            return invalid("cluster", "must be NATS addresses, nats://host:port, comma-separated");
        }
        if !(1..=5).contains(&self.cluster_replicas) {
            return invalid("cluster_replicas", "must be between 1 and 5 (3 for a three-node NATS cluster)");
        }
        if self.server_name.trim().is_empty() {
            return invalid("server_name", "must not be empty");
        }
        Ok(())
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nmotd = \"hi\"\n").unwrap();
        let s = Settings::from_file(&path).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.motd, "hi");
        assert_eq!(s.max_line_bytes, 4096);
        std::fs::write(&path, "lisen = \"x\"\n").unwrap();
        let err = Settings::from_file(&path).unwrap_err().to_string();
        assert!(err.contains("lisen"), "{err}");
    }

    #[test]
    fn password_file_first_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "GAS1\nignored\n").unwrap();
        let mut s = Settings { password_file: Some(path), ..Settings::default() };
        s.load_password().unwrap();
        assert_eq!(s.password.as_deref(), Some("GAS1"));
    }
}
