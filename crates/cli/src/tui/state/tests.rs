//! Tests of the terminal client's own state: typing, completion, history,
//! scrolling and what Enter asks for. The model under it has its own
//! tests (crates/client/src/model/tests.rs). No terminal needed.
use udpchat_client::chat::{Line, LineKind, RefuseCode, ServerMsg};
use udpchat_client::model::Kind;
use udpchat_client::model::SCROLLBACK;
use udpchat_client::{ClientEvent, Input};

use super::super::line::{HISTORY, InputLine};
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
    s.model.on_event(&server(ServerMsg::Welcome {
        nick: "ana".into(),
        server_name: "t".into(),
        motd: String::new(),
        operator: false,
    }));
    s.model.on_event(&joined("lobby", &["ana", "bob", "bert", "Carol"]));
    s
}

fn typed(s: &mut State, text: &str) {
    s.input.clear();
    s.input.insert_str(text);
}

fn last_text(s: &State) -> Option<String> {
    s.model.current().lines.back().map(|l| l.text.clone())
}

#[test]
fn join_is_sent_and_shown_once_joined() {
    let mut s = lobby();
    typed(&mut s, "/join #Rust");
    assert_eq!(s.submit(), Some(Action::Send(Input::Join("#Rust".into()))));
    assert_eq!(s.model.current_room(), Some("lobby"), "not before the server says so");
    s.model.on_event(&joined("rust", &["ana"]));
    assert_eq!(s.model.current_room(), Some("rust"));
}

#[test]
fn own_lines_are_sent_then_confirmed() {
    let mut s = lobby();
    typed(&mut s, "hello all");
    let Some(Action::Send(input @ Input::Say { .. })) = s.submit() else { panic!("not a Say") };
    assert_eq!(input, Input::Say { room: "lobby".into(), text: "hello all".into(), action: false });
    s.model.sending(1, &input);
    let before = s.model.current().lines.len();
    let ClientEvent::Server(msg) = line("lobby", "ana", "hello all") else { unreachable!() };
    s.model.on_event(&ClientEvent::Delivered { id: 1, msg });
    assert_eq!(s.model.current().lines.len(), before);
    assert_eq!(s.model.current().lines.back().and_then(|l| l.nick.as_deref()), Some("ana"));
}

#[test]
fn text_in_a_private_conversation_goes_to_that_person() {
    let mut s = lobby();
    s.model.on_event(&server(ServerMsg::Private {
        id: 0,
        seq: 0,
        from: "bob".into(),
        to: "ana".into(),
        text: "psst".into(),
        time_ms: 0,
        history: false,
    }));
    s.model.goto(2);
    typed(&mut s, "what?");
    assert_eq!(s.submit(), Some(Action::Send(Input::Msg { to: "bob".into(), text: "what?".into() })));
    typed(&mut s, "/topic tea");
    assert_eq!(s.submit(), None);
    assert!(last_text(&s).is_some_and(|t| t.contains("private conversation")));
    typed(&mut s, "b");
    s.complete();
    assert_eq!(s.input.text(), "bob: ");
}

#[test]
fn scrolled_view_stays_while_lines_arrive() {
    let mut s = lobby();
    s.chat_rows = 11;
    s.scroll_up();
    assert_eq!(*s.scroll(), 10);
    for i in 0..SCROLLBACK + 10 {
        s.model.on_event(&line("lobby", "bob", &format!("n{i}")));
    }
    assert_eq!(*s.scroll(), 10 + SCROLLBACK + 10);
    s.scroll_down();
    assert_eq!(*s.scroll(), SCROLLBACK + 10);
    // Each conversation keeps its own.
    s.model.goto(0);
    assert_eq!(*s.scroll(), 0);
    s.model.goto(1);
    assert_eq!(*s.scroll(), SCROLLBACK + 10);
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
    assert!(s.model.current().lines.iter().any(|l| l.text.starts_with("/join ROOM")));
    typed(&mut s, "/frob");
    assert_eq!(s.submit(), None);
    assert_eq!(s.model.current().lines.back().map(|l| l.kind), Some(Kind::Error));
    s.model.focus(0);
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
    s.model.on_event(&server(ServerMsg::LoginRefused { code: RefuseCode::NickTaken, text: "taken".into() }));
    assert!(s.model.awaiting_nick());
    typed(&mut s, "/quit");
    assert_eq!(s.submit(), Some(Action::Quit(String::new())));
    typed(&mut s, "  ");
    assert_eq!(s.submit(), None);
    typed(&mut s, "bobby");
    assert_eq!(s.submit(), Some(Action::Login("bobby".into())));
    assert_eq!(s.model.nick(), "bobby");
    assert!(!s.model.awaiting_nick());

    let mut s = State::new("bob", None);
    s.model.on_event(&server(ServerMsg::LoginRefused { code: RefuseCode::BadPassword, text: "wrong".into() }));
    s.model.on_event(&ClientEvent::Closed { reason: "you left the server".into() });
    assert!(s.stopped());
    assert_eq!(s.submit(), Some(Action::Exit));
}

fn said(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(Input::Say { text, .. }) => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_line_over_the_limit_stays_in_the_input() {
    let mut s = lobby();
    s.model.on_event(&server(ServerMsg::Limits { max_line_bytes: 10, rate_burst: 5, rate_milli: 2000 }));
    s.input.insert_str("eleven byte");
    assert_eq!(s.submit(), None);
    assert_eq!(s.input.text(), "eleven byte", "kept to be shortened");
    let last = s.model.current().lines.back().expect("a note");
    assert!(last.kind == Kind::Error && last.text.contains("at most 10"), "{last:?}");
    s.input.backspace();
    assert!(matches!(s.submit(), Some(Action::Send(Input::Say { .. }))));
    assert_eq!(s.input.text(), "");
}

#[test]
fn a_short_paste_is_sent_line_by_line() {
    let mut s = lobby();
    s.input.insert_str("one ");
    s.pasted("two\r\nthree\n\nfour");
    assert_eq!(said(&std::mem::take(&mut s.outgoing)), ["one two", "three", "four"]);
    assert_eq!(s.input.text(), "");
    // Without a line break it is only typed.
    s.pasted("just text");
    assert!(s.outgoing.is_empty());
    assert_eq!(s.input.text(), "just text");
}

#[test]
fn a_long_paste_asks_first() {
    let mut s = lobby();
    let fifty: String = (1..=50).map(|i| format!("line {i}\n")).collect();
    s.pasted(&fifty);
    assert!(s.outgoing.is_empty(), "nothing before the answer");
    assert_eq!(s.paste.as_ref().map(Vec::len), Some(50));
    let key = |c| crossterm::event::KeyEvent::from(crossterm::event::KeyCode::Char(c));
    assert_eq!(super::super::keys::handle(&mut s, key('y')), None);
    let sent = said(&std::mem::take(&mut s.outgoing));
    assert_eq!(sent.len(), 50);
    assert_eq!(sent[49], "line 50");
    // Any other key drops it.
    s.pasted(&fifty);
    super::super::keys::handle(&mut s, key('n'));
    assert!(s.outgoing.is_empty() && s.paste.is_none());
    assert!(s.model.current().lines.back().is_some_and(|l| l.text.contains("cancelled")));
}
