//! The udpchat server: the chat state machine (rooms, members, commands,
//! the operator console) and the UDP driver that runs it over the
//! protocol endpoint.
//!
//! `chat` is sans-IO like the protocol crate, so it is tested without
//! sockets (crates/server/tests); `driver` owns the socket, the endpoint
//! and the clock, and runs the chat core's store requests on
//! `store_threads`.

#![forbid(unsafe_code)]

pub mod admin;
pub mod chat;
pub mod cluster;
pub mod discovery;
pub mod driver;
pub mod key_file;
pub mod limits;
pub mod metrics;
pub mod metrics_http;
pub mod plain;
mod plain_socket;
pub mod private_files;
pub mod settings;
pub mod store;
pub mod store_threads;

pub use chat::{ChatServer, Clock, Outlet, StoreCompletion, StoreRequest};
pub use settings::{DEFAULT_PORT, Settings};
