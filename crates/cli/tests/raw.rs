//! End-to-end tests that need a client the library would never be: one
//! that sends text that is not UTF-8, one that throws garbage datagrams at
//! the server, and one that stops reading. Built directly on the protocol
//! endpoint and a plain UDP socket (`common/raw.rs`).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::raw::RawClient;
use common::{ServerProc, expect, login};
use udpchat_client::ClientEvent;
use udpchat_client::chat::{ClientMsg, ErrorCode, NoticeKind, ServerMsg};
use udpchat_proto::coding::Writer;

#[test]
fn invalid_utf8_gets_its_error_and_the_session_keeps_working() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let mut raw = RawClient::connect(server.addr().parse().unwrap());
    raw.login("raw");
    // A Say whose text is not UTF-8, built byte by byte.
    let mut bad = vec![0x02];
    bad.put_varint(41);
    bad.put_varint_bytes(b"lobby");
    bad.put_varint_bytes(&[0x68, 0xff, 0xfe]);
    bad.put_varint(0);
    raw.send(&bad);
    let got = raw.pump(Duration::from_millis(500));
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Error { id: 41, code: ErrorCode::InvalidUtf8, .. })), "{got:?}");
    // An unknown request type: an error, not a disconnect.
    raw.send(&[0x7e, 1, 2, 3]);
    let got = raw.pump(Duration::from_millis(300));
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Error { code: ErrorCode::InvalidRequest, .. })), "{got:?}");
    raw.send(&ClientMsg::Say { id: 42, room: "lobby".into(), text: "still here".into(), action: false }.to_bytes());
    let got = raw.pump(Duration::from_millis(500));
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Ack { id: 42, .. })), "{got:?}");
}

#[tokio::test]
async fn garbage_datagrams_do_not_disturb_the_server() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let (_bob, mut bob_ev) = login(server.options("bob")).await;
    let junk = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target: SocketAddr = server.addr().parse().unwrap();
    // Bounded: 3,000 datagrams of every type byte and many lengths.
    for i in 0..3000usize {
        let len = (i * 37) % 1400;
        let mut d: Vec<u8> = (0..len).map(|j| (i * 31 + j * 7) as u8).collect();
        if let Some(first) = d.first_mut() {
            *first = (i % 8) as u8;
        }
        let _ = junk.send_to(&d, target);
    }
    ana.say("lobby", "after the storm").await;
    let seen = expect(&mut bob_ev, "the line", |e| matches!(e, ClientEvent::Server(ServerMsg::Line(_)))).await;
    assert_eq!(common::lines(&seen), vec![("ana".to_owned(), "after the storm".to_owned())]);
    expect(&mut ana_ev, "the ack", |e| matches!(e, ClientEvent::Delivered { .. })).await;
}

/// A member that reads nothing for 10 s during a burst is not cut off: once
/// its bounded queue fills, the server stops queueing live lines for it
/// and later feeds it from the store, so it ends up with every line exactly
/// once and in order, while a member that keeps up is never slowed.
#[tokio::test]
async fn a_reader_that_stops_reading_catches_up_from_the_store() {
    let config = "send_queue_bytes = 131072\nrate_per_second = 0\nhistory_sync = \"normal\"\n";
    let server = ServerProc::start(config, &["--console", "off", "--quiet"], &[]);
    let addr: SocketAddr = server.addr().parse().unwrap();
    let (asleep_tx, asleep_rx) = tokio::sync::oneshot::channel();
    let (wake_tx, wake_rx) = std::sync::mpsc::channel::<()>();
    let sleeper = tokio::task::spawn_blocking(move || {
        let mut raw = RawClient::connect(addr);
        raw.login("sleeper");
        raw.reading = false;
        let _ = asleep_tx.send(());
        let started = Instant::now();
        // Not reading, but keeping the session alive, until told to wake.
        while wake_rx.try_recv().is_err() && started.elapsed() < Duration::from_secs(60) {
            raw.pump(Duration::from_millis(100));
        }
        raw.reading = true;
        let mut seqs = Vec::new();
        let until = Instant::now() + Duration::from_secs(30);
        while seqs.len() < 3000 && Instant::now() < until {
            for m in raw.pump(Duration::from_millis(100)) {
                if let ServerMsg::Line(l) = m
                    && l.from == "ana"
                    && !l.history
                {
                    seqs.push(l.seq);
                }
            }
        }
        seqs
    });
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let (_bob, mut bob_ev) = login(server.options("bob")).await;
    asleep_rx.await.expect("sleeper logged in");
    let started = Instant::now();
    let drain = tokio::spawn(async move { while ana_ev.recv().await.is_some() {} });
    // Rounds of 200 lines: bob keeps up; the sleeper's queue fills.
    let text = "z".repeat(100);
    let (rounds, per_round) = (15, 200);
    let mut got = 0;
    for round in 1..=rounds {
        for _ in 0..per_round {
            ana.say("lobby", &text).await;
        }
        while got < round * per_round {
            let seen = expect(&mut bob_ev, "lines", |e| matches!(e, ClientEvent::Server(ServerMsg::Line(_)))).await;
            got += common::lines(&seen).len();
            assert!(
                !seen.iter().any(|e| matches!(e, ClientEvent::Server(ServerMsg::Notice { nick, kind, .. })
                    if nick == "sleeper" && matches!(kind, NoticeKind::Quit | NoticeKind::Timeout))),
                "the sleeper must not be cut off"
            );
        }
    }
    assert_eq!(got, rounds * per_round, "the member that keeps up got every line");
    // Bob has every line while the sleeper still reads nothing (it is
    // woken only now): the sleeper did not hold him up.
    // The sleeper reads nothing for 10 s in all, then wakes up.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(started.elapsed())).await;
    wake_tx.send(()).unwrap();
    let seqs = sleeper.await.unwrap();
    assert_eq!(seqs.len(), rounds * per_round, "the sleeper got every line");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, no duplicates");
    drain.abort();
}
