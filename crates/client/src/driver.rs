//! The client's network task: one [`Link`] (a UDP socket and the protocol
//! endpoint on it), and the session state a front end should not have to
//! track — login, rooms joined, lines awaiting acknowledgement,
//! reconnection with backoff.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout};
use udpchat_chat::{ClientMsg, Line, LineKind, NoticeKind, RefuseCode, ServerMsg};
use udpchat_proto::{ClientConfig, CloseReason, ConnectionHandle, Event, SendError, code};

use crate::known_hosts::KnownHosts;
use crate::link::Link;
use crate::seen::Seen;
use crate::{ClientError, ClientEvent, ClientOptions, Request};

/// Requests held while logging in or reconnecting; beyond this the oldest
/// line is dropped and reported as unconfirmed.
const MAX_OUTBOX: usize = 1000;
const RTT_REPORT: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

pub(crate) struct Driver {
    options: ClientOptions,
    server: SocketAddr,
    link: Link,
    known_hosts: Option<KnownHosts>,
    requests: mpsc::Receiver<Request>,
    events: mpsc::Sender<ClientEvent>,
    nick: String,
    rooms: BTreeSet<String>,
    outbox: VecDeque<ClientMsg>,
    /// Sent lines awaiting their Ack, to echo them back once accepted.
    unacked: HashMap<u64, ClientMsg>,
    logged_in: bool,
    quitting: Option<String>,
    /// Why the client stops, when it is not the user's own quit.
    end_reason: Option<String>,
    /// What each room has shown, for resuming and de-duplication.
    seen: Seen,
}

/// Whether a session end means trying again is pointless.
fn is_final(reason: &CloseReason) -> bool {
    match reason {
        CloseReason::KeyMismatch { .. } | CloseReason::VersionMismatch { .. } | CloseReason::ProtocolViolation(_) => {
            true
        }
        CloseReason::Peer { code: c, .. } => udpchat_chat::close::is_final(*c),
        _ => false,
    }
}

impl Driver {
    pub(crate) async fn new(
        options: ClientOptions,
        requests: mpsc::Receiver<Request>,
        events: mpsc::Sender<ClientEvent>,
    ) -> Result<Self, ClientError> {
        let server = tokio::net::lookup_host(&options.server)
            .await
            .map_err(|e| ClientError::Resolve(options.server.clone(), e.to_string()))?
            .next()
            .ok_or_else(|| ClientError::Resolve(options.server.clone(), "no addresses".into()))?;
        let known_hosts = options.known_hosts.as_deref().map(KnownHosts::load).transpose()?;
        let link = Link::client(server).map_err(ClientError::Socket)?;
        let rooms = options.rooms.iter().cloned().collect();
        Ok(Self {
            nick: options.nick.clone(),
            options,
            server,
            link,
            known_hosts,
            requests,
            events,
            rooms,
            outbox: VecDeque::new(),
            unacked: HashMap::new(),
            logged_in: false,
            quitting: None,
            end_reason: None,
            seen: Seen::default(),
        })
    }

    async fn emit(&self, event: ClientEvent) {
        let _ = self.events.send(event).await;
    }

    pub(crate) async fn run(mut self) {
        let mut attempt = 0u32;
        let reason = loop {
            attempt += 1;
            self.emit(ClientEvent::Connecting { attempt }).await;
            let (ended, established) = self.session().await;
            let unconfirmed: Vec<u64> = self.unacked.drain().map(|(id, _)| id).collect();
            if !unconfirmed.is_empty() {
                self.emit(ClientEvent::Unconfirmed { ids: unconfirmed }).await;
            }
            if self.quitting.is_some() {
                break self.end_reason.take().unwrap_or_else(|| "you left the server".into());
            }
            let stop = !self.options.reconnect || ended.1;
            self.emit(ClientEvent::Disconnected { reason: ended.0.clone(), reconnecting: !stop }).await;
            if stop {
                break ended.0;
            }
            if established {
                attempt = 0;
            }
            // Back off, but keep taking requests so the front end never blocks.
            let wait = Duration::from_secs(1u64 << attempt.min(4)).min(MAX_BACKOFF);
            let until = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    _ = sleep_until(until) => break,
                    req = self.requests.recv() => match req {
                        Some(req) => self.take_request(req),
                        None => self.quitting = Some(String::new()),
                    },
                }
                if self.quitting.is_some() {
                    break;
                }
            }
            if self.quitting.is_some() {
                break "quit".into();
            }
        };
        self.emit(ClientEvent::Closed { reason }).await;
    }

    /// Queues a request for the session (sent once logged in).
    fn take_request(&mut self, req: Request) {
        match req {
            Request::Send(msg) => {
                if self.outbox.len() >= MAX_OUTBOX
                    && let Some(msg @ (ClientMsg::Say { id, .. } | ClientMsg::Private { id, .. })) =
                        self.outbox.pop_front()
                {
                    self.unacked.insert(id, msg);
                }
                self.outbox.push_back(msg);
            }
            Request::Login(nick) => self.nick = nick,
            Request::History { room, count } => {
                let before = self.seen.history_before(&room);
                self.outbox.push_back(ClientMsg::History { room, before, limit: count });
            }
            Request::Quit(reason) => self.quitting = Some(reason),
        }
    }

    /// One session, from handshake to close. Returns (why it ended, whether
    /// it is final) and whether it got as far as logging in.
    async fn session(&mut self) -> ((String, bool), bool) {
        let pinned =
            self.options.server_key.or_else(|| self.known_hosts.as_ref().and_then(|k| k.get(&self.options.server)));
        let config = ClientConfig { server_key: pinned, ..ClientConfig::default() };
        let h = match self.link.endpoint.connect(Instant::now(), self.server, config) {
            Ok(h) => h,
            Err(e) => return ((format!("invalid client configuration: {e}"), true), false),
        };
        self.logged_in = false;
        let mut logged_in_once = false;
        let mut next_rtt = Instant::now() + RTT_REPORT;
        let mut quit_sent = false;
        loop {
            // Everything due: events first (they may queue sends), then packets.
            while let Some((_, event)) = self.link.endpoint.poll_event() {
                match event {
                    Event::Connected { server_key } => {
                        let first_use = pinned.is_none();
                        if first_use
                            && let Some(kh) = &mut self.known_hosts
                            && let Err(e) = kh.remember(&self.options.server, server_key)
                        {
                            tracing::warn!("{e}");
                        }
                        self.emit(ClientEvent::Connected { server_key, first_use }).await;
                        let _ = self.link.endpoint.send(h, &self.login_msg().to_bytes());
                    }
                    Event::Message(bytes) => match ServerMsg::decode(&bytes) {
                        Ok(msg) => {
                            if !self.is_new(&msg) {
                                continue;
                            }
                            if let Some(end) = self.on_server_msg(h, &msg) {
                                self.emit(ClientEvent::Server(msg)).await;
                                let now = Instant::now();
                                self.link.endpoint.close(now, h, code::NORMAL, &end);
                                continue;
                            }
                            if matches!(msg, ServerMsg::Welcome { .. }) {
                                logged_in_once = true;
                            }
                            if let ServerMsg::Ack { id, room, seq } = &msg
                                && let Some(delivered) = self.delivered(*id, room, *seq)
                            {
                                self.emit(delivered).await;
                            }
                            self.emit(ClientEvent::Server(msg)).await;
                        }
                        Err(e) => tracing::debug!("undecodable server message: {e}"),
                    },
                    Event::Closed(reason) => {
                        let fin = is_final(&reason) || self.quitting.is_some();
                        return ((reason.to_string(), fin), logged_in_once);
                    }
                    Event::Writable | Event::Migrated { .. } => {}
                }
            }
            if self.logged_in {
                self.flush_outbox(h);
            }
            if let (Some(reason), false) = (&self.quitting, quit_sent) {
                quit_sent = true;
                let bytes = ClientMsg::Quit { reason: reason.clone() }.to_bytes();
                let now = Instant::now();
                if self.logged_in {
                    let _ = self.link.endpoint.send(h, &bytes);
                }
                self.link.endpoint.close(now, h, code::NORMAL, "quit");
            }
            self.link.flush().await;
            let now = Instant::now();
            if now >= next_rtt {
                next_rtt = now + RTT_REPORT;
                if let Some(stats) = self.link.endpoint.connection_stats(h)
                    && self.logged_in
                {
                    self.emit(ClientEvent::Rtt(stats.rtt)).await;
                }
            }
            let deadline = self.link.endpoint.poll_timeout().unwrap_or(now + Duration::from_secs(60)).min(next_rtt);
            tokio::select! {
                r = self.link.readable() => {
                    if let Err(e) = r.and_then(|()| self.link.receive()) {
                        tracing::debug!("receive failed: {e}");
                    }
                }
                _ = sleep_until(deadline.into()) => self.link.endpoint.handle_timeout(Instant::now()),
                req = self.requests.recv(), if self.quitting.is_none() => match req {
                    Some(Request::Login(nick)) => {
                        self.nick = nick;
                        if !self.logged_in {
                            let _ = self.link.endpoint.send(h, &self.login_msg().to_bytes());
                        }
                    }
                    Some(req) => self.take_request(req),
                    None => self.quitting = Some(String::new()),
                },
            }
        }
    }

    /// Login, resuming the rooms we were in (with the last line seen in
    /// each) after a reconnect.
    fn login_msg(&self) -> ClientMsg {
        ClientMsg::Login {
            nick: self.nick.clone(),
            server_password: self.options.password.clone(),
            account_password: self.options.account_password.clone(),
            resume: self.seen.resume(),
            private_since: self.seen.private_since,
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
            ServerMsg::Ack { room, seq, .. } if !room.is_empty() => {
                self.seen.acked(room, *seq);
                // Our own lines are shown too: /history continues below them.
                self.seen.shown(room, *seq);
                true
            }
            _ => true,
        }
    }

    /// Updates session state from a server message. Returns a reason to end
    /// the session when the message makes it pointless to go on.
    fn on_server_msg(&mut self, h: ConnectionHandle, msg: &ServerMsg) -> Option<String> {
        match msg {
            ServerMsg::Welcome { nick, .. } => {
                self.nick = nick.clone();
                self.logged_in = true;
                // Rooms resumed in the login are rejoined by the server; join
                // the others (rooms asked for before we ever got in).
                let resumed = !self.seen.resume().is_empty();
                for room in self.rooms.clone().into_iter().filter(|r| !self.seen.is_tracked(r)) {
                    if !resumed && room == udpchat_chat::LOBBY {
                        continue;
                    }
                    let _ = self.link.endpoint.send(h, &ClientMsg::Join { room }.to_bytes());
                }
            }
            // The server is busy, or this address must wait: end this
            // session; with `reconnect`, a later attempt may succeed.
            ServerMsg::LoginRefused { code: RefuseCode::ServerFull | RefuseCode::TooManyAttempts, text }
                if self.options.reconnect =>
            {
                return Some(text.clone());
            }
            ServerMsg::LoginRefused { code, text }
                // A taken or invalid nickname can be retried with another;
                // a wrong password or a ban cannot.
                if !matches!(code, RefuseCode::NickTaken | RefuseCode::NickInvalid | RefuseCode::NickRegistered) => {
                    self.quitting = Some(String::new());
                    self.end_reason = Some(format!("login refused: {text}"));
                    return Some(text.clone());
                }
            ServerMsg::Joined { room, .. } => {
                self.rooms.insert(room.clone());
            }
            ServerMsg::Parted { room } => {
                self.rooms.remove(room);
            }
            ServerMsg::Error { id, .. } => {
                self.unacked.remove(id);
            }
            ServerMsg::Notice { kind: NoticeKind::Nick, nick, text, .. } if *nick == self.nick => {
                self.nick = text.clone();
            }
            _ => {}
        }
        None
    }

    /// Our line `id` as the others saw it, once the server acknowledged it.
    fn delivered(&mut self, id: u64, room: &str, seq: u64) -> Option<ClientEvent> {
        let time_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let msg = match self.unacked.remove(&id)? {
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

    fn flush_outbox(&mut self, h: ConnectionHandle) {
        while let Some(msg) = self.outbox.front() {
            match self.link.endpoint.send(h, &msg.to_bytes()) {
                Ok(()) => {
                    if let ClientMsg::Say { id, .. } | ClientMsg::Private { id, .. } = msg {
                        self.unacked.insert(*id, msg.clone());
                    }
                    if let ClientMsg::Part { room, .. } = msg {
                        self.rooms.remove(room);
                    }
                    self.outbox.pop_front();
                }
                Err(SendError::Blocked) => break,
                Err(_) => break,
            }
        }
    }
}

/// Waits up to `limit` for the first event matching `pred`, for tests and
/// scripts. Events before it are returned too.
pub async fn wait_for(
    events: &mut mpsc::Receiver<ClientEvent>,
    limit: Duration,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> Option<Vec<ClientEvent>> {
    let mut seen = Vec::new();
    timeout(limit, async {
        while let Some(e) = events.recv().await {
            let hit = pred(&e);
            seen.push(e);
            if hit {
                return Some(seen);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}
