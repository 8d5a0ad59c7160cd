//! End-to-end: the real `udpchat-bench` binary against a real udpchat
//! server (the server library's driver on its own thread, on a loopback
//! port), and against two nodes of a cluster on a real `nats-server` when
//! one is installed, with tiny numbers. It checks the bench's accounting and
//! udpchat's promise (every acknowledged line reaches every other member
//! exactly once, with or without loss), never speed: wall-clock figures
//! depend on the machine.

use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use udpchat_server::Settings;
use udpchat_server::cluster::{Cluster, ClusterConfig};
use udpchat_server::driver::{Server, bind};
use udpchat_server::store::{SqliteStore, SyncPolicy};

const BIN: &str = env!("CARGO_BIN_EXE_udpchat-bench");

/// A server on a loopback port, on a thread of its own; it stops with the
/// test process.
struct ServerThread {
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl ServerThread {
    /// Flood limits lifted, as for any benchmark; fsync at checkpoints
    /// only; `password` is the shared server password.
    fn start(password: Option<&str>) -> Self {
        Self::start_with(password, None)
    }

    /// A node of the cluster on the NATS server at `nats` (a URL), with the
    /// cluster's shared key file (as `--key-file`); otherwise as
    /// [`ServerThread::start`].
    fn node(nats: &str, key_file: &Path) -> Self {
        Self::start_with(None, Some((nats.to_owned(), key_file.to_owned())))
    }

    fn start_with(password: Option<&str>, cluster: Option<(String, PathBuf)>) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut settings = Settings { data_dir: data.path().to_owned(), ..Settings::default() };
        settings.listen = "127.0.0.1:0".parse().unwrap();
        settings.rate_per_second = 0.0;
        settings.console_log = false;
        settings.history_sync = SyncPolicy::Normal;
        settings.password = password.map(str::to_owned);
        let key = match &cluster {
            Some((_, path)) => udpchat_server::key_file::load(path).unwrap(),
            None => udpchat_server::key_file::load_or_create(data.path()).unwrap().0,
        };
        let store = SqliteStore::open(data.path(), settings.history_sync, None).unwrap();
        let reader = SqliteStore::open_reader(store.path()).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let socket = bind(settings.listen).unwrap();
                let mut server = Server::new(socket, settings, key, Box::new(store), Box::new(reader)).unwrap();
                if let Some((urls, _)) = cluster {
                    let config = ClusterConfig { urls, replicas: 1, max_age: None };
                    server.join_cluster(Cluster::connect(&config).await.expect("the node joins the cluster"));
                }
                tx.send(server.local_addr().unwrap()).unwrap();
                let _ = server.run(None, &mut std::io::sink(), std::future::pending()).await;
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server started");
        Self { addr, _data: data }
    }
}

/// Runs a command with a time limit, so a hung bench fails the test
/// instead of hanging it.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("udpchat-bench starts");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stdout.read_to_end(&mut b);
        b
    });
    let err = std::thread::spawn(move || {
        let mut b = Vec::new();
        let _ = stderr.read_to_end(&mut b);
        b
    });
    let until = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = child.kill();
            panic!("udpchat-bench did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output { status, stdout: out.join().unwrap(), stderr: err.join().unwrap() }
}

fn bench(server: &ServerThread, duration: &str, extra: &[&str]) -> serde_json::Value {
    bench_at(&format!("udpchat://{}", server.addr), duration, extra)
}

fn bench_at(target: &str, duration: &str, extra: &[&str]) -> serde_json::Value {
    let pid = std::process::id().to_string();
    let mut cmd = Command::new(BIN);
    cmd.args(["--target", target, "--clients", "5", "--senders", "2", "--lines", "200", "--json"])
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
    let server = ServerThread::start(None);
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
    assert_eq!(r["server"]["pid"].as_u64(), Some(u64::from(std::process::id())), "{r:#}");
}

#[test]
fn nothing_is_lost_or_doubled_when_a_tenth_of_datagrams_are_dropped() {
    let server = ServerThread::start(None);
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
    let server = ServerThread::start(None);
    let r = bench(&server, "0.5", &["--idle", "--rooms", "2"]);
    assert_eq!(r["mode"], "idle", "{r:#}");
    assert_eq!(num(&r, "connected"), 5, "{r:#}");
    assert_eq!(num(&r, "lines_sent"), 0, "{r:#}");
    assert!(r["handshakes_per_sec"].as_f64().is_some_and(|h| h > 0.0), "{r:#}");
    assert!(num(&r["server"], "rss_kib_after") > 0, "{r:#}");
}

#[test]
fn a_wrong_password_is_a_clear_error_and_the_right_one_gets_in() {
    let server = ServerThread::start(Some("GAS1"));
    let target = format!("udpchat://{}", server.addr);
    let run = |password: &str| {
        let mut cmd = Command::new(BIN);
        cmd.args(["--target", &target, "--clients", "3", "--senders", "1", "--lines", "10", "--json"])
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

/// `nats-server -js` on a loopback port of its own choosing (read back
/// from its log) with a store in a temporary directory; killed when
/// dropped. None when nats-server is not installed.
struct Nats {
    child: std::process::Child,
    url: String,
    _store: tempfile::TempDir,
}

impl Nats {
    fn start() -> Option<Self> {
        let store = tempfile::tempdir().unwrap();
        let mut child = Command::new("nats-server")
            .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
            .arg(store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            // Reads to the end, so the server never blocks on a full pipe.
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, port)) = line.split_once("Listening for client connections on ") {
                    let _ = tx.send(port.rsplit(':').next().unwrap_or_default().trim().to_owned());
                }
            }
        });
        let port = rx.recv_timeout(Duration::from_secs(10)).expect("nats-server says where it listens");
        Some(Self { child, url: format!("nats://127.0.0.1:{port}"), _store: store })
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two cluster nodes, the sessions split between them (`--target` with both
/// addresses): a line said on one node reaches the members on the other
/// through NATS, and the bench's accounting (by sender, sequence number and
/// send time carried in each line) holds across nodes as on one server.
#[test]
fn lines_said_on_one_cluster_node_are_counted_on_the_other() {
    let Some(nats) = Nats::start() else {
        eprintln!("skipping: nats-server is not installed (apt-get install nats-server to run this test)");
        return;
    };
    let keys = tempfile::tempdir().unwrap();
    udpchat_server::key_file::load_or_create(keys.path()).unwrap();
    let key_file = keys.path().join(udpchat_server::key_file::KEY_FILE);
    let (a, b) = (ServerThread::node(&nats.url, &key_file), ServerThread::node(&nats.url, &key_file));
    let target = format!("udpchat://{},{}", a.addr, b.addr);
    let r = bench_at(&target, "30", &[]);
    assert_eq!(r["target"].as_str(), Some(target.as_str()), "{r:#}");
    assert_eq!(num(&r, "connected"), 5, "{r:#}");
    assert_eq!(num(&r, "lines_acked"), 200, "{r:#}");
    // Senders 0 (node a) and 1 (node b): each line reaches the 4 others,
    // two or three of them on the other node.
    assert_eq!(num(&r, "deliveries_expected"), 800, "{r:#}");
    assert_eq!(num(&r, "deliveries_received"), 800, "{r:#}");
    assert_eq!(num(&r, "lost"), 0, "{r:#}");
    assert_eq!(num(&r, "duplicates"), 0, "{r:#}");
    assert_eq!(num(&r, "out_of_order"), 0, "{r:#}");
    assert_eq!(num(&r, "foreign"), 0, "{r:#}");
}
