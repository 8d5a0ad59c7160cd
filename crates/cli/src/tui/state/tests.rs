//! Tests of the terminal client's model: no terminal needed.
use udpchat_client::chat::{Line, LineKind};

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

fn line(room: &str, from: &str, text: &str) -> ClientEvent {
    server(ServerMsg::Line(Line {
        room: room.into(),
        seq: 1,
        time_ms: 0,
        from: from.into(),
        text: text.into(),
        kind: LineKind::Normal,
        history: false,
    }))
}

/// Logged in as ana, in the lobby with bob, bert and carol.
fn lobby() -> State {
    let mut s = State::new("ana", None);
    s.on_event(&server(ServerMsg::Welcome {
        nick: "ana".into(),
        server_name: "t".into(),
        motd: String::new(),
        operator: false,
    }));
    s.on_event(&joined("lobby", &["ana", "bob", "bert", "Carol"]));
    s
}

fn typed(s: &mut State, text: &str) {
    s.input.clear();
    s.input.insert_str(text);
}

#[test]
fn first_join_is_shown_and_members_sorted() {
    let s = lobby();
    assert_eq!(s.current_room(), Some("lobby"));
    assert_eq!(s.buffer().members, ["ana", "bert", "bob", "Carol"]);
    assert!(s.buffer().lines.iter().any(|l| l.text.starts_with("you joined #lobby")));
}

#[test]
fn members_follow_notices() {
    let mut s = lobby();
    s.on_event(&joined("rust", &["ana", "bob"]));
    s.on_event(&notice("lobby", NoticeKind::Join, "dave", ""));
    assert!(s.buffers[1].members.contains(&"dave".to_owned()));
    s.on_event(&notice("lobby", NoticeKind::Part, "bert", "bye"));
    assert!(!s.buffers[1].members.contains(&"bert".to_owned()));
    // Room-less: applies to every room we share, and is shown in each.
    s.on_event(&notice("", NoticeKind::Nick, "BOB", "robert"));
    assert!(s.buffers[1].members.contains(&"robert".to_owned()) && !s.buffers[1].has_member("bob"));
    assert_eq!(s.buffers[2].members, ["ana", "robert"]);
    assert!(s.buffers[2].lines.back().is_some_and(|l| l.text == "BOB is now known as robert"));
    s.on_event(&notice("", NoticeKind::Quit, "robert", "later"));
    assert!(!s.buffers[1].has_member("robert") && !s.buffers[2].has_member("robert"));
    s.on_event(&notice("", NoticeKind::Timeout, "carol", ""));
    s.on_event(&notice("", NoticeKind::Kick, "dave", "spam"));
    assert_eq!(s.buffers[1].members, ["ana"]);
    // /who replaces the list.
    s.on_event(&server(ServerMsg::Members { room: "lobby".into(), nicks: vec!["zed".into(), "ana".into()] }));
    assert_eq!(s.buffers[1].members, ["ana", "zed"]);
    // Our own nickname change.
    s.on_event(&notice("", NoticeKind::Nick, "ana", "anna"));
    assert_eq!(s.nick, "anna");
    assert_eq!(s.buffers[1].members, ["anna", "zed"]);
}

#[test]
fn join_switches_when_joined_and_part_removes() {
    let mut s = lobby();
    typed(&mut s, "/join #Rust");
    assert_eq!(s.submit(), Some(Action::Send(Input::Join("#Rust".into()))));
    assert_eq!(s.current_room(), Some("lobby"), "not before the server says so");
    s.on_event(&joined("rust", &["ana"]));
    assert_eq!(s.current_room(), Some("rust"));
    // A rejoin after reconnecting does not move us.
    s.select(1);
    s.on_event(&joined("rust", &["ana"]));
    assert_eq!(s.current_room(), Some("lobby"));
    s.select(2);
    s.on_event(&server(ServerMsg::Parted { room: "rust".into() }));
    assert_eq!(s.buffers.len(), 2);
    assert_eq!(s.current_room(), Some("lobby"));
    assert!(s.buffer().lines.back().is_some_and(|l| l.text == "you left #rust"));
}

#[test]
fn extra_room_is_shown_first_with_the_key() {
    let mut s = State::new("ana", Some("#Rust"));
    let server_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".parse().expect("a key");
    s.on_event(&ClientEvent::Connected { server_key, first_use: true });
    s.on_event(&joined("lobby", &["ana"]));
    s.on_event(&joined("rust", &["ana"]));
    assert_eq!(s.current_room(), Some("rust"));
    for b in &s.buffers {
        assert!(b.lines.iter().any(|l| l.text.contains("first visit: server key")), "{:?}", b.room);
    }
    s.on_event(&joined("later", &["ana"]));
    assert!(s.buffers[3].lines.iter().all(|l| !l.text.contains("server key")));
}

#[test]
fn items_are_routed_and_never_lost() {
    let mut s = lobby();
    s.on_event(&joined("rust", &["ana"]));
    s.select(1);
    s.on_event(&line("rust", "bob", "hi ana"));
    assert_eq!(s.buffers[2].unread, 1);
    assert!(s.buffers[2].mentioned);
    s.on_event(&line("lobby", "bob", "hello"));
    assert_eq!(s.buffers[1].lines.back().map(|l| l.text.as_str()), Some("hello"));
    // Server-wide: kept in the server buffer and shown where we are.
    s.on_event(&server(ServerMsg::Private {
        id: 1,
        seq: 0,
        from: "bob".into(),
        to: "ana".into(),
        text: "psst".into(),
        time_ms: 0,
        history: false,
    }));
    assert!(s.buffers[0].lines.back().is_some_and(|l| l.text == "psst"));
    assert_eq!(s.buffers[0].unread, 0, "seen in the buffer on screen");
    assert!(s.buffers[1].lines.back().is_some_and(|l| l.text == "psst"));
    // A room we are not in: shown where we are.
    s.on_event(&server(ServerMsg::Members { room: "other".into(), nicks: vec!["x".into()] }));
    assert!(s.buffers[1].lines.back().is_some_and(|l| l.text == "in #other: x"));
    s.select(2);
    assert_eq!(s.buffers[2].unread, 0);
}

#[test]
fn own_lines_come_from_delivered() {
    let mut s = lobby();
    typed(&mut s, "hello all");
    let Some(Action::Send(Input::Say { room, text, .. })) = s.submit() else { panic!("not a Say") };
    assert_eq!((room.as_str(), text.as_str()), ("lobby", "hello all"));
    let before = s.buffer().lines.len();
    let ClientEvent::Server(msg) = line("lobby", "ana", "hello all") else { unreachable!() };
    s.on_event(&ClientEvent::Delivered { id: 1, msg });
    assert_eq!(s.buffer().lines.len(), before + 1);
    assert_eq!(s.buffer().lines.back().and_then(|l| l.nick.as_deref()), Some("ana"));
}

#[test]
fn scrollback_is_bounded_and_scrolled_view_stays() {
    let mut s = lobby();
    s.chat_rows = 11;
    s.scroll_up();
    assert_eq!(s.buffer().scroll, 10);
    for i in 0..SCROLLBACK + 10 {
        s.on_event(&line("lobby", "bob", &format!("n{i}")));
    }
    assert_eq!(s.buffer().lines.len(), SCROLLBACK);
    assert_eq!(s.buffer().lines.back().map(|l| l.text.clone()), Some(format!("n{}", SCROLLBACK + 9)));
    assert_eq!(s.buffer().scroll, 10 + SCROLLBACK + 10);
    s.scroll_down();
    assert_eq!(s.buffer().scroll, SCROLLBACK + 10);
}

#[test]
fn tab_completion_cycles() {
    let mut s = lobby();
    typed(&mut s, "b");
    s.complete();
    assert_eq!(s.input.text(), "bert: ");
    s.complete();
    assert_eq!(s.input.text(), "bob: ");
    s.complete();
    assert_eq!(s.input.text(), "bert: ");
    s.end_completion();
    // Mid-line, case-insensitively, and never ourselves.
    typed(&mut s, "hi ca");
    s.complete();
    assert_eq!(s.input.text(), "hi Carol ");
    typed(&mut s, "an");
    s.complete();
    assert_eq!(s.input.text(), "an");
    // The word before the cursor, not the end of the line.
    typed(&mut s, "bo x");
    s.input.home();
    s.input.right();
    s.input.right();
    s.complete();
    assert_eq!(s.input.text(), "bob:  x");
    assert_eq!(s.input.cursor(), "bob: ".len());
}

#[test]
fn input_editing_is_utf8_safe() {
    let mut i = InputLine::default();
    i.insert_str("héllo wörld 🎉");
    assert_eq!(i.cursor(), i.text().len());
    i.backspace();
    assert_eq!(i.text(), "héllo wörld ");
    i.home();
    i.right();
    i.right();
    assert_eq!(i.cursor(), "hé".len());
    i.backspace();
    assert_eq!(i.text(), "hllo wörld ");
    i.insert('ë');
    assert_eq!(i.text(), "hëllo wörld ");
    i.delete();
    assert_eq!(i.text(), "hëlo wörld ");
    i.end();
    i.left();
    i.left();
    i.left();
    i.delete();
    assert_eq!(i.text(), "hëlo wörd ");
    i.right();
    i.right();
    i.right();
    i.right();
    assert_eq!(i.cursor(), i.text().len());
    i.delete_word();
    assert_eq!(i.text(), "hëlo ");
    i.insert_str("a\tb\n");
    assert_eq!(i.text(), "hëlo a b ");
    i.home();
    i.left();
    i.kill_to_end();
    assert_eq!(i.text(), "");
}

#[test]
fn history_walks_and_is_bounded() {
    let mut s = lobby();
    for l in ["one", "two", "two", "three"] {
        typed(&mut s, l);
        s.submit();
    }
    assert_eq!(s.history.len(), 3);
    assert_eq!(s.history.up("draft"), Some("three"));
    assert_eq!(s.history.up(""), Some("two"));
    assert_eq!(s.history.up(""), Some("one"));
    assert_eq!(s.history.up(""), None);
    assert_eq!(s.history.down().as_deref(), Some("two"));
    assert_eq!(s.history.down().as_deref(), Some("three"));
    assert_eq!(s.history.down().as_deref(), Some("draft"));
    assert_eq!(s.history.down(), None);
    let mut h = History::default();
    for i in 0..HISTORY + 5 {
        h.push(&i.to_string());
    }
    assert_eq!(h.len(), HISTORY);
}

#[test]
fn help_errors_and_server_buffer_stay_local() {
    let mut s = lobby();
    typed(&mut s, "/help");
    assert_eq!(s.submit(), None);
    assert!(s.buffer().lines.iter().any(|l| l.text.starts_with("/join ROOM")));
    typed(&mut s, "/frob");
    assert_eq!(s.submit(), None);
    assert_eq!(s.buffer().lines.back().map(|l| l.kind), Some(Kind::Error));
    s.select(0);
    typed(&mut s, "hello");
    assert_eq!(s.submit(), None);
    typed(&mut s, "/list");
    assert_eq!(s.submit(), Some(Action::Send(Input::List)));
    typed(&mut s, "QUIT");
    assert_eq!(s.submit(), Some(Action::Quit(String::new())));
}

#[test]
fn refused_nickname_is_asked_again() {
    let mut s = State::new("bob", None);
    s.on_event(&server(ServerMsg::LoginRefused { code: RefuseCode::NickTaken, text: "taken".into() }));
    assert!(s.awaiting_nick());
    typed(&mut s, "/quit");
    assert_eq!(s.submit(), Some(Action::Quit(String::new())));
    typed(&mut s, "  ");
    assert_eq!(s.submit(), None);
    typed(&mut s, "bobby");
    assert_eq!(s.submit(), Some(Action::Login("bobby".into())));
    assert_eq!(s.nick, "bobby");
    assert!(!s.awaiting_nick());

    let mut s = State::new("bob", None);
    s.on_event(&server(ServerMsg::LoginRefused { code: RefuseCode::BadPassword, text: "wrong".into() }));
    s.on_event(&ClientEvent::Closed { reason: "you left the server".into() });
    assert_eq!(s.refused.as_deref(), Some("wrong"));
    assert!(s.closed.is_some());
    assert_eq!(s.submit(), Some(Action::Exit));
}

#[test]
fn connection_state() {
    let mut s = State::new("ana", None);
    assert_eq!(s.conn.describe(), "connecting…");
    s.on_event(&server(ServerMsg::Welcome {
        nick: "ana".into(),
        server_name: "t".into(),
        motd: "hi".into(),
        operator: false,
    }));
    s.on_event(&ClientEvent::Rtt(Duration::from_micros(1500)));
    assert_eq!(s.conn.describe(), "connected, rtt 1.5 ms");
    s.on_event(&ClientEvent::Disconnected { reason: "timed out".into(), reconnecting: true });
    s.on_event(&ClientEvent::Connecting { attempt: 1 });
    assert_eq!(s.conn.describe(), "reconnecting (attempt 1)…");
    assert!(s.buffers[0].lines.iter().any(|l| l.text == "hi"));
}

#[test]
fn mentions_are_words() {
    assert!(mentions("hi ana!", "Ana"));
    assert!(!mentions("banana", "ana"));
}

#[test]
fn history_pages_go_above_newer_lines() {
    let mut b = Buffer::new(Some("r".into()));
    let at = |t: u64, text: &str, history: bool| Item {
        time_ms: t,
        room: Some("r".into()),
        nick: Some("bob".into()),
        text: text.into(),
        kind: Kind::Chat,
        history,
    };
    b.push(at(100, "new", false));
    b.push(at(200, "newer", false));
    b.push(at(50, "old", true));
    b.push(at(60, "older page, later line", true));
    let texts: Vec<_> = b.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, vec!["old", "older page, later line", "new", "newer"]);
}
