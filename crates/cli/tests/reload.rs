//! Reload without a restart (SIGHUP, as `systemctl reload` sends, and
//! `udpchat admin reload`): the MOTD, limits and the password change for
//! a running server, nobody is dropped, sessions get a fresh Limits
//! (docs/PROTOCOL.md §15.10), what needs a restart is named, and a broken
//! config keeps the settings in use. `udpchat server --check-config`
//! validates without starting.

mod common;

use std::process::Command;
use std::time::Instant;

use common::raw::RawClient;
use common::{BIN, ServerProc, WAIT, run_bounded};
use udpchat_client::chat::{ClientMsg, ServerMsg};

fn hangup(server: &ServerProc) {
    let ok = Command::new("kill").arg("-HUP").arg(server.child.id().to_string()).status().unwrap();
    assert!(ok.success());
}

fn welcome_motd(got: &[ServerMsg]) -> Option<String> {
    got.iter().find_map(|m| match m {
        ServerMsg::Welcome { motd, .. } => Some(motd.clone()),
        _ => None,
    })
}

#[test]
fn sighup_applies_motd_limits_and_password_without_dropping_anyone() {
    let mut server = ServerProc::start("motd = \"before\"\n", &["--console", "off"], &[]);
    let config = server.dir.path().join("server.toml");
    let addr = server.addr().parse().unwrap();
    let mut ana = RawClient::connect(addr);
    let got = ana.login_with("ana", Vec::new());
    assert_eq!(welcome_motd(&got).as_deref(), Some("before"));

    let password = server.dir.path().join("password");
    std::fs::write(&password, "sesame\n").unwrap();
    std::fs::write(
        &config,
        format!(
            "motd = \"after\"\nmax_line_bytes = 1000\nrate_burst = 7\nrate_per_second = 5.0\n\
             idle_timeout_secs = 60\npassword_file = \"{}\"\n",
            password.display()
        ),
    )
    .unwrap();
    hangup(&server);
    server.wait_line(|l| l.contains("reload: motd changed"));
    server.wait_line(|l| l.contains("reload: restart: idle_timeout_secs changed"));

    // Ana, still connected, is told her new limits.
    let mut got = Vec::new();
    let told = ana.pump_until(Instant::now() + WAIT, &mut got, |m| {
        m.iter().any(|m| matches!(m, ServerMsg::Limits { max_line_bytes: 1000, rate_burst: 7, rate_milli: 5000 }))
    });
    assert!(told, "no fresh Limits after the reload: {got:?}");
    // ...and her session works: a line of 1000 bytes is taken, 1001 not.
    ana.send(&ClientMsg::Say { id: 1, room: "lobby".into(), text: "x".repeat(1000), action: false }.to_bytes());
    ana.send(&ClientMsg::Say { id: 2, room: "lobby".into(), text: "x".repeat(1001), action: false }.to_bytes());
    let mut got = Vec::new();
    ana.pump_until(Instant::now() + WAIT, &mut got, |m| {
        m.iter().any(|m| matches!(m, ServerMsg::Error { id: 2, .. }))
            && m.iter().any(|m| matches!(m, ServerMsg::Ack { id: 1, .. }))
    });
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Ack { id: 1, .. })), "{got:?}");
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Error { id: 2, .. })), "{got:?}");

    // Newcomers get the new MOTD, and need the new password.
    let mut bob = RawClient::connect(addr);
    let got = bob.login_with("bob", Vec::new());
    assert!(got.iter().any(|m| matches!(m, ServerMsg::LoginRefused { .. })), "{got:?}");
    assert!(server.child.try_wait().unwrap().is_none(), "the server stopped");

    // A broken config is refused; the settings in use stay.
    std::fs::write(&config, "motd = \n").unwrap();
    let out = run_bounded(Command::new(BIN).args(["admin", "reload", "--data-dir"]).arg(server.data_dir()), WAIT);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && said.contains("reload failed") && said.contains("server.toml"), "{said}");
    std::fs::write(&config, "motd = \"again\"\n").unwrap();
    let out = run_bounded(Command::new(BIN).args(["admin", "reload", "--data-dir"]).arg(server.data_dir()), WAIT);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("motd changed"), "{said}");
    // The password file is gone from the config: the server is open again.
    let mut cat = RawClient::connect(addr);
    let got = cat.login_with("cat", Vec::new());
    assert_eq!(welcome_motd(&got).as_deref(), Some("again"), "{got:?}");
    // Ana was never dropped.
    let mut got = Vec::new();
    ana.send(&ClientMsg::Say { id: 3, room: "lobby".into(), text: "still here".into(), action: false }.to_bytes());
    let acked = ana
        .pump_until(Instant::now() + WAIT, &mut got, |m| m.iter().any(|m| matches!(m, ServerMsg::Ack { id: 3, .. })));
    assert!(acked, "{got:?}");
}

#[test]
fn check_config_validates_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, "motd = \"hi\"\nmetrics_listen = \"127.0.0.1:9667\"\n").unwrap();
    let run = |config: &std::path::Path| {
        run_bounded(
            Command::new(BIN)
                .args(["server", "--check-config", "--config"])
                .arg(config)
                .arg("--data-dir")
                .arg(dir.path().join("data"))
                .env_remove("UDPCHAT_SERVER_PASSWORD"),
            WAIT,
        )
    };
    let out = run(&config);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("settings are valid"), "{said}");
    assert!(!dir.path().join("data").exists(), "--check-config must not create the data directory");
    std::fs::write(&config, "rate_burst = 0\n").unwrap();
    let out = run(&config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("rate_burst"), "{err}");
}
