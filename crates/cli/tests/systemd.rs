//! Running as a systemd service: the unit in contrib/systemd passes
//! `systemd-analyze verify` (with the binary and its man page where the
//! unit expects them), and the server tells systemd it is ready
//! (Type=notify) only once it listens, and that it is stopping on SIGTERM.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, ServerProc, WAIT, run_bounded, tool_or_skip};

const UNIT: &str = include_str!("../../../contrib/systemd/udpchat.service");

#[test]
fn the_unit_file_verifies() {
    if !tool_or_skip("systemd-analyze", "systemd", "the unit file check") {
        return;
    }
    // verify checks that ExecStart's binary exists and that the man page
    // named in Documentation= opens: point both at what this build makes.
    assert!(UNIT.contains("ExecStart=/usr/local/bin/udpchat server"), "ExecStart moved; update this test");
    let dir = tempfile::tempdir().unwrap();
    let man = dir.path().join("man/man1");
    std::fs::create_dir_all(&man).unwrap();
    let out = run_bounded(Command::new(BIN).arg("manpage").arg("--dir").arg(&man), WAIT);
    assert!(out.status.success());
    let unit = dir.path().join("udpchat.service");
    std::fs::write(&unit, UNIT.replace("/usr/local/bin/udpchat", BIN)).unwrap();
    let out = run_bounded(
        Command::new("systemd-analyze").arg("verify").arg(&unit).env("MANPATH", dir.path().join("man")),
        WAIT,
    );
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");

    for needed in [
        "Type=notify",
        "DynamicUser=yes",
        "StateDirectory=udpchat",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "--console off",
    ] {
        assert!(UNIT.lines().any(|l| l.contains(needed)), "the unit lacks {needed}");
    }
}

/// Reads notifications from the socket until one contains `what`.
fn wait_notification(socket: &UnixDatagram, what: &str) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
            let hit = msg.lines().any(|l| l == what);
            seen.push(msg);
            if hit {
                return seen;
            }
        }
    }
    panic!("no {what} notification; got {seen:?}");
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().expect("run kill");
    assert!(ok.success());
}

#[test]
fn readiness_after_listening_and_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let notify = Path::new(&path).to_str().unwrap();
    // start() returns once the server printed its address: READY=1 must
    // come by then (sent after the socket is bound and the store open).
    let server = ServerProc::start("", &["--console", "off"], &[("NOTIFY_SOCKET", notify)]);
    assert!(server.port != 0);
    let seen = wait_notification(&socket, "READY=1");
    assert_eq!(seen.len(), 1, "{seen:?}");
    signal(server.child.id(), "TERM");
    wait_notification(&socket, "STOPPING=1");
}
