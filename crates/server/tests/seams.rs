//! Catch-up under every interleaving a seeded random walk finds: two
//! members talk in the lobby while a third's queue fills and drains at
//! random; the store runs as the driver runs it: a writer and a reader,
//! each running its requests in order, one at a time, and sending each
//! completion on one channel, with random delays between running a request
//! (its snapshot of the store), sending its completion, and the core
//! taking it. So a read may see the store before a commit that the core
//! hears of before the read. At the end the third member must have received every
//! lobby line exactly once, in order (docs/PROTOCOL.md §15.8: no gap and
//! no duplicate at either seam), and each sender an Ack for each line.

mod support;

use std::collections::VecDeque;

use support::{Harness, live_seqs, say, settings};
use udpchat_chat::ServerMsg;
use udpchat_server::{StoreCompletion, StoreRequest};

/// xorshift64*: deterministic, so a failure names its seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

fn walk(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let mut t = Harness::new(settings());
    let (ana, bob, cleo) = (t.login("ana"), t.login("bob"), t.login("cleo"));
    let mut got = t.take(ana);
    let (mut writer, mut reader) = (VecDeque::<StoreRequest>::new(), VecDeque::<StoreRequest>::new());
    // What each thread has run but not yet sent.
    let (mut writer_done, mut reader_done) = (None::<StoreCompletion>, None::<StoreCompletion>);
    let mut channel = VecDeque::<StoreCompletion>::new();
    let mut said = 0u64;
    let mut full = false;
    for _ in 0..3000 {
        match rng.below(10) {
            0 | 1 => {
                said += 1;
                let who = if rng.below(2) == 0 { bob } else { cleo };
                t.send(who, say(said, "lobby", "x"));
            }
            2 => {
                full = !full;
                t.set_full(ana, full);
            }
            3 if writer_done.is_none() => writer_done = writer.pop_front().map(|r| r.run(&mut t.store)),
            4 if reader_done.is_none() => reader_done = reader.pop_front().map(|r| r.run(&mut t.store)),
            5 => channel.extend(writer_done.take()),
            6 => channel.extend(reader_done.take()),
            _ => {
                if let Some(completion) = channel.pop_front() {
                    let clock = t.clock();
                    t.chat.completed(clock, completion, &mut t.out);
                }
            }
        }
        // The end of a batch of events.
        t.chat.commit();
        for request in t.chat.take_store_requests() {
            if request.writes() { writer.push_back(request) } else { reader.push_back(request) }
        }
        got.extend(t.take(ana));
    }
    // Everything settles, ana reads again, and one more line comes live.
    t.set_full(ana, false);
    channel.extend(writer_done.take());
    channel.extend(reader_done.take());
    while !(writer.is_empty() && reader.is_empty() && channel.is_empty()) {
        for request in writer.drain(..).chain(reader.drain(..)) {
            channel.push_back(request.run(&mut t.store));
        }
        while let Some(completion) = channel.pop_front() {
            let clock = t.clock();
            t.chat.completed(clock, completion, &mut t.out);
        }
        t.chat.commit();
        for request in t.chat.take_store_requests() {
            if request.writes() { writer.push_back(request) } else { reader.push_back(request) }
        }
    }
    t.request(bob, say(said + 1, "lobby", "last"));
    got.extend(t.take(ana));
    let stored = t.store.lines("lobby").len() as u64;
    assert_eq!(stored, said + 1, "seed {seed}: every line stored");
    let seqs = live_seqs(&got, "lobby");
    let first_wrong = seqs.iter().zip(1..).position(|(&got, want)| got != want);
    assert!(
        first_wrong.is_none() && seqs.len() as u64 == stored,
        "seed {seed}: ana got {} lines of {stored}; first out of place at index {first_wrong:?}: {:?}",
        seqs.len(),
        seqs.iter().skip(first_wrong.unwrap_or(0).saturating_sub(2)).take(5).collect::<Vec<_>>(),
    );
    let acks = |msgs: Vec<ServerMsg>| msgs.iter().filter(|m| matches!(m, ServerMsg::Ack { .. })).count() as u64;
    assert_eq!(acks(t.take(bob)) + acks(t.take(cleo)), said + 1, "seed {seed}: one Ack per line");
}

#[test]
fn a_lagging_member_gets_every_line_once_in_order_whatever_the_timing() {
    for seed in 0..300 {
        walk(seed);
    }
}
