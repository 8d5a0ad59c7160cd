//! Plain-text members (docs/PROTOCOL.md §17) in the chat core, without
//! sockets: a foreign handle is a session like any other (its lines are
//! stored and delivered, its Join notice says how it came), it cannot take
//! a registered nickname, bans apply, and a broadcast listener hears a
//! room's lines without being listed.

mod support;

use support::{Harness, join, lines, say, settings};
use udpchat_chat::{ClientMsg, NoticeKind, RefuseCode, ServerMsg, close};
use udpchat_proto::ConnectionHandle;
use udpchat_server::chat::PLAIN_JOIN;

fn plain_login(t: &mut Harness, n: u32, addr: &str, nick: &str) -> ConnectionHandle {
    let h = ConnectionHandle::foreign(n, 0);
    let clock = t.clock();
    t.chat.connected_plain(clock, h, addr.parse().unwrap(), &mut t.out);
    let login = ClientMsg::Login {
        nick: nick.into(),
        server_password: String::new(),
        account_password: String::new(),
        resume: Vec::new(),
        private_since: 0,
        origin: 0,
    };
    t.send(h, login);
    t.settle();
    for check in t.chat.take_verifications() {
        let ok = check.check();
        let clock = t.clock();
        t.chat.verified(clock, check.session, ok, &mut t.out);
    }
    t.settle();
    h
}

#[test]
fn a_plain_member_is_announced_stored_and_delivered_like_any() {
    let mut t = Harness::new(settings());
    let ana = t.login("ana");
    let dina = plain_login(&mut t, 1, "10.0.0.9:5000", "dina");
    assert!(t.take(dina).iter().any(|m| matches!(m, ServerMsg::Welcome { .. })));
    let joined = t.take(ana);
    assert!(
        joined.iter().any(|m| matches!(m, ServerMsg::Notice { kind: NoticeKind::Join, nick, text, .. }
            if nick == "dina" && text == PLAIN_JOIN)),
        "{joined:?}"
    );
    t.request(dina, say(1, "lobby", "halo"));
    assert_eq!(lines(&t.take(ana)), vec![(1, "halo".into(), false)]);
    assert_eq!(t.store.lines("lobby").len(), 1, "stored like any line");
    t.request(ana, say(1, "lobby", "hai dina"));
    assert_eq!(lines(&t.take(dina)), vec![(2, "hai dina".into(), false)]);
    // An ordinary member's Join notice has no text.
    t.login("bob");
    assert!(
        t.take(dina)
            .iter()
            .any(|m| matches!(m, ServerMsg::Notice { kind: NoticeKind::Join, text, .. } if text.is_empty()))
    );
}

#[test]
fn registered_nicknames_and_bans_hold_for_plain_members() {
    let mut t = Harness::new(settings());
    t.store.add_account("ana", "secret", false);
    let h = plain_login(&mut t, 1, "10.0.0.9:5000", "ana");
    let got = t.take(h);
    assert!(
        got.iter().any(|m| matches!(
            m,
            ServerMsg::LoginRefused { code: RefuseCode::BadPassword | RefuseCode::NickRegistered, .. }
        )),
        "{got:?}"
    );
    let root = t.connect("192.0.2.1:1000");
    t.store.add_account("root", "pw", true);
    t.login_as(root, "root", "pw", Vec::new());
    t.request(root, ClientMsg::Ban { target: "10.0.0.66".into(), expires_secs: 0, reason: String::new() });
    let banned = ConnectionHandle::foreign(2, 0);
    let clock = t.clock();
    t.chat.connected_plain(clock, banned, "10.0.0.66:4000".parse().unwrap(), &mut t.out);
    assert_eq!(t.out.closed.get(&banned).map(|c| c.0), Some(close::BANNED));
}

#[test]
fn a_listener_hears_a_rooms_lines_without_being_listed() {
    let mut t = Harness::new(settings());
    let listener = ConnectionHandle::foreign(9, 0);
    t.chat.attach_listener(listener, "lobby").unwrap();
    assert!(t.chat.attach_listener(listener, "no spaces allowed").is_err());
    let ana = t.login("ana");
    t.request(ana, ClientMsg::Who { room: "lobby".into() });
    let who = t.take(ana);
    assert!(who.iter().any(|m| matches!(m, ServerMsg::Members { nicks, .. } if nicks == &["ana"])), "{who:?}");
    t.request(ana, say(1, "lobby", "to the LAN"));
    assert_eq!(lines(&t.take(listener)), vec![(1, "to the LAN".into(), false)]);
    // Only lines: no notices, no other rooms.
    t.request(ana, join("rust"));
    t.request(ana, say(2, "rust", "elsewhere"));
    assert!(t.take(listener).is_empty());
}
