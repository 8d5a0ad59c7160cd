//! The server's I/O: one UDP socket, one protocol endpoint owning every
//! session, and the chat state machine, on one tokio task. Datagrams are
//! received in batches (recvmmsg, and GRO where the kernel has it). They
//! are sent with GSO (several datagrams to one peer as one buffer) and, on
//! Linux, many peers' at once with sendmmsg (`fanout.rs`); elsewhere one
//! transmit at a time through quinn-udp.
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

use std::io::{self, IoSliceMut, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[cfg(not(target_os = "linux"))]
use quinn_udp::Transmit;
use quinn_udp::{RecvMeta, UdpSocketState};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use udpchat_proto::{
    ConnectionHandle, Endpoint, Event, RateLimit, SendError, ServerConfig, ServerKey, TransportConfig,
};

use crate::chat::{ChatServer, Clock, Outlet, StoreCompletion};
use crate::settings::Settings;
use crate::store::{Store, StoreError};
use crate::store_threads::StoreThreads;

/// Datagrams taken from the socket per receive call.
const RECV_BATCH: usize = 32;
/// Most datagrams in one GSO send.
const MAX_GSO_SEGMENTS: usize = 32;
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

/// Replies go straight into the endpoint.
struct EndpointOutlet<'a> {
    endpoint: &'a mut Endpoint,
    now: Instant,
}

impl Outlet for EndpointOutlet<'_> {
    fn send(&mut self, to: ConnectionHandle, bytes: &[u8]) -> Result<(), SendError> {
        self.endpoint.send(to, bytes)
    }
    fn send_reply(&mut self, to: ConnectionHandle, bytes: &[u8]) -> Result<(), SendError> {
        self.endpoint.send_reply(to, bytes)
    }
    fn close(&mut self, h: ConnectionHandle, code: u64, reason: &str) {
        self.endpoint.close(self.now, h, code, reason);
    }
}

pub struct Server {
    socket: UdpSocket,
    state: UdpSocketState,
    endpoint: Endpoint,
    chat: ChatServer,
    #[cfg(not(target_os = "linux"))]
    transmit_buf: Vec<u8>,
    #[cfg(target_os = "linux")]
    batch: crate::fanout::Batch,
    /// Cleared if the kernel refuses a GSO send after all.
    gso: bool,
    recv_bufs: Vec<Vec<u8>>,
    console_open: bool,
    /// Results of password checks run on blocking threads.
    verified_tx: mpsc::UnboundedSender<(ConnectionHandle, bool)>,
    verified_rx: mpsc::UnboundedReceiver<(ConnectionHandle, bool)>,
    store: StoreThreads,
    /// Store completions (bounded by what the chat server lets be in
    /// flight, see chat/storage.rs).
    completions: mpsc::UnboundedReceiver<StoreCompletion>,
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
        let state = UdpSocketState::new((&socket).into())?;
        let socket = UdpSocket::from_std(socket)?;
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed).map_err(|e| io::Error::other(e.to_string()))?;
        let endpoint = Endpoint::new(seed, Some(server_config(&settings, key)))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let gro = state.gro_segments().max(1);
        // Unbounded, but never longer than the chat server's limit on
        // checks in flight (MAX_VERIFYING).
        let (verified_tx, verified_rx) = mpsc::unbounded_channel();
        // Startup reads stay synchronous: the loop has not started.
        let chat = ChatServer::new(settings, &*store)?;
        let (completions_tx, completions) = mpsc::unbounded_channel();
        let store = StoreThreads::start(store, reader, completions_tx)?;
        Ok(Self {
            socket,
            state,
            endpoint,
            chat,
            #[cfg(not(target_os = "linux"))]
            transmit_buf: Vec::with_capacity(MAX_GSO_SEGMENTS * 1200),
            #[cfg(target_os = "linux")]
            batch: crate::fanout::Batch::default(),
            gso: true,
            recv_bufs: (0..RECV_BATCH).map(|_| vec![0u8; (gro * 1500).max(1500)]).collect(),
            console_open: true,
            verified_tx,
            verified_rx,
            store,
            completions,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
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
        loop {
            self.process_events(output)?;
            self.flush().await?;
            let now = Instant::now();
            let deadline = self.endpoint.poll_timeout().map_or(next_tick, |t| t.min(next_tick));
            tokio::select! {
                r = self.socket.readable() => {
                    r?;
                    self.receive()?;
                }
                _ = tokio::time::sleep_until(deadline.max(now).into()) => {
                    let now = Instant::now();
                    self.endpoint.handle_timeout(now);
                    if now >= next_tick {
                        next_tick = now + Duration::from_secs(1);
                        let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, now };
                        self.chat.tick(Clock::system(), &mut outlet);
                    }
                }
                Some(completion) = self.completions.recv() => {
                    let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, now: Instant::now() };
                    let clock = Clock::system();
                    self.chat.completed(clock, completion, &mut outlet);
                    // Whatever else has come back goes in the same batch.
                    while let Ok(completion) = self.completions.try_recv() {
                        self.chat.completed(clock, completion, &mut outlet);
                    }
                }
                Some((h, ok)) = self.verified_rx.recv() => {
                    let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, now: Instant::now() };
                    self.chat.verified(Clock::system(), h, ok, &mut outlet);
                }
                line = async { console.as_mut()?.recv().await }, if console.is_some() => match line {
                    Some(line) => {
                        let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, now: Instant::now() };
                        self.chat.operator(Clock::system(), &line, &mut outlet);
                    }
                    None => console = None,
                },
                _ = &mut shutdown => break,
            }
        }
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
            let next = tokio::time::timeout_at(until.into(), self.completions.recv()).await;
            let Ok(Some(completion)) = next else {
                tracing::warn!(
                    "the history database did not finish the last commit in time; its lines are not delivered"
                );
                break;
            };
            let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, now: Instant::now() };
            self.chat.completed(Clock::system(), completion, &mut outlet);
            self.submit_store_requests();
        }
        let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, now: Instant::now() };
        self.chat.shutdown(Clock::system(), &mut outlet);
        let until = Instant::now() + SHUTDOWN_GRACE;
        while self.endpoint.connection_count() > 0 && Instant::now() < until {
            self.process_events(output)?;
            self.flush().await?;
            let deadline = self.endpoint.poll_timeout().unwrap_or(until).min(until);
            tokio::select! {
                r = self.socket.readable() => { r?; self.receive()?; }
                _ = tokio::time::sleep_until(deadline.into()) => self.endpoint.handle_timeout(Instant::now()),
            }
        }
        self.flush().await
    }

    /// Reads every datagram the socket has, in batches.
    fn receive(&mut self) -> io::Result<()> {
        let mut meta = [RecvMeta::default(); RECV_BATCH];
        loop {
            // On the stack: this runs for every batch received.
            let mut bufs = self.recv_bufs.iter_mut();
            let mut slices: [IoSliceMut<'_>; RECV_BATCH] =
                std::array::from_fn(|_| IoSliceMut::new(bufs.next().map_or(&mut [][..], |b| &mut b[..])));
            let state = &self.state;
            let socket = &self.socket;
            let result = socket.try_io(Interest::READABLE, || state.recv(socket.into(), &mut slices, &mut meta));
            let count = match result {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                // ICMP errors from a client that went away, and the like:
                // nothing to do about them here.
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err(e),
            };
            let now = Instant::now();
            for (m, buf) in meta.iter().zip(&self.recv_bufs).take(count) {
                let stride = m.stride.max(1);
                for datagram in buf[..m.len].chunks(stride) {
                    self.endpoint.handle(now, m.addr, datagram);
                }
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
            let mut outlet = EndpointOutlet { endpoint: &mut self.endpoint, now: clock.now };
            match event {
                Event::Connected { .. } => {
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

    /// Hands the chat server's store work to the store threads.
    fn submit_store_requests(&mut self) {
        for request in self.chat.take_store_requests() {
            self.store.submit(request);
        }
    }

    /// How many datagrams one transmit may hold.
    fn gso_segments(&self) -> usize {
        // Asked each time: quinn-udp turns GSO off if the kernel rejects it.
        if self.gso { self.state.max_gso_segments().clamp(1, MAX_GSO_SEGMENTS) } else { 1 }
    }

    /// Sends everything the endpoint has queued, many destinations per
    /// system call.
    #[cfg(target_os = "linux")]
    async fn flush(&mut self) -> io::Result<()> {
        loop {
            let now = Instant::now();
            let segments = self.gso_segments();
            while !self.batch.is_full() {
                let Some(t) = self.endpoint.poll_transmit(now, segments, self.batch.next_buf()) else { break };
                self.batch.push(t.destination, t.segment_size);
            }
            if self.batch.is_empty() {
                return Ok(());
            }
            while !self.batch.is_empty() {
                let (batch, socket) = (&mut self.batch, &self.socket);
                match socket.async_io(Interest::WRITABLE, || batch.send(socket)).await {
                    Ok(_) => {}
                    Err(e) => {
                        // One unreachable client must not stop the server:
                        // its datagrams count as lost and the protocol
                        // recovers. A kernel without GSO after all says EIO.
                        if e.raw_os_error() == Some(libc::EIO) && segments > 1 {
                            tracing::warn!("the kernel refused a GSO send ({e}); sending datagrams one by one");
                            self.gso = false;
                        }
                        tracing::debug!("send to {:?} failed: {e}", self.batch.first_destination());
                        self.batch.skip_first();
                    }
                }
            }
        }
    }

    /// Sends everything the endpoint has queued, one transmit at a time.
    #[cfg(not(target_os = "linux"))]
    async fn flush(&mut self) -> io::Result<()> {
        loop {
            let now = Instant::now();
            let segments = self.gso_segments();
            let Some(t) = self.endpoint.poll_transmit(now, segments, &mut self.transmit_buf) else {
                return Ok(());
            };
            let transmit = Transmit {
                destination: t.destination,
                ecn: None,
                contents: &self.transmit_buf[..t.size],
                segment_size: t.segment_size,
                src_ip: None,
            };
            let state = &self.state;
            let socket = &self.socket;
            let sent = socket.async_io(Interest::WRITABLE, || state.try_send(socket.into(), &transmit)).await;
            if let Err(e) = sent {
                // One unreachable client must not stop the server: the
                // datagram counts as lost and the protocol recovers.
                tracing::debug!("send to {} failed: {e}", t.destination);
            }
        }
    }
}
