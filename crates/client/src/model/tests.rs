//! The client model fed with events by hand: what each front end would
//! show, with no screen and no network.

use std::time::Duration;

use udpchat_chat::{ErrorCode, Line, LineKind, NoticeKind, RefuseCode, ServerMsg};

use super::*;

fn server(msg: ServerMsg) -> ClientEvent {
    ClientEvent::Server(msg)
}

fn joined(room: &str, members: &[&str]) -> ClientEvent {
    server(ServerMsg::Joined {
        room: room.into(),
        head: 0,
        topic: String::new(),
        members: members.iter().map(|s| s.to_string()).collect(),
    })
}

fn notice(room: &str, kind: NoticeKind, nick: &str, text: &str) -> ClientEvent {
    server(ServerMsg::Notice { room: room.into(), kind, nick: nick.into(), text: text.into(), time_ms: 0 })
}

fn line_msg(room: &str, from: &str, text: &str) -> ServerMsg {
    ServerMsg::Line(Line {
        room: room.into(),
        seq: 1,
        time_ms: 0,
        from: from.into(),
        text: text.into(),
        kind: LineKind::Normal,
        history: false,
    })
}

fn line(room: &str, from: &str, text: &str) -> ClientEvent {
    server(line_msg(room, from, text))
}

fn private(from: &str, to: &str, text: &str) -> ServerMsg {
    ServerMsg::Private {
        id: 1,
        seq: 0,
        from: from.into(),
        to: to.into(),
        text: text.into(),
        time_ms: 0,
        history: false,
    }
}

fn welcome(motd: &str) -> ClientEvent {
    server(ServerMsg::Welcome { nick: "ana".into(), server_name: "t".into(), motd: motd.into(), operator: false })
}

/// Logged in as ana, in the lobby with bob, bert and carol.
fn lobby() -> Model {
    let mut m = Model::new("ana", None);
    m.on_event(&welcome(""));
    m.on_event(&joined("lobby", &["ana", "bob", "bert", "Carol"]));
    m
}

fn last_text(c: &Conversation) -> Option<&str> {
    c.lines.back().map(|l| l.text.as_str())
}

#[test]
fn first_join_is_shown_and_members_sorted() {
    let m = lobby();
    assert_eq!(m.current_room(), Some("lobby"));
    assert_eq!(m.current().members, ["ana", "bert", "bob", "Carol"]);
    assert!(m.current().lines.iter().any(|l| l.text.starts_with("you joined #lobby")));
}

#[test]
fn members_follow_notices() {
    let mut m = lobby();
    m.on_event(&joined("rust", &["ana", "bob"]));
    m.on_event(&notice("lobby", NoticeKind::Join, "dave", ""));
    let c = |m: &Model, i: usize| m.conversations()[i].members.clone();
    assert!(c(&m, 1).contains(&"dave".to_owned()));
    m.on_event(&notice("lobby", NoticeKind::Part, "bert", "bye"));
    assert!(!c(&m, 1).contains(&"bert".to_owned()));
    // Room-less: applies to every room we share, and is shown in each.
    m.on_event(&notice("", NoticeKind::Nick, "BOB", "robert"));
    assert!(c(&m, 1).contains(&"robert".to_owned()) && !m.conversations()[1].has_member("bob"));
    assert_eq!(c(&m, 2), ["ana", "robert"]);
    assert_eq!(last_text(&m.conversations()[2]), Some("BOB is now known as robert"));
    m.on_event(&notice("", NoticeKind::Quit, "robert", "later"));
    assert!(!m.conversations()[1].has_member("robert") && !m.conversations()[2].has_member("robert"));
    m.on_event(&notice("", NoticeKind::Timeout, "carol", ""));
    m.on_event(&notice("", NoticeKind::Kick, "dave", "spam"));
    assert_eq!(c(&m, 1), ["ana"]);
    // /who replaces the list.
    m.on_event(&server(ServerMsg::Members { room: "lobby".into(), nicks: vec!["zed".into(), "ana".into()] }));
    assert_eq!(c(&m, 1), ["ana", "zed"]);
    // Our own nickname change.
    m.on_event(&notice("", NoticeKind::Nick, "ana", "anna"));
    assert_eq!(m.nick(), "anna");
    assert_eq!(c(&m, 1), ["anna", "zed"]);
}

#[test]
fn join_switches_when_joined_and_part_removes() {
    let mut m = lobby();
    m.joining("#Rust");
    assert_eq!(m.current_room(), Some("lobby"), "not before the server says so");
    m.on_event(&joined("rust", &["ana"]));
    assert_eq!(m.current_room(), Some("rust"));
    // A rejoin after reconnecting does not move us.
    m.focus(1);
    m.on_event(&joined("rust", &["ana"]));
    assert_eq!(m.current_room(), Some("lobby"));
    m.focus(2);
    m.on_event(&server(ServerMsg::Parted { room: "rust".into() }));
    assert_eq!(m.conversations().len(), 2);
    assert_eq!(m.current_room(), Some("lobby"));
    assert_eq!(last_text(m.current()), Some("you left #rust"));
}

#[test]
fn extra_room_is_shown_first_with_the_key() {
    let mut m = Model::new("ana", Some("#Rust"));
    let server_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".parse().expect("a key");
    m.on_event(&ClientEvent::Connected { server_key, first_use: true });
    m.on_event(&joined("lobby", &["ana"]));
    m.on_event(&joined("rust", &["ana"]));
    assert_eq!(m.current_room(), Some("rust"));
    for c in m.conversations() {
        assert!(c.lines.iter().any(|l| l.text.contains("first visit: server key")), "{:?}", c.target);
    }
    m.on_event(&joined("later", &["ana"]));
    assert!(m.conversations()[3].lines.iter().all(|l| !l.text.contains("server key")));
}

#[test]
fn items_are_routed_and_counted() {
    let mut m = lobby();
    m.on_event(&joined("rust", &["ana"]));
    m.focus(1);
    m.on_event(&line("rust", "bob", "hi ana"));
    m.on_event(&line("rust", "bob", "and all"));
    assert_eq!((m.conversations()[2].unread, m.conversations()[2].mentions), (2, 1));
    m.on_event(&line("lobby", "bob", "hello"));
    assert_eq!(last_text(&m.conversations()[1]), Some("hello"));
    assert_eq!(m.conversations()[1].unread, 0, "on screen");
    // Server-wide: kept in the server conversation and shown where we are.
    m.on_event(&server(ServerMsg::RoomList { rooms: vec![] }));
    assert_eq!(last_text(&m.conversations()[0]), Some("rooms: "));
    assert_eq!(last_text(&m.conversations()[1]), Some("rooms: "));
    // A room we are not in: shown where we are.
    m.on_event(&server(ServerMsg::Members { room: "other".into(), nicks: vec!["x".into()] }));
    assert_eq!(last_text(&m.conversations()[1]), Some("in #other: x"));
    m.focus(2);
    assert_eq!((m.conversations()[2].unread, m.conversations()[2].mentions), (0, 0));
}

#[test]
fn private_messages_have_a_conversation_each() {
    let mut m = lobby();
    m.on_event(&server(private("bob", "ana", "psst")));
    m.on_event(&server(private("Carol", "ana", "hey")));
    m.on_event(&server(private("BOB", "ana", "again")));
    let names: Vec<String> = m.conversations().iter().map(Conversation::name).collect();
    assert_eq!(names, ["(server)", "#lobby", "bob", "Carol"]);
    let bob = &m.conversations()[2];
    assert_eq!((bob.unread, bob.mentions), (2, 2), "a private message is a mention");
    assert_eq!(last_text(bob), Some("again"));
    assert_eq!(m.current_room(), Some("lobby"), "arriving does not move the user");
    // Our reply goes to the same conversation, and shows it.
    m.sending(9, &Input::Msg { to: "bob".into(), text: "yes?".into() });
    assert_eq!(m.current().name(), "bob");
    assert_eq!(m.current().lines.back().map(|l| l.status), Some(Status::Pending));
    m.on_event(&ClientEvent::Delivered { id: 9, msg: private("ana", "bob", "yes?") });
    assert_eq!(m.current().lines.len(), 3, "confirmed in place");
    assert_eq!(m.current().lines.back().map(|l| l.status), Some(Status::Confirmed));
    // A rename follows the conversation.
    m.on_event(&notice("", NoticeKind::Nick, "bob", "robert"));
    assert_eq!(m.current().name(), "robert");
    assert_eq!(last_text(m.current()), Some("bob is now known as robert"));
}

#[test]
fn private_conversations_are_bounded() {
    let mut m = lobby();
    for i in 0..MAX_PRIVATE + 3 {
        m.on_event(&server(private(&format!("n{i}"), "ana", "hi")));
    }
    let private = m.conversations().iter().filter(|c| c.peer().is_some()).count();
    assert_eq!(private, MAX_PRIVATE);
    assert_eq!(m.conversations()[2].name(), "n3", "the oldest went first");
}

#[test]
fn own_lines_are_pending_until_acknowledged() {
    let mut m = lobby();
    let say = |text: &str| Input::Say { room: "lobby".into(), text: text.into(), action: false };
    m.sending(1, &say("one"));
    m.sending(2, &say("two"));
    m.sending(3, &say("three"));
    let status = |m: &Model, text: &str| m.current().lines.iter().find(|l| l.text == text).map(|l| l.status);
    assert_eq!(status(&m, "one"), Some(Status::Pending));
    assert_eq!(m.current().lines.back().and_then(|l| l.nick.as_deref()), Some("ana"));
    m.on_event(&line("lobby", "bob", "between"));
    m.on_event(&ClientEvent::Delivered { id: 1, msg: line_msg("lobby", "ana", "one") });
    assert_eq!(status(&m, "one"), Some(Status::Confirmed));
    let texts: Vec<&str> = m.current().lines.iter().rev().take(4).map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["between", "three", "two", "one"], "confirmed where it was shown");
    m.on_event(&server(ServerMsg::Error { id: 2, code: ErrorCode::RateLimited, text: "slow down".into() }));
    assert_eq!(status(&m, "two"), Some(Status::Refused));
    m.on_event(&ClientEvent::Unconfirmed { ids: vec![3] });
    assert_eq!(status(&m, "three"), Some(Status::Unconfirmed));
    // A delivery nobody announced (a script's `say`) is shown all the same.
    m.on_event(&ClientEvent::Delivered { id: 7, msg: line_msg("lobby", "ana", "from a script") });
    assert_eq!(last_text(m.current()), Some("from a script"));
}

#[test]
fn a_resend_the_server_had_stored_is_shown_once() {
    let mut m = lobby();
    let say = |text: &str| Input::Say { room: "lobby".into(), text: text.into(), action: false };
    m.sending(1, &say("before the crash"));
    m.sending(2, &say("never stored"));
    // After the restart the catch-up brings back the line the server had
    // stored; the resends are then answered: the first as already stored.
    m.on_event(&line("lobby", "ana", "before the crash"));
    let seq0 = |text: &str| {
        let ServerMsg::Line(l) = line_msg("lobby", "ana", text) else { unreachable!() };
        ServerMsg::Line(Line { seq: 0, ..l })
    };
    m.on_event(&ClientEvent::Delivered { id: 1, msg: seq0("before the crash") });
    m.on_event(&ClientEvent::Delivered { id: 2, msg: line_msg("lobby", "ana", "never stored") });
    let shown: Vec<&str> = m.current().lines.iter().map(|l| l.text.as_str()).filter(|t| t.contains("crash")).collect();
    assert_eq!(shown, ["before the crash"], "shown once");
    // A line acknowledged as already stored that the catch-up did not
    // bring back (the client had seen later lines) stays, confirmed.
    m.sending(3, &say("seen past"));
    m.on_event(&ClientEvent::Delivered { id: 3, msg: seq0("seen past") });
    let status = m.current().lines.iter().find(|l| l.text == "seen past").map(|l| l.status);
    assert_eq!(status, Some(Status::Confirmed));
}

#[test]
fn scrollback_is_bounded() {
    let mut m = lobby();
    for i in 0..SCROLLBACK + 10 {
        m.on_event(&line("lobby", "bob", &format!("n{i}")));
    }
    assert_eq!(m.current().lines.len(), SCROLLBACK);
    assert_eq!(last_text(m.current()).map(str::to_owned), Some(format!("n{}", SCROLLBACK + 9)));
    assert!(m.current().added >= (SCROLLBACK + 10) as u64);
}

#[test]
fn refused_nickname_then_another() {
    let mut m = Model::new("bob", None);
    m.on_event(&server(ServerMsg::LoginRefused { code: RefuseCode::NickTaken, text: "taken".into() }));
    assert!(m.awaiting_nick());
    m.retry_nick("bobby");
    assert_eq!(m.nick(), "bobby");
    assert!(!m.awaiting_nick());

    let mut m = Model::new("bob", None);
    m.on_event(&server(ServerMsg::LoginRefused { code: RefuseCode::BadPassword, text: "wrong".into() }));
    m.on_event(&ClientEvent::Closed { reason: "you left the server".into() });
    assert_eq!(m.refused(), Some("wrong"));
    assert_eq!(m.closed(), Some("you left the server"));
}

#[test]
fn connection_state() {
    let mut m = Model::new("ana", None);
    assert_eq!(m.conn().describe(), "connecting…");
    m.on_event(&welcome("hi"));
    m.on_event(&ClientEvent::Rtt(Duration::from_micros(1500)));
    assert_eq!(m.conn().describe(), "connected, rtt 1.5 ms");
    m.on_event(&ClientEvent::Disconnected { reason: "timed out".into(), reconnecting: true });
    m.on_event(&ClientEvent::Connecting { attempt: 1 });
    assert_eq!(m.conn().describe(), "reconnecting (attempt 1)…");
    assert!(m.conversations()[0].lines.iter().any(|l| l.text == "hi"));
    assert_eq!(m.end_reason(), None);
    m.on_event(&ClientEvent::Disconnected { reason: "banned".into(), reconnecting: false });
    assert_eq!(m.end_reason(), Some("banned"));
}

#[test]
fn history_pages_go_above_newer_lines() {
    let mut c = Conversation::new(Target::Room("r".into()));
    let at = |t: u64, text: &str, history: bool| Item {
        time_ms: t,
        room: Some("r".into()),
        nick: Some("bob".into()),
        text: text.into(),
        kind: Kind::Chat,
        seq: 0,
        history,
        id: None,
        status: Status::Confirmed,
    };
    c.push(at(100, "new", false));
    c.push(at(200, "newer", false));
    c.push(at(50, "old", true));
    c.push(at(60, "older page, later line", true));
    let texts: Vec<_> = c.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, vec!["old", "older page, later line", "new", "newer"]);
    assert_eq!(c.added, 2, "a history page does not push the view");
}

#[test]
fn history_lines_of_the_same_millisecond_go_by_sequence_number() {
    let mut c = Conversation::new(Target::Room("r".into()));
    let at = |seq: u64, history: bool| Item {
        time_ms: 7,
        room: Some("r".into()),
        nick: Some("bob".into()),
        text: seq.to_string(),
        kind: Kind::Chat,
        seq,
        history,
        id: None,
        status: Status::Confirmed,
    };
    c.push(at(10, true));
    c.push(at(11, true));
    // An earlier page, oldest first, stamped in the same millisecond.
    c.push(at(3, true));
    c.push(at(4, true));
    let texts: Vec<_> = c.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, vec!["3", "4", "10", "11"]);
    assert_eq!(c.inserted_above, 2);
}

#[test]
fn typed_lines_depend_on_where_the_user_is() {
    let mut m = lobby();
    assert_eq!(
        m.typed("hi"),
        Some(Command::Send(Input::Say { room: "lobby".into(), text: "hi".into(), action: false }))
    );
    assert_eq!(m.typed("/frob"), None);
    assert_eq!(m.current().lines.back().map(|l| l.kind), Some(Kind::Error));
    m.on_event(&server(private("bob", "ana", "psst")));
    m.goto(2);
    assert_eq!(m.typed("hello"), Some(Command::Send(Input::Msg { to: "bob".into(), text: "hello".into() })));
    assert_eq!(m.typed("/kick bob"), None, "no room here");
    m.goto(0);
    assert_eq!(m.typed("hello"), None, "no room here either");
    assert_eq!(m.typed("/join #Rust"), Some(Command::Send(Input::Join("#Rust".into()))));
    m.on_event(&joined("rust", &["ana", "Bert", "bob"]));
    assert_eq!(m.current_room(), Some("rust"));
    assert_eq!(m.nick_candidates("B"), ["Bert", "bob"]);
    assert!(m.nick_candidates("an").is_empty(), "never ourselves");

    let mut m = Model::new("bob", None);
    m.on_event(&server(ServerMsg::LoginRefused { code: RefuseCode::NickTaken, text: "taken".into() }));
    assert_eq!(m.typed("two words"), None);
    assert_eq!(m.typed("bobby"), Some(Command::Login("bobby".into())));
    m.on_event(&ClientEvent::Closed { reason: "gone".into() });
    assert_eq!(m.typed("anything"), Some(Command::Exit));
}

#[test]
fn text_from_the_server_is_made_safe_to_print() {
    let welcome = ClientEvent::Server(ServerMsg::Welcome {
        nick: "ana".into(),
        server_name: "evil\u{202E}txt.exe".into(),
        motd: "line one\n\x1b[2J\x1b]0;title\x07line two".into(),
        operator: false,
    });
    let shown = items(&welcome);
    assert_eq!(shown.len(), 3, "one item per MOTD line: {shown:?}");
    for it in &shown {
        assert!(!it.text.chars().any(safe_text::is_unsafe), "{:?}", it.text);
    }
    let topic = ClientEvent::Server(ServerMsg::Topic { room: "r".into(), topic: "\u{2067}abc\u{2069}\r".into() });
    assert_eq!(items(&topic)[0].text, "topic of #r: \u{FFFD}abc\u{FFFD}\u{FFFD}");
}

#[test]
fn completions_of_commands_rooms_and_nicks() {
    let mut m = lobby();
    m.on_event(&joined("rust", &["ana", "bob"]));
    m.on_event(&joined("rustaceans", &["ana"]));
    assert_eq!(m.completions("/jo", true), ["/join"]);
    assert!(m.completions("/jo", false).is_empty(), "commands only start a line");
    assert_eq!(m.completions("#ru", false), ["#rust", "#rustaceans"]);
    m.goto(1);
    assert_eq!(m.completions("b", false), ["bert", "bob"]);
    assert!(m.completions("a", false).is_empty(), "our own nickname is left out");
}

#[test]
fn scrollback_bound_can_be_raised_and_still_holds() {
    let mut m = lobby();
    m.set_scrollback(SCROLLBACK * 3);
    for i in 0..SCROLLBACK * 4 {
        m.on_event(&line("lobby", "bob", &i.to_string()));
    }
    let c = &m.conversations()[1];
    assert_eq!(c.lines.len(), SCROLLBACK * 3);
    assert_eq!(last_text(c), Some((SCROLLBACK * 4 - 1).to_string().as_str()));
    m.set_scrollback(10);
    assert_eq!(m.conversations()[1].lines.len(), 10);
}

#[test]
fn a_history_page_is_counted_as_inserted_above() {
    let mut m = lobby();
    let mut l = line_msg("lobby", "bob", "now");
    if let ServerMsg::Line(x) = &mut l {
        x.time_ms = 2000;
    }
    m.on_event(&server(l));
    let (added, above) = (m.current().added, m.current().inserted_above);
    let mut old = line_msg("lobby", "bob", "earlier");
    if let ServerMsg::Line(x) = &mut old {
        x.time_ms = 1000;
        x.history = true;
    }
    m.on_event(&server(old));
    assert_eq!(m.current().inserted_above, above + 1);
    assert_eq!(m.current().added, added);
    let pos = |t: &str| m.current().lines.iter().position(|l| l.text == t);
    assert!(pos("earlier") < pos("now"), "the older line goes above");
}
