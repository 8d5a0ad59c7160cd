//! Session behaviour and the protocol's defences, on the simulated network:
//! roaming, retry cookies, replayed/forged/garbage datagrams,
//! anti-amplification, the half-open limit, key pinning, idle timeouts,
//! graceful close, message limits, back-pressure and version negotiation.

mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use sim::{NetConfig, Recorder, Sim, UntilApp};
use udpchat_proto::{
    ClientConfig, CloseReason, ConnectionHandle, Endpoint, Event, MAX_MESSAGE_SIZE, RateLimit, SendError, ServerConfig,
    ServerKey, code,
};

const SERVER: usize = 0;
const CLIENT: usize = 1;

/// Datagram layouts, written from docs/PROTOCOL.md §3 because the crate's
/// own `packet` module is internal (public only to the fuzz targets).
mod wire {
    /// §3.2: an INITIAL is padded to at least this many bytes.
    pub const MIN_INITIAL_SIZE: usize = 1200;
    /// §3.6: type, cid, packet number, one byte of frames and the tag.
    pub const MIN_DATA_SIZE: usize = 1 + 8 + 8 + 1 + 16;

    pub fn is_data(datagram: &[u8]) -> bool {
        datagram.first() == Some(&0x05)
    }

    /// §3.2, with an empty token and a Noise message shorter than 64 bytes
    /// (so its length is a 1-byte varint).
    pub fn initial(version: u32, client_cid: [u8; 8], noise: &[u8]) -> Vec<u8> {
        assert!(noise.len() < 64);
        let mut d = vec![0x01];
        d.extend_from_slice(&version.to_be_bytes());
        d.extend_from_slice(&client_cid);
        d.push(0);
        d.push(noise.len() as u8);
        d.extend_from_slice(noise);
        d.resize(MIN_INITIAL_SIZE, 0);
        d
    }

    /// The client cid of an INITIAL (§3.2).
    pub fn initial_client_cid(datagram: &[u8]) -> [u8; 8] {
        assert_eq!(datagram[0], 0x01, "not an INITIAL");
        datagram[5..13].try_into().unwrap()
    }

    /// §3.5: the client cid and the offered versions.
    pub fn version_negotiation(client_cid: [u8; 8], versions: &[u32]) -> Vec<u8> {
        let mut d = vec![0x04];
        d.extend_from_slice(&client_cid);
        for v in versions {
            d.extend_from_slice(&v.to_be_bytes());
        }
        d
    }

    pub fn parse_version_negotiation(datagram: &[u8]) -> Option<([u8; 8], Vec<u32>)> {
        if datagram.first() != Some(&0x04) || datagram.len() < 9 || !(datagram.len() - 9).is_multiple_of(4) {
            return None;
        }
        let versions = datagram[9..].chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect();
        Some((datagram[1..9].try_into().unwrap(), versions))
    }

    /// §3.8: type and token, 17 bytes.
    pub fn stateless_reset(token: [u8; 16]) -> Vec<u8> {
        let mut d = vec![0x06];
        d.extend_from_slice(&token);
        d
    }
}

use wire::MIN_INITIAL_SIZE;

fn server_addr() -> SocketAddr {
    "127.0.0.1:4433".parse().unwrap()
}

fn client_addr() -> SocketAddr {
    "127.0.0.2:50000".parse().unwrap()
}

/// A server and one client on `net`, with the server configured by `tweak`.
fn pair(
    seed: u64,
    net: NetConfig,
    tweak: impl FnOnce(&mut ServerConfig),
    client: ClientConfig,
) -> (Sim, ConnectionHandle, ServerKey) {
    let mut sim = Sim::new(sim::seed(seed), net);
    let key = ServerKey::generate(sim.endpoint_seed());
    let mut config = ServerConfig::new(key.clone());
    tweak(&mut config);
    let s = sim.endpoint_seed();
    sim.add(server_addr(), Endpoint::new(s, Some(config)).unwrap());
    let s = sim.endpoint_seed();
    let mut ep = Endpoint::new(s, None).unwrap();
    let h = ep.connect(sim.now, server_addr(), client).unwrap();
    sim.add(client_addr(), ep);
    (sim, h, key)
}

fn run_until(sim: &mut Sim, rec: &mut Recorder, limit: Duration, pred: impl Fn(&Recorder) -> bool) {
    let mut app = UntilApp { rec, pred };
    if let Err(e) = sim.run(&mut app, limit) {
        panic!("{e}; events so far: {:?}", app.rec.events);
    }
}

fn connect(sim: &mut Sim, rec: &mut Recorder) -> ConnectionHandle {
    run_until(sim, rec, Duration::from_secs(30), |r| {
        !r.connected(SERVER).is_empty() && !r.connected(CLIENT).is_empty()
    });
    rec.connected(SERVER)[0]
}

fn numbered(n: usize) -> Vec<u8> {
    format!("line {n}").into_bytes()
}

#[test]
fn client_pins_and_learns_the_server_key() {
    let (mut sim, _, key) = pair(10, NetConfig::default(), |_| {}, ClientConfig::default());
    let mut rec = Recorder::default();
    connect(&mut sim, &mut rec);
    let got = rec.events.iter().find_map(|(n, _, e)| match e {
        Event::Connected { server_key } if *n == CLIENT => Some(*server_key),
        _ => None,
    });
    assert_eq!(got, Some(key.public));

    // Given the key up front, a different server key is refused by name.
    let wrong = ServerKey::generate([42; 32]).public;
    let config = ClientConfig { server_key: Some(wrong), ..ClientConfig::default() };
    let (mut sim, _, key) = pair(11, NetConfig::default(), |_| {}, config);
    let mut rec = Recorder::default();
    run_until(&mut sim, &mut rec, Duration::from_secs(5), |r| !r.closed(CLIENT).is_empty());
    let reason = rec.closed(CLIENT).remove(0);
    assert_eq!(reason, CloseReason::KeyMismatch { expected: wrong, got: key.public });
    let text = reason.to_string();
    assert!(text.contains(&wrong.to_string()) && text.contains(&key.public.to_string()), "{text}");
    assert!(rec.connected(CLIENT).is_empty());
}

#[test]
fn roaming_client_keeps_its_session() {
    let (mut sim, client_h, _) = pair(12, NetConfig::default(), |_| {}, ClientConfig::default());
    let mut rec = Recorder::default();
    let server_h = connect(&mut sim, &mut rec);
    for i in 0..5 {
        sim.nodes[CLIENT].endpoint.send(client_h, &numbered(i)).unwrap();
        sim.nodes[SERVER].endpoint.send(server_h, &numbered(100 + i)).unwrap();
    }
    run_until(&mut sim, &mut rec, Duration::from_secs(10), |r| {
        r.messages(SERVER).len() == 5 && r.messages(CLIENT).len() == 5
    });

    // NAT rebinding: the client's packets now come from a new address, and
    // anything sent to the old one is lost.
    let new_addr: SocketAddr = "127.0.0.3:61000".parse().unwrap();
    sim.nodes[CLIENT].addr = new_addr;
    for i in 5..10 {
        sim.nodes[CLIENT].endpoint.send(client_h, &numbered(i)).unwrap();
        sim.nodes[SERVER].endpoint.send(server_h, &numbered(100 + i)).unwrap();
    }
    run_until(&mut sim, &mut rec, Duration::from_secs(30), |r| {
        r.messages(SERVER).len() == 10 && r.messages(CLIENT).len() == 10
    });
    assert_eq!(rec.messages(SERVER), (0..10).map(numbered).collect::<Vec<_>>());
    assert_eq!(rec.messages(CLIENT), (100..110).map(numbered).collect::<Vec<_>>());
    assert!(
        rec.events.iter().any(|(n, h, e)| *n == SERVER && *h == server_h && *e == Event::Migrated { remote: new_addr })
    );
    assert_eq!(sim.nodes[SERVER].endpoint.remote_address(server_h), Some(new_addr));
    assert!(rec.closed(SERVER).is_empty() && rec.closed(CLIENT).is_empty());
}

#[test]
fn spoofed_packet_from_another_address_does_not_move_the_session() {
    let (mut sim, client_h, _) = pair(13, NetConfig::default(), |_| {}, ClientConfig::default());
    sim.record = true;
    let mut rec = Recorder::default();
    let server_h = connect(&mut sim, &mut rec);
    sim.nodes[CLIENT].endpoint.send(client_h, b"hello").unwrap();
    run_until(&mut sim, &mut rec, Duration::from_secs(5), |r| r.messages(SERVER).len() == 1);
    // An attacker replays a captured client packet from its own address:
    // the replay window drops it, so the path stays where it was.
    let captured = sim
        .delivered
        .iter()
        .rev()
        .find(|(from, to, _)| *from == client_addr() && *to == server_addr())
        .unwrap()
        .2
        .clone();
    let attacker: SocketAddr = "127.0.0.66:6666".parse().unwrap();
    sim.inject(attacker, server_addr(), captured);
    sim.run_for(&mut rec, Duration::from_secs(2));
    assert_eq!(sim.nodes[SERVER].endpoint.remote_address(server_h), Some(client_addr()));
    assert_eq!(rec.messages(SERVER).len(), 1);
    assert_eq!(sim.nodes[SERVER].endpoint.connection_stats(server_h).unwrap().packets_replayed, 1);
}

#[test]
fn handshake_through_a_retry_cookie() {
    let (mut sim, client_h, _) = pair(14, NetConfig::default(), |c| c.retry_always = true, ClientConfig::default());
    let mut rec = Recorder::default();
    let server_h = connect(&mut sim, &mut rec);
    assert_eq!(sim.nodes[SERVER].endpoint.stats().retries_sent, 1);
    sim.nodes[CLIENT].endpoint.send(client_h, b"after retry").unwrap();
    sim.nodes[SERVER].endpoint.send(server_h, b"welcome").unwrap();
    run_until(&mut sim, &mut rec, Duration::from_secs(5), |r| {
        r.messages(SERVER).len() == 1 && r.messages(CLIENT).len() == 1
    });
}

#[test]
fn replayed_forged_and_garbage_datagrams_are_ignored_without_reply() {
    let (mut sim, client_h, _) = pair(15, NetConfig::default(), |_| {}, ClientConfig::default());
    sim.record = true;
    let mut rec = Recorder::default();
    let server_h = connect(&mut sim, &mut rec);
    sim.nodes[CLIENT].endpoint.send(client_h, b"once").unwrap();
    run_until(&mut sim, &mut rec, Duration::from_secs(5), |r| r.messages(SERVER).len() == 1);
    let to_server: Vec<Vec<u8>> = sim
        .delivered
        .iter()
        .filter(|(f, t, d)| *f == client_addr() && *t == server_addr() && wire::is_data(d))
        .map(|(_, _, d)| d.clone())
        .collect();
    assert!(!to_server.is_empty());
    let server = &mut sim.nodes[SERVER].endpoint;
    let before = server.connection_count();
    let now = sim.now;
    let mut buf = Vec::new();
    while server.poll_transmit(now, 1, &mut buf).is_some() {}

    // Replays of every packet the client sent.
    for d in &to_server {
        server.handle(now, client_addr(), d);
    }
    // Forgeries: each packet under a fresh packet number (so the replay
    // check passes and the AEAD check must catch it), one bit flipped.
    for d in &to_server {
        let mut f = d.clone();
        let pn = u64::from_be_bytes(f[9..17].try_into().unwrap()) + 10_000;
        f[9..17].copy_from_slice(&pn.to_be_bytes());
        let last = f.len() - 1;
        f[last] ^= 1;
        server.handle(now, client_addr(), &f);
    }
    // Garbage of every length, from a stranger, and an unknown session id.
    let stranger: SocketAddr = "127.0.0.99:9999".parse().unwrap();
    for len in 0..1500 {
        let junk: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        server.handle(now, stranger, &junk);
    }
    let mut unknown = to_server[0].clone();
    unknown[1] ^= 0xff;
    server.handle(now, stranger, &unknown);

    assert!(server.poll_event().is_none(), "no event for replayed, forged or garbage input");
    // The only reply: one stateless reset (on by default) for the unknown
    // sessions of the stranger, who sent several; smaller than any of them.
    let t = server.poll_transmit(now, 1, &mut buf).expect("a stateless reset");
    assert_eq!((t.destination, t.size), (stranger, 17));
    assert!(server.poll_transmit(now, 1, &mut buf).is_none(), "no other reply to any of it");
    assert!(server.stats().resets_rate_limited > 0);
    assert_eq!(server.connection_count(), before, "no state allocated");
    let stats = server.connection_stats(server_h).unwrap();
    assert_eq!(stats.packets_replayed, to_server.len() as u64);
    assert_eq!(stats.packets_forged, to_server.len() as u64);
    assert!(server.stats().dropped_invalid > 0 && server.stats().dropped_unknown_session > 0);
}

/// A spoofed INITIAL: the server answers once, with at most 3x the bytes,
/// and never on its own again.
#[test]
fn server_never_amplifies_towards_an_unproven_address() {
    let mut sim = Sim::new(16, NetConfig::default());
    let key = ServerKey::generate(sim.endpoint_seed());
    let mut server = Endpoint::new(sim.endpoint_seed(), Some(ServerConfig::new(key))).unwrap();
    let mut client = Endpoint::new(sim.endpoint_seed(), None).unwrap();
    let now = sim.now;
    client.connect(now, server_addr(), ClientConfig::default()).unwrap();
    let mut initial = Vec::new();
    let t = client.poll_transmit(now, 1, &mut initial).unwrap();
    assert_eq!(t.size, MIN_INITIAL_SIZE);

    // One byte short: ignored outright.
    let victim: SocketAddr = "127.0.0.7:7777".parse().unwrap();
    server.handle(now, victim, &initial[..MIN_INITIAL_SIZE - 1]);
    let mut buf = Vec::new();
    assert!(server.poll_transmit(now, 1, &mut buf).is_none());
    assert_eq!(server.connection_count(), 0);

    server.handle(now, victim, &initial[..t.size]);
    let mut sent = 0;
    for step in 0..200 {
        let at = now + Duration::from_millis(100) * step;
        server.handle_timeout(at);
        while let Some(t) = server.poll_transmit(at, 4, &mut buf) {
            assert_eq!(t.destination, victim);
            sent += t.size;
        }
    }
    assert!(sent > 0 && sent <= 3 * MIN_INITIAL_SIZE, "sent {sent} bytes for {MIN_INITIAL_SIZE} received");
    // The half-open session is forgotten after the handshake timeout.
    assert_eq!(server.connection_count(), 0);
}

#[test]
fn half_open_limit_switches_to_retry_cookies() {
    let mut sim = Sim::new(17, NetConfig::default());
    let key = ServerKey::generate(sim.endpoint_seed());
    let mut config = ServerConfig::new(key);
    config.max_half_open = 2;
    let mut server = Endpoint::new(sim.endpoint_seed(), Some(config)).unwrap();
    let now = sim.now;
    let mut buf = Vec::new();
    let mut kinds = Vec::new();
    for i in 0..5 {
        let mut client = Endpoint::new(sim.endpoint_seed(), None).unwrap();
        client.connect(now, server_addr(), ClientConfig::default()).unwrap();
        let t = client.poll_transmit(now, 1, &mut buf).unwrap();
        let from: SocketAddr = format!("127.0.2.{}:1000", i + 1).parse().unwrap();
        server.handle(now, from, &buf[..t.size]);
        let t = server.poll_transmit(now, 1, &mut buf).unwrap();
        kinds.push(buf[0]);
        assert!(t.size <= 3 * MIN_INITIAL_SIZE);
    }
    // Two handshakes answered with state, then cookies (type 0x03).
    assert_eq!(kinds, vec![0x02, 0x02, 0x03, 0x03, 0x03]);
    assert_eq!(server.connection_count(), 2);
}

#[test]
fn per_address_handshake_rate_limit_asks_for_cookies() {
    let mut sim = Sim::new(18, NetConfig::default());
    let key = ServerKey::generate(sim.endpoint_seed());
    let mut config = ServerConfig::new(key);
    config.handshake_rate = RateLimit { burst: 3, per_second: 1 };
    let mut server = Endpoint::new(sim.endpoint_seed(), Some(config)).unwrap();
    let now = sim.now;
    let mut buf = Vec::new();
    let mut kinds = Vec::new();
    for port in 0..5 {
        let mut client = Endpoint::new(sim.endpoint_seed(), None).unwrap();
        client.connect(now, server_addr(), ClientConfig::default()).unwrap();
        let t = client.poll_transmit(now, 1, &mut buf).unwrap();
        // Same IP, different ports.
        let from: SocketAddr = format!("127.0.3.1:{}", 2000 + port).parse().unwrap();
        server.handle(now, from, &buf[..t.size]);
        server.poll_transmit(now, 1, &mut buf).unwrap();
        kinds.push(buf[0]);
    }
    assert_eq!(kinds, vec![0x02, 0x02, 0x02, 0x03, 0x03]);
}

#[test]
fn version_negotiation_for_unknown_versions() {
    let mut sim = Sim::new(19, NetConfig::default());
    let key = ServerKey::generate(sim.endpoint_seed());
    let mut server = Endpoint::new(sim.endpoint_seed(), Some(ServerConfig::new(key))).unwrap();
    let datagram = wire::initial(0x0000_0099, [5; 8], &[0; 32]);
    let from: SocketAddr = "127.0.0.5:5555".parse().unwrap();
    server.handle(sim.now, from, &datagram);
    let mut buf = Vec::new();
    let t = server.poll_transmit(sim.now, 1, &mut buf).unwrap();
    let Some((client_cid, versions)) = wire::parse_version_negotiation(&buf[..t.size]) else { panic!("not a VN") };
    assert_eq!(client_cid, [5; 8]);
    assert_eq!(versions, vec![1]);
    assert_eq!(server.connection_count(), 0);
}

#[test]
fn client_gives_up_when_versions_do_not_match() {
    let mut sim = Sim::new(20, NetConfig::default());
    let mut client = Endpoint::new(sim.endpoint_seed(), None).unwrap();
    let h = client.connect(sim.now, server_addr(), ClientConfig::default()).unwrap();
    let mut buf = Vec::new();
    client.poll_transmit(sim.now, 1, &mut buf).unwrap();
    let vn = wire::version_negotiation(wire::initial_client_cid(&buf), &[7, 8]);
    // From another address it is ignored; from the server it ends the attempt.
    client.handle(sim.now, "127.0.0.9:1".parse().unwrap(), &vn);
    assert!(client.poll_event().is_none());
    client.handle(sim.now, server_addr(), &vn);
    assert_eq!(client.poll_event(), Some((h, Event::Closed(CloseReason::VersionMismatch { offered: vec![7, 8] }))));
}

#[test]
fn graceful_close_delivers_pending_data_then_reason() {
    let (mut sim, client_h, _) =
        pair(21, NetConfig { loss: 0.2, ..NetConfig::default() }, |_| {}, ClientConfig::default());
    let mut rec = Recorder::default();
    let server_h = connect(&mut sim, &mut rec);
    for i in 0..20 {
        sim.nodes[CLIENT].endpoint.send(client_h, &numbered(i)).unwrap();
    }
    let now = sim.now;
    sim.nodes[CLIENT].endpoint.close(now, client_h, code::APPLICATION_BASE + 1, "gone fishing");
    assert_eq!(sim.nodes[CLIENT].endpoint.send(client_h, b"late"), Err(SendError::Closed));
    run_until(&mut sim, &mut rec, Duration::from_secs(30), |r| {
        !r.closed(SERVER).is_empty() && !r.closed(CLIENT).is_empty()
    });
    assert_eq!(rec.messages(SERVER), (0..20).map(numbered).collect::<Vec<_>>());
    assert_eq!(rec.closed(SERVER), vec![CloseReason::Peer { code: 0x101, reason: "gone fishing".into() }]);
    assert_eq!(rec.closed(CLIENT), vec![CloseReason::Local { code: 0x101 }]);
    // Both sides free the session once the close is over.
    sim.run_for(&mut rec, Duration::from_secs(10));
    assert_eq!(sim.nodes[SERVER].endpoint.connection_count(), 0);
    assert_eq!(sim.nodes[CLIENT].endpoint.connection_count(), 0);
    assert_eq!(sim.nodes[SERVER].endpoint.send(server_h, b"x"), Err(SendError::UnknownConnection));
    // The operators' counters keep what ended sessions lost and sent.
    let client = sim.nodes[CLIENT].endpoint.stats();
    assert!(client.packets_lost + client.probe_timeouts > 0, "20 % loss left no trace: {client:?}");
    assert!(client.datagrams_sent > 0 && client.bytes_sent > 20 * 6, "{client:?}");
    assert_eq!(sim.nodes[CLIENT].endpoint.totals(), client, "no live session to add");
    let server = sim.nodes[SERVER].endpoint.stats();
    assert!(server.datagrams_received > 0 && server.bytes_received >= client.bytes_sent / 2, "{server:?}");
}

#[test]
fn idle_timeout_when_the_peer_vanishes() {
    let (mut sim, _, _) = pair(22, NetConfig::default(), |_| {}, ClientConfig::default());
    let mut rec = Recorder::default();
    connect(&mut sim, &mut rec);
    let start = sim.now;
    // The client's machine vanishes: nothing to or from it gets through.
    sim.net.filter = Some(Box::new(|_, from, to, _| from == client_addr() || to == client_addr()));
    run_until(&mut sim, &mut rec, Duration::from_secs(60), |r| {
        !r.closed(SERVER).is_empty() && !r.closed(CLIENT).is_empty()
    });
    assert_eq!(rec.closed(SERVER), vec![CloseReason::TimedOut]);
    assert_eq!(rec.closed(CLIENT), vec![CloseReason::TimedOut]);
    let took = sim.now - start;
    assert!(took >= Duration::from_secs(30) && took < Duration::from_secs(32), "{took:?}");
}

#[test]
fn keepalives_hold_an_idle_session_open() {
    let (mut sim, client_h, _) = pair(23, NetConfig::default(), |_| {}, ClientConfig::default());
    let mut rec = Recorder::default();
    connect(&mut sim, &mut rec);
    sim.run_for(&mut rec, Duration::from_secs(120));
    assert!(rec.closed(SERVER).is_empty() && rec.closed(CLIENT).is_empty(), "{:?}", rec.events);
    let stats = sim.nodes[CLIENT].endpoint.connection_stats(client_h).unwrap();
    // About one keepalive per 10 s, not a flood.
    assert!(stats.packets_sent >= 12 && stats.packets_sent <= 20, "{stats:?}");
}

#[test]
fn handshake_times_out_without_a_server() {
    let mut sim = Sim::new(24, NetConfig::default());
    let mut client = Endpoint::new(sim.endpoint_seed(), None).unwrap();
    client.connect(sim.now, server_addr(), ClientConfig::default()).unwrap();
    sim.add(client_addr(), client);
    let mut rec = Recorder::default();
    run_until(&mut sim, &mut rec, Duration::from_secs(20), |r| !r.closed(0).is_empty());
    assert_eq!(rec.closed(0), vec![CloseReason::HandshakeTimedOut]);
}

#[test]
fn message_size_limit_and_back_pressure() {
    let (mut sim, client_h, _) = pair(25, NetConfig::default(), |_| {}, ClientConfig::default());
    let mut rec = Recorder::default();
    connect(&mut sim, &mut rec);
    let client = &mut sim.nodes[CLIENT].endpoint;
    assert_eq!(
        client.send(client_h, &vec![0; MAX_MESSAGE_SIZE + 1]),
        Err(SendError::TooLarge { size: MAX_MESSAGE_SIZE + 1, max: MAX_MESSAGE_SIZE })
    );
    client.send(client_h, &vec![1; MAX_MESSAGE_SIZE]).unwrap();
    // Fill the 1 MiB send buffer without running the network.
    let mut accepted = 1;
    loop {
        match client.send(client_h, &vec![2; 60_000]) {
            Ok(()) => accepted += 1,
            Err(SendError::Blocked) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(accepted < 100, "the send buffer never filled");
    }
    assert!(client.send_buffered(client_h).unwrap() <= 1024 * 1024);
    run_until(&mut sim, &mut rec, Duration::from_secs(10), |r| {
        r.events.iter().any(|(n, _, e)| *n == CLIENT && *e == Event::Writable)
    });
    run_until(&mut sim, &mut rec, Duration::from_secs(10), |r| r.messages(SERVER).len() == accepted);
    assert_eq!(rec.messages(SERVER)[0].len(), MAX_MESSAGE_SIZE);
}

#[test]
fn server_at_capacity_refuses_with_a_reason() {
    let (mut sim, _, _) = pair(26, NetConfig::default(), |c| c.max_connections = 1, ClientConfig::default());
    let mut rec = Recorder::default();
    connect(&mut sim, &mut rec);
    let mut second = Endpoint::new(sim.endpoint_seed(), None).unwrap();
    second.connect(sim.now, server_addr(), ClientConfig::default()).unwrap();
    let n = sim.add("127.0.0.4:4000".parse().unwrap(), second);
    run_until(&mut sim, &mut rec, Duration::from_secs(10), |r| !r.closed(n).is_empty());
    assert!(matches!(&rec.closed(n)[0], CloseReason::Peer { code, .. } if *code == code::SERVER_BUSY));
    assert_eq!(rec.connected(SERVER).len(), 1, "the refused session never reaches the server application");
}

#[test]
fn restarted_server_resets_old_sessions_at_once() {
    // Stateless reset is on by default.
    let (mut sim, client_h, key) = pair(27, NetConfig::default(), |_| {}, ClientConfig::default());
    let mut rec = Recorder::default();
    connect(&mut sim, &mut rec);
    // The server restarts: same key, no sessions.
    let seed = sim.endpoint_seed();
    sim.nodes[SERVER].endpoint = Endpoint::new(seed, Some(ServerConfig::new(key))).unwrap();
    let start = sim.now;
    sim.nodes[CLIENT].endpoint.send(client_h, b"anyone there?").unwrap();
    run_until(&mut sim, &mut rec, Duration::from_secs(5), |r| !r.closed(CLIENT).is_empty());
    assert_eq!(rec.closed(CLIENT), vec![CloseReason::Reset]);
    assert!(sim.now - start < Duration::from_millis(100), "{:?}", sim.now - start);
    assert_eq!(sim.nodes[SERVER].endpoint.stats().stateless_resets_sent, 1);
}

/// Issue 10: a client that sends nothing still learns of a restart within
/// about a second, if it has seen traffic lately (its silence probe, §9),
/// and a lost reset is answered again at its next retransmission.
#[test]
fn quiet_client_learns_of_a_restart_within_about_a_second_even_under_loss() {
    for seed in [29, 1029, 2029] {
        let net = NetConfig { loss: 0.3, ..NetConfig::default() };
        let (mut sim, _, key) = pair(seed, net, |_| {}, ClientConfig::default());
        let mut rec = Recorder::default();
        let server_h = connect(&mut sim, &mut rec);
        sim.nodes[SERVER].endpoint.send(server_h, b"welcome").unwrap();
        run_until(&mut sim, &mut rec, Duration::from_secs(10), |r| r.messages(CLIENT).len() == 1);
        // The server is killed and restarted at once; the client sends
        // nothing of its own.
        let killed = sim.now;
        let s = sim.endpoint_seed();
        sim.nodes[SERVER].endpoint = Endpoint::new(s, Some(ServerConfig::new(key))).unwrap();
        run_until(&mut sim, &mut rec, Duration::from_secs(20), |r| !r.closed(CLIENT).is_empty());
        assert_eq!(rec.closed(CLIENT), vec![CloseReason::Reset], "seed {seed}");
        let took = sim.now - killed;
        eprintln!("seed {seed}: the quiet client learned of the restart after {took:?}");
        assert!(took < Duration::from_secs(5), "seed {seed}: {took:?}, not about a second");
    }
}

/// The bounds of docs/PROTOCOL.md §5.5, through the endpoint: one reset for
/// a burst from one address, another after 250-500 ms, never one larger
/// than its trigger, none when turned off.
#[test]
fn stateless_resets_are_bounded_per_address_and_can_be_turned_off() {
    let mut server = Endpoint::new([1; 32], Some(ServerConfig::new(ServerKey::generate([2; 32])))).unwrap();
    let unknown: Vec<u8> = [5u8].into_iter().chain([9u8; 8]).chain([0u8; 8]).chain([1u8; 17]).collect();
    let (a, b): (SocketAddr, SocketAddr) = ("127.0.0.9:9".parse().unwrap(), "127.0.0.10:9".parse().unwrap());
    let t0 = std::time::Instant::now();
    let mut buf = Vec::new();
    let mut drain = |server: &mut Endpoint, now| {
        let mut sent = Vec::new();
        while let Some(t) = server.poll_transmit(now, 1, &mut buf) {
            assert!(t.size < unknown.len(), "a reset is smaller than its trigger");
            sent.push(t.destination);
        }
        sent
    };
    for _ in 0..10 {
        server.handle(t0, a, &unknown);
    }
    server.handle(t0, b, &unknown);
    assert_eq!(drain(&mut server, t0), vec![a, b], "one reset per address for a burst");
    server.handle(t0 + Duration::from_millis(300), a, &unknown);
    assert!(drain(&mut server, t0 + Duration::from_millis(300)).is_empty(), "still within 500 ms");
    server.handle(t0 + Duration::from_millis(600), a, &unknown);
    assert_eq!(drain(&mut server, t0 + Duration::from_millis(600)), vec![a]);
    assert_eq!(server.stats().stateless_resets_sent, 3);
    assert_eq!(server.stats().resets_rate_limited, 10);

    let mut config = ServerConfig::new(ServerKey::generate([2; 32]));
    config.stateless_reset = false;
    let mut quiet = Endpoint::new([1; 32], Some(config)).unwrap();
    quiet.handle(t0, a, &unknown);
    assert!(drain(&mut quiet, t0).is_empty());
}

#[test]
fn stateless_reset_cannot_be_forged_or_amplified() {
    let (mut sim, client_h, _) = pair(28, NetConfig::default(), |_| {}, ClientConfig::default());
    let mut rec = Recorder::default();
    connect(&mut sim, &mut rec);
    // Anyone can send a reset-shaped datagram; without the token it is ignored.
    let fake = wire::stateless_reset([0xab; 16]);
    sim.inject(server_addr(), client_addr(), fake);
    sim.run_for(&mut rec, Duration::from_secs(1));
    assert!(rec.closed(CLIENT).is_empty());
    assert!(sim.nodes[CLIENT].endpoint.connection_stats(client_h).is_some());
    // A server answers an unknown session with fewer bytes than it got,
    // and a client endpoint never answers at all.
    let mut server = Endpoint::new([1; 32], Some(ServerConfig::new(ServerKey::generate([2; 32])))).unwrap();
    let unknown: Vec<u8> = [5u8].into_iter().chain([9u8; 8]).chain([0u8; 8]).chain([1u8; 17]).collect();
    assert_eq!(unknown.len(), wire::MIN_DATA_SIZE);
    server.handle(sim.now, "127.0.0.9:9".parse().unwrap(), &unknown);
    let mut buf = Vec::new();
    let t = server.poll_transmit(sim.now, 1, &mut buf).unwrap();
    assert!(t.size < unknown.len());
    let mut client = Endpoint::new([3; 32], None).unwrap();
    client.handle(sim.now, "127.0.0.9:9".parse().unwrap(), &unknown);
    assert!(client.poll_transmit(sim.now, 1, &mut buf).is_none());
}

#[test]
fn paused_reading_holds_messages_back_until_resumed_in_order() {
    let (mut sim, client_h, _) = pair(33, NetConfig::default(), |_| {}, ClientConfig::default());
    let mut rec = Recorder::default();
    let server_h = connect(&mut sim, &mut rec);
    let now = sim.now;
    sim.nodes[SERVER].endpoint.set_reading(now, server_h, false);
    // More than the server's receive window (1 MiB): the client blocks.
    let big = |i: usize| {
        let mut m = numbered(i);
        m.resize(16 * 1024, b'.');
        m
    };
    let mut sent = 0;
    for _ in 0..40 {
        while sent < 200 && sim.nodes[CLIENT].endpoint.send(client_h, &big(sent)).is_ok() {
            sent += 1;
        }
        sim.run_for(&mut rec, Duration::from_millis(100));
    }
    assert!(rec.messages(SERVER).is_empty(), "nothing is handed over while reading is paused");
    assert!(sent < 200, "the client is held back ({sent} messages queued)");
    let now = sim.now;
    sim.nodes[SERVER].endpoint.set_reading(now, server_h, true);
    for _ in 0..100 {
        while sent < 200 && sim.nodes[CLIENT].endpoint.send(client_h, &big(sent)).is_ok() {
            sent += 1;
        }
        sim.run_for(&mut rec, Duration::from_millis(100));
        if rec.messages(SERVER).len() == 200 {
            break;
        }
    }
    assert_eq!(rec.messages(SERVER), (0..200).map(big).collect::<Vec<_>>());
}
