//! The client's network task, and nothing else: it moves bytes between the
//! [`Link`] (a UDP socket and the protocol endpoint on it) and the session
//! core ([`crate::session::Session`], where login, the outbox, resuming
//! and reconnection are decided), time from tokio's clock into both, the
//! front end's requests in and the core's events out. The only state of
//! its own is the current connection handle and the known-servers file,
//! which it writes when the core says to remember a key.

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::time::{sleep_until, timeout};
use udpchat_chat::ServerMsg;
use udpchat_proto::{ClientConfig, ConnectionHandle, Event, code};

use crate::known_hosts::KnownHosts;
use crate::link::Link;
use crate::session::{Action, Request, Session, SessionConfig};
use crate::{ClientError, ClientEvent, ClientOptions};

/// How long to sleep when neither the endpoint nor the core has a timer.
const IDLE_WAKE: Duration = Duration::from_secs(60);

pub(crate) struct Driver {
    /// As the user wrote it: the key of the known-servers entry.
    server_name: String,
    server: SocketAddr,
    link: Link,
    known_hosts: Option<KnownHosts>,
    requests: mpsc::Receiver<Request>,
    /// Set once every handle is gone (the channel is not polled again).
    requests_closed: bool,
    urgent: mpsc::Receiver<Request>,
    urgent_closed: bool,
    events: mpsc::Sender<ClientEvent>,
    session: Session,
    conn: Option<ConnectionHandle>,
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
        let server = tokio::net::lookup_host(&options.server)
            .await
            .map_err(|e| ClientError::Resolve(options.server.clone(), e.to_string()))?
            .next()
            .ok_or_else(|| ClientError::Resolve(options.server.clone(), "no addresses".into()))?;
        let known_hosts = options.known_hosts.as_deref().map(KnownHosts::load).transpose()?;
        let link = Link::client(server).map_err(ClientError::Socket)?;
        let known = known_hosts.as_ref().and_then(|k| k.get(&options.server));
        let session = Session::new(SessionConfig::new(&options, known), Instant::now(), wall_ms());
        Ok(Self {
            server_name: options.server,
            server,
            link,
            known_hosts,
            requests,
            requests_closed: false,
            urgent,
            urgent_closed: false,
            events,
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
                Action::Connect { server_key } => {
                    let config = ClientConfig { server_key, ..ClientConfig::default() };
                    match self.link.endpoint.connect(now, self.server, config) {
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
