//! The udpchat client library, shared by every front end (the terminal
//! client, `chat --plain`, `udpchat send`, the bench tool, the tests):
//!
//! - [`session`]: the sans-IO session core — login, key pinning, outbox,
//!   unacknowledged lines, resume cursors, de-duplication, reconnection —
//!   driven by events and `Instant`s, testable without a socket;
//! - `driver`: the tokio task that moves bytes and time between a
//!   [`link::Link`] and that core, behind the [`Client`] handle and a
//!   channel of [`ClientEvent`]s (and looks up server names, `resolve`);
//! - [`model`]: what a front end shows — conversations with bounded
//!   scrollback, members, topics, unread counts, pending lines, the
//!   connection state — built from those events, for any front end to
//!   render;
//! - [`input`]: the typed-command parser every front end shares;
//! - [`probe`]: a server's key without logging in, for front ends that ask
//!   the user before trusting it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), udpchat_client::ClientError> {
//! use udpchat_client::{Client, ClientEvent, ClientOptions};
//! let (client, mut events) = Client::connect(ClientOptions::new("127.0.0.1:7667", "ana")).await?;
//! client.say(udpchat_client::chat::LOBBY, "hello").await;
//! while let Some(event) = events.recv().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]

mod driver;
pub mod link;
mod resolve;
pub use driver::wait_for;
pub mod discovery;
pub mod input;
pub mod known_hosts;
pub mod model;
pub mod probe;
pub mod session;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use udpchat_chat::{ClientMsg, ServerMsg};
use udpchat_proto::PublicKey;

use session::Request;

pub use input::{HELP, Input};
pub use udpchat_chat as chat;

/// How to reach and log in to a server.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// `HOST:PORT`, resolved when connecting; or several, separated by
    /// commas (the servers of a cluster, which share one key), tried in
    /// turn. A name that resolves to several addresses stands for all of
    /// them. The known-servers entry is keyed by the whole list.
    pub server: String,
    pub nick: String,
    /// The shared server password; empty for none.
    pub password: String,
    /// The password of the nickname's account, if it is registered.
    pub account_password: String,
    /// Require this server key instead of trusting on first use.
    pub server_key: Option<PublicKey>,
    /// Where first-use keys are remembered; `None` remembers nothing.
    pub known_hosts: Option<PathBuf>,
    /// Reconnect (and rejoin rooms) after the session is lost.
    pub reconnect: bool,
    /// Rooms to join after logging in, besides the lobby.
    pub rooms: Vec<String>,
    /// The line length and rate to keep to until the server's `Limits`
    /// says (servers older than issue 10 never do): by default the
    /// reference server's defaults, a burst of 5 then 2 lines per second.
    pub assumed_limits: session::pacing::Limits,
    /// How long the server may say nothing before the session is taken
    /// for lost (and, with several addresses, the next one is tried); the
    /// smaller of this and the server's own applies, and keepalives go at
    /// half of it. By default the protocol's 30 s; tests make it short.
    pub idle_timeout: Duration,
}

impl ClientOptions {
    pub fn new(server: &str, nick: &str) -> Self {
        Self {
            server: server.into(),
            nick: nick.into(),
            password: String::new(),
            account_password: String::new(),
            server_key: None,
            known_hosts: None,
            reconnect: false,
            rooms: Vec::new(),
            assumed_limits: session::pacing::Limits::REFERENCE,
            idle_timeout: udpchat_proto::TransportConfig::client().idle_timeout,
        }
    }
}

/// What the client reports to its front end.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    Connecting {
        attempt: u32,
    },
    /// The encrypted session is up; login follows. `first_use` says the key
    /// was not known before (show its fingerprint to the user).
    Connected {
        server_key: PublicKey,
        first_use: bool,
    },
    /// Anything the server said, including the Welcome or LoginRefused.
    Server(ServerMsg),
    /// One of our own lines (or private messages) was accepted by the
    /// server: it comes back as the `Line` (with its room sequence number)
    /// or `Private` the others received, so front ends show it the same way.
    Delivered {
        id: u64,
        msg: ServerMsg,
    },
    /// The round-trip time, every few seconds while connected.
    Rtt(Duration),
    /// The session ended; `reconnecting` says whether another attempt follows.
    Disconnected {
        reason: String,
        reconnecting: bool,
    },
    /// Something the client itself has to say (no answer from the server
    /// yet, lines still waiting when leaving), already worded for the user.
    Note(String),
    /// Lines never acknowledged when the client stopped (after a reconnect
    /// they are sent again instead): the server may or may not have
    /// delivered them.
    Unconfirmed {
        ids: Vec<u64>,
    },
    /// The client has stopped; nothing follows.
    Closed {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The name (one of the list) that did not resolve, and why; only
    /// when no name of the list resolved to any address.
    #[error("cannot resolve server address {0:?}: {1}")]
    Resolve(String, String),
    #[error("cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    #[error(transparent)]
    KnownHosts(#[from] known_hosts::KnownHostsError),
}

/// A handle to the running client. Cloning shares the session; when every
/// handle is dropped the client quits.
#[derive(Clone)]
pub struct Client {
    requests: mpsc::Sender<Request>,
    /// A quit that leaves at once ([`Client::quit_within`] zero), past
    /// the requests queued ahead of it (which may wait for the pacing).
    urgent: mpsc::Sender<Request>,
    next_id: Arc<AtomicU64>,
}

/// Requests the front end may queue ahead of the driver (which stops
/// taking them while its outbox is full: then `say` and `request` wait).
const REQUEST_QUEUE: usize = 1024;
/// Quit requests queued ahead of the driver.
const URGENT_QUEUE: usize = 4;
/// Events the driver may queue ahead of the front end; when full, the
/// driver waits, and the server sees a slow reader.
const EVENT_QUEUE: usize = 4096;

impl Client {
    /// Resolves the server names, opens a socket and starts the session
    /// on a background task. Progress arrives as events. Fails only when
    /// no name resolves (a name that does not, beside others that do, is
    /// a `Note`).
    pub async fn connect(options: ClientOptions) -> Result<(Client, mpsc::Receiver<ClientEvent>), ClientError> {
        let (req_tx, req_rx) = mpsc::channel(REQUEST_QUEUE);
        let (urgent_tx, urgent_rx) = mpsc::channel(URGENT_QUEUE);
        let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
        let driver = driver::Driver::new(options, req_rx, urgent_rx, ev_tx).await?;
        tokio::spawn(driver.run());
        Ok((Client { requests: req_tx, urgent: urgent_tx, next_id: Arc::new(AtomicU64::new(1)) }, ev_rx))
    }

    fn id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends a line to a room; the returned id comes back in its Ack or Error.
    pub async fn say(&self, room: &str, text: &str) -> u64 {
        let id = self.id();
        self.request(ClientMsg::Say { id, room: room.into(), text: text.into(), action: false }).await;
        id
    }

    pub async fn request(&self, msg: ClientMsg) {
        // Fails only when the driver has stopped, which a Closed event says.
        let _ = self.requests.send(Request::Send(msg)).await;
    }

    /// Tries another nickname after a LoginRefused.
    pub async fn login(&self, nick: &str) {
        let _ = self.requests.send(Request::Login(nick.into())).await;
    }

    /// Says goodbye and stops once the lines sent so far are acknowledged
    /// (waiting at most [`session::QUIT_WAIT`]); a Closed event follows,
    /// after an Unconfirmed event naming any line left unanswered.
    pub async fn quit(&self, reason: &str) {
        self.quit_within(reason, session::QUIT_WAIT).await;
    }

    /// [`Client::quit`], waiting at most `within` for acknowledgements.
    /// It comes after the requests made before it (so they are sent or
    /// reported), except with a zero `within`: then it goes ahead of them
    /// and the client leaves at once; requests not yet taken by the
    /// session are neither sent nor reported (the caller knows its ids).
    pub async fn quit_within(&self, reason: &str, within: Duration) {
        let req = Request::Quit { reason: reason.into(), within };
        let _ = if within.is_zero() { self.urgent.send(req).await } else { self.requests.send(req).await };
    }

    /// Carries out a parsed input line. Returns the request id for lines
    /// that are acknowledged (room lines and private messages).
    pub async fn input(&self, input: Input) -> Option<u64> {
        let msg = match input {
            Input::Say { room, text, action } => {
                let id = self.id();
                self.request(ClientMsg::Say { id, room, text, action }).await;
                return Some(id);
            }
            Input::Msg { to, text } => {
                let id = self.id();
                self.request(ClientMsg::Private { id, to, text }).await;
                return Some(id);
            }
            Input::Quit(reason) => {
                self.quit(&reason).await;
                return None;
            }
            Input::Join(room) => ClientMsg::Join { room },
            Input::Part { room, reason } => ClientMsg::Part { room, reason },
            Input::List => ClientMsg::List,
            Input::Who(room) => ClientMsg::Who { room },
            Input::Nick(nick) => ClientMsg::Nick { nick },
            Input::Topic { room, topic } => ClientMsg::Topic { room, topic },
            Input::History { room, count } => {
                let _ = self.requests.send(Request::History { room, count }).await;
                return None;
            }
            Input::Kick { room, nick, reason } => ClientMsg::Kick { room, nick, reason },
            Input::Ban { target, reason, expires_secs } => ClientMsg::Ban { target, reason, expires_secs },
            Input::Unban { target } => ClientMsg::Unban { target },
            Input::Help | Input::Nothing => return None,
        };
        self.request(msg).await;
        None
    }
}
