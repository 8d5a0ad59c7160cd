//! A deterministic simulated network for protocol tests, in the manner of
//! str0m's and quinn-proto's test harnesses: endpoints exchange datagrams
//! through an in-memory queue with seeded loss, duplication, reordering
//! (random delay), outages and NAT rebinding (a node's address changes
//! every so often and datagrams to the old one are lost), on a virtual
//! clock. Nothing sleeps and no
//! socket is opened; a run is a pure function of its seed, so a failure
//! is replayed by setting `UDPCHAT_SIM_SEED` to the seed it printed.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use udpchat_proto::{ConnectionHandle, Endpoint, Event};

/// The seed for a scenario: `UDPCHAT_SIM_SEED` if set, else `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("UDPCHAT_SIM_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

pub struct Node {
    pub addr: SocketAddr,
    pub endpoint: Endpoint,
}

/// Decides the fate of one datagram: `true` drops it.
pub type Filter = Box<dyn FnMut(Instant, SocketAddr, SocketAddr, &[u8]) -> bool>;

pub struct NetConfig {
    /// Probability of losing a datagram, each direction.
    pub loss: f64,
    /// Probability of delivering a datagram twice.
    pub duplicate: f64,
    /// Each datagram is delayed uniformly in this range, which reorders.
    pub delay: (Duration, Duration),
    /// Extra drop rule (outages, address-specific loss), applied first.
    pub filter: Option<Filter>,
    /// NAT rebinding: every this long, the listed nodes get a new port (as
    /// a NAT that forgets a mapping gives), and whatever is still on its
    /// way to the old address is lost.
    pub rebind: Option<(Duration, Vec<usize>)>,
}

impl Default for NetConfig {
    fn default() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            delay: (Duration::from_millis(5), Duration::from_millis(5)),
            filter: None,
            rebind: None,
        }
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct InFlight {
    at: Instant,
    seq: u64,
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// What a test does with events; the harness calls it for every event and
/// asks it whether the scenario is complete.
pub trait App {
    fn on_event(&mut self, now: Instant, node: usize, endpoint: &mut Endpoint, h: ConnectionHandle, event: Event);
    fn done(&self) -> bool;
    /// Called once per step, after events, with all nodes (for actions not
    /// triggered by an event, such as sending when the window reopens).
    fn on_step(&mut self, _now: Instant, _nodes: &mut [Node]) {}
    /// A time the app wants `on_step` to run at (e.g. to send on a
    /// schedule), even if nothing else happens then.
    fn wake_at(&self) -> Option<Instant> {
        None
    }
}

pub struct Sim {
    pub seed: u64,
    pub start: Instant,
    pub now: Instant,
    pub rng: ChaCha8Rng,
    pub nodes: Vec<Node>,
    pub net: NetConfig,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    buf: Vec<u8>,
    /// Datagrams delivered, for tests that replay or tamper with them.
    pub delivered: Vec<(SocketAddr, SocketAddr, Vec<u8>)>,
    pub record: bool,
    /// How many datagrams each node may hand out per poll (GSO batch).
    pub max_batch: usize,
    /// Address changes made by `NetConfig::rebind`.
    pub rebinds: u32,
    next_rebind: Option<Instant>,
}

impl Sim {
    pub fn new(seed: u64, net: NetConfig) -> Self {
        let start = Instant::now();
        Self {
            seed,
            start,
            now: start,
            rng: ChaCha8Rng::seed_from_u64(seed),
            nodes: Vec::new(),
            net,
            in_flight: BinaryHeap::new(),
            seq: 0,
            buf: Vec::new(),
            delivered: Vec::new(),
            record: false,
            max_batch: 4,
            rebinds: 0,
            next_rebind: None,
        }
    }

    /// A 32-byte seed for an endpoint, derived from the run's seed.
    pub fn endpoint_seed(&mut self) -> [u8; 32] {
        let mut s = [0u8; 32];
        self.rng.fill_bytes(&mut s);
        s
    }

    pub fn add(&mut self, addr: SocketAddr, endpoint: Endpoint) -> usize {
        self.nodes.push(Node { addr, endpoint });
        self.nodes.len() - 1
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    fn delay(&mut self) -> Duration {
        let (lo, hi) = self.net.delay;
        let span = hi.checked_sub(lo).unwrap().as_micros() as u64;
        lo + Duration::from_micros(if span == 0 { 0 } else { self.rng.next_u64() % span })
    }

    fn enqueue(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        if let Some(filter) = &mut self.net.filter
            && filter(self.now, from, to, &data)
        {
            return;
        }
        if self.chance(self.net.loss) {
            return;
        }
        let copies = if self.chance(self.net.duplicate) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.delay();
            self.seq += 1;
            self.in_flight.push(Reverse(InFlight { at, seq: self.seq, from, to, data: data.clone() }));
        }
    }

    /// Delivers a datagram at the current time, bypassing loss.
    pub fn inject(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        self.seq += 1;
        self.in_flight.push(Reverse(InFlight { at: self.now, seq: self.seq, from, to, data }));
    }

    fn pump_events(&mut self, app: &mut impl App) {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            while let Some((h, ev)) = node.endpoint.poll_event() {
                app.on_event(self.now, i, &mut node.endpoint, h, ev);
            }
        }
        app.on_step(self.now, &mut self.nodes);
    }

    fn pump_transmits(&mut self) {
        for i in 0..self.nodes.len() {
            loop {
                let mut buf = std::mem::take(&mut self.buf);
                let Some(t) = self.nodes[i].endpoint.poll_transmit(self.now, self.max_batch, &mut buf) else {
                    self.buf = buf;
                    break;
                };
                let from = self.nodes[i].addr;
                let seg = t.segment_size.unwrap_or(t.size);
                for chunk in buf[..t.size].chunks(seg) {
                    assert!(chunk.len() <= 1200, "datagram over 1200 bytes");
                    self.enqueue(from, t.destination, chunk.to_vec());
                }
                self.buf = buf;
            }
        }
    }

    /// Runs until `app.done()`, or fails after `limit` of virtual time.
    /// The error names the seed so the run can be replayed.
    pub fn run(&mut self, app: &mut impl App, limit: Duration) -> Result<Duration, String> {
        let deadline = self.now + limit;
        loop {
            self.pump_events(app);
            self.pump_transmits();
            if app.done() {
                return Ok(self.elapsed());
            }
            let mut next = self.in_flight.peek().map(|Reverse(p)| p.at);
            for t in [app.wake_at(), self.next_rebind()] {
                if let Some(t) = t.filter(|&t| t > self.now) {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
            for node in &mut self.nodes {
                if let Some(t) = node.endpoint.poll_timeout() {
                    next = Some(next.map_or(t, |n| n.min(t)));
                }
            }
            let Some(next) = next else {
                return Err(format!("stalled at {:?} (seed {})", self.elapsed(), self.seed));
            };
            if next > deadline {
                return Err(format!(
                    "not done after {:?} of virtual time; replay with UDPCHAT_SIM_SEED={}",
                    limit, self.seed
                ));
            }
            self.now = self.now.max(next);
            self.rebind_due();
            while self.in_flight.peek().is_some_and(|Reverse(p)| p.at <= self.now) {
                let Reverse(p) = self.in_flight.pop().expect("peeked");
                if let Some(node) = self.nodes.iter_mut().find(|n| n.addr == p.to) {
                    node.endpoint.handle(self.now, p.from, &p.data);
                    if self.record {
                        self.delivered.push((p.from, p.to, p.data));
                    }
                }
            }
            for node in &mut self.nodes {
                node.endpoint.handle_timeout(self.now);
            }
        }
    }

    fn next_rebind(&mut self) -> Option<Instant> {
        let every = self.net.rebind.as_ref()?.0;
        Some(*self.next_rebind.get_or_insert(self.now + every))
    }

    fn rebind_due(&mut self) {
        while let Some(at) = self.next_rebind()
            && at <= self.now
        {
            let (every, nodes) = self.net.rebind.as_ref().expect("checked");
            self.next_rebind = Some(at + *every);
            self.rebinds += 1;
            for &i in nodes {
                let addr = &mut self.nodes[i].addr;
                // A fresh port each time, never one in use by another node.
                addr.set_port(addr.port().wrapping_add(1000));
            }
        }
    }

    /// Runs for `span` of virtual time, whatever the app says.
    pub fn run_for(&mut self, app: &mut impl App, span: Duration) {
        let end = self.now + span;
        let _ = self.run(&mut Never { inner: app }, span);
        self.now = self.now.max(end);
        for node in &mut self.nodes {
            node.endpoint.handle_timeout(self.now);
        }
    }
}

struct Never<'a, A: App> {
    inner: &'a mut A,
}

impl<A: App> App for Never<'_, A> {
    fn on_event(&mut self, now: Instant, node: usize, endpoint: &mut Endpoint, h: ConnectionHandle, event: Event) {
        self.inner.on_event(now, node, endpoint, h, event);
    }
    fn done(&self) -> bool {
        false
    }
    fn on_step(&mut self, now: Instant, nodes: &mut [Node]) {
        self.inner.on_step(now, nodes);
    }
    fn wake_at(&self) -> Option<Instant> {
        self.inner.wake_at()
    }
}

/// An app that records every event, for the smaller tests.
#[derive(Default)]
pub struct Recorder {
    pub events: Vec<(usize, ConnectionHandle, Event)>,
}

impl App for Recorder {
    fn on_event(&mut self, _: Instant, node: usize, _: &mut Endpoint, h: ConnectionHandle, event: Event) {
        self.events.push((node, h, event));
    }
    fn done(&self) -> bool {
        false
    }
}

impl Recorder {
    pub fn connected(&self, node: usize) -> Vec<ConnectionHandle> {
        self.events
            .iter()
            .filter(|(n, _, e)| *n == node && matches!(e, Event::Connected { .. }))
            .map(|(_, h, _)| *h)
            .collect()
    }

    pub fn messages(&self, node: usize) -> Vec<Vec<u8>> {
        self.events
            .iter()
            .filter_map(|(n, _, e)| match e {
                Event::Message(m) if *n == node => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn closed(&self, node: usize) -> Vec<udpchat_proto::CloseReason> {
        self.events
            .iter()
            .filter_map(|(n, _, e)| match e {
                Event::Closed(r) if *n == node => Some(r.clone()),
                _ => None,
            })
            .collect()
    }
}

/// An app wrapper that is done when `pred` says so.
pub struct UntilApp<'a, F: Fn(&Recorder) -> bool> {
    pub rec: &'a mut Recorder,
    pub pred: F,
}

impl<F: Fn(&Recorder) -> bool> App for UntilApp<'_, F> {
    fn on_event(&mut self, now: Instant, node: usize, ep: &mut Endpoint, h: ConnectionHandle, event: Event) {
        self.rec.on_event(now, node, ep, h, event);
    }
    fn done(&self) -> bool {
        (self.pred)(self.rec)
    }
}
