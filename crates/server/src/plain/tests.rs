//! The gateway without a chat core: what it feeds and what it answers.

use super::*;
use udpchat_chat::Line;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], port))
}

fn feeds(g: &mut PlainGateway) -> Vec<Feed> {
    std::iter::from_fn(|| g.next_feed()).collect()
}

fn said(feed: &Feed) -> Option<ClientMsg> {
    match feed {
        Feed::Message { bytes, .. } => ClientMsg::decode(bytes).ok(),
        _ => None,
    }
}

#[test]
fn nickname_then_lines_then_quit() {
    let now = Instant::now();
    let mut g = PlainGateway::new(4, Duration::from_secs(60));
    g.datagram(now, addr(1), b"dina\n");
    let f = feeds(&mut g);
    let Feed::Connect { h, .. } = f[0] else { panic!("{f:?}") };
    assert!(h.is_foreign());
    assert!(matches!(said(&f[1]), Some(ClientMsg::Login { ref nick, .. }) if nick == "dina"));
    // Lines before the welcome wait for it.
    g.datagram(now, addr(1), b"early");
    assert!(feeds(&mut g).is_empty());
    let welcome =
        ServerMsg::Welcome { nick: "dina".into(), server_name: "s".into(), motd: "m".into(), operator: false };
    g.deliver(now, h, &welcome.to_bytes());
    let f = feeds(&mut g);
    assert!(matches!(said(&f[0]), Some(ClientMsg::Say { ref text, .. }) if text == "early"));
    assert_eq!(g.take_outbox(), vec![(addr(1), b"Welcome dina\n".to_vec())]);
    g.datagram(now, addr(1), b"a\nQUIT\nnot said");
    let f = feeds(&mut g);
    assert_eq!(f.len(), 2);
    assert!(matches!(said(&f[1]), Some(ClientMsg::Quit { .. })));
}

#[test]
fn never_sends_more_than_three_times_what_it_received() {
    let now = Instant::now();
    let mut g = PlainGateway::new(4, Duration::from_secs(60));
    g.datagram(now, addr(1), b"ana");
    let f = feeds(&mut g);
    let Feed::Connect { h, .. } = f[0] else { panic!() };
    let welcome = ServerMsg::Welcome { nick: "ana".into(), server_name: "s".into(), motd: "m".into(), operator: false };
    g.deliver(now, h, &welcome.to_bytes());
    // The welcome is cut to the budget (9 bytes for 3), still a line.
    assert_eq!(g.take_outbox(), vec![(addr(1), b"Welcome \n".to_vec())]);
    let line = |text: &str| {
        ServerMsg::Line(Line {
            room: "lobby".into(),
            seq: 1,
            time_ms: 0,
            from: "bob".into(),
            text: text.into(),
            kind: udpchat_chat::LineKind::Normal,
            history: false,
        })
    };
    g.deliver(now, h, &line("hi").to_bytes());
    assert!(g.take_outbox().is_empty(), "no budget left");
    g.datagram(now, addr(1), b"hello!"); // 6 bytes: 18 more
    g.deliver(now, h, &line("hi").to_bytes()); // "bob: hi\n", 8
    g.deliver(now, h, &line("hi").to_bytes());
    g.deliver(now, h, &line("hi").to_bytes()); // would make 24 > 18
    let sent: usize = g.take_outbox().iter().map(|(_, b)| b.len()).sum();
    assert_eq!(sent, 16);
}

#[test]
fn bounded_members_and_idle_timeout() {
    let now = Instant::now();
    let mut g = PlainGateway::new(2, Duration::from_secs(60));
    g.datagram(now, addr(1), b"a1");
    g.datagram(now, addr(2), b"a2");
    g.datagram(now, addr(3), b"a3");
    assert_eq!(g.member_count(), 2);
    let _ = feeds(&mut g);
    g.tick(now + Duration::from_secs(61));
    assert_eq!(g.member_count(), 0);
    let f = feeds(&mut g);
    assert!(f.iter().all(|f| matches!(f, Feed::Closed { reason: CloseReason::TimedOut, .. })));
    assert_eq!(f.len(), 2);
}

#[test]
fn refused_login_takes_the_next_datagram_as_a_nickname() {
    let now = Instant::now();
    let mut g = PlainGateway::new(2, Duration::from_secs(60));
    g.datagram(now, addr(1), b"PASS s3cret");
    let f = feeds(&mut g);
    assert_eq!(f.len(), 1, "PASS only connects");
    let Feed::Connect { h, .. } = f[0] else { panic!() };
    g.datagram(now, addr(1), b"taken");
    let f = feeds(&mut g);
    assert!(matches!(said(&f[0]), Some(ClientMsg::Login { ref server_password, .. }) if server_password == "s3cret"));
    let refused =
        ServerMsg::LoginRefused { code: udpchat_chat::RefuseCode::NickTaken, text: "taken is already in use".into() };
    g.deliver(now, h, &refused.to_bytes());
    g.datagram(now, addr(1), b"other");
    let f = feeds(&mut g);
    assert!(matches!(said(&f[0]), Some(ClientMsg::Login { ref nick, .. }) if nick == "other"));
}

#[test]
fn a_member_whose_lines_are_still_being_said_is_not_idle() {
    let now = Instant::now();
    let mut g = PlainGateway::new(2, Duration::from_secs(60));
    g.datagram(now, addr(1), b"dinda");
    let Feed::Connect { h, .. } = feeds(&mut g)[0] else { panic!() };
    let ack = ServerMsg::Ack { id: 1, room: "lobby".into(), seq: 1 };
    g.deliver(now + Duration::from_secs(50), h, &ack.to_bytes());
    g.tick(now + Duration::from_secs(61));
    assert_eq!(g.member_count(), 1);
    g.tick(now + Duration::from_secs(111));
    assert_eq!(g.member_count(), 0);
}

#[test]
fn lines_are_dropped_while_flood_control_holds_enough() {
    let now = Instant::now();
    let mut g = PlainGateway::new(2, Duration::from_secs(60));
    g.datagram(now, addr(1), b"dinda");
    let Feed::Connect { h, .. } = feeds(&mut g)[0] else { panic!() };
    let welcome =
        ServerMsg::Welcome { nick: "dinda".into(), server_name: "s".into(), motd: "m".into(), operator: false };
    g.deliver(now, h, &welcome.to_bytes());
    let _ = (feeds(&mut g), g.take_outbox());
    g.set_reading(h, false);
    g.datagram(now, addr(1), b"one\ntwo");
    assert!(feeds(&mut g).is_empty());
    let told = g.take_outbox();
    assert_eq!(told.len(), 1, "told once");
    assert!(told[0].1.starts_with(b"ERROR: too fast"), "{told:?}");
    g.datagram(now, addr(1), b"three\nQUIT");
    let f = feeds(&mut g);
    assert_eq!(f.len(), 1, "QUIT still goes");
    assert!(matches!(said(&f[0]), Some(ClientMsg::Quit { .. })));
    assert!(g.take_outbox().is_empty(), "told once per pause");
    g.set_reading(h, true);
    g.datagram(now, addr(1), b"four");
    assert_eq!(feeds(&mut g).len(), 1);
}

#[test]
fn a_member_does_not_get_its_own_lines_back() {
    let now = Instant::now();
    let mut g = PlainGateway::new(4, Duration::from_secs(60));
    g.datagram(now, addr(1), b"ana, with a long hello to leave budget");
    let f = feeds(&mut g);
    let Feed::Connect { h, .. } = f[0] else { panic!() };
    let welcome = ServerMsg::Welcome { nick: "ana".into(), server_name: "s".into(), motd: "m".into(), operator: false };
    g.deliver(now, h, &welcome.to_bytes());
    g.take_outbox();
    let line = |from: &str| {
        ServerMsg::Line(Line {
            room: "lobby".into(),
            seq: 1,
            time_ms: 0,
            from: from.into(),
            text: "hi".into(),
            kind: udpchat_chat::LineKind::Normal,
            history: false,
        })
    };
    g.deliver(now, h, &line("ana").to_bytes());
    g.deliver(now, h, &line("bob").to_bytes());
    assert_eq!(g.take_outbox(), vec![(addr(1), b"bob: hi\n".to_vec())]);
}
