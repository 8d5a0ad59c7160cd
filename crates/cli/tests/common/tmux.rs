//! tmux for the end-to-end tests of what runs in a terminal (the
//! full-screen client, the server console's line editor): a private tmux
//! server per test (its own socket, no user config), keys typed with
//! send-keys, the screen read with capture-pane, and a `chat --plain`
//! child to talk to. Without tmux a test is skipped with a message, except
//! under CI (the `CI` variable set), where it fails: CI installs tmux, and
//! a skip there would hide the test for good.

use std::io::Write;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::{BIN, WAIT};

/// How often the screen and outputs are looked at while waiting.
pub const POLL: Duration = Duration::from_millis(100);

/// Kills the tmux server and the other client however the test ends, so a
/// failed assertion leaves no processes behind.
pub struct Cleanup {
    pub socket: String,
    pub tmux_dir: std::path::PathBuf,
    pub children: Vec<Child>,
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

pub fn tmux_installed() -> bool {
    Command::new("tmux").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// CI services set `CI` (to `true`, usually); .ci/run sets it too.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether the test can run: false (after saying so) when tmux is missing
/// on a developer's machine; a failure when it is missing under CI.
pub fn tmux_available_or_skip() -> bool {
    if tmux_installed() {
        return true;
    }
    assert!(
        !in_ci(),
        "tmux is not installed but CI is set: install tmux (apt-get install tmux, as .ci/run does) \
         so what runs in a terminal is tested, or unset CI to skip this test"
    );
    eprintln!("skipping this terminal test: tmux is not installed (install it to run this test)");
    false
}

/// A tmux command on our own server: its own socket, no user config, and
/// none of the caller's tmux or udpchat settings.
pub fn tmux_command(socket: &str, tmux_dir: &Path) -> Command {
    let mut cmd = Command::new("tmux");
    cmd.args(["-L", socket, "-f", "/dev/null"]).env("TMUX_TMPDIR", tmux_dir).env_remove("TMUX");
    without_udpchat_settings(&mut cmd);
    cmd
}

/// A password or pinned key in the caller's environment would change
/// what the clients do.
pub fn without_udpchat_settings(cmd: &mut Command) {
    for (key, _) in std::env::vars() {
        if key.starts_with("UDPCHAT_") {
            cmd.env_remove(key);
        }
    }
}

pub fn tmux(cleanup: &Cleanup, args: &[&str]) -> String {
    let out = tmux_command(&cleanup.socket, &cleanup.tmux_dir).args(args).output().expect("run tmux");
    assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What the tmux session `target` shows.
pub fn screen(cleanup: &Cleanup, target: &str) -> String {
    tmux(cleanup, &["capture-pane", "-p", "-t", target])
}

/// Polls the screen until `pred` holds; panics with the screen after [`WAIT`].
pub fn wait_screen(cleanup: &Cleanup, target: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let shown = screen(cleanup, target);
        if pred(&shown) {
            return shown;
        }
        assert!(Instant::now() < deadline, "the screen never showed {what}:\n{shown}");
        std::thread::sleep(POLL);
    }
}

/// The bottom line of the screen: the input line.
pub fn input_line(shown: &str) -> String {
    shown.lines().last().unwrap_or_default().trim_end().to_owned()
}

/// Quotes for the `sh -c` that tmux runs the command with.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The plain client's output lines, as they come.
pub struct Plain {
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Plain {
    pub fn start(cleanup: &mut Cleanup, addr: &str, nick: &str, home: &Path) -> Plain {
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
        let lines = super::line_channel(child.stdout.take().expect("piped stdout"));
        cleanup.children.push(child);
        Plain { stdin, lines, seen: Vec::new() }
    }

    pub fn wait_line(&mut self, what: &str, pred: impl Fn(&str) -> bool) {
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

    pub fn say(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the plain client");
        self.stdin.flush().expect("flush the plain client");
    }
}
