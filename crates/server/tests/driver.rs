//! The real driver (socket, endpoint, store threads) with a store that
//! records the thread of every call and whose reads wait at a gate the
//! test holds shut: while a join's history read is stuck, a line in the
//! lobby is still stored, delivered and acknowledged, so the event loop
//! does not wait for the store; and no store call ever ran on the loop's
//! thread (every one ran on `store-writer` or `store-reader`).

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use support::{MemoryStore, settings, stored};
use udpchat_chat::{ClientMsg, ServerMsg};
use udpchat_proto::{ClientConfig, ConnectionHandle, Endpoint, Event, ServerKey};
use udpchat_server::driver::{Server, bind};
use udpchat_server::store::{Account, Line, Retention, Store, StoreError, StoredPrivate};

const WAIT: Duration = Duration::from_secs(10);

/// Open (true) or shut; reads wait while it is shut.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn set(&self, open: bool) {
        *self.0.0.lock().unwrap() = open;
        self.0.1.notify_all();
    }

    fn wait(&self) {
        let mut open = self.0.0.lock().unwrap();
        while !*open {
            open = self.0.1.wait(open).unwrap();
        }
    }
}

/// (method, thread name) of every call.
type Calls = Arc<Mutex<Vec<(&'static str, String)>>>;

struct Watched {
    inner: MemoryStore,
    gate: Option<Gate>,
    calls: Calls,
}

impl Watched {
    fn call(&self, method: &'static str) {
        let thread = std::thread::current().name().unwrap_or("unnamed").to_owned();
        self.calls.lock().unwrap().push((method, thread));
    }

    fn read(&self, method: &'static str) {
        self.call(method);
        if let Some(gate) = &self.gate {
            gate.wait();
        }
    }
}

impl Store for Watched {
    fn append<'a>(
        &mut self,
        lines: &mut dyn Iterator<Item = &'a Line>,
        privates: &mut dyn Iterator<Item = &'a mut StoredPrivate>,
        origins: &[(u64, u64)],
    ) -> Result<(), StoreError> {
        self.call("append");
        self.inner.append(lines, privates, origins)
    }
    fn room_heads(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.call("room_heads");
        self.inner.room_heads()
    }
    fn lines_after(&self, room: &str, after: u64, limit: usize) -> Result<Vec<Line>, StoreError> {
        self.read("lines_after");
        self.inner.lines_after(room, after, limit)
    }
    fn lines_before(&self, room: &str, before: u64, limit: usize) -> Result<Vec<Line>, StoreError> {
        self.read("lines_before");
        self.inner.lines_before(room, before, limit)
    }
    fn privates_after(&self, recipient: &str, after: u64, limit: usize) -> Result<Vec<StoredPrivate>, StoreError> {
        self.read("privates_after");
        self.inner.privates_after(recipient, after, limit)
    }
    fn account(&self, folded: &str) -> Result<Option<Account>, StoreError> {
        self.read("account");
        self.inner.account(folded)
    }
    fn put_account(&mut self, folded: &str, account: &Account) -> Result<(), StoreError> {
        self.call("put_account");
        self.inner.put_account(folded, account)
    }
    fn delete_account(&mut self, folded: &str) -> Result<bool, StoreError> {
        self.call("delete_account");
        self.inner.delete_account(folded)
    }
    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.read("accounts");
        self.inner.accounts()
    }
    fn prune(&mut self, room: &str, retention: Retention, now_ms: u64, batch: usize) -> Result<usize, StoreError> {
        self.call("prune");
        self.inner.prune(room, retention, now_ms, batch)
    }
}

/// A protocol client over a blocking socket.
struct Client {
    socket: UdpSocket,
    endpoint: Endpoint,
    h: ConnectionHandle,
    buf: Vec<u8>,
    got: Vec<ServerMsg>,
    connected: bool,
}

impl Client {
    fn connect(server: SocketAddr, seed: u8) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        let mut endpoint = Endpoint::new([seed; 32], None).unwrap();
        let h = endpoint.connect(Instant::now(), server, ClientConfig::default()).unwrap();
        Self { socket, endpoint, h, buf: Vec::new(), got: Vec::new(), connected: false }
    }

    /// Runs the protocol until `done` holds for what was received
    /// (true), or for `WAIT` (false).
    fn until(&mut self, mut done: impl FnMut(&[ServerMsg]) -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            self.step();
            if self.connected && done(&self.got) {
                return true;
            }
        }
        false
    }

    /// Sends what is due, takes the events, waits a little for a datagram.
    fn step(&mut self) {
        let now = Instant::now();
        self.endpoint.handle_timeout(now);
        while let Some(t) = self.endpoint.poll_transmit(now, 1, &mut self.buf) {
            let _ = self.socket.send_to(&self.buf[..t.size], t.destination);
        }
        while let Some((_, e)) = self.endpoint.poll_event() {
            match e {
                Event::Message(m) => self.got.push(ServerMsg::decode(&m).unwrap()),
                Event::Connected { .. } => self.connected = true,
                _ => {}
            }
        }
        let mut rx = [0u8; 2048];
        if let Ok((n, from)) = self.socket.recv_from(&mut rx) {
            self.endpoint.handle(Instant::now(), from, &rx[..n]);
        }
    }

    fn send(&mut self, msg: ClientMsg) {
        self.endpoint.send(self.h, &msg.to_bytes()).unwrap();
    }

    fn login(&mut self, nick: &str) {
        // Until the handshake is done.
        assert!(self.until(|_| true));
        let login = ClientMsg::Login {
            nick: nick.into(),
            server_password: String::new(),
            account_password: String::new(),
            resume: Vec::new(),
            private_since: 0,
            origin: 0,
        };
        self.send(login);
        assert!(self.until(|got| got.iter().any(|m| matches!(m, ServerMsg::Welcome { .. }))), "{:?}", self.got);
    }
}

#[test]
fn store_calls_run_on_the_store_threads_and_a_stuck_read_holds_up_nothing_else() {
    let mut data = MemoryStore::default();
    let old: Vec<_> = (1..=5).map(|i| stored("archive", i, "old")).collect();
    data.append(&mut old.iter(), &mut std::iter::empty(), &[]).unwrap();
    let (gate, calls) = (Gate::default(), Calls::default());
    gate.set(true);
    let writer = Watched { inner: data.clone(), gate: None, calls: calls.clone() };
    let reader = Watched { inner: data.clone(), gate: Some(gate.clone()), calls: calls.clone() };

    let socket = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::Builder::new()
        .name("event-loop".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let key = ServerKey::generate([3; 32]);
                let server = Server::new(socket, settings(), key, Box::new(writer), Box::new(reader)).unwrap();
                let shutdown = async move {
                    let _ = stop_rx.await;
                };
                server.run(None, &mut std::io::sink(), shutdown).await.unwrap();
            });
        })
        .unwrap();

    let mut ana = Client::connect(addr, 1);
    ana.login("ana");
    let mut bob = Client::connect(addr, 2);
    bob.login("bob");

    // The reader is stuck from here on.
    gate.set(false);
    ana.send(ClientMsg::Join { room: "archive".into() });
    assert!(ana.until(|got| got.iter().any(|m| matches!(m, ServerMsg::Joined { head: 5, .. }))));
    bob.send(ClientMsg::Say { id: 1, room: "lobby".into(), text: "live".into(), action: false });
    assert!(bob.until(|got| got.iter().any(|m| matches!(m, ServerMsg::Ack { id: 1, seq: 1, .. }))), "{:?}", bob.got);
    let live = |got: &[ServerMsg]| got.iter().any(|m| matches!(m, ServerMsg::Line(l) if l.text == "live"));
    assert!(ana.until(live), "{:?}", ana.got);
    let history = |got: &[ServerMsg]| got.iter().filter(|m| matches!(m, ServerMsg::Line(l) if l.history)).count();
    assert_eq!(history(&ana.got), 0, "the history read is still stuck");

    gate.set(true);
    assert!(ana.until(|got| history(got) == 5), "{:?}", ana.got);

    stop_tx.send(()).unwrap();
    // Shutdown says goodbye to both clients (up to 2 s when they do not
    // acknowledge); keep them running so it can finish.
    let deadline = Instant::now() + WAIT;
    while !server.is_finished() && Instant::now() < deadline {
        ana.step();
        bob.step();
    }
    server.join().unwrap();

    let calls = calls.lock().unwrap();
    for (method, thread) in calls.iter() {
        let expected = match *method {
            // Read once before the loop starts.
            "room_heads" => "event-loop",
            "append" | "prune" => "store-writer",
            _ => "store-reader",
        };
        assert_eq!(thread, expected, "{method} ran on {thread}");
    }
    assert!(calls.iter().any(|(m, _)| *m == "append"));
    assert!(calls.iter().any(|(m, _)| *m == "lines_before"));
    assert!(calls.iter().any(|(m, _)| *m == "account"));
}
