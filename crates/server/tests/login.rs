//! Logging in through the chat core, without sockets: the server
//! password, unique nicknames, accounts with passwords (an account lookup
//! and a password check, both off the event loop), and what may change
//! while they run.

mod support;

use support::{Harness, settings};
use udpchat_chat::{ClientMsg, RefuseCode, ServerMsg};
use udpchat_server::settings::Settings;

fn refused(msgs: &[ServerMsg]) -> Option<RefuseCode> {
    msgs.iter().find_map(|m| match m {
        ServerMsg::LoginRefused { code, .. } => Some(*code),
        _ => None,
    })
}

fn welcomed(msgs: &[ServerMsg]) -> Option<bool> {
    msgs.iter().find_map(|m| match m {
        ServerMsg::Welcome { operator, .. } => Some(*operator),
        _ => None,
    })
}

fn login_msg(nick: &str, server_password: &str, account_password: &str) -> ClientMsg {
    ClientMsg::Login {
        nick: nick.into(),
        server_password: server_password.into(),
        account_password: account_password.into(),
        resume: Vec::new(),
        private_since: 0,
        origin: 0,
    }
}

#[test]
fn the_server_password_is_checked() {
    let mut t = Harness::new(Settings { password: Some("letmein".into()), ..settings() });
    let h = t.connect("192.0.2.1:1000");
    t.request(h, login_msg("ana", "wrong", ""));
    assert_eq!(refused(&t.take(h)), Some(RefuseCode::BadPassword));
    t.request(h, login_msg("ana", "letmein", ""));
    assert_eq!(welcomed(&t.take(h)), Some(false));
}

#[test]
fn nicknames_are_unique_after_folding() {
    let mut t = Harness::new(settings());
    t.login("Ana");
    let h = t.connect("192.0.2.2:1000");
    t.request(h, login_msg("ANA", "", ""));
    assert_eq!(refused(&t.take(h)), Some(RefuseCode::NickTaken));
    t.request(h, login_msg("not a nick!", "", ""));
    assert_eq!(refused(&t.take(h)), Some(RefuseCode::NickInvalid));
}

#[test]
fn accounts_need_their_password_and_carry_the_operator_flag() {
    let mut t = Harness::new(settings());
    t.store.add_account("Ana", "secret", false);
    t.store.add_account("Root", "toor", true);
    let h = t.connect("192.0.2.1:1000");
    t.login_as(h, "ana", "", Vec::new());
    assert_eq!(refused(&t.take(h)), Some(RefuseCode::NickRegistered));
    t.login_as(h, "ana", "guess", Vec::new());
    assert_eq!(refused(&t.take(h)), Some(RefuseCode::BadPassword));
    t.login_as(h, "ana", "secret", Vec::new());
    assert_eq!(welcomed(&t.take(h)), Some(false));
    let root = t.connect("192.0.2.1:1001");
    t.login_as(root, "root", "toor", Vec::new());
    assert_eq!(welcomed(&t.take(root)), Some(true));
}

#[test]
fn a_nickname_taken_while_its_lookup_runs_is_refused() {
    let mut t = Harness::new(settings());
    let (a, b) = (t.connect("192.0.2.1:1000"), t.connect("192.0.2.2:1000"));
    // Both lookups are in flight at once (the store has not answered).
    t.send(a, login_msg("ana", "", ""));
    t.send(b, login_msg("Ana", "", ""));
    t.end_batch();
    assert_eq!(t.requests.len(), 2);
    assert!(t.take(a).is_empty() && t.take(b).is_empty(), "nothing before the lookups complete");
    t.settle();
    assert_eq!(welcomed(&t.take(a)), Some(false));
    assert_eq!(refused(&t.take(b)), Some(RefuseCode::NickTaken));
}

#[test]
fn a_session_that_ends_during_its_lookup_is_forgotten() {
    let mut t = Harness::new(settings());
    let a = t.connect("192.0.2.1:1000");
    t.send(a, login_msg("ana", "", ""));
    t.end_batch();
    t.close(a, udpchat_proto::CloseReason::TimedOut);
    t.settle();
    assert!(t.take(a).is_empty());
    assert_eq!(t.chat.session_count(), 0);
    // The nickname is free.
    t.login("ana");
}
