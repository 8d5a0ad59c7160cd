//! NAT rebinding under loss (issue 10, item 9; docs/PROTOCOL.md §9, §10):
//! a server relays chat lines from two senders to every client, one of
//! which only receives, over a simulated network that loses 30 % of the
//! datagrams each way and gives every client a new port every 4 s. Every
//! client must see every line exactly once and in order, no session may
//! end, and the delay of each line at the receive-only client (virtual
//! time, from `send` to delivery) is reported and bounded. A failure
//! prints the seed; rerun with
//! `UDPCHAT_SIM_SEED=<seed> cargo test -p udpchat-proto --test rebinding`;
//! `UDPCHAT_SIM_TRACE=1` also prints every line more than 1 s late.
//!
//! Figures (3 seeds, p95 / max at the receive-only client): 30 % loss with
//! rebinding 1.26–1.66 s / 2.7–3.6 s; loss alone 0.57–0.68 s / 0.78–1.8 s;
//! rebinding alone 0.68–0.69 s / 0.70–0.74 s (docs/PROTOCOL.md §10).

mod sim;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sim::{App, NetConfig, Node, Sim};
use udpchat_proto::{ClientConfig, ConnectionHandle, Endpoint, Event, RateLimit, ServerConfig, ServerKey};

const SERVER: usize = 0;
/// Nodes 1 and 2 send; node 3 only receives.
const SENDERS: [usize; 2] = [1, 2];
const RECEIVER: usize = 3;
const CLIENTS: usize = 3;
/// Lines per sender, one every [`LINE_EVERY`] (staggered between senders).
const LINES: u32 = 60;
const LINE_EVERY: Duration = Duration::from_millis(900);

fn server_addr() -> SocketAddr {
    "127.0.0.1:4433".parse().unwrap()
}

fn client_addr(node: usize) -> SocketAddr {
    format!("127.0.1.{node}:{}", 5000 + node).parse().unwrap()
}

struct Relay {
    start: Instant,
    client_handle: [Option<ConnectionHandle>; CLIENTS + 1],
    server_sessions: Vec<ConnectionHandle>,
    next_send: [Option<Instant>; CLIENTS + 1],
    sent: [u32; CLIENTS + 1],
    sent_at: HashMap<(usize, u32), Instant>,
    /// Next expected sequence number, per receiving node and sender.
    expected: HashMap<(usize, usize), u32>,
    receiver_delays: Vec<Duration>,
    errors: Vec<String>,
}

impl Relay {
    fn new(start: Instant) -> Self {
        Self {
            start,
            client_handle: [None; CLIENTS + 1],
            server_sessions: Vec::new(),
            next_send: [None; CLIENTS + 1],
            sent: [0; CLIENTS + 1],
            sent_at: HashMap::new(),
            expected: HashMap::new(),
            receiver_delays: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn line(sender: usize, seq: u32) -> Vec<u8> {
        format!("{sender}:{seq}:line from sender {sender}").into_bytes()
    }

    fn parse(m: &[u8]) -> Option<(usize, u32)> {
        let text = std::str::from_utf8(m).ok()?;
        let mut parts = text.splitn(3, ':');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    }

    fn complete(&self) -> bool {
        (1..=CLIENTS).all(|n| SENDERS.iter().all(|&s| self.expected.get(&(n, s)) == Some(&LINES)))
    }
}

impl App for Relay {
    fn on_event(&mut self, now: Instant, node: usize, ep: &mut Endpoint, h: ConnectionHandle, event: Event) {
        match (node, event) {
            (SERVER, Event::Connected { .. }) => self.server_sessions.push(h),
            (SERVER, Event::Message(m)) => {
                for &to in &self.server_sessions {
                    if let Err(e) = ep.send(to, &m) {
                        self.errors.push(format!("server could not relay: {e}"));
                    }
                }
            }
            (_, Event::Connected { .. }) => self.client_handle[node] = Some(h),
            (_, Event::Message(m)) => {
                let Some((sender, seq)) = Self::parse(&m) else {
                    self.errors.push(format!("node {node}: garbled line {m:?}"));
                    return;
                };
                let expected = self.expected.entry((node, sender)).or_insert(0);
                if seq != *expected {
                    self.errors.push(format!("node {node}: line {seq} of {sender}, expected {expected}"));
                }
                *expected = seq + 1;
                if node == RECEIVER {
                    let d = now - self.sent_at[&(sender, seq)];
                    if std::env::var("UDPCHAT_SIM_TRACE").is_ok() && d > Duration::from_secs(1) {
                        eprintln!(
                            "line {sender}:{seq} sent at {:?} delay {d:?}",
                            self.sent_at[&(sender, seq)] - self.start
                        );
                    }
                    self.receiver_delays.push(d);
                }
            }
            (_, Event::Closed(reason)) => {
                let at = now - self.start;
                self.errors.push(format!("node {node}: session closed at {at:?}: {reason}"));
            }
            _ => {}
        }
    }

    fn done(&self) -> bool {
        !self.errors.is_empty() || self.complete()
    }

    fn on_step(&mut self, now: Instant, nodes: &mut [Node]) {
        // Lines start once everyone is in, so every client is owed all.
        let everyone_in = self.server_sessions.len() == CLIENTS && self.client_handle[1..].iter().all(Option::is_some);
        if everyone_in && self.sent.iter().all(|&n| n == 0) && self.next_send.iter().all(Option::is_none) {
            for s in SENDERS {
                // Stagger the senders so lines do not arrive in pairs.
                self.next_send[s] = Some(now + LINE_EVERY * s as u32 / 2);
            }
        }
        for s in SENDERS {
            let (Some(at), Some(h)) = (self.next_send[s], self.client_handle[s]) else { continue };
            if at > now {
                continue;
            }
            let seq = self.sent[s];
            if let Err(e) = nodes[s].endpoint.send(h, &Self::line(s, seq)) {
                self.errors.push(format!("sender {s}: {e}"));
            }
            self.sent_at.insert((s, seq), now);
            self.sent[s] += 1;
            self.next_send[s] = (self.sent[s] < LINES).then_some(at + LINE_EVERY);
        }
    }

    fn wake_at(&self) -> Option<Instant> {
        self.next_send.iter().flatten().min().copied()
    }
}

/// Delay figures at the receive-only client.
struct Figures {
    p50: Duration,
    p95: Duration,
    max: Duration,
    rebinds: u32,
}

fn run_once(name: &str, seed: u64, loss: f64, rebind: bool) -> Figures {
    let net = NetConfig {
        loss,
        delay: (Duration::from_millis(1), Duration::from_millis(40)),
        rebind: rebind.then(|| (Duration::from_secs(4), (1..=CLIENTS).collect())),
        ..NetConfig::default()
    };
    let mut sim = Sim::new(seed, net);
    let mut config = ServerConfig::new(ServerKey::generate(sim.endpoint_seed()));
    config.handshake_rate = RateLimit { burst: 1000, per_second: 1000 };
    let s = sim.endpoint_seed();
    sim.add(server_addr(), Endpoint::new(s, Some(config)).unwrap());
    for node in 1..=CLIENTS {
        let s = sim.endpoint_seed();
        let mut ep = Endpoint::new(s, None).unwrap();
        ep.connect(sim.now, server_addr(), ClientConfig::default()).unwrap();
        sim.add(client_addr(node), ep);
    }
    let mut relay = Relay::new(sim.now);
    let result = sim.run(&mut relay, Duration::from_secs(300));
    let errors = &relay.errors[..relay.errors.len().min(5)];
    assert!(errors.is_empty(), "{name}: {errors:?}; replay with UDPCHAT_SIM_SEED={seed}");
    if let Err(e) = result {
        panic!("{name}: {e}; expected so far: {:?}", relay.expected);
    }
    // Keep running: a late duplicate or a session dying would show now.
    sim.run_for(&mut relay, Duration::from_secs(20));
    let errors = &relay.errors[..relay.errors.len().min(5)];
    assert!(errors.is_empty(), "{name} after completion: {errors:?}; replay with UDPCHAT_SIM_SEED={seed}");

    let mut d = relay.receiver_delays.clone();
    assert_eq!(d.len(), SENDERS.len() * LINES as usize);
    d.sort();
    let pct = |p: usize| d[(d.len() * p / 100).min(d.len() - 1)];
    let figures = Figures { p50: pct(50), p95: pct(95), max: d[d.len() - 1], rebinds: sim.rebinds };
    eprintln!(
        "{name}: seed {seed}, {} lines, {} rebindings: receive-only delay p50 {:?}, p95 {:?}, max {:?}",
        d.len(),
        figures.rebinds,
        figures.p50,
        figures.p95,
        figures.max
    );
    figures
}

fn seeds(default: u64) -> Vec<u64> {
    match std::env::var("UDPCHAT_SIM_SEED") {
        Ok(_) => vec![sim::seed(default)],
        Err(_) => (0..3).map(|k| default + 1000 * k).collect(),
    }
}

/// The scenario of the issue. The bounds are several times what the rules
/// of §9 and §10 give (a silence probe within 1 s, a PATH_CHALLENGE
/// retransmitted at the probe timeout), and far below what the old
/// behaviour showed (lines 4–20 s late, sessions timing out).
#[test]
fn receive_only_client_behind_a_rebinding_nat_under_thirty_percent_loss() {
    for seed in seeds(90) {
        let f = run_once("30% loss, rebinding every 4 s", seed, 0.30, true);
        assert!(f.rebinds >= 10, "the run must span many rebindings");
        assert!(f.p95 < Duration::from_secs(3), "p95 {:?}; replay with UDPCHAT_SIM_SEED={seed}", f.p95);
        assert!(f.max < Duration::from_secs(6), "max {:?}; replay with UDPCHAT_SIM_SEED={seed}", f.max);
    }
}

/// The same traffic without rebinding, and rebinding without loss, for
/// comparison (the figures are printed; the checks are the same
/// exactly-once, in-order, no-session-ends ones).
#[test]
fn same_traffic_with_loss_alone_and_with_rebinding_alone() {
    for seed in seeds(91) {
        let lossy = run_once("30% loss, no rebinding", seed, 0.30, false);
        assert!(lossy.max < Duration::from_secs(6), "replay with UDPCHAT_SIM_SEED={seed}");
        let rebinding = run_once("no loss, rebinding every 4 s", seed, 0.0, true);
        assert!(rebinding.max < Duration::from_secs(3), "replay with UDPCHAT_SIM_SEED={seed}");
    }
}

/// One server and one client on `net`, connected; returns the handles
/// (client, server).
fn connected_pair(seed: u64, net: NetConfig) -> (Sim, sim::Recorder, ConnectionHandle, ConnectionHandle) {
    let mut sim = Sim::new(seed, net);
    let config = ServerConfig::new(ServerKey::generate(sim.endpoint_seed()));
    let s = sim.endpoint_seed();
    sim.add(server_addr(), Endpoint::new(s, Some(config)).unwrap());
    let s = sim.endpoint_seed();
    let mut ep = Endpoint::new(s, None).unwrap();
    let client_h = ep.connect(sim.now, server_addr(), ClientConfig::default()).unwrap();
    sim.add(client_addr(1), ep);
    let mut rec = sim::Recorder::default();
    run_until(&mut sim, &mut rec, Duration::from_secs(10), |r| {
        !r.connected(SERVER).is_empty() && !r.connected(1).is_empty()
    });
    let server_h = rec.connected(SERVER)[0];
    (sim, rec, client_h, server_h)
}

fn run_until(sim: &mut Sim, rec: &mut sim::Recorder, limit: Duration, pred: impl Fn(&sim::Recorder) -> bool) {
    let mut app = sim::UntilApp { rec, pred };
    if let Err(e) = sim.run(&mut app, limit) {
        panic!("{e}; events so far: {:?}", app.rec.events);
    }
}

/// §9: a client that only receives, whose NAT rebinds while it has nothing
/// to say, speaks up within about a second (the silence probe), so the
/// server finds it long before the 10 s keepalive would.
#[test]
fn receive_only_client_is_found_again_within_about_a_second() {
    let (mut sim, mut rec, _, server_h) = connected_pair(92, NetConfig::default());
    sim.nodes[SERVER].endpoint.send(server_h, b"before").unwrap();
    run_until(&mut sim, &mut rec, Duration::from_secs(5), |r| r.messages(1).len() == 1);
    sim.run_for(&mut rec, Duration::from_millis(200));
    // The NAT rebinds; the next line goes to the old, dead address.
    sim.nodes[1].addr = "127.0.1.1:7001".parse().unwrap();
    let rebound = sim.now;
    sim.nodes[SERVER].endpoint.send(server_h, b"after").unwrap();
    run_until(&mut sim, &mut rec, Duration::from_secs(5), |r| r.messages(1).len() == 2);
    let took = sim.now - rebound;
    assert!(took < Duration::from_secs(2), "found again after {took:?}");
    assert!(rec.closed(1).is_empty() && rec.closed(SERVER).is_empty());
}

/// §10: a lost PATH_CHALLENGE is retransmitted, and the server does not go
/// back to the old address (gone) while the new one keeps talking.
#[test]
fn lost_path_challenge_is_retransmitted_without_going_back() {
    use std::cell::Cell;
    use std::rc::Rc;
    let new_addr: SocketAddr = "127.0.1.1:7001".parse().unwrap();
    let old_addr = client_addr(1);
    // Drop the server's first two datagrams to the new address, and count
    // what it sends to the old one once the client has moved.
    let moved = Rc::new(Cell::new(false));
    let to_old = Rc::new(Cell::new(0u32));
    let dropped = Rc::new(Cell::new(0u32));
    let (m, o, d) = (moved.clone(), to_old.clone(), dropped.clone());
    let filter: sim::Filter = Box::new(move |_, from, to, _| {
        if from == new_addr {
            m.set(true);
        }
        if m.get() && from == server_addr() && to == old_addr {
            o.set(o.get() + 1);
        }
        if from == server_addr() && to == new_addr && d.get() < 2 {
            d.set(d.get() + 1);
            return true;
        }
        false
    });
    let net = NetConfig { filter: Some(filter), ..NetConfig::default() };
    let (mut sim, mut rec, client_h, server_h) = connected_pair(93, net);
    sim.run_for(&mut rec, Duration::from_millis(500));
    sim.nodes[1].addr = new_addr;
    for i in 0..3 {
        sim.nodes[1].endpoint.send(client_h, format!("moved {i}").as_bytes()).unwrap();
    }
    run_until(&mut sim, &mut rec, Duration::from_secs(5), |r| {
        r.events.iter().any(|(n, _, e)| *n == SERVER && *e == Event::Migrated { remote: new_addr })
    });
    sim.run_for(&mut rec, Duration::from_secs(5));
    assert_eq!(dropped.get(), 2, "the first challenge and more were lost");
    assert_eq!(to_old.get(), 0, "the server went back to the old address");
    assert_eq!(sim.nodes[SERVER].endpoint.remote_address(server_h), Some(new_addr));
    assert_eq!(rec.messages(SERVER).len(), 3);
}

/// §9, cost: a client with no activity sends only its keepalives; the
/// silence probes follow activity (here the handshake) and stop after four.
#[test]
fn idle_client_sends_only_keepalives() {
    let (mut sim, mut rec, client_h, _) = connected_pair(94, NetConfig::default());
    sim.run_for(&mut rec, Duration::from_secs(20));
    let before = sim.nodes[1].endpoint.connection_stats(client_h).unwrap().packets_sent;
    sim.run_for(&mut rec, Duration::from_secs(60));
    let sent = sim.nodes[1].endpoint.connection_stats(client_h).unwrap().packets_sent - before;
    assert!(sent <= 6, "{sent} packets in 60 idle seconds; keepalives every 10 s are 6");
    assert!(rec.closed(1).is_empty());
}
