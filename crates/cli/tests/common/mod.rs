//! Shared pieces of the end-to-end tests: starting the real `udpchat`
//! server binary on a loopback port (read back from its output), logging
//! clients in through the client library, and waiting for events with a
//! deadline. Every process started here is killed when its guard drops.

#![allow(dead_code)] // each test file uses part of this

pub mod nats;
pub mod proc;
pub mod raw;
pub mod tmux;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::Receiver;
use udpchat_client::chat::ServerMsg;
use udpchat_client::{Client, ClientEvent, ClientOptions};
use udpchat_server::store::{Line, SqliteStore, Store};

pub const BIN: &str = env!("CARGO_BIN_EXE_udpchat");
pub const WAIT: Duration = Duration::from_secs(10);

/// Reads `output` line by line on a thread, so tests can wait for lines
/// with a timeout (and the child never blocks on a full pipe).
pub fn line_channel(output: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

pub struct ServerProc {
    pub child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    /// The config sets no rate limit (clients need not pace themselves).
    unpaced: bool,
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ServerProc {
    /// Starts `udpchat server` on 127.0.0.1:0 with `config` as its config
    /// file, extra flags and environment.
    pub fn start(config: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, config, args, env)
    }

    pub fn start_in(dir: tempfile::TempDir, config: &str, args: &[&str], env: &[(&str, &str)]) -> Self {
        let config_path = dir.path().join("server.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut cmd = Command::new(BIN);
        cmd.arg("server")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--config")
            .arg(&config_path)
            .args(args)
            .env_remove("UDPCHAT_SERVER_PASSWORD")
            .env("UDPCHAT_LISTEN", "127.0.0.1:0")
            // Never announce over mDNS from the host's own network
            // namespace (a test listening on [::] would, on a machine
            // with only private addresses); tests/lan.rs turns it on
            // inside namespaces of its own.
            .env("UDPCHAT_LAN_DISCOVERY", "off")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start udpchat server");
        let stdin = child.stdin.take();
        let lines = line_channel(child.stdout.take().expect("piped stdout"));
        let unpaced = config.contains("rate_per_second = 0\n");
        let mut server = Self { child, port: 0, dir, stdin, lines, unpaced };
        let line = server.wait_line(|l| l.contains("listening on"));
        server.port = line.rsplit(':').next().and_then(|p| p.trim().parse().ok()).expect("port in listening line");
        server
    }

    /// Kills the server with SIGKILL (no goodbye) and hands back its
    /// directory, so it can be restarted on the same data.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    /// Starts a server again on `dir` (from [`kill`](Self::kill)) and the
    /// same port, so clients that pinned its key find it where it was.
    pub fn restart(dir: tempfile::TempDir, port: u16, config: &str, args: &[&str]) -> Self {
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec!["--listen", listen.as_str()];
        all.extend_from_slice(args);
        let server = Self::start_in(dir, config, &all, &[]);
        assert_eq!(server.port, port);
        server
    }

    /// The server's data directory (`--data-dir`).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Waits for a console line matching `pred` (panics after [`WAIT`]).
    pub fn wait_line(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => {}
                Err(_) => panic!("server console never showed the expected line"),
            }
        }
    }

    /// Types a line at the server console.
    pub fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("server stdin");
        writeln!(stdin, "{line}").expect("write to server console");
        stdin.flush().expect("flush server console");
    }

    pub fn options(&self, nick: &str) -> ClientOptions {
        let mut o = ClientOptions::new(&self.addr(), nick);
        o.known_hosts = Some(self.dir.path().join("known_servers"));
        // Until the server sends Limits (issue 10), a client assumes the
        // reference rate; these servers are configured without one.
        if self.unpaced {
            o.assumed_limits = udpchat_client::session::pacing::Limits::UNPACED;
        }
        o
    }
}

/// Waits for the first event matching `pred`; panics with what was seen
/// if none comes within [`WAIT`].
pub async fn expect(
    events: &mut Receiver<ClientEvent>,
    what: &str,
    mut pred: impl FnMut(&ClientEvent) -> bool,
) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        while let Some(e) = events.recv().await {
            let hit = pred(&e);
            seen.push(e);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    if found != Ok(true) {
        let tail: Vec<_> = seen.iter().rev().take(8).rev().collect();
        panic!("timed out waiting for {what}; last events: {tail:?}");
    }
    seen
}

/// Collects events for `span` (for checking something did *not* happen).
pub async fn collect(events: &mut Receiver<ClientEvent>, span: Duration) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(span, async {
        while let Some(e) = events.recv().await {
            seen.push(e);
        }
    })
    .await;
    seen
}

/// Connects and waits until logged in and in the lobby.
pub async fn login(options: ClientOptions) -> (Client, Receiver<ClientEvent>) {
    let nick = options.nick.clone();
    let (client, mut events) = Client::connect(options).await.expect("client starts");
    expect(
        &mut events,
        &format!("{nick} to join the lobby"),
        |e| matches!(e, ClientEvent::Server(ServerMsg::Joined { room, .. }) if room == "lobby"),
    )
    .await;
    (client, events)
}

/// Room lines (`from`, `text`) among `events`.
pub fn lines(events: &[ClientEvent]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Server(ServerMsg::Line(l)) => Some((l.from.clone(), l.text.clone())),
            _ => None,
        })
        .collect()
}

/// Every stored line of `room` in the history database under `data_dir`,
/// read the way `udpchat user` opens it (beside or after a server).
pub fn stored_lines(data_dir: &Path, room: &str) -> Vec<Line> {
    let store = SqliteStore::open_admin(data_dir).expect("open the history database");
    let lines = store.lines_after(room, 0, 1_000_000).expect("read stored lines");
    assert!(lines.len() < 1_000_000, "more lines than any test writes");
    lines
}

/// Registers `name` with `password` through `udpchat user add`, as an
/// administrator would (it may run while the server does).
pub fn add_user(data_dir: &Path, name: &str, password: &str, operator: bool) {
    let mut cmd = Command::new(BIN);
    cmd.args(["user", "add", name]).arg("--data-dir").arg(data_dir).env("UDPCHAT_NEW_PASSWORD", password);
    if operator {
        cmd.arg("--operator");
    }
    let out = run_bounded(&mut cmd, WAIT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "udpchat user add {name} failed: {stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("registered {name}")));
}

/// Runs `cmd` to completion with its output captured, killing it (and
/// failing the test) if it takes longer than `limit`.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> std::process::Output {
    let mut child =
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("start udpchat");
    // Read both pipes on threads so a chatty child never blocks on them.
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for udpchat") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("udpchat {:?} still running after {limit:?}", cmd.get_args().collect::<Vec<_>>());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output { status, stdout: stdout.join().unwrap(), stderr: stderr.join().unwrap() }
}

/// CI services set `CI` (to `true`, usually); .ci/run sets it too.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether `program` (from the Debian package `package`) can run: false,
/// after saying so, on a developer's machine without it; a failure under
/// CI, which installs it (.ci/run) and where a skip would hide the test.
pub fn tool_or_skip(program: &str, package: &str, test: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    assert!(
        !in_ci(),
        "{program} is not installed but CI is set: install it (apt-get install {package}, as .ci/run does) \
         or unset CI to skip {test}"
    );
    eprintln!("skipping {test}: {program} is not installed (apt-get install {package} to run it)");
    false
}
