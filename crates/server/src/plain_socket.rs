//! Where the plain-text gateway (`plain/`, docs/PROTOCOL.md §17) reads and
//! answers: nowhere (off, the default), the server's own socket (when
//! `plain_listen` equals `listen`: text starts with a byte the transport
//! never uses, §13.1), or a socket of its own.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::net::UdpSocket;

use crate::chat::ChatServer;
use crate::plain::PlainGateway;

/// Datagrams read per wake-up, so that a flood on the text port cannot
/// starve the rest of the loop.
const RECV_BATCH: usize = 64;
/// Longer text datagrams are cut here (longer than any line allowed).
const RECV_ROOM: usize = 65_536;

pub(crate) enum PlainSocket {
    Off,
    Shared,
    Own(UdpSocket),
}

impl PlainSocket {
    /// The socket `plain_listen` asks for; `listen` is the server's own
    /// configured address.
    pub(crate) fn open(plain_listen: Option<SocketAddr>, listen: SocketAddr) -> io::Result<Self> {
        match plain_listen {
            None => Ok(Self::Off),
            Some(addr) if addr == listen => Ok(Self::Shared),
            Some(addr) => {
                let socket = crate::driver::bind(addr).map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot listen for plain text on {addr} (plain_listen): {e}"))
                })?;
                Ok(Self::Own(UdpSocket::from_std(socket)?))
            }
        }
    }

    pub(crate) fn is_shared(&self) -> bool {
        matches!(self, Self::Shared)
    }

    pub(crate) fn socket(&self) -> Option<&UdpSocket> {
        match self {
            Self::Own(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.socket().and_then(|s| s.local_addr().ok())
    }

    /// Waits until the own socket has something (forever without one).
    pub(crate) async fn readable(&self) -> io::Result<()> {
        match self {
            Self::Own(s) => s.readable().await,
            _ => std::future::pending().await,
        }
    }

    /// Hands what the own socket has (up to a batch) to the gateway.
    pub(crate) fn receive(&self, plain: &mut PlainGateway) {
        let Self::Own(socket) = self else { return };
        let mut buf = vec![0u8; RECV_ROOM];
        for _ in 0..RECV_BATCH {
            match socket.try_recv_from(&mut buf) {
                Ok((n, from)) => plain.datagram(Instant::now(), from, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    // An ICMP error from an earlier send, usually.
                    tracing::debug!("plain text socket: {e}");
                }
            }
        }
    }
}

/// The socket for `plain_broadcast` (docs/PROTOCOL.md §17.6), with the
/// room's lines routed to it: the only socket of the server allowed to
/// send to a broadcast address (SO_BROADCAST), so that no forged source
/// address can make the others broadcast.
pub(crate) fn broadcast_socket(
    to: SocketAddr,
    room: &str,
    plain: &mut PlainGateway,
    chat: &mut ChatServer,
) -> io::Result<UdpSocket> {
    let h = plain.broadcast_to(to);
    chat.attach_listener(h, room)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("plain_broadcast_room: {e}")))?;
    let any: SocketAddr = if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let socket = std::net::UdpSocket::bind(any)?;
    socket.set_broadcast(true)?;
    socket.set_nonblocking(true)?;
    let ips = if_addrs::get_if_addrs().unwrap_or_default().iter().map(if_addrs::Interface::ip).collect();
    plain.ignore_own(ips, socket.local_addr()?.port());
    UdpSocket::from_std(socket)
}
