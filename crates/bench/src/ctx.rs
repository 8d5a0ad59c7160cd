//! What every part of a bench run shares: the target's kind, the run's
//! context (addresses, sizes, the payload format every line carries) and
//! its live progress counters. The phases (`run.rs`), the members
//! (`members.rs` and one driver per kind), the progress bar and the report
//! all read it; it reads none of them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

/// The longest one session may take to connect, log in and join its room.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long sessions get to say goodbye at the end.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Udpchat,
    Text,
    Irc,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Udpchat => "udpchat",
            Kind::Text => "text",
            Kind::Irc => "irc",
        }
    }

    /// Whether the server acknowledges each line (else a sent line counts
    /// as accepted).
    pub fn acks(self) -> bool {
        self == Kind::Udpchat
    }
}

/// `udpchat://HOST:PORT`, `text://HOST:PORT` or `irc://HOST:PORT` (a bare
/// `HOST:PORT` is udpchat), with one or more addresses separated by commas
/// (`udpchat://127.0.0.1:7001,127.0.0.1:7002`): servers of one cluster,
/// which [`Ctx::addr_of`] spreads the sessions over. The scheme names the
/// kind of every address, so a list never mixes kinds.
pub fn parse_target(target: &str) -> anyhow::Result<(Kind, Vec<String>)> {
    let (kind, list) = match target.split_once("://") {
        Some(("udpchat", a)) => (Kind::Udpchat, a),
        Some(("text", a)) => (Kind::Text, a),
        Some(("irc", a)) => (Kind::Irc, a),
        Some((scheme, _)) => bail!("--target: unknown kind {scheme:?} (udpchat://, text:// or irc://)"),
        None => (Kind::Udpchat, target),
    };
    let mut addrs = Vec::new();
    for addr in list.split(',') {
        let addr = addr.trim().trim_end_matches('/');
        if addr.contains("://") {
            bail!("--target: one scheme for the whole list (udpchat://A,B), got {addr:?}");
        }
        if addr.rsplit_once(':').is_none_or(|(host, port)| host.is_empty() || port.parse::<u16>().is_err()) {
            bail!("--target: expected HOST:PORT after the scheme, got {addr:?}");
        }
        addrs.push(addr.to_owned());
    }
    Ok((kind, addrs))
}

/// Live counters, for the progress bar and for knowing when the drain is
/// over. The exact accounting is in [`stats`]; these only move forward.
#[derive(Debug, Default)]
pub struct Progress {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    pub sent: AtomicU64,
    /// Lines whose fate is known: acknowledged, refused or unconfirmed.
    pub resolved: AtomicU64,
    pub accepted: AtomicU64,
    /// Deliveries expected so far (accepted lines times the others in the room).
    pub expected: AtomicU64,
    /// Deliveries received, duplicates included.
    pub delivered: AtomicU64,
}

impl Progress {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// What every driver needs to know about the run.
#[derive(Debug)]
pub struct Ctx {
    pub kind: Kind,
    /// `HOST:PORT` of each server (several: one cluster's nodes), never empty.
    pub addrs: Vec<String>,
    /// Makes this run's nicknames, rooms and payloads unique, so runs
    /// against the same server never count each other's lines.
    pub tag: String,
    /// Payload send times are nanoseconds since this instant.
    pub base: Instant,
    pub rooms: usize,
    pub size: usize,
    pub drop: f64,
    pub window: usize,
    /// IRC operator name and password (to set user mode +F).
    pub irc_oper: Option<(String, String)>,
    pub progress: Progress,
    pub marker: String,
}

impl Ctx {
    pub fn nick(&self, member: usize) -> String {
        // Short: IRC servers limit nicknames to 9 characters by default.
        format!("b{}{member}", self.tag)
    }

    pub fn room_of(&self, member: usize) -> usize {
        member % self.rooms
    }

    /// The server member `member` connects to: address `member` mod N, so
    /// members, and the senders (the first members) with them, are split
    /// evenly over a cluster's nodes, and a room's lines cross between
    /// nodes.
    pub fn addr_of(&self, member: usize) -> &str {
        &self.addrs[member % self.addrs.len()]
    }

    /// The target as given: the kind and every address.
    pub fn target(&self) -> String {
        format!("{}://{}", self.kind.name(), self.addrs.join(","))
    }

    pub fn room_name(&self, room: usize) -> String {
        format!("bench-{}-{room}", self.tag)
    }

    /// The text of line `seq` of `member`, sent at `at`: marker, sender,
    /// sequence number and send time, padded to the line size.
    pub fn payload(&self, member: usize, seq: u64, at: Instant) -> String {
        let ns = at.saturating_duration_since(self.base).as_nanos();
        let mut text = format!("{}{member} {seq} {ns} ", self.marker);
        while text.len() < self.size {
            text.push('x');
        }
        text
    }

    /// The bench clock: nanoseconds since [`Ctx::base`]. Deliveries are
    /// timed in it, so counting one costs a subtraction, not `Instant`
    /// arithmetic.
    pub fn now_ns(&self) -> u64 {
        self.base.elapsed().as_nanos() as u64
    }

    /// Sender, sequence number and send time (bench clock) of a line of
    /// this run, found anywhere in `text` (peers may prefix the sender's
    /// name).
    /// The bench calls this for every delivery, so it reads digits by hand
    /// and looks for the marker only when the text does not start with it.
    pub fn parse(&self, text: &str) -> Option<(usize, u64, u64)> {
        let rest = match text.strip_prefix(self.marker.as_str()) {
            Some(rest) => rest,
            None => &text[text.find(&self.marker)? + self.marker.len()..],
        };
        let mut fields = rest.as_bytes().splitn(4, |&b| b == b' ');
        let member = usize::try_from(decimal(fields.next()?)?).ok()?;
        let seq = decimal(fields.next()?)?;
        let ns = decimal(fields.next()?)?;
        Some((member, seq, ns))
    }
}

/// A non-empty run of ASCII digits that fits a u64.
pub fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    // Nineteen digits always fit, so the common case needs no overflow checks.
    if digits.len() <= 19 {
        return Some(digits.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')));
    }
    digits.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

/// Three characters from the OS random generator, for [`Ctx::tag`]: enough
/// to keep runs apart, short enough for IRC's nine-character nicknames.
pub fn run_tag() -> String {
    let mut bytes = [0u8; 3];
    // Without randomness, runs against one server could collide; a fixed
    // tag still works for a single run.
    let _ = getrandom::getrandom(&mut bytes);
    bytes.iter().map(|b| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[usize::from(*b) % 36])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(size: usize) -> Ctx {
        Ctx {
            kind: Kind::Text,
            addrs: vec!["127.0.0.1:1".into()],
            tag: "abc".into(),
            marker: "~abc ".into(),
            base: Instant::now(),
            rooms: 3,
            size,
            drop: 0.0,
            window: 10,
            irc_oper: None,
            progress: Progress::default(),
        }
    }

    #[test]
    fn payload_round_trips_with_any_prefix() {
        let c = ctx(100);
        let at = c.base + Duration::from_micros(1234);
        let text = c.payload(7, 42, at);
        assert_eq!(text.len(), 100);
        assert_eq!(c.parse(&text), Some((7, 42, 1_234_000)));
        assert_eq!(c.parse(&format!("bob: {text}")), Some((7, 42, 1_234_000)));
        assert_eq!(c.parse("~abd 7 42 1 xx"), None, "another run's line");
        assert_eq!(c.parse("~abc 7 x 1"), None);
        assert_eq!(c.parse("~abc 7  1 x"), None, "an empty field");
        assert_eq!(c.parse("~abc 7 99999999999999999999 1 x"), None, "over u64");
        assert_eq!(c.parse("~abc 7 18446744073709551615 1 x").map(|p| p.1), Some(u64::MAX), "twenty digits");
        assert_eq!(c.parse("~abc 7 9999999999999999999 1 x").map(|p| p.1), Some(9_999_999_999_999_999_999));
        assert_eq!(c.parse("~abc 7 42 1"), Some((7, 42, 1)), "nothing after");
        // Shorter than its header: not padded, still whole.
        assert_eq!(c.parse(&c.payload(1, 2, at)), Some((1, 2, 1_234_000)));
        assert_eq!(ctx(5).payload(1, 2, at).split(' ').count(), 5);
    }

    #[test]
    fn targets() {
        let one = |a: &str| vec![a.to_owned()];
        assert_eq!(parse_target("irc://127.0.0.1:6667").unwrap(), (Kind::Irc, one("127.0.0.1:6667")));
        assert_eq!(parse_target("text://[::1]:9/").unwrap(), (Kind::Text, one("[::1]:9")));
        assert_eq!(parse_target("127.0.0.1:7667").unwrap(), (Kind::Udpchat, one("127.0.0.1:7667")));
        assert!(parse_target("http://x:1").is_err());
        assert!(parse_target("udpchat://nohost").is_err());
        assert_eq!(ctx(1).room_of(4), 1);
    }

    #[test]
    fn several_targets_of_one_kind() {
        let (kind, addrs) = parse_target("udpchat://127.0.0.1:7001,127.0.0.1:7002").unwrap();
        assert_eq!((kind, addrs), (Kind::Udpchat, vec!["127.0.0.1:7001".to_owned(), "127.0.0.1:7002".to_owned()]));
        let (kind, addrs) = parse_target("[::1]:1/, localhost:2").unwrap();
        assert_eq!((kind, addrs), (Kind::Udpchat, vec!["[::1]:1".to_owned(), "localhost:2".to_owned()]));
        assert!(parse_target("udpchat://127.0.0.1:7001,").is_err(), "an empty address");
        assert!(parse_target("udpchat://127.0.0.1:7001,,127.0.0.1:7002").is_err(), "an empty address");
        assert!(parse_target("udpchat://127.0.0.1:7001,irc://127.0.0.1:7002").is_err(), "two kinds");
        assert!(parse_target("irc://127.0.0.1:6667,nohost").is_err());
    }

    #[test]
    fn sessions_and_senders_spread_over_the_servers() {
        let mut c = ctx(100);
        c.addrs = vec!["a:1".into(), "b:2".into()];
        c.kind = Kind::Udpchat;
        assert_eq!(c.target(), "udpchat://a:1,b:2");
        // 50 members, the first 5 of them senders: 25 members on each
        // server, and senders on both (3 on the first, 2 on the second).
        let on_a = (0..50).filter(|&m| c.addr_of(m) == "a:1").count();
        let senders_on_a = (0..5).filter(|&m| c.addr_of(m) == "a:1").count();
        assert_eq!((on_a, senders_on_a), (25, 3));
        assert_eq!((c.addr_of(0), c.addr_of(1), c.addr_of(2)), ("a:1", "b:2", "a:1"));
        // One address: every session to it.
        assert!((0..10).all(|m| ctx(1).addr_of(m) == "127.0.0.1:1"));
    }
}
