//! Several server addresses, driven by hand: the core walks them in turn
//! when one does not answer or stops answering, resolves names again for
//! each round, keeps the key pinned for the list, and resumes on the next
//! server with its rooms and unanswered lines.

use std::net::SocketAddr;

use super::*;

const TWO: &str = "127.0.0.1:1, 127.0.0.1:2";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn note(text: &str) -> ClientEvent {
    ClientEvent::Note(text.into())
}

fn harness(list: &str, reconnect: bool, server_key: Option<PublicKey>) -> Harness {
    let mut options = crate::ClientOptions::new(list, "ana");
    options.reconnect = reconnect;
    options.rooms = vec!["rust".into()];
    options.known_hosts = Some("/home/ana/.config/udpchat/known_servers".into());
    let now = Instant::now();
    Harness { s: Session::new(SessionConfig::new(&options, server_key), now, 1_000_000), now }
}

fn shown_lines(events: &[ClientEvent]) -> Vec<u64> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Server(ServerMsg::Line(l)) => Some(l.seq),
            _ => None,
        })
        .collect()
}

#[test]
fn a_first_connect_walks_the_list_until_one_answers() {
    let mut h = harness(TWO, false, None);
    assert_eq!(h.events(), [ClientEvent::Connecting { attempt: 1 }, note("trying 127.0.0.1:1")]);
    assert_eq!(h.actions(), [Action::Connect { server_key: None, to: addr("127.0.0.1:1") }]);
    h.advance(NO_ANSWER.checked_sub(Duration::from_millis(1)).expect("longer than 1 ms"));
    assert!(h.actions().is_empty());
    h.advance(Duration::from_millis(1));
    assert_eq!(
        h.actions(),
        [
            Action::Close { goodbye: None, reason: "no answer".into() },
            Action::Connect { server_key: None, to: addr("127.0.0.1:2") }
        ]
    );
    assert_eq!(
        h.events(),
        [ClientEvent::Connecting { attempt: 2 }, note("no answer from 127.0.0.1:1 — trying 127.0.0.1:2")]
    );
    h.s.on_connected(h.now, key(1));
    assert_eq!(h.actions(), [Action::RememberKey(key(1))]);
    assert_eq!(login_nick(&h.sends()), Some("ana"));
}

#[test]
fn the_last_address_of_a_round_keeps_trying_and_without_reconnect_that_is_the_end() {
    let mut h = harness(TWO, false, None);
    h.events();
    h.advance(NO_ANSWER);
    h.events();
    h.actions();
    // Nothing left to move on to: the handshake goes on, the user is told.
    h.advance(NO_ANSWER);
    assert!(h.actions().is_empty());
    let events = h.events();
    assert!(
        matches!(&events[..], [ClientEvent::Note(t)] if t.starts_with("no answer from 127.0.0.1:2 — is the server running")),
        "{events:?}"
    );
    h.s.on_closed(h.now, &CloseReason::HandshakeTimedOut);
    let events = h.events();
    assert!(matches!(&events[0], ClientEvent::Disconnected { reconnecting: false, .. }), "{events:?}");
    assert!(h.s.is_stopped());
}

#[test]
fn a_server_that_stops_answering_is_left_for_the_next_with_the_rooms_and_lines() {
    let mut h = harness(TWO, true, None);
    h.events();
    h.actions();
    h.s.on_connected(h.now, key(1));
    assert_eq!(h.actions(), [Action::RememberKey(key(1))], "first use: pinned for the list");
    h.msg(welcome("ana"));
    h.msg(ServerMsg::Limits { max_line_bytes: 4096, rate_burst: 0, rate_milli: 0 });
    h.msg(joined("lobby", 3));
    h.msg(joined("rust", 5));
    h.msg(line("rust", 6));
    h.sends();
    h.s.on_request(h.now, say(1));
    assert_eq!(h.sends().len(), 1);
    let origin = h.s.origin();
    h.events();

    // The first server dies: the next address at once, under the same key.
    h.s.on_closed(h.now, &CloseReason::TimedOut);
    let events = h.events();
    assert_eq!(
        events[1..],
        [ClientEvent::Connecting { attempt: 1 }, note("no answer from 127.0.0.1:1 — trying 127.0.0.1:2")]
    );
    assert!(matches!(&events[0], ClientEvent::Disconnected { reconnecting: true, .. }), "{events:?}");
    assert_eq!(h.actions(), [Action::Connect { server_key: Some(key(1)), to: addr("127.0.0.1:2") }]);
    h.s.on_connected(h.now, key(1));
    assert!(h.actions().is_empty(), "the key is known for every address of the list");
    assert_eq!(h.events(), [ClientEvent::Connected { server_key: key(1), first_use: false }]);
    let login = h.sends();
    let Some(ClientMsg::Login { resume, origin: o, .. }) = login.first() else { panic!("no login: {login:?}") };
    assert_eq!(resume, &[("lobby".to_owned(), 3), ("rust".to_owned(), 6)]);
    assert_eq!(*o, origin, "the same origin, so the line is stored once");
    h.msg(welcome("ana"));
    let sent = h.sends();
    assert!(matches!(&sent[..], [ClientMsg::Say { id: 1, .. }]), "resent with its id: {sent:?}");

    // The new server catches up across the seam: nothing shows twice.
    h.msg(joined("rust", 8));
    h.msg(line("rust", 6));
    h.msg(line("rust", 7));
    h.msg(ServerMsg::Ack { id: 1, room: "rust".into(), seq: 8 });
    h.msg(line("rust", 8));
    let events = h.events();
    assert_eq!(shown_lines(&events), [7]);
    let delivered: Vec<&ClientEvent> = events.iter().filter(|e| matches!(e, ClientEvent::Delivered { .. })).collect();
    assert!(matches!(&delivered[..], [ClientEvent::Delivered { id: 1, .. }]), "{events:?}");
}

#[test]
fn without_reconnect_a_loss_after_logging_in_ends_even_with_addresses_left() {
    let mut h = harness(TWO, false, Some(key(1)));
    h.s.on_connected(h.now, key(1));
    h.msg(welcome("ana"));
    h.events();
    h.s.on_closed(h.now, &CloseReason::TimedOut);
    assert!(matches!(&h.events()[0], ClientEvent::Disconnected { reconnecting: false, .. }));
    assert!(h.s.is_stopped());
}

#[test]
fn each_round_resolves_again_and_the_server_that_died_goes_last() {
    let mut h = harness("a.example:1,b.example:2", true, Some(key(1)));
    assert!(h.events().is_empty(), "nothing to try before the names are resolved");
    assert_eq!(h.actions(), [Action::Resolve]);
    let resolved = |b: &str| {
        vec![("a.example:1".to_owned(), Ok(vec![addr("10.0.0.1:1")])), ("b.example:2".to_owned(), Ok(vec![addr(b)]))]
    };
    h.s.on_resolved(h.now, resolved("10.0.0.2:2"));
    assert_eq!(h.events(), [ClientEvent::Connecting { attempt: 1 }, note("trying a.example:1 (10.0.0.1:1)")]);
    assert_eq!(h.actions(), [Action::Connect { server_key: Some(key(1)), to: addr("10.0.0.1:1") }]);
    h.s.on_connected(h.now, key(1));
    h.msg(welcome("ana"));
    h.events();
    h.s.on_closed(h.now, &CloseReason::Reset);
    let events = h.events();
    assert!(
        matches!(events.last(), Some(ClientEvent::Note(t)) if t.starts_with("a.example:1 (10.0.0.1:1): the server no longer knows") && t.ends_with("— trying b.example:2 (10.0.0.2:2)")),
        "{events:?}"
    );
    assert_eq!(h.actions(), [Action::Connect { server_key: Some(key(1)), to: addr("10.0.0.2:2") }]);
    // b is silent too; it is the last of the round, so the protocol's own
    // handshake timeout ends it, then the backoff, then a new lookup.
    h.advance(NO_ANSWER);
    assert!(h.events().is_empty(), "the servers answered before: nothing to say");
    h.s.on_closed(h.now, &CloseReason::HandshakeTimedOut);
    assert!(matches!(&h.events()[..], [ClientEvent::Disconnected { reconnecting: true, .. }]));
    let wait = h.s.poll_timeout().expect("a backoff") - h.now;
    h.advance(wait);
    assert_eq!(h.actions(), [Action::Resolve]);
    // b's record changed meanwhile; a, which died, now comes last.
    h.s.on_resolved(h.now, resolved("10.0.0.3:2"));
    assert_eq!(h.actions(), [Action::Connect { server_key: Some(key(1)), to: addr("10.0.0.3:2") }]);
    let events = h.events();
    assert_eq!(events[1], note("no answer from b.example:2 (10.0.0.2:2) — trying b.example:2 (10.0.0.3:2)"));
}

#[test]
fn a_different_key_on_another_address_is_the_key_changed_error() {
    let mut h = harness(TWO, true, None);
    h.actions();
    h.s.on_connected(h.now, key(1));
    h.msg(welcome("ana"));
    h.events();
    h.s.on_closed(h.now, &CloseReason::TimedOut);
    assert_eq!(
        h.actions(),
        [Action::RememberKey(key(1)), Action::Connect { server_key: Some(key(1)), to: addr("127.0.0.1:2") }]
    );
    h.events();
    // The protocol refuses the other key itself: final, naming the address
    // and the list's line in the known-servers file.
    h.s.on_closed(h.now, &CloseReason::KeyMismatch { expected: key(1), got: key(2) });
    let events = h.events();
    let want = format!("the line \"127.0.0.1:1,127.0.0.1:2 {}\" in /home/ana/.config/udpchat/known_servers", key(1));
    assert!(
        matches!(events.last(), Some(ClientEvent::Closed { reason }) if reason.starts_with("127.0.0.1:2: the server's key changed") && reason.contains(&want)),
        "{events:?}"
    );
    assert!(h.s.is_stopped());
}

#[test]
fn a_quit_while_the_names_are_resolved_stops_at_once() {
    let mut h = harness("chat.example:7667", true, None);
    assert_eq!(h.actions(), [Action::Resolve]);
    h.s.on_request(h.now, Request::Quit { reason: String::new(), within: QUIT_WAIT });
    assert_eq!(h.events(), [ClientEvent::Closed { reason: "quit".into() }]);
    assert_eq!(h.actions(), [Action::Stop]);
    h.s.on_resolved(h.now, vec![("chat.example:7667".into(), Ok(vec![addr("10.0.0.1:7667")]))]);
    assert!(h.actions().is_empty(), "too late: nothing is opened");
}

#[test]
fn a_name_that_resolves_to_nothing_waits_for_the_next_round() {
    let mut h = harness("chat.example:7667", true, None);
    h.actions();
    h.s.on_resolved(h.now, vec![("chat.example:7667".into(), Err("no such host".into()))]);
    let events = h.events();
    assert_eq!(events[0], note("cannot resolve chat.example:7667: no such host"));
    assert!(
        matches!(&events[1], ClientEvent::Disconnected { reconnecting: true, reason } if reason.contains("no address"))
    );
    assert!(h.actions().is_empty());
    let wait = h.s.poll_timeout().expect("a backoff") - h.now;
    h.advance(wait);
    assert_eq!(h.actions(), [Action::Resolve]);
}
