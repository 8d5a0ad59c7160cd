//! Where the chat core's replies go: straight into the protocol endpoint,
//! or to the plain-text gateway for its members (foreign handles), so the
//! core needs to know neither.

use std::time::Instant;

use udpchat_proto::{ConnectionHandle, Endpoint, SendError};

use crate::chat::Outlet;
use crate::plain::PlainGateway;

/// Replies go straight into the endpoint, or to the plain-text gateway
/// for its members (foreign handles, `plain/mod.rs`).
pub(super) struct EndpointOutlet<'a> {
    pub(super) endpoint: &'a mut Endpoint,
    pub(super) plain: &'a mut PlainGateway,
    pub(super) now: Instant,
}

impl Outlet for EndpointOutlet<'_> {
    fn send(&mut self, to: ConnectionHandle, bytes: &[u8]) -> Result<(), SendError> {
        if to.is_foreign() {
            // Never Blocked: what a plain member cannot take is dropped.
            self.plain.deliver(self.now, to, bytes);
            return Ok(());
        }
        self.endpoint.send(to, bytes)
    }
    fn send_reply(&mut self, to: ConnectionHandle, bytes: &[u8]) -> Result<(), SendError> {
        if to.is_foreign() {
            return self.send(to, bytes);
        }
        self.endpoint.send_reply(to, bytes)
    }
    fn close(&mut self, h: ConnectionHandle, code: u64, reason: &str) {
        if h.is_foreign() {
            self.plain.close(h, code, reason);
            return;
        }
        self.endpoint.close(self.now, h, code, reason);
    }
    fn set_reading(&mut self, h: ConnectionHandle, reading: bool) {
        if h.is_foreign() {
            self.plain.set_reading(h, reading);
        } else {
            self.endpoint.set_reading(self.now, h, reading);
        }
    }
}
