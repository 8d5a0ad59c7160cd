//! The server's I/O: one UDP socket, one protocol endpoint owning every
//! session, and the chat state machine, on one tokio task. The socket is
//! `udpchat_net::UdpIo`: datagrams are received in batches (recvmmsg, and
//! GRO where the kernel has it) and sent with GSO (several datagrams to
//! one peer as one buffer) and, on Linux, many peers' at once with
//! sendmmsg.
//!
//! The loop: handle everything received, run due timers, feed the
//! endpoint's events to the chat server, end the batch (the chat server
//! sends the lines it accepted to the store in one commit: group commit,
//! the more arrives at once, the more each fsync carries), hand the
//! store requests to the store threads (`store_threads.rs`) and password
//! checks to blocking threads, send everything queued, then wait for the
//! socket, the next deadline, a store completion, a password check, a
//! console line or shutdown. Nothing here waits for the store: a commit's
//! lines are delivered when its completion comes back.

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::mpsc;
use udpchat_net::UdpIo;
use udpchat_proto::{ConnectionHandle, Endpoint, Event, RateLimit, ServerConfig, ServerKey, TransportConfig};

use crate::admin::AdminRequest;
use crate::chat::{ChatServer, Clock, StoreCompletion};
use crate::cluster::{Cluster, ClusterEvent, ClusterLink};
use crate::discovery::lan_discovery;
use crate::discovery::mdns::Announcement;
use crate::discovery::responder::Responder;
use crate::plain::{Feed, PlainGateway};
use crate::plain_socket::{PlainSocket, broadcast_socket};
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use crate::store_threads::StoreThreads;
use operations::{MetricsHook, hangup_signal, serve_metrics};
use outlet::EndpointOutlet;

pub use operations::Reload;

mod operations;
mod outlet;

/// Datagrams taken from the socket per receive call.
const RECV_BATCH: usize = 32;
/// Most datagrams in one GSO send.
const MAX_GSO_SEGMENTS: usize = 32;
/// Destinations per sendmmsg call: a 64-member room's flush at once.
const FANOUT: usize = 64;
/// How long a shutdown waits for clients to acknowledge the goodbye.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long a shutdown waits for the last commit (a disk that hangs must
/// not keep the server from stopping).
const STORE_GRACE: Duration = Duration::from_secs(30);
const SOCKET_BUFFER: usize = 4 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Opens the listening socket. An unspecified IPv6 address (`[::]`)
/// accepts IPv4 too.
pub fn bind(listen: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(listen), Type::DGRAM, Some(Protocol::UDP))?;
    if listen.is_ipv6() && listen.ip().is_unspecified() {
        socket.set_only_v6(false)?;
    }
    // Bigger buffers absorb bursts; the kernel caps them at its limits.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&listen.into())?;
    Ok(socket.into())
}

/// The protocol configuration the settings ask for.
pub fn server_config(settings: &Settings, key: ServerKey) -> ServerConfig {
    let mut config = ServerConfig::new(key);
    config.transport = TransportConfig {
        idle_timeout: settings.idle_timeout(),
        send_buffer: settings.send_queue_bytes,
        ..TransportConfig::server()
    };
    config.max_connections = settings.max_sessions;
    config.retry_always = settings.retry_always;
    let (burst, rate) = match settings.handshake_per_second {
        0 => (u32::MAX / 2, u32::MAX / 2),
        rate => (settings.handshake_burst.max(1), rate),
    };
    config.handshake_rate = RateLimit { burst, per_second: rate };
    config.validated_handshake_rate = RateLimit { burst: burst.saturating_mul(4), per_second: rate.saturating_mul(4) };
    config.stateless_reset = settings.stateless_reset;
    config
}

pub struct Server {
    io: UdpIo,
    endpoint: Endpoint,
    chat: ChatServer,
    console_open: bool,
    /// Results of password checks run on blocking threads.
    verified_tx: mpsc::UnboundedSender<(ConnectionHandle, bool)>,
    verified_rx: mpsc::UnboundedReceiver<(ConnectionHandle, bool)>,
    store: StoreThreads,
    /// Store completions (bounded by what the chat server lets be in
    /// flight, see chat/storage.rs).
    completions: mpsc::UnboundedReceiver<StoreCompletion>,
    /// Members over plain UDP (empty unless `plain_listen` is set).
    plain: PlainGateway,
    /// Where plain text is read and answered (`plain_socket.rs`).
    plain_socket: PlainSocket,
    /// Answers LAN discovery probes when `lan_discovery` is on.
    discovery: Option<Responder>,
    /// Beacons to send.
    beacons: Vec<(SocketAddr, Vec<u8>)>,
    /// The mDNS announcement, withdrawn at shutdown.
    mdns: Option<Announcement>,
    /// Sends `plain_broadcast` lines: a socket of its own, the only one
    /// allowed to send to a broadcast address (SO_BROADCAST), so that no
    /// forged source address can make the server's own sockets broadcast.
    broadcast: Option<tokio::net::UdpSocket>,
    /// With `metrics_listen`: the metrics and the scrapes waiting for them.
    metrics: Option<MetricsHook>,
    /// Commands from `udpchat admin` ([`Server::serve_admin`]).
    admin: Option<mpsc::Receiver<AdminRequest>>,
    /// Rereads the settings for SIGHUP and `udpchat admin reload`
    /// ([`Server::on_reload`]).
    reload: Option<Reload>,
    /// On a cluster node ([`Server::join_cluster`]): its tasks.
    cluster: Option<ClusterLink>,
}

impl Server {
    /// Wraps a socket from [`bind`], with history in `store` (which the
    /// writer thread takes) and `reader`, a read-only view of the same
    /// data for the reader thread (`SqliteStore::open_reader`). Must be
    /// called inside a tokio runtime.
    pub fn new(
        socket: std::net::UdpSocket,
        settings: Settings,
        key: ServerKey,
        store: Box<dyn Store>,
        reader: Box<dyn Store>,
    ) -> Result<Self, ServerError> {
        let listen = settings.listen;
        let settings_plain =
            (settings.plain_max_members, Duration::from_secs(settings.plain_idle_timeout_secs), settings.plain_listen);
        let discovery_settings = settings.clone();
        let io = UdpIo::new(socket, RECV_BATCH, MAX_GSO_SEGMENTS, FANOUT)?;
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| io::Error::other(e.to_string()))?;
        let endpoint = Endpoint::new(seed, Some(server_config(&settings, key.clone())))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        // Unbounded, but never longer than the chat server's limit on
        // checks in flight (MAX_VERIFYING).
        let (verified_tx, verified_rx) = mpsc::unbounded_channel();
        let metrics = settings.metrics_listen.map(serve_metrics).transpose()?;
        // Startup reads stay synchronous: the loop has not started.
        let mut chat = ChatServer::new(settings, &*store)?;
        let (completions_tx, completions) = mpsc::unbounded_channel();
        let commit_latency = metrics.as_ref().map(|m| m.metrics.commit_latency());
        let store = StoreThreads::start(store, reader, completions_tx, commit_latency)?;
        let mut plain = PlainGateway::new(settings_plain.0, settings_plain.1);
        let plain_socket = PlainSocket::open(settings_plain.2, listen)?;
        let plain_port = match plain_socket.local_addr() {
            Some(a) => Some(a.port()),
            None if plain_socket.is_shared() => Some(io.local_addr()?.port()),
            None => None,
        };
        let (discovery, mdns) = lan_discovery(&discovery_settings, &key, io.local_addr()?, plain_port);
        let broadcast = match discovery_settings.plain_broadcast {
            Some(to) => Some(broadcast_socket(to, &discovery_settings.plain_broadcast_room, &mut plain, &mut chat)?),
            None => None,
        };
        Ok(Self {
            io,
            endpoint,
            chat,
            console_open: true,
            verified_tx,
            verified_rx,
            store,
            completions,
            plain,
            plain_socket,
            discovery,
            beacons: Vec::new(),
            mdns,
            broadcast,
            metrics,
            admin: None,
            reload: None,
            cluster: None,
        })
    }

    /// Makes this server a node of `cluster` (docs/SCALING.md): lines are
    /// numbered and shared through its stream, nicknames held in it. Call
    /// before [`Server::run`].
    pub fn join_cluster(&mut self, cluster: Cluster) {
        self.chat.join_cluster(cluster.node());
        self.cluster = Some(cluster.start(self.chat.cluster_position()));
    }

    /// What LAN discovery does: None when off, else whether the mDNS
    /// announcement runs too (docs/PROTOCOL.md §16).
    pub fn lan_discovery(&self) -> Option<bool> {
        self.discovery.as_ref().map(|_| self.mdns.is_some())
    }

    /// Where the plain-text gateway listens, if it has a socket of its own.
    pub fn plain_addr(&self) -> Option<SocketAddr> {
        self.plain_socket.local_addr()
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// Runs until `shutdown` completes, then says goodbye to every client.
    /// Console lines (operator input) arrive on `console`; what the console
    /// shows is written to `output`.
    pub async fn run(
        mut self,
        mut console: Option<mpsc::Receiver<String>>,
        output: &mut (dyn Write + Send),
        shutdown: impl std::future::Future<Output = ()>,
    ) -> io::Result<()> {
        tokio::pin!(shutdown);
        let mut next_tick = Instant::now() + Duration::from_secs(1);
        // The first soon, so a node that just started is listed at once.
        let mut next_presence = Instant::now() + Duration::from_secs(1);
        let mut hangup = if self.reload.is_some() { hangup_signal() } else { None };
        let mut rate_limited = self.endpoint.stats().handshakes_rate_limited;
        loop {
            self.process_events(output)?;
            self.flush().await?;
            let now = Instant::now();
            let deadline = self.endpoint.poll_timeout().map_or(next_tick, |t| t.min(next_tick));
            // Requests held for flood control are handled as their tokens
            // accrue (chat/pacing.rs).
            let deadline = self.chat.next_release().map_or(deadline, |t| t.min(deadline));
            let take_fed = self.chat.can_take_fed();
            tokio::select! {
                r = self.io.readable() => {
                    r?;
                    self.receive()?;
                }
                r = self.plain_socket.readable() => {
                    r?;
                    self.plain_socket.receive(&mut self.plain);
                }
                _ = tokio::time::sleep_until(deadline.max(now).into()) => {
                    let now = Instant::now();
                    self.endpoint.handle_timeout(now);
                    let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now };
                    self.chat.release_held(Clock::system(), &mut outlet);
                    if now >= next_tick {
                        next_tick = now + Duration::from_secs(1);
                        self.plain.tick(now);
                        let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now };
                        self.chat.tick(Clock::system(), &mut outlet);
                        if let Some(hook) = &self.metrics {
                            hook.metrics.sample_rtts(&self.chat, &self.endpoint);
                        }
                        if let Some(cluster) = self.cluster.as_ref().filter(|_| now >= next_presence) {
                            next_presence = now + crate::chat::SNAPSHOT_EVERY;
                            if let Some(snapshot) = self.chat.presence_snapshot() {
                                cluster.share_presence(snapshot);
                            }
                        }
                        // Said once a second at most, however many.
                        let now_limited = self.endpoint.stats().handshakes_rate_limited;
                        if now_limited > rate_limited {
                            tracing::warn!(
                                target: "udpchat::session",
                                count = now_limited - rate_limited,
                                "handshakes rate-limited (too many from one address, or the server is full)"
                            );
                            rate_limited = now_limited;
                        }
                    }
                }
                Some(completion) = self.completions.recv() => {
                    let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now: Instant::now() };
                    let clock = Clock::system();
                    self.chat.completed(clock, completion, &mut outlet);
                    // Whatever else has come back goes in the same batch.
                    while let Ok(completion) = self.completions.try_recv() {
                        self.chat.completed(clock, completion, &mut outlet);
                    }
                }
                Some((h, ok)) = self.verified_rx.recv() => {
                    let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now: Instant::now() };
                    self.chat.verified(Clock::system(), h, ok, &mut outlet);
                }
                line = async { console.as_mut()?.recv().await }, if console.is_some() => match line {
                    Some(line) => {
                        let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now: Instant::now() };
                        self.chat.operator(Clock::system(), &line, &mut outlet);
                    }
                    None => console = None,
                },
                Some(reply) = async { self.metrics.as_mut()?.scrapes.recv().await }, if self.metrics.is_some() => {
                    self.scrape(reply);
                }
                Some(request) = async { self.admin.as_mut()?.recv().await }, if self.admin.is_some() => {
                    self.admin_command(request);
                }
                Some(()) = async { hangup.as_mut()?.recv().await }, if hangup.is_some() => {
                    tracing::info!(target: "udpchat::reload", "SIGHUP: rereading the settings");
                    self.reload();
                }
                Some(event) = async { self.cluster.as_mut()?.recv(take_fed).await }, if self.cluster.is_some() => {
                    let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now: Instant::now() };
                    let clock = Clock::system();
                    match event {
                        ClusterEvent::Completed(completion) => self.chat.cluster_completed(clock, completion, &mut outlet),
                        ClusterEvent::Fed(fed) => {
                            self.chat.fed(clock, fed, &mut outlet);
                            // What else has come goes in the same local commit.
                            while self.chat.can_take_fed() {
                                let Some(fed) = self.cluster.as_mut().and_then(|c| c.fed.try_recv().ok()) else { break };
                                self.chat.fed(clock, fed, &mut outlet);
                            }
                        }
                        ClusterEvent::Presence(snapshot) => self.chat.presence_received(clock, snapshot),
                    }
                }
                _ = &mut shutdown => break,
            }
        }
        tracing::info!(target: "udpchat::server", sessions = self.chat.session_count(), "shutting down");
        self.shut_down(output).await
    }

    /// Tells every client the server is going away and waits (briefly) for
    /// the goodbyes to be acknowledged.
    async fn shut_down(mut self, output: &mut (dyn Write + Send)) -> io::Result<()> {
        // First the current batch is stored and delivered (the protocol's
        // shutdown order). Reads that come back meanwhile are handled too.
        self.chat.commit();
        self.submit_store_requests();
        let until = Instant::now() + STORE_GRACE;
        while self.chat.storing() {
            let mut outlet =
                EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now: Instant::now() };
            let clock = Clock::system();
            let cluster = self.cluster.as_mut();
            let has_cluster = cluster.is_some();
            let next = tokio::time::timeout_at(until.into(), async {
                tokio::select! {
                    Some(c) = self.completions.recv() => Some(Ok(c)),
                    Some(c) = async { cluster?.completions.recv().await }, if has_cluster => Some(Err(c)),
                    else => None,
                }
            })
            .await;
            match next {
                Ok(Some(Ok(completion))) => self.chat.completed(clock, completion, &mut outlet),
                Ok(Some(Err(completion))) => self.chat.cluster_completed(clock, completion, &mut outlet),
                _ => {
                    tracing::warn!(
                        "the history database (or the cluster) did not finish the last commit in time; its lines are not delivered"
                    );
                    break;
                }
            }
            self.submit_store_requests();
        }
        if let Some(cluster) = self.cluster.take() {
            cluster.close().await;
        }
        if let Some(mdns) = self.mdns.take() {
            mdns.stop();
        }
        let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now: Instant::now() };
        self.chat.shutdown(Clock::system(), &mut outlet);
        let until = Instant::now() + SHUTDOWN_GRACE;
        while self.endpoint.connection_count() > 0 && Instant::now() < until {
            self.process_events(output)?;
            self.flush().await?;
            let deadline = self.endpoint.poll_timeout().unwrap_or(until).min(until);
            tokio::select! {
                r = self.io.readable() => { r?; self.receive()?; }
                _ = tokio::time::sleep_until(deadline.into()) => self.endpoint.handle_timeout(Instant::now()),
            }
        }
        self.flush().await
    }

    /// Reads every datagram the socket has, in batches.
    fn receive(&mut self) -> io::Result<()> {
        let (endpoint, plain) = (&mut self.endpoint, &mut self.plain);
        let (discovery, beacons) = (&mut self.discovery, &mut self.beacons);
        let plain_here = self.plain_socket.is_shared();
        let members = u32::try_from(self.chat.session_count()).unwrap_or(u32::MAX);
        self.io.receive(|now, from, datagram| match datagram.first() {
            // The first byte tells the kinds apart (docs/PROTOCOL.md §13.1).
            Some(0x20..=0x7f) if plain_here => plain.datagram(now, from, datagram),
            Some(0x80..=0xff) => {
                if let Some(beacon) = discovery.as_mut().and_then(|r| r.answer(now, from, datagram, members)) {
                    beacons.push((from, beacon));
                }
            }
            _ => endpoint.handle(now, from, datagram),
        })?;
        Ok(())
    }

    /// Hands what the plain-text gateway has for the chat core to it,
    /// until nothing is left (a welcome releases the lines a member sent
    /// while logging in).
    fn pump_plain(&mut self, clock: Clock) {
        while let Some(feed) = self.plain.next_feed() {
            let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now: clock.now };
            match feed {
                Feed::Connect { h, addr } => {
                    let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                    self.chat.connected_plain(clock, h, addr, &mut outlet);
                }
                Feed::Message { h, bytes } => self.chat.message(clock, h, &bytes, &mut outlet),
                Feed::Closed { h, reason } => self.chat.closed(clock, h, &reason, &mut outlet),
            }
        }
    }

    /// Feeds endpoint events to the chat server and prints the console.
    fn process_events(&mut self, output: &mut (dyn Write + Send)) -> io::Result<()> {
        let clock = Clock::system();
        while let Some((h, event)) = self.endpoint.poll_event() {
            // IPv4 clients of a dual-stack socket arrive as ::ffff:a.b.c.d;
            // the chat layer sees a.b.c.d, so bans and per-address limits
            // match either way.
            let canonical = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
            // Only a new session needs its address looked up.
            let addr = matches!(event, Event::Connected { .. })
                .then(|| self.endpoint.remote_address(h))
                .flatten()
                .map(canonical);
            let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now: clock.now };
            match event {
                Event::Connected { .. } => {
                    // The server's first round-trip sample is its side of
                    // the handshake (HANDSHAKE sent to client proven).
                    if let (Some(hook), Some(stats)) = (&self.metrics, outlet.endpoint.connection_stats(h)) {
                        hook.metrics.observe_handshake(stats.rtt);
                    }
                    if let Some(addr) = addr {
                        self.chat.connected(clock, h, addr, &mut outlet);
                    }
                }
                Event::Message(bytes) => {
                    self.chat.message(clock, h, &bytes, &mut outlet);
                    self.endpoint.recycle(bytes);
                }
                Event::Closed(reason) => self.chat.closed(clock, h, &reason, &mut outlet),
                Event::Writable => self.chat.writable(h),
                Event::Migrated { remote } => self.chat.migrated(clock, h, canonical(remote), &mut outlet),
            }
        }
        self.pump_plain(clock);
        self.chat.commit();
        self.submit_store_requests();
        for check in self.chat.take_verifications() {
            let tx = self.verified_tx.clone();
            tokio::task::spawn_blocking(move || {
                let ok = check.check();
                let _ = tx.send((check.session, ok));
            });
        }
        let lines = self.chat.take_console();
        if !lines.is_empty() && self.console_open {
            // The console is best effort: if whoever reads it goes away
            // (a closed pipe), the server keeps serving and stops writing.
            let written = lines.iter().try_for_each(|line| writeln!(output, "{line}")).and_then(|()| output.flush());
            if let Err(e) = written {
                tracing::warn!("console output failed ({e}); no more console output");
                self.console_open = false;
            }
        }
        Ok(())
    }

    /// Hands the chat server's store work to the store threads (and its
    /// cluster work to the cluster's tasks).
    fn submit_store_requests(&mut self) {
        for request in self.chat.take_store_requests() {
            self.store.submit(request);
        }
        if let Some(cluster) = &self.cluster {
            for request in self.chat.take_cluster_requests() {
                cluster.submit(request);
            }
        }
    }

    /// Sends everything the endpoint has queued, many destinations per
    /// system call.
    async fn flush(&mut self) -> io::Result<()> {
        self.io.flush(&mut self.endpoint, None).await;
        for (to, bytes) in self.beacons.drain(..) {
            if let Err(e) = self.io.try_send_to(&bytes, to) {
                tracing::debug!("beacon to {to} not sent: {e}");
            }
        }
        if let (Some(socket), Some((to, lines))) = (&self.broadcast, self.plain.take_broadcasts()) {
            for bytes in lines {
                if let Err(e) = socket.try_send_to(&bytes, to) {
                    tracing::debug!("plain broadcast to {to} not sent: {e}");
                }
            }
        }
        for (to, bytes) in self.plain.take_outbox() {
            let sent = match self.plain_socket.socket() {
                Some(socket) => socket.try_send_to(&bytes, to).map(drop),
                None => self.io.try_send_to(&bytes, to),
            };
            if let Err(e) = sent {
                tracing::debug!("plain text to {to} not sent: {e}");
            }
        }
        Ok(())
    }
}
