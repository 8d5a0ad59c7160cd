//! The session core driven by hand: no socket, no task, no clock. Each
//! test plays the connection's and the front end's part and checks what
//! the core sends, asks for and reports.

use std::time::{Duration, Instant};

use udpchat_chat::{ClientMsg, Line, LineKind, RefuseCode, ServerMsg, close};
use udpchat_proto::{CloseReason, PublicKey, ServerKey};

use super::*;

mod failover;

fn key(n: u8) -> PublicKey {
    ServerKey::generate([n; 32]).public
}

/// The harness's server address.
fn server() -> std::net::SocketAddr {
    "127.0.0.1:1".parse().unwrap()
}

struct Harness {
    s: Session,
    now: Instant,
}

impl Harness {
    fn new(reconnect: bool, server_key: Option<PublicKey>) -> Self {
        let mut options = crate::ClientOptions::new("127.0.0.1:1", "ana");
        options.reconnect = reconnect;
        options.rooms = vec!["rust".into()];
        let now = Instant::now();
        let s = Session::new(SessionConfig::new(&options, server_key), now, 1_000_000);
        Harness { s, now }
    }

    fn sends(&mut self) -> Vec<ClientMsg> {
        let mut v = Vec::new();
        while let Some(m) = self.s.next_send(self.now) {
            v.push(m.clone());
            self.s.sent(self.now);
        }
        v
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.s.poll_action()).collect()
    }

    fn events(&mut self) -> Vec<ClientEvent> {
        std::iter::from_fn(|| self.s.poll_event()).collect()
    }

    fn msg(&mut self, msg: ServerMsg) {
        self.s.on_message(self.now, msg);
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.s.handle_timeout(self.now);
    }

    /// Connected with key 1 and logged in; everything drained.
    fn logged_in(reconnect: bool) -> Self {
        let mut h = Harness::new(reconnect, Some(key(1)));
        h.s.on_connected(h.now, key(1));
        h.msg(welcome("ana"));
        h.sends();
        // The joins spent tokens: start each test with a full bucket.
        h.advance(Duration::from_secs(5));
        h.actions();
        h.events();
        h
    }
}

fn welcome(nick: &str) -> ServerMsg {
    ServerMsg::Welcome { nick: nick.into(), server_name: "t".into(), motd: String::new(), operator: false }
}

fn joined(room: &str, head: u64) -> ServerMsg {
    ServerMsg::Joined { room: room.into(), topic: String::new(), members: vec!["ana".into()], head }
}

fn line(room: &str, seq: u64) -> ServerMsg {
    ServerMsg::Line(Line {
        room: room.into(),
        seq,
        time_ms: 0,
        from: "bob".into(),
        text: format!("line {seq}"),
        kind: LineKind::Normal,
        history: false,
    })
}

fn say(id: u64) -> Request {
    Request::Send(ClientMsg::Say { id, room: "lobby".into(), text: format!("mine {id}"), action: false })
}

fn login_nick(msgs: &[ClientMsg]) -> Option<&str> {
    msgs.iter().find_map(|m| match m {
        ClientMsg::Login { nick, .. } => Some(nick.as_str()),
        _ => None,
    })
}

#[test]
fn logs_in_then_joins_the_rooms_asked_for() {
    let mut h = Harness::new(false, None);
    assert_eq!(h.events(), [ClientEvent::Connecting { attempt: 1 }]);
    assert_eq!(h.actions(), [Action::Connect { server_key: None, to: server() }]);
    assert!(h.s.next_send(h.now).is_none(), "nothing before the handshake");
    h.s.on_request(h.now, say(1));
    h.s.on_connected(h.now, key(1));
    // First use: remembered, reported, and required from now on.
    assert_eq!(h.actions(), [Action::RememberKey(key(1))]);
    assert_eq!(h.events(), [ClientEvent::Connected { server_key: key(1), first_use: true }]);
    let sent = h.sends();
    assert_eq!(login_nick(&sent), Some("ana"));
    assert_eq!(sent.len(), 1, "the outbox waits for the welcome: {sent:?}");
    h.msg(welcome("ana"));
    let sent = h.sends();
    assert!(matches!(&sent[0], ClientMsg::Join { room } if room == "rust"), "{sent:?}");
    assert!(matches!(&sent[1], ClientMsg::Say { id: 1, .. }), "{sent:?}");
}

#[test]
fn refused_nickname_then_another() {
    let mut h = Harness::new(false, Some(key(1)));
    h.s.on_connected(h.now, key(1));
    assert_eq!(h.events()[1], ClientEvent::Connected { server_key: key(1), first_use: false });
    assert_eq!(
        h.actions(),
        [Action::Connect { server_key: Some(key(1)), to: server() }],
        "a known key is not written again"
    );
    h.sends();
    h.msg(ServerMsg::LoginRefused { code: RefuseCode::NickTaken, text: "taken".into() });
    assert!(h.actions().is_empty(), "the connection stays up for another try");
    assert!(matches!(h.events()[..], [ClientEvent::Server(ServerMsg::LoginRefused { .. })]));
    h.s.on_request(h.now, Request::Login("ana2".into()));
    assert_eq!(login_nick(&h.sends()), Some("ana2"));
    h.msg(welcome("ana2"));
    assert_eq!(h.s.nick(), "ana2");
}

#[test]
fn a_wrong_password_gives_up() {
    let mut h = Harness::new(true, Some(key(1)));
    h.s.on_connected(h.now, key(1));
    h.sends();
    h.events();
    h.actions();
    h.msg(ServerMsg::LoginRefused { code: RefuseCode::BadPassword, text: "wrong".into() });
    assert!(matches!(&h.actions()[..], [Action::Close { goodbye: None, .. }]));
    h.s.on_closed(h.now, &CloseReason::Local { code: 0 });
    let events = h.events();
    assert_eq!(events.last(), Some(&ClientEvent::Closed { reason: "login refused: wrong".into() }));
    assert_eq!(h.actions(), [Action::Stop]);
    assert!(h.s.is_stopped());
}

#[test]
fn resume_after_reconnect_sends_the_cursors() {
    let mut h = Harness::logged_in(true);
    h.msg(joined("lobby", 10));
    h.msg(joined("rust", 3));
    h.msg(line("lobby", 11));
    h.msg(line("lobby", 12));
    h.msg(line("rust", 4));
    h.s.on_closed(h.now, &CloseReason::TimedOut);
    assert!(h.events().contains(&ClientEvent::Disconnected {
        reason: "no packet from the peer within the idle timeout".into(),
        reconnecting: true
    }));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.events(), [ClientEvent::Connecting { attempt: 1 }]);
    assert_eq!(h.actions(), [Action::Connect { server_key: Some(key(1)), to: server() }]);
    h.s.on_connected(h.now, key(1));
    let sent = h.sends();
    let Some(ClientMsg::Login { resume, .. }) = sent.first() else { panic!("no login: {sent:?}") };
    assert_eq!(resume, &[("lobby".to_owned(), 12), ("rust".to_owned(), 4)]);
    // The resumed rooms are rejoined by the server, not asked for again.
    h.msg(welcome("ana"));
    assert!(h.sends().is_empty());
}

#[test]
fn duplicates_at_the_seam_are_dropped() {
    let mut h = Harness::logged_in(true);
    h.msg(joined("lobby", 5));
    h.events();
    h.s.on_request(h.now, say(7));
    h.sends();
    h.msg(ServerMsg::Ack { id: 7, room: "lobby".into(), seq: 7 });
    let events = h.events();
    assert!(
        matches!(&events[0], ClientEvent::Delivered { id: 7, msg: ServerMsg::Line(l) } if l.seq == 7 && l.from == "ana" && l.time_ms == 1_005_000)
    );
    h.msg(line("lobby", 6));
    // Our own line, replayed by a catch-up, and a line seen twice.
    h.msg(line("lobby", 7));
    h.msg(line("lobby", 6));
    h.msg(line("lobby", 8));
    let shown: Vec<u64> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            ClientEvent::Server(ServerMsg::Line(l)) => Some(l.seq),
            _ => None,
        })
        .collect();
    assert_eq!(shown, [6, 8]);
    // Private messages by their stored sequence number.
    let private = |seq| ServerMsg::Private {
        id: 0,
        seq,
        from: "bob".into(),
        to: "ana".into(),
        text: "psst".into(),
        time_ms: 0,
        history: false,
    };
    h.msg(private(3));
    h.msg(private(3));
    assert_eq!(h.events().len(), 1);
}

#[test]
fn without_limits_the_server_cannot_tell_a_resend_so_lines_are_reported() {
    let mut h = Harness::logged_in(true);
    for id in 1..=2 {
        h.s.on_request(h.now, say(id));
    }
    h.sends();
    h.msg(ServerMsg::Ack { id: 2, room: "lobby".into(), seq: 1 });
    h.events();
    h.s.on_closed(h.now, &CloseReason::Reset);
    assert_eq!(h.events()[0], ClientEvent::Unconfirmed { ids: vec![1] });
    h.advance(Duration::from_secs(1));
    h.s.on_connected(h.now, key(1));
    h.msg(welcome("ana"));
    let sent = h.sends();
    assert!(!sent.iter().any(|m| matches!(m, ClientMsg::Say { .. })), "not resent: {sent:?}");
}

#[test]
fn unacked_lines_are_resent_after_a_reconnect_with_the_same_ids() {
    let mut h = Harness::logged_in(true);
    // An issue-10 server: it sends Limits and knows origins.
    h.msg(ServerMsg::Limits { max_line_bytes: 4096, rate_burst: 5, rate_milli: 2000 });
    let origin = h.s.origin();
    assert_ne!(origin, 0);
    // Encodable: a varint holds at most 62 bits.
    assert!((0..100).map(|_| random_origin()).all(|o| o != 0 && o < 1 << 62));
    let _ = h.sends();
    for id in 1..=3 {
        h.s.on_request(h.now, say(id));
    }
    assert_eq!(h.sends().len(), 3);
    h.msg(ServerMsg::Ack { id: 2, room: "lobby".into(), seq: 1 });
    h.msg(ServerMsg::Error { id: 3, code: udpchat_chat::ErrorCode::NotInRoom, text: "no".into() });
    h.events();
    h.s.on_closed(h.now, &CloseReason::Reset);
    let events = h.events();
    assert!(
        !events.iter().any(|e| matches!(e, ClientEvent::Unconfirmed { .. })),
        "not reported while it can still be resent: {events:?}"
    );
    // A line typed while away waits behind the resend.
    h.s.on_request(h.now, say(4));
    h.advance(Duration::from_secs(1));
    h.s.on_connected(h.now, key(1));
    let login = h.sends();
    assert!(
        matches!(&login[..], [ClientMsg::Login { origin: o, .. }] if *o == origin),
        "the same origin on every login: {login:?}"
    );
    h.msg(welcome("ana"));
    let sent = h.sends();
    let said: Vec<u64> = sent
        .iter()
        .filter_map(|m| match m {
            ClientMsg::Say { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(said, [1, 4], "{sent:?}");
    // The rooms come first (the server handles requests in order).
    assert!(matches!(&sent[0], ClientMsg::Join { room } if room == "rust"), "{sent:?}");
    // seq 0: the server had stored it before the reconnect; delivered.
    h.msg(ServerMsg::Ack { id: 1, room: "lobby".into(), seq: 0 });
    assert!(h.events().iter().any(|e| matches!(e, ClientEvent::Delivered { id: 1, .. })));
    assert_eq!(h.s.seen.history_before("lobby"), 1, "seq 0 is not a line to page back from");
}

#[test]
fn requests_are_paced_to_the_limits() {
    let mut h = Harness::logged_in(true);
    for id in 1..=20 {
        h.s.on_request(h.now, say(id));
    }
    // No Limits yet: the reference defaults, a burst of 5 then 2 per second.
    assert_eq!(h.sends().len(), 5);
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_millis(500)));
    h.advance(Duration::from_millis(500));
    assert_eq!(h.sends().len(), 1);
    // The server raises the rate (an account for a bot): 10 per second.
    h.msg(ServerMsg::Limits { max_line_bytes: 4096, rate_burst: 5, rate_milli: 10_000 });
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_millis(100)));
    h.advance(Duration::from_secs(1));
    assert_eq!(h.sends().len(), 5, "at most a burst after a quiet second");
    // Unlimited: everything else at once, in order.
    h.msg(ServerMsg::Limits { max_line_bytes: 4096, rate_burst: 0, rate_milli: 0 });
    let ids: Vec<u64> = h.sends().iter().filter_map(outbox::request_id).collect();
    assert_eq!(ids, (12..=20).collect::<Vec<_>>());
}

#[test]
fn a_full_outbox_holds_the_front_end_back_instead_of_dropping() {
    let mut h = Harness::logged_in(true);
    let mut id = 0;
    while h.s.accepts_requests() {
        id += 1;
        h.s.on_request(h.now, say(id));
        h.sends();
    }
    assert_eq!(id as usize, MAX_OUTBOX + 5, "the burst went, the rest waits");
    h.advance(Duration::from_millis(500));
    h.sends();
    assert!(h.s.accepts_requests(), "room again once one went");
}

#[test]
fn over_long_lines_are_refused_here_and_the_session_goes_on() {
    let mut h = Harness::logged_in(true);
    for (id, len) in [(1, 4097), (2, 70_000)] {
        h.s.on_request(
            h.now,
            Request::Send(ClientMsg::Say { id, room: "rust".into(), text: "x".repeat(len), action: false }),
        );
        let events = h.events();
        assert!(
            matches!(&events[..], [ClientEvent::Server(ServerMsg::Error { id: i, code: udpchat_chat::ErrorCode::LineTooLong, text })]
                if *i == id && text.contains("4096") && text.contains(&len.to_string())),
            "{events:?}"
        );
    }
    assert!(h.sends().is_empty());
    h.s.on_request(h.now, say(3));
    assert_eq!(h.sends().len(), 1);
    // The server's own limit replaces the default.
    h.msg(ServerMsg::Limits { max_line_bytes: 10, rate_burst: 5, rate_milli: 2000 });
    h.events();
    h.s.on_request(h.now, Request::Send(ClientMsg::Private { id: 4, to: "bob".into(), text: "x".repeat(11) }));
    assert!(
        matches!(&h.events()[..], [ClientEvent::Server(ServerMsg::Error { id: 4, text, .. })] if text.contains("10 bytes"))
    );
}

#[test]
fn no_answer_is_said_after_a_few_seconds() {
    let mut h = Harness::new(true, None);
    h.events();
    assert_eq!(h.s.poll_timeout(), Some(h.now + NO_ANSWER));
    h.advance(NO_ANSWER);
    let events = h.events();
    assert!(
        matches!(&events[..], [ClientEvent::Note(t)] if t.contains("no answer from 127.0.0.1:1") && t.contains("is the server running")),
        "{events:?}"
    );
    h.advance(NO_ANSWER);
    assert!(h.events().is_empty(), "once");
}

#[test]
fn backoff_grows_and_final_codes_give_up() {
    let mut h = Harness::new(true, Some(key(1)));
    h.events();
    h.actions();
    let mut waits = Vec::new();
    for _ in 0..5 {
        h.s.on_closed(h.now, &CloseReason::HandshakeTimedOut);
        h.events();
        let until = h.s.poll_timeout().expect("a backoff deadline");
        waits.push((until - h.now).as_secs());
        h.advance((until - h.now).checked_sub(Duration::from_millis(1)).expect("a deadline in the future"));
        assert!(h.actions().is_empty(), "not before the deadline");
        h.advance(Duration::from_millis(1));
        assert_eq!(h.actions(), [Action::Connect { server_key: Some(key(1)), to: server() }]);
    }
    assert_eq!(waits, [2, 4, 8, 10, 10]);
    // A session that logs in starts the count over.
    h.s.on_connected(h.now, key(1));
    h.msg(welcome("ana"));
    h.s.on_closed(h.now, &CloseReason::TimedOut);
    assert_eq!(h.s.poll_timeout(), Some(h.now + Duration::from_secs(1)));
    h.advance(Duration::from_secs(1));
    assert!(h.events().contains(&ClientEvent::Connecting { attempt: 1 }));
    // Kicked: no more attempts.
    h.actions();
    h.s.on_closed(h.now, &CloseReason::Peer { code: close::KICKED, reason: "bye".into() });
    let events = h.events();
    assert!(matches!(&events[0], ClientEvent::Disconnected { reconnecting: false, .. }), "{events:?}");
    assert!(matches!(events.last(), Some(ClientEvent::Closed { .. })));
    assert_eq!(h.actions(), [Action::Stop]);
}

#[test]
fn without_reconnect_the_first_loss_stops() {
    let mut h = Harness::logged_in(false);
    h.s.on_closed(h.now, &CloseReason::TimedOut);
    assert!(matches!(&h.events()[0], ClientEvent::Disconnected { reconnecting: false, .. }));
    assert!(h.s.is_stopped());
}

#[test]
fn a_mismatched_key_is_refused() {
    let mut h = Harness::new(true, Some(key(1)));
    h.events();
    h.actions();
    h.s.on_connected(h.now, key(2));
    assert!(h.events().is_empty(), "never reported as connected");
    assert!(h.s.next_send(h.now).is_none(), "no login to a stranger");
    let actions = h.actions();
    assert!(matches!(&actions[..], [Action::Close { reason, .. }] if reason.contains("key changed")), "{actions:?}");
    h.s.on_closed(h.now, &CloseReason::Local { code: 0 });
    assert!(matches!(h.events().last(), Some(ClientEvent::Closed { reason }) if reason.contains("key changed")));
    assert!(h.s.is_stopped());

    // Refused by the protocol (the usual way): the file and line are named.
    let mut options = crate::ClientOptions::new("chat.example:7667", "ana");
    options.known_hosts = Some("/home/ana/.config/udpchat/known_servers".into());
    let mut s = Session::new(SessionConfig::new(&options, Some(key(1))), h.now, 0);
    s.on_resolved(h.now, vec![("chat.example:7667".into(), Ok(vec!["192.0.2.1:7667".parse().unwrap()]))]);
    s.on_closed(h.now, &CloseReason::KeyMismatch { expected: key(1), got: key(2) });
    let events: Vec<ClientEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    let want = format!("the line \"chat.example:7667 {}\" in /home/ana/.config/udpchat/known_servers", key(1));
    assert!(matches!(events.last(), Some(ClientEvent::Closed { reason }) if reason.contains(&want)), "{events:?}");
}

#[test]
fn quit_waits_for_the_lines_then_says_goodbye() {
    let mut h = Harness::logged_in(true);
    for id in 1..=7 {
        h.s.on_request(h.now, say(id));
    }
    h.s.on_request(h.now, Request::Quit { reason: "bye".into(), within: QUIT_WAIT });
    assert!(h.s.is_quitting());
    assert!(matches!(&h.events()[..], [ClientEvent::Note(t)] if t.contains("7 line(s)")));
    h.s.on_request(h.now, say(8));
    assert_eq!(h.sends().len(), 5, "paced as before; nothing taken after the quit");
    for id in 1..=5 {
        h.msg(ServerMsg::Ack { id, room: "lobby".into(), seq: id });
    }
    assert!(h.actions().is_empty(), "lines 6 and 7 still to go");
    h.advance(Duration::from_secs(1));
    assert_eq!(h.sends().len(), 2);
    h.msg(ServerMsg::Ack { id: 6, room: "lobby".into(), seq: 6 });
    assert!(h.actions().is_empty());
    h.msg(ServerMsg::Ack { id: 7, room: "lobby".into(), seq: 7 });
    assert_eq!(
        h.actions(),
        [Action::Close { goodbye: Some(ClientMsg::Quit { reason: "bye".into() }), reason: "quit".into() }]
    );
    h.events();
    h.s.on_closed(h.now, &CloseReason::Local { code: 0 });
    assert_eq!(h.events(), [ClientEvent::Closed { reason: "you left the server".into() }]);
}

#[test]
fn quit_gives_up_at_its_deadline_and_names_the_lines_left() {
    let mut h = Harness::logged_in(true);
    h.msg(ServerMsg::Limits { max_line_bytes: 4096, rate_burst: 5, rate_milli: 2000 });
    for id in 1..=7 {
        h.s.on_request(h.now, say(id));
    }
    h.sends();
    h.msg(ServerMsg::Ack { id: 1, room: "lobby".into(), seq: 1 });
    h.s.on_request(h.now, Request::Quit { reason: String::new(), within: Duration::from_secs(2) });
    h.events();
    // The server stalls; a connection lost meanwhile is retried.
    h.s.on_closed(h.now, &CloseReason::TimedOut);
    assert!(!h.s.is_stopped());
    h.events();
    // Two lines were still queued: 1 s at 2 per second, then the 2 s.
    h.advance(Duration::from_millis(2999));
    assert!(!h.s.is_stopped());
    h.events();
    h.actions();
    h.advance(Duration::from_millis(1));
    // Meanwhile a new attempt had started (unanswered): closed, and the
    // client stops at once.
    assert!(matches!(&h.actions()[..], [Action::Close { goodbye: None, .. }, Action::Stop]));
    let events = h.events();
    assert_eq!(events[0], ClientEvent::Unconfirmed { ids: vec![2, 3, 4, 5, 6, 7] });
    assert!(matches!(events.last(), Some(ClientEvent::Closed { .. })));
    assert!(h.s.is_stopped());

    // Nothing pending: at once.
    let mut h = Harness::logged_in(true);
    h.s.on_request(h.now, Request::Quit { reason: String::new(), within: QUIT_WAIT });
    assert!(matches!(&h.actions()[..], [Action::Close { goodbye: Some(_), .. }]));
    // While waiting to reconnect, with nothing pending: stop at once.
    let mut h = Harness::logged_in(true);
    h.s.on_closed(h.now, &CloseReason::TimedOut);
    h.events();
    h.s.on_request(h.now, Request::Quit { reason: String::new(), within: QUIT_WAIT });
    assert_eq!(h.events(), [ClientEvent::Closed { reason: "quit".into() }]);
    assert_eq!(h.actions(), [Action::Stop]);
}

#[test]
fn rtt_is_measured_while_logged_in() {
    let mut h = Harness::logged_in(true);
    assert_eq!(h.s.poll_timeout(), Some(h.now + RTT_REPORT));
    h.advance(RTT_REPORT);
    assert_eq!(h.actions(), [Action::MeasureRtt]);
    h.s.rtt(Duration::from_millis(3));
    assert_eq!(h.events(), [ClientEvent::Rtt(Duration::from_millis(3))]);
}
