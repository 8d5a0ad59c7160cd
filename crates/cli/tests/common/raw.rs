//! A protocol client driven by hand over a blocking socket, for tests that
//! need a client the library would never be (one that sends bytes that
//! are not UTF-8, stops reading, or vanishes and resumes from a sequence
//! number it chose). Blocking: from async tests, run it on
//! `tokio::task::spawn_blocking` so the runtime's own clients keep going.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use udpchat_client::chat::{ClientMsg, ServerMsg};
use udpchat_proto::{ClientConfig, ConnectionHandle, Endpoint, Event};

/// A different seed per client: two clients built from one seed would
/// pick the same connection ids, and a client that comes back while the
/// server still holds its old session must not be mistaken for it.
fn seed() -> [u8; 32] {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&NEXT.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    seed[8..16].copy_from_slice(&nanos.to_le_bytes());
    seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
    seed
}

pub struct RawClient {
    socket: UdpSocket,
    endpoint: Endpoint,
    h: ConnectionHandle,
    buf: Vec<u8>,
    /// False: the client keeps its session alive but reads nothing.
    pub reading: bool,
}

impl RawClient {
    pub fn connect(server: SocketAddr) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        let mut endpoint = Endpoint::new(seed(), None).unwrap();
        let h = endpoint.connect(Instant::now(), server, ClientConfig::default()).unwrap();
        Self { socket, endpoint, h, buf: Vec::new(), reading: true }
    }

    /// Runs the protocol for up to `span`, returning decoded server messages.
    pub fn pump(&mut self, span: Duration) -> Vec<ServerMsg> {
        let mut out = Vec::new();
        self.pump_until(Instant::now() + span, &mut out, |_| false);
        out
    }

    /// Runs the protocol, appending decoded server messages to `out`, until
    /// `done(out)` holds (true) or `deadline` passes (false).
    pub fn pump_until(
        &mut self,
        deadline: Instant,
        out: &mut Vec<ServerMsg>,
        mut done: impl FnMut(&[ServerMsg]) -> bool,
    ) -> bool {
        let mut rx = vec![0u8; 2048];
        while Instant::now() < deadline {
            let now = Instant::now();
            self.endpoint.handle_timeout(now);
            while let Some(t) = self.endpoint.poll_transmit(now, 1, &mut self.buf) {
                let _ = self.socket.send_to(&self.buf[..t.size], t.destination);
            }
            let before = out.len();
            while let Some((_, e)) = self.endpoint.poll_event() {
                if let Event::Message(m) = e {
                    out.push(ServerMsg::decode(&m).expect("server speaks the protocol"));
                }
            }
            if out.len() > before && done(out) {
                return true;
            }
            if self.reading {
                if let Ok((n, from)) = self.socket.recv_from(&mut rx) {
                    self.endpoint.handle(Instant::now(), from, &rx[..n]);
                }
            } else {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        false
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.endpoint.send(self.h, bytes).unwrap();
    }

    /// Logs in as `nick` with no passwords and nothing to resume.
    pub fn login(&mut self, nick: &str) {
        let got = self.login_with(nick, Vec::new());
        assert!(got.iter().any(|m| matches!(m, ServerMsg::Welcome { .. })), "{got:?}");
    }

    /// Logs in, resuming `resume` (room, last sequence number seen), and
    /// returns what the server said until it answered the login (the
    /// Welcome or LoginRefused and anything after it in the same burst).
    pub fn login_with(&mut self, nick: &str, resume: Vec<(String, u64)>) -> Vec<ServerMsg> {
        // Let the handshake finish before the login goes out.
        self.pump(Duration::from_millis(300));
        let login = ClientMsg::Login {
            nick: nick.into(),
            server_password: String::new(),
            account_password: String::new(),
            resume,
            private_since: 0,
            origin: 0,
        };
        self.send(&login.to_bytes());
        let mut got = Vec::new();
        self.pump_until(Instant::now() + super::WAIT, &mut got, |m| {
            m.iter().any(|m| matches!(m, ServerMsg::Welcome { .. } | ServerMsg::LoginRefused { .. }))
        });
        got
    }
}
