//! Bad configuration and arguments: a clear error naming the setting or
//! file, a non-zero exit, and never a panic.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_udpchat");

/// Runs udpchat with `args`; returns (exit success, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("UDPCHAT_SERVER_PASSWORD").env_remove("UDPCHAT_NICK");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run udpchat");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "udpchat panicked: {stderr}");
    (out.status.success(), stderr)
}

#[test]
fn server_reports_bad_settings_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let config = dir.path().join("c.toml");
    let config_s = config.to_str().unwrap();

    let (ok, err) = run(&["server", "--listen", "not-an-address"], &[]);
    assert!(!ok && err.contains("--listen"), "{err}");

    std::fs::write(&config, "max_line_bytes = 0\n").unwrap();
    let (ok, err) = run(&["server", "--data-dir", data, "--config", config_s, "--listen", "127.0.0.1:0"], &[]);
    assert!(!ok && err.contains("max_line_bytes"), "{err}");

    std::fs::write(&config, "motd = \n").unwrap();
    let (ok, err) = run(&["server", "--data-dir", data, "--config", config_s], &[]);
    assert!(!ok && err.contains("c.toml"), "{err}");

    std::fs::write(&config, "no_such_setting = 1\n").unwrap();
    let (ok, err) = run(&["server", "--data-dir", data, "--config", config_s], &[]);
    assert!(!ok && err.contains("no_such_setting"), "{err}");

    let (ok, err) = run(&["server", "--data-dir", data, "--config", "/nonexistent/udpchat.toml"], &[]);
    assert!(!ok && err.contains("/nonexistent/udpchat.toml"), "{err}");

    let (ok, err) =
        run(&["server", "--data-dir", data, "--password-file", "/nonexistent/pw", "--listen", "127.0.0.1:0"], &[]);
    assert!(!ok && err.contains("/nonexistent/pw"), "{err}");
    // The cause is said once, not twice.
    assert_eq!(err.matches("No such file").count(), 1, "{err}");

    // A corrupt key file is not silently replaced: clients pinned the old key.
    std::fs::create_dir_all(data).unwrap();
    std::fs::write(dir.path().join("data/server.key"), "garbage").unwrap();
    let (ok, err) = run(&["server", "--data-dir", data, "--listen", "127.0.0.1:0"], &[]);
    assert!(!ok && err.contains("server.key"), "{err}");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let (ok, err) = run(&["server", "--listen", &addr, "--data-dir", dir.path().to_str().unwrap()], &[]);
    assert!(!ok && err.contains(&addr), "{err}");
}

#[test]
fn clients_report_bad_arguments() {
    // An impossible port fails before any name lookup (no DNS traffic).
    let (ok, err) = run(&["send", "--nick", "a", "--server", "127.0.0.1:99999", "lobby", "x"], &[]);
    assert!(!ok && err.contains("127.0.0.1:99999"), "{err}");
    let (ok, err) = run(&["send", "--nick", "a", "--server-key", "short", "lobby", "x"], &[]);
    assert!(!ok && err.contains("--server-key"), "{err}");
    let (ok, err) = run(&["send", "lobby", "x"], &[]);
    assert!(!ok && err.contains("nickname"), "{err}");
    let (ok, err) = run(&["frobnicate"], &[]);
    assert!(!ok && err.contains("frobnicate"), "{err}");
}
