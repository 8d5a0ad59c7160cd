//! The chat server's state machine: sessions, nicknames, rooms, bans and
//! the console feed. Like the protocol crate it does no I/O: the driver
//! hands it session events and the time, and it writes replies through an
//! [`Outlet`] (the protocol endpoint in production, a recorder in tests).
//! Request handlers live in `requests.rs`, the operator console in
//! `console.rs`.

mod console;
mod requests;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use udpchat_proto::chat::{NoticeKind, ServerMsg, close};
use udpchat_proto::{CloseReason, ConnectionHandle, SendError};

use crate::limits::{LoginFailures, TokenBucket};
use crate::settings::Settings;

pub use console::format_time;

/// The lobby every session starts in; it always exists.
pub const LOBBY: &str = "lobby";

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
    pub(crate) rooms: BTreeSet<String>,
    pub(crate) bucket: TokenBucket,
    pub(crate) login_failures: u32,
    pub(crate) connected_at: Instant,
    /// Set once the session has said goodbye (QUIT, kick, too slow), so its
    /// transport close does not announce it a second time.
    pub(crate) gone: bool,
}

pub(crate) struct Room {
    pub(crate) topic: String,
    pub(crate) members: BTreeSet<ConnectionHandle>,
    pub(crate) next_seq: u64,
}

impl Room {
    fn new() -> Self {
        Self { topic: String::new(), members: BTreeSet::new(), next_seq: 1 }
    }
}

pub struct ChatServer {
    pub(crate) settings: Settings,
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
    /// Sessions whose queue overflowed; dropped after the current fan-out.
    slow: Vec<ConnectionHandle>,
    /// The time of the call being handled (every entry point sets it).
    pub(crate) clock: Clock,
}

impl ChatServer {
    pub fn new(settings: Settings) -> Self {
        let mut rooms = BTreeMap::new();
        rooms.insert(LOBBY.to_owned(), Room::new());
        Self {
            settings,
            sessions: HashMap::new(),
            nicks: HashMap::new(),
            rooms,
            per_address: HashMap::new(),
            failures: LoginFailures::default(),
            banned_nicks: HashSet::new(),
            banned_ips: HashSet::new(),
            console: Vec::new(),
            console_room: LOBBY.to_owned(),
            slow: Vec::new(),
            clock: Clock { now: Instant::now(), unix_ms: 0 },
        }
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

    /// A session passed the handshake.
    pub fn connected(&mut self, clock: Clock, h: ConnectionHandle, addr: SocketAddr, out: &mut impl Outlet) {
        self.clock = clock;
        let count = self.per_address.entry(addr.ip()).or_insert(0);
        if *count >= self.settings.max_sessions_per_address {
            out.close(h, close::TOO_MANY_SESSIONS, "too many sessions from your address");
            return;
        }
        if self.banned_ips.contains(&addr.ip()) {
            out.close(h, close::BANNED, "you are banned from this server");
            return;
        }
        *count += 1;
        let bucket = TokenBucket::new(self.settings.rate_burst, self.settings.rate_per_second, clock.now);
        self.sessions.insert(
            h,
            Session {
                addr,
                nick: None,
                rooms: BTreeSet::new(),
                bucket,
                login_failures: 0,
                connected_at: clock.now,
                gone: false,
            },
        );
    }

    /// The transport session ended (timeout, close, or after our close).
    pub fn closed(&mut self, clock: Clock, h: ConnectionHandle, reason: &CloseReason, out: &mut impl Outlet) {
        self.clock = clock;
        let Some(session) = self.sessions.get(&h) else { return };
        if !session.gone {
            let (kind, text) = match reason {
                CloseReason::TimedOut => (NoticeKind::Timeout, "timed out".to_owned()),
                CloseReason::Peer { reason, .. } => (NoticeKind::Quit, reason.clone()),
                other => (NoticeKind::Quit, other.to_string()),
            };
            self.leave_server(clock, h, kind, &text, out);
        }
        self.forget(h);
    }

    fn forget(&mut self, h: ConnectionHandle) {
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
        self.nicks.remove(&crate::names::fold(&nick));
        for room in &rooms {
            if let Some(r) = self.rooms.get_mut(room) {
                r.members.remove(&h);
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
    /// rooms gets it once), except `skip`.
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
            let Some(r) = self.rooms.get(room) else { continue };
            for &m in &r.members {
                if Some(m) != skip && seen.insert(m) && out.send(m, &bytes) == Err(SendError::Blocked) {
                    self.slow.push(m);
                }
            }
        }
        self.drop_slow(out);
    }

    /// Sends `msg` to every member of `room` except `skip`. The message is
    /// encoded once, however many members there are.
    pub(crate) fn broadcast(
        &mut self,
        room: &str,
        msg: &ServerMsg,
        skip: Option<ConnectionHandle>,
        out: &mut impl Outlet,
    ) {
        let Some(r) = self.rooms.get(room) else { return };
        let bytes = msg.to_bytes();
        for &m in &r.members {
            if Some(m) != skip && out.send(m, &bytes) == Err(SendError::Blocked) {
                self.slow.push(m);
            }
        }
        self.drop_slow(out);
    }

    /// Only a full queue makes a session slow; other send errors (it is
    /// already closing) need nothing, and replies are kept under the
    /// message size limit by construction (see [`MAX_LISTED`]).
    pub(crate) fn reply(&mut self, h: ConnectionHandle, msg: &ServerMsg, out: &mut impl Outlet) {
        if out.send(h, &msg.to_bytes()) == Err(SendError::Blocked) {
            self.slow.push(h);
            self.drop_slow(out);
        }
    }

    /// Drops sessions that could not keep up, so they never slow the rest:
    /// their queue is bounded and they are told why they were cut off.
    fn drop_slow(&mut self, out: &mut impl Outlet) {
        while let Some(h) = self.slow.pop() {
            if self.sessions.get(&h).is_none_or(|s| s.gone) {
                continue;
            }
            let clock = self.clock;
            self.leave_server(clock, h, NoticeKind::Quit, "dropped: too slow to keep up", out);
            out.close(h, close::TOO_SLOW, "your client did not keep up with the room");
        }
    }

    /// Closes sessions that have not logged in within the limit. Call it
    /// about once a second.
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
    }

    /// Tells everyone the server is going away and closes every session.
    pub fn shutdown(&mut self, clock: Clock, out: &mut impl Outlet) {
        self.clock = clock;
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
