//! The desktop client's real widgets (the `App` the binary shows, in an
//! egui_kittest harness) against a real udpchat server on loopback: the
//! connect form and its errors, the server-key dialogs, chatting both ways
//! with another client, unread counts, `/history` paging on scrolling to
//! the top, and a 200-line paste.

mod common;

use common::*;
use egui_kittest::kittest::Queryable;
use udpchat_client::chat::LOBBY;

#[test]
fn log_in_and_chat_with_another_client() {
    let server = ServerThread::start(None);
    let mut peer = Peer::join(&server, "bob", None);
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    login_trusting(&mut h, &server, "ana");
    // The key the user trusted is in the same file the terminal client reads.
    let known = udpchat_client::known_hosts::KnownHosts::load(&dir.path().join("known_servers")).unwrap();
    assert_eq!(known.get(&server.address()), Some(server.key));

    type_line(&mut h, "ana", "hello from the window");
    h.key_press(egui::Key::Enter);
    h.step();
    let got = peer.lines_from("ana", |t| !t.is_empty());
    assert_eq!(got, ["hello from the window"]);

    peer.say(LOBBY, "hello from the terminal");
    until(&mut h, "the peer's line in the window", |h| shows(h, "hello from the terminal"));
    assert!(shows(&h, "bob"), "bob is in the member list");
}

#[test]
fn wrong_server_password_is_said_in_the_form() {
    let server = ServerThread::start(Some("sesame"));
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    login(&mut h, &server.address(), "ana", "wrong");
    let key = server.key.to_string();
    until(&mut h, "the first-contact dialog", |h| shows(h, &key));
    h.get_by_label("Trust this server").click();
    until(&mut h, "the wrong-password error in the form", |h| shows(h, "Wrong server password"));
    assert!(h.state().servers.is_empty());

    // The right one then works from the same form.
    h.state_mut().form.password = "sesame".into();
    h.get_by_label("Connect").click();
    until(&mut h, "the chat window", |h| !h.state().servers.is_empty());
}

#[test]
fn a_taken_nickname_sends_the_focus_back_to_the_nickname() {
    let server = ServerThread::start(None);
    let _peer = Peer::join(&server, "bob", None);
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    login(&mut h, &server.address(), "bob", "");
    until(&mut h, "the first-contact dialog", |h| shows(h, "Trust this server"));
    h.get_by_label("Trust this server").click();
    until(&mut h, "the nickname-taken error", |h| shows(h, "is taken"));
    h.step();
    assert!(h.get_by_role_and_label(egui::accesskit::Role::TextInput, "Nickname").is_focused());
}

#[test]
fn a_changed_server_key_blocks_until_replaced() {
    let server = ServerThread::start(None);
    let mut peer = Peer::join(&server, "bob", None);
    let dir = tempfile::tempdir().unwrap();
    let p = paths(&dir);
    let old = udpchat_proto::ServerKey::generate([7; 32]).public;
    udpchat_client::known_hosts::KnownHosts::load(&p.known_hosts).unwrap().remember(&server.address(), old).unwrap();
    let mut h = gui(p.clone());
    login(&mut h, &server.address(), "ana", "");
    until(&mut h, "the changed-key warning", |h| shows(h, "key has changed"));
    assert!(shows(&h, &old.to_string()), "the old key is named");
    assert!(shows(&h, &server.key.to_string()), "the new key is named");
    assert!(shows(&h, &p.known_hosts.display().to_string()), "the file is named");
    // While the warning is up nothing logs in; nor after "Don't connect".
    for _ in 0..20 {
        h.step();
    }
    h.get_by_label("Don't connect").click();
    until(&mut h, "back to the form", |h| shows(h, "not trusted"));
    assert!(h.state().servers.is_empty() && !h.state().connecting());
    peer.say(LOBBY, "marker");
    let events = peer.rt.block_on(udpchat_client::wait_for(&mut peer.events, std::time::Duration::from_millis(500), |e| {
        matches!(e, udpchat_client::ClientEvent::Server(udpchat_client::chat::ServerMsg::Notice { nick, .. }) if nick == "ana")
    }));
    assert!(events.is_none(), "ana never joined");
    let known = udpchat_client::known_hosts::KnownHosts::load(&p.known_hosts).unwrap();
    assert_eq!(known.get(&server.address()), Some(old), "the old key is kept");

    // Replacing it is explicit, and then it connects.
    h.get_by_label("Connect").click();
    until(&mut h, "the changed-key warning again", |h| shows(h, "key has changed"));
    h.get_by_label("Replace the key and connect").click();
    until(&mut h, "the chat window", |h| !h.state().servers.is_empty());
    let known = udpchat_client::known_hosts::KnownHosts::load(&p.known_hosts).unwrap();
    assert_eq!(known.get(&server.address()), Some(server.key));
}

#[test]
fn unread_counts_change_when_another_room_gets_a_line() {
    let server = ServerThread::start(None);
    let peer = Peer::join(&server, "bob", None);
    peer.rt.block_on(peer.client.input(udpchat_client::Input::Join("rust".into())));
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    login_trusting(&mut h, &server, "ana");
    type_line(&mut h, "ana", "/join rust");
    h.key_press(egui::Key::Enter);
    until(&mut h, "#rust on screen", |h| h.state().servers[0].model.current_room() == Some("rust"));
    // Back to the lobby with the keyboard (Ctrl+P).
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::P);
    until(&mut h, "the lobby on screen", |h| h.state().servers[0].model.current_room() == Some(LOBBY));
    peer.say("rust", "anyone here? ana?");
    until(&mut h, "an unread count and a mention on #rust", |h| shows(h, "#rust  (1) @1"));
    h.get_by_label_contains("#rust").click();
    until(&mut h, "the count cleared", |h| !shows(h, "#rust  (1)") && shows(h, "anyone here?"));
}

#[test]
fn scrolling_to_the_top_loads_earlier_history() {
    let server = ServerThread::start(None);
    let mut peer = Peer::join(&server, "bob", None);
    for i in 0..150 {
        peer.say(LOBBY, &format!("old line {i}"));
    }
    // Every line acknowledged (stored) before the window joins.
    peer.rt.block_on(udpchat_client::wait_for(&mut peer.events, WAIT, |e| {
        matches!(e, udpchat_client::ClientEvent::Delivered { msg: udpchat_client::chat::ServerMsg::Line(l), .. } if l.text == "old line 149")
    }))
    .expect("all stored");
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    login_trusting(&mut h, &server, "ana");
    until(&mut h, "the last lines of the lobby", |h| shows(h, "old line 149"));
    let history = |h: &Gui| h.state().servers[0].model.current().lines.iter().filter(|l| l.history).count();
    let before = history(&h);
    assert!(!shows(&h, "old line 60"), "older lines are not loaded yet");
    // Scroll up until the top: the next page is asked for…
    let asked = |h: &Gui| h.state().servers[0].paging.values().any(|p| p.asked_at.is_some());
    until(&mut h, "a page asked for", |h| {
        if !asked(h) {
            h.event(egui::Event::MouseWheel {
                unit: egui::MouseWheelUnit::Page,
                delta: egui::vec2(0.0, 1.0),
                modifiers: egui::Modifiers::NONE,
                source: egui::MouseWheelSource::Wheel,
                phase: egui::TouchPhase::Move,
            });
        }
        asked(h)
    });
    // (A wheel turn moves the view at the end of its frame: one more to see it.)
    h.step();
    assert!(shows(&h, "old line 100"), "at the top");
    // …and put above, the view kept where it was.
    until(&mut h, "the page in the model", |h| history(h) >= before + 40);
    assert!(h.state().servers[0].model.current().lines.iter().any(|l| l.text == "old line 60"));
    // It did not jump to the very top of the new page.
    for _ in 0..3 {
        h.step();
    }
    assert!(!shows(&h, "old line 50"), "the view kept its place instead of jumping to the oldest line");
    assert!(shows(&h, "old line 100"), "the line that was at the top is still in view");
}

#[test]
fn a_paste_of_200_lines_arrives_whole_and_in_order() {
    let server = ServerThread::start(None);
    let mut peer = Peer::join(&server, "bob", None);
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    login_trusting(&mut h, &server, "ana");
    let text: String = (1..=200).map(|i| format!("pasted {i}\n")).collect();
    let input = h.get_by_role_and_label(egui::accesskit::Role::TextInput, "ana");
    input.focus();
    h.step();
    h.event(egui::Event::Paste(text));
    h.step();
    // More than a few lines: asked first, as the terminal client does.
    until(&mut h, "the paste question", |h| shows(h, "Send 200 pasted lines"));
    h.get_by_label("Send them").click();
    h.step();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + WAIT;
    while got.len() < 200 && std::time::Instant::now() < deadline {
        h.step();
        got.extend(peer.lines_from("ana", |t| !t.is_empty()));
    }
    let want: Vec<String> = (1..=200).map(|i| format!("pasted {i}")).collect();
    assert_eq!(got, want);
    until(&mut h, "every line acknowledged", |h| h.state().servers[0].model.pending_lines() == 0);
}

#[test]
fn an_unreachable_server_is_explained_in_the_form() {
    // A port nobody listens on.
    let port = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    login(&mut h, &format!("127.0.0.1:{port}"), "ana", "");
    until(&mut h, "the unreachable error", |h| shows(h, "No answer from"));
    assert!(shows(&h, "the server is running") && shows(&h, "firewall"));
    assert!(h.state().servers.is_empty());
}

#[test]
fn remembered_settings_and_two_servers_at_once() {
    let first = ServerThread::start(None);
    let second = ServerThread::start(None);
    let _peer = Peer::join(&second, "bob", None);
    let dir = tempfile::tempdir().unwrap();
    let p = paths(&dir);
    let mut h = gui(p.clone());
    h.state_mut().form.remember_me = true;
    h.state_mut().form.password = String::new();
    login_trusting(&mut h, &first, "ana");
    // Saved by the network thread: the server and nickname, no password.
    until(&mut h, "the settings file", |_| p.config.exists());
    let saved = udpchat_gui::config::GuiConfig::load(&p.config).unwrap();
    assert_eq!(saved.servers, [first.address()]);
    assert_eq!(saved.nick, "ana");

    // Ctrl+O: the form again, for a second server.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::O);
    h.step();
    login(&mut h, &second.address(), "ana", "");
    until(&mut h, "the second server's key dialog", |h| shows(h, &second.key.to_string()));
    h.get_by_label("Trust this server").click();
    until(&mut h, "two servers", |h| h.state().servers.len() == 2);
    until(&mut h, "both in the side list", |h| shows(h, &first.address()) && shows(h, &second.address()));
    assert!(h.state().servers.iter().all(|v| v.model.conn().is_connected() || v.model.current_room().is_some()));
    let saved = udpchat_gui::config::GuiConfig::load(&p.config).unwrap();
    assert_eq!(saved.servers, [second.address(), first.address()], "most recent first");
}

#[test]
fn a_registered_nickname_and_a_ban_are_explained_in_the_form() {
    let server = ServerThread::with_accounts(None, &[("ana", "s3cret", false), ("op", "0per", true)]);
    let op = Peer::join_as(&server, "op", None, "0per");
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    login(&mut h, &server.address(), "ana", "");
    until(&mut h, "the first-contact dialog", |h| shows(h, "Trust this server"));
    h.get_by_label("Trust this server").click();
    until(&mut h, "the registered-nickname error", |h| shows(h, "is registered"));
    h.step();
    assert!(h.get_by_label("Account password").is_focused(), "the account password gets the focus");
    fill(&mut h, "Account password", "s3cret");
    h.get_by_label("Connect").click();
    until(&mut h, "the chat window", |h| !h.state().servers.is_empty());

    // An operator bans eve; eve is told so in the form.
    op.rt.block_on(op.client.input(udpchat_client::Input::Ban {
        target: "eve".into(),
        reason: "spam".into(),
        expires_secs: 0,
    }));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let mut h = gui(paths(&dir));
    login(&mut h, &server.address(), "eve", "");
    until(&mut h, "the first-contact dialog", |h| shows(h, "Trust this server"));
    h.get_by_label("Trust this server").click();
    until(&mut h, "the ban in the form", |h| shows(h, "You are banned"));
}
