//! One UDP socket and the protocol endpoint on it: the I/O half of a
//! client, shared by the client driver (`driver.rs`, behind every front
//! end) and by `udpchat bench`, whose thousands of members need the same
//! socket handling without the driver's per-event channel.
//!
//! Receiving goes through quinn-udp: recvmmsg, and GRO where the kernel
//! has it, so a burst the server sent in one GSO call arrives in one
//! system call and crosses the kernel as one buffer instead of being cut
//! into datagrams on the way in. Sending uses GSO the same way.
//!
//! The receive buffers are per thread, not per link: a GRO batch needs
//! about 100 KiB of buffer, and a bench holding 10,000 idle sessions
//! cannot give each its own. Receiving and handling happen in one
//! synchronous call, so links on one thread never need the buffer at once.

use std::cell::RefCell;
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::time::Instant;

use quinn_udp::{RecvMeta, Transmit, UdpSocketState};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use udpchat_proto::Endpoint;

use crate::loss::Loss;

/// Receive calls' worth of buffers per thread.
const RECV_BATCH: usize = 8;
/// Most datagrams in one GSO send; a client rarely has more queued.
const MAX_GSO_SEGMENTS: usize = 16;
/// Room for one datagram (at most 1200 bytes) with margin.
const DATAGRAM_ROOM: usize = 1500;

/// A seed for a client endpoint's (or the loss injector's) generator.
pub(crate) fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    // The OS RNG failing is not something a chat client can work around.
    getrandom::getrandom(&mut seed).expect("operating system random number generator");
    seed
}

thread_local! {
    static RECV_BUFS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

pub struct Link {
    socket: UdpSocket,
    state: UdpSocketState,
    /// The protocol endpoint: connect, send and read events through it;
    /// [`Link::receive`] and [`Link::flush`] move its datagrams.
    pub endpoint: Endpoint,
    loss: Loss,
    transmit: Vec<u8>,
}

impl Link {
    /// A client's link: a client endpoint (seeded from the OS) on an
    /// ephemeral port of `server`'s address family. `drop_rate` is
    /// [`crate::ClientOptions::drop_rate`].
    pub fn client(server: SocketAddr, drop_rate: f64) -> io::Result<Self> {
        let endpoint = Endpoint::new(random_seed(), None).expect("default client config is valid");
        Self::bind(server, endpoint, drop_rate)
    }

    fn bind(server: SocketAddr, endpoint: Endpoint, drop_rate: f64) -> io::Result<Self> {
        let bind: SocketAddr = if server.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
        let socket = std::net::UdpSocket::bind(bind)?;
        socket.set_nonblocking(true)?;
        let state = UdpSocketState::new((&socket).into())?;
        let socket = UdpSocket::from_std(socket)?;
        Ok(Self { socket, state, endpoint, loss: Loss::new(drop_rate), transmit: Vec::new() })
    }

    /// Waits until the socket has something to read.
    pub async fn readable(&self) -> io::Result<()> {
        self.socket.readable().await
    }

    /// Hands every datagram queued on the socket to the endpoint, then
    /// returns how many there were (0 if the wake-up was spurious).
    pub fn receive(&mut self) -> io::Result<usize> {
        let gro = self.state.gro_segments().max(1);
        RECV_BUFS.with_borrow_mut(|bufs| {
            let room = gro * DATAGRAM_ROOM;
            if bufs.len() < RECV_BATCH || bufs[0].len() < room {
                *bufs = (0..RECV_BATCH).map(|_| vec![0u8; room]).collect();
            }
            let mut meta = [RecvMeta::default(); RECV_BATCH];
            let mut total = 0;
            loop {
                let mut slices: [IoSliceMut<'_>; RECV_BATCH] = std::array::from_fn(|_| IoSliceMut::new(&mut []));
                for (slice, buf) in slices.iter_mut().zip(bufs.iter_mut()) {
                    *slice = IoSliceMut::new(buf);
                }
                let (state, socket) = (&self.state, &self.socket);
                let count =
                    match socket.try_io(Interest::READABLE, || state.recv(socket.into(), &mut slices, &mut meta)) {
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(total),
                        // An ICMP error for an earlier send: the protocol's
                        // timers deal with an unreachable server.
                        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => continue,
                        Err(e) => return Err(e),
                    };
                let now = Instant::now();
                for (m, buf) in meta.iter().zip(bufs.iter()).take(count) {
                    for datagram in buf[..m.len].chunks(m.stride.max(1)) {
                        total += 1;
                        if !self.loss.drop() {
                            self.endpoint.handle(now, m.addr, datagram);
                        }
                    }
                }
            }
        })
    }

    /// Sends everything the endpoint has queued. A failed send is a lost
    /// datagram: the protocol recovers, so it is not an error here.
    pub async fn flush(&mut self) {
        // Injected loss is per datagram, so it sends them one by one.
        let batch = if self.loss.is_active() { 1 } else { self.state.max_gso_segments().clamp(1, MAX_GSO_SEGMENTS) };
        while let Some(t) = self.endpoint.poll_transmit(Instant::now(), batch, &mut self.transmit) {
            if self.loss.drop() {
                continue;
            }
            let transmit = Transmit {
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
