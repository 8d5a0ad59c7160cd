//! The client's network task, and nothing else: it moves bytes between the
//! [`Link`] (a UDP socket and the protocol endpoint on it) and the session
//! core ([`crate::session::Session`], where login, the outbox, resuming
//! and reconnection are decided, and which server address each attempt
//! goes to), time from tokio's clock into both, DNS lookups when the core
//! asks for them, the front end's requests in and the core's events out.
//! The only state of its own is the current connection handle, a lookup
//! under way, and the known-servers file, which it writes when the core
//! says to remember a key.

use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout};
use udpchat_chat::ServerMsg;
use udpchat_proto::{ClientConfig, ConnectionHandle, Event, code};

use crate::known_hosts::KnownHosts;
use crate::link::Link;
use crate::resolve::{first_address, resolve};
use crate::session::servers::{self, Resolved};
use crate::session::{Action, Request, Session, SessionConfig};
use crate::{ClientError, ClientEvent, ClientOptions};

/// How long to sleep when neither the endpoint nor the core has a timer.
const IDLE_WAKE: Duration = Duration::from_secs(60);

pub(crate) struct Driver {
    /// As the user wrote it: the key of the known-servers entry.
    server_name: String,
    /// The names in it, looked up at each round of addresses.
    names: Vec<String>,
    /// What they resolved to in [`Driver::new`], for the first round.
    first_lookup: Option<Vec<Resolved>>,
    /// A lookup under way, for [`Action::Resolve`].
    lookup: Option<JoinHandle<Vec<Resolved>>>,
    /// Bound for one address family (IPv4 or IPv6); replaced when an
    /// attempt goes to an address of the other.
    link: Link,
    link_ipv4: bool,
    known_hosts: Option<KnownHosts>,
    requests: mpsc::Receiver<Request>,
    /// Set once every handle is gone (the channel is not polled again).
    requests_closed: bool,
    urgent: mpsc::Receiver<Request>,
    urgent_closed: bool,
    events: mpsc::Sender<ClientEvent>,
    session: Session,
    conn: Option<ConnectionHandle>,
    idle_timeout: Duration,
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Driver {
    pub(crate) async fn new(
        options: ClientOptions,
        requests: mpsc::Receiver<Request>,
        urgent: mpsc::Receiver<Request>,
        events: mpsc::Sender<ClientEvent>,
    ) -> Result<Self, ClientError> {
        // Looked up here so that a name that resolves to nothing fails the
        // connect (naming it), as a single address always did.
        let names = servers::names(&options.server);
        let resolved = resolve(&names).await;
        let first = first_address(&options.server, &resolved).map_err(|(name, why)| ClientError::Resolve(name, why))?;
        let known_hosts = options.known_hosts.as_deref().map(KnownHosts::load).transpose()?;
        let link = match Link::client(first) {
            Ok(link) => link,
            // No socket for that family here (IPv6 off, say): one for
            // the other, if the list has addresses of it.
            Err(e) => {
                let other = resolved.iter().filter_map(|(_, r)| r.as_ref().ok()).flatten();
                let other = other.copied().find(|a| a.is_ipv4() != first.is_ipv4());
                other.map_or(Err(e), Link::client).map_err(ClientError::Socket)?
            }
        };
        let link_ipv4 = link.is_ipv4();
        let known = known_hosts.as_ref().and_then(|k| k.get(&options.server));
        let session = Session::new(SessionConfig::new(&options, known), Instant::now(), wall_ms());
        Ok(Self {
            server_name: servers::canonical(&options.server),
            names,
            first_lookup: Some(resolved),
            lookup: None,
            link,
            link_ipv4,
            known_hosts,
            requests,
            requests_closed: false,
            urgent,
            urgent_closed: false,
            events,
            idle_timeout: options.idle_timeout,
            session,
            conn: None,
        })
    }

    pub(crate) async fn run(mut self) {
        loop {
            self.drain().await;
            if self.session.is_stopped() {
                // The close (or goodbye) may still be queued.
                self.link.flush().await;
                if let Some(lookup) = self.lookup.take() {
                    lookup.abort();
                }
                return;
            }
            self.link.flush().await;
            let now = Instant::now();
            let deadline = [self.link.endpoint.poll_timeout(), self.session.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + IDLE_WAKE);
            tokio::select! {
                r = self.link.readable() => {
                    if let Err(e) = r.and_then(|()| self.link.receive()) {
                        tracing::debug!("receive failed: {e}");
                    }
                }
                _ = sleep_until(deadline.into()) => {
                    let now = Instant::now();
                    self.link.endpoint.handle_timeout(now);
                    self.session.handle_timeout(now);
                }
                // Not taken while the outbox is full: the front end waits.
                req = self.requests.recv(), if !self.requests_closed && self.session.accepts_requests() => {
                    let req = req.unwrap_or_else(|| {
                        // Every handle dropped: the front end is gone, so leave.
                        self.requests_closed = true;
                        Request::Quit { reason: String::new(), within: crate::session::QUIT_WAIT }
                    });
                    self.session.on_request(Instant::now(), req);
                }
                req = self.urgent.recv(), if !self.urgent_closed => match req {
                    Some(req) => self.session.on_request(Instant::now(), req),
                    None => self.urgent_closed = true,
                },
                resolved = lookup_done(&mut self.lookup, &self.names), if self.lookup.is_some() => {
                    self.lookup = None;
                    self.session.on_resolved(Instant::now(), resolved);
                }
            }
            self.endpoint_events();
        }
    }

    /// Hands what the endpoint reported to the core.
    fn endpoint_events(&mut self) {
        while let Some((h, event)) = self.link.endpoint.poll_event() {
            if Some(h) != self.conn {
                continue;
            }
            let now = Instant::now();
            match event {
                Event::Connected { server_key } => self.session.on_connected(now, server_key),
                Event::Message(bytes) => match ServerMsg::decode(&bytes) {
                    Ok(msg) => self.session.on_message(now, msg),
                    Err(e) => tracing::debug!("undecodable server message: {e}"),
                },
                Event::Closed(reason) => {
                    self.conn = None;
                    self.session.on_closed(now, &reason);
                }
                Event::Writable | Event::Migrated { .. } => {}
            }
        }
    }

    /// Carries out what the core asked for, until it has nothing more:
    /// messages first (a close comes after what was queued before it),
    /// then actions, then events for the front end.
    async fn drain(&mut self) {
        loop {
            if let Some(h) = self.conn {
                let now = Instant::now();
                while let Some(msg) = self.session.next_send(now) {
                    // Blocked: the send window is full; the rest goes on a
                    // later turn, once acknowledgements free it.
                    if self.link.endpoint.send(h, &msg.to_bytes()).is_err() {
                        break;
                    }
                    self.session.sent(now);
                }
            }
            let Some(action) = self.session.poll_action() else { break };
            let now = Instant::now();
            match action {
                Action::Resolve => match self.first_lookup.take() {
                    Some(resolved) => self.session.on_resolved(now, resolved),
                    None => {
                        let names = self.names.clone();
                        self.lookup = Some(tokio::spawn(async move { resolve(&names).await }));
                    }
                },
                Action::Connect { server_key, to } => {
                    if to.is_ipv4() != self.link_ipv4 {
                        match Link::client(to) {
                            Ok(link) => {
                                // What the old socket still has to send (a close).
                                self.link.flush().await;
                                self.link = link;
                                self.link_ipv4 = to.is_ipv4();
                                self.conn = None;
                            }
                            Err(e) => {
                                // No IPv6 here, say: that address cannot be
                                // tried, the others can.
                                self.session.on_unreachable(now, format!("cannot open a UDP socket: {e}"));
                                continue;
                            }
                        }
                    }
                    let mut config = ClientConfig { server_key, ..ClientConfig::default() };
                    config.transport.idle_timeout = self.idle_timeout;
                    match self.link.endpoint.connect(now, to, config) {
                        Ok(h) => self.conn = Some(h),
                        Err(e) => self.session.on_connect_failed(now, format!("invalid client configuration: {e}")),
                    }
                }
                Action::Close { goodbye, reason } => {
                    if let Some(h) = self.conn {
                        if let Some(msg) = goodbye {
                            let _ = self.link.endpoint.send(h, &msg.to_bytes());
                        }
                        self.link.endpoint.close(now, h, code::NORMAL, &reason);
                    }
                }
                Action::RememberKey(key) => {
                    if let Some(kh) = &mut self.known_hosts
                        && let Err(e) = kh.remember(&self.server_name, key)
                    {
                        tracing::warn!("{e}");
                    }
                }
                Action::MeasureRtt => {
                    if let Some(stats) = self.conn.and_then(|h| self.link.endpoint.connection_stats(h)) {
                        self.session.rtt(stats.rtt);
                    }
                }
                Action::Stop => {}
            }
        }
        while let Some(event) = self.session.poll_event() {
            let _ = self.events.send(event).await;
        }
    }
}

/// The result of the lookup under way (never ready without one). A
/// lookup task that failed counts as every name failing.
async fn lookup_done(lookup: &mut Option<JoinHandle<Vec<Resolved>>>, names: &[String]) -> Vec<Resolved> {
    let Some(task) = lookup else { return std::future::pending().await };
    task.await.unwrap_or_else(|e| names.iter().map(|n| (n.clone(), Err(format!("lookup failed: {e}")))).collect())
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
