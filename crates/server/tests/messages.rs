//! What the server tells people, through the chat core: no password and
//! a wrong password are told apart (server and account password), with
//! the option that gives it; a History with nothing earlier says so; a
//! private message to an offline account says it was stored; the console
//! operator's /msg reaches the person.

mod support;

use support::{Harness, join, settings};
use udpchat_chat::{ClientMsg, NoticeKind, RefuseCode, ServerMsg};
use udpchat_server::settings::Settings;

fn refusal(msgs: &[ServerMsg]) -> Option<(RefuseCode, String)> {
    msgs.iter().find_map(|m| match m {
        ServerMsg::LoginRefused { code, text } => Some((*code, text.clone())),
        _ => None,
    })
}

fn server_notices(msgs: &[ServerMsg]) -> Vec<String> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Notice { kind: NoticeKind::Server, text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn no_password_and_a_wrong_password_are_told_apart() {
    let mut t = Harness::new(Settings { password: Some("sesame".into()), ..settings() });
    let h = t.connect("192.0.2.1:1000");
    t.login_as(h, "ana", "", Vec::new());
    let (code, text) = refusal(&t.take(h)).unwrap();
    assert_eq!(code, RefuseCode::BadPassword);
    assert!(text.starts_with("no server password given") && text.contains("--ask-password"), "{text}");
    let login = |pw: &str| ClientMsg::Login {
        nick: "ana".into(),
        server_password: pw.into(),
        account_password: String::new(),
        resume: Vec::new(),
        private_since: 0,
        origin: 0,
    };
    t.request(h, login("wrong"));
    assert_eq!(refusal(&t.take(h)), Some((RefuseCode::BadPassword, "wrong server password".into())));

    let mut t = Harness::new(settings());
    t.store.add_account("Bob", "password1", false);
    let h = t.connect("192.0.2.1:1000");
    t.login_as(h, "bob", "", Vec::new());
    let (code, text) = refusal(&t.take(h)).unwrap();
    assert_eq!(code, RefuseCode::NickRegistered);
    assert!(text.contains("no account password was given") && text.contains("--ask-account-password"), "{text}");
    t.login_as(h, "bob", "nope", Vec::new());
    let (code, text) = refusal(&t.take(h)).unwrap();
    assert_eq!(code, RefuseCode::BadPassword);
    assert!(text.starts_with("wrong account password for bob") && text.contains("UDPCHAT_ACCOUNT_PASSWORD"), "{text}");
}

#[test]
fn a_history_request_with_nothing_earlier_says_so() {
    let mut t = Harness::new(settings());
    let ana = t.login("ana");
    t.request(ana, join("empty"));
    t.take(ana);
    t.request(ana, ClientMsg::History { room: "empty".into(), before: 0, limit: 50 });
    assert_eq!(server_notices(&t.take(ana)), vec!["no earlier lines in #empty"]);
}

#[test]
fn a_private_message_to_an_offline_account_says_it_was_stored() {
    let mut t = Harness::new(settings());
    t.store.add_account("Bob", "password1", false);
    let ana = t.login("ana");
    t.request(ana, ClientMsg::Private { id: 7, to: "bob".into(), text: "see you".into() });
    let got = t.take(ana);
    assert_eq!(server_notices(&got), vec!["Bob is offline; the message is stored and delivered when they log in"]);
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Ack { id: 7, seq, .. } if *seq > 0)), "{got:?}");
}

#[test]
fn the_console_operator_can_message_someone() {
    let mut t = Harness::new(settings());
    let ana = t.login("ana");
    t.take(ana);
    let clock = t.clock();
    t.chat.operator(clock, "/msg ANA hello there", &mut t.out);
    let got = t.take(ana);
    assert!(
        matches!(&got[..], [ServerMsg::Private { from, text, .. }] if from == "operator" && text == "hello there"),
        "{got:?}"
    );
    assert_eq!(t.chat.take_console(), vec!["[2025-11-21 17:18:01] -> ana: hello there"]);
    t.chat.operator(clock, "/msg nobody hi", &mut t.out);
    assert_eq!(t.chat.take_console(), vec!["-- nobody called nobody is online"]);
}
