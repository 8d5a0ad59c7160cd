//! End-to-end: the server's life as clients see it — a graceful shutdown
//! on SIGTERM that tells everyone, IPv6, and clients that reconnect and
//! rejoin their rooms after the server is killed and restarted.

mod common;

use std::process::Command;

use common::{ServerProc, expect, login};
use udpchat_client::chat::{NoticeKind, ServerMsg};
use udpchat_client::{ClientEvent, Input};

#[tokio::test]
async fn sigterm_tells_clients_the_server_is_going_away() {
    let mut server = ServerProc::start("", &["--console", "off"], &[]);
    let (_ana, mut ana_ev) = login(server.options("ana")).await;
    let status = Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap();
    assert!(status.success());
    expect(&mut ana_ev, "the shutdown notice", |e| {
        matches!(e, ClientEvent::Server(ServerMsg::Notice { kind: NoticeKind::Server, text, .. }) if text.contains("shutting down"))
    })
    .await;
    expect(&mut ana_ev, "the session to end", |e| matches!(e, ClientEvent::Disconnected { .. })).await;
    server.wait_line(|l| l == "server stopped");
    let code = server.child.wait().unwrap();
    assert!(code.success(), "{code:?}");
}

#[tokio::test]
async fn ipv6_loopback_works() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::BIN)
        .args(["server", "--listen", "[::1]:0", "--console", "off", "--data-dir"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let line = lines.next().unwrap().unwrap();
    // Keep reading the console so the server's pipe stays open.
    std::thread::spawn(move || lines.for_each(drop));
    let addr = line.rsplit(' ').next().unwrap().to_owned();
    assert!(addr.starts_with("[::1]:"), "{line}");
    let mut options = udpchat_client::ClientOptions::new(&addr, "six");
    options.known_hosts = Some(dir.path().join("known"));
    let (client, mut events) = login(options).await;
    client.say("lobby", "over IPv6").await;
    expect(&mut events, "the ack", |e| matches!(e, ClientEvent::Delivered { .. })).await;
    let _ = child.kill();
    let _ = child.wait();
}

/// By default a restarted server ignores packets for sessions it does not
/// know, so clients notice within the idle timeout (5 s here).
#[tokio::test]
async fn clients_reconnect_and_rejoin_after_a_server_restart() {
    restart_scenario("idle_timeout_secs = 5\n").await;
}

/// With stateless resets on, they notice as soon as they send anything.
#[tokio::test]
async fn stateless_reset_makes_reconnection_immediate() {
    restart_scenario("stateless_reset = true\n").await;
}

async fn restart_scenario(config: &str) {
    let server = ServerProc::start(config, &["--console", "off"], &[]);
    let port = server.port.to_string();
    let mut options = server.options("ana");
    options.reconnect = true;
    let (ana, mut ana_ev) = login(options).await;
    ana.input(Input::Join("rust".into())).await;
    expect(
        &mut ana_ev,
        "joined #rust",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Joined { room, .. }) if room == "rust"),
    )
    .await;

    // Kill -9: no goodbye. Restart on the same port and data directory, so
    // the key the client pinned is the same.
    let dir = server.kill();
    let restarted =
        ServerProc::start_in(dir, config, &["--console", "off", "--listen", &format!("127.0.0.1:{port}")], &[]);
    assert_eq!(restarted.port.to_string(), port);

    // What ana sends now reaches a server that does not know her session.
    ana.say("rust", "lost in the restart").await;
    expect(&mut ana_ev, "a reconnect attempt", |e| matches!(e, ClientEvent::Disconnected { reconnecting: true, .. }))
        .await;
    expect(
        &mut ana_ev,
        "rejoining #rust",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Joined { room, .. }) if room == "rust"),
    )
    .await;
    let (_bob, mut bob_ev) = login(restarted.options("bob")).await;
    bob_ev.close();
    ana.say("rust", "back again").await;
    expect(&mut ana_ev, "the ack", |e| matches!(e, ClientEvent::Delivered { .. })).await;
}

/// On the default dual-stack socket, IPv4 clients arrive as
/// ::ffff:a.b.c.d; banning a.b.c.d must still close them.
#[tokio::test]
async fn banning_an_ipv4_address_works_on_a_dual_stack_socket() {
    let mut server = ServerProc::start("", &["--console", "on", "--listen", "[::]:0"], &[]);
    let (_ana, mut ana_ev) = login(server.options("ana")).await;
    server.wait_line(|l| l.contains("ana logged in from 127.0.0.1:"));
    server.type_line("/ban 127.0.0.1 testing");
    let seen = expect(&mut ana_ev, "the client to stop", |e| matches!(e, ClientEvent::Closed { .. })).await;
    assert!(
        seen.iter().any(|e| matches!(e, ClientEvent::Disconnected { reason, .. } if reason.contains("banned"))),
        "{seen:?}"
    );
}
