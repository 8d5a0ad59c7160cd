//! Rooms, notices, operators and limits through the chat core, without
//! sockets: join, part, list, who, topics, nickname changes, kick and ban
//! (by nickname and by address, following a session that migrates),
//! and the limits (line length, sessions per address, login timeout;
//! flood control is in pacing.rs).

mod support;

use std::time::Duration;

use support::{Harness, join, live_seqs, say, settings};
use udpchat_chat::{ClientMsg, ErrorCode, NoticeKind, ServerMsg, close};
use udpchat_server::settings::Settings;

fn notices(msgs: &[ServerMsg]) -> Vec<(NoticeKind, String, String)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Notice { kind, nick, text, .. } => Some((*kind, nick.clone(), text.clone())),
            _ => None,
        })
        .collect()
}

fn error_codes(msgs: &[ServerMsg]) -> Vec<ErrorCode> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        })
        .collect()
}

#[test]
fn join_part_list_who_and_their_notices() {
    let mut t = Harness::new(settings());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    assert_eq!(notices(&t.take(ana)), vec![(NoticeKind::Join, "bob".into(), String::new())]);
    t.request(ana, join("#Rust"));
    let got = t.take(ana);
    assert!(
        matches!(&got[..], [ServerMsg::Joined { room, members, head: 0, .. }] if room == "rust" && members == &["ana"])
    );
    t.request(bob, join("rust"));
    t.take(bob);
    assert_eq!(notices(&t.take(ana)), vec![(NoticeKind::Join, "bob".into(), String::new())]);
    t.request(bob, ClientMsg::Who { room: "rust".into() });
    assert!(
        matches!(&t.take(bob)[..], [ServerMsg::Members { nicks, .. }] if nicks.len() == 2 && nicks.contains(&"ana".to_string()))
    );
    t.request(bob, ClientMsg::List);
    let got = t.take(bob);
    let [ServerMsg::RoomList { rooms }] = &got[..] else { panic!("{got:?}") };
    let names: Vec<(&str, u64)> = rooms.iter().map(|r| (r.name.as_str(), r.members)).collect();
    assert_eq!(names, vec![("lobby", 2), ("rust", 2)]);
    t.request(bob, ClientMsg::Part { room: "rust".into(), reason: "bye".into() });
    assert!(matches!(&t.take(bob)[..], [ServerMsg::Parted { room }, ..] if room == "rust"));
    assert_eq!(notices(&t.take(ana)), vec![(NoticeKind::Part, "bob".into(), "bye".into())]);
    t.request(bob, say(1, "rust", "still here?"));
    assert_eq!(error_codes(&t.take(bob)), vec![ErrorCode::NotInRoom]);
}

#[test]
fn topics_and_nickname_changes_reach_the_room() {
    let mut t = Harness::new(settings());
    t.store.add_account("Zed", "pw", false);
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    t.request(bob, ClientMsg::Topic { room: "lobby".into(), topic: Some("welcome".into()) });
    assert_eq!(notices(&t.take(ana)), vec![(NoticeKind::Topic, "bob".into(), "welcome".into())]);
    // The setter hears it too (every member of the room).
    assert_eq!(notices(&t.take(bob)), vec![(NoticeKind::Topic, "bob".into(), "welcome".into())]);
    t.request(bob, ClientMsg::Nick { nick: "Robert".into() });
    assert_eq!(notices(&t.take(ana)), vec![(NoticeKind::Nick, "bob".into(), "Robert".into())]);
    assert_eq!(notices(&t.take(bob)), vec![(NoticeKind::Nick, "bob".into(), "Robert".into())]);
    // Taken, and registered to an account (the lookup is a store read).
    t.request(bob, ClientMsg::Nick { nick: "ANA".into() });
    assert_eq!(error_codes(&t.take(bob)), vec![ErrorCode::NickTaken]);
    t.request(bob, ClientMsg::Nick { nick: "zed".into() });
    assert_eq!(error_codes(&t.take(bob)), vec![ErrorCode::NickTaken]);
}

#[test]
fn a_nickname_taken_while_a_change_is_checked_is_refused() {
    let mut t = Harness::new(settings());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.send(ana, ClientMsg::Nick { nick: "cleo".into() });
    t.send(bob, ClientMsg::Nick { nick: "Cleo".into() });
    t.end_batch();
    t.settle();
    assert!(notices(&t.take(ana)).iter().any(|(k, _, text)| *k == NoticeKind::Nick && text == "cleo"));
    assert_eq!(error_codes(&t.take(bob)), vec![ErrorCode::NickTaken]);
}

#[test]
fn operators_kick_from_rooms_and_ban_others_do_not() {
    let mut t = Harness::new(settings());
    t.store.add_account("Root", "toor", true);
    let root = t.connect("192.0.2.9:1000");
    t.login_as(root, "root", "toor", Vec::new());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(root);
    t.request(bob, ClientMsg::Kick { room: "lobby".into(), nick: "ana".into(), reason: String::new() });
    assert_eq!(error_codes(&t.take(bob)), vec![ErrorCode::NotPermitted]);
    t.take(ana);
    t.request(root, ClientMsg::Kick { room: "lobby".into(), nick: "ana".into(), reason: "spam".into() });
    let got = t.take(ana);
    assert!(notices(&got).contains(&(NoticeKind::Kick, "ana".into(), "by root: spam".into())));
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Parted { .. })));
    assert!(!t.out.closed.contains_key(&ana), "a room kick keeps the session");
    t.request(root, ClientMsg::Ban { target: "bob".into(), reason: String::new(), expires_secs: 0 });
    assert_eq!(t.out.closed.get(&bob).map(|c| c.0), Some(close::BANNED));
    // A banned nickname cannot log in again.
    let again = t.connect("192.0.2.2:1000");
    t.login_as(again, "bob", "", Vec::new());
    assert!(matches!(&t.take(again)[..], [ServerMsg::LoginRefused { code: udpchat_chat::RefuseCode::Banned, .. }]));
}

#[test]
fn address_bans_and_per_address_limits_follow_a_migrating_session() {
    let mut t = Harness::new(Settings { max_sessions_per_address: 2, ..settings() });
    let one = t.connect("192.0.2.1:1000");
    let two = t.connect("192.0.2.1:1001");
    let three = t.connect("192.0.2.1:1002");
    assert_eq!(t.out.closed.get(&three).map(|c| c.0), Some(close::TOO_MANY_SESSIONS));
    t.close(three, udpchat_proto::CloseReason::TimedOut);
    let ip = |s: &str| s.parse().unwrap();
    assert_eq!(t.chat.sessions_from(ip("192.0.2.1")), 2);
    // One session moves to another address (a NAT rebinding): it no
    // longer counts against the first.
    let clock = t.clock();
    t.chat.migrated(clock, two, "198.51.100.7:4000".parse().unwrap(), &mut t.out);
    assert_eq!(t.chat.sessions_from(ip("192.0.2.1")), 1);
    assert_eq!(t.chat.sessions_from(ip("198.51.100.7")), 1);
    let four = t.connect("192.0.2.1:1003");
    assert!(!t.out.closed.contains_key(&four));
    // A ban of the new address finds the session there, not at its old one.
    t.chat.operator(clock, "/ban 198.51.100.7", &mut t.out);
    assert_eq!(t.out.closed.get(&two).map(|c| c.0), Some(close::BANNED));
    assert!(!t.out.closed.contains_key(&one));
    // And a session that moves to a banned address is closed.
    t.chat.migrated(clock, one, "198.51.100.7:4001".parse().unwrap(), &mut t.out);
    assert_eq!(t.out.closed.get(&one).map(|c| c.0), Some(close::BANNED));
}

#[test]
fn lines_too_long_are_refused() {
    let mut t = Harness::new(Settings { max_line_bytes: 10, ..settings() });
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    t.request(bob, say(1, "lobby", "far too long for ten bytes"));
    assert_eq!(error_codes(&t.take(bob)), vec![ErrorCode::LineTooLong]);
    t.request(bob, say(2, "lobby", "ok"));
    assert!(error_codes(&t.take(bob)).is_empty());
    assert_eq!(live_seqs(&t.take(ana), "lobby"), vec![1]);
}

#[test]
fn sessions_that_do_not_log_in_in_time_are_closed() {
    let mut t = Harness::new(Settings { login_timeout_secs: 5, ..settings() });
    let idle = t.connect("192.0.2.1:1000");
    let ana = t.login("ana");
    t.advance(Duration::from_secs(6));
    let clock = t.clock();
    t.chat.tick(clock, &mut t.out);
    assert_eq!(t.out.closed.get(&idle).map(|c| c.0), Some(close::LOGIN_TIMEOUT));
    assert!(!t.out.closed.contains_key(&ana));
}

#[test]
fn console_lines_are_stored_and_delivered_as_the_operators() {
    let mut t = Harness::new(Settings { console_log: true, ..settings() });
    let ana = t.login("ana");
    t.take(ana);
    let clock = t.clock();
    t.chat.operator(clock, "hello from the console", &mut t.out);
    t.settle();
    let got = t.take(ana);
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Line(l) if l.from == "operator" && l.seq == 1)), "{got:?}");
    let console = t.chat.take_console();
    // UTC in tests (set_time_zone); local time in the real server.
    assert!(
        console.iter().any(|l| l == "[2025-11-21 17:18:01] #lobby <operator!> hello from the console"),
        "{console:?}"
    );
}

#[test]
fn a_line_then_quit_reaches_the_room_before_the_quit_notice() {
    let mut t = Harness::new(settings());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    // A commit is in flight (a slow disk) when bob says two more lines,
    // parts and quits: every notice waits behind the lines.
    t.send(bob, say(1, "lobby", "first"));
    t.end_batch();
    t.send(bob, say(2, "lobby", "second"));
    t.send(bob, join("rust"));
    t.send(ana, join("rust"));
    t.send(bob, say(3, "rust", "in rust"));
    t.send(bob, ClientMsg::Part { room: "rust".into(), reason: "off".into() });
    t.send(bob, ClientMsg::Quit { reason: "done".into() });
    let early = t.take(ana);
    assert!(notices(&early).iter().all(|n| n.0 == NoticeKind::Join), "{early:?}");
    t.settle();
    let got: Vec<ServerMsg> = early.into_iter().chain(t.take(ana)).collect();
    let order: Vec<String> = got
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Line(l) => Some(l.text.clone()),
            ServerMsg::Notice { kind: NoticeKind::Part, .. } => Some("part".into()),
            ServerMsg::Notice { kind: NoticeKind::Quit, .. } => Some("quit".into()),
            _ => None,
        })
        .collect();
    assert_eq!(order, vec!["first", "second", "in rust", "part", "quit"]);
}
