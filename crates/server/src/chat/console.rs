//! The server console: what the operator sees and types. Room traffic is
//! printed as timestamped lines (the classic designs' "your chats will be
//! recorded here"); lines typed at a terminal go to the console's current
//! room as the operator's, and a few commands manage members.
//!
//! Timestamps are the server's local time, as irssi shows them (jiff does
//! the calendar and the zone rules).

use udpchat_chat::{ErrorCode, LineKind, NoticeKind, ServerMsg, close};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::rooms::Traffic;
use super::{ChatServer, Clock, Outlet};
use crate::store::Line;
use udpchat_chat::duration::parse as parse_duration;
use udpchat_chat::names::{fold, room_name};

/// The name operator lines are shown under.
pub const OPERATOR: &str = "operator";

pub const CONSOLE_HELP: &str = "\
console commands: TEXT (say it in the current room as operator), /join ROOM (switch room),
/kick NICK [reason], /ban NICK|ADDRESS [DURATION like 10m, 2h, 7d] [reason], /unban NICK|ADDRESS, /topic TEXT,
/msg NICK TEXT (a private message from the operator), /rate NICK N (an account's lines/s, e.g. a bot's; 0: the server's),
/retention ROOM [lines N] [days D] | default (what a room keeps), /who, /list, /help";

/// `YYYY-MM-DD HH:MM:SS` in `zone` for a Unix time in milliseconds.
pub fn format_time(unix_ms: u64, zone: &TimeZone) -> String {
    let at = i64::try_from(unix_ms).ok().and_then(|ms| Timestamp::from_millisecond(ms).ok()).unwrap_or(Timestamp::MAX);
    zone.to_datetime(at).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

impl ChatServer {
    /// Always shown, whatever `console_log` says: answers to the operator
    /// (to the admin client that asked, during [`ChatServer::admin`]).
    pub(crate) fn answer(&mut self, text: impl Into<String>) {
        match &mut self.answers {
            Some(answers) => answers.push(text.into()),
            None => self.console.push(text.into()),
        }
    }

    /// A console line from `udpchat admin` (the admin socket): handled
    /// exactly as if typed at the console, with `room` as the console's
    /// room for this one line (`say`, `topic`, `who` name their room; the
    /// console's own room does not change). Returns the answers, and what
    /// the command announced on the console, for the admin client.
    pub fn admin(&mut self, clock: Clock, room: Option<&str>, line: &str, out: &mut impl Outlet) -> Vec<String> {
        let room = match room.map(room_name) {
            None => None,
            Some(Ok(room)) if self.rooms.contains_key(&room) => Some(room),
            Some(Ok(room)) => return vec![format!("error: no room #{room} (nobody has joined it)")],
            Some(Err(why)) => return vec![format!("error: {why}")],
        };
        let line = line.trim();
        let said = !line.is_empty() && (!line.starts_with('/') || line.starts_with("//"));
        tracing::info!(
            target: "udpchat::admin",
            // The command's name only: never what is said.
            command = if said { "say" } else { line.get(1..).unwrap_or("").split(' ').next().unwrap_or("") },
            room = room.as_deref().unwrap_or(""),
            "admin command"
        );
        let said_in = room.clone().unwrap_or_else(|| self.console_room.clone());
        let saved = room.map(|room| std::mem::replace(&mut self.console_room, room));
        let before = self.console.len();
        self.answers = Some(Vec::new());
        self.operator(clock, line, out);
        let mut answers = self.answers.take().unwrap_or_default();
        if let Some(saved) = saved {
            self.console_room = saved;
        }
        answers.extend(self.console[before..].iter().cloned());
        if answers.is_empty() && said {
            answers.push(format!("-- said in #{said_in} as {OPERATOR}"));
        }
        answers
    }

    /// A line typed at the server console.
    pub fn operator(&mut self, clock: Clock, line: &str, out: &mut impl Outlet) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        // "//TEXT" says "/TEXT", as in the clients.
        let said = line.strip_prefix('/').filter(|rest| rest.starts_with('/'));
        let Some(command) = line.strip_prefix('/').filter(|_| said.is_none()) else {
            let room = self.console_room.clone();
            let text = said.unwrap_or(line);
            let line = super::requests::NewLine { from: OPERATOR.into(), text: text.into(), kind: LineKind::Operator };
            if self.post(clock, &room, line, None).is_err() {
                self.answer("-- not sent: the history database is too far behind; try again in a moment");
            }
            return;
        };
        let (name, rest) = command.split_once(' ').unwrap_or((command, ""));
        let (arg, reason) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
        match name {
            "join" | "room" => match room_name(arg) {
                Ok(room) if !self.rooms.contains_key(&room) && self.rooms.len() >= self.settings.max_rooms => {
                    self.answer(format!("-- cannot create #{room}: the server has too many rooms"));
                }
                Ok(room) => {
                    self.rooms.entry(room.clone()).or_insert_with(|| super::Room::new(0));
                    self.answer(format!("-- operator lines now go to #{room}"));
                    self.console_room = room;
                }
                Err(why) => self.answer(format!("-- {why}")),
            },
            "kick" => self.kick(clock, arg, reason, out),
            "msg" => self.console_private(clock, arg, reason, out),
            "ban" => {
                // /ban TARGET [DURATION] [reason]
                let (first, more) = reason.split_once(' ').unwrap_or((reason, ""));
                let (secs, reason) = match parse_duration(first) {
                    Some(secs) => (secs, more.trim()),
                    None => (0, reason),
                };
                if arg.is_empty() {
                    self.answer("-- /ban NICK|ADDRESS [DURATION like 10m, 2h, 7d] [reason]");
                } else {
                    self.ban(clock, (OPERATOR, None), arg, reason, secs, out);
                }
            }
            "unban" => self.unban(clock, (OPERATOR, None), arg, out),
            "topic" => {
                let room = self.console_room.clone();
                self.set_topic(clock, &room, OPERATOR, rest.trim().into(), out);
            }
            "who" => {
                let room = self.console_room.clone();
                let nicks: Vec<String> = self
                    .rooms
                    .get(&room)
                    .map(|r| r.members.iter().filter_map(|m| self.sessions.get(m)?.nick.clone()).collect())
                    .unwrap_or_default();
                self.answer(format!("-- #{room}: {}", nicks.join(" ")));
            }
            "list" => {
                let rooms: Vec<String> = self
                    .rooms
                    .iter()
                    .filter(|(_, r)| !r.members.is_empty())
                    .map(|(n, r)| format!("#{n} ({})", r.members.len()))
                    .collect();
                let count = self.sessions.len();
                self.answer(format!("-- {count} sessions; rooms: {}", rooms.join(", ")));
            }
            "rate" => self.console_rate(arg, reason),
            "retention" => self.console_retention(clock, rest),
            "help" => self.answer(CONSOLE_HELP),
            other => self.answer(format!("-- unknown console command /{other}; /help lists them")),
        }
    }

    /// `/msg NICK TEXT`: the classic 1:1 operator chat, to someone
    /// online (not stored: the operator has no account).
    fn console_private(&mut self, clock: Clock, nick: &str, text: &str, out: &mut impl Outlet) {
        if nick.is_empty() || text.is_empty() {
            self.answer("-- /msg NICK TEXT");
            return;
        }
        let Some(&h) = self.sessions.nicks.get(&fold(nick)) else {
            self.answer(format!("-- nobody called {nick} is online"));
            return;
        };
        let to = self.sessions.nick_of(h);
        let msg = ServerMsg::Private {
            id: 0,
            seq: 0,
            from: OPERATOR.into(),
            to: to.clone(),
            text: text.to_owned(),
            time_ms: clock.unix_ms,
            history: false,
        };
        self.reply(h, &msg, out);
        let time = format_time(clock.unix_ms, &self.time_zone);
        self.answer(format!("[{time}] -> {to}: {text}"));
    }

    fn kick(&mut self, clock: Clock, nick: &str, reason: &str, out: &mut impl Outlet) {
        let Some(&h) = self.sessions.nicks.get(&fold(nick)) else {
            self.answer(format!("-- nobody called {nick} is online"));
            return;
        };
        let why = if reason.is_empty() { "kicked by the operator".to_owned() } else { format!("kicked: {reason}") };
        tracing::info!(target: "udpchat::admin", %nick, by = OPERATOR, %reason, "kick");
        self.leave_server(clock, h, NoticeKind::Kick, &why, out);
        out.close(h, close::KICKED, &why);
    }
}

impl ChatServer {
    /// An operator account removes `nick` from `room` (the session stays
    /// connected and may rejoin, as with IRC's KICK).
    pub(crate) fn kick_from_room(
        &mut self,
        clock: Clock,
        by: super::bans::Actor<'_>,
        room: &str,
        nick: &str,
        reason: &str,
        out: &mut impl Outlet,
    ) {
        let (by, op) = by;
        let Ok(room) = room_name(room) else { return };
        let target = self.sessions.nicks.get(&fold(nick)).copied();
        let removed = target.is_some_and(|t| self.sessions.get_mut(&t).is_some_and(|s| s.rooms.remove(&room)));
        let Some(target) = target.filter(|_| removed) else {
            if let Some(op) = op {
                let text = format!("{nick} is not in #{room}");
                self.reply(op, &ServerMsg::Error { id: 0, code: ErrorCode::NoSuchNick, text }, out);
            }
            return;
        };
        let shown = self.sessions.get(&target).and_then(|s| s.nick.clone()).unwrap_or_default();
        let reason = super::clean_reason(reason);
        let text = if reason.is_empty() { format!("by {by}") } else { format!("by {by}: {reason}") };
        let notice = ServerMsg::Notice {
            room: room.clone(),
            kind: NoticeKind::Kick,
            nick: shown.clone(),
            text,
            time_ms: clock.unix_ms,
        };
        self.broadcast(&room, &notice, Traffic::Notice, None, out);
        self.share_notice(std::collections::BTreeSet::from([room.clone()]), &notice);
        if let Some(r) = self.rooms.get_mut(&room) {
            r.remove_member(target);
        }
        self.reply(target, &ServerMsg::Parted { room: room.clone() }, out);
        tracing::info!(target: "udpchat::admin", nick = %shown, %room, %by, %reason, "kick from room");
        let text = format!("{shown} was kicked from #{room} by {by}");
        self.announce(clock, format!("-- {text}"));
        // The operator hears the Kick notice only if it is in the room.
        if let Some(op) = op.filter(|op| self.rooms.get(&room).is_none_or(|r| !r.members.contains(op))) {
            self.confirm(clock, Some(op), text, out);
        }
    }
}

/// How a stored line looks on the console.
pub(crate) fn show_line(line: &Line) -> String {
    let (room, from, text) = (&line.room, &line.from, &line.text);
    match line.kind {
        LineKind::Action => format!("#{room} * {from} {text}"),
        LineKind::Operator => format!("#{room} <{from}!> {text}"),
        LineKind::Normal => format!("#{room} <{from}> {text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time_in_a_zone() {
        let utc = TimeZone::UTC;
        assert_eq!(format_time(0, &utc), "1970-01-01 00:00:00");
        assert_eq!(format_time(1_763_745_481_000, &utc), "2025-11-21 17:18:01");
        assert_eq!(format_time(951_782_400_000, &utc), "2000-02-29 00:00:00");
        let paris = TimeZone::get("Europe/Paris").unwrap();
        // Winter (UTC+1) and summer (UTC+2) time.
        assert_eq!(format_time(1_763_745_481_000, &paris), "2025-11-21 18:18:01");
        assert_eq!(format_time(1_751_328_000_000, &paris), "2025-07-01 02:00:00");
    }
}
