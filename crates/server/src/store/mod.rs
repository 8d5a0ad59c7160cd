//! Where history and accounts live. The chat server talks to the [`Store`]
//! trait; the default (and for now only) implementation is SQLite in the
//! data directory (`sqlite.rs`), which needs no separate server.
//!
//! Durability is the store's promise to the chat layer: once `append`
//! returns Ok, the lines are on disk as far as the configured sync policy
//! says, and only then are they acknowledged and delivered.
//!
//! The chat layer never calls a store itself: it asks for store work as
//! requests (`crate::chat::StoreRequest`) that the driver runs on the
//! store threads (`crate::store_threads`), one writer and one reader, so
//! the event loop never waits for SQLite or an fsync. Hence `Send`.

mod checkpoint;
mod sqlite;

use std::path::PathBuf;

pub use sqlite::{SqliteStore, SyncPolicy};

/// Room lines are stored as the chat layer defines them; `history` is
/// not stored (reads return `false`).
pub use udpchat_chat::Line;

/// A private message kept for a recipient with an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPrivate {
    /// Assigned by the store; increasing.
    pub id: u64,
    /// The recipient's folded account name.
    pub recipient: String,
    pub from: String,
    pub to: String,
    pub text: String,
    pub time_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Account {
    /// As the user spelled it when it was created.
    pub name: String,
    /// argon2id, PHC string.
    pub hash: String,
    pub operator: bool,
    /// Requests per second this account's sessions may send (bots); 0:
    /// the server's `rate_per_second`. The burst is the server's.
    pub rate: u32,
}

/// A change to what operators set, kept across restarts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AdminChange {
    /// `target` is a folded nickname or an IP address; `expires_ms` is a
    /// Unix time in milliseconds, 0 for a permanent ban.
    Ban {
        target: String,
        expires_ms: u64,
        reason: String,
    },
    Unban {
        target: String,
    },
    Topic {
        room: String,
        topic: String,
    },
    /// An account's own rate (requests per second; 0: the server's).
    AccountRate {
        /// The folded account name.
        account: String,
        rate: u32,
    },
    /// What a room keeps, set by the operator over the config; `None`
    /// goes back to the config's rule.
    Retention {
        room: String,
        retention: Option<Retention>,
    },
}

/// What operators have set: read once at startup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdminState {
    /// (target, expires_ms), as in [`AdminChange::Ban`].
    pub bans: Vec<(String, u64)>,
    /// (room, topic) for rooms with a topic.
    pub topics: Vec<(String, String)>,
    /// (room, what it keeps) for rooms whose retention the operator set.
    pub retention: Vec<(String, Retention)>,
}

/// How much history a room keeps; `None` means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Retention {
    pub max_age_ms: Option<u64>,
    pub max_lines: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{path} is not a udpchat database or is corrupt ({detail}); restore it from a backup, or move it away to start with empty history"
    )]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} was written by a newer udpchat (schema {found}, this version knows up to {known}); upgrade udpchat"
    )]
    NewerSchema { path: PathBuf, found: i64, known: i64 },
    #[error("{path} is in use by another udpchat server (lock {lock}); stop it, or give this one another --data-dir")]
    Locked { path: PathBuf, lock: PathBuf },
    #[error("cannot write {path} ({detail}); check its permissions and the file system")]
    ReadOnly { path: PathBuf, detail: String },
    #[error("the history database is full (disk or max_database_mb); the line was not stored")]
    Full,
    #[error("history database error: {0}")]
    Sqlite(String),
    #[error("{0}")]
    Io(String),
}

/// Client origins whose highest stored request id a store keeps
/// (docs/PROTOCOL.md §15.7: exactly-once resends); the least recently
/// used go first.
pub const MAX_ORIGINS: usize = 65_536;

/// The storage the chat server needs.
pub trait Store: Send {
    /// Stores lines and private messages in one transaction: all or none.
    /// Private messages get their ids here. Iterators, so that the chat
    /// layer's batch (each line beside whoever waits for it) is stored as
    /// it is, without a copy. In the same transaction it records, for each
    /// `(origin, id)` of `origins`, that the client instance `origin` has
    /// had every request up to `id` stored (docs/PROTOCOL.md §15.7: the mark
    /// only grows; at most [`MAX_ORIGINS`] are kept), so a resend after a
    /// restart is recognised.
    fn append<'a>(
        &mut self,
        lines: &mut dyn Iterator<Item = &'a Line>,
        privates: &mut dyn Iterator<Item = &'a mut StoredPrivate>,
        origins: &[(u64, u64)],
    ) -> Result<(), StoreError>;
    /// Records an operator's change (a ban, an unban, a topic, a rate, a
    /// room's retention). A store
    /// that keeps none (tests) may leave it: they last until a restart.
    fn apply(&mut self, change: &AdminChange) -> Result<(), StoreError> {
        let _ = change;
        Ok(())
    }
    /// Every ban, topic and room retention recorded.
    fn admin_state(&self) -> Result<AdminState, StoreError> {
        Ok(AdminState::default())
    }
    /// The origins' marks, least recently used first.
    fn origins(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        Ok(Vec::new())
    }
    /// The last sequence number of every room that has lines.
    fn room_heads(&self) -> Result<Vec<(String, u64)>, StoreError>;
    /// Lines of `room` with sequence numbers above `after`, oldest first.
    fn lines_after(&self, room: &str, after: u64, limit: usize) -> Result<Vec<Line>, StoreError>;
    /// The newest lines of `room` below `before` (0: the newest of all),
    /// oldest first.
    fn lines_before(&self, room: &str, before: u64, limit: usize) -> Result<Vec<Line>, StoreError>;
    /// Private messages for `recipient` with ids above `after`, oldest first.
    fn privates_after(&self, recipient: &str, after: u64, limit: usize) -> Result<Vec<StoredPrivate>, StoreError>;
    fn account(&self, folded: &str) -> Result<Option<Account>, StoreError>;
    fn put_account(&mut self, folded: &str, account: &Account) -> Result<(), StoreError>;
    /// Returns whether there was such an account.
    fn delete_account(&mut self, folded: &str) -> Result<bool, StoreError>;
    fn accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Deletes at most `batch` lines of `room` that `retention` no longer
    /// keeps (as of `now_ms`); returns how many. Small batches keep each
    /// call short, so pruning never holds up delivery for long.
    fn prune(&mut self, room: &str, retention: Retention, now_ms: u64, batch: usize) -> Result<usize, StoreError>;
}
