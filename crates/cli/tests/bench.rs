//! End-to-end: `udpchat bench` against the real server binary on loopback,
//! with tiny numbers. It checks the bench's accounting and udpchat's
//! promise (every acknowledged line reaches every other member exactly
//! once, with or without loss), never speed: wall-clock figures depend on
//! the machine.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{BIN, ServerProc, run_bounded};

/// Flood limits lifted, as for any benchmark; fsync at checkpoints only.
const CONFIG: &str = "rate_per_second = 0\nconsole_log = false\nhistory_sync = \"normal\"\n";

fn bench(server: &ServerProc, duration: &str, extra: &[&str]) -> serde_json::Value {
    let target = format!("udpchat://{}", server.addr());
    let pid = server.child.id().to_string();
    let mut cmd = Command::new(BIN);
    cmd.args(["bench", "--target", &target, "--clients", "5", "--senders", "2", "--lines", "200", "--json"])
        .args(["--duration", duration, "--drain", "10", "--server-pid", &pid])
        .args(extra);
    let out = run_bounded(&mut cmd, Duration::from_secs(90));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("bench printed no JSON ({e}): {stdout}"))
}

fn num(report: &serde_json::Value, key: &str) -> u64 {
    report[key].as_u64().unwrap_or_else(|| panic!("{key} missing from {report:#}"))
}

#[test]
fn every_acknowledged_line_reaches_every_other_member_once() {
    let server = ServerProc::start(CONFIG, &["--console", "off"], &[]);
    let r = bench(&server, "30", &[]);
    assert_eq!(num(&r, "connected"), 5, "{r:#}");
    assert_eq!(num(&r, "lines_sent"), 200, "{r:#}");
    assert_eq!(num(&r, "lines_acked"), 200, "{r:#}");
    // 200 lines, each to the 4 members other than its sender.
    assert_eq!(num(&r, "deliveries_expected"), 800, "{r:#}");
    assert_eq!(num(&r, "deliveries_received"), 800, "{r:#}");
    assert_eq!(num(&r, "lost"), 0, "{r:#}");
    assert_eq!(num(&r, "duplicates"), 0, "{r:#}");
    assert_eq!(num(&r, "out_of_order"), 0, "{r:#}");
    assert_eq!(r["latency_us"]["samples"].as_u64(), Some(800), "{r:#}");
    assert_eq!(r["server"]["pid"].as_u64(), Some(u64::from(server.child.id())), "{r:#}");
}

#[test]
fn nothing_is_lost_or_doubled_when_a_tenth_of_datagrams_are_dropped() {
    let server = ServerProc::start(CONFIG, &["--console", "off"], &[]);
    let r = bench(&server, "30", &["--drop", "0.1"]);
    assert_eq!(num(&r, "lines_sent"), 200, "{r:#}");
    assert_eq!(num(&r, "lost"), 0, "{r:#}");
    assert_eq!(num(&r, "duplicates"), 0, "{r:#}");
    assert_eq!(num(&r, "deliveries_received"), num(&r, "deliveries_expected"), "{r:#}");
    // Every line was acknowledged or the bench says which were not.
    assert_eq!(num(&r, "lines_acked") + num(&r, "lines_unconfirmed") + num(&r, "lines_refused"), 200, "{r:#}");
}

#[test]
fn idle_sessions_are_held_and_reported() {
    let server = ServerProc::start(CONFIG, &["--console", "off"], &[]);
    let r = bench(&server, "0.5", &["--idle", "--rooms", "2"]);
    assert_eq!(r["mode"], "idle", "{r:#}");
    assert_eq!(num(&r, "connected"), 5, "{r:#}");
    assert_eq!(num(&r, "lines_sent"), 0, "{r:#}");
    assert!(r["handshakes_per_sec"].as_f64().is_some_and(|h| h > 0.0), "{r:#}");
    assert!(num(&r["server"], "rss_kib_after") > 0, "{r:#}");
}

#[test]
fn a_wrong_password_is_a_clear_error_and_the_right_one_gets_in() {
    let server = ServerProc::start(CONFIG, &["--console", "off"], &[("UDPCHAT_SERVER_PASSWORD", "GAS1")]);
    let target = format!("udpchat://{}", server.addr());
    let run = |password: &str| {
        let mut cmd = Command::new(BIN);
        cmd.args(["bench", "--target", &target, "--clients", "3", "--senders", "1", "--lines", "10", "--json"])
            .env("UDPCHAT_PASSWORD", password);
        run_bounded(&mut cmd, Duration::from_secs(60))
    };
    let out = run("wrong");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a bench that could not log in succeeded: {stderr}");
    assert!(stderr.contains("login refused: wrong server password"), "{stderr}");
    let out = run("GAS1");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(num(&r, "deliveries_received"), 20, "{r:#}");
}
