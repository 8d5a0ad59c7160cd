//! udpchat's UDP socket layer, the one place datagrams meet the kernel:
//! the server driver, the client's link and the bench all move their
//! protocol endpoint's datagrams through [`UdpIo`], so batching, GRO/GSO
//! and the error policy (a failed send is a lost datagram, which the
//! protocol recovers from) are written once.
//!
//! The protocol crate is sans-IO; this crate is the thin I/O layer beside
//! it, as quinn-udp is beside quinn-proto. `fanout.rs` holds the only
//! `unsafe` code of the workspace (building the sendmmsg(2) call).

// unsafe_code is denied workspace-wide and forbidden in every other crate;
// fanout.rs alone allows it.
#![deny(unsafe_code)]

#[cfg(target_os = "linux")]
mod fanout;
mod socket;

pub use socket::{DATAGRAM_ROOM, UdpIo};
