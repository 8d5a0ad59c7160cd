//! Flood control as back-pressure end to end (docs/PROTOCOL.md §15.10):
//! a script pipes more lines into `udpchat send` than the server's burst,
//! and every one is stored, in order, and the command exits 0 (before
//! issue 10 the lines past the burst were refused with RateLimited).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, ServerProc, stored_lines};

#[test]
fn a_piped_send_over_the_burst_stores_every_line_in_order() {
    // The default burst (5) with a faster rate than the default 2/s, so
    // the test waits seconds, not half a minute; the lines past the
    // burst are held by the server all the same.
    let server = ServerProc::start("rate_burst = 5\nrate_per_second = 5\n", &["--quiet"], &[]);
    let known = server.dir.path().join("known_servers");
    let mut child = Command::new(BIN)
        .args(["send", "--nick", "ci", "--timeout", "120", "lobby"])
        .arg("--server")
        .arg(server.addr())
        .arg("--known-servers")
        .arg(&known)
        .env_remove("UDPCHAT_PASSWORD")
        .env_remove("UDPCHAT_ACCOUNT_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start udpchat send");
    let mut stdin = child.stdin.take().unwrap();
    for i in 1..=60 {
        writeln!(stdin, "{i}").unwrap();
    }
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(150);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("udpchat send did not finish");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    assert!(status.success(), "udpchat send failed: {}", String::from_utf8_lossy(&out.stderr));
    let stored: Vec<String> = stored_lines(&server.data_dir(), "lobby").into_iter().map(|l| l.text).collect();
    assert_eq!(stored, (1..=60).map(|i| i.to_string()).collect::<Vec<_>>());
}
