//! The chat server's state machine: sessions, nicknames, rooms, bans and
//! the console feed. Like the protocol crate it does no I/O at all: the
//! driver hands it session events and the time, it writes replies through
//! an [`Outlet`] (the protocol endpoint in production), and it asks for
//! store work and password checks as requests the driver runs on other
//! threads, whose completions come back as calls (`storage.rs`,
//! `login.rs`). So the event loop never waits for SQLite, an fsync or
//! argon2.
//!
//! Each part of the state lives with the code that changes it: sessions
//! and their indexes in `sessions.rs`, rooms and their fan-out in
//! `rooms.rs`, store work in flight in `storage.rs`, password checks in
//! `login.rs`.
//!
//! History: every room line is numbered when accepted, stored with the
//! other lines of the same batch in one transaction (group commit), and
//! only delivered and acknowledged once that commit has completed. A
//! member that cannot take more (its bounded queue is full), or that
//! comes back after a disconnect, gets a per-room cursor and is fed from
//! the store until it reaches the newest line, then goes back to live
//! delivery (`history.rs`). Requests are in `requests.rs`, login and
//! accounts in `login.rs`, the operator console in `console.rs`.

mod bans;
mod cluster_privates;
mod clustered;
mod console;
mod history;
mod login;
mod origins;
mod pacing;
mod presence;
mod reload;
mod requests;
mod rooms;
mod sessions;
mod stats;
mod storage;
mod tuning;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use udpchat_chat::{ErrorCode, Line, NoticeKind, ServerMsg, close};
use udpchat_proto::{CloseReason, ConnectionHandle, SendError};

use crate::limits::LoginFailures;
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use rooms::{Room, Traffic};
use sessions::{Session, Sessions};
use storage::{Batch, StoreWork};

pub use cluster_privates::ClusterPrivate;
pub use clustered::{ClusterCompletion, ClusterRequest, Fed, FedItem, Stored};
pub use console::format_time;
pub use history::PLAIN_JOIN;
pub use login::{MAX_VERIFYING, Verification, hash_password, verify_password};
pub use pacing::{HOLD_BYTES, HOLD_MAX_BYTES, HOLD_REQUESTS};
pub use presence::{PresenceSnapshot, SNAPSHOT_EVERY};
pub use stats::{ChatGauges, ChatStats};
pub use storage::{MAX_PENDING, MAX_READS, StoreCompletion, StoreRequest, Waiter};

pub use udpchat_chat::LOBBY;

/// Most names one Joined, Members or RoomList reply lists, so that a reply
/// stays far below the 64 KiB message limit (names are at most 32
/// characters, 128 bytes of UTF-8). Larger rooms are listed in part.
pub const MAX_LISTED: usize = 400;

/// A part or quit reason as others will see it: control characters
/// removed, at most 256 bytes.
pub(crate) fn clean_reason(reason: &str) -> String {
    let mut out: String = reason.chars().filter(|c| !c.is_control()).collect();
    if out.len() > 256 {
        let mut end = 256;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// Where replies go.
pub trait Outlet {
    /// Queues a message; `Blocked` means the session's queue is full.
    fn send(&mut self, to: ConnectionHandle, bytes: &[u8]) -> Result<(), SendError>;
    /// Queues a reply to the session's own request, which may use a
    /// bounded reserve beyond a full queue.
    fn send_reply(&mut self, to: ConnectionHandle, bytes: &[u8]) -> Result<(), SendError> {
        self.send(to, bytes)
    }
    fn close(&mut self, h: ConnectionHandle, code: u64, reason: &str);
    /// Stops (false) or resumes (true) reading the session's messages, so
    /// that transport flow control holds back a client that is too far
    /// ahead of its rate (`pacing.rs`).
    fn set_reading(&mut self, h: ConnectionHandle, reading: bool) {
        let _ = (h, reading);
    }
}

/// The time as the chat layer needs it: monotonic for limits, wall clock
/// for the timestamps users see.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: Instant,
    pub unix_ms: u64,
}

impl Clock {
    pub fn system() -> Self {
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        Self { now: Instant::now(), unix_ms }
    }
}

pub struct ChatServer {
    pub(crate) settings: Settings,
    pub(crate) sessions: Sessions,
    pub(crate) rooms: BTreeMap<String, Room>,
    pub(crate) store: StoreWork,
    pub(crate) checks: login::PasswordChecks,
    pub(crate) failures: LoginFailures,
    /// Banned folded nicknames and addresses, to when (Unix ms; 0:
    /// permanent). Kept in the store too; expired ones go at `tick`.
    pub(crate) banned_nicks: HashMap<String, u64>,
    pub(crate) banned_ips: HashMap<IpAddr, u64>,
    /// Per client origin, the highest request id accepted (`origins.rs`).
    pub(crate) origins: origins::Origins,
    /// Sessions with held requests (`pacing.rs`).
    pub(crate) holding: HashSet<ConnectionHandle>,
    /// Lines for the server console, drained by the driver.
    console: Vec<String>,
    /// The room the operator's typed lines go to.
    pub(crate) console_room: String,
    /// The console's timestamps are in this zone.
    time_zone: TimeZone,
    /// Counters for operators (`stats.rs`).
    pub(crate) stats: ChatStats,
    /// While an admin command runs: its answers (`console.rs`).
    answers: Option<Vec<String>>,
    /// On a cluster node: its part (`clustered.rs`).
    pub(crate) cluster: Option<clustered::Role>,
    /// On a cluster node: the other nodes' members (`presence.rs`).
    pub(crate) presence: presence::Presence,
}

impl ChatServer {
    /// Builds the server, continuing every room's numbering (and every
    /// client origin's resend mark) where `store` left off (read once, before the event loop starts; the core keeps
    /// no store). Console times are local ([`ChatServer::set_time_zone`]).
    pub fn new(settings: Settings, store: &dyn Store) -> Result<Self, StoreError> {
        let mut rooms = BTreeMap::new();
        for (room, head) in store.room_heads()? {
            rooms.insert(room, Room::new(head));
        }
        rooms.entry(LOBBY.to_owned()).or_insert_with(|| Room::new(0));
        let admin = store.admin_state()?;
        for (room, topic) in admin.topics {
            rooms.entry(room).or_insert_with(|| Room::new(0)).topic = topic;
        }
        for (room, retention) in admin.retention {
            rooms.entry(room).or_insert_with(|| Room::new(0)).retention = Some(retention);
        }
        let (mut banned_nicks, mut banned_ips) = (HashMap::new(), HashMap::new());
        for (target, expires_ms) in admin.bans {
            match target.parse::<IpAddr>() {
                Ok(ip) => banned_ips.insert(ip, expires_ms),
                Err(_) => banned_nicks.insert(target, expires_ms),
            };
        }
        Ok(Self {
            settings,
            sessions: Sessions::default(),
            rooms,
            store: StoreWork::default(),
            checks: login::PasswordChecks::default(),
            failures: LoginFailures::default(),
            banned_nicks,
            banned_ips,
            holding: HashSet::new(),
            origins: origins::Origins::load(store.origins()?),
            console: Vec::new(),
            console_room: LOBBY.to_owned(),
            time_zone: TimeZone::system(),
            stats: ChatStats::default(),
            answers: None,
            cluster: None,
            presence: presence::Presence::default(),
        })
    }

    /// Shows console times in `zone` instead of the system's.
    pub fn set_time_zone(&mut self, zone: TimeZone) {
        self.time_zone = zone;
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Sessions from `ip` as the per-address limit counts them.
    pub fn sessions_from(&self, ip: IpAddr) -> usize {
        self.sessions.count_at(ip)
    }

    /// Console lines produced since the last call.
    pub fn take_console(&mut self) -> Vec<String> {
        std::mem::take(&mut self.console)
    }

    pub(crate) fn log(&mut self, clock: Clock, text: String) {
        if self.settings.console_log {
            self.announce(clock, text);
        }
    }

    /// Always shown, whatever `console_log` says.
    pub(crate) fn announce(&mut self, clock: Clock, text: String) {
        self.console.push(format!("[{}] {text}", format_time(clock.unix_ms, &self.time_zone)));
    }

    /// A session passed the handshake.
    pub fn connected(&mut self, clock: Clock, h: ConnectionHandle, addr: SocketAddr, out: &mut impl Outlet) {
        if self.banned_ips.contains_key(&addr.ip()) {
            self.stats.sessions_refused += 1;
            tracing::info!(target: "udpchat::session", %addr, "refused: banned address");
            out.close(h, close::BANNED, "you are banned from this server");
            return;
        }
        let session = Session::new(addr, self.settings.rate_burst, self.settings.rate_per_second, clock.now);
        if self.sessions.admit(h, session, self.settings.max_sessions_per_address).is_err() {
            self.stats.sessions_refused += 1;
            tracing::warn!(target: "udpchat::session", %addr, "refused: too many sessions from the address");
            out.close(h, close::TOO_MANY_SESSIONS, "too many sessions from your address");
        }
    }

    /// A member of the plain-text gateway arrived from `addr` (its handle
    /// is a [`ConnectionHandle::foreign`] one): a session like any other,
    /// under the same bans, per-address limit, login rules, flood limits
    /// and history, except that the rooms it joins are told it is
    /// unencrypted and its address unverified (docs/PROTOCOL.md §17).
    pub fn connected_plain(&mut self, clock: Clock, h: ConnectionHandle, addr: SocketAddr, out: &mut impl Outlet) {
        self.connected(clock, h, addr, out);
        if let Some(session) = self.sessions.get_mut(&h) {
            session.plain = true;
        }
    }

    /// Lets `h` (a [`ConnectionHandle::foreign`] one) hear the live lines
    /// of `room` without being a member or a session: the plain-text
    /// gateway's LAN broadcast (docs/PROTOCOL.md §17.6). Not listed, not
    /// counted, never removed. An invalid room name is refused.
    pub fn attach_listener(&mut self, h: ConnectionHandle, room: &str) -> Result<(), String> {
        let room = udpchat_chat::names::room_name(room)?;
        self.rooms.entry(room).or_insert_with(|| Room::new(0)).listeners.insert(h);
        Ok(())
    }

    /// The session's peer moved to `addr` (the transport's Migrated
    /// event): bans and the per-address limit follow it. A session that
    /// moves to a banned address is closed as one connecting from there
    /// would be.
    pub fn migrated(&mut self, clock: Clock, h: ConnectionHandle, addr: SocketAddr, out: &mut impl Outlet) {
        let Some(session) = self.sessions.get(&h) else { return };
        let old = session.addr;
        self.sessions.migrate(h, addr);
        if let Some(nick) = self.sessions.get(&h).and_then(|s| s.nick.clone()) {
            self.log(clock, format!("-- {nick} moved from {old} to {addr}"));
        }
        if self.banned_ips.contains_key(&addr.ip()) && !self.sessions.get(&h).is_some_and(|s| s.gone) {
            let why = "you are banned from this server";
            self.leave_server(clock, h, NoticeKind::Kick, why, out);
            out.close(h, close::BANNED, why);
        }
    }

    /// The transport session ended (timeout, close, or after our close).
    pub fn closed(&mut self, clock: Clock, h: ConnectionHandle, reason: &CloseReason, out: &mut impl Outlet) {
        let Some(session) = self.sessions.get(&h) else { return };
        if !session.gone {
            let (kind, text) = match reason {
                CloseReason::TimedOut => (NoticeKind::Timeout, "timed out".to_owned()),
                CloseReason::Peer { reason, .. } => (NoticeKind::Quit, clean_reason(reason)),
                other => (NoticeKind::Quit, other.to_string()),
            };
            self.leave_server(clock, h, kind, &text, out);
        }
        self.sessions.remove(h);
        self.holding.remove(&h);
    }

    /// Removes a logged-in session from its rooms and the nickname table,
    /// telling the rooms why. The session stays known until `closed`.
    pub(crate) fn leave_server(
        &mut self,
        clock: Clock,
        h: ConnectionHandle,
        kind: NoticeKind,
        text: &str,
        out: &mut impl Outlet,
    ) {
        let Some(session) = self.sessions.get_mut(&h) else { return };
        session.gone = true;
        let Some(nick) = session.nick.take() else { return };
        let rooms = std::mem::take(&mut session.rooms);
        let folded = udpchat_chat::names::fold(&nick);
        self.sessions.nicks.remove(&folded);
        self.release_nick(folded);
        for room in &rooms {
            if let Some(r) = self.rooms.get_mut(room) {
                r.remove_member(h);
            }
        }
        let what = if kind == NoticeKind::Timeout { "timed out" } else { "left" };
        tracing::info!(target: "udpchat::session", %nick, ?kind, reason = text, "logout");
        let detail = if text.is_empty() { String::new() } else { format!(" ({text})") };
        self.log(clock, format!("-- {nick} {what}{detail}"));
        let notice =
            ServerMsg::Notice { room: String::new(), kind, nick, text: text.to_owned(), time_ms: clock.unix_ms };
        self.notify_after_lines(rooms, notice, out);
    }

    /// Sends a notice to `rooms` once every line accepted before it has
    /// been delivered: a line then QUIT (or /part, or a kick) reaches the
    /// room before the notice, though lines wait for their group commit
    /// and notices do not need one.
    pub(crate) fn notify_after_lines(&mut self, rooms: BTreeSet<String>, msg: ServerMsg, out: &mut impl Outlet) {
        let notice = storage::LaterNotice { rooms, msg };
        if self.clustered() {
            // After the member's lines in the stream, so on every node.
            self.publish_notice(notice);
            return;
        }
        self.notice_in_order(notice, out);
    }

    /// Sends a notice once the lines waiting for the local store have
    /// been delivered, or now if none are.
    pub(crate) fn notice_in_order(&mut self, notice: storage::LaterNotice, out: &mut impl Outlet) {
        if let Some(now) = self.store.notice_after_lines(notice) {
            self.broadcast_rooms(&now.rooms, &now.msg, None, out);
        }
    }

    /// Sends a notice once to every member of any of `rooms` (a member of
    /// two rooms gets it once), except `skip`. Notices are not stored: a
    /// member whose queue is full misses them (and catches up on lines
    /// later).
    pub(crate) fn broadcast_rooms(
        &mut self,
        rooms: &BTreeSet<String>,
        msg: &ServerMsg,
        skip: Option<ConnectionHandle>,
        out: &mut impl Outlet,
    ) {
        let bytes = msg.to_bytes();
        let mut seen = BTreeSet::new();
        for room in rooms {
            let Some(r) = self.rooms.get_mut(room) else { continue };
            let mut behind = Vec::new();
            for &m in &r.members {
                if Some(m) != skip
                    && seen.insert(m)
                    && r.hears(m, Traffic::Notice)
                    && out.send(m, &bytes) == Err(SendError::Blocked)
                {
                    behind.push(m);
                }
            }
            for m in behind {
                r.fall_behind(m);
            }
        }
    }

    /// Sends `msg` to every live member of `room` except `skip`, encoded
    /// once however many members there are.
    pub(crate) fn broadcast(
        &mut self,
        room: &str,
        msg: &ServerMsg,
        traffic: Traffic,
        skip: Option<ConnectionHandle>,
        out: &mut impl Outlet,
    ) {
        if let Some(r) = self.rooms.get_mut(room) {
            let sent = r.broadcast(&msg.to_bytes(), traffic, skip, out);
            if traffic == Traffic::Line {
                self.stats.deliveries += sent as u64;
            }
        }
    }

    /// A reply to one session. It may use the queue's reserve; only a
    /// session that reads nothing at all for long loses replies (its room
    /// lines still come back through its lag cursor).
    pub(crate) fn reply(&mut self, h: ConnectionHandle, msg: &ServerMsg, out: &mut impl Outlet) {
        let _ = out.send_reply(h, &msg.to_bytes());
    }

    /// A commit completed: its lines go out in the order they were
    /// accepted (console, room, acknowledgement), then its private
    /// messages.
    fn deliver_batch(&mut self, clock: Clock, mut batch: Batch, out: &mut impl Outlet) {
        let notices = std::mem::take(&mut batch.notices);
        self.deliver_stored(clock, batch, out);
        for notice in notices {
            self.broadcast_rooms(&notice.rooms, &notice.msg, None, out);
        }
    }

    fn deliver_stored(&mut self, clock: Clock, batch: Batch, out: &mut impl Outlet) {
        for pending in batch.lines {
            let skip = pending.waiter.map(|w| w.session).or(pending.skip);
            self.deliver(clock, pending.line, pending.waiter, skip, out);
        }
        for pending in batch.privates {
            // Fed by the cluster: delivered when it came (`clustered.rs`).
            let (p, Some(waiter)) = (pending.private, pending.waiter) else { continue };
            let msg = ServerMsg::Private {
                id: waiter.id,
                seq: p.id,
                from: p.from,
                to: p.to,
                text: p.text,
                time_ms: p.time_ms,
                history: false,
            };
            // The account holder may be online under another nickname.
            let target =
                self.sessions.iter().find(|(_, s)| s.account.as_deref() == Some(&p.recipient)).map(|(h, _)| *h);
            if let Some(target) = target {
                self.reply(target, &msg, out);
            }
            self.reply(waiter.session, &ServerMsg::Ack { id: waiter.id, room: String::new(), seq: p.id }, out);
        }
    }

    /// A commit failed (a full disk): nothing of it is delivered, each
    /// sender is told its line was not accepted, and the numbers the batch
    /// took are given out again, to the lines accepted since (still
    /// pending, told to nobody) and then to new ones. The server carries
    /// on.
    fn refuse_batch(&mut self, clock: Clock, mut batch: Batch, e: &StoreError, out: &mut impl Outlet) {
        // The notices still go: what they announce did happen.
        for notice in std::mem::take(&mut batch.notices) {
            self.broadcast_rooms(&notice.rooms, &notice.msg, None, out);
        }
        let count = batch.lines.len() + batch.privates.len();
        tracing::error!(target: "udpchat::store", error = %e, lines = count, "store commit failed");
        self.announce(clock, format!("!! could not store {count} line(s): {e}"));
        // Per room, the next number to give: the first one the batch took.
        let mut renumber: BTreeMap<String, u64> = BTreeMap::new();
        for pending in &batch.lines {
            let first = renumber.entry(pending.line.room.clone()).or_insert(pending.line.seq);
            *first = (*first).min(pending.line.seq);
        }
        for line in self.store.pending_lines_mut() {
            if let Some(next) = renumber.get_mut(&line.room) {
                line.seq = *next;
                *next += 1;
            }
        }
        for (room, next) in renumber {
            if let Some(r) = self.rooms.get_mut(&room) {
                r.next_seq = next;
            }
        }
        for w in batch.lines.iter().filter_map(|p| p.waiter).chain(batch.privates.iter().filter_map(|p| p.waiter)) {
            self.origins.failed(w.origin, w.id);
        }
        let text = format!("not delivered: {e}");
        let waiters = batch.lines.iter().filter_map(|p| p.waiter).chain(batch.privates.iter().filter_map(|p| p.waiter));
        for w in waiters {
            let msg = ServerMsg::Error { id: w.id, code: ErrorCode::StorageFailed, text: text.clone() };
            self.reply(w.session, &msg, out);
        }
    }

    /// A stored line goes out: console, room, acknowledgement.
    fn deliver(
        &mut self,
        clock: Clock,
        line: Line,
        waiter: Option<storage::Waiter>,
        skip: Option<ConnectionHandle>,
        out: &mut impl Outlet,
    ) {
        if self.settings.console_log {
            let shown = console::show_line(&line);
            self.log(clock, shown);
        }
        let (room, seq) = (line.room.clone(), line.seq);
        // Metadata only; the text is logged at trace level, when asked.
        tracing::debug!(target: "udpchat::line", %room, seq, from = %line.from, bytes = line.text.len(), "line");
        tracing::trace!(target: "udpchat::line", %room, seq, text = %line.text, "line text");
        let msg = ServerMsg::Line(Line { history: false, ..line });
        self.broadcast(&room, &msg, Traffic::Line, skip, out);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.head = seq;
        }
        if let Some(w) = waiter {
            self.reply(w.session, &ServerMsg::Ack { id: w.id, room, seq }, out);
        }
        self.cluster_delivered(seq, out);
    }

    /// Closes sessions that have not logged in within the limit, and
    /// applies retention to one room. Call it about once a second.
    pub fn tick(&mut self, clock: Clock, out: &mut impl Outlet) {
        let limit = Duration::from_secs(self.settings.login_timeout_secs);
        let late: Vec<_> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.nick.is_none() && !s.gone && clock.now.saturating_duration_since(s.connected_at) > limit)
            .map(|(h, _)| *h)
            .collect();
        for h in late {
            if let Some(s) = self.sessions.get_mut(&h) {
                s.gone = true;
            }
            out.close(h, close::LOGIN_TIMEOUT, "no login in time");
        }
        self.expire_bans(clock);
        self.expire_presence(clock);
        self.prune_step(clock);
    }

    /// Tells everyone the server is going away and closes every session.
    /// The driver first stores and delivers the current batch: it calls
    /// [`ChatServer::commit`] and feeds completions while
    /// [`ChatServer::storing`] says so.
    pub fn shutdown(&mut self, clock: Clock, out: &mut impl Outlet) {
        let notice = ServerMsg::Notice {
            room: String::new(),
            kind: NoticeKind::Server,
            nick: String::new(),
            text: "server shutting down".into(),
            time_ms: clock.unix_ms,
        };
        let bytes = notice.to_bytes();
        let all: Vec<_> = self.sessions.keys().copied().collect();
        for h in all {
            let _ = out.send(h, &bytes);
            if let Some(s) = self.sessions.get_mut(&h) {
                s.gone = true;
            }
            out.close(h, udpchat_proto::code::SHUTTING_DOWN, "server shutting down");
        }
    }
}
