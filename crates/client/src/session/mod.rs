//! The client's session core, with no socket, task or clock in it: a state
//! machine that logs in (and tries another nickname after a refusal),
//! decides whether to trust the server's key, queues requests in the
//! outbox, tracks unacknowledged lines, remembers how far each room was
//! read (to resume after a reconnect, docs/PROTOCOL.md "Resuming"),
//! drops duplicates at the seams, and decides when to reconnect or give
//! up, and to which address (`servers`: several servers or addresses are
//! taken in turn, moving on from one that does not answer). It also paces its requests to the server's `Limits` (`pacing`),
//! resends unacknowledged lines after a reconnect with the same ids (the
//! Login `origin` lets the server store each once), refuses over-long
//! lines itself, and on quit waits (bounded) for its lines' answers.
//!
//! It is driven by calls that say what happened, each with the current
//! [`Instant`]: [`Session::on_connected`], [`Session::on_message`],
//! [`Session::on_closed`] for the connection, [`Session::on_request`] for
//! the front end, [`Session::handle_timeout`] when [`Session::poll_timeout`]
//! is reached. After each call the caller drains, in this order:
//! [`Session::next_send`]/[`Session::sent`] (messages for the current
//! connection), [`Session::poll_action`] (resolve the server names,
//! connect, close, remember a key, measure the round trip, stop) and [`Session::poll_event`] (what to tell
//! the front end). `crate::driver` is that caller on tokio; the tests in
//! `tests/` are another, with no network at all.

mod attempts;
mod config;
mod outbox;
pub mod pacing;
pub mod pinning;
pub mod reconnect;
mod seen;
pub mod servers;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use udpchat_chat::{ClientMsg, Line, LineKind, NoticeKind, RefuseCode, ServerMsg};
use udpchat_proto::{CloseReason, PublicKey};

use crate::ClientEvent;
use outbox::Outbox;
use pacing::Pacing;
use pinning::Trust;
use reconnect::Backoff;
use seen::Seen;
use servers::Rotation;

pub use config::{SessionConfig, random_origin};
pub use outbox::{MAX_OUTBOX, MAX_UNACKED};

/// How often the round-trip time is reported while logged in.
pub const RTT_REPORT: Duration = Duration::from_secs(2);
/// How long a handshake may go unanswered before the client moves on to
/// the next address, if there is one in this round; else, on the first
/// handshake, the user is told (the protocol itself keeps trying for
/// 15 s, then the backoff retries).
pub const NO_ANSWER: Duration = Duration::from_secs(3);
/// How long [`crate::Client::quit`] waits for lines to be acknowledged.
pub const QUIT_WAIT: Duration = Duration::from_secs(10);

/// What the front end asks of the session.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Send(ClientMsg),
    /// Log in again with another nickname after a refusal.
    Login(String),
    /// Older lines of a room, continuing from the oldest one shown.
    History {
        room: String,
        count: u64,
    },
    /// Say goodbye and stop, after the lines queued and sent so far are
    /// answered or `within` has passed (whichever first); lines still
    /// unanswered then are reported as `Unconfirmed`.
    Quit {
        reason: String,
        within: Duration,
    },
}

/// What the session asks its driver to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Look up the server names ([`servers::Rotation::names`]) and hand
    /// what they resolved to [`Session::on_resolved`]; a new round of
    /// addresses starts with them.
    Resolve,
    /// Open a connection to the server at `to` (replacing the current
    /// one, if any), requiring this key if given (the protocol then
    /// refuses another one itself).
    Connect { server_key: Option<PublicKey>, to: SocketAddr },
    /// Send `goodbye` if given (ignore failure), then close the current
    /// connection with code NORMAL and `reason`.
    Close { goodbye: Option<ClientMsg>, reason: String },
    /// The server's key was seen for the first time: write it down.
    RememberKey(PublicKey),
    /// Report the current round-trip time with [`Session::rtt`].
    MeasureRtt,
    /// Give up: nothing more will happen (a `Closed` event says why).
    Stop,
}

/// The user asked to leave; waiting for lines to be answered.
#[derive(Debug, Clone)]
struct Leave {
    by: Instant,
    reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The handshake is under way.
    Handshake,
    /// Encrypted; the login is sent (or, after a nickname refusal, waits
    /// for another nickname).
    LoggingIn,
    LoggedIn,
    /// We asked the connection to close; waiting for it to be closed.
    Closing,
    /// Between connections, until the backoff ends.
    Waiting {
        until: Instant,
    },
    /// Waiting for the driver to resolve the server names.
    Resolving,
    Stopped,
}

pub struct Session {
    config: SessionConfig,
    phase: Phase,
    nick: String,
    /// Rooms we are in or asked for, to join after logging in.
    rooms: BTreeSet<String>,
    /// Sent first on the current connection, before the outbox: the
    /// login and the joins that follow it. Cleared when it ends.
    control: VecDeque<ClientMsg>,
    outbox: Outbox,
    seen: Seen,
    backoff: Backoff,
    /// The addresses to try, in turn.
    servers: Rotation,
    /// Why the last address was left, for the note naming the next one.
    switch: Option<String>,
    /// This connection got as far as logging in.
    established: bool,
    /// Some connection got as far as logging in: without `reconnect`, the
    /// first loss after it ends the client (before it, the addresses of
    /// the first round are walked until one answers).
    logged_in_once: bool,
    /// The user quit (or a refusal made going on pointless): the
    /// connection is closing or closed for good.
    quitting: bool,
    /// The user asked to quit; lines are still being flushed.
    leave: Option<Leave>,
    pacing: Pacing,
    /// The server sent `Limits`, so it knows Login origins (both came with
    /// issue 10) and stores a resent line once: unanswered lines are sent
    /// again after a reconnect. Older servers would store them twice, so
    /// for them the lines are reported as unconfirmed instead.
    resends: bool,
    /// When this handshake has gone unanswered long enough to move on to
    /// the next address (or to tell the user, on the first handshake).
    no_answer_at: Option<Instant>,
    /// The user was told that the server does not answer, or it answered:
    /// not said (again).
    no_answer_told: bool,
    /// Why the client stops, when it is not the user's own quit.
    end_reason: Option<String>,
    next_rtt: Option<Instant>,
    /// A wall-clock reading and the instant it was taken, so that our own
    /// delivered lines get a time without the core reading the clock.
    wall: (Instant, u64),
    actions: VecDeque<Action>,
    /// Drained by the driver after every call, so it holds what one call
    /// produced (at most a few events).
    events: VecDeque<ClientEvent>,
}

impl Session {
    /// Starts the first attempt: a `Connecting` event and a `Connect`
    /// action are ready. `wall_ms` is the wall-clock time at `now`.
    pub fn new(config: SessionConfig, now: Instant, wall_ms: u64) -> Self {
        let assumed = config.assumed_limits;
        let mut s = Self {
            nick: config.nick.clone(),
            rooms: config.rooms.iter().cloned().collect(),
            servers: Rotation::new(&config.server),
            config,
            phase: Phase::Stopped,
            control: VecDeque::new(),
            outbox: Outbox::default(),
            seen: Seen::default(),
            backoff: Backoff::default(),
            switch: None,
            established: false,
            logged_in_once: false,
            quitting: false,
            leave: None,
            pacing: Pacing::new(assumed, now),
            resends: false,
            no_answer_at: None,
            no_answer_told: false,
            end_reason: None,
            next_rtt: None,
            wall: (now, wall_ms),
            actions: VecDeque::new(),
            events: VecDeque::new(),
        };
        s.connect(now);
        s
    }

    /// The nickname we have (or are asking for).
    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// Whether the user has asked to leave (requests are no longer taken).
    pub fn is_quitting(&self) -> bool {
        self.quitting || self.leave.is_some()
    }

    /// Whether the front end's requests may be taken now: not leaving, and
    /// the outbox not full (else the front end waits: back-pressure).
    pub fn accepts_requests(&self) -> bool {
        !self.is_quitting() && self.phase != Phase::Stopped && !self.outbox.is_full()
    }

    /// The longest line accepted, in bytes (the server's `Limits`).
    pub fn max_line_bytes(&self) -> u64 {
        self.pacing.max_line_bytes
    }

    /// This client's Login origin.
    pub fn origin(&self) -> u64 {
        self.config.origin
    }

    pub fn is_stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// The rooms to resume with the last line seen in each, as the next
    /// login will send them.
    pub fn resume(&self) -> Vec<(String, u64)> {
        self.seen.resume()
    }

    fn wall_ms(&self, now: Instant) -> u64 {
        self.wall.1 + now.saturating_duration_since(self.wall.0).as_millis() as u64
    }

    // ---- what the driver drains ----

    /// The next message for the current connection, if one may go at
    /// `now`: the login at once; after it, requests as the pacing allows.
    pub fn next_send(&self, now: Instant) -> Option<&ClientMsg> {
        match self.phase {
            Phase::LoggingIn => self.control.front(),
            Phase::LoggedIn if self.pacing.ready(now) => self.control.front().or_else(|| self.outbox.front()),
            _ => None,
        }
    }

    /// The connection took the message [`Session::next_send`] showed.
    pub fn sent(&mut self, now: Instant) {
        if self.phase == Phase::LoggedIn {
            self.pacing.take(now);
        }
        if self.control.pop_front().is_some() {
            return;
        }
        if let Some(ClientMsg::Part { room, .. }) = self.outbox.sent() {
            self.rooms.remove(&room);
        }
    }

    /// Whether something waits only for the pacing's next token.
    fn paced(&self) -> bool {
        self.phase == Phase::LoggedIn && (!self.control.is_empty() || self.outbox.front().is_some())
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] is next due, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Waiting { until } => Some(until),
            Phase::LoggedIn => self.next_rtt,
            _ => None,
        };
        let paced = self.paced().then(|| self.pacing.next_token());
        let leave = self.leave.as_ref().filter(|_| !self.quitting).map(|l| l.by);
        let no_answer = self.no_answer_at.filter(|_| self.phase == Phase::Handshake);
        [phase, paced, leave, no_answer].into_iter().flatten().min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Handshake && self.no_answer_at.is_some_and(|t| now >= t) {
            self.no_answer_at = None;
            self.no_answer(now);
        }
        if self.leave.as_ref().is_some_and(|l| now >= l.by) {
            self.try_leave(now);
        }
        match self.phase {
            Phase::Waiting { until } if now >= until => self.connect(now),
            Phase::LoggedIn if self.next_rtt.is_some_and(|t| now >= t) => {
                self.next_rtt = Some(now + RTT_REPORT);
                self.actions.push_back(Action::MeasureRtt);
            }
            _ => {}
        }
    }

    /// The round-trip time the driver measured after `MeasureRtt`.
    pub fn rtt(&mut self, rtt: Duration) {
        if self.phase == Phase::LoggedIn {
            self.events.push_back(ClientEvent::Rtt(rtt));
        }
    }

    // ---- the front end ----

    pub fn on_request(&mut self, now: Instant, req: Request) {
        if self.is_quitting() || self.phase == Phase::Stopped {
            return;
        }
        match req {
            Request::Send(msg) => {
                if let Some(refusal) = self.too_long(&msg) {
                    self.events.push_back(ClientEvent::Server(refusal));
                } else {
                    self.outbox.push(msg);
                }
            }
            Request::Login(nick) => {
                self.nick = nick;
                if self.phase == Phase::LoggingIn {
                    self.control.push_back(self.login_msg());
                }
            }
            Request::History { room, count } => {
                let before = self.seen.history_before(&room);
                self.outbox.push(ClientMsg::History { room, before, limit: count });
            }
            Request::Quit { reason, within } => {
                // The wait starts once the queued lines could have gone at
                // the server's pace (zero: leave now, whatever is queued).
                let pacing = if within.is_zero() {
                    Duration::ZERO
                } else {
                    self.pacing.time_for(self.outbox.queued() + self.control.len(), now)
                };
                self.leave = Some(Leave { by: now + pacing + within, reason });
                self.try_leave(now);
                let left = self.outbox.lines_pending();
                if !self.quitting && left > 0 {
                    let secs = self.leave.as_ref().map_or(0.0, |l| (l.by - now).as_secs_f64());
                    self.events.push_back(ClientEvent::Note(format!(
                        "leaving: waiting up to {secs:.0} s for {left} line(s) to be acknowledged"
                    )));
                }
            }
        }
    }

    /// A line longer than the server takes, refused here rather than sent
    /// (as the server would refuse it, so front ends show it the same way;
    /// a line beyond the transport's message size would otherwise block
    /// the connection).
    fn too_long(&self, msg: &ClientMsg) -> Option<ServerMsg> {
        let (ClientMsg::Say { id, text, .. } | ClientMsg::Private { id, text, .. }) = msg else { return None };
        let limit = self.pacing.max_line_bytes;
        (text.len() as u64 > limit).then(|| ServerMsg::Error {
            id: *id,
            code: udpchat_chat::ErrorCode::LineTooLong,
            text: format!(
                "line too long: {} bytes; this server takes at most {limit} bytes per line (not sent; split it)",
                text.len()
            ),
        })
    }

    /// Leaves once every line is answered, or the time to wait is up:
    /// says goodbye if logged in, then closes; lines still unanswered are
    /// reported as unconfirmed when the client stops.
    fn try_leave(&mut self, now: Instant) {
        let Some(leave) = &self.leave else { return };
        if self.quitting || (self.outbox.lines_pending() > 0 && now < leave.by) {
            return;
        }
        let reason = leave.reason.clone();
        self.quitting = true;
        match self.phase {
            Phase::Waiting { .. } | Phase::Resolving => self.stop("quit".into()),
            // Nobody answered yet: nothing to wait for in the close.
            Phase::Handshake => {
                self.close(None, "quit".into());
                self.stop("quit".into());
            }
            Phase::LoggingIn | Phase::LoggedIn => {
                let goodbye = (self.phase == Phase::LoggedIn).then_some(ClientMsg::Quit { reason });
                self.close(goodbye, "quit".into());
            }
            Phase::Closing | Phase::Stopped => {}
        }
    }

    // ---- the connection ----

    /// The handshake completed and the server presented `server_key`.
    pub fn on_connected(&mut self, _now: Instant, server_key: PublicKey) {
        if self.phase != Phase::Handshake {
            return;
        }
        let first_use = match pinning::check(self.config.server_key, server_key) {
            Trust::Trusted => false,
            Trust::FirstUse => {
                // Later attempts require it, as the file will.
                self.config.server_key = Some(server_key);
                self.actions.push_back(Action::RememberKey(server_key));
                true
            }
            Trust::Mismatch { expected, presented } => {
                // The protocol refuses this itself when given the key; a
                // key that slipped through is refused here all the same.
                let why = self.key_changed(&CloseReason::KeyMismatch { expected, got: presented });
                self.quitting = true;
                self.end_reason = Some(why.clone());
                self.close(None, why);
                return;
            }
        };
        self.no_answer_at = None;
        self.no_answer_told = true;
        self.servers.answered();
        self.events.push_back(ClientEvent::Connected { server_key, first_use });
        self.phase = Phase::LoggingIn;
        self.control.push_back(self.login_msg());
    }

    /// A message from the server on the current connection.
    pub fn on_message(&mut self, now: Instant, msg: ServerMsg) {
        // While closing, answers to what went out before still count.
        if !matches!(self.phase, Phase::LoggingIn | Phase::LoggedIn | Phase::Closing) || !self.is_new(&msg) {
            return;
        }
        if let Some(end) = self.update(now, &msg) {
            self.events.push_back(ClientEvent::Server(msg));
            self.close(None, end);
            return;
        }
        match &msg {
            ServerMsg::Ack { id, room, seq } => {
                if let Some(delivered) = self.delivered(now, *id, room, *seq) {
                    self.events.push_back(delivered);
                }
            }
            ServerMsg::Error { id, .. } => {
                self.outbox.answered(*id);
            }
            _ => {}
        }
        self.events.push_back(ClientEvent::Server(msg));
        self.try_leave(now);
    }

    /// Login, resuming the rooms we were in (with the last line seen in
    /// each) after a reconnect.
    fn login_msg(&self) -> ClientMsg {
        ClientMsg::Login {
            nick: self.nick.clone(),
            server_password: self.config.password.clone(),
            account_password: self.config.account_password.clone(),
            resume: self.seen.resume(),
            private_since: self.seen.private_since,
            origin: self.config.origin,
        }
    }

    /// Whether a server message is new to the front end (duplicates at a
    /// reconnect or catch-up seam are not).
    fn is_new(&mut self, msg: &ServerMsg) -> bool {
        match msg {
            ServerMsg::Line(line) => {
                self.seen.shown(&line.room, line.seq);
                line.history || self.seen.line(&line.room, line.seq)
            }
            ServerMsg::Private { seq, history: false, from, .. } if *from != self.nick => self.seen.private(*seq),
            ServerMsg::Joined { room, head, .. } => {
                self.seen.joined(room, *head);
                true
            }
            ServerMsg::Parted { room } => {
                self.seen.parted(room);
                true
            }
            // seq 0: a resend the server had stored before (issue 10); it
            // is delivered, but there is no new line to remember.
            ServerMsg::Ack { room, seq, .. } if !room.is_empty() && *seq != 0 => {
                self.seen.acked(room, *seq);
                // Our own lines are shown too: /history continues below them.
                self.seen.shown(room, *seq);
                true
            }
            _ => true,
        }
    }

    /// Updates the session from a server message. Returns a reason to end
    /// the connection when the message makes it pointless to go on.
    fn update(&mut self, now: Instant, msg: &ServerMsg) -> Option<String> {
        match msg {
            ServerMsg::Welcome { nick, .. } if self.phase == Phase::LoggingIn => {
                self.nick = nick.clone();
                self.phase = Phase::LoggedIn;
                // A new session: the server's bucket for it starts full.
                self.pacing.refilled(now);
                self.established = true;
                self.logged_in_once = true;
                self.next_rtt = Some(now + RTT_REPORT);
                // Rooms resumed in the login are rejoined by the server; join
                // the others (rooms asked for before we ever got in).
                let resumed = !self.seen.resume().is_empty();
                for room in self.rooms.iter().filter(|r| !self.seen.is_tracked(r)) {
                    if !resumed && room == udpchat_chat::LOBBY {
                        continue;
                    }
                    self.control.push_back(ClientMsg::Join { room: room.clone() });
                }
            }
            // The server is busy, or this address must wait: end this
            // connection; with `reconnect`, a later attempt may succeed.
            ServerMsg::LoginRefused { code: RefuseCode::ServerFull | RefuseCode::TooManyAttempts, text }
                if self.config.reconnect =>
            {
                return Some(text.clone());
            }
            // A taken or invalid nickname can be retried with another
            // (Request::Login); a wrong password or a ban cannot.
            ServerMsg::LoginRefused { code, text }
                if !matches!(code, RefuseCode::NickTaken | RefuseCode::NickInvalid | RefuseCode::NickRegistered) =>
            {
                self.quitting = true;
                self.end_reason = Some(format!("login refused: {text}"));
                return Some(text.clone());
            }
            ServerMsg::Limits { max_line_bytes, rate_burst, rate_milli } => {
                self.pacing.set(*max_line_bytes, *rate_burst, *rate_milli, now);
                self.resends = true;
            }
            ServerMsg::Joined { room, .. } => {
                self.rooms.insert(room.clone());
            }
            ServerMsg::Parted { room } => {
                self.rooms.remove(room);
            }
            ServerMsg::Notice { kind: NoticeKind::Nick, nick, text, .. } if *nick == self.nick => {
                self.nick = text.clone();
            }
            _ => {}
        }
        None
    }

    /// Our line `id` as the others saw it, once the server acknowledged it.
    fn delivered(&mut self, now: Instant, id: u64, room: &str, seq: u64) -> Option<ClientEvent> {
        let time_ms = self.wall_ms(now);
        let msg = match self.outbox.answered(id)? {
            ClientMsg::Say { text, action, .. } => ServerMsg::Line(Line {
                room: room.to_owned(),
                seq,
                time_ms,
                from: self.nick.clone(),
                text,
                kind: if action { LineKind::Action } else { LineKind::Normal },
                history: false,
            }),
            ClientMsg::Private { to, text, .. } => {
                ServerMsg::Private { id, seq, from: self.nick.clone(), to, text, time_ms, history: false }
            }
            _ => return None,
        };
        Some(ClientEvent::Delivered { id, msg })
    }
}
