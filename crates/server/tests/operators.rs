//! What operators set through the chat core, without sockets: bans with
//! an expiry, unbans by an operator account (others are refused),
//! confirmations of every action to the operator who did it (and the
//! console), and bans and topics surviving a restart (they are written
//! through the store and read at startup).

mod support;

use std::time::Duration;

use support::{Harness, MemoryStore, join, settings};
use udpchat_chat::{ClientMsg, ErrorCode, NoticeKind, RefuseCode, ServerMsg, close};

fn server_notices(msgs: &[ServerMsg]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Notice { kind: NoticeKind::Server, text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

fn operator(t: &mut Harness) -> udpchat_proto::ConnectionHandle {
    t.store.add_account("Root", "password1", true);
    let root = t.connect("192.0.2.9:1000");
    t.login_as(root, "root", "password1", Vec::new());
    t.take(root);
    root
}

fn refused(t: &mut Harness, nick: &str, port: u16) -> bool {
    let h = t.connect(&format!("192.0.2.2:{port}"));
    t.login_as(h, nick, "", Vec::new());
    t.take(h).iter().any(|m| matches!(m, ServerMsg::LoginRefused { code: RefuseCode::Banned, .. }))
}

#[test]
fn a_ban_with_an_expiry_is_confirmed_and_lifted_in_time() {
    let mut t = Harness::new(settings());
    let root = operator(&mut t);
    let eve = t.login("eve");
    t.request(root, ClientMsg::Ban { target: "eve".into(), reason: "spam".into(), expires_secs: 600 });
    assert_eq!(t.out.closed.get(&eve).map(|c| c.0), Some(close::BANNED));
    assert_eq!(server_notices(&t.take(root)), vec!["eve banned for 10m by root (1 session(s) closed)"]);
    assert!(t.chat.take_console().iter().any(|l| l.ends_with("-- eve banned for 10m by root (1 session(s) closed)")));
    assert!(refused(&mut t, "eve", 1000));
    t.advance(Duration::from_secs(601));
    let clock = t.clock();
    t.chat.tick(clock, &mut t.out);
    assert!(t.chat.take_console().iter().any(|l| l.ends_with("-- the ban on eve has expired")));
    assert!(!refused(&mut t, "eve", 1001));
}

#[test]
fn operators_unban_others_may_not() {
    let mut t = Harness::new(settings());
    let root = operator(&mut t);
    let bob = t.login("bob");
    t.request(root, ClientMsg::Ban { target: "198.51.100.7".into(), reason: String::new(), expires_secs: 0 });
    t.take(root);
    t.request(bob, ClientMsg::Unban { target: "198.51.100.7".into() });
    assert!(matches!(&t.take(bob)[..], [ServerMsg::Error { code: ErrorCode::NotPermitted, .. }]));
    t.request(root, ClientMsg::Unban { target: "198.51.100.7".into() });
    assert_eq!(server_notices(&t.take(root)), vec!["198.51.100.7 unbanned by root"]);
    t.request(root, ClientMsg::Unban { target: "nobody".into() });
    assert_eq!(server_notices(&t.take(root)), vec!["nobody was not banned"]);
    let h = t.connect("198.51.100.7:5000");
    assert!(!t.out.closed.contains_key(&h), "the address may connect again");
}

#[test]
fn kicks_and_topics_outside_the_operators_rooms_are_confirmed() {
    let mut t = Harness::new(settings());
    let root = operator(&mut t);
    let ana = t.login("ana");
    t.request(ana, join("rust"));
    t.take(root);
    t.request(root, ClientMsg::Topic { room: "rust".into(), topic: Some("crabs".into()) });
    assert_eq!(server_notices(&t.take(root)), vec!["topic of #rust set"]);
    t.request(root, ClientMsg::Kick { room: "rust".into(), nick: "ana".into(), reason: String::new() });
    assert_eq!(server_notices(&t.take(root)), vec!["ana was kicked from #rust by root"]);
}

#[test]
fn bans_and_topics_survive_a_restart() {
    let store = MemoryStore::default();
    let mut t = Harness::with_store(settings(), store.clone());
    let clock = t.clock();
    t.chat.operator(clock, "/ban eve 2h flooding", &mut t.out);
    t.chat.operator(clock, "/ban 198.51.100.7", &mut t.out);
    t.chat.operator(clock, "/topic welcome all", &mut t.out);
    assert!(
        t.chat.take_console().iter().any(|l| l.ends_with("-- eve banned for 2h by operator (0 session(s) closed)"))
    );
    t.settle(); // the writer records them
    drop(t);
    let mut t = Harness::with_store(settings(), store);
    assert!(refused(&mut t, "eve", 1000));
    let h = t.connect("198.51.100.7:5000");
    assert_eq!(t.out.closed.get(&h).map(|c| c.0), Some(close::BANNED));
    let ana = t.connect("192.0.2.1:1000");
    t.login_as(ana, "ana", "", Vec::new());
    let got = t.take(ana);
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Joined { topic, .. } if topic == "welcome all")), "{got:?}");
}
