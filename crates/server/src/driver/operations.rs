//! The server's side doors, beside the chat: `udpchat admin` commands
//! over the admin socket, rereading the settings (SIGHUP, `admin
//! reload`), the counters for `admin stats`, and the `/metrics` endpoint.
//! None of them touches a socket of the chat itself.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{EndpointOutlet, Server};
use crate::admin::{AdminRequest, AdminSocket};
use crate::chat::Clock;
use crate::discovery::responder::Responder;
use crate::metrics::Metrics;
use crate::metrics_http::{self, Scrape};
use crate::settings::Settings;

/// Reads the settings again (the config file, the password file, the
/// environment and flags as at the start).
pub type Reload = Box<dyn FnMut() -> Result<Settings, Box<dyn std::error::Error + Send + Sync>> + Send>;

pub(super) struct MetricsHook {
    pub(super) metrics: Metrics,
    pub(super) scrapes: mpsc::Receiver<Scrape>,
    pub(super) addr: SocketAddr,
}

impl Server {
    /// Takes operator commands from `udpchat admin` on `socket` (see
    /// admin.rs), beside the console's.
    pub fn serve_admin(&mut self, socket: AdminSocket) {
        let (tx, rx) = mpsc::channel(crate::admin::MAX_QUEUED);
        tokio::spawn(socket.serve(tx));
        self.admin = Some(rx);
    }

    /// Rereads the settings with `reload` on SIGHUP and `udpchat admin
    /// reload`, and applies them without dropping anyone.
    pub fn on_reload(&mut self, reload: Reload) {
        self.reload = Some(reload);
    }

    /// Rereads and applies the settings; the lines say what changed.
    pub(super) fn reload(&mut self) -> Vec<String> {
        let Some(reload) = self.reload.as_mut() else {
            return vec!["error: this server was started without a way to reload its settings".to_owned()];
        };
        match reload() {
            Ok(settings) => {
                let mut outlet =
                    EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now: Instant::now() };
                self.chat.reload(Clock::system(), settings, &mut outlet)
            }
            Err(e) => {
                tracing::error!(target: "udpchat::reload", error = %e, "reload failed; the settings in use stay");
                vec![format!("error: reload failed, the settings in use stay: {e}")]
            }
        }
    }

    /// An admin command: the driver's own (`/reload`, `/stats`) or a
    /// console line for the chat core.
    pub(super) fn admin_command(&mut self, request: AdminRequest) {
        let answers = match request.line.trim() {
            "/reload" => self.reload(),
            "/stats" => self.stats_lines(),
            line => {
                let mut outlet =
                    EndpointOutlet { endpoint: &mut self.endpoint, plain: &mut self.plain, now: Instant::now() };
                self.chat.admin(Clock::system(), request.room.as_deref(), line, &mut outlet)
            }
        };
        let _ = request.reply.send(answers);
    }

    /// `udpchat admin stats`: the main counters, as the metrics have them.
    fn stats_lines(&self) -> Vec<String> {
        let (c, g, e) = (self.chat.stats(), self.chat.gauges(), self.endpoint.totals());
        vec![
            format!(
                "sessions: {} logged in, {} logging in, {} connections",
                g.logged_in,
                g.logging_in,
                self.endpoint.connection_count()
            ),
            format!("rooms: {} ({} with members)", g.rooms, g.rooms_occupied),
            format!("lines accepted: {}; deliveries: {}; catch-ups: {}", c.lines_accepted, c.deliveries, g.catch_ups),
            format!("logins: {}; failed: {}; sessions refused: {}", c.logins, c.login_failures, c.sessions_refused),
            format!(
                "handshakes: {} accepted, {} retry, {} rate-limited, {} failed",
                e.handshakes_accepted, e.retries_sent, e.handshakes_rate_limited, e.handshakes_failed
            ),
            format!(
                "datagrams: {} in ({} bytes), {} out ({} bytes); packets lost: {}; probe timeouts: {}",
                e.datagrams_received,
                e.bytes_received,
                e.datagrams_sent,
                e.bytes_sent,
                e.packets_lost,
                e.probe_timeouts
            ),
            format!("store: {} waiting for a commit, {} reads in flight", g.store_pending, g.store_reads),
        ]
    }

    /// Where `/metrics` is served, if it is.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|m| m.addr)
    }

    /// Renders the metrics for a scrape.
    pub(super) fn scrape(&self, reply: Scrape) {
        if let Some(hook) = &self.metrics {
            let (answered, unanswered) = self.discovery.as_ref().map_or((0, 0), Responder::counts);
            let (received, sent, dropped) = self.plain.counts();
            let lan = crate::metrics::LanStats {
                plain_members: self.plain.member_count(),
                plain_datagrams_received: received,
                plain_datagrams_sent: sent,
                plain_replies_dropped: dropped,
                discovery_answered: answered,
                discovery_unanswered: unanswered,
            };
            let _ = reply.send(hook.metrics.render(&self.chat, &self.endpoint, lan));
        }
    }
}

/// Binds `/metrics` (so a bad `metrics_listen` fails at start) and serves
/// it on a task of its own.
pub(super) fn serve_metrics(addr: SocketAddr) -> io::Result<MetricsHook> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot serve metrics on {addr} (metrics_listen): {e}")))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let (tx, scrapes) = mpsc::channel(metrics_http::MAX_SCRAPES);
    tokio::spawn(metrics_http::serve(listener, tx));
    Ok(MetricsHook { metrics: Metrics::new(), scrapes, addr })
}

/// SIGHUP, where there are signals (`None` elsewhere, or if it cannot be
/// listened for: reload then stays available through the admin socket).
#[cfg(unix)]
pub(super) fn hangup_signal() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP ({e}); reload with `udpchat admin reload` instead");
            None
        }
    }
}

#[cfg(not(unix))]
pub(super) fn hangup_signal() -> Option<NoSignal> {
    None
}

/// Stands in for a signal stream where there is none.
#[cfg(not(unix))]
pub(super) struct NoSignal;

#[cfg(not(unix))]
impl NoSignal {
    pub(super) async fn recv(&mut self) -> Option<()> {
        std::future::pending().await
    }
}
