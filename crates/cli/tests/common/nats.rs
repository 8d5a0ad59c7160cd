//! NATS servers with JetStream for the cluster tests (Debian's
//! `nats-server`): one, or three joined as a NATS cluster, each on a
//! loopback port it picks itself (read back from its log) with a store
//! directory of its own. Killed when dropped.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::line_channel;

pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    /// Where routes from other NATS servers connect (clustered only).
    route_port: Option<u16>,
    pub store: PathBuf,
    _dir: Option<tempfile::TempDir>,
    name: String,
    routes: Option<String>,
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits for a log line containing `what` and returns the port at its end.
fn port_in(lines: &mpsc::Receiver<String>, what: &str) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).unwrap_or_else(|_| panic!("nats-server never said {what:?}"));
        if line.contains(what) {
            return line.rsplit(':').next().and_then(|p| p.trim().parse().ok()).expect("port in the line");
        }
    }
}

impl Nats {
    /// One NATS server with JetStream.
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = dir.path().join("js");
        let mut nats =
            Self { child: None, port: 0, route_port: None, store, _dir: Some(dir), name: "n1".into(), routes: None };
        nats.run(None);
        nats
    }

    /// Three NATS servers in one NATS cluster (JetStream R3 possible).
    /// JetStream clustering needs every server's routes configured at
    /// start, so the route ports are picked first (bound to port 0 and
    /// read back, then let go: a small race with other programs, taken
    /// only here); the client ports are the servers' own choice.
    pub fn cluster() -> Vec<Self> {
        let route_ports: Vec<u16> = (0..3)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().unwrap().port())
            .collect();
        let routes = route_ports.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
        route_ports
            .iter()
            .enumerate()
            .map(|(i, &route_port)| {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = dir.path().join("js");
                let mut nats = Self {
                    child: None,
                    port: 0,
                    route_port: Some(route_port),
                    store,
                    _dir: Some(dir),
                    name: format!("n{}", i + 1),
                    routes: Some(routes.clone()),
                };
                nats.run(None);
                nats
            })
            .collect()
    }

    fn run(&mut self, port: Option<u16>) {
        let port_arg = port.map_or("-1".to_owned(), |p| p.to_string());
        let mut cmd = Command::new("nats-server");
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port_arg, "--server_name", &self.name])
            .arg("-sd")
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let (Some(route_port), Some(routes)) = (self.route_port, &self.routes) {
            cmd.args(["--cluster_name", "udpchat-test", "--cluster", &format!("nats://127.0.0.1:{route_port}")]);
            cmd.args(["--routes", routes]);
        }
        let mut child = cmd.spawn().expect("start nats-server");
        let lines = line_channel(child.stderr.take().expect("piped stderr"));
        self.port = port_in(&lines, "Listening for client connections on");
        // Keep reading, so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye to anyone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn restart(&mut self) {
        let port = self.port;
        self.run(Some(port));
        assert_eq!(self.port, port);
    }
}

/// The URLs of several NATS servers, as `--cluster` takes them.
pub fn urls(servers: &[Nats]) -> String {
    servers.iter().map(Nats::url).collect::<Vec<_>>().join(",")
}
