//! What the chat core counts for operators (the driver exports it as
//! Prometheus metrics, `metrics.rs`). Plain integers bumped where the
//! thing happens: no I/O, no atomics, nothing the hot path would notice.
//! Gauges (sessions, rooms, store queue) are computed when asked, which is
//! once per scrape.

use udpchat_proto::ConnectionHandle;

use super::ChatServer;

/// Counters since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatStats {
    /// Room lines numbered and queued for storing (operator lines too).
    pub lines_accepted: u64,
    /// Room lines sent live to a member (one per member reached).
    pub deliveries: u64,
    pub logins: u64,
    /// Refused logins: a wrong server or account password.
    pub login_failures: u64,
    /// Sessions refused after the handshake: a banned address, or too
    /// many sessions from one.
    pub sessions_refused: u64,
}

/// The core's state right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatGauges {
    /// Connected, not yet logged in.
    pub logging_in: usize,
    pub logged_in: usize,
    /// Rooms that exist (they are kept once made) and those with members.
    pub rooms: usize,
    pub rooms_occupied: usize,
    /// Times a member's queue was full and it was switched to being fed
    /// from the store (a slow reader catching up), since the start.
    pub catch_ups: u64,
    /// Lines and private messages waiting for the next commit.
    pub store_pending: usize,
    /// Store reads in flight.
    pub store_reads: usize,
}

impl ChatServer {
    pub fn stats(&self) -> ChatStats {
        self.stats
    }

    /// One pass over the sessions and rooms.
    pub fn gauges(&self) -> ChatGauges {
        let logged_in = self.sessions.iter().filter(|(_, s)| s.nick.is_some()).count();
        ChatGauges {
            logging_in: self.sessions.len() - logged_in,
            logged_in,
            rooms: self.rooms.len(),
            rooms_occupied: self.rooms.values().filter(|r| !r.members.is_empty()).count(),
            catch_ups: self.rooms.values().map(|r| r.fell_behind).sum(),
            store_pending: self.store.pending_len(),
            store_reads: self.store.reads_in_flight(),
        }
    }

    /// Sessions that have logged in (for sampling their round-trip times).
    pub fn logged_in_sessions(&self) -> impl Iterator<Item = ConnectionHandle> + '_ {
        self.sessions.iter().filter(|(_, s)| s.nick.is_some()).map(|(h, _)| *h)
    }
}
