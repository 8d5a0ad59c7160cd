//! Received-datagram handling over arbitrary bytes: header parsing, frame
//! decoding of what follows a DATA header, and the endpoint's `handle`.
//!
//! cargo +nightly fuzz run datagram
//!
//! Each input is
//! 1. parsed with `Datagram::parse`; for DATA, `Frames` also runs over the
//!    bytes after the header (ciphertext in practice, but any bytes must
//!    be safe to decode);
//! 2. fed (twice) to a fresh server endpoint (cheap: the key is made
//!    once), whose output, events and timers are then run: this reaches
//!    the INITIAL path, including Noise message 1 and the client's
//!    transport parameters, which are not encrypted. A short INITIAL is
//!    also tried zero-padded to 1200 bytes;
//! 3. for HANDSHAKE, RETRY and VERSION_NEGOTIATION, fed with the client
//!    connection id patched in to a fresh client endpoint that is waiting
//!    for the server, so those paths are reached too;
//! 4. for DATA, fed with the connection id patched in to both ends of an
//!    established session. Such packets cannot authenticate, and forged
//!    packets change nothing but counters, so that session is made once
//!    and shared by all inputs.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use udpchat_proto::frame::{Frame, Frames};
use udpchat_proto::packet::{CID_LEN, DATA_HEADER_LEN, Datagram, MIN_INITIAL_SIZE, PacketType};
use udpchat_proto::{ClientConfig, Endpoint, Event, RateLimit, ServerConfig, ServerKey};

const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 4433);
const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)), 50_000);

struct Session {
    /// The session's clock, past everything the setup did.
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    /// The connection id each end puts in DATA headers for the other.
    server_cid: [u8; CID_LEN],
    client_cid: [u8; CID_LEN],
}

struct Fixture {
    start: Instant,
    key: ServerKey,
    session: Mutex<Session>,
}

fn server_config(key: &ServerKey) -> ServerConfig {
    let mut config = ServerConfig::new(key.clone());
    let unlimited = RateLimit { burst: 1 << 20, per_second: 1 << 20 };
    config.handshake_rate = unlimited;
    config.validated_handshake_rate = unlimited;
    config
}

/// Everything an endpoint has to send and tell, discarded, after checking
/// that what it sends is itself a valid datagram.
fn drain(now: Instant, endpoint: &mut Endpoint, buf: &mut Vec<u8>) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    for _ in 0..64 {
        let Some(t) = endpoint.poll_transmit(now, 4, buf) else { break };
        assert_eq!(t.size, buf.len());
        let segment = t.segment_size.unwrap_or(t.size);
        for d in buf.chunks(segment.max(1)) {
            assert!(Datagram::parse(d).is_ok(), "endpoint sent an unparseable datagram: {d:02x?}");
            sent.push(d.to_vec());
        }
    }
    while endpoint.poll_event().is_some() {}
    sent
}

/// Runs the endpoint's timers forward through everything that can be due.
fn run_timers(start: Instant, endpoint: &mut Endpoint, buf: &mut Vec<u8>) {
    for secs in [1, 5, 20, 60, 600] {
        let now = start + Duration::from_secs(secs);
        endpoint.handle_timeout(now);
        drain(now, endpoint, buf);
        if let Some(t) = endpoint.poll_timeout() {
            assert!(t > now, "timer at {t:?} still due after handle_timeout({now:?})");
        }
    }
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let start = Instant::now();
        let key = ServerKey::generate([1; 32]);
        let mut server = Endpoint::new([2; 32], Some(server_config(&key))).unwrap();
        let mut client = Endpoint::new([3; 32], None).unwrap();
        let h = client.connect(start, SERVER, ClientConfig::default()).unwrap();
        let mut buf = Vec::new();
        let (mut server_cid, mut client_cid) = (None, None);
        let mut connected = 0;
        let mut now = start;
        // Rounds 30 ms apart, so the delayed ACKs go out and each end sends
        // the other DATA.
        for _ in 0..10 {
            for d in drain_keep_events(now, &mut client, &mut buf, &mut connected) {
                if d[0] == PacketType::Data as u8 {
                    server_cid = Some(d[1..1 + CID_LEN].try_into().unwrap());
                }
                server.handle(now, CLIENT, &d);
            }
            for d in drain_keep_events(now, &mut server, &mut buf, &mut connected) {
                if d[0] == PacketType::Data as u8 {
                    client_cid = Some(d[1..1 + CID_LEN].try_into().unwrap());
                }
                client.handle(now, SERVER, &d);
            }
            now += Duration::from_millis(30);
            client.handle_timeout(now);
            server.handle_timeout(now);
        }
        assert_eq!(connected, 2, "fixture handshake failed");
        assert!(client.connection_stats(h).is_some());
        let session = Session {
            now,
            client,
            server,
            server_cid: server_cid.expect("client sent DATA"),
            client_cid: client_cid.expect("server sent DATA"),
        };
        Fixture { start, key, session: Mutex::new(session) }
    })
}

fn drain_keep_events(now: Instant, endpoint: &mut Endpoint, buf: &mut Vec<u8>, connected: &mut u32) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    while let Some(t) = endpoint.poll_transmit(now, 1, buf) {
        sent.push(buf[..t.size].to_vec());
    }
    while let Some((_, e)) = endpoint.poll_event() {
        *connected += matches!(e, Event::Connected { .. }) as u32;
    }
    sent
}

fn fresh_server(fx: &Fixture, now: Instant, data: &[u8], buf: &mut Vec<u8>) {
    let mut server = Endpoint::new([4; 32], Some(server_config(&fx.key))).unwrap();
    server.handle(now, CLIENT, data);
    let replies = drain(now, &mut server, buf);
    // Anti-amplification: never more than 3x what was received.
    let replied: usize = replies.iter().map(Vec::len).sum();
    assert!(replied <= 3 * data.len(), "{replied} bytes sent in reply to {} bytes", data.len());
    // The same datagram again (a retransmitted INITIAL is answered from
    // the half-open state), then the timers.
    server.handle(now, CLIENT, data);
    drain(now, &mut server, buf);
    run_timers(fx.start, &mut server, buf);
}

fuzz_target!(|data: &[u8]| {
    // 1. Parsing alone.
    if let Ok(Datagram::Data { header, ciphertext }) = Datagram::parse(data) {
        assert_eq!(header.dest_cid[..], data[1..1 + CID_LEN]);
        assert_eq!(ciphertext, &data[DATA_HEADER_LEN..]);
        for frame in Frames::new(&data[DATA_HEADER_LEN..]) {
            match frame {
                Ok(Frame::Ack(ack)) => {
                    for r in ack.ranges() {
                        assert!(r.start() <= r.end());
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }

    let fx = fixture();
    let now = fx.start + Duration::from_millis(10);
    let mut buf = Vec::new();

    // 2. A fresh server. A short INITIAL is also tried zero-padded to the
    // minimum size, so the fuzzer can explore INITIAL bodies without first
    // having to grow inputs past 1200 bytes.
    fresh_server(fx, now, data, &mut buf);
    if data.first() == Some(&(PacketType::Initial as u8)) && data.len() < MIN_INITIAL_SIZE {
        let mut padded = data.to_vec();
        padded.resize(MIN_INITIAL_SIZE, 0);
        fresh_server(fx, now, &padded, &mut buf);
    }

    let Some(&ty) = data.first() else { return };
    let mut patched = data.to_vec();

    // 3. A client waiting for the server's answer.
    let cid_at = match PacketType::from_byte(ty) {
        Some(PacketType::Handshake | PacketType::Retry) => Some(5),
        Some(PacketType::VersionNegotiation) => Some(1),
        _ => None,
    };
    if let Some(at) = cid_at.filter(|&at| patched.len() >= at + CID_LEN) {
        let mut client = Endpoint::new([5; 32], None).unwrap();
        client.connect(fx.start, SERVER, ClientConfig::default()).unwrap();
        let initial = drain(fx.start, &mut client, &mut buf);
        let cid = &initial[0][5..5 + CID_LEN];
        patched[at..at + CID_LEN].copy_from_slice(cid);
        client.handle(now, SERVER, &patched);
        drain(now, &mut client, &mut buf);
        run_timers(fx.start, &mut client, &mut buf);
    }

    // 4. Both ends of an established session.
    if ty == PacketType::Data as u8 && patched.len() > CID_LEN {
        let mut s = fx.session.lock().unwrap_or_else(|e| e.into_inner());
        let Session { now, client, server, server_cid, client_cid } = &mut *s;
        let now = *now;
        patched[1..1 + CID_LEN].copy_from_slice(server_cid);
        server.handle(now, CLIENT, &patched);
        drain(now, server, &mut buf);
        patched[1..1 + CID_LEN].copy_from_slice(client_cid);
        client.handle(now, SERVER, &patched);
        drain(now, client, &mut buf);
    }
});
