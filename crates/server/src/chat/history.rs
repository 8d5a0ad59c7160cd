//! History as members see it: the last lines of a room on joining, pages
//! of older lines on request, and catch-up from the store for members that
//! fell behind or come back after a disconnect, plus retention in the
//! background.
//!
//! Catch-up is a cursor per (member, room): the last sequence number the
//! member has been sent. While a member has a cursor, live lines skip it;
//! [`ChatServer::pump`] sends it stored lines after the cursor until its
//! queue fills (it continues on the next `Writable`) or it reaches the
//! room's head, where the cursor is dropped and live delivery resumes.
//! Lines of the current batch are not stored yet and are delivered live
//! after the commit, so the seam has no gap and no duplicate.

use udpchat_chat::{Line, NoticeKind, ServerMsg};
use udpchat_proto::ConnectionHandle;

use super::{ChatServer, Clock, MAX_LISTED, Outlet, Room};
use crate::store::Retention;

/// Lines read from the store per step of a catch-up.
const CATCH_UP_BATCH: usize = 256;
/// Lines deleted per retention step.
const PRUNE_BATCH: usize = 1000;

fn line_msg(line: Line, history: bool) -> ServerMsg {
    ServerMsg::Line(Line { history, ..line })
}

impl ChatServer {
    /// Makes `h` a member of `room` (which must be a valid name). `since`:
    /// the last line the client saw, for a rejoin after a reconnect; it is
    /// caught up from there. Without it the client gets the room's last
    /// lines, marked as history.
    pub(crate) fn enter_room(
        &mut self,
        clock: Clock,
        h: ConnectionHandle,
        room: &str,
        since: Option<u64>,
        out: &mut impl Outlet,
    ) {
        if !self.rooms.contains_key(room) {
            if self.rooms.len() >= self.settings.max_rooms {
                let text = "the server has too many rooms".to_owned();
                let msg = ServerMsg::Error { id: 0, code: udpchat_chat::ErrorCode::RoomInvalid, text };
                self.reply(h, &msg, out);
                return;
            }
            self.rooms.insert(room.to_owned(), Room::new(0));
        }
        let nick = self.sessions.get(&h).and_then(|s| s.nick.clone()).unwrap_or_default();
        let Some(session) = self.sessions.get_mut(&h) else { return };
        let new = session.rooms.insert(room.to_owned());
        let r = self.rooms.get_mut(room).expect("inserted above");
        r.members.insert(h);
        let (topic, head) = (r.topic.clone(), r.head);
        let members: Vec<String> =
            r.members.iter().filter_map(|m| self.sessions.get(m)?.nick.clone()).take(MAX_LISTED).collect();
        self.reply(h, &ServerMsg::Joined { room: room.to_owned(), topic, members, head }, out);
        match since {
            Some(since) if since < head => {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.lagging.insert(h, since);
                }
                self.pump(h, out);
            }
            Some(_) => {}
            // Already a member: the client has the room's lines.
            None if !new => {}
            None => {
                let recent = self.settings.history_on_join;
                self.send_history(h, room, 0, recent, out);
            }
        }
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

    /// Up to `limit` stored lines of `room` below `before` (0: the newest),
    /// oldest first, marked as history. Stops early if the queue fills:
    /// history is a courtesy, unlike catch-up.
    pub(crate) fn send_history(
        &mut self,
        h: ConnectionHandle,
        room: &str,
        before: u64,
        limit: usize,
        out: &mut impl Outlet,
    ) {
        if limit == 0 {
            return;
        }
        let lines = match self.store.lines_before(room, before, limit) {
            Ok(lines) => lines,
            Err(e) => {
                let clock = self.clock;
                self.announce(clock, format!("!! history of #{room}: {e}"));
                return;
            }
        };
        for line in lines {
            if out.send(h, &line_msg(line, true).to_bytes()).is_err() {
                break;
            }
        }
    }

    /// The session can take more: continue its catch-ups.
    pub fn writable(&mut self, clock: Clock, h: ConnectionHandle, out: &mut impl Outlet) {
        self.clock = clock;
        self.pump(h, out);
    }

    /// Feeds `h` stored lines in every room where it lags, until its queue
    /// fills or it is caught up.
    pub(crate) fn pump(&mut self, h: ConnectionHandle, out: &mut impl Outlet) {
        let rooms: Vec<String> = match self.sessions.get(&h) {
            Some(s) => s
                .rooms
                .iter()
                .filter(|r| self.rooms.get(*r).is_some_and(|r| r.lagging.contains_key(&h)))
                .cloned()
                .collect(),
            None => return,
        };
        for room in rooms {
            while let Some(&cursor) = self.rooms.get(&room).and_then(|r| r.lagging.get(&h)) {
                let lines = match self.store.lines_after(&room, cursor, CATCH_UP_BATCH) {
                    Ok(lines) => lines,
                    Err(e) => {
                        let clock = self.clock;
                        self.announce(clock, format!("!! catch-up of #{room}: {e}"));
                        return;
                    }
                };
                let r = self.rooms.get_mut(&room).expect("checked above");
                if lines.is_empty() || cursor >= r.head {
                    // Caught up with everything stored: live from here on.
                    r.lagging.remove(&h);
                    break;
                }
                for line in lines {
                    let seq = line.seq;
                    if seq > r.head {
                        break;
                    }
                    if out.send(h, &line_msg(line, false).to_bytes()).is_err() {
                        // Full again: wait for the next Writable.
                        return;
                    }
                    r.lagging.insert(h, seq);
                }
            }
        }
    }

    /// The retention rules of `room`.
    fn retention(&self, room: &str) -> Retention {
        let day_ms = 86_400_000u64;
        let specific = self.settings.rooms.get(room);
        // 0 means no limit (so a room can opt out of a server-wide one).
        let max_lines = specific.and_then(|r| r.max_lines).or(self.settings.history_max_lines).filter(|&n| n > 0);
        let max_age_days = specific.and_then(|r| r.max_age_days).or(self.settings.history_max_age_days);
        Retention { max_lines, max_age_ms: max_age_days.map(|d| d.saturating_mul(day_ms)) }
    }

    /// Applies retention to the next room, one bounded batch at a time, so
    /// that pruning never holds up delivery for long.
    pub(crate) fn prune_step(&mut self, clock: Clock) {
        if self.rooms.is_empty() {
            return;
        }
        let index = self.prune_cursor % self.rooms.len();
        let Some(room) = self.rooms.keys().nth(index).cloned() else { return };
        let retention = self.retention(&room);
        if retention == Retention::default() {
            self.prune_cursor += 1;
            return;
        }
        match self.store.prune(&room, retention, clock.unix_ms, PRUNE_BATCH) {
            // A full batch may mean more to do: stay on this room.
            Ok(n) if n == PRUNE_BATCH => {}
            Ok(_) => self.prune_cursor += 1,
            Err(e) => {
                self.announce(clock, format!("!! retention of #{room}: {e}"));
                self.prune_cursor += 1;
            }
        }
    }
}
