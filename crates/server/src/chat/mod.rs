//! The chat server's state machine: sessions, nicknames, rooms, bans and
//! the console feed. Like the protocol crate it does no network I/O: the
//! driver hands it session events and the time, and it writes replies
//! through an [`Outlet`] (the protocol endpoint in production).
//!
//! History: every room line is numbered when accepted, stored with the
//! other lines of the same batch in one transaction ([`ChatServer::commit`],
//! group commit), and only then delivered and acknowledged. A member that
//! cannot take more (its bounded queue is full), or that comes back after
//! a disconnect, gets a per-room cursor and is fed from the store until it
//! reaches the newest line, then goes back to live delivery
//! (`history.rs`). Requests are in `requests.rs`, login and accounts in
//! `login.rs`, the operator console in `console.rs`.

mod console;
mod history;
mod login;
mod requests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use udpchat_chat::{ErrorCode, Line, NoticeKind, ServerMsg, close};
use udpchat_proto::{CloseReason, ConnectionHandle, SendError};

use crate::limits::{LoginFailures, TokenBucket};
use crate::settings::Settings;
use crate::store::{Store, StoreError, StoredPrivate};

pub use console::format_time;
pub use login::{Verification, hash_password, verify_password};

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

pub(crate) struct Session {
    pub(crate) addr: SocketAddr,
    /// Display form; `None` until logged in.
    pub(crate) nick: Option<String>,
    /// The folded account name, if logged in to an account.
    pub(crate) account: Option<String>,
    pub(crate) operator: bool,
    pub(crate) rooms: BTreeSet<String>,
    pub(crate) bucket: TokenBucket,
    pub(crate) login_failures: u32,
    /// A login waiting for its password check.
    pub(crate) verifying: Option<login::PendingLogin>,
    pub(crate) connected_at: Instant,
    /// Set once the session has said goodbye (QUIT, kick), so its
    /// transport close does not announce it a second time.
    pub(crate) gone: bool,
}

pub(crate) struct Room {
    pub(crate) topic: String,
    pub(crate) members: BTreeSet<ConnectionHandle>,
    /// Members being fed from the store, with the last sequence number
    /// they have been sent. Live lines skip them.
    pub(crate) lagging: BTreeMap<ConnectionHandle, u64>,
    /// The next sequence number to hand out.
    pub(crate) next_seq: u64,
    /// The newest line that is stored and delivered.
    pub(crate) head: u64,
}

impl Room {
    fn new(head: u64) -> Self {
        Self { topic: String::new(), members: BTreeSet::new(), lagging: BTreeMap::new(), next_seq: head + 1, head }
    }
}

/// A line or private message accepted but not yet stored.
pub(crate) struct PendingPrivate {
    pub(crate) sender: ConnectionHandle,
    pub(crate) id: u64,
}

pub struct ChatServer {
    pub(crate) settings: Settings,
    pub(crate) store: Box<dyn Store>,
    pub(crate) sessions: HashMap<ConnectionHandle, Session>,
    /// Folded nickname to session.
    pub(crate) nicks: HashMap<String, ConnectionHandle>,
    pub(crate) rooms: BTreeMap<String, Room>,
    per_address: HashMap<IpAddr, usize>,
    pub(crate) failures: LoginFailures,
    pub(crate) banned_nicks: HashSet<String>,
    pub(crate) banned_ips: HashSet<IpAddr>,
    /// Lines for the server console, drained by the driver.
    console: Vec<String>,
    /// The room the operator's typed lines go to.
    pub(crate) console_room: String,
    /// Accepted lines waiting for the next commit, with who sent them.
    pub(crate) pending_lines: Vec<Line>,
    pub(crate) pending_senders: Vec<Option<(ConnectionHandle, u64)>>,
    pub(crate) pending_privates: Vec<StoredPrivate>,
    pub(crate) pending_private_senders: Vec<PendingPrivate>,
    /// Password checks for the driver to run off the event loop.
    pub(crate) verifications: Vec<Verification>,
    pub(crate) verifying: usize,
    /// Rooms pruned in turn, one batch per call.
    prune_cursor: usize,
    /// The time of the call being handled (every entry point sets it).
    pub(crate) clock: Clock,
}

impl ChatServer {
    /// Builds the server on `store`, continuing every room's numbering
    /// where the store left off.
    pub fn new(settings: Settings, store: Box<dyn Store>) -> Result<Self, StoreError> {
        let mut rooms = BTreeMap::new();
        for (room, head) in store.room_heads()? {
            rooms.insert(room, Room::new(head));
        }
        rooms.entry(LOBBY.to_owned()).or_insert_with(|| Room::new(0));
        Ok(Self {
            settings,
            store,
            sessions: HashMap::new(),
            nicks: HashMap::new(),
            rooms,
            per_address: HashMap::new(),
            failures: LoginFailures::default(),
            banned_nicks: HashSet::new(),
            banned_ips: HashSet::new(),
            console: Vec::new(),
            console_room: LOBBY.to_owned(),
            pending_lines: Vec::new(),
            pending_senders: Vec::new(),
            pending_privates: Vec::new(),
            pending_private_senders: Vec::new(),
            verifications: Vec::new(),
            verifying: 0,
            prune_cursor: 0,
            clock: Clock { now: Instant::now(), unix_ms: 0 },
        })
    }

    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Console lines produced since the last call.
    pub fn take_console(&mut self) -> Vec<String> {
        std::mem::take(&mut self.console)
    }

    pub(crate) fn log(&mut self, clock: Clock, text: String) {
        if self.settings.console_log {
            self.console.push(format!("[{}] {text}", format_time(clock.unix_ms)));
        }
    }

    /// Always shown, whatever `console_log` says.
    pub(crate) fn announce(&mut self, clock: Clock, text: String) {
        self.console.push(format!("[{}] {text}", format_time(clock.unix_ms)));
    }

    /// A session passed the handshake.
    pub fn connected(&mut self, clock: Clock, h: ConnectionHandle, addr: SocketAddr, out: &mut impl Outlet) {
        self.clock = clock;
        if self.banned_ips.contains(&addr.ip()) {
            out.close(h, close::BANNED, "you are banned from this server");
            return;
        }
        let count = self.per_address.entry(addr.ip()).or_insert(0);
        if *count >= self.settings.max_sessions_per_address {
            out.close(h, close::TOO_MANY_SESSIONS, "too many sessions from your address");
            return;
        }
        *count += 1;
        let bucket = TokenBucket::new(self.settings.rate_burst, self.settings.rate_per_second, clock.now);
        let session = Session {
            addr,
            nick: None,
            account: None,
            operator: false,
            rooms: BTreeSet::new(),
            bucket,
            login_failures: 0,
            verifying: None,
            connected_at: clock.now,
            gone: false,
        };
        self.sessions.insert(h, session);
    }

    /// The transport session ended (timeout, close, or after our close).
    pub fn closed(&mut self, clock: Clock, h: ConnectionHandle, reason: &CloseReason, out: &mut impl Outlet) {
        self.clock = clock;
        let Some(session) = self.sessions.get(&h) else { return };
        if !session.gone {
            let (kind, text) = match reason {
                CloseReason::TimedOut => (NoticeKind::Timeout, "timed out".to_owned()),
                CloseReason::Peer { reason, .. } => (NoticeKind::Quit, clean_reason(reason)),
                other => (NoticeKind::Quit, other.to_string()),
            };
            self.leave_server(clock, h, kind, &text, out);
        }
        if let Some(session) = self.sessions.remove(&h)
            && let Some(count) = self.per_address.get_mut(&session.addr.ip())
        {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&session.addr.ip());
            }
        }
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
        self.nicks.remove(&udpchat_chat::names::fold(&nick));
        for room in &rooms {
            if let Some(r) = self.rooms.get_mut(room) {
                r.members.remove(&h);
                r.lagging.remove(&h);
            }
        }
        let what = if kind == NoticeKind::Timeout { "timed out" } else { "left" };
        let detail = if text.is_empty() { String::new() } else { format!(" ({text})") };
        self.log(clock, format!("-- {nick} {what}{detail}"));
        let notice =
            ServerMsg::Notice { room: String::new(), kind, nick, text: text.to_owned(), time_ms: clock.unix_ms };
        self.broadcast_rooms(&rooms, &notice, None, out);
    }

    /// Sends `msg` once to every member of any of `rooms` (a member of two
    /// rooms gets it once), except `skip`. Notices are not stored: a member
    /// whose queue is full misses them (and catches up on lines later).
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
            for &m in &r.members {
                if Some(m) != skip
                    && seen.insert(m)
                    && !r.lagging.contains_key(&m)
                    && out.send(m, &bytes) == Err(SendError::Blocked)
                {
                    r.lagging.insert(m, r.head);
                }
            }
        }
    }

    /// Sends `msg` to every live member of `room` except `skip`, encoded
    /// once however many members there are. A member whose queue is full
    /// starts lagging: it gets the room's lines from the store once it
    /// reads again, and never slows the others.
    pub(crate) fn broadcast(
        &mut self,
        room: &str,
        msg: &ServerMsg,
        skip: Option<ConnectionHandle>,
        out: &mut impl Outlet,
    ) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        let bytes = msg.to_bytes();
        let check_lag = !r.lagging.is_empty();
        for &m in &r.members {
            if Some(m) == skip || (check_lag && r.lagging.contains_key(&m)) {
                continue;
            }
            if out.send(m, &bytes) == Err(SendError::Blocked) {
                r.lagging.insert(m, r.head);
            }
        }
    }

    /// A reply to one session. It may use the queue's reserve; only a
    /// session that reads nothing at all for long loses replies (its room
    /// lines still come back through its lag cursor).
    pub(crate) fn reply(&mut self, h: ConnectionHandle, msg: &ServerMsg, out: &mut impl Outlet) {
        let _ = out.send_reply(h, &msg.to_bytes());
    }

    /// Stores everything accepted since the last commit in one transaction,
    /// then delivers and acknowledges it. Call once per batch of events:
    /// the batch is what makes group commit cheap. If storing fails (a
    /// full disk), nothing of the batch is delivered and each sender is
    /// told its line was not accepted; the server carries on.
    pub fn commit(&mut self, clock: Clock, out: &mut impl Outlet) {
        self.clock = clock;
        if self.pending_lines.is_empty() && self.pending_privates.is_empty() {
            return;
        }
        let lines = std::mem::take(&mut self.pending_lines);
        let senders = std::mem::take(&mut self.pending_senders);
        let mut privates = std::mem::take(&mut self.pending_privates);
        let private_senders = std::mem::take(&mut self.pending_private_senders);
        if let Err(e) = self.store.append(&lines, &mut privates) {
            self.announce(clock, format!("!! could not store {} line(s): {e}", lines.len() + privates.len()));
            let text = format!("not delivered: {e}");
            for line in &lines {
                if let Some(r) = self.rooms.get_mut(&line.room) {
                    r.next_seq = r.next_seq.min(line.seq);
                }
            }
            let ids = senders.iter().flatten().copied().chain(private_senders.iter().map(|p| (p.sender, p.id)));
            for (h, id) in ids.collect::<Vec<_>>() {
                self.reply(h, &ServerMsg::Error { id, code: ErrorCode::StorageFailed, text: text.clone() }, out);
            }
            return;
        }
        for (line, sender) in lines.into_iter().zip(senders) {
            self.deliver(clock, line, sender, out);
        }
        for (p, sender) in privates.into_iter().zip(private_senders) {
            let msg = ServerMsg::Private {
                id: sender.id,
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
            self.reply(sender.sender, &ServerMsg::Ack { id: sender.id, room: String::new(), seq: p.id }, out);
        }
    }

    /// A stored line goes out: console, room, acknowledgement.
    fn deliver(&mut self, clock: Clock, line: Line, sender: Option<(ConnectionHandle, u64)>, out: &mut impl Outlet) {
        if self.settings.console_log {
            let shown = console::show_line(&line);
            self.log(clock, shown);
        }
        let (room, seq) = (line.room.clone(), line.seq);
        let msg = ServerMsg::Line(Line { history: false, ..line });
        self.broadcast(&room, &msg, sender.map(|(h, _)| h), out);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.head = seq;
        }
        if let Some((h, id)) = sender {
            self.reply(h, &ServerMsg::Ack { id, room, seq }, out);
        }
    }

    /// Closes sessions that have not logged in within the limit, and
    /// applies retention to one room. Call it about once a second.
    pub fn tick(&mut self, clock: Clock, out: &mut impl Outlet) {
        self.clock = clock;
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
        self.prune_step(clock);
    }

    /// Tells everyone the server is going away and closes every session.
    pub fn shutdown(&mut self, clock: Clock, out: &mut impl Outlet) {
        self.clock = clock;
        self.commit(clock, out);
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
