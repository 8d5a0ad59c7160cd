//! What `udpchat bench` prints at the end: a table for people, or with
//! `--json` one JSON object for scripts (benches/compare.sh reads it). Both
//! come from the same [`Report`], so they never disagree.

use std::fmt::Write;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::args::BenchArgs;
use crate::ctx::{Ctx, Kind};
use crate::procfs::Sample;
use crate::stats::{Totals, nanos};

#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    pub kind: &'static str,
    /// "traffic", or "idle" with --idle.
    pub mode: &'static str,
    pub clients: usize,
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub rooms: usize,
    pub senders: usize,
    pub size: usize,
    /// Lines per second offered in all; 0: as fast as possible.
    pub rate: f64,
    pub lines_planned: u64,
    /// Lines a sender may have in flight (none for text://).
    pub window: Option<usize>,
    pub drop: f64,
    /// Seconds from the first connect to the last session in its room.
    pub setup_secs: f64,
    /// Completed handshakes (registrations, for peers) per second of setup.
    pub handshakes_per_sec: f64,
    pub lines_sent: u64,
    /// Lines the server acknowledged; `null` for peers, which do not.
    pub lines_acked: Option<u64>,
    pub lines_refused: u64,
    pub lines_unconfirmed: u64,
    pub send_secs: f64,
    /// Seconds of the traffic phase (or of holding, with --idle).
    pub phase_secs: f64,
    pub deliveries_expected: u64,
    pub deliveries_received: u64,
    /// Deliveries of lines never acknowledged (not in expected or received).
    pub deliveries_unacked: u64,
    pub lost: u64,
    pub lost_percent: f64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub disconnects: u64,
    pub foreign: u64,
    /// Seconds from the first line sent to the last delivery.
    pub delivery_secs: f64,
    pub deliveries_per_sec: f64,
    /// End-to-end latency in microseconds; null when nothing arrived.
    pub latency_us: Option<Latency>,
    /// The server's use of the machine, with --server-pid.
    pub server: Option<ServerUse>,
    pub bench: BenchUse,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

#[derive(Debug, Serialize)]
pub struct ServerUse {
    pub pid: u32,
    /// CPU seconds during setup (handshakes, logins, joins).
    pub setup_cpu_secs: f64,
    /// CPU seconds during the traffic (or idle) phase, and as a share of one core.
    pub cpu_secs: f64,
    pub cpu_percent: f64,
    /// Resident memory before setup, after setup and at the end, KiB.
    pub rss_kib_before: u64,
    pub rss_kib_connected: u64,
    pub rss_kib_after: u64,
    /// Peak resident memory (VmHWM), KiB: of this run when `peak_reset`,
    /// else since the server started.
    pub peak_rss_kib: u64,
    pub peak_reset: bool,
}

#[derive(Debug, Serialize)]
pub struct BenchUse {
    pub cpu_secs: Option<f64>,
    pub cpu_percent: Option<f64>,
    pub peak_rss_kib: Option<u64>,
}

/// Everything [`Report::build`] needs from the run.
pub struct Inputs<'a> {
    pub args: &'a BenchArgs,
    pub ctx: &'a Ctx,
    pub connected: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    pub senders: usize,
    pub setup_secs: f64,
    pub handshake_secs: f64,
    pub send_secs: f64,
    pub phase_secs: f64,
    pub phase_start: Instant,
    pub totals: &'a Totals,
    /// Server samples: before setup, after setup, at the end.
    pub server: [Option<Sample>; 3],
    pub peak_reset: bool,
    /// Bench samples: at the start and at the end.
    pub bench: [Option<Sample>; 2],
}

fn us(ns: u64) -> f64 {
    (ns as f64 / 100.0).round() / 10.0
}

fn per_sec(n: f64, secs: f64) -> f64 {
    if secs > 0.0 { n / secs } else { 0.0 }
}

impl Report {
    pub fn build(i: Inputs<'_>) -> Self {
        let t = i.totals;
        let kind = i.ctx.kind;
        let delivery_secs = t
            .last_delivery
            .map(|l| (i.ctx.base + Duration::from_nanos(l)).saturating_duration_since(i.phase_start).as_secs_f64())
            .unwrap_or(0.0);
        let latency = (t.latency.count() > 0).then(|| Latency {
            samples: t.latency.count(),
            p50: us(t.latency.quantile(0.5).unwrap_or(0)),
            p99: us(t.latency.quantile(0.99).unwrap_or(0)),
            p999: us(t.latency.quantile(0.999).unwrap_or(0)),
            max: us(t.latency.max()),
        });
        let server = match (i.args.server_pid, i.server) {
            (Some(pid), [Some(before), Some(setup), Some(end)]) => {
                let cpu = end.cpu.saturating_sub(setup.cpu).as_secs_f64();
                Some(ServerUse {
                    pid,
                    setup_cpu_secs: setup.cpu.saturating_sub(before.cpu).as_secs_f64(),
                    cpu_secs: cpu,
                    cpu_percent: 100.0 * per_sec(cpu, i.phase_secs),
                    rss_kib_before: before.rss_kib,
                    rss_kib_connected: setup.rss_kib,
                    rss_kib_after: end.rss_kib,
                    peak_rss_kib: end.peak_kib,
                    peak_reset: i.peak_reset,
                })
            }
            _ => None,
        };
        let bench = match i.bench {
            [Some(start), Some(end)] => {
                let cpu = end.cpu.saturating_sub(start.cpu).as_secs_f64();
                let wall = i.ctx.base.elapsed().as_secs_f64();
                BenchUse {
                    cpu_secs: Some(cpu),
                    cpu_percent: Some(100.0 * per_sec(cpu, wall)),
                    peak_rss_kib: Some(end.peak_kib),
                }
            }
            _ => BenchUse { cpu_secs: None, cpu_percent: None, peak_rss_kib: None },
        };
        Report {
            target: i.ctx.target(),
            kind: kind.name(),
            mode: if i.args.idle { "idle" } else { "traffic" },
            clients: i.args.clients,
            connected: i.connected,
            failed: i.failed,
            first_error: i.first_error,
            rooms: i.args.rooms,
            senders: i.senders,
            size: i.args.size,
            rate: i.args.rate,
            lines_planned: if i.args.idle { 0 } else { i.args.lines },
            window: (kind != Kind::Text).then_some(i.ctx.window),
            drop: i.args.drop,
            setup_secs: i.setup_secs,
            handshakes_per_sec: per_sec(i.connected as f64, i.handshake_secs),
            lines_sent: t.sent,
            lines_acked: kind.acks().then_some(t.accepted),
            lines_refused: t.refused,
            lines_unconfirmed: t.unconfirmed,
            send_secs: i.send_secs,
            phase_secs: i.phase_secs,
            deliveries_expected: t.expected,
            deliveries_received: t.received,
            deliveries_unacked: t.received_unacked,
            lost: t.lost,
            lost_percent: 100.0 * per_sec(t.lost as f64, t.expected as f64),
            duplicates: t.duplicates,
            out_of_order: t.out_of_order,
            disconnects: t.disconnects,
            foreign: t.foreign,
            delivery_secs,
            deliveries_per_sec: per_sec(t.received as f64, delivery_secs),
            latency_us: latency,
            server,
            bench,
        }
    }

    pub fn json(&self) -> anyhow::Result<String> {
        Ok(serde_json::to_string_pretty(self)?)
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let rate =
            if self.rate > 0.0 { format!("{:.0} lines/s offered", self.rate) } else { "as fast as possible".into() };
        let drop =
            if self.drop > 0.0 { format!(", {:.1} % of datagrams dropped", self.drop * 100.0) } else { String::new() };
        let _ = writeln!(out, "udpchat bench: {} ({})", self.target, self.mode);
        let _ = writeln!(
            out,
            "{} clients in {} room(s), {} sender(s), {}-byte lines, {rate}{drop}",
            self.clients, self.rooms, self.senders, self.size
        );
        let mut row = |name: &str, value: String| {
            let _ = writeln!(out, "  {name:<14} {value}");
        };
        let mut setup = format!(
            "{} of {} sessions in {:.2} s, {:.0} handshakes/s",
            self.connected, self.clients, self.setup_secs, self.handshakes_per_sec
        );
        if let Some(e) = &self.first_error {
            let _ = write!(setup, " ({} failed; first: {e})", self.failed);
        }
        row("setup", setup);
        if self.mode == "traffic" {
            let acked = match self.lines_acked {
                Some(a) => {
                    format!("acknowledged {a}, refused {}, unconfirmed {}", self.lines_refused, self.lines_unconfirmed)
                }
                None => "no acknowledgements (counted as accepted)".into(),
            };
            row(
                "lines",
                format!("sent {} of {} in {:.2} s; {acked}", self.lines_sent, self.lines_planned, self.send_secs),
            );
            row(
                "deliveries",
                format!(
                    "expected {}, received {}, lost {} ({:.3} %), duplicated {}, out of order {}",
                    self.deliveries_expected,
                    self.deliveries_received,
                    self.lost,
                    self.lost_percent,
                    self.duplicates,
                    self.out_of_order
                ),
            );
            row("throughput", format!("{:.0} deliveries/s over {:.2} s", self.deliveries_per_sec, self.delivery_secs));
            row(
                "latency",
                match &self.latency_us {
                    Some(l) => format!(
                        "p50 {:.2?}, p99 {:.2?}, p99.9 {:.2?}, max {:.2?} ({} samples)",
                        nanos((l.p50 * 1000.0) as u64),
                        nanos((l.p99 * 1000.0) as u64),
                        nanos((l.p999 * 1000.0) as u64),
                        nanos((l.max * 1000.0) as u64),
                        l.samples
                    ),
                    None => "nothing arrived".into(),
                },
            );
            if self.disconnects > 0 {
                row("disconnects", self.disconnects.to_string());
            }
        } else {
            row("held", format!("{:.1} s", self.phase_secs));
        }
        if let Some(s) = &self.server {
            let peak = if s.peak_reset { "this run" } else { "since start" };
            row(
                "server",
                format!(
                    "pid {}: CPU {:.2} s in setup, {:.2} s after ({:.1} % of a core); RSS {} → {} → {} KiB, peak {} KiB ({peak})",
                    s.pid,
                    s.setup_cpu_secs,
                    s.cpu_secs,
                    s.cpu_percent,
                    s.rss_kib_before,
                    s.rss_kib_connected,
                    s.rss_kib_after,
                    s.peak_rss_kib
                ),
            );
        }
        if let (Some(cpu), Some(pct), Some(peak)) =
            (self.bench.cpu_secs, self.bench.cpu_percent, self.bench.peak_rss_kib)
        {
            row("bench", format!("CPU {cpu:.2} s ({pct:.1} % of a core), peak RSS {peak} KiB"));
        }
        out
    }
}
