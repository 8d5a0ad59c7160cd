//! Failover between real servers: two udpchat servers in this process, on
//! loopback ports, sharing one key (a cluster) but each with its own
//! history database. A client given both logs in on the first; the first
//! then dies without a word (its task is dropped, so it just stops
//! answering, as a crashed machine would) and the client goes on on the
//! second: logged in again, in its rooms, with the line typed after the
//! crash acknowledged there, and nothing shown twice. Another test starts
//! with a dead address first in the list.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Receiver;
use udpchat_client::chat::ServerMsg;
use udpchat_client::session::pacing::Limits;
use udpchat_client::{Client, ClientEvent, ClientOptions};
use udpchat_proto::ServerKey;
use udpchat_server::Settings;
use udpchat_server::discovery::LanDiscovery;
use udpchat_server::driver::{Server, bind};
use udpchat_server::store::{SqliteStore, Store, SyncPolicy};

/// The longest any one step may take.
const WAIT: Duration = Duration::from_secs(20);

/// A server on a thread (and runtime) of its own; [`TestServer::kill`]
/// drops it mid-run: no goodbye, its socket simply closes.
struct TestServer {
    addr: SocketAddr,
    data: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    fn start(key: &ServerKey) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut settings = Settings { data_dir: data.path().to_owned(), ..Settings::default() };
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.rate_per_second = 0.0;
        settings.console_log = false;
        settings.history_sync = SyncPolicy::Normal;
        settings.lan_discovery = LanDiscovery::Off;
        settings.server_name = "cluster".into();
        let store = SqliteStore::open(data.path(), settings.history_sync, None).unwrap();
        let reader = SqliteStore::open_reader(store.path()).unwrap();
        let key = key.clone();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let socket = bind(settings.listen).unwrap();
                let server = Server::new(socket, settings, key, Box::new(store), Box::new(reader)).unwrap();
                addr_tx.send(server.local_addr().unwrap()).unwrap();
                let mut sink = std::io::sink();
                // Not the shutdown future (that would say goodbye): the
                // server is dropped where it stands.
                tokio::select! {
                    _ = server.run(None, &mut sink, std::future::pending()) => {}
                    _ = stopped => {}
                }
            });
        });
        let addr = addr_rx.recv_timeout(WAIT).expect("the server started");
        Self { addr, data, stop: Some(stop), thread: Some(thread) }
    }

    /// Drops the server and waits (bounded) until its thread is gone.
    fn kill(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(thread) = self.thread.take() else { return };
        let deadline = Instant::now() + WAIT;
        while !thread.is_finished() {
            assert!(Instant::now() < deadline, "the server thread did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
        thread.join().expect("the server thread");
    }

    /// The texts of the lines stored in `room`.
    fn stored(&self, room: &str) -> Vec<String> {
        let store = SqliteStore::open_admin(self.data.path()).expect("open the history database");
        store.lines_after(room, 0, 1000).expect("read stored lines").into_iter().map(|l| l.text).collect()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.kill();
        }
    }
}

fn options(list: &str, known_servers: &std::path::Path) -> ClientOptions {
    let mut o = ClientOptions::new(list, "ana");
    o.reconnect = true;
    o.rooms = vec!["rust".into()];
    o.known_hosts = Some(known_servers.to_owned());
    o.assumed_limits = Limits::UNPACED;
    // A dead server is noticed after 2 s of silence, not 30.
    o.idle_timeout = Duration::from_secs(2);
    o
}

/// Events up to and including the first that matches `pred`; fails the
/// test, with the last few events, if none comes within [`WAIT`].
async fn expect(
    events: &mut Receiver<ClientEvent>,
    what: &str,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(e) = events.recv().await {
            let hit = pred(&e);
            seen.push(e);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    if found != Ok(true) {
        let tail: Vec<_> = seen.iter().rev().take(10).rev().collect();
        panic!("timed out waiting for {what}; last events: {tail:?}");
    }
    seen
}

fn joined(e: &ClientEvent, room: &str) -> bool {
    matches!(e, ClientEvent::Server(ServerMsg::Joined { room: r, .. }) if r == room)
}

fn delivered(e: &ClientEvent, id: u64) -> bool {
    matches!(e, ClientEvent::Delivered { id: i, .. } if *i == id)
}

fn note_at(events: &[ClientEvent], text: &str) -> Option<usize> {
    events.iter().position(|e| matches!(e, ClientEvent::Note(t) if t == text))
}

/// Every room line shown (lines from others and our own delivered ones),
/// as (room, text): a line shown twice appears twice. (Not by sequence
/// number: these servers do not share their history, so the second one
/// numbers its rooms' lines from 1 again.)
fn shown(events: &[ClientEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Server(ServerMsg::Line(l)) | ClientEvent::Delivered { msg: ServerMsg::Line(l), .. } => {
                Some((l.room.clone(), l.text.clone()))
            }
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_client_fails_over_to_the_next_server_and_loses_nothing() {
    let key = ServerKey::generate([7; 32]);
    let mut first = TestServer::start(&key);
    let second = TestServer::start(&key);
    let dir = tempfile::tempdir().unwrap();
    let known_servers = dir.path().join("known_servers");
    let list = format!("{}, {}", first.addr, second.addr);
    let (client, mut events) = Client::connect(options(&list, &known_servers)).await.expect("client starts");

    let mut all = expect(&mut events, "#rust joined on the first server", |e| joined(e, "rust")).await;
    assert!(note_at(&all, &format!("trying {}", first.addr)).is_some(), "{all:?}");
    assert!(all.iter().any(|e| matches!(e, ClientEvent::Connected { first_use: true, .. })));
    let before = client.say("rust", "before the crash").await;
    all.extend(expect(&mut events, "the first line acknowledged", |e| delivered(e, before)).await);

    first.kill();
    let after = client.say("rust", "after the crash").await;
    let failover = expect(&mut events, "the second line acknowledged", |e| delivered(e, after)).await;
    let switched = note_at(&failover, &format!("no answer from {} — trying {}", first.addr, second.addr))
        .unwrap_or_else(|| panic!("no note naming both servers: {failover:?}"));
    let rest = &failover[switched..];
    // The key pinned for the list holds for the second address.
    assert!(rest.iter().any(|e| matches!(e, ClientEvent::Connected { first_use: false, .. })), "{rest:?}");
    assert!(rest.iter().any(|e| matches!(e, ClientEvent::Server(ServerMsg::Welcome { .. }))), "{rest:?}");
    assert!(rest.iter().any(|e| joined(e, "rust")), "the rooms are resumed there: {rest:?}");
    all.extend(failover);

    let lines = shown(&all);
    let unique: HashSet<_> = lines.iter().collect();
    assert_eq!(unique.len(), lines.len(), "a line shown twice: {lines:?}");
    let ours: Vec<&str> = lines.iter().filter(|(_, t)| t.ends_with("the crash")).map(|(_, t)| t.as_str()).collect();
    assert_eq!(ours, ["before the crash", "after the crash"]);
    assert_eq!(first.stored("rust"), ["before the crash"]);
    assert_eq!(second.stored("rust"), ["after the crash"], "stored once, by the server that acknowledged it");
    let file = std::fs::read_to_string(&known_servers).unwrap();
    let entries: Vec<&str> = file.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(entries, [format!("{},{} {}", first.addr, second.addr, key.public)], "one entry for the list");

    client.quit_within("", Duration::ZERO).await;
    expect(&mut events, "the client to close", |e| matches!(e, ClientEvent::Closed { .. })).await;
}

#[tokio::test]
async fn a_first_connect_walks_past_a_dead_address() {
    let key = ServerKey::generate([8; 32]);
    let server = TestServer::start(&key);
    // A port nothing listens on any more.
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut o = options(&format!("{dead},{}", server.addr), &dir.path().join("known_servers"));
    // As for a one-shot `udpchat send`: the walk needs no reconnect.
    o.reconnect = false;
    let (client, mut events) = Client::connect(o).await.expect("client starts");
    let seen = expect(&mut events, "#rust joined", |e| joined(e, "rust")).await;
    let walked = note_at(&seen, &format!("no answer from {dead} — trying {}", server.addr));
    assert!(walked.is_some(), "{seen:?}");
    client.quit_within("", Duration::ZERO).await;
    expect(&mut events, "the client to close", |e| matches!(e, ClientEvent::Closed { .. })).await;
}

#[tokio::test]
async fn a_list_that_resolves_to_nothing_names_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let o = options("no-port-here, also-no-port", &dir.path().join("known_servers"));
    let err = Client::connect(o).await.err().expect("nothing to connect to");
    assert!(err.to_string().starts_with("cannot resolve server address \"no-port-here\""), "{err}");
}
