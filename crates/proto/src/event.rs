//! What the protocol machine tells the application: events, the reasons a
//! session ended, close codes and send errors.

use std::collections::VecDeque;
use std::net::SocketAddr;

use thiserror::Error;

use crate::crypto::PublicKey;
use crate::handle::ConnectionHandle;

/// Close codes carried in CLOSE frames (docs/PROTOCOL.md §7). Codes from
/// [`APPLICATION_BASE`] up are the application's to define.
pub mod code {
    pub const NORMAL: u64 = 0x00;
    pub const INTERNAL_ERROR: u64 = 0x01;
    pub const PROTOCOL_VIOLATION: u64 = 0x02;
    pub const FLOW_CONTROL: u64 = 0x03;
    pub const MESSAGE_TOO_LARGE: u64 = 0x04;
    pub const SERVER_BUSY: u64 = 0x05;
    pub const SHUTTING_DOWN: u64 = 0x06;
    pub const APPLICATION_BASE: u64 = 0x100;
}

/// Something that happened on a session. Drained with
/// [`crate::Endpoint::poll_event`] after every call that feeds the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The session is established. On the client: the handshake completed
    /// and the server proved `server_key`. On the server: a new client
    /// proved its address (the first event for that handle).
    Connected { server_key: PublicKey },
    /// A complete message from the peer, delivered exactly once, in order.
    Message(Vec<u8>),
    /// `send` reported [`SendError::Blocked`] earlier; there is room again.
    Writable,
    /// The peer's address changed and the new one was validated.
    Migrated { remote: SocketAddr },
    /// The session is over; the handle is no longer valid. Always the last
    /// event for a handle.
    Closed(CloseReason),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CloseReason {
    #[error("closed locally (code {code:#x})")]
    Local { code: u64 },
    #[error("closed by peer (code {code:#x}): {reason}")]
    Peer { code: u64, reason: String },
    #[error("no packet from the peer within the idle timeout")]
    TimedOut,
    #[error("handshake did not complete in time")]
    HandshakeTimedOut,
    #[error(
        "the server's key changed: expected {expected}, got {got}. If the server was \
         reinstalled, remove the old key; otherwise someone may be intercepting the connection"
    )]
    KeyMismatch { expected: PublicKey, got: PublicKey },
    #[error("the server speaks none of our protocol versions (it offers {offered:?})")]
    VersionMismatch { offered: Vec<u32> },
    #[error("the peer broke the protocol: {0}")]
    ProtocolViolation(&'static str),
    #[error("the server no longer knows this session (it probably restarted)")]
    Reset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SendError {
    #[error("message of {size} bytes is over the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("send buffer full; wait for Event::Writable")]
    Blocked,
    #[error("the session is closed or closing")]
    Closed,
    #[error("no such session")]
    UnknownConnection,
}

/// Buffers kept for reuse: enough for a burst of messages handed back
/// between polls. Past this, returned buffers are freed.
const MAX_SPARE_BUFFERS: usize = 256;
/// Only buffers this small are kept (a chat line's message is far
/// smaller), so the pool holds at most 1 MiB.
const MAX_SPARE_CAPACITY: usize = 4096;

/// The endpoint's event queue, and the message buffers the application
/// handed back ([`crate::Endpoint::recycle`]) for the next messages, so a
/// busy receiver allocates nothing per message.
#[derive(Debug, Default)]
pub(crate) struct Events {
    queue: VecDeque<(ConnectionHandle, Event)>,
    spare: Vec<Vec<u8>>,
}

impl Events {
    pub(crate) fn push_back(&mut self, event: (ConnectionHandle, Event)) {
        self.queue.push_back(event);
    }

    pub(crate) fn pop_front(&mut self) -> Option<(ConnectionHandle, Event)> {
        self.queue.pop_front()
    }

    /// An empty buffer for a message: a recycled one if there is one.
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        self.spare.pop().unwrap_or_default()
    }

    pub(crate) fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < MAX_SPARE_BUFFERS && buf.capacity() <= MAX_SPARE_CAPACITY {
            buf.clear();
            self.spare.push(buf);
        }
    }
}
