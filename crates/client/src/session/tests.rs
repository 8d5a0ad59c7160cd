//! The session core driven by hand: no socket, no task, no clock. Each
//! test plays the connection's and the front end's part and checks what
//! the core sends, asks for and reports.

use std::time::{Duration, Instant};

use udpchat_chat::{ClientMsg, Line, LineKind, RefuseCode, ServerMsg, close};
use udpchat_proto::{CloseReason, PublicKey, ServerKey};

use super::*;

fn key(n: u8) -> PublicKey {
    ServerKey::generate([n; 32]).public
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
        while let Some(m) = self.s.next_send() {
            v.push(m.clone());
            self.s.sent();
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
    assert_eq!(h.actions(), [Action::Connect { server_key: None }]);
    assert!(h.s.next_send().is_none(), "nothing before the handshake");
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
    assert_eq!(h.actions(), [Action::Connect { server_key: Some(key(1)) }], "a known key is not written again");
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
    assert_eq!(h.actions(), [Action::Connect { server_key: Some(key(1)) }]);
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
        matches!(&events[0], ClientEvent::Delivered { id: 7, msg: ServerMsg::Line(l) } if l.seq == 7 && l.from == "ana" && l.time_ms == 1_000_000)
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
fn unacked_lines_are_reported_after_a_disconnect() {
    let mut h = Harness::logged_in(true);
    for id in 1..=3 {
        h.s.on_request(h.now, say(id));
    }
    assert_eq!(h.sends().len(), 3);
    h.msg(ServerMsg::Ack { id: 2, room: "lobby".into(), seq: 1 });
    h.msg(ServerMsg::Error { id: 3, code: udpchat_chat::ErrorCode::NotInRoom, text: "no".into() });
    h.events();
    h.s.on_closed(h.now, &CloseReason::Reset);
    let events = h.events();
    assert_eq!(events[0], ClientEvent::Unconfirmed { ids: vec![1] });
    // Lines queued while away go out after the next login.
    h.s.on_request(h.now, say(4));
    h.advance(Duration::from_secs(1));
    h.s.on_connected(h.now, key(1));
    h.sends();
    h.msg(welcome("ana"));
    assert!(matches!(h.sends().last(), Some(ClientMsg::Say { id: 4, .. })));
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
        assert_eq!(h.actions(), [Action::Connect { server_key: Some(key(1)) }]);
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
    assert!(h.s.next_send().is_none(), "no login to a stranger");
    let actions = h.actions();
    assert!(matches!(&actions[..], [Action::Close { reason, .. }] if reason.contains("key changed")), "{actions:?}");
    h.s.on_closed(h.now, &CloseReason::Local { code: 0 });
    assert!(matches!(h.events().last(), Some(ClientEvent::Closed { reason }) if reason.contains("key changed")));
    assert!(h.s.is_stopped());
}

#[test]
fn quit_says_goodbye_after_the_outbox() {
    let mut h = Harness::logged_in(true);
    h.s.on_request(h.now, say(1));
    h.s.on_request(h.now, Request::Quit("bye".into()));
    assert!(h.s.is_quitting());
    // The line goes first, then the goodbye with the close.
    assert!(matches!(&h.sends()[..], [ClientMsg::Say { id: 1, .. }]));
    assert_eq!(
        h.actions(),
        [Action::Close { goodbye: Some(ClientMsg::Quit { reason: "bye".into() }), reason: "quit".into() }]
    );
    // An answer that arrives while closing still counts.
    h.s.on_request(h.now, say(2));
    h.sends();
    h.msg(ServerMsg::Ack { id: 1, room: "lobby".into(), seq: 1 });
    assert!(matches!(h.events()[0], ClientEvent::Delivered { id: 1, .. }));
    h.s.on_closed(h.now, &CloseReason::Local { code: 0 });
    let events = h.events();
    assert_eq!(events, [ClientEvent::Closed { reason: "you left the server".into() }]);

    // While waiting to reconnect: stop at once.
    let mut h = Harness::logged_in(true);
    h.s.on_closed(h.now, &CloseReason::TimedOut);
    h.events();
    h.s.on_request(h.now, Request::Quit(String::new()));
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
