//! One UDP socket and the protocol endpoint on it: the I/O half of a
//! client, shared by the client driver (`driver.rs`, behind every front
//! end) and by the bench, whose thousands of members need the same socket
//! handling without the driver's per-event channel. The socket work itself
//! (GRO receive, GSO send) is `udpchat_net::UdpIo`, shared with the server.

use std::io;
use std::net::SocketAddr;

use udpchat_net::UdpIo;
use udpchat_proto::Endpoint;

/// Receive calls' worth of buffers per thread.
const RECV_BATCH: usize = 8;
/// Most datagrams in one GSO send; a client rarely has more queued.
const MAX_GSO_SEGMENTS: usize = 16;

/// A seed for a client endpoint's generator.
pub(crate) fn random_seed() -> [u8; 32] {
    let mut seed = [0u8; 32];
    // The OS RNG failing is not something a chat client can work around.
    getrandom::getrandom(&mut seed).expect("operating system random number generator");
    seed
}

/// Asked once per datagram, sent or received, whether to drop it.
type Discard = Box<dyn FnMut() -> bool + Send + Sync>;

pub struct Link {
    io: UdpIo,
    /// The protocol endpoint: connect, send and read events through it;
    /// [`Link::receive`] and [`Link::flush`] move its datagrams.
    pub endpoint: Endpoint,
    discard: Option<Discard>,
}

impl Link {
    /// A client's link: a client endpoint (seeded from the OS) on an
    /// ephemeral port of `server`'s address family.
    pub fn client(server: SocketAddr) -> io::Result<Self> {
        let endpoint = Endpoint::new(random_seed(), None).expect("default client config is valid");
        let io = UdpIo::client(server, RECV_BATCH, MAX_GSO_SEGMENTS)?;
        Ok(Self { io, endpoint, discard: None })
    }

    /// Whether the socket is an IPv4 one (it reaches only addresses of
    /// its own family).
    pub fn is_ipv4(&self) -> bool {
        self.io.local_addr().is_ok_and(|a| a.is_ipv4())
    }

    /// A test and benchmark aid: `discard` decides, datagram by datagram
    /// in both directions, which ones are lost on purpose (the bench's
    /// `--drop`). Real clients never set it.
    #[must_use]
    pub fn discarding(mut self, discard: impl FnMut() -> bool + Send + Sync + 'static) -> Self {
        self.discard = Some(Box::new(discard));
        self
    }

    /// Waits until the socket has something to read.
    pub async fn readable(&self) -> io::Result<()> {
        self.io.readable().await
    }

    /// Hands every datagram queued on the socket to the endpoint, then
    /// returns how many there were (0 if the wake-up was spurious).
    pub fn receive(&mut self) -> io::Result<usize> {
        let (endpoint, discard) = (&mut self.endpoint, &mut self.discard);
        self.io.receive(|now, from, datagram| {
            if !discard.as_mut().is_some_and(|d| d()) {
                endpoint.handle(now, from, datagram);
            }
        })
    }

    /// Sends everything the endpoint has queued.
    pub async fn flush(&mut self) {
        let discard = self.discard.as_mut().map(|d| &mut **d as &mut (dyn FnMut() -> bool + Send));
        self.io.flush(&mut self.endpoint, discard).await;
    }
}
