//! The udpchat wire protocol as a sans-IO state machine.
//!
//! This crate opens no sockets, spawns no threads and never reads the
//! clock: the driver passes in datagrams and `Instant`s and takes out
//! datagrams, events and timer deadlines (see [`Endpoint`]). That keeps the
//! protocol testable on a simulated network with a virtual clock, and lets
//! one endpoint object own tens of thousands of sessions without locks.
//!
//! The wire format is specified in `docs/PROTOCOL.md`; module docs point to
//! its sections.
//!
//! A driver loop looks like this:
//!
//! ```no_run
//! # use std::time::Instant;
//! # use udpchat_proto::{Endpoint, Event};
//! # fn recv() -> Option<(std::net::SocketAddr, Vec<u8>)> { None }
//! # fn send_to(_: std::net::SocketAddr, _: &[u8]) {}
//! # let mut endpoint = Endpoint::new([0; 32], None).unwrap();
//! let mut buf = Vec::new();
//! loop {
//!     let now = Instant::now();
//!     if let Some((from, datagram)) = recv() {
//!         endpoint.handle(now, from, &datagram);
//!     }
//!     endpoint.handle_timeout(now);
//!     while let Some(t) = endpoint.poll_transmit(now, 1, &mut buf) {
//!         send_to(t.destination, &buf[..t.size]);
//!     }
//!     while let Some((session, event)) = endpoint.poll_event() {
//!         if let Event::Message(m) = event { /* ... */ }
//!     }
//!     // ...then wait for a datagram or until endpoint.poll_timeout().
//! #   break;
//! }
//! ```

#![forbid(unsafe_code)]

pub mod coding;
mod config;
mod connection;
mod crypto;
mod endpoint;
mod event;
mod handle;
// The datagram and frame layouts are internals, public only to the fuzz
// targets (cargo-fuzz builds with `--cfg fuzzing`), as quinn-proto does:
// applications go through `Endpoint`, and the wire format is the spec's,
// not this crate's API.
#[cfg(fuzzing)]
pub mod frame;
#[cfg(not(fuzzing))]
mod frame;
mod handshake_limit;
#[cfg(fuzzing)]
pub mod packet;
#[cfg(not(fuzzing))]
mod packet;
mod params;
mod ranges;
mod recovery;
mod replay;
mod reset;
mod retry;
mod stream;
mod token_bucket;

pub use config::{ClientConfig, ConfigError, RateLimit, ServerConfig, TransportConfig};
pub use connection::ConnectionStats;
pub use crypto::{ParseKeyError, PublicKey, ServerKey};
pub use endpoint::{Endpoint, EndpointStats, Transmit};
pub use event::{CloseReason, Event, SendError, code};
pub use handle::ConnectionHandle;
pub use stream::MAX_MESSAGE_SIZE;
pub use token_bucket::TokenBucket;
