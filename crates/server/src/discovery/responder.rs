//! Answers LAN discovery probes (docs/PROTOCOL.md §16.3) with a beacon.
//! Sans-IO: the driver hands it every datagram whose first byte is a
//! probe's and sends what it returns. A probe is unauthenticated and its
//! source may be forged, so an answer is never larger than the probe
//! (nothing is amplified), and each source address gets at most
//! [`PER_SOURCE_BURST`] answers at once and one per second after that,
//! the whole server at most [`GLOBAL_PER_SECOND`] a second.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use udpchat_chat::discovery::{self, Beacon};
use udpchat_proto::TokenBucket;

pub const PER_SOURCE_BURST: u32 = 4;
pub const PER_SOURCE_PER_SECOND: f64 = 1.0;
pub const GLOBAL_PER_SECOND: u32 = 64;
/// Source addresses remembered. When full, those whose bucket has
/// refilled are forgotten; if none has, new sources get no answer until
/// one has.
pub const MAX_SOURCES: usize = 4096;

pub struct Responder {
    /// Every field but the nonce and the member count, which each answer
    /// fills in.
    template: Beacon,
    sources: HashMap<IpAddr, TokenBucket>,
    global: TokenBucket,
    /// Probes answered and not (metrics).
    answered: u64,
    unanswered: u64,
}

impl Responder {
    pub fn new(template: Beacon, now: Instant) -> Self {
        Self {
            template,
            sources: HashMap::new(),
            global: TokenBucket::full(GLOBAL_PER_SECOND, now),
            answered: 0,
            unanswered: 0,
        }
    }

    /// Probes answered and not answered so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.answered, self.unanswered)
    }

    /// Like [`Responder::reply`], counted.
    pub fn answer(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], members: u32) -> Option<Vec<u8>> {
        let answer = self.reply(now, from, datagram, members);
        if discovery::parse_probe(datagram).is_some() {
            if answer.is_some() {
                self.answered += 1;
            } else {
                self.unanswered += 1;
            }
        }
        answer
    }

    /// The beacon for a probe from `from`, or nothing (not a probe, over a
    /// rate, or a probe too short to carry the beacon).
    fn reply(&mut self, now: Instant, from: SocketAddr, datagram: &[u8], members: u32) -> Option<Vec<u8>> {
        let nonce = discovery::parse_probe(datagram)?;
        let ip = from.ip().to_canonical();
        if !self.sources.contains_key(&ip) && self.sources.len() >= MAX_SOURCES {
            self.sources.retain(|_, b| !b.is_full(PER_SOURCE_BURST, PER_SOURCE_PER_SECOND, now));
            if self.sources.len() >= MAX_SOURCES {
                return None;
            }
        }
        let bucket = self.sources.entry(ip).or_insert_with(|| TokenBucket::full(PER_SOURCE_BURST, now));
        if !bucket.take(PER_SOURCE_BURST, PER_SOURCE_PER_SECOND, now) {
            return None;
        }
        if !self.global.take(GLOBAL_PER_SECOND, f64::from(GLOBAL_PER_SECOND), now) {
            return None;
        }
        let beacon = Beacon { nonce, members, ..self.template.clone() }.encode();
        (beacon.len() <= datagram.len()).then_some(beacon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn responder(now: Instant) -> Responder {
        let template = Beacon {
            nonce: [0; 8],
            version: 1,
            flags: 0,
            port: 7667,
            plain_port: 0,
            members: 0,
            key: [5; 32],
            name: "lan party".into(),
            address: String::new(),
        };
        Responder::new(template, now)
    }

    fn from(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 213, 1, last], 40000))
    }

    #[test]
    fn never_larger_than_the_probe() {
        let now = Instant::now();
        let mut r = responder(now);
        for size in 0..=600 {
            let probe = discovery::probe([1; 8], size);
            // A fresh source each time, so the rate limit stays out of it.
            let src = SocketAddr::from(([10, 0, (size / 256) as u8, (size % 256) as u8], 1));
            let later = now + Duration::from_secs(size as u64);
            if let Some(answer) = r.answer(later, src, &probe, 3) {
                assert!(answer.len() <= probe.len(), "{} > {}", answer.len(), probe.len());
                let b = Beacon::decode(&answer).unwrap();
                assert_eq!((b.nonce, b.members, b.name.as_str()), ([1; 8], 3, "lan party"));
            } else {
                // 63 bytes of fields and the 9-byte name: 72.
                assert!(probe.len() < 72, "a {}-byte probe got no answer", probe.len());
            }
        }
        assert_eq!(r.answer(now, from(1), b"\x80garbage-not-a-probe", 0), None);
    }

    #[test]
    fn rate_limited_per_source() {
        let now = Instant::now();
        let mut r = responder(now);
        let probe = discovery::probe([2; 8], discovery::PROBE_SIZE);
        let answered = (0..10).filter(|_| r.answer(now, from(1), &probe, 0).is_some()).count();
        assert_eq!(answered, PER_SOURCE_BURST as usize);
        assert!(r.answer(now, from(2), &probe, 0).is_some(), "another source is not held back");
        assert!(r.answer(now + Duration::from_secs(1), from(1), &probe, 0).is_some());
    }
}
