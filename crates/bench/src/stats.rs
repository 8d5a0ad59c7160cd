//! What `udpchat bench` counts: which lines each member received from each
//! sender (to find loss, duplicates and reordering), end-to-end latency as
//! an HDR histogram (hdrhistogram, 1 % resolution), and the
//! sums the report shows. Each receiving task keeps its own [`RecvStats`],
//! so nothing is shared or locked on the hot path; they are merged once at
//! the end.

use std::collections::HashMap;
use std::time::Duration;

/// Latency histogram precision: two significant digits (1 % resolution),
/// plenty to tell 1.9 ms from 2.1 ms.
const SIGNIFICANT_DIGITS: u8 = 2;

/// A histogram of nanosecond values (hdrhistogram, auto-resizing). It is
/// only allocated on the first value, so ten thousand idle sessions cost
/// nothing. The largest value is also kept exactly: hdrhistogram reports a
/// bucket's highest equivalent value, up to 1 % above what was seen.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    hist: Option<hdrhistogram::Histogram<u64>>,
    max: u64,
}

impl Histogram {
    fn inner(&mut self) -> &mut hdrhistogram::Histogram<u64> {
        self.hist.get_or_insert_with(|| {
            hdrhistogram::Histogram::new(SIGNIFICANT_DIGITS).expect("2 significant digits is a valid precision")
        })
    }

    pub fn record(&mut self, v: u64) {
        // Auto-resizing: recording fails only for values beyond a
        // histogram's range, which nanoseconds never reach.
        let _ = self.inner().record(v);
        self.max = self.max.max(v);
    }

    pub fn merge(&mut self, other: &Histogram) {
        if let Some(o) = &other.hist {
            let _ = self.inner().add(o);
            self.max = self.max.max(other.max);
        }
    }

    pub fn count(&self) -> u64 {
        self.hist.as_ref().map_or(0, hdrhistogram::Histogram::len)
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0 to 1); `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<u64> {
        let h = self.hist.as_ref().filter(|h| !h.is_empty())?;
        Some(h.value_at_quantile(q).min(self.max))
    }
}

/// More senders than `udpchat bench` takes (`--senders` is at most
/// `--clients`, and the bench cannot hold this many sessions).
pub const MAX_SENDERS: usize = 1 << 16;

/// A growable set of sequence numbers (a bit per number).
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    words: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// A set holding 0..n.
    pub fn full(n: u64) -> Self {
        let mut s = Self::default();
        for i in 0..n {
            s.insert(i);
        }
        s
    }

    /// Adds `seq`; false if it was there already.
    pub fn insert(&mut self, seq: u64) -> bool {
        let (w, b) = ((seq / 64) as usize, seq % 64);
        if w >= self.words.len() {
            self.words.resize(w + 1, 0);
        }
        let new = self.words[w] & (1 << b) == 0;
        self.words[w] |= 1 << b;
        self.len += u64::from(new);
        new
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// How many numbers both sets hold.
    pub fn common(&self, other: &SeqSet) -> u64 {
        self.words.iter().zip(&other.words).map(|(a, b)| u64::from((a & b).count_ones())).sum()
    }
}

/// What one member received from one sender.
#[derive(Debug, Clone, Default)]
pub struct FromSender {
    pub seen: SeqSet,
    highest: Option<u64>,
    pub duplicates: u64,
    pub out_of_order: u64,
}

/// What one member saw, kept by its receiving task.
#[derive(Debug, Clone)]
pub struct RecvStats {
    pub member: usize,
    pub room: usize,
    /// Lines received, indexed by sender. Senders are the first members,
    /// so this stays as short as the number of senders; a sender number
    /// of [`MAX_SENDERS`] or more is not this run's and counts as foreign.
    pub from: Vec<FromSender>,
    pub latency: Histogram,
    /// When the last line arrived, on the bench clock ([`super::Ctx::now_ns`]).
    pub last_delivery: Option<u64>,
    /// The member's own lines the server acknowledged (udpchat only).
    pub acked: SeqSet,
    /// Own lines the server refused with an error.
    pub refused: u64,
    /// Own lines whose fate is unknown because the session ended first.
    pub unconfirmed: u64,
    /// Sessions lost before the run ended (no member reconnects).
    pub disconnects: u64,
    /// Lines with a payload that is not this run's (or is garbled).
    pub foreign: u64,
}

impl RecvStats {
    pub fn new(member: usize, room: usize) -> Self {
        Self {
            member,
            room,
            from: Vec::new(),
            latency: Histogram::default(),
            last_delivery: None,
            acked: SeqSet::default(),
            refused: 0,
            unconfirmed: 0,
            disconnects: 0,
            foreign: 0,
        }
    }

    /// Records line `seq` of `sender`, sent at `sent_ns` and received at
    /// `now_ns` (both on the bench clock). Returns whether it was new (not
    /// a duplicate).
    pub fn delivery(&mut self, sender: usize, seq: u64, sent_ns: u64, now_ns: u64) -> bool {
        if sender >= MAX_SENDERS {
            self.foreign += 1;
            return false;
        }
        if sender >= self.from.len() {
            self.from.resize_with(sender + 1, FromSender::default);
        }
        let f = &mut self.from[sender];
        if !f.seen.insert(seq) {
            f.duplicates += 1;
            return false;
        }
        match f.highest {
            Some(h) if seq < h => f.out_of_order += 1,
            _ => f.highest = Some(seq),
        }
        self.latency.record(now_ns.saturating_sub(sent_ns));
        self.last_delivery = Some(now_ns);
        true
    }
}

/// What one sender did, kept by its sending task.
#[derive(Debug, Clone)]
pub struct SendStats {
    pub member: usize,
    pub room: usize,
    pub sent: u64,
}

/// Everything added up.
#[derive(Debug, Clone, Default)]
pub struct Totals {
    pub sent: u64,
    /// Lines the server accepted: acknowledged (udpchat), or sent (peers,
    /// which acknowledge nothing).
    pub accepted: u64,
    pub refused: u64,
    pub unconfirmed: u64,
    pub expected: u64,
    /// Distinct deliveries of accepted lines.
    pub received: u64,
    /// Deliveries of lines that were never acknowledged (the session ended
    /// before the acknowledgement came back).
    pub received_unacked: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub disconnects: u64,
    pub foreign: u64,
    pub latency: Histogram,
    pub last_delivery: Option<u64>,
}

/// Adds up every member's and sender's counts. `room_size[r]` is how many
/// members room `r` has; each accepted line is expected once at every
/// member of its room but its sender. `acks_are_sends`: the target has no
/// acknowledgements, so every sent line counts as accepted.
pub fn totals(recv: &[RecvStats], send: &[SendStats], room_size: &[u64], acks_are_sends: bool) -> Totals {
    let mut t = Totals::default();
    let by_member: HashMap<usize, &RecvStats> = recv.iter().map(|r| (r.member, r)).collect();
    for s in send {
        t.sent += s.sent;
        let accepted = if acks_are_sends {
            SeqSet::full(s.sent)
        } else {
            by_member.get(&s.member).map(|r| r.acked.clone()).unwrap_or_default()
        };
        t.accepted += accepted.len();
        t.expected += accepted.len() * room_size.get(s.room).copied().unwrap_or(1).saturating_sub(1);
        for r in recv.iter().filter(|r| r.room == s.room && r.member != s.member) {
            if let Some(f) = r.from.get(s.member) {
                let got = f.seen.common(&accepted);
                t.received += got;
                t.received_unacked += f.seen.len() - got;
            }
        }
    }
    for r in recv {
        t.refused += r.refused;
        t.unconfirmed += r.unconfirmed;
        t.disconnects += r.disconnects;
        t.foreign += r.foreign;
        t.latency.merge(&r.latency);
        t.last_delivery = t.last_delivery.max(r.last_delivery);
        for f in &r.from {
            t.duplicates += f.duplicates;
            t.out_of_order += f.out_of_order;
        }
    }
    t.lost = t.expected.saturating_sub(t.received);
    t
}

/// Nanoseconds as a `Duration`, for display.
pub fn nanos(v: u64) -> Duration {
    Duration::from_nanos(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_within_two_percent() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 1000); // 1 µs .. 100 ms
        }
        for (q, want) in [(0.5, 50_000_000.0), (0.99, 99_000_000.0), (0.999, 99_900_000.0)] {
            let got = h.quantile(q).unwrap() as f64;
            assert!((got - want).abs() / want < 0.02, "q{q}: {got} vs {want}");
        }
        assert_eq!(h.max(), 100_000_000);
        assert_eq!(h.quantile(1.0), Some(100_000_000));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn merged_histograms_count_both() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        a.record(1_000);
        b.record(5_000_000);
        a.merge(&b);
        a.merge(&Histogram::default());
        assert_eq!((a.count(), a.max()), (2, 5_000_000));
        let median = a.quantile(0.5).unwrap();
        assert!((1_000..=1_010).contains(&median), "{median}");
    }

    #[test]
    fn loss_duplicates_and_order() {
        let now = 5;
        let mut a = RecvStats::new(1, 0);
        for seq in [0, 2, 1, 2, 4] {
            a.delivery(0, seq, now, now);
        }
        let mut sender = RecvStats::new(0, 0);
        for seq in 0..5 {
            sender.acked.insert(seq);
        }
        let send = [SendStats { member: 0, room: 0, sent: 5 }];
        let t = totals(&[sender, a], &send, &[2], false);
        assert_eq!((t.accepted, t.expected, t.received, t.lost), (5, 5, 4, 1));
        assert_eq!((t.duplicates, t.out_of_order), (1, 1));
        let mut b = RecvStats::new(1, 0);
        assert!(!b.delivery(MAX_SENDERS, 0, now, now));
        assert_eq!((b.foreign, b.from.len()), (1, 0));
    }
}
