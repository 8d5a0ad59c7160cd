//! End-to-end: the real `udpchat server` binary on a loopback port and
//! clients through crates/client, covering every feature of the classic
//! UDP chats (issue 3, point 10).

mod common;

use std::time::Duration;

use common::{ServerProc, collect, expect, lines, login};
use udpchat_client::chat::{ClientMsg, ErrorCode, NoticeKind, RefuseCode, ServerMsg};
use udpchat_client::{Client, ClientEvent, Input};

fn notice(e: &ClientEvent, kind: NoticeKind, who: &str) -> bool {
    matches!(e, ClientEvent::Server(ServerMsg::Notice { kind: k, nick, .. }) if *k == kind && nick == who)
}

#[tokio::test]
async fn three_clients_chat_in_order_with_join_and_leave_notices() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    expect(&mut ana_ev, "bob's join notice", |e| notice(e, NoticeKind::Join, "bob")).await;
    let (cat, mut cat_ev) = login(server.options("cat")).await;
    expect(&mut ana_ev, "cat's join notice", |e| notice(e, NoticeKind::Join, "cat")).await;
    expect(&mut bob_ev, "cat's join notice", |e| notice(e, NoticeKind::Join, "cat")).await;

    // Each sends a few lines; everyone else sees each sender's lines in order.
    for i in 0..5 {
        ana.say("lobby", &format!("ana {i}")).await;
        bob.say("lobby", &format!("bob {i}")).await;
        cat.say("lobby", &format!("cat {i}")).await;
    }
    for (name, events) in [("ana", &mut ana_ev), ("bob", &mut bob_ev), ("cat", &mut cat_ev)] {
        let mut got = Vec::new();
        let mut acked = 0;
        while got.len() < 10 || acked < 5 {
            let seen = expect(events, "lines", |e| {
                matches!(e, ClientEvent::Server(ServerMsg::Line(_)) | ClientEvent::Delivered { .. })
            })
            .await;
            acked += seen.iter().filter(|e| matches!(e, ClientEvent::Delivered { .. })).count();
            got.extend(lines(&seen));
        }
        assert!(got.iter().all(|(from, _)| from != name), "{name} got its own line as a room line");
        for sender in ["ana", "bob", "cat"].iter().filter(|s| **s != name) {
            let theirs: Vec<_> = got.iter().filter(|(f, _)| f == sender).map(|(_, t)| t.clone()).collect();
            assert_eq!(theirs, (0..5).map(|i| format!("{sender} {i}")).collect::<Vec<_>>(), "{name} saw {sender}");
        }
    }

    // QUIT (the classic bare line) and /quit both announce the leaver.
    cat.input(udpchat_client::input::parse("QUIT", "lobby").unwrap()).await;
    expect(&mut ana_ev, "cat's quit notice", |e| notice(e, NoticeKind::Quit, "cat")).await;
    expect(&mut cat_ev, "cat's client to close", |e| matches!(e, ClientEvent::Closed { .. })).await;
    bob.input(udpchat_client::input::parse("/quit off to lunch", "lobby").unwrap()).await;
    let seen = expect(&mut ana_ev, "bob's quit notice", |e| notice(e, NoticeKind::Quit, "bob")).await;
    assert!(
        seen.iter().any(|e| matches!(e, ClientEvent::Server(ServerMsg::Notice { text, .. }) if text == "off to lunch"))
    );
    drop(ana);
}

#[tokio::test]
async fn duplicate_nickname_is_refused_and_another_can_be_chosen() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let (_ana, _ana_ev) = login(server.options("Ana")).await;
    let (second, mut ev) = Client::connect(server.options("ANA")).await.unwrap();
    let seen = expect(&mut ev, "a refusal", |e| matches!(e, ClientEvent::Server(ServerMsg::LoginRefused { .. }))).await;
    let Some(ClientEvent::Server(ServerMsg::LoginRefused { code, text })) = seen.last() else { unreachable!() };
    assert_eq!(*code, RefuseCode::NickTaken);
    assert!(text.contains("ANA"), "{text}");
    // Case and width are folded: full-width "ａｎａ" is the same name too.
    second.login("ａｎａ").await;
    expect(&mut ev, "a second refusal", |e| matches!(e, ClientEvent::Server(ServerMsg::LoginRefused { .. }))).await;
    second.login("ana2").await;
    expect(
        &mut ev,
        "the welcome",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Welcome { nick, .. }) if nick == "ana2"),
    )
    .await;
}

#[tokio::test]
async fn wrong_password_is_refused_with_its_reason() {
    let server = ServerProc::start("", &["--console", "off"], &[("UDPCHAT_SERVER_PASSWORD", "GAS1")]);
    let mut options = server.options("ana");
    options.password = "kegeprek".into();
    let (_c, mut ev) = Client::connect(options).await.unwrap();
    let seen = expect(&mut ev, "a refusal", |e| matches!(e, ClientEvent::Server(ServerMsg::LoginRefused { .. }))).await;
    assert!(matches!(
        seen.last(),
        Some(ClientEvent::Server(ServerMsg::LoginRefused { code: RefuseCode::BadPassword, .. }))
    ));
    expect(&mut ev, "the client to stop", |e| matches!(e, ClientEvent::Closed { .. })).await;

    let mut options = server.options("ana");
    options.password = "GAS1".into();
    login(options).await;
}

#[tokio::test]
async fn private_messages_reach_only_their_target() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let (_bob, mut bob_ev) = login(server.options("bob")).await;
    let (_cat, mut cat_ev) = login(server.options("cat")).await;
    ana.input(Input::Msg { to: "BOB".into(), text: "just for you".into() }).await;
    let seen =
        expect(&mut bob_ev, "the private message", |e| matches!(e, ClientEvent::Server(ServerMsg::Private { .. })))
            .await;
    assert!(
        matches!(seen.last(), Some(ClientEvent::Server(ServerMsg::Private { from, text, .. })) if from == "ana" && text == "just for you")
    );
    expect(&mut ana_ev, "delivery", |e| matches!(e, ClientEvent::Delivered { .. })).await;
    let cat_saw = collect(&mut cat_ev, Duration::from_millis(500)).await;
    assert!(!cat_saw.iter().any(|e| matches!(e, ClientEvent::Server(ServerMsg::Private { .. }))));
    // To nobody: a clear error.
    ana.input(Input::Msg { to: "nobody".into(), text: "hello?".into() }).await;
    expect(&mut ana_ev, "no such nick", |e| {
        matches!(e, ClientEvent::Server(ServerMsg::Error { code: ErrorCode::NoSuchNick, .. }))
    })
    .await;
}

#[tokio::test]
async fn join_list_who_part_and_topic() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    ana.input(Input::Join("Rust".into())).await;
    let seen = expect(
        &mut ana_ev,
        "joined #rust",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Joined { room, .. }) if room == "rust"),
    )
    .await;
    assert!(
        matches!(seen.last(), Some(ClientEvent::Server(ServerMsg::Joined { members, .. })) if *members == vec!["ana".to_owned()])
    );
    bob.input(Input::Join("#rust".into())).await;
    expect(&mut ana_ev, "bob joining #rust", |e| notice(e, NoticeKind::Join, "bob")).await;

    bob.input(Input::List).await;
    let seen =
        expect(&mut bob_ev, "the room list", |e| matches!(e, ClientEvent::Server(ServerMsg::RoomList { .. }))).await;
    let Some(ClientEvent::Server(ServerMsg::RoomList { rooms })) = seen.last() else { unreachable!() };
    let counts: Vec<(String, u64)> = rooms.iter().map(|r| (r.name.clone(), r.members)).collect();
    assert_eq!(counts, vec![("lobby".into(), 2), ("rust".into(), 2)]);

    bob.input(Input::Who("rust".into())).await;
    let seen = expect(&mut bob_ev, "members", |e| matches!(e, ClientEvent::Server(ServerMsg::Members { .. }))).await;
    assert!(matches!(seen.last(), Some(ClientEvent::Server(ServerMsg::Members { nicks, .. })) if nicks.len() == 2));

    // A line in #rust reaches #rust only.
    ana.say("rust", "borrow checker").await;
    let seen = expect(
        &mut bob_ev,
        "the #rust line",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Line(l)) if l.room == "rust"),
    )
    .await;
    assert_eq!(lines(&seen), vec![("ana".to_owned(), "borrow checker".to_owned())]);

    ana.input(Input::Topic { room: "rust".into(), topic: Some("ownership".into()) }).await;
    expect(&mut bob_ev, "the topic notice", |e| notice(e, NoticeKind::Topic, "ana")).await;

    bob.input(Input::Part { room: "rust".into(), reason: "later".into() }).await;
    expect(&mut bob_ev, "parted", |e| matches!(e, ClientEvent::Server(ServerMsg::Parted { .. }))).await;
    expect(&mut ana_ev, "bob's part notice", |e| notice(e, NoticeKind::Part, "bob")).await;
    // Saying something in a room one is not in is refused.
    bob.say("rust", "still here?").await;
    expect(&mut bob_ev, "not in room", |e| {
        matches!(e, ClientEvent::Server(ServerMsg::Error { code: ErrorCode::NotInRoom, .. }))
    })
    .await;
}

#[tokio::test]
async fn nick_change_is_announced() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let (_bob, mut bob_ev) = login(server.options("bob")).await;
    ana.input(Input::Nick("anna".into())).await;
    let seen = expect(&mut bob_ev, "nick notice", |e| notice(e, NoticeKind::Nick, "ana")).await;
    assert!(matches!(seen.last(), Some(ClientEvent::Server(ServerMsg::Notice { text, .. })) if text == "anna"));
    expect(&mut ana_ev, "own nick notice", |e| notice(e, NoticeKind::Nick, "ana")).await;
    ana.say("lobby", "new name").await;
    let seen = expect(&mut bob_ev, "a line", |e| matches!(e, ClientEvent::Server(ServerMsg::Line(_)))).await;
    assert_eq!(lines(&seen), vec![("anna".to_owned(), "new name".to_owned())]);
}

#[tokio::test]
async fn oversized_lines_get_an_error_and_the_session_keeps_working() {
    let server = ServerProc::start("max_line_bytes = 100\n", &["--console", "off"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let (_bob, mut bob_ev) = login(server.options("bob")).await;
    let long = "x".repeat(101);
    let id = ana.say("lobby", &long).await;
    let seen =
        expect(&mut ana_ev, "line too long", |e| matches!(e, ClientEvent::Server(ServerMsg::Error { .. }))).await;
    assert!(
        matches!(seen.last(), Some(ClientEvent::Server(ServerMsg::Error { id: i, code: ErrorCode::LineTooLong, .. })) if *i == id)
    );
    let id = ana.say("lobby", "bell\u{7}").await;
    expect(&mut ana_ev, "control characters", |e| {
        matches!(e, ClientEvent::Server(ServerMsg::Error { id: i, code: ErrorCode::ControlCharacters, .. }) if *i == id)
    })
    .await;
    ana.say("lobby", &"y".repeat(100)).await;
    let seen =
        expect(&mut bob_ev, "the line at the limit", |e| matches!(e, ClientEvent::Server(ServerMsg::Line(_)))).await;
    assert_eq!(lines(&seen).len(), 1);
    drop(ana);
}

#[tokio::test]
async fn a_flood_is_slowed_down_not_refused() {
    // Issue 10: lines over the rate are held by the server and handled at
    // the rate, in order; none is refused.
    let server = ServerProc::start("rate_burst = 3\nrate_per_second = 2.0\n", &["--console", "off"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(ana.say("lobby", &format!("flood {i}")).await);
    }
    let mut acked = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while acked.len() < ids.len() {
        let event = tokio::time::timeout_at(deadline, ana_ev.recv()).await.expect("every line acknowledged in time");
        match event {
            // The client may report an acknowledgement either way.
            Some(ClientEvent::Server(ServerMsg::Ack { id, .. }) | ClientEvent::Delivered { id, .. }) => {
                if !acked.contains(&id) {
                    acked.push(id);
                }
            }
            Some(ClientEvent::Server(ServerMsg::Error { text, .. })) => panic!("refused: {text}"),
            Some(_) => {}
            None => panic!("client stopped"),
        }
    }
    assert_eq!(acked, ids);
    let _ = ana.request(ClientMsg::List).await;
}

#[tokio::test]
async fn operator_console_line_reaches_the_room() {
    let mut server = ServerProc::start("", &["--console", "on"], &[]);
    let (_ana, mut ana_ev) = login(server.options("ana")).await;
    server.type_line("hello from the operator");
    let seen = expect(&mut ana_ev, "the operator line", |e| matches!(e, ClientEvent::Server(ServerMsg::Line(_)))).await;
    let Some(ClientEvent::Server(ServerMsg::Line(line))) = seen.last() else { unreachable!() };
    assert_eq!((line.from.as_str(), line.text.as_str()), ("operator", "hello from the operator"));
    assert_eq!(line.kind, udpchat_client::chat::LineKind::Operator);
    // The console records room traffic, timestamped.
    server.wait_line(|l| l.starts_with("[20") && l.contains("#lobby <operator!> hello from the operator"));
    // /kick removes a member, who is told and does not come back.
    let (_bob, mut bob_ev) = login(server.options("bob")).await;
    server.type_line("/kick bob spamming");
    expect(&mut ana_ev, "kick notice", |e| notice(e, NoticeKind::Kick, "bob")).await;
    expect(&mut bob_ev, "bob's client to stop", |e| matches!(e, ClientEvent::Closed { .. })).await;
}

#[tokio::test]
async fn client_killed_without_goodbye_times_out() {
    let server = ServerProc::start("idle_timeout_secs = 5\n", &["--console", "off"], &[]);
    let (_ana, mut ana_ev) = login(server.options("ana")).await;
    // A real client process, killed with SIGKILL: no goodbye at all.
    let mut victim = std::process::Command::new(common::BIN)
        .args(["chat", "--plain", "--server", &server.addr(), "--nick", "ghost", "--known-servers"])
        .arg(server.dir.path().join("known_servers"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    expect(&mut ana_ev, "ghost joining", |e| notice(e, NoticeKind::Join, "ghost")).await;
    victim.kill().unwrap();
    victim.wait().unwrap();
    let start = std::time::Instant::now();
    expect(&mut ana_ev, "ghost timing out", |e| notice(e, NoticeKind::Timeout, "ghost")).await;
    assert!(start.elapsed() < Duration::from_secs(8), "{:?}", start.elapsed());
}
