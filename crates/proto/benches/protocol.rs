//! Protocol-work benchmarks: how much CPU the sans-IO machine spends per
//! datagram and per handshake, with no sockets involved (the syscall is
//! not counted). Run with
//!
//! ```text
//! cargo bench -p udpchat-proto --bench protocol -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! What each benchmark measures (one iteration = one datagram or one
//! handshake; everything else is done outside the timed sections with
//! `iter_custom`):
//!
//! * `datagram/seal+encode 200 B line`: on an established client session,
//!   `Endpoint::send(h, &[b'x'; 200])` followed by one
//!   `Endpoint::poll_transmit` into a reused buffer, which yields one
//!   sealed DATA datagram (about 240 bytes). The client sends batches of
//!   [`BATCH`] messages; after each batch, untimed, the datagrams are handed
//!   to the server, the server's ACKs (and MAX_DATA updates) are returned to
//!   the client and both endpoints run `handle_timeout`, so congestion and
//!   flow control never block and the session stays in steady state. The
//!   timed part includes the ACK the client piggybacks when it owes one.
//! * `datagram/open+decode 200 B line`: the same traffic, but timing the
//!   server's `Endpoint::handle` of each of those datagrams plus draining
//!   `poll_event` (one `Event::Message` of 200 bytes). Building the
//!   server's ACK (one per batch) is not included.
//! * `datagram/both ends, per 200 B line`: everything in the loop above
//!   timed (send, seal, open, decode, plus the server's ACK datagram and
//!   the client processing it), per message: the total protocol work of
//!   one line on both ends.
//! * `handshake/full handshake`: a fresh client `Endpoint::new` +
//!   `connect` + INITIAL out, server `handle(INITIAL)` + HANDSHAKE out,
//!   client `handle(HANDSHAKE)` + its first DATA out, server `handle(DATA)`,
//!   until both have `Event::Connected`. Both ends' work, so
//!   1 / time is a lower bound for the handshakes/s of a server.
//! * `handshake/server side only`: the same exchange, timing only the
//!   server's calls (`handle(INITIAL)`, `poll_transmit`, `handle(DATA)`,
//!   `poll_event`): what one server core pays per accepted client.
//!
//! * `fanout/server, per delivery` and `fanout/both ends, per delivery`:
//!   the server's hot path in a busy room. One server endpoint with
//!   [`MEMBERS`] established sessions; one iteration queues [`PER_FLUSH`]
//!   130-byte lines (a 100-byte chat line as the chat layer encodes it) to
//!   every session and drains `poll_transmit` with GSO batches of up to
//!   32, so the lines are packed several to a datagram as in the real
//!   server. Each datagram is handed to its client, which takes the
//!   messages and returns its ACKs (untimed in the first, timed in the
//!   second). Reported per delivery (one line to one member).
//!
//! The server used for handshakes has its rate limits lifted, and is
//! replaced (untimed) every [`SESSIONS_PER_SERVER`] handshakes so that
//! memory stays bounded.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use udpchat_proto::{ClientConfig, ConnectionHandle, Endpoint, Event, RateLimit, ServerConfig, ServerKey};

const LINE: [u8; 200] = [b'x'; 200];
/// Messages sent before the receiver's ACKs are returned. Well under the
/// initial congestion window (10 full-size datagrams, about 50 of these).
const BATCH: usize = 16;
const SESSIONS_PER_SERVER: u32 = 1000;

fn server_addr() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 4433)
}

fn client_addr(i: u32) -> SocketAddr {
    let [_, a, b, c] = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, a, b, c)), 10_000 + (i % 50_000) as u16)
}

fn seed(tag: u8, i: u32) -> [u8; 32] {
    let mut s = [tag; 32];
    s[..4].copy_from_slice(&i.to_le_bytes());
    s
}

fn server_config(key: &ServerKey) -> ServerConfig {
    let mut config = ServerConfig::new(key.clone());
    let unlimited = RateLimit { burst: u32::MAX / 2, per_second: u32::MAX / 2 };
    config.handshake_rate = unlimited;
    config.validated_handshake_rate = unlimited;
    config.max_half_open = 1 << 20;
    config.max_connections = 1 << 20;
    config
}

/// Delivers everything `from` has to send to `to`; returns the number of
/// datagrams.
fn pump(now: Instant, from: &mut Endpoint, from_addr: SocketAddr, to: &mut Endpoint, buf: &mut Vec<u8>) -> usize {
    let mut n = 0;
    while let Some(t) = from.poll_transmit(now, 1, buf) {
        assert_eq!(t.segment_size, None);
        to.handle(now, from_addr, &buf[..t.size]);
        n += 1;
    }
    n
}

/// A client and a server endpoint with one established session between
/// them, driven with a virtual clock.
struct Pair {
    client: Endpoint,
    server: Endpoint,
    client_h: ConnectionHandle,
    now: Instant,
    /// One reused transmit buffer per message of a batch.
    bufs: Vec<Vec<u8>>,
    sizes: [usize; BATCH],
    scratch: Vec<u8>,
    received: u64,
}

impl Pair {
    fn new() -> Self {
        let key = ServerKey::generate([1; 32]);
        let mut server = Endpoint::new([2; 32], Some(server_config(&key))).unwrap();
        let mut client = Endpoint::new([3; 32], None).unwrap();
        let mut now = Instant::now();
        let client_h = client.connect(now, server_addr(), ClientConfig::default()).unwrap();
        let (mut client_up, mut server_up) = (false, false);
        let mut scratch = Vec::new();
        for _ in 0..20 {
            let sent = pump(now, &mut client, client_addr(0), &mut server, &mut scratch)
                + pump(now, &mut server, server_addr(), &mut client, &mut scratch);
            while let Some((h, e)) = client.poll_event() {
                assert_eq!(h, client_h);
                client_up |= matches!(e, Event::Connected { .. });
            }
            while let Some((_, e)) = server.poll_event() {
                server_up |= matches!(e, Event::Connected { .. });
            }
            if client_up && server_up && sent == 0 {
                break;
            }
            now += Duration::from_millis(1);
        }
        assert!(client_up && server_up, "handshake did not complete");
        Pair {
            client,
            server,
            client_h,
            now,
            bufs: (0..BATCH).map(|_| Vec::with_capacity(1500)).collect(),
            sizes: [0; BATCH],
            scratch,
            received: 0,
        }
    }

    /// Client: queue and seal `n` lines, one datagram each.
    #[inline(always)]
    fn send_batch(&mut self, n: usize) {
        for i in 0..n {
            self.client.send(self.client_h, black_box(&LINE)).expect("send blocked");
            let t = self.client.poll_transmit(self.now, 1, &mut self.bufs[i]).expect("nothing to transmit");
            self.sizes[i] = t.size;
        }
    }

    /// Server: open and decode the batch, taking the messages.
    #[inline(always)]
    fn receive_batch(&mut self, n: usize) {
        let from = client_addr(0);
        for i in 0..n {
            self.server.handle(self.now, from, &self.bufs[i][..self.sizes[i]]);
            while let Some((_, e)) = self.server.poll_event() {
                if let Event::Message(m) = e {
                    self.received += 1;
                    black_box(m);
                }
            }
        }
    }

    /// The server's ACKs (and window updates) back to the client, and the
    /// client's answer, if any, to the server.
    #[inline(always)]
    fn return_acks(&mut self) {
        pump(self.now, &mut self.server, server_addr(), &mut self.client, &mut self.scratch);
        while let Some(e) = self.client.poll_event() {
            black_box(e);
        }
    }

    /// Untimed housekeeping between batches: advance the clock, run timers,
    /// and check that the session is still healthy.
    fn tick(&mut self, n: usize, expected: u64) {
        assert_eq!(self.received, expected, "messages lost");
        // One line per datagram: header 17 + tag 16 + frames and line.
        for &size in &self.sizes[..n] {
            assert!((17 + 16 + 200..17 + 16 + 200 + 64).contains(&size), "datagram of {size} bytes");
        }
        // Anything the client still wants to send (a lone ACK) goes now.
        pump(self.now, &mut self.client, client_addr(0), &mut self.server, &mut self.scratch);
        self.now += Duration::from_micros(500);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
        while let Some((_, e)) = self.server.poll_event() {
            assert!(!matches!(e, Event::Closed(_)), "server session closed: {e:?}");
        }
        while let Some((_, e)) = self.client.poll_event() {
            assert!(!matches!(e, Event::Closed(_)), "client session closed: {e:?}");
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Timed {
    Send,
    Receive,
    Everything,
}

fn run_lines(pair: &mut Pair, iters: u64, timed: Timed) -> Duration {
    let mut total = Duration::ZERO;
    let mut done = 0u64;
    while done < iters {
        let n = (iters - done).min(BATCH as u64) as usize;
        let expected = pair.received + n as u64;

        let t0 = Instant::now();
        pair.send_batch(n);
        let t1 = Instant::now();
        pair.receive_batch(n);
        let t2 = Instant::now();
        pair.return_acks();
        let t3 = Instant::now();

        total += match timed {
            Timed::Send => t1 - t0,
            Timed::Receive => t2 - t1,
            Timed::Everything => t3 - t0,
        };
        done += n as u64;
        pair.tick(n, expected);
    }
    total
}

fn datagram_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("datagram");
    group.throughput(Throughput::Elements(1));
    for (name, timed) in [
        ("seal+encode 200 B line", Timed::Send),
        ("open+decode 200 B line", Timed::Receive),
        ("both ends, per 200 B line", Timed::Everything),
    ] {
        let mut pair = Pair::new();
        group.bench_function(name, |b| b.iter_custom(|iters| run_lines(&mut pair, iters, timed)));
        let stats = pair.client.connection_stats(pair.client_h).unwrap();
        assert_eq!(stats.packets_lost, 0, "{name}: the benchmark lost packets");
    }
    group.finish();
}

/// One handshake against `server`. Returns (time of everything, time of
/// the server's calls only).
fn handshake(server: &mut Endpoint, now: Instant, i: u32, buf: &mut Vec<u8>) -> (Duration, Duration) {
    let from = client_addr(i);
    let t0 = Instant::now();
    let mut client = Endpoint::new(seed(7, i), None).unwrap();
    let h = client.connect(now, server_addr(), ClientConfig::default()).unwrap();
    let t = client.poll_transmit(now, 1, buf).expect("INITIAL");

    let s0 = Instant::now();
    server.handle(now, from, &buf[..t.size]);
    let t = server.poll_transmit(now, 1, buf).expect("HANDSHAKE");
    let s1 = Instant::now();

    client.handle(now, server_addr(), &buf[..t.size]);
    let Some((ch, Event::Connected { .. })) = client.poll_event() else { panic!("client not connected") };
    assert_eq!(ch, h);
    let t = client.poll_transmit(now, 1, buf).expect("first DATA");

    let s2 = Instant::now();
    server.handle(now, from, &buf[..t.size]);
    let event = server.poll_event();
    let s3 = Instant::now();
    let Some((_, Event::Connected { .. })) = event else { panic!("server not connected: {event:?}") };
    let total = s3 - t0;
    drop(black_box(client));
    (total, (s1 - s0) + (s3 - s2))
}

fn run_handshakes(key: &ServerKey, iters: u64, server_only: bool) -> Duration {
    let mut total = Duration::ZERO;
    let mut buf = Vec::with_capacity(1500);
    let mut now = Instant::now();
    let mut server = Endpoint::new([5; 32], Some(server_config(key))).unwrap();
    let mut on_server = 0;
    for i in 0..iters {
        if on_server == SESSIONS_PER_SERVER {
            server = Endpoint::new(seed(5, i as u32), Some(server_config(key))).unwrap();
            on_server = 0;
        }
        let (all, server_part) = handshake(&mut server, now, i as u32, &mut buf);
        total += if server_only { server_part } else { all };
        on_server += 1;
        now += Duration::from_micros(100);
    }
    total
}

fn handshake_benches(c: &mut Criterion) {
    let key = ServerKey::generate([9; 32]);
    let mut group = c.benchmark_group("handshake");
    group.throughput(Throughput::Elements(1));
    group.bench_function("full handshake", |b| b.iter_custom(|iters| run_handshakes(&key, iters, false)));
    group.bench_function("server side only", |b| b.iter_custom(|iters| run_handshakes(&key, iters, true)));
    group.finish();
}

/// Members of the fan-out room, and lines queued to each per flush.
const MEMBERS: usize = 50;
const PER_FLUSH: usize = 8;
/// A 100-byte chat line as the chat layer encodes it (room, sequence
/// number, time, sender, text).
const ENCODED_LINE: [u8; 130] = [b'y'; 130];

/// A server endpoint with [`MEMBERS`] established client sessions.
struct Room {
    server: Endpoint,
    /// The server's handle for each member, in member order.
    members: Vec<ConnectionHandle>,
    clients: Vec<Endpoint>,
    by_addr: HashMap<SocketAddr, usize>,
    now: Instant,
    buf: Vec<u8>,
    delivered: u64,
}

impl Room {
    fn new() -> Self {
        let key = ServerKey::generate([1; 32]);
        let mut server = Endpoint::new([2; 32], Some(server_config(&key))).unwrap();
        let mut now = Instant::now();
        let mut clients = Vec::new();
        let mut by_addr = HashMap::new();
        let mut buf = Vec::new();
        let mut members = Vec::new();
        for i in 0..MEMBERS {
            let mut client = Endpoint::new(seed(4, i as u32), None).unwrap();
            client.connect(now, server_addr(), ClientConfig::default()).unwrap();
            for _ in 0..5 {
                pump(now, &mut client, client_addr(i as u32), &mut server, &mut buf);
                pump(now, &mut server, server_addr(), &mut client, &mut buf);
            }
            while let Some((h, e)) = server.poll_event() {
                if matches!(e, Event::Connected { .. }) {
                    members.push(h);
                }
            }
            while client.poll_event().is_some() {}
            by_addr.insert(client_addr(i as u32), i);
            clients.push(client);
            now += Duration::from_millis(1);
        }
        assert_eq!(members.len(), MEMBERS, "handshakes did not complete");
        Room { server, members, clients, by_addr, now, buf, delivered: 0 }
    }

    /// One flush: queue, seal and deliver. Returns the time the server's
    /// calls took.
    fn flush(&mut self) -> Duration {
        let t0 = Instant::now();
        for &h in &self.members {
            for _ in 0..PER_FLUSH {
                self.server.send(h, black_box(&ENCODED_LINE)).expect("send blocked");
            }
        }
        let mut server_time = t0.elapsed();
        loop {
            let t = Instant::now();
            let Some(transmit) = self.server.poll_transmit(self.now, 32, &mut self.buf) else { break };
            server_time += t.elapsed();
            let client = &mut self.clients[self.by_addr[&transmit.destination]];
            let segment = transmit.segment_size.unwrap_or(transmit.size);
            for datagram in self.buf[..transmit.size].chunks(segment) {
                client.handle(self.now, server_addr(), datagram);
            }
            while let Some((_, e)) = client.poll_event() {
                if let Event::Message(m) = e {
                    self.delivered += 1;
                    client.recycle(m);
                }
            }
        }
        server_time
    }

    /// The clients' ACKs back to the server, and the timers: the session
    /// stays in steady state (congestion and flow control never block).
    fn settle(&mut self) {
        for (i, client) in self.clients.iter_mut().enumerate() {
            pump(self.now, client, client_addr(i as u32), &mut self.server, &mut self.buf);
        }
        self.now += Duration::from_micros(500);
        self.server.handle_timeout(self.now);
        for client in &mut self.clients {
            client.handle_timeout(self.now);
        }
        while let Some((_, e)) = self.server.poll_event() {
            assert!(!matches!(e, Event::Closed(_)), "server session closed: {e:?}");
        }
    }
}

fn run_fanout(room: &mut Room, iters: u64, server_only: bool) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let before = room.delivered;
        let t0 = Instant::now();
        let server_time = room.flush();
        if server_only {
            total += server_time;
            room.settle();
        } else {
            room.settle();
            total += t0.elapsed();
        }
        assert_eq!(room.delivered - before, (MEMBERS * PER_FLUSH) as u64, "lines lost");
    }
    total
}

fn fanout_benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements((MEMBERS * PER_FLUSH) as u64));
    for (name, server_only) in [("server, per delivery", true), ("both ends, per delivery", false)] {
        let mut room = Room::new();
        group.bench_function(name, |b| b.iter_custom(|iters| run_fanout(&mut room, iters, server_only)));
    }
    group.finish();
}

criterion_group!(benches, datagram_benches, handshake_benches, fanout_benches);
criterion_main!(benches);
