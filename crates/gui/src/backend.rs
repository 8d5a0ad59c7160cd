//! The desktop client's network thread: a tokio runtime of its own that
//! runs the client drivers (one per server the window is connected to),
//! the key probe, and every disk write (known servers, settings), so the
//! UI thread never waits on the network or the disk. The UI talks to it
//! through a bounded request channel and reads what comes back with
//! [`Backend::poll`] each frame; every reply wakes the UI with
//! `egui::Context::request_repaint`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use udpchat_client::known_hosts::KnownHosts;
use udpchat_client::{Client, ClientEvent, ClientOptions, Input};
use udpchat_proto::PublicKey;

use crate::config::GuiConfig;

/// Requests the UI may queue ahead of the network thread. A paste of many
/// lines is the largest burst; past this [`Backend::send`] reports the
/// channel full and the UI keeps the rest (`chat::Outgoing`).
pub const REQUEST_QUEUE: usize = 512;
/// Replies queued for the UI; when full the network thread waits (and the
/// client driver with it: the server then sees a slow reader).
pub const REPLY_QUEUE: usize = 8192;
/// How long the key probe waits for the server's handshake.
pub const PROBE_WAIT: Duration = Duration::from_secs(5);

/// Which connection of the window (one per server).
pub type ConnId = u64;

#[derive(Debug)]
pub enum Request {
    /// Ask `server` for its key and compare it with `known_hosts`.
    Probe {
        conn: ConnId,
        server: String,
        known_hosts: PathBuf,
    },
    /// Write `key` for `server` into `known_hosts` (trusted or replaced).
    Trust {
        server: String,
        key: PublicKey,
        known_hosts: PathBuf,
    },
    /// Start the client.
    Connect {
        conn: ConnId,
        options: Box<ClientOptions>,
    },
    Input {
        conn: ConnId,
        input: Input,
    },
    Login {
        conn: ConnId,
        nick: String,
    },
    /// Leave at once (`within` zero) or after the lines are acknowledged.
    Quit {
        conn: ConnId,
        reason: String,
        within: Duration,
    },
    SaveConfig {
        config: Box<GuiConfig>,
        path: PathBuf,
    },
    /// Search the LAN for servers (broadcast and mDNS).
    Discover,
}

#[derive(Debug)]
pub enum Reply {
    /// The server's key, and the one `known_hosts` has for it.
    Key {
        conn: ConnId,
        key: PublicKey,
        known: Option<PublicKey>,
    },
    /// The probe failed; `unreachable`: no answer at all.
    ProbeFailed {
        conn: ConnId,
        error: String,
        unreachable: bool,
    },
    ConnectFailed {
        conn: ConnId,
        error: String,
    },
    Event {
        conn: ConnId,
        event: ClientEvent,
    },
    /// `Client::input` numbered a line or private message: show it as pending.
    Sending {
        conn: ConnId,
        id: u64,
        input: Input,
    },
    /// A disk write failed; worded for the user.
    Problem(String),
    /// What a LAN search found.
    Discovered(Result<Vec<crate::form::Discovered>, String>),
}

/// How long a LAN search listens for answers.
pub const DISCOVER_WAIT: Duration = Duration::from_secs(2);

pub struct Backend {
    requests: mpsc::Sender<Request>,
    replies: mpsc::Receiver<Reply>,
    _thread: std::thread::JoinHandle<()>,
}

/// Wakes the UI after a reply (a repaint request from another thread).
pub type Waker = std::sync::Arc<dyn Fn() + Send + Sync>;

impl Backend {
    /// Starts the network thread; `wake` is called after every reply.
    pub fn start(wake: Waker) -> std::io::Result<Self> {
        let (req_tx, req_rx) = mpsc::channel(REQUEST_QUEUE);
        let (rep_tx, rep_rx) = mpsc::channel(REPLY_QUEUE);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new()
            .name("udpchat-net".into())
            .spawn(move || runtime.block_on(serve(req_rx, Replies { tx: rep_tx, wake })))?;
        Ok(Self { requests: req_tx, replies: rep_rx, _thread: thread })
    }

    /// Queues a request; `Err` gives it back when the queue is full.
    pub fn send(&self, req: Request) -> Result<(), Request> {
        self.requests.try_send(req).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
        })
    }

    /// The next reply, if one is waiting.
    pub fn poll(&mut self) -> Option<Reply> {
        self.replies.try_recv().ok()
    }
}

#[derive(Clone)]
struct Replies {
    tx: mpsc::Sender<Reply>,
    wake: Waker,
}

impl Replies {
    async fn send(&self, reply: Reply) {
        // Fails only when the window is gone.
        let _ = self.tx.send(reply).await;
        (self.wake)();
    }
}

/// Per connection: what its task takes.
enum ConnRequest {
    Input(Input),
    Login(String),
    Quit(String, Duration),
}

async fn serve(mut requests: mpsc::Receiver<Request>, replies: Replies) {
    let mut conns: HashMap<ConnId, mpsc::UnboundedSender<ConnRequest>> = HashMap::new();
    while let Some(req) = requests.recv().await {
        conns.retain(|_, tx| !tx.is_closed());
        let to_conn = |conn: ConnId, r: ConnRequest| {
            if let Some(tx) = conns.get(&conn) {
                let _ = tx.send(r);
            }
        };
        match req {
            Request::Probe { conn, server, known_hosts } => {
                let replies = replies.clone();
                tokio::spawn(async move { replies.send(probe(conn, &server, &known_hosts).await).await });
            }
            Request::Trust { server, key, known_hosts } => {
                let written = KnownHosts::load(&known_hosts).and_then(|mut kh| kh.remember(&server, key));
                if let Err(e) = written {
                    replies.send(Reply::Problem(format!("the server's key was not saved: {e}"))).await;
                }
            }
            Request::Connect { conn, options } => match Client::connect(*options).await {
                Ok((client, events)) => {
                    // Unbounded, but fed only by this loop, which the
                    // bounded request queue limits.
                    let (tx, rx) = mpsc::unbounded_channel();
                    conns.insert(conn, tx);
                    tokio::spawn(connection(conn, client, events, rx, replies.clone()));
                }
                Err(e) => replies.send(Reply::ConnectFailed { conn, error: e.to_string() }).await,
            },
            Request::Input { conn, input } => to_conn(conn, ConnRequest::Input(input)),
            Request::Login { conn, nick } => to_conn(conn, ConnRequest::Login(nick)),
            Request::Quit { conn, reason, within } => to_conn(conn, ConnRequest::Quit(reason, within)),
            Request::Discover => {
                let replies = replies.clone();
                tokio::spawn(async move {
                    let found = udpchat_client::discovery::discover(DISCOVER_WAIT).await.map_err(|e| e.to_string());
                    let found = found.map(|servers| {
                        servers
                            .into_iter()
                            .map(|s| crate::form::Discovered { name: s.name, address: s.addr.to_string() })
                            .collect()
                    });
                    replies.send(Reply::Discovered(found)).await;
                });
            }
            Request::SaveConfig { config, path } => {
                if let Err(e) = config.save(&path) {
                    replies.send(Reply::Problem(format!("settings not saved: {e}"))).await;
                }
            }
        }
    }
}

async fn probe(conn: ConnId, server: &str, known_hosts: &std::path::Path) -> Reply {
    let known = match KnownHosts::load(known_hosts) {
        Ok(kh) => kh.get(server),
        Err(e) => return Reply::ProbeFailed { conn, error: e.to_string(), unreachable: false },
    };
    match udpchat_client::probe::server_key(server, PROBE_WAIT).await {
        Ok(key) => Reply::Key { conn, key, known },
        Err(e) => {
            let unreachable = matches!(e, udpchat_client::probe::ProbeError::NoAnswer { .. });
            Reply::ProbeFailed { conn, error: e.to_string(), unreachable }
        }
    }
}

/// One server's client: carries out the UI's requests in order and
/// forwards its events. A line's `Sending` goes out before any event
/// about it, since both pass through here.
async fn connection(
    conn: ConnId,
    client: Client,
    mut events: mpsc::Receiver<ClientEvent>,
    mut requests: mpsc::UnboundedReceiver<ConnRequest>,
    replies: Replies,
) {
    let mut requests_open = true;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                replies.send(Reply::Event { conn, event }).await;
            }
            req = requests.recv(), if requests_open => match req {
                Some(ConnRequest::Input(input)) => {
                    if let Some(id) = client.input(input.clone()).await {
                        replies.send(Reply::Sending { conn, id, input }).await;
                    }
                }
                Some(ConnRequest::Login(nick)) => client.login(&nick).await,
                Some(ConnRequest::Quit(reason, within)) => client.quit_within(&reason, within).await,
                None => {
                    requests_open = false;
                    client.quit_within("", Duration::ZERO).await;
                }
            },
        }
    }
}
