//! Metrics with the real thing: a udpchat server with `metrics_listen`,
//! some chat, and Debian's Prometheus scraping it every second; the
//! `udpchat_…` series are read back through Prometheus's HTTP query API,
//! and `promtool check metrics` accepts the endpoint's output. Without
//! prometheus the test is skipped with a message, except under CI (where
//! .ci/run installs it), where it fails.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ServerProc, WAIT, expect, lines, login, tool_or_skip};

/// A plain HTTP/1.0 GET on loopback: (status line, body).
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(String, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT)?;
    stream.set_read_timeout(Some(WAIT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((head.lines().next().unwrap_or_default().to_owned(), body.to_owned()))
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prometheus cannot listen on port 0: take a free port from the kernel
/// and release it for Prometheus (a race with other processes is
/// possible but unlikely on loopback within milliseconds).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Reads `query`'s first value through Prometheus's query API.
fn query(prometheus: SocketAddr, query: &str) -> Option<f64> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let (status, body) = http_get(prometheus, &format!("/api/v1/query?query={encoded}")).ok()?;
    if !status.contains("200") {
        return None;
    }
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    json["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

/// Waits until `q` reads at least `min` in Prometheus.
fn wait_series(prometheus: SocketAddr, q: &str, min: f64) -> f64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        last = query(prometheus, q);
        if last.is_some_and(|v| v >= min) {
            return last.unwrap_or_default();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("Prometheus never read {q} >= {min} (last: {last:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_servers_metrics() {
    if !tool_or_skip("prometheus", "prometheus", "the Prometheus test")
        || !tool_or_skip("promtool", "prometheus", "the Prometheus test")
    {
        return;
    }
    let config = "metrics_listen = \"127.0.0.1:0\"\nplain_listen = \"127.0.0.1:0\"\n";
    let mut server = ServerProc::start(config, &["--console", "off"], &[]);
    let line = server.wait_line(|l| l.starts_with("plain text on "));
    let plain: SocketAddr = line
        .trim_start_matches("plain text on ")
        .split_once(": ")
        // The same address as the server's (both 127.0.0.1:0): one port.
        .and_then(|(a, _)| a.trim_end_matches(" (the same port)").parse().ok())
        .expect("the plain-text address in the server's output");
    let line = server.wait_line(|l| l.starts_with("metrics: http://"));
    let metrics: SocketAddr = line
        .trim_start_matches("metrics: http://")
        .trim_end_matches("/metrics")
        .parse()
        .expect("metrics address in the server's output");

    // Some chat: two sessions, five lines each way.
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    for i in 0..5 {
        ana.say("lobby", &format!("ana {i}")).await;
        bob.say("lobby", &format!("bob {i}")).await;
    }
    let got =
        expect(&mut ana_ev, "bob's last line", |e| lines(std::slice::from_ref(e)).iter().any(|(_, t)| t == "bob 4"))
            .await;
    assert!(lines(&got).len() >= 5);
    expect(&mut bob_ev, "ana's last line", |e| lines(std::slice::from_ref(e)).iter().any(|(_, t)| t == "ana 4")).await;

    // A classic client on the plain-text port: its nickname, then the
    // welcome back.
    let classic = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    classic.set_read_timeout(Some(WAIT)).unwrap();
    classic.send_to(b"carol", plain).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = classic.recv_from(&mut buf).expect("the classic welcome");
    assert!(buf[..n].starts_with(b"Welcome"), "{:?}", String::from_utf8_lossy(&buf[..n]));

    // The endpoint itself: text format that promtool accepts.
    let (status, text) = http_get(metrics, "/metrics").unwrap();
    assert!(status.contains("200"), "{status}");
    assert!(text.contains("udpchat_lines_accepted_total 10"), "{text}");
    assert!(text.contains("udpchat_plain_datagrams_total{direction=\"received\"} 1"), "{text}");
    assert!(text.contains("udpchat_plain_datagrams_total{direction=\"sent\"} 1"), "{text}");
    assert!(text.contains("udpchat_plain_members 1"), "{text}");
    assert!(text.contains("udpchat_discovery_probes_total{outcome=\"answered\"} 0"), "{text}");
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let checked = promtool.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&checked.stdout).into_owned() + &String::from_utf8_lossy(&checked.stderr);
    assert!(checked.status.success(), "promtool check metrics: {said}");
    let (status, _) = http_get(metrics, "/elsewhere").unwrap();
    assert!(status.contains("404"), "{status}");

    // Prometheus scraping it every second.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: udpchat\n    \
             static_configs:\n      - targets: ['{metrics}']\n"
        ),
    )
    .unwrap();
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let prometheus = Prometheus(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    assert_eq!(wait_series(web, "up{job=\"udpchat\"}", 1.0), 1.0);
    assert_eq!(wait_series(web, "udpchat_lines_accepted_total", 10.0), 10.0);
    // Each line reached the one other member.
    assert_eq!(wait_series(web, "udpchat_deliveries_total", 10.0), 10.0);
    // The plain member is a member like the others, without a handshake.
    assert_eq!(wait_series(web, "udpchat_sessions{state=\"logged_in\"}", 3.0), 3.0);
    assert_eq!(wait_series(web, "udpchat_handshakes_total{outcome=\"accepted\"}", 2.0), 2.0);
    assert_eq!(wait_series(web, "udpchat_logins_total", 3.0), 3.0);
    assert_eq!(wait_series(web, "udpchat_plain_members", 1.0), 1.0);
    wait_series(web, "udpchat_rooms", 1.0);
    wait_series(web, "udpchat_received_datagrams_total", 10.0);
    wait_series(web, "udpchat_sent_bytes_total", 1000.0);
    assert_eq!(wait_series(web, "udpchat_handshake_duration_seconds_count", 2.0), 2.0);
    wait_series(web, "udpchat_store_commit_duration_seconds_count", 1.0);
    wait_series(web, "udpchat_rtt_seconds_count", 2.0);
    assert!(query(web, "udpchat_login_failures_total") == Some(0.0));
    assert!(query(web, "udpchat_store_queue_depth").is_some());
    drop(prometheus);
    drop((ana, bob));
}
