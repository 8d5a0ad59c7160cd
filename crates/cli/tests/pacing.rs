//! Issue 10, client side, through the binary: `udpchat send` and `chat
//! --plain` pace their lines to the server's rate (the reference defaults
//! until the server sends Limits), deliver every line in order, to the room
//! asked for, end within `--timeout` naming the lines left, and end at once
//! with a non-zero code when the login is refused.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{ServerProc, expect, lines, login};
use udpchat_client::ClientEvent;
use udpchat_client::chat::ServerMsg;

/// The reference rate, so the client's assumed pacing is exactly right.
const CONFIG: &str = "rate_burst = 5\nrate_per_second = 2.0\n";

/// Runs `udpchat ARGS` with `input` on stdin; kills it (failing the test)
/// if it has not finished within `limit` (a hang, not a timing check).
fn run_with_input(server: &ServerProc, args: &[&str], input: &str, limit: Duration) -> Output {
    let mut child = Command::new(common::BIN)
        .args(args)
        .args(["--server", &server.addr(), "--known-servers"])
        .arg(server.dir.path().join("known_servers"))
        .env_remove("UDPCHAT_PASSWORD")
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start udpchat");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!("udpchat {args:?} still running after {limit:?}; stderr: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = writer.join();
    child.wait_with_output().expect("output")
}

fn numbers(n: usize) -> String {
    (1..=n).map(|i| format!("{i}\n")).collect()
}

/// Lines from `nick` that `events` carry, in order.
fn texts_from(events: &[ClientEvent], nick: &str) -> Vec<String> {
    lines(events).into_iter().filter(|(from, _)| from == nick).map(|(_, t)| t).collect()
}

#[tokio::test]
async fn send_paces_itself_and_delivers_every_line_in_order() {
    let server = ServerProc::start(CONFIG, &["--console", "off"], &[]);
    let (_bob, mut bob_ev) = login(server.options("bob")).await;
    // Twice the burst: without pacing the server refuses some (RateLimited).
    let out = run_with_input(&server, &["send", "--nick", "bot"], &numbers(12), Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let seen = expect(
        &mut bob_ev,
        "the 12th line",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Line(l)) if l.text == "12"),
    )
    .await;
    let want: Vec<String> = (1..=12).map(|i| i.to_string()).collect();
    assert_eq!(texts_from(&seen, "bot"), want);
}

#[tokio::test]
async fn send_ends_at_its_timeout_naming_the_lines_left() {
    let server = ServerProc::start(CONFIG, &["--console", "off"], &[]);
    // This hung past its timeout before issue 10.
    let out = run_with_input(
        &server,
        &["send", "--nick", "bot", "--timeout", "2"],
        &numbers(10_000),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("timed out after 2 s"), "{stderr}");
    assert!(stderr.contains("of 10000 line(s) not acknowledged"), "{stderr}");
    assert!(stderr.contains("-10000)"), "the range runs to the last line: {stderr}");
    assert!(!stderr.contains("refused"), "paced, so nothing refused for speed: {stderr}");
}

#[tokio::test]
async fn plain_sends_every_line_to_its_room_before_leaving() {
    let server = ServerProc::start(CONFIG, &["--console", "off"], &[]);
    let mut bob_options = server.options("bob");
    bob_options.rooms.push("ops".into());
    let (_bob, mut bob_ev) = login(bob_options).await;
    expect(
        &mut bob_ev,
        "bob in #ops",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Joined { room, .. }) if room == "ops"),
    )
    .await;
    // Typed before #ops is joined: they wait for it, none lands in the lobby.
    let out = run_with_input(
        &server,
        &["chat", "--plain", "--nick", "ana", "--room", "ops", "--linger", "0"],
        &numbers(12),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let seen = expect(
        &mut bob_ev,
        "the 12th line",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Line(l)) if l.text == "12"),
    )
    .await;
    let in_ops: Vec<String> = seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Server(ServerMsg::Line(l)) if l.from == "ana" => Some(format!("#{} {}", l.room, l.text)),
            _ => None,
        })
        .collect();
    let want: Vec<String> = (1..=12).map(|i| format!("#ops {i}")).collect();
    assert_eq!(in_ops, want);
}

#[tokio::test]
async fn plain_stops_at_once_on_a_wrong_password() {
    let server = ServerProc::start("", &["--console", "off"], &[("UDPCHAT_SERVER_PASSWORD", "GAS1")]);
    let out = run_with_input(&server, &["chat", "--plain", "--nick", "ana"], "hello\n", Duration::from_secs(20));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("login refused"), "{stdout}");
    assert!(!stdout.contains("reconnecting"), "no retry after a refusal: {stdout}");
}

#[tokio::test]
async fn plain_takes_another_nickname_after_a_refusal() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let (_ana, mut ana_ev) = login(server.options("ana")).await;
    let out = run_with_input(
        &server,
        &["chat", "--plain", "--nick", "ana", "--linger", "1"],
        "ana2\nhello from ana2\n",
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("type another nickname"), "{stdout}");
    let seen = expect(&mut ana_ev, "the line", |e| matches!(e, ClientEvent::Server(ServerMsg::Line(_)))).await;
    assert_eq!(lines(&seen), [("ana2".to_owned(), "hello from ana2".to_owned())]);
}

#[test]
fn an_unreachable_server_is_named_within_seconds() {
    // A port nobody listens on (bound, read back, released).
    let port = std::net::UdpSocket::bind("127.0.0.1:0").and_then(|s| s.local_addr()).expect("a free port").port();
    let addr = format!("127.0.0.1:{port}");
    let known = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(common::BIN);
    cmd.args(["send", "--server", &addr, "--nick", "bot", "--timeout", "5", "--known-servers"])
        .arg(known.path().join("known_servers"))
        .args(["lobby", "hello"])
        .env("RUST_BACKTRACE", "0");
    let out = common::run_bounded(&mut cmd, Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("no answer from {addr} — is the server running, is the address right?")),
        "{stderr}"
    );
    assert!(stderr.contains("timed out after 5 s: 1 of 1 line(s) not acknowledged (line 1)"), "{stderr}");
}

/// `chat --plain --room ops` keeps typing into #ops across a kill -9 and
/// restart of the server (it used to make every Joined the current room,
/// and the rejoin of the lobby came last).
#[tokio::test]
async fn plain_keeps_its_room_across_a_server_restart() {
    let config = "stateless_reset = true\n";
    let server = ServerProc::start(config, &["--console", "off"], &[]);
    let port = server.port;
    let mut ana = Command::new(common::BIN)
        .args(["chat", "--plain", "--nick", "ana", "--room", "ops", "--linger", "0", "--server", &server.addr()])
        .arg("--known-servers")
        .arg(server.dir.path().join("known_servers"))
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chat --plain");
    let mut stdin = ana.stdin.take().expect("stdin");
    let out = common::line_channel(ana.stdout.take().expect("stdout"));
    let wait_out = |what: &str, pred: &dyn Fn(&str) -> bool| {
        let deadline = Instant::now() + common::WAIT * 2;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match out.recv_timeout(left) {
                Ok(l) if pred(&l) => return,
                Ok(_) => {}
                Err(_) => panic!("chat --plain never showed {what}"),
            }
        }
    };
    writeln!(stdin, "before").unwrap();
    wait_out("the first line confirmed", &|l| l.contains("#ops <ana> before") || l.contains("<ana> before"));

    let dir = server.kill();
    let restarted = ServerProc::restart(dir, port, config, &["--console", "off"]);
    let mut bob_options = restarted.options("bob");
    bob_options.rooms.push("ops".into());
    let (_bob, mut bob_ev) = login(bob_options).await;
    // Typed while ana's client finds out and reconnects.
    writeln!(stdin, "after").unwrap();
    wait_out("the rejoin of #ops", &|l| l.contains("you joined #ops"));
    writeln!(stdin, "after the rejoin").unwrap();
    let seen = expect(
        &mut bob_ev,
        "ana's last line",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Line(l)) if l.text == "after the rejoin"),
    )
    .await;
    let from_ana: Vec<(String, String)> = seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Server(ServerMsg::Line(l)) if l.from == "ana" => Some((l.room.clone(), l.text.clone())),
            _ => None,
        })
        .collect();
    assert!(from_ana.iter().all(|(room, _)| room == "ops"), "every line in #ops: {from_ana:?}");
    drop(stdin);
    let _ = ana.kill();
    let _ = ana.wait();
}
