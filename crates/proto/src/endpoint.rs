//! The endpoint: every session of one socket, in one object with no locks.
//!
//! The driver feeds it received datagrams ([`Endpoint::handle`]) and the
//! passing of time ([`Endpoint::handle_timeout`]), and drains it of
//! datagrams to send ([`Endpoint::poll_transmit`]), application events
//! ([`Endpoint::poll_event`]) and the next deadline
//! ([`Endpoint::poll_timeout`]), as quinn-proto and str0m do. Work per call
//! does not grow with the number of sessions: sessions are found by
//! connection id in a hash map, deadlines live in a heap, and sessions with
//! something to send wait in a queue.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::config::{ClientConfig, ConfigError, ServerConfig};
use crate::connection::{
    ClientConnecting, Connection, ConnectionStats, DataPacket, Events, MIN_PEER_WINDOW, Path, Side, State,
};
use crate::crypto::{ClientHandshake, PublicKey, ServerHandshake};
use crate::event::{Event, SendError, code};
use crate::handle::ConnectionHandle;
use crate::handshake_limit::HandshakeLimiter;
use crate::packet::{
    ConnectionId, Datagram, Handshake, Initial, MAX_DATAGRAM_SIZE, MIN_INITIAL_SIZE, Retry, STATELESS_RESET_SIZE,
    SUPPORTED_VERSIONS, VERSION_1, VersionNegotiation, encode_stateless_reset,
};
use crate::params::TransportParams;
use crate::reset::{ResetKey, ResetLimiter, ResetToken};
use crate::retry::RetryTokens;

/// Most stateless replies (RETRY, VERSION_NEGOTIATION) waiting to be sent;
/// beyond it they are dropped, which is safe since the client retransmits.
const MAX_STATELESS_QUEUE: usize = 1024;
/// Addresses remembered per generation by the stateless-reset limiter
/// (docs/PROTOCOL.md §5.5): about 1 MiB for both generations at most.
const MAX_RESET_ADDRESSES: usize = 16_384;

/// One or more datagrams for one destination, in the buffer given to
/// [`Endpoint::poll_transmit`]. With `segment_size`, the buffer holds
/// datagrams of exactly that size but the last (send with UDP GSO, or as
/// separate datagrams).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub size: usize,
    pub segment_size: Option<usize>,
}

/// Counters of what the endpoint dropped or refused, for operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    pub datagrams_received: u64,
    pub bytes_received: u64,
    /// Datagrams and bytes handed out by [`Endpoint::poll_transmit`]
    /// (a GSO batch counts as its datagrams).
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// Packets declared lost (their data is sent again) and probe timeouts
    /// (each resends the oldest unacknowledged data): of ended sessions
    /// only in [`Endpoint::stats`], of every session in
    /// [`Endpoint::totals`].
    pub packets_lost: u64,
    pub probe_timeouts: u64,
    /// Unparseable, wrong type for our role, or short INITIALs.
    pub dropped_invalid: u64,
    /// DATA for a connection id we do not have.
    pub dropped_unknown_session: u64,
    pub handshakes_accepted: u64,
    pub handshakes_failed: u64,
    pub retries_sent: u64,
    pub version_negotiations_sent: u64,
    pub handshakes_rate_limited: u64,
    pub stateless_resets_sent: u64,
    /// Stateless resets not sent because of their size or rate bounds.
    pub resets_rate_limited: u64,
}

struct Slot {
    generation: u32,
    conn: Option<Connection>,
    timer: Option<Instant>,
    in_ready: bool,
    /// Server sessions: the (client address, client cid) of the INITIAL.
    initial_key: Option<(SocketAddr, ConnectionId)>,
    /// Server sessions not yet confirmed by their client.
    half_open: bool,
}

struct ServerState {
    config: ServerConfig,
    retry: Option<RetryTokens>,
    limiter: HandshakeLimiter,
    /// Sessions by (client address, client cid) of their INITIAL, for their
    /// whole life, so a retransmitted or late INITIAL never opens a second
    /// session.
    by_initial: HashMap<(SocketAddr, ConnectionId), u32>,
    half_open: usize,
    reset_key: ResetKey,
    reset_limiter: ResetLimiter,
}

pub struct Endpoint {
    server: Option<ServerState>,
    rng: ChaCha20Rng,
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
    by_cid: HashMap<ConnectionId, u32>,
    /// Client sessions by the reset token their server gave them.
    by_reset_token: HashMap<ResetToken, u32>,
    events: Events,
    ready: VecDeque<u32>,
    timers: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    stateless: VecDeque<(SocketAddr, Vec<u8>)>,
    scratch: Vec<u8>,
    plaintext: Vec<u8>,
    stats: EndpointStats,
}

impl Endpoint {
    /// `seed` feeds every random choice the endpoint makes (keys,
    /// connection ids, cookies): pass 32 bytes from the OS in production and
    /// a fixed seed in tests. `server` enables accepting sessions.
    pub fn new(seed: [u8; 32], server: Option<ServerConfig>) -> Result<Self, ConfigError> {
        let server = match server {
            Some(config) => {
                config.validate()?;
                Some(ServerState {
                    reset_key: ResetKey::new(&config.key),
                    limiter: HandshakeLimiter::new(
                        config.handshake_rate,
                        config.validated_handshake_rate,
                        config.rate_limit_entries,
                    ),
                    config,
                    retry: None,
                    by_initial: HashMap::new(),
                    half_open: 0,
                    reset_limiter: ResetLimiter::new(MAX_RESET_ADDRESSES),
                })
            }
            None => None,
        };
        Ok(Self {
            server,
            rng: ChaCha20Rng::from_seed(seed),
            slots: Vec::new(),
            free: Vec::new(),
            live: 0,
            by_cid: HashMap::new(),
            by_reset_token: HashMap::new(),
            events: Events::default(),
            ready: VecDeque::new(),
            timers: BinaryHeap::new(),
            stateless: VecDeque::new(),
            scratch: Vec::with_capacity(MAX_DATAGRAM_SIZE),
            plaintext: Vec::with_capacity(MAX_DATAGRAM_SIZE),
            stats: EndpointStats::default(),
        })
    }

    fn random_seed(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.rng.fill_bytes(&mut s);
        s
    }

    fn new_cid(&mut self) -> ConnectionId {
        loop {
            let mut cid = [0u8; 8];
            self.rng.fill_bytes(&mut cid);
            if !self.by_cid.contains_key(&cid) {
                return cid;
            }
        }
    }

    fn alloc_slot(&mut self) -> ConnectionHandle {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                    timer: None,
                    in_ready: false,
                    initial_key: None,
                    half_open: false,
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.live += 1;
        ConnectionHandle { index, generation: self.slots[index as usize].generation }
    }

    fn conn_mut(&mut self, h: ConnectionHandle) -> Option<&mut Connection> {
        let slot = self.slots.get_mut(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.conn.as_mut()
    }

    fn conn(&self, h: ConnectionHandle) -> Option<&Connection> {
        let slot = self.slots.get(h.index as usize)?;
        if slot.generation != h.generation {
            return None;
        }
        slot.conn.as_ref()
    }

    /// Opens a session to a server. The INITIAL leaves with the next
    /// [`poll_transmit`](Self::poll_transmit).
    pub fn connect(
        &mut self,
        now: Instant,
        remote: SocketAddr,
        config: ClientConfig,
    ) -> Result<ConnectionHandle, ConfigError> {
        config.transport.validate()?;
        let cid = self.new_cid();
        let handle = self.alloc_slot();
        let mut params = Vec::new();
        TransportParams {
            idle_timeout: config.transport.idle_timeout,
            initial_max_data: config.transport.receive_window,
            connection_id: None,
            reset_token: None,
        }
        .encode(&mut params);
        let mut msg1 = Vec::new();
        let seed = self.random_seed();
        let handshake = ClientHandshake::start(seed, VERSION_1, &cid, &params, &mut msg1);
        let mut datagram = Vec::with_capacity(MIN_INITIAL_SIZE);
        Initial { version: VERSION_1, client_cid: cid, token: &[], noise: &msg1 }.encode(&mut datagram);
        let state = State::Connecting(Box::new(ClientConnecting {
            handshake,
            datagram,
            noise_msg1: msg1,
            retries_accepted: 0,
            send_pending: true,
            first_sent: None,
            last_sent: None,
            retransmits: 0,
            expected_key: config.server_key,
        }));
        let conn = Connection::new(
            handle,
            Side::Client,
            state,
            cid,
            [0; 8],
            Path::new(remote, true),
            config.transport,
            config.handshake_timeout,
            now,
        );
        self.install(handle, cid, conn, None);
        Ok(handle)
    }

    fn install(
        &mut self,
        h: ConnectionHandle,
        cid: ConnectionId,
        conn: Connection,
        initial_key: Option<(SocketAddr, ConnectionId)>,
    ) {
        self.by_cid.insert(cid, h.index);
        let slot = &mut self.slots[h.index as usize];
        slot.conn = Some(conn);
        slot.initial_key = initial_key;
        if let (Some(key), Some(server)) = (initial_key, &mut self.server) {
            server.by_initial.insert(key, h.index);
            server.half_open += 1;
            slot.half_open = true;
        }
        self.refresh(h.index);
    }

    /// Takes one received datagram. Anything that is not a valid packet for
    /// a known session or an acceptable handshake is dropped silently.
    pub fn handle(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.stats.datagrams_received += 1;
        self.stats.bytes_received += datagram.len() as u64;
        let Ok(parsed) = Datagram::parse(datagram) else {
            self.stats.dropped_invalid += 1;
            return;
        };
        match parsed {
            Datagram::Data { header, ciphertext } => {
                let Some(&index) = self.by_cid.get(&header.dest_cid) else {
                    self.stats.dropped_unknown_session += 1;
                    self.send_reset(now, from, &header.dest_cid, datagram.len());
                    return;
                };
                let slot = &mut self.slots[index as usize];
                let Some(conn) = slot.conn.as_mut() else { return };
                let packet = DataPacket { from, pn: header.packet_number, ciphertext, datagram_len: datagram.len() };
                conn.handle_data(now, packet, &mut self.plaintext, &mut self.events);
                if slot.half_open && conn.confirmed {
                    slot.half_open = false;
                    if let Some(server) = &mut self.server {
                        server.half_open -= 1;
                    }
                }
                self.refresh(index);
            }
            Datagram::Initial(initial) => self.handle_initial(now, from, &initial, datagram.len()),
            Datagram::Handshake(Handshake { version, client_cid, noise }) => {
                if let Some(index) = self.client_connecting(from, &client_cid, version) {
                    let conn = self.slots[index as usize].conn.as_mut().expect("checked");
                    conn.handle_handshake(now, noise, &mut self.events);
                    if let Some(token) = conn.reset_token {
                        self.by_reset_token.insert(token, index);
                    }
                    self.refresh(index);
                }
            }
            Datagram::Retry(Retry { version, client_cid, token }) => {
                if let Some(index) = self.client_connecting(from, &client_cid, version) {
                    let conn = self.slots[index as usize].conn.as_mut().expect("checked");
                    conn.handle_retry(token);
                    self.refresh(index);
                }
            }
            Datagram::StatelessReset { token } => {
                let Some(&index) = self.by_reset_token.get(&token) else {
                    self.stats.dropped_invalid += 1;
                    return;
                };
                let Some(conn) = self.slots[index as usize].conn.as_mut() else { return };
                if conn.remote() == from {
                    conn.handle_reset(&mut self.events);
                    self.refresh(index);
                }
            }
            Datagram::VersionNegotiation(VersionNegotiation { client_cid, versions }) => {
                if let Some(index) = self.client_connecting(from, &client_cid, VERSION_1) {
                    let conn = self.slots[index as usize].conn.as_mut().expect("checked");
                    conn.handle_version_negotiation(&versions, &mut self.events);
                    self.refresh(index);
                }
            }
        }
    }

    /// The client session a handshake-phase packet is for, if it came from
    /// the server that session dialled.
    fn client_connecting(&mut self, from: SocketAddr, cid: &ConnectionId, version: u32) -> Option<u32> {
        let index = *self.by_cid.get(cid)?;
        let conn = self.slots[index as usize].conn.as_ref()?;
        let ok = conn.side == Side::Client
            && matches!(conn.state, State::Connecting(_))
            && conn.remote() == from
            && version == VERSION_1;
        if !ok {
            self.stats.dropped_invalid += 1;
        }
        ok.then_some(index)
    }

    /// Answers a DATA packet for a session we do not have (server role):
    /// the client learns at once that its session is gone. The reply is
    /// smaller than the packet, one per address per 250 ms, and the total
    /// rate is bounded (docs/PROTOCOL.md §5.5).
    fn send_reset(&mut self, now: Instant, to: SocketAddr, cid: &ConnectionId, trigger_len: usize) {
        let Some(server) = &mut self.server else { return };
        if !server.config.stateless_reset {
            return;
        }
        if !server.reset_limiter.admit(now, to, trigger_len, server.config.reset_rate) {
            self.stats.resets_rate_limited += 1;
            return;
        }
        let mut out = Vec::with_capacity(STATELESS_RESET_SIZE);
        encode_stateless_reset(&server.reset_key.token(cid), &mut out);
        self.stats.stateless_resets_sent += 1;
        self.queue_stateless(to, out);
    }

    fn queue_stateless(&mut self, to: SocketAddr, bytes: Vec<u8>) {
        if self.stateless.len() < MAX_STATELESS_QUEUE {
            self.stateless.push_back((to, bytes));
        }
    }

    fn handle_initial(&mut self, now: Instant, from: SocketAddr, init: &Initial<'_>, len: usize) {
        let Some(server) = &mut self.server else {
            self.stats.dropped_invalid += 1;
            return;
        };
        if !SUPPORTED_VERSIONS.contains(&init.version) {
            let mut out = Vec::new();
            VersionNegotiation { client_cid: init.client_cid, versions: SUPPORTED_VERSIONS.to_vec() }.encode(&mut out);
            self.stats.version_negotiations_sent += 1;
            self.queue_stateless(from, out);
            return;
        }
        if let Some(&index) = server.by_initial.get(&(from, init.client_cid)) {
            if let Some(conn) = self.slots[index as usize].conn.as_mut() {
                conn.handle_initial_retransmit(len);
            }
            self.refresh(index);
            return;
        }
        // Rotate the cookie key when due (lazily: nothing else needs time).
        let mut fresh = [[0u8; 32]; 2];
        self.rng.fill_bytes(&mut fresh[0]);
        self.rng.fill_bytes(&mut fresh[1]);
        let mut keys = fresh.into_iter();
        let retry = server.retry.get_or_insert_with(|| RetryTokens::new(now, || keys.next().unwrap_or_default()));
        retry.rotate(now, || fresh[1]);
        let proven = !init.token.is_empty() && retry.validate(now, from, &init.client_cid, init.token);
        let config = &server.config;
        if !proven {
            let must_retry = config.retry_always
                || server.half_open >= config.max_half_open
                || !server.limiter.admit(now, from.ip(), false);
            if must_retry {
                let token = retry.issue(now, from, &init.client_cid);
                let mut out = Vec::new();
                Retry { version: init.version, client_cid: init.client_cid, token: &token }.encode(&mut out);
                self.stats.retries_sent += 1;
                self.queue_stateless(from, out);
                return;
            }
        } else if !server.limiter.admit(now, from.ip(), true) {
            self.stats.handshakes_rate_limited += 1;
            return;
        }
        // Past capacity we still answer, to tell the client why, but only
        // while the overshoot stays within the half-open bound.
        if self.live >= config.max_connections + config.max_half_open {
            self.stats.handshakes_rate_limited += 1;
            return;
        }
        let refuse = (self.live >= config.max_connections).then_some(code::SERVER_BUSY);
        let key = config.key.clone();
        let transport_config = config.transport.clone();
        let handshake_timeout = config.handshake_timeout;

        let server_cid = self.new_cid();
        let reset_token = self.server.as_ref().map(|s| s.reset_key.token(&server_cid)).unwrap_or_default();
        let seed = self.random_seed();
        let mut client_params = None;
        let result = ServerHandshake::respond(&key, seed, init.version, &init.client_cid, init.noise, |payload| {
            let params = TransportParams::decode(payload).ok()?;
            if params.initial_max_data < MIN_PEER_WINDOW {
                return None;
            }
            client_params = Some(params);
            let mut out = Vec::new();
            TransportParams {
                idle_timeout: transport_config.idle_timeout,
                initial_max_data: transport_config.receive_window,
                connection_id: Some(server_cid),
                reset_token: Some(reset_token),
            }
            .encode(&mut out);
            Some(out)
        });
        let (Ok((msg2, transport)), Some(client_params)) = (result, client_params) else {
            self.stats.handshakes_failed += 1;
            return;
        };
        self.stats.handshakes_accepted += 1;
        let mut response = Vec::with_capacity(msg2.len() + 13);
        Handshake { version: init.version, client_cid: init.client_cid, noise: &msg2 }.encode(&mut response);

        let handle = self.alloc_slot();
        let mut path = Path::new(from, proven);
        path.bytes_received = len as u64;
        let mut conn = Connection::new(
            handle,
            Side::Server,
            State::Established,
            server_cid,
            init.client_cid,
            path,
            transport_config,
            handshake_timeout,
            now,
        );
        let usable = conn.apply_peer_params(&client_params);
        debug_assert!(usable, "window checked during the handshake");
        conn.set_transport(transport);
        conn.server_key = Some(key.public);
        conn.handshake_response = Some(response);
        conn.handshake_resend = true;
        conn.refuse = refuse;
        self.install(handle, server_cid, conn, Some((from, init.client_cid)));
    }

    /// Updates a session's timer and send-queue membership after anything
    /// touched it, and frees it once it is drained.
    /// Queues a session for `poll_transmit`. Queueing a message changes no
    /// deadline (they move when packets leave, in `poll_transmit`), so this
    /// is all a send needs: on a fan-out it runs once per recipient.
    fn mark_ready(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        if !slot.in_ready {
            slot.in_ready = true;
            self.ready.push_back(index);
        }
    }

    fn refresh(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        let Some(conn) = &slot.conn else { return };
        if conn.is_drained() {
            let conn = slot.conn.take().expect("checked");
            self.stats.packets_lost += conn.stats.packets_lost;
            self.stats.probe_timeouts += conn.stats.probe_timeouts;
            if let (Some(key), Some(server)) = (slot.initial_key.take(), &mut self.server) {
                server.by_initial.remove(&key);
                if std::mem::take(&mut slot.half_open) {
                    server.half_open -= 1;
                }
            }
            self.by_cid.remove(&conn.local_cid);
            if let Some(token) = conn.reset_token {
                self.by_reset_token.remove(&token);
            }
            slot.generation = slot.generation.wrapping_add(1);
            slot.timer = None;
            self.free.push(index);
            self.live -= 1;
            return;
        }
        let deadline = conn.poll_timeout();
        if deadline != slot.timer {
            slot.timer = deadline;
            if let Some(t) = deadline {
                self.timers.push(Reverse((t, index, slot.generation)));
            }
        }
        self.mark_ready(index);
        // Stale heap entries are skipped when popped; rebuild if they pile up.
        if self.timers.len() > 4 * self.live + 1024 {
            self.timers = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| s.timer.map(|t| Reverse((t, i as u32, s.generation))))
                .collect();
        }
    }

    /// The next time [`handle_timeout`](Self::handle_timeout) must run.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        while let Some(&Reverse((t, index, generation))) = self.timers.peek() {
            let slot = &self.slots[index as usize];
            if slot.generation == generation && slot.timer == Some(t) {
                return Some(t);
            }
            self.timers.pop();
        }
        None
    }

    /// Runs every timer that is due at `now`. Each session runs at most once
    /// per call, so a deadline that does not move cannot spin the caller.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(&Reverse((t, index, generation))) = self.timers.peek() {
            if t > now {
                break;
            }
            self.timers.pop();
            let slot = &mut self.slots[index as usize];
            if slot.generation == generation && slot.timer == Some(t) {
                slot.timer = None;
                due.push(index);
            }
        }
        for index in due {
            if let Some(conn) = self.slots[index as usize].conn.as_mut() {
                conn.handle_timeout(now, &mut self.events);
            }
            self.refresh(index);
        }
    }

    /// Writes the next datagrams to send into `buf` (cleared first): up to
    /// `max_datagrams` for one destination (pass 1 without GSO).
    pub fn poll_transmit(&mut self, now: Instant, max_datagrams: usize, buf: &mut Vec<u8>) -> Option<Transmit> {
        buf.clear();
        if let Some((destination, bytes)) = self.stateless.pop_front() {
            buf.extend_from_slice(&bytes);
            self.stats.datagrams_sent += 1;
            self.stats.bytes_sent += buf.len() as u64;
            return Some(Transmit { destination, size: buf.len(), segment_size: None });
        }
        while let Some(index) = self.ready.pop_front() {
            let slot = &mut self.slots[index as usize];
            slot.in_ready = false;
            let Some(conn) = slot.conn.as_mut() else { continue };
            let Some(destination) = conn.poll_transmit(now, buf, MAX_DATAGRAM_SIZE, None, &mut self.scratch) else {
                // Nothing to send: it leaves the queue, but sending may
                // have changed its timers (e.g. a dropped handshake resend).
                let deadline = conn.poll_timeout();
                if deadline != slot.timer {
                    slot.timer = deadline;
                    if let Some(t) = deadline {
                        self.timers.push(Reverse((t, index, slot.generation)));
                    }
                }
                continue;
            };
            let segment = buf.len();
            let mut count = 1;
            // Batch only full-size datagrams: smaller ones would force the
            // rest of the batch to be as small.
            if segment >= MAX_DATAGRAM_SIZE / 2 {
                while count < max_datagrams {
                    let before = buf.len();
                    if conn.poll_transmit(now, buf, segment, Some(destination), &mut self.scratch).is_none() {
                        break;
                    }
                    count += 1;
                    if buf.len() - before < segment {
                        break;
                    }
                }
            }
            self.refresh(index);
            let segment_size = (count > 1).then_some(segment);
            self.stats.datagrams_sent += count as u64;
            self.stats.bytes_sent += buf.len() as u64;
            return Some(Transmit { destination, size: buf.len(), segment_size });
        }
        None
    }

    pub fn poll_event(&mut self) -> Option<(ConnectionHandle, Event)> {
        self.events.pop_front()
    }

    /// Hands back the buffer of an [`Event::Message`] the application is
    /// done with, to carry a later message: optional, it saves an
    /// allocation per message for receivers that see many.
    pub fn recycle(&mut self, buf: Vec<u8>) {
        self.events.recycle(buf);
    }

    /// Queues a message. Fails without queueing anything when it is over the
    /// size limit, when the send buffer is full ([`SendError::Blocked`]: wait
    /// for [`Event::Writable`]), or when the session is closing.
    pub fn send(&mut self, h: ConnectionHandle, msg: &[u8]) -> Result<(), SendError> {
        let conn = self.conn_mut(h).ok_or(SendError::UnknownConnection)?;
        conn.send(msg, false)?;
        self.mark_ready(h.index);
        Ok(())
    }

    /// Queues a small reply (an acknowledgement, an error) that should not
    /// be refused just because bulk data filled the send buffer: it may use
    /// a reserve up to twice the buffer size. Past that it is `Blocked`
    /// like any message, so a peer that never reads still costs bounded
    /// memory.
    pub fn send_reply(&mut self, h: ConnectionHandle, msg: &[u8]) -> Result<(), SendError> {
        let conn = self.conn_mut(h).ok_or(SendError::UnknownConnection)?;
        conn.send(msg, true)?;
        self.mark_ready(h.index);
        Ok(())
    }

    /// Closes a session gracefully: queued messages are delivered first,
    /// then the peer is told `code` and `reason`. [`Event::Closed`] follows.
    pub fn close(&mut self, now: Instant, h: ConnectionHandle, code: u64, reason: &str) {
        let Some(slot) = self.slots.get_mut(h.index as usize) else { return };
        if slot.generation != h.generation {
            return;
        }
        if let Some(conn) = slot.conn.as_mut() {
            conn.close(now, code, reason, &mut self.events);
            self.refresh(h.index);
        }
    }

    /// Pauses (false) or resumes (true) handing the session's messages to
    /// the application: while paused, what arrives stays in the receive
    /// stream unconsumed, so the flow-control window is not extended and
    /// the peer blocks once it has sent a window's worth (back-pressure
    /// for an application that cannot keep up with one peer). Resuming
    /// delivers what waited, in order.
    pub fn set_reading(&mut self, now: Instant, h: ConnectionHandle, reading: bool) {
        let Some(slot) = self.slots.get_mut(h.index as usize) else { return };
        if slot.generation != h.generation {
            return;
        }
        if let Some(conn) = slot.conn.as_mut() {
            conn.reading = reading;
            if reading {
                conn.deliver_messages(now, &mut self.events);
                self.refresh(h.index);
            }
        }
    }

    pub fn remote_address(&self, h: ConnectionHandle) -> Option<SocketAddr> {
        self.conn(h).map(Connection::remote)
    }

    /// The server's key: for a client session once connected, for a server
    /// session its own.
    pub fn server_key(&self, h: ConnectionHandle) -> Option<PublicKey> {
        self.conn(h).and_then(|c| c.server_key)
    }

    pub fn connection_stats(&self, h: ConnectionHandle) -> Option<ConnectionStats> {
        self.conn(h).map(Connection::stats)
    }

    /// Bytes queued or unacknowledged on a session, for applications that
    /// want their own policy for slow readers.
    pub fn send_buffered(&self, h: ConnectionHandle) -> Option<usize> {
        self.conn(h).map(|c| c.send_stream.buffered())
    }

    /// Sessions that are not yet freed, including half-open and closing ones.
    pub fn connection_count(&self) -> usize {
        self.live
    }

    pub fn stats(&self) -> EndpointStats {
        self.stats
    }

    /// [`Endpoint::stats`] with the live sessions' losses and probe
    /// timeouts added: one pass over the sessions, for a metrics scrape.
    pub fn totals(&self) -> EndpointStats {
        let mut totals = self.stats;
        for conn in self.slots.iter().filter_map(|s| s.conn.as_ref()) {
            totals.packets_lost += conn.stats.packets_lost;
            totals.probe_timeouts += conn.stats.probe_timeouts;
        }
        totals
    }
}
