//! `udpchat admin` against a server run as a service (`--console off`):
//! every command reaches the running server over the admin socket, is
//! handled by the console's own code, and its answer comes back to the
//! admin client; the socket is owner-only; without a server the error
//! says so.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::raw::RawClient;
use common::{BIN, ServerProc, WAIT, run_bounded};
use udpchat_client::chat::{NoticeKind, ServerMsg};

/// Runs `udpchat admin --data-dir DIR ARGS…`: (exit success, stdout, stderr).
fn admin(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = run_bounded(Command::new(BIN).arg("admin").arg("--data-dir").arg(data_dir).args(args), WAIT);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

fn pump_for(client: &mut RawClient, what: &str, pred: impl Fn(&ServerMsg) -> bool) -> Vec<ServerMsg> {
    let mut got = Vec::new();
    let found = client.pump_until(Instant::now() + WAIT, &mut got, |m| m.iter().any(&pred));
    assert!(found, "never got {what}; got {got:?}");
    got
}

#[test]
fn admin_commands_reach_a_server_without_a_console() {
    let mut server = ServerProc::start("", &["--console", "off"], &[]);
    server.wait_line(|l| l.starts_with("admin socket: "));
    let data = server.data_dir();
    let mode = std::fs::metadata(data.join("admin.sock")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the admin socket must be owner-only");

    let addr = server.addr().parse().unwrap();
    let mut ana = RawClient::connect(addr);
    ana.login("ana");
    ana.pump(Duration::from_millis(200));

    let (ok, out, err) = admin(&data, &["who"]);
    assert!(ok && out.contains("#lobby: ana"), "{out}{err}");
    let (ok, out, _) = admin(&data, &["list"]);
    assert!(ok && out.contains("1 sessions") && out.contains("#lobby (1)"), "{out}");

    let (ok, out, _) = admin(&data, &["say", "lobby", "maintenance", "at", "noon"]);
    assert!(ok && out.contains("said in #lobby"), "{out}");
    pump_for(
        &mut ana,
        "the operator's line",
        |m| matches!(m, ServerMsg::Line(l) if l.from == "operator" && l.text == "maintenance at noon"),
    );

    let (ok, out, _) = admin(&data, &["msg", "ana", "just", "you"]);
    assert!(ok && out.contains("-> ana: just you"), "{out}");
    pump_for(
        &mut ana,
        "the private message",
        |m| matches!(m, ServerMsg::Private { from, text, .. } if from == "operator" && text == "just you"),
    );

    let (ok, out, _) = admin(&data, &["topic", "lobby", "read", "the", "rules"]);
    assert!(ok && out.contains("set the topic of #lobby: read the rules"), "{out}");
    pump_for(&mut ana, "the topic", |m| matches!(m, ServerMsg::Notice { kind: NoticeKind::Topic, .. }));

    let (ok, out, _) = admin(&data, &["ban", "eve", "2h", "flooding"]);
    assert!(ok && out.contains("eve banned for 2h by operator"), "{out}");
    let (ok, out, _) = admin(&data, &["unban", "eve"]);
    assert!(ok && out.contains("eve unbanned by operator"), "{out}");

    let (ok, out, _) = admin(&data, &["stats"]);
    assert!(ok && out.contains("sessions: 1 logged in") && out.contains("lines accepted: 1"), "{out}");

    // Errors come back as errors (exit 1), not silence.
    let (ok, out, _) = admin(&data, &["say", "nowhere", "hello?"]);
    assert!(!ok && out.contains("no room #nowhere"), "{out}");
    let (ok, out, _) = admin(&data, &["kick", "nobody"]);
    assert!(ok && out.contains("nobody called nobody is online"), "{out}");

    let (ok, out, _) = admin(&data, &["kick", "ana", "enough"]);
    assert!(ok && out.contains("ana left (kicked: enough)"), "{out}");
    let (_, out, _) = admin(&data, &["who"]);
    assert!(!out.contains("ana"), "{out}");
    // The console still records what admin did.
    server.wait_line(|l| l.contains("#lobby <operator!> maintenance at noon"));
}

#[test]
fn admin_says_when_no_server_is_running() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, err) = admin(dir.path(), &["who"]);
    assert!(!ok && err.contains("the server is not running"), "{err}");
    assert!(err.contains(&dir.path().display().to_string()), "{err}");

    // A server that stopped leaves no socket behind to mislead.
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let data = server.data_dir();
    assert!(data.join("admin.sock").exists());
    let ok = Command::new("kill").arg("-TERM").arg(server.child.id().to_string()).status().unwrap();
    assert!(ok.success());
    let deadline = Instant::now() + WAIT;
    while data.join("admin.sock").exists() {
        assert!(Instant::now() < deadline, "admin.sock left behind after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (ok, _, err) = admin(&data, &["who"]);
    assert!(!ok && err.contains("the server is not running"), "{err}");
    drop(server);
}
