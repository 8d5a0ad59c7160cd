//! Handling what clients ask for: login, room lines, joins and parts,
//! nickname changes, private messages, topics and goodbyes. Every refusal
//! is an explicit LoginRefused or Error with a reason; nothing a client
//! sends can end another session or the server.

use std::collections::BTreeSet;

use udpchat_proto::ConnectionHandle;
use udpchat_proto::chat::{
    ClientMsg, ErrorCode, Line, LineKind, MsgErrorKind, NoticeKind, RefuseCode, RoomInfo, ServerMsg, close,
};

use super::{ChatServer, Clock, LOBBY, Outlet, Room};
use crate::names::{check_line, check_nick, fold, room_name};

/// Login attempts one session may make before it is closed.
const MAX_LOGIN_ATTEMPTS: u32 = 5;

/// A room line before it is numbered.
pub(crate) struct NewLine {
    pub(crate) from: String,
    pub(crate) text: String,
    pub(crate) kind: LineKind,
}

fn error(id: u64, code: ErrorCode, text: impl Into<String>) -> ServerMsg {
    ServerMsg::Error { id, code, text: text.into() }
}

impl ChatServer {
    /// A message from a session.
    pub fn message(&mut self, clock: Clock, h: ConnectionHandle, bytes: &[u8], out: &mut impl Outlet) {
        self.clock = clock;
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
            ClientMsg::Login { nick, password } => self.login(clock, h, nick, password, out),
            other if !logged_in => {
                let id = match other {
                    ClientMsg::Say { id, .. } | ClientMsg::Private { id, .. } => id,
                    _ => 0,
                };
                self.reply(h, &error(id, ErrorCode::InvalidRequest, "log in first"), out);
            }
            ClientMsg::Quit { reason } => {
                let reason = super::clean_reason(&reason);
                self.leave_server(clock, h, NoticeKind::Quit, &reason, out);
                out.close(h, close::QUIT, "goodbye");
            }
            other => {
                // Everything else costs a token (ergo's flood control).
                let session = self.sessions.get_mut(&h).expect("checked above");
                if !session.bucket.take(clock.now) {
                    let id = match &other {
                        ClientMsg::Say { id, .. } | ClientMsg::Private { id, .. } => *id,
                        _ => 0,
                    };
                    self.reply(h, &error(id, ErrorCode::RateLimited, "slow down: too many lines"), out);
                    return;
                }
                self.request(clock, h, other, out);
            }
        }
    }

    fn nick_of(&self, h: ConnectionHandle) -> String {
        self.sessions.get(&h).and_then(|s| s.nick.clone()).unwrap_or_default()
    }

    fn login(&mut self, clock: Clock, h: ConnectionHandle, nick: String, password: String, out: &mut impl Outlet) {
        let session = self.sessions.get_mut(&h).expect("caller checked");
        if session.nick.is_some() {
            self.reply(h, &error(0, ErrorCode::InvalidRequest, "already logged in"), out);
            return;
        }
        let ip = session.addr.ip();
        let refuse = |code, text: String| ServerMsg::LoginRefused { code, text };
        if let Some(until) = self.failures.locked_until(ip, clock.now) {
            let secs = until.saturating_duration_since(clock.now).as_secs() + 1;
            let msg = refuse(RefuseCode::TooManyAttempts, format!("too many failed logins; try again in {secs} s"));
            self.reply(h, &msg, out);
            return;
        }
        if let Some(expected) = &self.settings.password {
            // Compare in constant time, so timing reveals nothing about it.
            let ok = expected.len() == password.len()
                && expected.bytes().zip(password.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            if !ok {
                self.failures.fail(ip, clock.now);
                let session = self.sessions.get_mut(&h).expect("caller checked");
                session.login_failures += 1;
                let attempts = session.login_failures;
                let addr = session.addr;
                self.log(clock, format!("-- failed login from {addr}: wrong password"));
                self.reply(h, &refuse(RefuseCode::BadPassword, "wrong server password".into()), out);
                if attempts >= MAX_LOGIN_ATTEMPTS {
                    if let Some(s) = self.sessions.get_mut(&h) {
                        s.gone = true;
                    }
                    out.close(h, close::LOGIN_FAILED, "too many failed logins");
                }
                return;
            }
        }
        if let Err(why) = check_nick(&nick) {
            self.reply(h, &refuse(RefuseCode::NickInvalid, why), out);
            return;
        }
        let key = fold(&nick);
        if self.banned_nicks.contains(&key) {
            self.reply(h, &refuse(RefuseCode::Banned, "that nickname is banned".into()), out);
            return;
        }
        if self.nicks.contains_key(&key) {
            self.reply(h, &refuse(RefuseCode::NickTaken, format!("{nick} is already in use; choose another")), out);
            return;
        }
        self.failures.succeed(ip);
        self.nicks.insert(key, h);
        let session = self.sessions.get_mut(&h).expect("caller checked");
        session.nick = Some(nick.clone());
        let addr = session.addr;
        self.log(clock, format!("-- {nick} logged in from {addr}"));
        let welcome = ServerMsg::Welcome {
            nick,
            server_name: self.settings.server_name.clone(),
            motd: self.settings.motd.clone(),
        };
        self.reply(h, &welcome, out);
        self.join(clock, h, LOBBY, out);
    }

    fn request(&mut self, clock: Clock, h: ConnectionHandle, msg: ClientMsg, out: &mut impl Outlet) {
        match msg {
            ClientMsg::Say { id, room, text, action } => self.say(clock, h, id, &room, text, action, out),
            ClientMsg::Join { room } => match room_name(&room) {
                Ok(room) => self.join(clock, h, &room, out),
                Err(why) => self.reply(h, &error(0, ErrorCode::RoomInvalid, why), out),
            },
            ClientMsg::Part { room, reason } => self.part(clock, h, &room, &reason, out),
            ClientMsg::List => {
                let rooms = self
                    .rooms
                    .iter()
                    .filter(|(name, r)| !r.members.is_empty() || name.as_str() == LOBBY)
                    .map(|(name, r)| RoomInfo {
                        name: name.clone(),
                        members: r.members.len() as u64,
                        topic: r.topic.clone(),
                    })
                    .take(super::MAX_LISTED)
                    .collect();
                self.reply(h, &ServerMsg::RoomList { rooms }, out);
            }
            ClientMsg::Who { room } => {
                let name = room_name(&room).unwrap_or_default();
                let nicks = match self.rooms.get(&name) {
                    Some(r) => r
                        .members
                        .iter()
                        .filter_map(|m| self.sessions.get(m)?.nick.clone())
                        .take(super::MAX_LISTED)
                        .collect(),
                    None => Vec::new(),
                };
                self.reply(h, &ServerMsg::Members { room: name, nicks }, out);
            }
            ClientMsg::Nick { nick } => self.change_nick(clock, h, nick, out),
            ClientMsg::Private { id, to, text } => self.private(clock, h, id, &to, text, out),
            ClientMsg::Topic { room, topic } => self.topic(clock, h, &room, topic, out),
            ClientMsg::Kick { .. } | ClientMsg::Ban { .. } => {
                self.reply(h, &error(0, ErrorCode::NotPermitted, "only the server operator can do that"), out);
            }
            ClientMsg::History { .. } => {
                self.reply(h, &error(0, ErrorCode::InvalidRequest, "this server keeps no history"), out);
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
        if let Err((code, why)) = check_line(&text, self.settings.max_line_bytes) {
            self.reply(h, &error(id, code, why), out);
            return;
        }
        let name = room_name(room).unwrap_or_default();
        let member = self.sessions.get(&h).is_some_and(|s| s.rooms.contains(&name));
        if !member {
            self.reply(h, &error(id, ErrorCode::NotInRoom, format!("you are not in {room}; /join it first")), out);
            return;
        }
        let kind = if action { LineKind::Action } else { LineKind::Normal };
        let line = NewLine { from: self.nick_of(h), text, kind };
        self.post(clock, &name, line, Some((h, id)), out);
    }

    /// Numbers a line, shows it on the console, delivers it to the room and
    /// acknowledges it to its sender (if a session sent it).
    pub(crate) fn post(
        &mut self,
        clock: Clock,
        room: &str,
        line: NewLine,
        sender: Option<(ConnectionHandle, u64)>,
        out: &mut impl Outlet,
    ) {
        let NewLine { from, text, kind } = line;
        let Some(r) = self.rooms.get_mut(room) else { return };
        let seq = r.next_seq;
        r.next_seq += 1;
        if self.settings.console_log {
            let shown = match kind {
                LineKind::Action => format!("#{room} * {from} {text}"),
                LineKind::Operator => format!("#{room} <{from}!> {text}"),
                LineKind::Normal => format!("#{room} <{from}> {text}"),
            };
            self.log(clock, shown);
        }
        let line = ServerMsg::Line(Line {
            room: room.to_owned(),
            seq,
            time_ms: clock.unix_ms,
            from,
            text,
            kind,
            history: false,
        });
        let skip = sender.map(|(h, _)| h);
        self.broadcast(room, &line, skip, out);
        if let Some((h, id)) = sender {
            self.reply(h, &ServerMsg::Ack { id, room: room.to_owned(), seq }, out);
        }
    }

    pub(crate) fn join(&mut self, clock: Clock, h: ConnectionHandle, room: &str, out: &mut impl Outlet) {
        if !self.rooms.contains_key(room) {
            if self.rooms.len() >= self.settings.max_rooms {
                self.reply(h, &error(0, ErrorCode::RoomInvalid, "the server has too many rooms"), out);
                return;
            }
            self.rooms.insert(room.to_owned(), Room::new());
        }
        let nick = self.nick_of(h);
        let Some(session) = self.sessions.get_mut(&h) else { return };
        let new = session.rooms.insert(room.to_owned());
        let r = self.rooms.get_mut(room).expect("inserted above");
        r.members.insert(h);
        let topic = r.topic.clone();
        let members: Vec<String> =
            r.members.iter().filter_map(|m| self.sessions.get(m)?.nick.clone()).take(super::MAX_LISTED).collect();
        self.reply(h, &ServerMsg::Joined { room: room.to_owned(), topic, members }, out);
        if new {
            self.log(clock, format!("-- {nick} joined #{room}"));
            let notice = ServerMsg::Notice {
                room: room.to_owned(),
                kind: NoticeKind::Join,
                nick,
                text: String::new(),
                time_ms: clock.unix_ms,
            };
            self.broadcast(room, &notice, Some(h), out);
        }
    }

    fn part(&mut self, clock: Clock, h: ConnectionHandle, room: &str, reason: &str, out: &mut impl Outlet) {
        let name = room_name(room).unwrap_or_default();
        let nick = self.nick_of(h);
        let removed = self.sessions.get_mut(&h).is_some_and(|s| s.rooms.remove(&name));
        if !removed {
            self.reply(h, &error(0, ErrorCode::NotInRoom, format!("you are not in {room}")), out);
            return;
        }
        if let Some(r) = self.rooms.get_mut(&name) {
            r.members.remove(&h);
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
        self.broadcast(&name, &notice, None, out);
    }

    fn change_nick(&mut self, clock: Clock, h: ConnectionHandle, nick: String, out: &mut impl Outlet) {
        if let Err(why) = check_nick(&nick) {
            self.reply(h, &error(0, ErrorCode::NickInvalid, why), out);
            return;
        }
        let old = self.nick_of(h);
        let (old_key, new_key) = (fold(&old), fold(&nick));
        if self.nicks.get(&new_key).is_some_and(|&owner| owner != h) || self.banned_nicks.contains(&new_key) {
            self.reply(h, &error(0, ErrorCode::NickTaken, format!("{nick} is not available")), out);
            return;
        }
        self.nicks.remove(&old_key);
        self.nicks.insert(new_key, h);
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
        self.reply(h, &notice, out);
    }

    fn private(&mut self, clock: Clock, h: ConnectionHandle, id: u64, to: &str, text: String, out: &mut impl Outlet) {
        if let Err((code, why)) = check_line(&text, self.settings.max_line_bytes) {
            self.reply(h, &error(id, code, why), out);
            return;
        }
        let Some(&target) = self.nicks.get(&fold(to)) else {
            self.reply(h, &error(id, ErrorCode::NoSuchNick, format!("nobody called {to} is online")), out);
            return;
        };
        let from = self.nick_of(h);
        let to = self.nick_of(target);
        let msg = ServerMsg::Private { id, from, to, text, time_ms: clock.unix_ms, history: false };
        self.reply(target, &msg, out);
        self.reply(h, &ServerMsg::Ack { id, room: String::new(), seq: 0 }, out);
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
        if !r.members.contains(&h) {
            self.reply(h, &error(0, ErrorCode::NotInRoom, format!("join {room} to set its topic")), out);
            return;
        }
        if let Err((code, why)) = check_line(&topic, 512) {
            self.reply(h, &error(0, code, why), out);
            return;
        }
        let nick = self.nick_of(h);
        self.set_topic(clock, &name, &nick, topic, out);
    }

    pub(crate) fn set_topic(&mut self, clock: Clock, room: &str, by: &str, topic: String, out: &mut impl Outlet) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        r.topic = topic.clone();
        self.log(clock, format!("-- {by} set the topic of #{room}: {topic}"));
        let notice = ServerMsg::Notice {
            room: room.to_owned(),
            kind: NoticeKind::Topic,
            nick: by.to_owned(),
            text: topic,
            time_ms: clock.unix_ms,
        };
        let rooms = BTreeSet::from([room.to_owned()]);
        self.broadcast_rooms(&rooms, &notice, None, out);
    }
}
