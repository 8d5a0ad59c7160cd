//! Flood control as back-pressure (docs/PROTOCOL.md §15.10): a session
//! that sends faster than its rate is slowed down, never refused for
//! speed. Each session has a token bucket (a burst, then so many requests
//! per second: ergo's default of 5 and 2/s, or its account's own rate); a
//! request that finds the bucket empty waits in the session's bounded
//! held queue, and every later request of that session queues behind it,
//! so the session's order (a /join, then lines for that room, then QUIT)
//! is kept. Held requests are handled as tokens accrue
//! ([`ChatServer::release_held`], at [`ChatServer::next_release`]).
//!
//! Bounds: past [`HOLD_REQUESTS`] requests or [`HOLD_BYTES`] bytes held,
//! the session's transport stream stops being read ([`Outlet::set_reading`]),
//! so the transport's flow control stops the client: it blocks, and
//! nothing is lost. What the endpoint had already taken from the stream
//! still arrives; a session that somehow holds [`HOLD_MAX_BYTES`]
//! (only a client that ignores flow control could) is closed.
//!
//! The limits a session is held to are sent to it as `Limits` right after
//! Welcome, so a client can pace itself and never be held at all.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use udpchat_chat::{ClientMsg, ServerMsg};
use udpchat_proto::{ConnectionHandle, TokenBucket};

use super::{ChatServer, Clock, Outlet};

/// Held requests past which the session's stream stops being read.
pub const HOLD_REQUESTS: usize = 256;
/// Held bytes (as received) past which the stream stops being read.
pub const HOLD_BYTES: usize = 64 * 1024;
/// Held bytes at which the session is closed: far beyond what the
/// endpoint can have taken from a paused stream.
pub const HOLD_MAX_BYTES: usize = 4 * 1024 * 1024;

/// A session's rate and its requests waiting for tokens.
pub(crate) struct Pacing {
    pub(crate) burst: u32,
    /// Requests per second; 0 is unlimited.
    pub(crate) per_second: f64,
    bucket: TokenBucket,
    held: VecDeque<Held>,
    held_bytes: usize,
    /// When the next held request can have a token.
    ready_at: Option<Instant>,
    /// The stream is not being read (the held queue is full).
    paused: bool,
    /// The rate is the session's own (its account's), not the server's,
    /// so a reload of the server's rate leaves it alone.
    pub(crate) own_rate: bool,
}

struct Held {
    msg: ClientMsg,
    size: usize,
}

/// What to do with a request that just arrived.
pub(crate) enum Admit {
    /// Handle it now (a token was taken, or it costs none).
    Now(ClientMsg),
    /// It waits in the held queue.
    Held,
    /// Far too much is held: close the session.
    Overflow,
}

impl Pacing {
    pub(crate) fn new(burst: u32, per_second: f64, now: Instant) -> Self {
        Self {
            burst,
            per_second,
            bucket: TokenBucket::full(burst, now),
            held: VecDeque::new(),
            held_bytes: 0,
            ready_at: None,
            paused: false,
            own_rate: false,
        }
    }

    /// A request of `size` bytes; `costs` says whether it takes a token
    /// (QUIT does not, but still waits its turn).
    pub(crate) fn admit(&mut self, msg: ClientMsg, size: usize, costs: bool, now: Instant) -> Admit {
        if self.held.is_empty() && (!costs || self.take(now)) {
            return Admit::Now(msg);
        }
        if self.held_bytes + size > HOLD_MAX_BYTES {
            return Admit::Overflow;
        }
        if self.held.is_empty() {
            self.ready_at = Some(self.next_token(now));
        }
        self.held.push_back(Held { msg, size });
        self.held_bytes += size;
        Admit::Held
    }

    fn take(&mut self, now: Instant) -> bool {
        self.per_second <= 0.0 || self.bucket.take(self.burst, self.per_second, now)
    }

    /// After a failed take the bucket has less than one token, so one
    /// more is at most a token's time away.
    fn next_token(&self, now: Instant) -> Instant {
        now + Duration::from_secs_f64(1.0 / self.per_second.max(1e-3))
    }

    /// The next held request whose turn has come (it has its token).
    fn release(&mut self, now: Instant) -> Option<ClientMsg> {
        let front = self.held.front()?;
        let costs = !matches!(front.msg, ClientMsg::Quit { .. });
        if costs && !self.take(now) {
            self.ready_at = Some(self.next_token(now));
            return None;
        }
        let held = self.held.pop_front()?;
        self.held_bytes -= held.size;
        self.ready_at = if self.held.is_empty() { None } else { Some(now) };
        Some(held.msg)
    }

    fn over_bound(&self) -> bool {
        self.held.len() >= HOLD_REQUESTS || self.held_bytes >= HOLD_BYTES
    }

    /// Below half the bound, reading resumes (hysteresis, so a session
    /// at the bound is not paused and resumed on every request).
    fn under_half(&self) -> bool {
        self.held.len() < HOLD_REQUESTS / 2 && self.held_bytes < HOLD_BYTES / 2
    }

    pub(crate) fn ready_at(&self) -> Option<Instant> {
        self.ready_at
    }

    /// The limits as the `Limits` message says them.
    pub(crate) fn limits(&self, max_line_bytes: usize) -> ServerMsg {
        ServerMsg::Limits {
            max_line_bytes: max_line_bytes as u64,
            rate_burst: u64::from(self.burst),
            rate_milli: (self.per_second.max(0.0) * 1000.0).round() as u64,
        }
    }

    /// A new rate (an account's, at login); the bucket keeps its tokens.
    pub(crate) fn set_rate(&mut self, per_second: f64) {
        self.per_second = per_second;
        self.own_rate = true;
    }
}

impl ChatServer {
    /// When [`ChatServer::release_held`] next has work: the earliest
    /// moment a held request gets its token. The driver wakes up then.
    pub fn next_release(&self) -> Option<Instant> {
        self.holding.iter().filter_map(|h| self.sessions.get(h)?.pacing.ready_at()).min()
    }

    /// Handles the held requests whose tokens have accrued, in order.
    pub fn release_held(&mut self, clock: Clock, out: &mut impl Outlet) {
        let due: Vec<ConnectionHandle> = self
            .holding
            .iter()
            .copied()
            .filter(|h| self.sessions.get(h).and_then(|s| s.pacing.ready_at()).is_some_and(|t| t <= clock.now))
            .collect();
        for h in due {
            while let Some(msg) =
                self.sessions.get_mut(&h).filter(|s| !s.gone).and_then(|s| s.pacing.release(clock.now))
            {
                self.handle(clock, h, msg, out);
            }
            self.update_reading(h, out);
        }
    }

    /// Pauses or resumes reading the session's stream as its held queue
    /// fills and drains, and keeps the set of holding sessions.
    pub(crate) fn update_reading(&mut self, h: ConnectionHandle, out: &mut impl Outlet) {
        let Some(session) = self.sessions.get_mut(&h) else {
            self.holding.remove(&h);
            return;
        };
        let pacing = &mut session.pacing;
        if pacing.held.is_empty() || session.gone {
            self.holding.remove(&h);
        } else {
            self.holding.insert(h);
        }
        if !pacing.paused && pacing.over_bound() {
            pacing.paused = true;
            out.set_reading(h, false);
        } else if pacing.paused && pacing.under_half() {
            pacing.paused = false;
            out.set_reading(h, true);
        }
    }
}
