//! What the chat core's tests share: an in-memory [`Store`], an [`Outlet`]
//! that records every message per session (and can play a full queue),
//! and a [`Harness`] that plays the driver without sockets or threads:
//! it ends batches, runs the core's store requests when the test says so
//! (or holds them back, to stand for a slow disk), and feeds the
//! completions back.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use udpchat_chat::{ClientMsg, ServerMsg};
use udpchat_proto::{ClientConfig, CloseReason, ConnectionHandle, Endpoint, SendError};
use udpchat_server::settings::Settings;
use udpchat_server::store::{Account, AdminChange, AdminState, Line, Retention, Store, StoreError, StoredPrivate};
use udpchat_server::{ChatServer, Clock, Outlet, StoreRequest};

#[derive(Default)]
struct Data {
    lines: BTreeMap<(String, u64), Line>,
    privates: Vec<StoredPrivate>,
    accounts: BTreeMap<String, Account>,
    /// Client origins' marks (exactly-once resends), as committed.
    origins: BTreeMap<u64, u64>,
    /// Bans (target to expiry), topics and room retention, as operators
    /// set them.
    bans: BTreeMap<String, u64>,
    topics: BTreeMap<String, String>,
    /// Rooms' retention as the operator set it.
    retention: BTreeMap<String, Retention>,
    /// Appends fail as on a full disk.
    full: bool,
}

/// History and accounts in memory. Clones share the data, as a reader
/// connection shares the writer's database.
#[derive(Clone, Default)]
pub struct MemoryStore(Arc<Mutex<Data>>);

impl MemoryStore {
    pub fn set_full(&self, full: bool) {
        self.0.lock().unwrap().full = full;
    }

    pub fn add_account(&self, name: &str, password: &str, operator: bool) {
        let hash = udpchat_server::chat::hash_password(password).unwrap();
        let account = Account { name: name.into(), hash, operator, rate: 0 };
        self.0.lock().unwrap().accounts.insert(udpchat_chat::names::fold(name), account);
    }

    /// Gives an account its own rate (requests per second).
    pub fn set_rate(&self, name: &str, rate: u32) {
        if let Some(a) = self.0.lock().unwrap().accounts.get_mut(&udpchat_chat::names::fold(name)) {
            a.rate = rate;
        }
    }

    /// Every stored line of `room`, oldest first.
    pub fn lines(&self, room: &str) -> Vec<Line> {
        self.lines_after(room, 0, usize::MAX).unwrap()
    }

    pub fn privates(&self) -> Vec<StoredPrivate> {
        self.0.lock().unwrap().privates.clone()
    }
}

impl Store for MemoryStore {
    fn append<'a>(
        &mut self,
        lines: &mut dyn Iterator<Item = &'a Line>,
        privates: &mut dyn Iterator<Item = &'a mut StoredPrivate>,
        origins: &[(u64, u64)],
    ) -> Result<(), StoreError> {
        let mut data = self.0.lock().unwrap();
        if data.full {
            return Err(StoreError::Full);
        }
        let lines: Vec<&Line> = lines.collect();
        if lines.iter().any(|l| data.lines.contains_key(&(l.room.clone(), l.seq))) {
            return Err(StoreError::Sqlite("UNIQUE constraint failed: lines.room, lines.seq".into()));
        }
        for l in lines {
            data.lines.insert((l.room.clone(), l.seq), l.clone());
        }
        for p in privates {
            p.id = data.privates.last().map_or(1, |q| q.id + 1);
            data.privates.push(p.clone());
        }
        for &(origin, id) in origins {
            let mark = data.origins.entry(origin).or_default();
            *mark = (*mark).max(id);
        }
        Ok(())
    }

    fn apply(&mut self, change: &AdminChange) -> Result<(), StoreError> {
        let mut data = self.0.lock().unwrap();
        match change {
            AdminChange::Ban { target, expires_ms, .. } => {
                data.bans.insert(target.clone(), *expires_ms);
            }
            AdminChange::Unban { target } => {
                data.bans.remove(target);
            }
            AdminChange::Topic { room, topic } if topic.is_empty() => {
                data.topics.remove(room);
            }
            AdminChange::Topic { room, topic } => {
                data.topics.insert(room.clone(), topic.clone());
            }
            AdminChange::AccountRate { account, rate } => {
                if let Some(a) = data.accounts.get_mut(account) {
                    a.rate = *rate;
                }
            }
            AdminChange::Retention { room, retention: None } => {
                data.retention.remove(room);
            }
            AdminChange::Retention { room, retention: Some(r) } => {
                data.retention.insert(room.clone(), *r);
            }
        }
        Ok(())
    }

    fn admin_state(&self) -> Result<AdminState, StoreError> {
        let data = self.0.lock().unwrap();
        Ok(AdminState {
            bans: data.bans.iter().map(|(t, e)| (t.clone(), *e)).collect(),
            topics: data.topics.iter().map(|(r, t)| (r.clone(), t.clone())).collect(),
            retention: data.retention.iter().map(|(r, k)| (r.clone(), *k)).collect(),
        })
    }

    fn origins(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        Ok(self.0.lock().unwrap().origins.iter().map(|(o, id)| (*o, *id)).collect())
    }

    fn room_heads(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let data = self.0.lock().unwrap();
        let mut heads: BTreeMap<String, u64> = BTreeMap::new();
        for (room, seq) in data.lines.keys() {
            heads.insert(room.clone(), *seq);
        }
        Ok(heads.into_iter().collect())
    }

    fn lines_after(&self, room: &str, after: u64, limit: usize) -> Result<Vec<Line>, StoreError> {
        let data = self.0.lock().unwrap();
        let range = (room.to_owned(), after + 1)..(room.to_owned(), u64::MAX);
        Ok(data.lines.range(range).take(limit).map(|(_, l)| l.clone()).collect())
    }

    fn lines_before(&self, room: &str, before: u64, limit: usize) -> Result<Vec<Line>, StoreError> {
        let data = self.0.lock().unwrap();
        let before = if before == 0 { u64::MAX } else { before };
        let range = (room.to_owned(), 0)..(room.to_owned(), before);
        let mut lines: Vec<Line> = data.lines.range(range).rev().take(limit).map(|(_, l)| l.clone()).collect();
        lines.reverse();
        Ok(lines)
    }

    fn privates_after(&self, recipient: &str, after: u64, limit: usize) -> Result<Vec<StoredPrivate>, StoreError> {
        let data = self.0.lock().unwrap();
        Ok(data.privates.iter().filter(|p| p.recipient == recipient && p.id > after).take(limit).cloned().collect())
    }

    fn account(&self, folded: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.0.lock().unwrap().accounts.get(folded).cloned())
    }

    fn put_account(&mut self, folded: &str, account: &Account) -> Result<(), StoreError> {
        self.0.lock().unwrap().accounts.insert(folded.into(), account.clone());
        Ok(())
    }

    fn delete_account(&mut self, folded: &str) -> Result<bool, StoreError> {
        Ok(self.0.lock().unwrap().accounts.remove(folded).is_some())
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        Ok(self.0.lock().unwrap().accounts.values().cloned().collect())
    }

    fn prune(&mut self, room: &str, retention: Retention, now_ms: u64, batch: usize) -> Result<usize, StoreError> {
        let mut data = self.0.lock().unwrap();
        let seqs: Vec<u64> = data.lines.keys().filter(|(r, _)| r == room).map(|(_, s)| *s).collect();
        let Some(&head) = seqs.last() else { return Ok(0) };
        let keep = retention.max_lines.unwrap_or(u64::MAX);
        let min_time = retention.max_age_ms.map_or(0, |age| now_ms.saturating_sub(age));
        let mut n = 0;
        for seq in seqs.into_iter().take(batch) {
            let key = (room.to_owned(), seq);
            let old = data.lines[&key].time_ms < min_time;
            if seq < head && (seq + keep <= head || old) {
                data.lines.remove(&key);
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Every message the core sent, per session, and the closes.
#[derive(Default)]
pub struct Recorder {
    pub sent: HashMap<ConnectionHandle, Vec<ServerMsg>>,
    pub closed: HashMap<ConnectionHandle, (u64, String)>,
    /// Sessions whose queue is full: `send` is refused, replies (which
    /// may use the reserve) still go.
    pub full: HashSet<ConnectionHandle>,
    /// Sessions whose reading is paused (flood control's back-pressure).
    pub paused: HashSet<ConnectionHandle>,
    /// How often reading was paused, per session.
    pub pauses: HashMap<ConnectionHandle, usize>,
}

impl Outlet for Recorder {
    fn send(&mut self, to: ConnectionHandle, bytes: &[u8]) -> Result<(), SendError> {
        if self.full.contains(&to) {
            return Err(SendError::Blocked);
        }
        self.sent.entry(to).or_default().push(ServerMsg::decode(bytes).expect("the server speaks the protocol"));
        Ok(())
    }

    fn send_reply(&mut self, to: ConnectionHandle, bytes: &[u8]) -> Result<(), SendError> {
        self.sent.entry(to).or_default().push(ServerMsg::decode(bytes).expect("the server speaks the protocol"));
        Ok(())
    }

    fn close(&mut self, h: ConnectionHandle, code: u64, reason: &str) {
        self.closed.insert(h, (code, reason.to_owned()));
    }

    fn set_reading(&mut self, h: ConnectionHandle, reading: bool) {
        if reading {
            self.paused.remove(&h);
        } else {
            self.paused.insert(h);
            *self.pauses.entry(h).or_default() += 1;
        }
    }
}

/// Settings for tests: no console output, no flood limit unless a test
/// sets one.
pub fn settings() -> Settings {
    Settings { console_log: false, rate_per_second: 0.0, ..Settings::default() }
}

/// Plays the driver.
pub struct Harness {
    pub chat: ChatServer,
    pub store: MemoryStore,
    pub out: Recorder,
    pub now: Instant,
    pub unix_ms: u64,
    /// Store requests made and not yet run.
    pub requests: Vec<StoreRequest>,
    /// Only a source of distinct session handles: it never sends.
    handles: Endpoint,
}

impl Harness {
    pub fn new(settings: Settings) -> Self {
        Self::with_store(settings, MemoryStore::default())
    }

    pub fn with_store(settings: Settings, store: MemoryStore) -> Self {
        let mut chat = ChatServer::new(settings, &store).unwrap();
        chat.set_time_zone(jiff::tz::TimeZone::UTC);
        Self {
            chat,
            store,
            out: Recorder::default(),
            now: Instant::now(),
            unix_ms: 1_763_745_481_000,
            requests: Vec::new(),
            handles: Endpoint::new([7; 32], None).unwrap(),
        }
    }

    pub fn clock(&self) -> Clock {
        Clock { now: self.now, unix_ms: self.unix_ms }
    }

    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.unix_ms += by.as_millis() as u64;
    }

    /// A new session from `addr` ("192.0.2.1:1000").
    pub fn connect(&mut self, addr: &str) -> ConnectionHandle {
        let addr: SocketAddr = addr.parse().unwrap();
        let h = self.handles.connect(self.now, addr, ClientConfig::default()).unwrap();
        let clock = self.clock();
        self.chat.connected(clock, h, addr, &mut self.out);
        h
    }

    /// A message from `h`, without ending the batch.
    pub fn send(&mut self, h: ConnectionHandle, msg: ClientMsg) {
        let clock = self.clock();
        self.chat.message(clock, h, &msg.to_bytes(), &mut self.out);
    }

    /// Ends the batch: the core commits, and the store requests are
    /// collected (not run).
    pub fn end_batch(&mut self) {
        self.chat.commit();
        self.requests.extend(self.chat.take_store_requests());
    }

    /// Runs the store requests (those `run` picks) and feeds their
    /// completions back, until none that `run` picks is left. Returns how
    /// many ran.
    pub fn run_store_where(&mut self, run: impl Fn(&StoreRequest) -> bool) -> usize {
        let mut ran = 0;
        loop {
            self.end_batch();
            let Some(i) = self.requests.iter().position(&run) else { return ran };
            let request = self.requests.remove(i);
            let completion = request.run(&mut self.store);
            let clock = self.clock();
            self.chat.completed(clock, completion, &mut self.out);
            ran += 1;
        }
    }

    /// Runs every store request, as a fast disk would.
    pub fn settle(&mut self) -> usize {
        self.run_store_where(|_| true)
    }

    /// A message from `h`, then the end of the batch, with the store
    /// running.
    pub fn request(&mut self, h: ConnectionHandle, msg: ClientMsg) {
        self.send(h, msg);
        self.settle();
    }

    /// Lets time pass until every held request (flood control) has been
    /// handled, with the store running. Returns how many waits it took.
    pub fn release_all(&mut self) -> usize {
        let mut waits = 0;
        while let Some(at) = self.chat.next_release() {
            if at > self.now {
                self.advance(at - self.now);
            }
            let clock = self.clock();
            self.chat.release_held(clock, &mut self.out);
            self.settle();
            waits += 1;
            assert!(waits < 1_000_000, "held requests never drain");
        }
        waits
    }

    /// Connects and logs in `nick` (no passwords, nothing to resume).
    pub fn login(&mut self, nick: &str) -> ConnectionHandle {
        let h = self.connect("192.0.2.1:1000");
        self.login_as(h, nick, "", Vec::new());
        let got = self.take(h);
        assert!(got.iter().any(|m| matches!(m, ServerMsg::Welcome { .. })), "{got:?}");
        h
    }

    pub fn login_as(&mut self, h: ConnectionHandle, nick: &str, account_password: &str, resume: Vec<(String, u64)>) {
        self.login_from(h, nick, account_password, resume, 0);
    }

    /// Logs in as the client instance `origin` (exactly-once resends).
    pub fn login_from(
        &mut self,
        h: ConnectionHandle,
        nick: &str,
        account_password: &str,
        resume: Vec<(String, u64)>,
        origin: u64,
    ) {
        let login = ClientMsg::Login {
            nick: nick.into(),
            server_password: String::new(),
            account_password: account_password.into(),
            resume,
            private_since: 0,
            origin,
        };
        self.send(h, login);
        self.settle();
        // Password checks run here as the driver's blocking threads would.
        for check in self.chat.take_verifications() {
            let ok = check.check();
            let clock = self.clock();
            self.chat.verified(clock, check.session, ok, &mut self.out);
        }
        self.settle();
    }

    /// What `h` received since the last call.
    pub fn take(&mut self, h: ConnectionHandle) -> Vec<ServerMsg> {
        self.out.sent.remove(&h).unwrap_or_default()
    }

    pub fn close(&mut self, h: ConnectionHandle, reason: CloseReason) {
        let clock = self.clock();
        self.chat.closed(clock, h, &reason, &mut self.out);
    }

    /// `h`'s queue fills up (true) or has room again (false, with the
    /// Writable event).
    pub fn set_full(&mut self, h: ConnectionHandle, full: bool) {
        if full {
            self.out.full.insert(h);
        } else {
            self.out.full.remove(&h);
            self.chat.writable(h);
        }
    }
}

pub fn say(id: u64, room: &str, text: &str) -> ClientMsg {
    ClientMsg::Say { id, room: room.into(), text: text.into(), action: false }
}

pub fn join(room: &str) -> ClientMsg {
    ClientMsg::Join { room: room.into() }
}

/// The (seq, text, history) of the room Lines in `msgs`.
/// (id, seq) of the acknowledgements among `msgs`.
pub fn acks(msgs: &[ServerMsg]) -> Vec<(u64, u64)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Ack { id, seq, .. } => Some((*id, *seq)),
            _ => None,
        })
        .collect()
}

pub fn lines(msgs: &[ServerMsg]) -> Vec<(u64, String, bool)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Line(l) => Some((l.seq, l.text.clone(), l.history)),
            _ => None,
        })
        .collect()
}

/// The sequence numbers of the live (history 0) Lines of `room`.
pub fn live_seqs(msgs: &[ServerMsg], room: &str) -> Vec<u64> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Line(l) if l.room == room && !l.history => Some(l.seq),
            _ => None,
        })
        .collect()
}

/// A stored line, for filling a store before a test.
pub fn stored(room: &str, seq: u64, text: &str) -> Line {
    Line {
        room: room.into(),
        seq,
        time_ms: 1000 * seq,
        from: "old".into(),
        text: text.into(),
        kind: udpchat_chat::LineKind::Normal,
        history: false,
    }
}
