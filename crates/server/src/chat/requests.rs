//! Handling what clients ask for once logged in: room lines, joins and
//! parts, nickname changes, private messages, topics, history pages,
//! operator actions and goodbyes. Every refusal is an explicit Error with a
//! reason; nothing a client sends can end another session or the server.
//!
//! A nickname change and a private message need an account lookup first:
//! it is a store read (`storage.rs`), and the request is finished in
//! [`ChatServer::account_read`] when it completes, checking again what may
//! have changed meanwhile.

use std::collections::BTreeSet;

use udpchat_chat::{ClientMsg, ErrorCode, LineKind, MsgErrorKind, NoticeKind, RoomInfo, ServerMsg, close};
use udpchat_proto::ConnectionHandle;

use super::pacing::Admit;
use super::storage::{AccountUse, PendingLine, PendingPrivate, Waiter};
use super::{ChatServer, Clock, LOBBY, Outlet};
use crate::store::{Account, Line, StoreError, StoredPrivate};
use udpchat_chat::names::{check_line, check_nick, fold, room_name};

/// A room line before it is numbered.
pub(crate) struct NewLine {
    pub(crate) from: String,
    pub(crate) text: String,
    pub(crate) kind: LineKind,
}

/// Why a line is refused when the store is far behind.
const BACKLOG: &str = "not delivered: the server's history database is too far behind; try again in a moment";
/// Why a lookup is refused when too many store reads are in flight.
const BUSY: &str = "the server is busy; try again in a moment";

fn error(id: u64, code: ErrorCode, text: impl Into<String>) -> ServerMsg {
    ServerMsg::Error { id, code, text: text.into() }
}

impl ChatServer {
    /// A message from a session.
    pub fn message(&mut self, clock: Clock, h: ConnectionHandle, bytes: &[u8], out: &mut impl Outlet) {
        let Some(session) = self.sessions.get_mut(&h) else { return };
        if session.gone {
            return;
        }
        let logged_in = session.nick.is_some();
        let msg = match ClientMsg::decode(bytes) {
            Ok(msg) => msg,
            Err(e) => {
                let (code, text) = match e.kind {
                    MsgErrorKind::InvalidUtf8 => (ErrorCode::InvalidUtf8, "text is not valid UTF-8"),
                    _ => (ErrorCode::InvalidRequest, "malformed or unknown request"),
                };
                self.reply(h, &error(e.id, code, text), out);
                return;
            }
        };
        match msg {
            ClientMsg::Login { nick, server_password, account_password, resume, private_since, origin } => {
                if !logged_in {
                    session.origin = origin;
                }
                self.login(clock, h, (nick, server_password, account_password, resume, private_since), out);
            }
            other if !logged_in => {
                let id = match other {
                    ClientMsg::Say { id, .. } | ClientMsg::Private { id, .. } => id,
                    _ => 0,
                };
                self.reply(h, &error(id, ErrorCode::InvalidRequest, "log in first"), out);
            }
            other => {
                // Everything a logged-in session asks for waits its turn
                // (`pacing.rs`): requests over the rate are held, not
                // refused. QUIT costs no token but queues behind the rest.
                let costs = !matches!(other, ClientMsg::Quit { .. });
                let session = self.sessions.get_mut(&h).expect("checked above");
                match session.pacing.admit(other, bytes.len(), costs, clock.now) {
                    Admit::Now(msg) => self.handle(clock, h, msg, out),
                    Admit::Held => {}
                    Admit::Overflow => {
                        let why = "flooding: the client ignored flow control";
                        self.leave_server(clock, h, NoticeKind::Quit, why, out);
                        out.close(h, close::TOO_SLOW, why);
                    }
                }
                self.update_reading(h, out);
            }
        }
    }

    /// A request whose turn has come.
    pub(crate) fn handle(&mut self, clock: Clock, h: ConnectionHandle, msg: ClientMsg, out: &mut impl Outlet) {
        match msg {
            ClientMsg::Quit { reason } => {
                let reason = super::clean_reason(&reason);
                self.leave_server(clock, h, NoticeKind::Quit, &reason, out);
                out.close(h, close::QUIT, "goodbye");
            }
            other => self.request(clock, h, other, out),
        }
    }

    fn request(&mut self, clock: Clock, h: ConnectionHandle, msg: ClientMsg, out: &mut impl Outlet) {
        match msg {
            ClientMsg::Say { id, room, text, action } => self.say(clock, h, id, &room, text, action, out),
            ClientMsg::Join { room } => match room_name(&room) {
                Ok(room) => self.enter_room(clock, h, &room, None, out),
                Err(why) => self.reply(h, &error(0, ErrorCode::RoomInvalid, why), out),
            },
            ClientMsg::Part { room, reason } => self.part(clock, h, &room, &reason, out),
            ClientMsg::List => {
                // On a cluster, members on the other nodes count too.
                let remote = self.presence.counts();
                let rooms = self
                    .rooms
                    .iter()
                    .map(|(name, r)| (name, r, r.members.len() + remote.get(name.as_str()).copied().unwrap_or(0)))
                    .filter(|(name, _, members)| *members > 0 || name.as_str() == LOBBY)
                    .map(|(name, r, members)| RoomInfo {
                        name: name.clone(),
                        members: members as u64,
                        topic: r.topic.clone(),
                    })
                    .take(super::MAX_LISTED)
                    .collect();
                self.reply(h, &ServerMsg::RoomList { rooms }, out);
            }
            ClientMsg::Who { room } => {
                let name = room_name(&room).unwrap_or_default();
                let nicks = self.room_members(&name);
                self.reply(h, &ServerMsg::Members { room: name, nicks }, out);
            }
            ClientMsg::Nick { nick } => self.change_nick(h, nick, out),
            ClientMsg::Private { id, to, text } => self.private(clock, h, id, &to, text, out),
            ClientMsg::Topic { room, topic } => self.topic(clock, h, &room, topic, out),
            ClientMsg::Kick { room, nick, reason } => {
                if self.is_operator(h) {
                    let by = self.sessions.nick_of(h);
                    self.kick_from_room(clock, (&by, Some(h)), &room, &nick, &reason, out);
                } else {
                    self.reply(h, &error(0, ErrorCode::NotPermitted, "only operators can kick"), out);
                }
            }
            ClientMsg::Ban { target, reason, expires_secs } => {
                if self.is_operator(h) {
                    let by = self.sessions.nick_of(h);
                    self.ban(clock, (&by, Some(h)), &target, &reason, expires_secs, out);
                } else {
                    self.reply(h, &error(0, ErrorCode::NotPermitted, "only operators can ban"), out);
                }
            }
            ClientMsg::History { room, before, limit } => {
                let name = room_name(&room).unwrap_or_default();
                if !self.sessions.get(&h).is_some_and(|s| s.rooms.contains(&name)) {
                    self.reply(h, &error(0, ErrorCode::NotInRoom, format!("join {room} to read its history")), out);
                    return;
                }
                let limit = (limit as usize).min(self.settings.history_page_max);
                self.read_history_page(h, &name, before, limit);
            }
            ClientMsg::Unban { target } => {
                if self.is_operator(h) {
                    let by = self.sessions.nick_of(h);
                    self.unban(clock, (&by, Some(h)), &target, out);
                } else {
                    self.reply(h, &error(0, ErrorCode::NotPermitted, "only operators can unban"), out);
                }
            }
            ClientMsg::Login { .. } | ClientMsg::Quit { .. } => {}
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn say(
        &mut self,
        clock: Clock,
        h: ConnectionHandle,
        id: u64,
        room: &str,
        text: String,
        action: bool,
        out: &mut impl Outlet,
    ) {
        let name = room_name(room).unwrap_or_default();
        let origin = self.sessions.get(&h).map_or(0, |s| s.origin);
        if self.resent(h, origin, id, &name, out) {
            return;
        }
        if let Err((code, why)) = check_line(&text, self.settings.max_line_bytes) {
            self.reply(h, &error(id, code, why), out);
            return;
        }
        let member = self.sessions.get(&h).is_some_and(|s| s.rooms.contains(&name));
        if !member {
            self.reply(h, &error(id, ErrorCode::NotInRoom, format!("you are not in {room}; /join it first")), out);
            return;
        }
        let kind = if action { LineKind::Action } else { LineKind::Normal };
        let line = NewLine { from: self.sessions.nick_of(h), text, kind };
        if self.post(clock, &name, line, Some(Waiter { session: h, id, origin })).is_err() {
            self.reply(h, &error(id, ErrorCode::StorageFailed, BACKLOG), out);
        } else {
            self.origins.accept(origin, id);
        }
    }

    /// Whether request `id` of `origin` was accepted before (a resend
    /// after a reconnect or a restart): it is acknowledged with seq 0,
    /// "stored earlier", and not stored again (`origins.rs`).
    fn resent(&mut self, h: ConnectionHandle, origin: u64, id: u64, room: &str, out: &mut impl Outlet) -> bool {
        if origin == 0 || id > self.origins.mark(origin) {
            return false;
        }
        self.reply(h, &ServerMsg::Ack { id, room: room.to_owned(), seq: 0 }, out);
        true
    }

    /// Numbers a line and queues it for the next commit, after which it is
    /// delivered to the room and acknowledged to its sender (if a session
    /// sent it).
    /// Fails if too many lines are waiting for the store already.
    pub(crate) fn post(
        &mut self,
        clock: Clock,
        room: &str,
        line: NewLine,
        waiter: Option<Waiter>,
    ) -> Result<(), super::storage::Backlog> {
        let NewLine { from, text, kind } = line;
        let clustered = self.clustered();
        let Some(r) = self.rooms.get_mut(room) else { return Ok(()) };
        let line =
            Line { room: room.to_owned(), seq: r.next_seq, time_ms: clock.unix_ms, from, text, kind, history: false };
        if clustered {
            // The cluster's stream numbers it (`clustered.rs`).
            self.publish_line(PendingLine { line: Line { seq: 0, ..line }, waiter, skip: None })?;
        } else {
            self.store.accept_line(PendingLine { line, waiter, skip: None })?;
            r.next_seq += 1;
        }
        self.stats.lines_accepted += 1;
        Ok(())
    }

    fn is_operator(&self, h: ConnectionHandle) -> bool {
        self.sessions.get(&h).is_some_and(|s| s.operator)
    }

    fn part(&mut self, clock: Clock, h: ConnectionHandle, room: &str, reason: &str, out: &mut impl Outlet) {
        let name = room_name(room).unwrap_or_default();
        let nick = self.sessions.nick_of(h);
        let removed = self.sessions.get_mut(&h).is_some_and(|s| s.rooms.remove(&name));
        if !removed {
            self.reply(h, &error(0, ErrorCode::NotInRoom, format!("you are not in {room}")), out);
            return;
        }
        if let Some(r) = self.rooms.get_mut(&name) {
            r.remove_member(h);
        }
        self.reply(h, &ServerMsg::Parted { room: name.clone() }, out);
        self.log(clock, format!("-- {nick} left #{name}"));
        let notice = ServerMsg::Notice {
            room: name.clone(),
            kind: NoticeKind::Part,
            nick,
            text: super::clean_reason(reason),
            time_ms: clock.unix_ms,
        };
        self.notify_after_lines(BTreeSet::from([name]), notice, out);
    }

    fn change_nick(&mut self, h: ConnectionHandle, nick: String, out: &mut impl Outlet) {
        if let Err(why) = check_nick(&nick) {
            self.reply(h, &error(0, ErrorCode::NickInvalid, why), out);
            return;
        }
        if let Err(msg) = self.nick_free_for(h, &nick) {
            self.reply(h, &msg, out);
            return;
        }
        if !self.store.read_account(fold(&nick), AccountUse::Nick { session: h, nick: nick.clone() }) {
            self.reply(h, &error(0, ErrorCode::StorageFailed, format!("cannot check {nick}: {BUSY}")), out);
        }
    }

    /// Whether `h` may take `nick`: not another session's, not banned.
    fn nick_free_for(&self, h: ConnectionHandle, nick: &str) -> Result<(), ServerMsg> {
        let key = fold(nick);
        if self.sessions.nicks.get(&key).is_some_and(|&owner| owner != h) || self.banned_nicks.contains_key(&key) {
            return Err(error(0, ErrorCode::NickTaken, format!("{nick} is not available")));
        }
        Ok(())
    }

    /// An account lookup came back: finish what it was for.
    pub(crate) fn account_read(
        &mut self,
        clock: Clock,
        result: Result<Option<Account>, StoreError>,
        then: AccountUse,
        out: &mut impl Outlet,
    ) {
        match then {
            AccountUse::Login(h) => self.login_account(clock, h, result, out),
            AccountUse::Nick { session, nick } => self.nick_checked(clock, session, nick, result, out),
            AccountUse::Private { session, id, origin, to, text, time_ms } => {
                self.private_checked(clock, Waiter { session, id, origin }, &to, text, time_ms, result, out);
            }
            AccountUse::SetRate { nick, rate } => self.rate_account_read(clock, &nick, rate, result, out),
        }
    }

    fn nick_checked(
        &mut self,
        clock: Clock,
        h: ConnectionHandle,
        nick: String,
        account: Result<Option<Account>, StoreError>,
        out: &mut impl Outlet,
    ) {
        if !self.sessions.get(&h).is_some_and(|s| s.nick.is_some() && !s.gone) {
            return;
        }
        // Taken or banned while the lookup ran?
        if let Err(msg) = self.nick_free_for(h, &nick) {
            self.reply(h, &msg, out);
            return;
        }
        let new_key = fold(&nick);
        // A registered nickname belongs to its account: only a session
        // logged in to that account may take it.
        let own_account = self.sessions.get(&h).and_then(|s| s.account.clone());
        match account {
            Ok(Some(_)) if own_account.as_deref() != Some(new_key.as_str()) => {
                let text = format!("{nick} is registered; log in with its password to use it");
                self.reply(h, &error(0, ErrorCode::NickTaken, text), out);
                return;
            }
            Err(e) => {
                self.reply(h, &error(0, ErrorCode::StorageFailed, format!("cannot check {nick}: {e}")), out);
                return;
            }
            _ => {}
        }
        if self.clustered() {
            // Held cluster-wide: claimed first (`clustered.rs`).
            if let Some(s) = self.sessions.get_mut(&h) {
                s.renaming = Some(nick);
            }
            self.claim_nick(h, new_key);
            return;
        }
        self.rename(clock, h, nick, out);
    }

    /// Gives `h` the nickname `nick`, checked free, and tells its rooms.
    pub(crate) fn rename(&mut self, clock: Clock, h: ConnectionHandle, nick: String, out: &mut impl Outlet) {
        let new_key = fold(&nick);
        let old = self.sessions.nick_of(h);
        self.sessions.nicks.remove(&fold(&old));
        // (A change of case keeps the same lease.)
        if self.clustered() && fold(&old) != new_key {
            self.release_nick(fold(&old));
        }
        self.sessions.nicks.insert(new_key, h);
        let Some(session) = self.sessions.get_mut(&h) else { return };
        session.nick = Some(nick.clone());
        let rooms = session.rooms.clone();
        self.log(clock, format!("-- {old} is now known as {nick}"));
        let notice = ServerMsg::Notice {
            room: String::new(),
            kind: NoticeKind::Nick,
            nick: old,
            text: nick,
            time_ms: clock.unix_ms,
        };
        // The session itself hears it too, even in no room.
        self.broadcast_rooms(&rooms, &notice, Some(h), out);
        self.share_notice(rooms, &notice);
        self.reply(h, &notice, out);
    }

    fn private(&mut self, clock: Clock, h: ConnectionHandle, id: u64, to: &str, text: String, out: &mut impl Outlet) {
        let origin = self.sessions.get(&h).map_or(0, |s| s.origin);
        if self.resent(h, origin, id, "", out) {
            return;
        }
        if let Err((code, why)) = check_line(&text, self.settings.max_line_bytes) {
            self.reply(h, &error(id, code, why), out);
            return;
        }
        // Messages to account holders are stored, so they reach them later
        // (and on every device) even if they are offline now.
        let then = AccountUse::Private { session: h, id, origin, to: to.to_owned(), text, time_ms: clock.unix_ms };
        if !self.store.read_account(fold(to), then) {
            self.reply(h, &error(id, ErrorCode::StorageFailed, format!("cannot look up {to}: {BUSY}")), out);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn private_checked(
        &mut self,
        clock: Clock,
        waiter: Waiter,
        to: &str,
        text: String,
        time_ms: u64,
        account: Result<Option<Account>, StoreError>,
        out: &mut impl Outlet,
    ) {
        let Waiter { session: h, id, origin } = waiter;
        let to_arg = to;
        if !self.sessions.get(&h).is_some_and(|s| s.nick.is_some() && !s.gone) {
            // Dropped unanswered: the client's resend must be stored, even
            // if later requests of its origin were accepted meanwhile.
            self.origins.failed(origin, id);
            return;
        }
        let key = fold(to);
        let account = match account {
            Ok(account) => account,
            Err(e) => {
                self.reply(h, &error(id, ErrorCode::StorageFailed, format!("cannot look up {to}: {e}")), out);
                return;
            }
        };
        let online = self.sessions.nicks.get(&key).copied();
        let from = self.sessions.nick_of(h);
        if self.clustered() {
            let to = online.map(|t| self.sessions.nick_of(t)).or(account.as_ref().map(|a| a.name.clone()));
            let recipient = account.is_some().then_some(key);
            let to = to.unwrap_or_else(|| to_arg.to_owned());
            let private = super::ClusterPrivate { from, to, recipient, text, time_ms };
            self.private_to_cluster(waiter, private, online.is_some());
            return;
        }
        match (account, online) {
            (Some(account), _) => {
                let to = online.map(|t| self.sessions.nick_of(t)).unwrap_or(account.name);
                let private = StoredPrivate { id: 0, recipient: key, from, to, text, time_ms };
                let offline = online.is_none().then(|| private.to.clone());
                if self.store.accept_private(PendingPrivate { private, waiter: Some(waiter) }).is_err() {
                    self.reply(h, &error(id, ErrorCode::StorageFailed, BACKLOG), out);
                } else {
                    self.origins.accept(origin, id);
                    if let Some(to) = offline {
                        let text = format!("{to} is offline; the message is stored and delivered when they log in");
                        self.confirm(clock, Some(h), text, out);
                    }
                }
            }
            (None, Some(target)) => {
                let to = self.sessions.nick_of(target);
                let msg = ServerMsg::Private { id, seq: 0, from, to, text, time_ms, history: false };
                self.reply(target, &msg, out);
                self.reply(h, &ServerMsg::Ack { id, room: String::new(), seq: 0 }, out);
                self.origins.accept(origin, id);
            }
            (None, None) => {
                self.reply(h, &error(id, ErrorCode::NoSuchNick, format!("nobody called {to} is online")), out);
            }
        }
    }

    fn topic(&mut self, clock: Clock, h: ConnectionHandle, room: &str, topic: Option<String>, out: &mut impl Outlet) {
        let name = room_name(room).unwrap_or_default();
        let Some(r) = self.rooms.get(&name) else {
            self.reply(h, &error(0, ErrorCode::NotInRoom, format!("there is no room {room}")), out);
            return;
        };
        let Some(topic) = topic else {
            let msg = ServerMsg::Topic { room: name, topic: r.topic.clone() };
            self.reply(h, &msg, out);
            return;
        };
        if !r.members.contains(&h) && !self.is_operator(h) {
            self.reply(h, &error(0, ErrorCode::NotInRoom, format!("join {room} to set its topic")), out);
            return;
        }
        if let Err((code, why)) = check_line(&topic, 512) {
            self.reply(h, &error(0, code, why), out);
            return;
        }
        let nick = self.sessions.nick_of(h);
        let member = r.members.contains(&h);
        self.set_topic(clock, &name, &nick, topic, out);
        // An operator outside the room hears no Topic notice: confirm.
        if !member {
            let text = format!("topic of #{name} set");
            self.confirm(clock, Some(h), text, out);
        }
    }

    pub(crate) fn set_topic(&mut self, clock: Clock, room: &str, by: &str, topic: String, out: &mut impl Outlet) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        r.topic = topic.clone();
        self.record_admin(crate::store::AdminChange::Topic { room: room.to_owned(), topic: topic.clone() });
        tracing::info!(target: "udpchat::admin", %room, %by, "topic");
        self.announce(clock, format!("-- {by} set the topic of #{room}: {topic}"));
        let notice = ServerMsg::Notice {
            room: room.to_owned(),
            kind: NoticeKind::Topic,
            nick: by.to_owned(),
            text: topic,
            time_ms: clock.unix_ms,
        };
        let rooms = BTreeSet::from([room.to_owned()]);
        self.broadcast_rooms(&rooms, &notice, None, out);
        self.share_notice(rooms, &notice);
    }
}
