//! [`UdpIo`]: one UDP socket moving a protocol endpoint's datagrams.
//!
//! Receiving goes through quinn-udp: recvmmsg, and GRO where the kernel
//! has it, so a burst a peer sent in one GSO call arrives in one system
//! call and crosses the kernel as one buffer instead of being cut into
//! datagrams on the way in. Sending uses GSO the same way (several
//! datagrams to one address in one buffer) and, on Linux, sendmmsg for
//! several addresses at once (`fanout.rs`).
//!
//! The receive buffers are per thread, not per socket: a GRO batch needs
//! about 100 KiB of buffer, and a bench holding 10,000 idle sessions
//! cannot give each its own. Receiving and handling happen in one
//! synchronous call, so sockets on one thread never need them at once.

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::time::Instant;

use quinn_udp::{RecvMeta, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use udpchat_proto::Endpoint;

/// Room for one datagram (the protocol sends at most 1200 bytes) with margin.
pub const DATAGRAM_ROOM: usize = 1500;
/// Receive buffers per thread, so per recvmmsg call: the largest batch
/// any [`UdpIo`] on the thread asked for (bounded by [`MAX_RECV_BATCH`]).
const MAX_RECV_BATCH: usize = 64;

thread_local! {
    static RECV_BUFS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A socket and its batching state. Every call is either synchronous
/// (receive) or awaits only the socket (flush), so one task owns it.
pub struct UdpIo {
    socket: UdpSocket,
    state: UdpSocketState,
    /// Datagrams taken per receive call.
    recv_batch: usize,
    /// Most datagrams in one GSO buffer, as asked by the owner.
    max_segments: usize,
    /// Cleared if the kernel refuses a GSO send after all.
    gso: bool,
    #[cfg(target_os = "linux")]
    batch: crate::fanout::Batch,
    #[cfg(not(target_os = "linux"))]
    transmit: Vec<u8>,
}

impl UdpIo {
    /// Wraps a bound socket. `recv_batch` is how many datagrams (or GRO
    /// buffers) one receive call may take, `max_segments` the most
    /// datagrams one GSO buffer may carry, and `destinations` how many
    /// addresses one flush call may send to at once (a server wants 64, a
    /// client talking to one server 1). Must be called inside a tokio
    /// runtime.
    pub fn new(
        socket: std::net::UdpSocket,
        recv_batch: usize,
        max_segments: usize,
        destinations: usize,
    ) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        let socket = UdpSocket::from_std(socket)?;
        #[cfg(not(target_os = "linux"))]
        let _ = destinations;
        Ok(Self {
            socket,
            state,
            recv_batch: recv_batch.clamp(1, MAX_RECV_BATCH),
            max_segments: max_segments.max(1),
            gso: true,
            #[cfg(target_os = "linux")]
            batch: crate::fanout::Batch::new(destinations),
            #[cfg(not(target_os = "linux"))]
            transmit: Vec::new(),
        })
    }

    /// A client's socket: an ephemeral port of `peer`'s address family.
    pub fn client(peer: SocketAddr, recv_batch: usize, max_segments: usize) -> io::Result<Self> {
        let any: SocketAddr = if peer.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal address");
        Self::new(std::net::UdpSocket::bind(any)?, recv_batch, max_segments, 1)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Waits until the socket has something to read.
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Hands every datagram queued on the socket to `handle` (with the
    /// time it was read and its source), then returns how many there were
    /// (0 if the wake-up was spurious). A GRO buffer is cut back into its
    /// datagrams here.
    pub fn receive(&mut self, mut handle: impl FnMut(Instant, SocketAddr, &[u8])) -> io::Result<usize> {
        let gro = self.state.gro_segments().max(1);
        let wanted = self.recv_batch;
        RECV_BUFS.with_borrow_mut(|bufs| {
            let room = gro * DATAGRAM_ROOM;
            if bufs.len() < wanted || bufs[0].len() < room {
                *bufs = (0..wanted.max(bufs.len())).map(|_| vec![0u8; room]).collect();
            }
            let mut meta = [RecvMeta::default(); MAX_RECV_BATCH];
            let mut total = 0;
            loop {
                let mut slices: [IoSliceMut<'_>; MAX_RECV_BATCH] = std::array::from_fn(|_| IoSliceMut::new(&mut []));
                for (slice, buf) in slices.iter_mut().zip(bufs.iter_mut()).take(wanted) {
                    *slice = IoSliceMut::new(buf);
                }
                let (state, socket) = (&self.state, &self.socket);
                let result = socket.try_io(Interest::READABLE, || {
                    state.recv(socket.into(), &mut slices[..wanted], &mut meta[..wanted])
                });
                let count = match result {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                    // An ICMP error for an earlier send (a peer that went
                    // away): the protocol's timers deal with it.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                    Err(e) => return Err(e),
                };
                let now = Instant::now();
                for (m, buf) in meta.iter().zip(bufs.iter()).take(count) {
                    for datagram in buf[..m.len].chunks(m.stride.max(1)) {
                        total += 1;
                        handle(now, m.addr, datagram);
                    }
                }
            }
        })
    }

    /// How many datagrams one transmit may hold.
    fn segments(&self) -> usize {
        // Asked each time: quinn-udp turns GSO off if the kernel rejects it.
        if self.gso { self.state.max_gso_segments().clamp(1, self.max_segments) } else { 1 }
    }

    /// Sends one datagram that is not the endpoint's (a plain-text reply,
    /// a discovery beacon) if the socket can take it now; a full socket
    /// buffer drops it, as the network could.
    pub fn try_send_to(&self, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
        self.socket.try_send_to(bytes, to).map(drop)
    }

    /// Sends everything `endpoint` has queued. A failed send is a lost
    /// datagram: the protocol recovers, so it is not an error here, and
    /// one unreachable peer never stops the others. `discard`, a test and
    /// benchmark aid, is asked once per datagram whether to drop it
    /// instead (datagrams then go one per transmit).
    pub async fn flush(&mut self, endpoint: &mut Endpoint, mut discard: Option<&mut (dyn FnMut() -> bool + Send)>) {
        #[cfg(target_os = "linux")]
        loop {
            let now = Instant::now();
            let segments = if discard.is_some() { 1 } else { self.segments() };
            while !self.batch.is_full() {
                let Some(t) = endpoint.poll_transmit(now, segments, self.batch.next_buf()) else { break };
                if discard.as_mut().is_some_and(|d| d()) {
                    continue;
                }
                self.batch.push(t.destination, t.segment_size);
            }
            if self.batch.is_empty() {
                return;
            }
            while !self.batch.is_empty() {
                let (batch, socket) = (&mut self.batch, &self.socket);
                if let Err(e) = socket.async_io(Interest::WRITABLE, || batch.send(socket)).await {
                    // A kernel without GSO after all says EIO.
                    if e.raw_os_error() == Some(libc::EIO) && segments > 1 {
                        tracing::warn!("the kernel refused a GSO send ({e}); sending datagrams one by one");
                        self.gso = false;
                    }
                    tracing::debug!("send to {:?} failed: {e}", self.batch.first_destination());
                    self.batch.skip_first();
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        loop {
            let segments = if discard.is_some() { 1 } else { self.segments() };
            let Some(t) = endpoint.poll_transmit(Instant::now(), segments, &mut self.transmit) else { return };
            if discard.as_mut().is_some_and(|d| d()) {
                continue;
            }
            let transmit = quinn_udp::Transmit {
                destination: t.destination,
                ecn: None,
                contents: &self.transmit[..t.size],
                segment_size: t.segment_size,
                src_ip: None,
            };
            let (state, socket) = (&self.state, &self.socket);
            if let Err(e) = socket.async_io(Interest::WRITABLE, || state.try_send(socket.into(), &transmit)).await {
                tracing::debug!("send to {} failed: {e}", t.destination);
            }
        }
    }
}
