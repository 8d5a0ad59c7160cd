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
    g.deliver(h, &welcome.to_bytes());
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
    g.deliver(h, &welcome.to_bytes());
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
    g.deliver(h, &line("hi").to_bytes());
    assert!(g.take_outbox().is_empty(), "no budget left");
    g.datagram(now, addr(1), b"hello!"); // 6 bytes: 18 more
    g.deliver(h, &line("hi").to_bytes()); // "bob: hi\n", 8
    g.deliver(h, &line("hi").to_bytes());
    g.deliver(h, &line("hi").to_bytes()); // would make 24 > 18
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
    g.deliver(h, &refused.to_bytes());
    g.datagram(now, addr(1), b"other");
    let f = feeds(&mut g);
    assert!(matches!(said(&f[0]), Some(ClientMsg::Login { ref nick, .. }) if nick == "other"));
}
