//! What an operator's log shows: with UDPCHAT_LOG=info and
//! `--log-format json`, every line on standard error is one JSON object
//! with a level, a target and the event's fields; a login, a kick and a
//! refused login are there by name with their fields; passwords and what
//! people say are not (the console's chat record on standard output is
//! unchanged).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::raw::RawClient;
use common::{BIN, WAIT, line_channel};
use udpchat_client::chat::{ClientMsg, ServerMsg};

#[test]
fn json_logs_name_events_without_secrets_or_chat_text() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "hunter2-secret\n").unwrap();
    let mut child = Command::new(BIN)
        .args(["server", "--console", "on", "--log-format", "json", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--password-file")
        .arg(&password)
        .env("UDPCHAT_LOG", "info")
        .env_remove("UDPCHAT_SERVER_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = line_channel(child.stdout.take().unwrap());
    let stderr = line_channel(child.stderr.take().unwrap());
    let mut stdin = child.stdin.take().unwrap();
    let kill = scopeguard(child);
    let first = stdout.recv_timeout(WAIT).expect("the listening line");
    let port: u16 = first.rsplit(':').next().unwrap().trim().parse().unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();

    // A refused login (no password), then a good one that says something.
    let mut eve = RawClient::connect(addr);
    let got = eve.login_with("eve", Vec::new());
    assert!(got.iter().any(|m| matches!(m, ServerMsg::LoginRefused { .. })), "{got:?}");
    let mut ana = RawClient::connect(addr);
    ana.pump(Duration::from_millis(300));
    let login = ClientMsg::Login {
        nick: "ana".into(),
        server_password: "hunter2-secret".into(),
        account_password: String::new(),
        resume: Vec::new(),
        private_since: 0,
        origin: 0,
    };
    ana.send(&login.to_bytes());
    let mut got = Vec::new();
    ana.pump_until(Instant::now() + WAIT, &mut got, |m| m.iter().any(|m| matches!(m, ServerMsg::Joined { .. })));
    ana.send(
        &ClientMsg::Say { id: 1, room: "lobby".into(), text: "my private thoughts".into(), action: false }.to_bytes(),
    );
    let mut got = Vec::new();
    ana.pump_until(Instant::now() + WAIT, &mut got, |m| m.iter().any(|m| matches!(m, ServerMsg::Ack { id: 1, .. })));
    use std::io::Write;
    writeln!(stdin, "/kick ana behave").unwrap();
    stdin.flush().unwrap();

    // Collect the log until the kick is in it.
    let mut events = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !events.iter().any(|e: &serde_json::Value| e["message"] == "kick") {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = stderr.recv_timeout(left).expect("the kick never showed in the log");
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line}"));
        assert!(event["level"].is_string() && event["target"].is_string() && event["timestamp"].is_string(), "{line}");
        assert!(!line.contains("hunter2") && !line.contains("my private thoughts"), "a secret in the log: {line}");
        events.push(event);
    }
    let named = |name: &str| events.iter().find(|e| e["message"] == name).cloned();
    let login = named("login").expect("a login event");
    assert_eq!(login["nick"], "ana");
    assert!(login["addr"].as_str().is_some_and(|a| a.starts_with("127.0.0.1:")), "{login}");
    assert_eq!(login["level"], "INFO");
    let refused = named("login refused").expect("a refused login event");
    assert!(refused["addr"].is_string(), "{refused}");
    let kick = named("kick").unwrap();
    assert_eq!((kick["nick"].as_str(), kick["reason"].as_str()), (Some("ana"), Some("behave")));
    // The console's chat record keeps the text, as before.
    let deadline = Instant::now() + WAIT;
    loop {
        let line = stdout.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("console line");
        if line.contains("#lobby <ana> my private thoughts") {
            break;
        }
    }
    drop(kill);
}

/// Kills the child when dropped (a failed assertion included).
fn scopeguard(child: std::process::Child) -> impl Drop {
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    Kill(child)
}
