//! The plain-text gateway (docs/PROTOCOL.md §17): lets the classic UDP
//! chat clients (`nc -u`, a shell's `/dev/udp`, the student Python clients
//! udpchat grew from) join the lobby. Each source address that sends text
//! becomes a member of the chat core like any session, under a
//! [`ConnectionHandle::foreign`] handle: the same login rules (the server
//! password, registered nicknames refused), bans, per-address limit, flood
//! control, history storage and notices. This module only translates:
//! datagrams into the chat messages such a client would have sent
//! ([`Feed`]s the driver hands to the chat core), and the core's messages
//! to the member into the `nick: text` lines the classic clients print.
//!
//! Sans-IO like the chat core: datagrams and the time in, datagrams to
//! send out. What it bounds:
//! - members: at most `max_members` addresses; a datagram from a new
//!   address past that gets no answer and creates nothing;
//! - replies: an address is never verified (a classic client cannot
//!   return a token), so it is never sent more than three times the bytes
//!   it has sent (§17.4); what does not fit is dropped and counted;
//! - the outbox: at most [`MAX_OUTBOX`] datagrams between two flushes;
//! - lines waiting for a login to finish: [`MAX_WAITING`] per member.

pub mod dialect;
pub mod render;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_chat::{ClientMsg, LOBBY, ServerMsg, close};
use udpchat_proto::{CloseReason, ConnectionHandle};

use dialect::Hello;

/// Datagrams queued for the socket between two flushes; more are dropped.
pub const MAX_OUTBOX: usize = 4096;
/// Lines a member sends before its login finished, kept to say after it.
pub const MAX_WAITING: usize = 16;
/// An address may be sent this many times the bytes it sent.
pub const AMPLIFICATION: u64 = 3;

/// What the driver hands to the chat core for the gateway, in order.
#[derive(Debug)]
pub enum Feed {
    /// A new member (`ChatServer::connected_plain`).
    Connect { h: ConnectionHandle, addr: SocketAddr },
    /// A chat message from the member (`ChatServer::message`).
    Message { h: ConnectionHandle, bytes: Vec<u8> },
    /// The member is gone (`ChatServer::closed`).
    Closed { h: ConnectionHandle, reason: CloseReason },
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    /// Nothing or only `PASS` yet: the next datagram is a hello.
    Hello,
    /// A Login went to the core; lines wait for its answer.
    LoggingIn,
    /// Welcomed under this nickname.
    In(String),
}

struct Member {
    h: ConnectionHandle,
    state: State,
    password: String,
    /// This client names itself in every line (`nick: text`).
    prefixed: bool,
    /// Bytes that may still be sent to it (3× what it sent, less what it
    /// was sent).
    budget: u64,
    /// Replies dropped for want of budget (shown in `udpchat` logs).
    dropped: u64,
    last_heard: Instant,
    next_id: u64,
    waiting: Vec<String>,
    /// Flood control holds as many of its lines as it will (the core
    /// stopped "reading" it): further lines are dropped, as a paused
    /// stream's would wait in the client. Told once per pause.
    paused: bool,
    told_paused: bool,
}

pub struct PlainGateway {
    members: HashMap<SocketAddr, Member>,
    by_handle: HashMap<ConnectionHandle, SocketAddr>,
    next: u32,
    generation: u32,
    max_members: usize,
    idle: Duration,
    feeds: VecDeque<Feed>,
    outbox: Vec<(SocketAddr, Vec<u8>)>,
    /// The LAN broadcast (§17.6): its listener handle and address.
    broadcast: Option<(ConnectionHandle, SocketAddr)>,
    /// Lines for the broadcast address (bounded like the outbox).
    broadcasts: Vec<Vec<u8>>,
    /// Where our own broadcasts come from (this host's addresses and the
    /// sending socket's port): the kernel loops a broadcast back to the
    /// sender's host, and a gateway listening on that port must not take
    /// its own lines for a member's.
    own: Option<(Vec<std::net::IpAddr>, u16)>,
    /// Datagrams taken in, replies queued, replies dropped (metrics).
    received: u64,
    sent: u64,
    dropped: u64,
}

impl PlainGateway {
    /// A gateway for at most `max_members` addresses, each dropped after
    /// `idle` without a datagram.
    pub fn new(max_members: usize, idle: Duration) -> Self {
        Self {
            members: HashMap::new(),
            by_handle: HashMap::new(),
            next: 0,
            generation: 0,
            max_members,
            idle,
            feeds: VecDeque::new(),
            outbox: Vec::new(),
            broadcast: None,
            broadcasts: Vec::new(),
            own: None,
            received: 0,
            sent: 0,
            dropped: 0,
        }
    }

    /// Datagrams received, replies sent and replies dropped so far.
    pub fn counts(&self) -> (u64, u64, u64) {
        (self.received, self.sent, self.dropped)
    }

    /// Datagrams from `port` at one of `ips` are our own broadcasts.
    pub fn ignore_own(&mut self, ips: Vec<std::net::IpAddr>, port: u16) {
        self.own = Some((ips, port));
    }

    /// Sends every live line of one room to `to`, a broadcast address
    /// (§17.6). Returns the handle to attach to that room in the chat core
    /// (`ChatServer::attach_listener`). Members whose source port is
    /// `to`'s port hear the room by broadcast, so they are not also sent
    /// its lines directly.
    pub fn broadcast_to(&mut self, to: SocketAddr) -> ConnectionHandle {
        let h = self.new_handle();
        self.broadcast = Some((h, to));
        h
    }

    /// Lines to send to the broadcast address, and that address.
    pub fn take_broadcasts(&mut self) -> Option<(SocketAddr, Vec<Vec<u8>>)> {
        let (_, to) = self.broadcast?;
        (!self.broadcasts.is_empty()).then(|| (to, std::mem::take(&mut self.broadcasts)))
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// The next thing for the chat core, in the order it happened.
    pub fn next_feed(&mut self) -> Option<Feed> {
        self.feeds.pop_front()
    }

    /// Datagrams to send, with their destinations.
    pub fn take_outbox(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// A text datagram (first byte 0x20–0x7F, §13.1) from `from`.
    pub fn datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if let Some((ips, port)) = &self.own
            && from.port() == *port
            && ips.contains(&from.ip().to_canonical())
        {
            return;
        }
        self.received += 1;
        let text = String::from_utf8_lossy(bytes);
        if !self.members.contains_key(&from) {
            if self.members.len() >= self.max_members {
                tracing::debug!("plain text from {from} ignored: {} plain members already", self.max_members);
                return;
            }
            // Only a datagram that says something creates a member.
            if dialect::hello(&text).is_none() {
                return;
            }
            let h = self.new_handle();
            let member = Member {
                h,
                state: State::Hello,
                password: String::new(),
                prefixed: false,
                budget: 0,
                dropped: 0,
                last_heard: now,
                next_id: 1,
                waiting: Vec::new(),
                paused: false,
                told_paused: false,
            };
            self.members.insert(from, member);
            self.by_handle.insert(h, from);
            self.feeds.push_back(Feed::Connect { h, addr: from });
        }
        let member = self.members.get_mut(&from).expect("inserted above");
        member.last_heard = now;
        member.budget = member.budget.saturating_add(AMPLIFICATION * bytes.len() as u64);
        // Line by line: a piped `nc -u` may send `PASS x`, the nickname
        // and a first line in one datagram.
        let mut tell_paused = false;
        for line in dialect::lines(&text) {
            match &member.state {
                State::Hello => {
                    let Some(hello) = dialect::hello(line) else { continue };
                    match hello {
                        Hello::Pass(secret) => member.password = secret,
                        Hello::Nick { nick, password, prefixed } => {
                            if let Some(password) = password {
                                member.password = password;
                            }
                            member.prefixed = prefixed.is_some();
                            member.waiting.extend(prefixed);
                            member.state = State::LoggingIn;
                            let login = ClientMsg::Login {
                                nick,
                                server_password: member.password.clone(),
                                account_password: String::new(),
                                resume: Vec::new(),
                                private_since: 0,
                                origin: 0,
                            };
                            self.feeds.push_back(Feed::Message { h: member.h, bytes: login.to_bytes() });
                        }
                    }
                }
                State::LoggingIn => {
                    if member.waiting.len() < MAX_WAITING {
                        member.waiting.push(line.to_owned());
                    }
                }
                State::In(_) if member.paused && !dialect::is_quit(line) => {
                    member.dropped += 1;
                    tell_paused |= !std::mem::replace(&mut member.told_paused, true);
                }
                State::In(nick) => {
                    let line = if member.prefixed { dialect::strip_prefix(line, nick) } else { line };
                    let msg = say_or_quit(&mut member.next_id, line);
                    let quit = matches!(msg, ClientMsg::Quit { .. });
                    self.feeds.push_back(Feed::Message { h: member.h, bytes: msg.to_bytes() });
                    if quit {
                        break;
                    }
                }
            }
        }
        if tell_paused {
            self.reply(from, "ERROR: too fast: lines dropped until the server has said those it holds", true);
        }
    }

    /// Drops members silent for longer than the idle timeout.
    pub fn tick(&mut self, now: Instant) {
        let idle = self.idle;
        let late: Vec<SocketAddr> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_duration_since(m.last_heard) > idle)
            .map(|(a, _)| *a)
            .collect();
        for addr in late {
            let text = format!("-- you were silent for {} s and left the chat", idle.as_secs());
            self.reply(addr, &text, true);
            if let Some(m) = self.members.remove(&addr) {
                self.by_handle.remove(&m.h);
                self.feeds.push_back(Feed::Closed { h: m.h, reason: CloseReason::TimedOut });
            }
        }
    }

    /// A message of the chat core to member `h` (the outlet's `send`) at
    /// `now`.
    pub fn deliver(&mut self, now: Instant, h: ConnectionHandle, bytes: &[u8]) {
        if let Some((listener, _)) = self.broadcast
            && listener == h
        {
            let text = ServerMsg::decode(bytes).ok().as_ref().and_then(render::render);
            if let Some(text) = text
                && self.broadcasts.len() < MAX_OUTBOX
            {
                self.broadcasts.push(format!("{text}\n").into_bytes());
            }
            return;
        }
        let Some(&addr) = self.by_handle.get(&h) else { return };
        let Ok(msg) = ServerMsg::decode(bytes) else { return };
        // A classic LAN client on the broadcast port hears lines there.
        if matches!(msg, ServerMsg::Line(_)) && self.broadcast.is_some_and(|(_, to)| to.port() == addr.port()) {
            return;
        }
        let member = self.members.get_mut(&addr).expect("indexes agree");
        // Its own lines: a classic client printed them as they were typed,
        // and cannot tell a repeat by number as udpchat clients do (a
        // member catching up after its join gets its own lines too).
        if let (ServerMsg::Line(line), State::In(nick)) = (&msg, &member.state)
            && line.from == *nick
        {
            return;
        }
        match &msg {
            ServerMsg::Welcome { nick, .. } => {
                member.state = State::In(nick.clone());
                for line in std::mem::take(&mut member.waiting) {
                    let line = if member.prefixed { dialect::strip_prefix(&line, nick).to_owned() } else { line };
                    let msg = say_or_quit(&mut member.next_id, &line);
                    self.feeds.push_back(Feed::Message { h, bytes: msg.to_bytes() });
                }
            }
            // Refused: the next datagram is tried as a hello again (the
            // core counts failed passwords and ends the member after five).
            ServerMsg::LoginRefused { .. } => {
                member.state = State::Hello;
                member.waiting.clear();
            }
            // One of its lines was just said: a member whose lines flood
            // control still holds is not idle, however long ago it sent.
            ServerMsg::Ack { .. } => member.last_heard = now,
            _ => {}
        }
        // An answer to a hello is cut to the budget rather than dropped:
        // a client waiting for it would wait forever.
        let answer = matches!(msg, ServerMsg::Welcome { .. } | ServerMsg::LoginRefused { .. });
        if let Some(text) = render::render(&msg) {
            self.reply(addr, &text, answer);
        }
    }

    /// Flood control stops (false) or resumes (true) taking `h`'s lines
    /// (the outlet's `set_reading`, `chat/pacing.rs`): a plain member has
    /// no stream to pause, so its lines are dropped meanwhile, which keeps
    /// what the core holds for it at the bound a paused udpchat session
    /// has.
    pub fn set_reading(&mut self, h: ConnectionHandle, reading: bool) {
        let Some(addr) = self.by_handle.get(&h) else { return };
        let member = self.members.get_mut(addr).expect("indexes agree");
        member.paused = !reading;
        if reading {
            member.told_paused = false;
        }
    }

    /// The chat core ends member `h` (the outlet's `close`): it is told
    /// why, and forgotten; the core hears that it is gone.
    pub fn close(&mut self, h: ConnectionHandle, code: u64, reason: &str) {
        let Some(addr) = self.by_handle.remove(&h) else { return };
        let text = if code == close::QUIT { format!("-- {reason}") } else { format!("ERROR: {reason}") };
        self.reply(addr, &text, true);
        self.members.remove(&addr);
        self.feeds.push_back(Feed::Closed { h, reason: CloseReason::Local { code } });
    }

    /// Queues `text` for `addr` if its budget allows; with `cut` (answers
    /// to a hello, goodbyes) what fits of it instead. Each text ends with
    /// a newline, so that `nc -u` and a shell's `read` see lines (Python
    /// clients that `print` it show an empty line after).
    fn reply(&mut self, addr: SocketAddr, text: &str, cut: bool) {
        let Some(member) = self.members.get_mut(&addr) else { return };
        let budget = usize::try_from(member.budget).unwrap_or(usize::MAX);
        let mut end = text.len();
        if cut && end + 1 > budget {
            end = budget.saturating_sub(1);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
        }
        let line = format!("{}\n", &text[..end]);
        if end == 0 || line.len() > budget || self.outbox.len() >= MAX_OUTBOX {
            member.dropped += 1;
            self.dropped += 1;
            return;
        }
        member.budget -= line.len() as u64;
        self.sent += 1;
        self.outbox.push((addr, line.into_bytes()));
    }

    fn new_handle(&mut self) -> ConnectionHandle {
        // Numbers are reused after 2^31 members; the generation then
        // tells the handles apart.
        self.next = (self.next + 1) & 0x7fff_ffff;
        if self.next == 0 {
            self.generation = self.generation.wrapping_add(1);
        }
        ConnectionHandle::foreign(self.next, self.generation)
    }
}

/// The chat message for one line of a welcomed member.
fn say_or_quit(next_id: &mut u64, line: &str) -> ClientMsg {
    if dialect::is_quit(line) {
        return ClientMsg::Quit { reason: String::new() };
    }
    let id = *next_id;
    *next_id += 1;
    ClientMsg::Say { id, room: LOBBY.to_owned(), text: line.to_owned(), action: false }
}

#[cfg(test)]
mod tests;
