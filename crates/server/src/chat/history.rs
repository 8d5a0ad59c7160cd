//! History as members see it: the last lines of a room on joining, pages
//! of older lines on request, and catch-up from the store for members that
//! fell behind or come back after a disconnect, plus retention in the
//! background (docs/PROTOCOL.md §15.8). Every store access is a read or
//! prune request (`storage.rs`); this file starts them and handles their
//! completions.
//!
//! Catch-up is a cursor per (member, room), kept by the room
//! (`rooms.rs`): the last sequence number the member has been sent. While
//! a member has a cursor, live lines skip it. A read of the stored lines
//! after the cursor goes out; when it comes back the member is sent those
//! numbered up to the room's head *as it is then*, until its queue fills
//! (it goes on at the next `Writable`). If the cursor has reached the
//! head, the cursor is dropped and live delivery resumes; otherwise the
//! next read goes out.
//!
//! Why the seam has no gap and no duplicate although reads are
//! asynchronous: a line's commit completes before the head moves past it,
//! and a read starts after the request is made, so a read made at head H
//! sees every line up to H. Lines committed after that (the head moved on
//! while the read was in flight) went live to everyone else but skipped
//! this member, which still had its cursor; the next read, made at the new
//! head, brings them. Lines a read returns beyond the current head (stored
//! but not yet delivered) are not sent: they are delivered live, after
//! their commit's completion, and by then the member is either live (its
//! cursor reached the head) or still lagging (it gets them from the store
//! later). A completion for a cursor that was dropped or replaced (the
//! member left, rejoined) is recognised by its read id and ignored.
//!
//! A fresh join reads the room's recent lines the same way: the member
//! joins with a cursor at the head, so no live line overtakes the history;
//! after the history the catch-up goes on from that head.

use udpchat_chat::{ErrorCode, Line, NoticeKind, ServerMsg};
use udpchat_proto::ConnectionHandle;

use super::rooms::{Lag, LagState, Room, Traffic};
use super::storage::{LinesUse, Span};
use super::tuning::effective_retention;
use super::{ChatServer, Clock, Outlet};
use crate::store::StoreError;

/// Lines read from the store per step of a catch-up.
const CATCH_UP_BATCH: usize = 256;
/// The text of a Join notice for a plain-text member (docs/PROTOCOL.md
/// §15.9, §17): the room learns that what it says to that member crosses
/// the network in clear and that its address was never verified.
pub const PLAIN_JOIN: &str = "over plain UDP: unencrypted, address not verified";
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
                self.reply(h, &ServerMsg::Error { id: 0, code: ErrorCode::RoomInvalid, text }, out);
                return;
            }
            self.rooms.insert(room.to_owned(), Room::new(0));
        }
        let nick = self.sessions.nick_of(h);
        let Some(session) = self.sessions.get_mut(&h) else { return };
        let plain = session.plain;
        let new = session.rooms.insert(room.to_owned());
        let r = self.rooms.get_mut(room).expect("inserted above");
        r.members.insert(h);
        let (topic, head) = (r.topic.clone(), r.head);
        let members = self.room_members(room);
        // On a cluster a client failing over may have seen more than this
        // node has yet: it keeps its place, and the lines up to it that
        // the feed still brings are ones it has (§15.12).
        let shown = match since {
            Some(since) if self.cluster.is_some() => head.max(since),
            _ => head,
        };
        self.reply(h, &ServerMsg::Joined { room: room.to_owned(), topic, members, head: shown }, out);
        match since {
            Some(since) if since < head => {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.lagging.insert(h, Lag { cursor: since, state: LagState::Waiting });
                }
                self.pump(h);
            }
            Some(_) => {}
            // Already a member: the client has the room's lines.
            None if !new => {}
            None => self.read_join_history(h, room, head),
        }
        if new {
            self.log(clock, format!("-- {nick} joined #{room}"));
            let notice = ServerMsg::Notice {
                room: room.to_owned(),
                kind: NoticeKind::Join,
                nick,
                text: if plain { PLAIN_JOIN.to_owned() } else { String::new() },
                time_ms: clock.unix_ms,
            };
            self.broadcast(room, &notice, Traffic::Notice, Some(h), out);
            self.share_notice(std::collections::BTreeSet::from([room.to_owned()]), &notice);
        }
    }

    /// Asks for the recent lines a fresh join shows: up to
    /// `history_on_join` of those up to `head`. Skipped (as when the queue
    /// is full) if there are none or too many reads are in flight.
    fn read_join_history(&mut self, h: ConnectionHandle, room: &str, head: u64) {
        let limit = self.settings.history_on_join;
        if limit == 0 || head == 0 {
            return;
        }
        let read = self.store.new_read_id();
        let then = LinesUse::JoinHistory { session: h, room: room.to_owned(), read };
        if self.store.read_lines(room, Span::Before(head + 1), limit, then)
            && let Some(r) = self.rooms.get_mut(room)
        {
            r.lagging.insert(h, Lag { cursor: head, state: LagState::Joining(read) });
        }
    }

    /// A History request: up to `limit` stored lines of `room` below
    /// `before` (0: the newest), sent when the read completes.
    pub(crate) fn read_history_page(&mut self, h: ConnectionHandle, room: &str, before: u64, limit: usize) {
        if limit == 0 {
            return;
        }
        // Lines stored but not yet delivered (above the head) are not
        // history yet.
        let head = self.rooms.get(room).map_or(0, |r| r.head);
        let before = if before == 0 || before > head { head + 1 } else { before };
        // Too many reads in flight: skipped, like a page the queue cannot
        // take (history is a courtesy, unlike catch-up).
        let _ = self.store.read_lines(
            room,
            Span::Before(before),
            limit,
            LinesUse::Page { session: h, room: room.to_owned() },
        );
    }

    /// The session can take more: continue its catch-ups.
    pub fn writable(&mut self, h: ConnectionHandle) {
        self.pump(h);
    }

    /// Starts a catch-up read in every room where `h` lags and none is in
    /// flight.
    pub(crate) fn pump(&mut self, h: ConnectionHandle) {
        let Some(session) = self.sessions.get(&h) else { return };
        let waiting: Vec<String> = session
            .rooms
            .iter()
            .filter(|room| {
                self.rooms.get(*room).and_then(|r| r.lagging.get(&h)).is_some_and(|lag| lag.state == LagState::Waiting)
            })
            .cloned()
            .collect();
        for room in waiting {
            self.read_catch_up(h, &room);
        }
    }

    /// Reads the lines after `h`'s cursor in `room`, or, if it has reached
    /// the head, makes it live.
    fn read_catch_up(&mut self, h: ConnectionHandle, room: &str) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        let head = r.head;
        let Some(lag) = r.lagging.get_mut(&h) else { return };
        if lag.cursor >= head {
            r.lagging.remove(&h);
            return;
        }
        let after = lag.cursor;
        let read = self.store.new_read_id();
        let then = LinesUse::CatchUp { session: h, room: room.to_owned(), read };
        let state = if self.store.read_lines(room, Span::After(after), CATCH_UP_BATCH, then) {
            LagState::Reading(read)
        } else {
            self.store.starve(h, room);
            LagState::Starved
        };
        if let Some(lag) = self.rooms.get_mut(room).and_then(|r| r.lagging.get_mut(&h)) {
            lag.state = state;
        }
    }

    /// A read is free again and `h` waited for one in `room`.
    pub(crate) fn catch_up_starved(&mut self, h: ConnectionHandle, room: &str) {
        let Some(lag) = self.rooms.get_mut(room).and_then(|r| r.lagging.get_mut(&h)) else { return };
        if lag.state == LagState::Starved {
            lag.state = LagState::Waiting;
            self.read_catch_up(h, room);
        }
    }

    /// Room lines came back from the store.
    pub(crate) fn lines_read(
        &mut self,
        clock: Clock,
        result: Result<Vec<Line>, StoreError>,
        then: LinesUse,
        out: &mut impl Outlet,
    ) {
        match then {
            LinesUse::Page { session: h, room } => match result {
                // Said, not left to a silence the user cannot read.
                Ok(lines) if lines.is_empty() => {
                    let text = format!("no earlier lines in #{room}");
                    let msg = ServerMsg::Notice {
                        room,
                        kind: udpchat_chat::NoticeKind::Server,
                        nick: String::new(),
                        text,
                        time_ms: clock.unix_ms,
                    };
                    self.reply(h, &msg, out);
                }
                Ok(lines) => {
                    self.send_history(h, lines, out);
                }
                Err(e) => self.announce(clock, format!("!! history: {e}")),
            },
            LinesUse::JoinHistory { session: h, room, read } => {
                let Some(lag) = self.rooms.get_mut(&room).and_then(|r| r.lagging.get_mut(&h)) else { return };
                if lag.state != LagState::Joining(read) {
                    return;
                }
                lag.state = LagState::Waiting;
                let complete = match result {
                    Ok(lines) => self.send_history(h, lines, out),
                    Err(e) => {
                        self.announce(clock, format!("!! history of #{room}: {e}"));
                        true
                    }
                };
                // A full queue waits for Writable; otherwise on with the
                // lines that came after the head it joined at.
                if complete {
                    self.read_catch_up(h, &room);
                }
            }
            LinesUse::CatchUp { session: h, room, read } => {
                let lag = self.rooms.get_mut(&room).and_then(|r| r.lagging.get_mut(&h));
                let Some(lag) = lag.filter(|lag| lag.state == LagState::Reading(read)) else { return };
                lag.state = LagState::Waiting;
                match result {
                    Ok(lines) => self.send_catch_up(h, &room, lines, out),
                    // Retried at the next Writable.
                    Err(e) => self.announce(clock, format!("!! catch-up of #{room}: {e}")),
                }
            }
        }
    }

    /// Sends `h` the lines of `room` after its cursor up to the head, then
    /// goes on with the next read, or makes it live once it is there.
    fn send_catch_up(&mut self, h: ConnectionHandle, room: &str, lines: Vec<Line>, out: &mut impl Outlet) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        let head = r.head;
        let Some(lag) = r.lagging.get_mut(&h) else { return };
        let start = lag.cursor;
        for line in lines {
            let seq = line.seq;
            if seq <= lag.cursor {
                continue;
            }
            // Stored, but its commit's completion has not come back yet:
            // it goes out live (or in a later read), not here.
            if seq > head {
                break;
            }
            if out.send(h, &line_msg(line, false).to_bytes()).is_err() {
                // Full again: wait for the next Writable.
                return;
            }
            lag.cursor = seq;
        }
        // Nothing stored between the cursor and the head (retention
        // deleted it): the member sees the gap and goes live.
        if lag.cursor == start {
            r.lagging.remove(&h);
            return;
        }
        self.read_catch_up(h, room);
    }

    /// Sends stored lines as history, oldest first; stops at the first one
    /// the queue cannot take (history is a courtesy). Returns whether all
    /// went.
    fn send_history(&mut self, h: ConnectionHandle, lines: Vec<Line>, out: &mut impl Outlet) -> bool {
        for line in lines {
            if out.send(h, &line_msg(line, true).to_bytes()).is_err() {
                return false;
            }
        }
        true
    }

    /// Applies retention to the next room, one bounded batch at a time on
    /// the writer thread, so that pruning never holds up a commit for
    /// long.
    pub(crate) fn prune_step(&mut self, clock: Clock) {
        let (rooms, settings) = (&self.rooms, &self.settings);
        let pick = |cursor: usize| {
            if rooms.is_empty() {
                return None;
            }
            let room = rooms.keys().nth(cursor % rooms.len())?;
            Some((room.clone(), effective_retention(settings, room, rooms.get(room))))
        };
        self.store.start_prune(clock.unix_ms, PRUNE_BATCH, pick);
    }
}
