//! Prometheus metrics (`metrics_listen`): names and units after the
//! Prometheus conventions (`_total` counters, base units: seconds, bytes),
//! rendered in the Prometheus text format by metrics-exporter-prometheus.
//!
//! Nothing on the hot path touches these handles. The chat core and the
//! protocol endpoint keep plain counters (`chat/stats.rs`,
//! `EndpointStats`); at each scrape the driver copies them here
//! ([`Metrics::render`]) and renders. Only rare events are recorded as
//! they happen: a handshake's duration, a commit's latency (on the store
//! writer thread), and every logged-in session's round-trip time once a
//! second.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusRecorder};
use udpchat_proto::{Endpoint, EndpointStats};

use crate::chat::{ChatGauges, ChatServer, ChatStats};

/// Bucket bounds in seconds, 100 µs to 10 s: loopback round trips and
/// fsyncs at the low end, a slow disk or a distant client at the top.
const SECONDS_BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

const META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));

pub struct Metrics {
    recorder: PrometheusRecorder,
    counters: Vec<(Counter, ReadCount)>,
    gauges: Vec<(Gauge, ReadLevel)>,
    rtt: Histogram,
    handshake: Histogram,
    commit: Histogram,
}

/// What one scrape reads.
struct Sources {
    chat: ChatStats,
    gauges: ChatGauges,
    endpoint: EndpointStats,
    connections: usize,
    lan: LanStats,
}

/// The plain-text gateway's and LAN discovery's counts (zero when off).
#[derive(Debug, Clone, Copy, Default)]
pub struct LanStats {
    pub plain_members: usize,
    pub plain_datagrams_received: u64,
    pub plain_datagrams_sent: u64,
    /// Replies not sent for want of a plain address's budget (§17.4).
    pub plain_replies_dropped: u64,
    pub discovery_answered: u64,
    /// Probes not answered (over a rate, or too short for the beacon).
    pub discovery_unanswered: u64,
}

/// How a counter or a gauge is read from a scrape's [`Sources`].
type ReadCount = fn(&Sources) -> u64;
type ReadLevel = fn(&Sources) -> f64;
type Labels = &'static [(&'static str, &'static str)];
/// Name, labels, help, and how to read it.
type CounterSpec = (&'static str, Labels, &'static str, ReadCount);
type GaugeSpec = (&'static str, Labels, &'static str, ReadLevel);

const COUNTERS: &[CounterSpec] = &[
    ("udpchat_lines_accepted_total", &[], "Room lines accepted (numbered and queued for storing).", |s| {
        s.chat.lines_accepted
    }),
    ("udpchat_deliveries_total", &[], "Room lines sent live to a member, one per member reached.", |s| {
        s.chat.deliveries
    }),
    ("udpchat_logins_total", &[], "Successful logins.", |s| s.chat.logins),
    ("udpchat_login_failures_total", &[], "Refused logins (wrong server or account password).", |s| {
        s.chat.login_failures
    }),
    (
        "udpchat_catchups_total",
        &[],
        "Times a member's queue was full and it was switched to catching up from the store.",
        |s| s.gauges.catch_ups,
    ),
    ("udpchat_received_datagrams_total", &[], "UDP datagrams received.", |s| s.endpoint.datagrams_received),
    ("udpchat_received_bytes_total", &[], "UDP payload bytes received.", |s| s.endpoint.bytes_received),
    ("udpchat_sent_datagrams_total", &[], "UDP datagrams sent.", |s| s.endpoint.datagrams_sent),
    ("udpchat_sent_bytes_total", &[], "UDP payload bytes sent.", |s| s.endpoint.bytes_sent),
    ("udpchat_packets_lost_total", &[], "Packets declared lost; their data was sent again.", |s| {
        s.endpoint.packets_lost
    }),
    ("udpchat_probe_timeouts_total", &[], "Probe timeouts; each sends the oldest unacknowledged data again.", |s| {
        s.endpoint.probe_timeouts
    }),
    ("udpchat_handshakes_total", &[("outcome", "accepted")], "Handshakes by outcome.", |s| {
        s.endpoint.handshakes_accepted
    }),
    ("udpchat_handshakes_total", &[("outcome", "retry")], "Handshakes by outcome.", |s| s.endpoint.retries_sent),
    ("udpchat_handshakes_total", &[("outcome", "rate_limited")], "Handshakes by outcome.", |s| {
        s.endpoint.handshakes_rate_limited
    }),
    ("udpchat_handshakes_total", &[("outcome", "refused")], "Handshakes by outcome.", |s| s.chat.sessions_refused),
    ("udpchat_handshakes_total", &[("outcome", "failed")], "Handshakes by outcome.", |s| s.endpoint.handshakes_failed),
    ("udpchat_dropped_datagrams_total", &[("reason", "invalid")], "Datagrams dropped without a reply.", |s| {
        s.endpoint.dropped_invalid
    }),
    ("udpchat_dropped_datagrams_total", &[("reason", "unknown_session")], "Datagrams dropped without a reply.", |s| {
        s.endpoint.dropped_unknown_session
    }),
    (
        "udpchat_stateless_resets_total",
        &[],
        "Stateless resets sent to clients of sessions the server does not know.",
        |s| s.endpoint.stateless_resets_sent,
    ),
    ("udpchat_plain_datagrams_total", &[("direction", "received")], "Plain-text datagrams (§17).", |s| {
        s.lan.plain_datagrams_received
    }),
    ("udpchat_plain_datagrams_total", &[("direction", "sent")], "Plain-text datagrams (§17).", |s| {
        s.lan.plain_datagrams_sent
    }),
    (
        "udpchat_plain_replies_dropped_total",
        &[],
        "Replies to plain-text members not sent: past three times what the address sent (§17.4).",
        |s| s.lan.plain_replies_dropped,
    ),
    ("udpchat_discovery_probes_total", &[("outcome", "answered")], "LAN discovery probes (§16).", |s| {
        s.lan.discovery_answered
    }),
    ("udpchat_discovery_probes_total", &[("outcome", "unanswered")], "LAN discovery probes (§16).", |s| {
        s.lan.discovery_unanswered
    }),
];

const GAUGES: &[GaugeSpec] = &[
    ("udpchat_sessions", &[("state", "handshaking")], "Sessions by state.", |s| {
        s.connections.saturating_sub(s.gauges.logging_in + s.gauges.logged_in) as f64
    }),
    ("udpchat_sessions", &[("state", "logging_in")], "Sessions by state.", |s| s.gauges.logging_in as f64),
    ("udpchat_sessions", &[("state", "logged_in")], "Sessions by state.", |s| s.gauges.logged_in as f64),
    ("udpchat_rooms", &[], "Rooms that exist.", |s| s.gauges.rooms as f64),
    ("udpchat_rooms_occupied", &[], "Rooms with at least one member.", |s| s.gauges.rooms_occupied as f64),
    ("udpchat_store_queue_depth", &[], "Lines and private messages waiting for the next commit.", |s| {
        s.gauges.store_pending as f64
    }),
    ("udpchat_store_reads_in_flight", &[], "History and account reads in flight.", |s| s.gauges.store_reads as f64),
    ("udpchat_plain_members", &[], "Members over plain UDP (§17).", |s| s.lan.plain_members as f64),
];

fn key(name: &'static str, labels: Labels) -> Key {
    Key::from_parts(name, labels.iter().map(|&(k, v)| Label::from_static_parts(k, v)).collect::<Vec<_>>())
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &SECONDS_BUCKETS)
            .expect("bucket list is not empty")
            .build_recorder();
        let mut described = std::collections::HashSet::new();
        let mut describe = |name: &'static str, help: &'static str, f: &dyn Fn(&'static str, &'static str)| {
            if described.insert(name) {
                f(name, help);
            }
        };
        let counters = COUNTERS
            .iter()
            .map(|&(name, labels, help, read)| {
                describe(name, help, &|n, h| recorder.describe_counter(n.into(), None, h.into()));
                (recorder.register_counter(&key(name, labels), &META), read)
            })
            .collect();
        let gauges = GAUGES
            .iter()
            .map(|&(name, labels, help, read)| {
                describe(name, help, &|n, h| recorder.describe_gauge(n.into(), None, h.into()));
                (recorder.register_gauge(&key(name, labels), &META), read)
            })
            .collect();
        let histogram = |name: &'static str, help: &'static str| {
            recorder.describe_histogram(name.into(), None, help.into());
            recorder.register_histogram(&Key::from_static_name(name), &META)
        };
        let rtt = histogram(
            "udpchat_rtt_seconds",
            "Smoothed round-trip time of each logged-in session, sampled once a second.",
        );
        let handshake = histogram(
            "udpchat_handshake_duration_seconds",
            "Server side of a handshake: from the reply to a client's first datagram to its first authenticated packet.",
        );
        let commit = histogram(
            "udpchat_store_commit_duration_seconds",
            "Time the store writer took for one group commit of lines (fsync included).",
        );
        Self { recorder, counters, gauges, rtt, handshake, commit }
    }

    /// A new session's handshake took `d`.
    pub fn observe_handshake(&self, d: Duration) {
        self.handshake.record(d.as_secs_f64());
    }

    /// The histogram the store writer records commit latencies in.
    pub fn commit_latency(&self) -> Histogram {
        self.commit.clone()
    }

    /// Records every logged-in session's smoothed round-trip time.
    pub fn sample_rtts(&self, chat: &ChatServer, endpoint: &Endpoint) {
        for h in chat.logged_in_sessions() {
            if let Some(stats) = endpoint.connection_stats(h) {
                self.rtt.record(stats.rtt.as_secs_f64());
            }
        }
    }

    /// Copies the current counts in and renders the text format.
    pub fn render(&self, chat: &ChatServer, endpoint: &Endpoint, lan: LanStats) -> String {
        let sources = Sources {
            chat: chat.stats(),
            gauges: chat.gauges(),
            endpoint: endpoint.totals(),
            connections: endpoint.connection_count(),
            lan,
        };
        for (counter, read) in &self.counters {
            counter.absolute(read(&sources));
        }
        for (gauge, read) in &self.gauges {
            gauge.set(read(&sources));
        }
        self.recorder.handle().render()
    }
}
