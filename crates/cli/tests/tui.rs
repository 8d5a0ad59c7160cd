//! End-to-end: the full-screen client as a person uses it. The real
//! `udpchat server` runs on a loopback port, `udpchat chat` runs inside a
//! private tmux server (keys typed with send-keys, the screen read with
//! capture-pane), and a `udpchat chat --plain` child talks to it. Without
//! tmux it is skipped with a message, except under CI (the `CI` variable
//! set), where it fails: CI installs tmux, and a skip there would hide the
//! test for good.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{BIN, ServerProc, WAIT};

/// How often the screen and outputs are looked at while waiting.
const POLL: Duration = Duration::from_millis(100);

/// Kills the tmux server and the other client however the test ends, so a
/// failed assertion leaves no processes behind.
struct Cleanup {
    socket: String,
    tmux_dir: std::path::PathBuf,
    children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = tmux_command(&self.socket, &self.tmux_dir)
            .arg("kill-server")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn tmux_installed() -> bool {
    Command::new("tmux").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// CI services set `CI` (to `true`, usually); .ci/run sets it too.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether the test can run: false (after saying so) when tmux is missing
/// on a developer's machine; a failure when it is missing under CI.
fn tmux_available_or_skip() -> bool {
    if tmux_installed() {
        return true;
    }
    assert!(
        !in_ci(),
        "tmux is not installed but CI is set: install tmux (apt-get install tmux, as .ci/run does) \
         so the full-screen client is tested, or unset CI to skip this test"
    );
    eprintln!("skipping the full-screen client test: tmux is not installed (install it to run this test)");
    false
}

/// A tmux command on our own server: its own socket, no user config, and
/// none of the caller's tmux or udpchat settings.
fn tmux_command(socket: &str, tmux_dir: &Path) -> Command {
    let mut cmd = Command::new("tmux");
    cmd.args(["-L", socket, "-f", "/dev/null"]).env("TMUX_TMPDIR", tmux_dir).env_remove("TMUX");
    without_udpchat_settings(&mut cmd);
    cmd
}

/// A password or pinned key in the caller's environment would change
/// what the clients do.
fn without_udpchat_settings(cmd: &mut Command) {
    for (key, _) in std::env::vars() {
        if key.starts_with("UDPCHAT_") {
            cmd.env_remove(key);
        }
    }
}

fn tmux(cleanup: &Cleanup, args: &[&str]) -> String {
    let out = tmux_command(&cleanup.socket, &cleanup.tmux_dir).args(args).output().expect("run tmux");
    assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn screen(cleanup: &Cleanup) -> String {
    tmux(cleanup, &["capture-pane", "-p", "-t", "tui"])
}

/// Polls the screen until `pred` holds; panics with the screen after [`WAIT`].
fn wait_screen(cleanup: &Cleanup, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let shown = screen(cleanup);
        if pred(&shown) {
            return shown;
        }
        assert!(Instant::now() < deadline, "the screen never showed {what}:\n{shown}");
        std::thread::sleep(POLL);
    }
}

/// The bottom line of the screen: the input line.
fn input_line(shown: &str) -> String {
    shown.lines().last().unwrap_or_default().trim_end().to_owned()
}

/// Quotes for the `sh -c` that tmux runs the command with.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The plain client's output lines, as they come.
struct Plain {
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Plain {
    fn start(cleanup: &mut Cleanup, addr: &str, nick: &str, home: &Path) -> Plain {
        let mut cmd = Command::new(BIN);
        cmd.args(["chat", "--plain", "--server", addr, "--nick", nick, "--known-servers"])
            .arg(home.join("known_servers_plain"))
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        without_udpchat_settings(&mut cmd);
        let mut child = cmd.spawn().expect("start udpchat chat --plain");
        let stdin = child.stdin.take().expect("piped stdin");
        let lines = common::line_channel(child.stdout.take().expect("piped stdout"));
        cleanup.children.push(child);
        Plain { stdin, lines, seen: Vec::new() }
    }

    fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
        let deadline = Instant::now() + WAIT;
        if self.seen.iter().any(|l| pred(l)) {
            return;
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let hit = pred(&line);
                    self.seen.push(line);
                    if hit {
                        return;
                    }
                }
                Err(_) => panic!("the plain client never showed {what}; it showed:\n{}", self.seen.join("\n")),
            }
        }
    }

    fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the plain client");
        self.stdin.flush().expect("flush the plain client");
    }
}

#[test]
fn typed_lines_go_out_and_replies_show_on_screen() {
    if !tmux_available_or_skip() {
        return;
    }
    let started = Instant::now();
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let addr = server.addr();
    let home = tempfile::tempdir().expect("temp dir");
    let home = home.path();
    let tmux_dir = home.join("tmux");
    std::fs::create_dir_all(&tmux_dir).expect("tmux dir");
    let mut cleanup = Cleanup { socket: format!("udpchat-tui-{}", std::process::id()), tmux_dir, children: Vec::new() };

    // The interface in a 120x30 terminal, with a home of its own.
    let known = home.join("known_servers");
    let home_s = home.to_str().expect("UTF-8 temp path");
    let command = format!(
        "env HOME={h} XDG_CONFIG_HOME={h} {bin} chat --server {addr} --nick ana --known-servers {known}",
        h = quote(home_s),
        bin = quote(BIN),
        known = quote(known.to_str().expect("UTF-8 temp path")),
    );
    tmux(&cleanup, &["new-session", "-d", "-s", "tui", "-x", "120", "-y", "30", &command]);
    let shown = wait_screen(&cleanup, "the lobby", |s| s.contains("you joined #lobby"));
    assert!(shown.contains("first visit: server key"), "no key fingerprint:\n{shown}");

    let mut bob = Plain::start(&mut cleanup, &addr, "bob", home);
    bob.wait_line("its login", |l| l.contains("you joined #lobby"));
    wait_screen(&cleanup, "bob in the member list", |s| s.contains("│bob"));

    // Tab completes a member's nickname, addressed at the line start.
    tmux(&cleanup, &["send-keys", "-t", "tui", "-l", "bo"]);
    tmux(&cleanup, &["send-keys", "-t", "tui", "Tab"]);
    wait_screen(&cleanup, "the completed nickname", |s| input_line(s).ends_with("bob:"));
    tmux(&cleanup, &["send-keys", "-t", "tui", "-l", "hello from the tui, ünïcödé"]);
    tmux(&cleanup, &["send-keys", "-t", "tui", "Enter"]);
    bob.wait_line("ana's line", |l| l.contains("<ana> bob: hello from the tui, ünïcödé"));
    wait_screen(&cleanup, "ana's own line", |s| s.contains("<ana> bob: hello from the tui, ünïcödé"));

    bob.say("hi ana, loud and clear");
    let shown = wait_screen(&cleanup, "bob's reply", |s| s.contains("<bob> hi ana, loud and clear"));
    assert_eq!(input_line(&shown), "[#lobby]", "the input line was not cleared:\n{shown}");

    // A bracketed paste (tmux pastes with the markers, as the interface
    // asked for them): a few lines go out one by one, in order; more than
    // five ask first, and all go once confirmed (paced, none refused).
    tmux(&cleanup, &["set-buffer", "paste one\npaste two\npaste three"]);
    tmux(&cleanup, &["paste-buffer", "-p", "-t", "tui"]);
    for n in ["one", "two", "three"] {
        bob.wait_line("a pasted line", |l| l.contains(&format!("<ana> paste {n}")));
    }
    let seven: Vec<String> = (1..=7).map(|i| format!("pasted {i}")).collect();
    tmux(&cleanup, &["set-buffer", &seven.join("\n")]);
    tmux(&cleanup, &["paste-buffer", "-p", "-t", "tui"]);
    wait_screen(&cleanup, "the paste question", |s| input_line(s).contains("paste 7 lines? y/n"));
    tmux(&cleanup, &["send-keys", "-t", "tui", "-l", "y"]);
    for l in &seven {
        bob.wait_line("a confirmed pasted line", |s| s.ends_with(&format!("<ana> {l}")));
    }
    let order: Vec<&str> = bob.seen.iter().filter_map(|l| l.split_once("<ana> pasted ").map(|(_, n)| n)).collect();
    assert_eq!(order, ["1", "2", "3", "4", "5", "6", "7"], "all, once, in order");
    assert!(!bob.seen.iter().any(|l| l.contains("slow down")), "paced, not refused");

    // Ctrl-C says goodbye: the others see it and the interface exits.
    tmux(&cleanup, &["send-keys", "-t", "tui", "C-c"]);
    bob.wait_line("ana's quit", |l| l.contains("ana quit"));
    let deadline = Instant::now() + WAIT;
    while tmux_command(&cleanup.socket, &cleanup.tmux_dir)
        .args(["has-session", "-t", "tui"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(Instant::now() < deadline, "the interface did not exit after Ctrl-C");
        std::thread::sleep(POLL);
    }
    eprintln!("full-screen client test took {:.1} s", started.elapsed().as_secs_f64());
}
