//! Shared pieces of the desktop client's tests: a real udpchat server on
//! a loopback port (the server library's driver on a thread of its own,
//! as crates/bench/tests/bench.rs does), a peer logged in through the
//! client library, and the real `App` in an egui_kittest harness, stepped
//! frame by frame until what a test waits for shows (or a deadline
//! passes, failing the test).

#![allow(dead_code)] // each test file uses part of this

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use tokio::sync::mpsc::Receiver;
use udpchat_client::{Client, ClientEvent, ClientOptions};
use udpchat_gui::config::GuiConfig;
use udpchat_gui::{App, Paths};
use udpchat_server::Settings;
use udpchat_server::driver::{Server, bind};
use udpchat_server::store::{SqliteStore, SyncPolicy};

pub const WAIT: Duration = Duration::from_secs(20);

/// A server on a loopback port, on a thread of its own; it stops with
/// the test process.
pub struct ServerThread {
    pub addr: SocketAddr,
    pub key: udpchat_proto::PublicKey,
    pub data: tempfile::TempDir,
}

impl ServerThread {
    /// No rate limit (a paste of 200 lines goes at once); `password`: the
    /// shared server password.
    pub fn start(password: Option<&str>) -> Self {
        Self::with_accounts(password, &[])
    }

    /// [`start`](Self::start) with accounts: (nickname, password, operator).
    pub fn with_accounts(password: Option<&str>, accounts: &[(&str, &str, bool)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut settings = Settings { data_dir: data.path().to_owned(), ..Settings::default() };
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.rate_per_second = 0.0;
        settings.console_log = false;
        settings.history_sync = SyncPolicy::Normal;
        settings.password = password.map(str::to_owned);
        settings.server_name = "testchat".into();
        let (key, _) = udpchat_server::key_file::load_or_create(data.path()).unwrap();
        let public = key.public;
        let mut store = SqliteStore::open(data.path(), settings.history_sync, None).unwrap();
        for (name, pw, operator) in accounts {
            use udpchat_server::store::{Account, Store};
            let hash = udpchat_server::chat::hash_password(pw).unwrap();
            let account = Account { name: (*name).into(), hash, operator: *operator, rate: 0 };
            store.put_account(&udpchat_client::chat::names::fold(name), &account).unwrap();
        }
        let reader = SqliteStore::open_reader(store.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let socket = bind(settings.listen).unwrap();
                let server = Server::new(socket, settings, key, Box::new(store), Box::new(reader)).unwrap();
                tx.send(server.local_addr().unwrap()).unwrap();
                let _ = server.run(None, &mut std::io::sink(), std::future::pending()).await;
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server started");
        Self { addr, key: public, data }
    }

    pub fn address(&self) -> String {
        self.addr.to_string()
    }
}

/// Another user, through the client library, on a runtime of its own.
pub struct Peer {
    pub rt: tokio::runtime::Runtime,
    pub client: Client,
    pub events: Receiver<ClientEvent>,
}

impl Peer {
    pub fn join(server: &ServerThread, nick: &str, password: Option<&str>) -> Self {
        Self::join_as(server, nick, password, "")
    }

    /// [`join`](Self::join) with an account password.
    pub fn join_as(server: &ServerThread, nick: &str, password: Option<&str>, account: &str) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let mut options = ClientOptions::new(&server.address(), nick);
        options.password = password.unwrap_or_default().to_owned();
        options.server_key = Some(server.key);
        options.account_password = account.into();
        let (client, mut events) = rt.block_on(Client::connect(options)).unwrap();
        rt.block_on(udpchat_client::wait_for(&mut events, WAIT, |e| {
            matches!(e, ClientEvent::Server(udpchat_client::chat::ServerMsg::Joined { .. }))
        }))
        .expect("the peer logged in and joined the lobby");
        Peer { rt, client, events }
    }

    pub fn say(&self, room: &str, text: &str) {
        self.rt.block_on(self.client.say(room, text));
    }

    /// Waits until `nick` joins `room` (fails the test after [`WAIT`]).
    pub fn saw_join(&mut self, nick: &str, room: &str) {
        use udpchat_client::chat::{NoticeKind, ServerMsg};
        let seen = self.rt.block_on(udpchat_client::wait_for(&mut self.events, WAIT, |e| {
            matches!(e, ClientEvent::Server(ServerMsg::Notice { kind: NoticeKind::Join, nick: n, room: r, .. })
                if n == nick && r == room)
        }));
        assert!(seen.is_some(), "{nick} did not join #{room}");
    }

    /// Waits for lines in `room` from `from` until `done` says enough;
    /// returns their texts in arrival order.
    pub fn lines_from(&mut self, from: &str, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
        let mut texts = Vec::new();
        let until = Instant::now() + WAIT;
        while !done(&texts) {
            let left = until.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "the peer got only {} line(s) from {from}: {texts:?}", texts.len());
            let events = &mut self.events;
            let event = self.rt.block_on(async { tokio::time::timeout(left, events.recv()).await });
            if let Ok(Some(ClientEvent::Server(udpchat_client::chat::ServerMsg::Line(l)))) = event
                && l.from == from
                && !l.history
            {
                texts.push(l.text);
            }
        }
        texts
    }
}

/// The app's files in a temporary directory.
pub fn paths(dir: &tempfile::TempDir) -> Paths {
    Paths { config: dir.path().join("gui.toml"), known_hosts: dir.path().join("known_servers") }
}

pub type Gui = Harness<'static, App>;

/// The real app in a test harness.
pub fn gui(paths: Paths) -> Gui {
    let app = App::new(paths, GuiConfig::default(), Arc::new(|| {})).unwrap();
    Harness::builder().with_size([1000.0, 700.0]).build_ui_state(|ui, app: &mut App| app.ui(ui), app)
}

/// Steps frames until `cond` holds; fails the test after [`WAIT`].
pub fn until(h: &mut Gui, what: &str, mut cond: impl FnMut(&mut Gui) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        h.step();
        if cond(h) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a widget whose label contains `text` is shown.
pub fn shows(h: &Gui, text: &str) -> bool {
    h.query_all_by_label_contains(text).next().is_some()
}

/// Types into the text field labelled `label` (replacing its content).
pub fn fill(h: &mut Gui, label: &str, text: &str) {
    h.get_by_label(label).focus();
    h.step();
    let node = h.get_by_label(label);
    node.type_text(text);
    h.step();
}

/// Types `text` into the chat's input line (labelled with our nickname).
pub fn type_line(h: &mut Gui, nick: &str, text: &str) {
    let role = egui::accesskit::Role::TextInput;
    h.get_by_role_and_label(role, nick).focus();
    h.step();
    h.get_by_role_and_label(role, nick).type_text(text);
    h.step();
}

/// Fills the connect form and presses Connect.
pub fn login(h: &mut Gui, server: &str, nick: &str, password: &str) {
    h.step();
    {
        let app = h.state_mut();
        app.form.server.clear();
        app.form.nick.clear();
    }
    fill(h, "Server address", server);
    fill(h, "Nickname", nick);
    if !password.is_empty() {
        fill(h, "Server password", password);
    }
    h.get_by_label("Connect").click();
    h.step();
}

/// Logs in to a server never seen before: the key dialog shows the
/// server's key, and is answered with Trust.
pub fn login_trusting(h: &mut Gui, server: &ServerThread, nick: &str) {
    login(h, &server.address(), nick, "");
    let key = server.key.to_string();
    until(h, "the first-contact dialog with the server's key", |h| shows(h, &key));
    h.get_by_label("Trust this server").click();
    until(h, "the chat window", |h| {
        !h.state().servers.is_empty() && h.state().servers[0].model.current_room() == Some("lobby")
    });
}
