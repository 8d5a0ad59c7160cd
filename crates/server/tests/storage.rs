//! The chat core's store requests and completions, without sockets or
//! threads: group commit (stored before delivered and acknowledged, lines
//! accepted during a commit go in the next one), a full store
//! (StorageFailed, numbers given out again), stored private messages, and
//! the proof that the core never waits for the store: with every read
//! held back (a slow disk), live lines in another room are still stored,
//! delivered and acknowledged.

mod support;

use support::{Harness, acks, join, live_seqs, say, settings, stored};
use udpchat_chat::{ClientMsg, ErrorCode, ServerMsg};
use udpchat_server::store::Store;

fn errors(msgs: &[ServerMsg]) -> Vec<(u64, ErrorCode)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Error { id, code, .. } => Some((*id, *code)),
            _ => None,
        })
        .collect()
}

#[test]
fn lines_are_delivered_and_acknowledged_only_after_their_commit() {
    let mut t = Harness::new(settings());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    t.send(bob, say(1, "lobby", "one"));
    t.end_batch();
    assert_eq!(t.requests.len(), 1);
    assert!(t.requests[0].writes());
    assert!(t.chat.storing());
    // Accepted while the commit is in flight: they wait for the next one.
    t.send(bob, say(2, "lobby", "two"));
    t.send(bob, say(3, "lobby", "three"));
    t.end_batch();
    assert_eq!(t.requests.len(), 1, "one commit in flight at a time");
    assert!(live_seqs(&t.take(ana), "lobby").is_empty(), "nothing delivered before the commit completes");
    assert!(acks(&t.take(bob)).is_empty(), "nothing acknowledged before the commit completes");
    assert!(t.store.lines("lobby").is_empty());

    // The first commit completes: its line goes out, and the next commit
    // (both lines accepted meanwhile, in one transaction) is asked for.
    let first = t.requests.remove(0);
    let done = first.run(&mut t.store);
    let clock = t.clock();
    t.chat.completed(clock, done, &mut t.out);
    assert_eq!(live_seqs(&t.take(ana), "lobby"), vec![1]);
    assert_eq!(acks(&t.take(bob)), vec![(1, 1)]);
    t.end_batch();
    assert_eq!(t.requests.len(), 1);
    assert_eq!(t.settle(), 1, "lines two and three go in one commit");
    assert_eq!(live_seqs(&t.take(ana), "lobby"), vec![2, 3]);
    assert_eq!(acks(&t.take(bob)), vec![(2, 2), (3, 3)]);
    assert_eq!(t.store.lines("lobby").len(), 3);
    assert!(!t.chat.storing());
}

#[test]
fn a_full_store_refuses_lines_with_storage_failed_and_reuses_their_numbers() {
    let mut t = Harness::new(settings());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    t.request(bob, say(1, "lobby", "kept"));
    t.store.set_full(true);
    t.request(bob, say(2, "lobby", "lost"));
    assert_eq!(errors(&t.take(bob)), vec![(2, ErrorCode::StorageFailed)]);
    assert_eq!(live_seqs(&t.take(ana), "lobby"), vec![1]);
    t.store.set_full(false);
    t.request(bob, say(3, "lobby", "after"));
    // Number 2 is given out again: clients see no gap from the failure.
    assert_eq!(acks(&t.take(bob)), vec![(3, 2)]);
    assert_eq!(live_seqs(&t.take(ana), "lobby"), vec![2]);
    let texts: Vec<_> = t.store.lines("lobby").into_iter().map(|l| (l.seq, l.text)).collect();
    assert_eq!(texts, vec![(1, "kept".into()), (2, "after".into())]);
}

#[test]
fn lines_accepted_during_a_failed_commit_are_renumbered_not_lost() {
    let mut t = Harness::new(settings());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.request(ana, join("other"));
    t.request(bob, join("other"));
    t.take(ana);
    t.take(bob);
    t.store.set_full(true);
    t.send(bob, say(1, "lobby", "fails"));
    t.end_batch();
    // Accepted while the failing commit is in flight, in its room and in
    // another one.
    t.send(bob, say(2, "lobby", "waits"));
    t.send(bob, say(3, "other", "elsewhere"));
    t.end_batch();
    let failing = t.requests.remove(0);
    let done = failing.run(&mut t.store);
    t.store.set_full(false);
    let clock = t.clock();
    t.chat.completed(clock, done, &mut t.out);
    t.settle();
    let bob_got = t.take(bob);
    assert_eq!(errors(&bob_got), vec![(1, ErrorCode::StorageFailed)]);
    assert_eq!(acks(&bob_got), vec![(2, 1), (3, 1)], "lobby's number 1 is given out again; other's is untouched");
    let ana_got = t.take(ana);
    assert_eq!(live_seqs(&ana_got, "lobby"), vec![1]);
    assert_eq!(live_seqs(&ana_got, "other"), vec![1]);
    t.request(bob, say(4, "lobby", "next"));
    assert_eq!(acks(&t.take(bob)), vec![(4, 2)]);
}

#[test]
fn the_backlog_of_lines_waiting_for_the_store_is_bounded() {
    let mut t = Harness::new(settings());
    let bob = t.login("bob");
    t.send(bob, say(1, "lobby", "in flight"));
    t.end_batch();
    for id in 0..udpchat_server::chat::MAX_PENDING as u64 {
        t.send(bob, say(10 + id, "lobby", "x"));
    }
    t.take(bob);
    t.send(bob, say(9, "lobby", "one too many"));
    assert_eq!(errors(&t.take(bob)), vec![(9, ErrorCode::StorageFailed)]);
}

#[test]
fn private_messages_to_accounts_are_stored_then_delivered() {
    let mut t = Harness::new(settings());
    t.store.add_account("Cleo", "pw", false);
    let bob = t.login("bob");
    // Cleo is offline: stored, acknowledged with its id.
    t.request(bob, ClientMsg::Private { id: 5, to: "cleo".into(), text: "hi".into() });
    assert_eq!(acks(&t.take(bob)), vec![(5, 1)]);
    assert_eq!(t.store.privates().len(), 1);
    // Cleo logs in and gets it as new.
    let cleo = t.connect("192.0.2.3:1000");
    t.login_as(cleo, "cleo", "pw", Vec::new());
    let got = t.take(cleo);
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Private { seq: 1, text, .. } if text == "hi")), "{got:?}");
    // Online now: delivered live after the commit.
    t.request(bob, ClientMsg::Private { id: 6, to: "Cleo".into(), text: "again".into() });
    assert!(t.take(cleo).iter().any(|m| matches!(m, ServerMsg::Private { id: 6, seq: 2, .. })));
    // No account, online: not stored, seq 0.
    t.request(cleo, ClientMsg::Private { id: 7, to: "bob".into(), text: "yo".into() });
    assert!(t.take(bob).iter().any(|m| matches!(m, ServerMsg::Private { seq: 0, .. })));
    assert_eq!(acks(&t.take(cleo)), vec![(7, 0)]);
    t.request(cleo, ClientMsg::Private { id: 8, to: "nobody".into(), text: "?".into() });
    assert_eq!(errors(&t.take(cleo)), vec![(8, ErrorCode::NoSuchNick)]);
}

/// The core never waits for the store: every read (a join's history, an
/// account lookup) is held back as if the disk were stuck, and a line in
/// another room is still stored, delivered and acknowledged.
#[test]
fn held_reads_do_not_hold_up_live_lines_in_another_room() {
    let mut store = support::MemoryStore::default();
    let old: Vec<_> = (1..=5).map(|i| stored("archive", i, "old")).collect();
    store.append(&mut old.iter(), &mut std::iter::empty(), &[]).unwrap();
    let mut t = Harness::with_store(settings(), store);
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    t.take(bob);
    let carl = t.login("carl");
    t.send(carl, join("archive"));
    // A private message's account lookup is a read too.
    t.send(carl, ClientMsg::Private { id: 9, to: "ana".into(), text: "psst".into() });
    t.send(bob, say(1, "lobby", "live"));
    t.end_batch();
    let reads = t.requests.iter().filter(|r| !r.writes()).count();
    assert_eq!(reads, 2, "history of archive and the lookup of ana");
    // Run only writes: the reads stay stuck.
    t.run_store_where(|r| r.writes());
    assert_eq!(live_seqs(&t.take(ana), "lobby"), vec![1]);
    assert_eq!(acks(&t.take(bob)), vec![(1, 1)]);
    let carl_got = t.take(carl);
    assert!(carl_got.iter().any(|m| matches!(m, ServerMsg::Joined { head: 5, .. })));
    assert!(support::lines(&carl_got).iter().all(|(_, _, history)| !history), "no history before its read");
    // The disk comes back.
    t.settle();
    let carl_got = t.take(carl);
    assert_eq!(support::lines(&carl_got).len(), 5);
    assert!(t.take(ana).iter().any(|m| matches!(m, ServerMsg::Private { text, .. } if text == "psst")));
}

#[test]
fn shutdown_waits_for_the_batch_to_be_stored() {
    let mut t = Harness::new(settings());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    t.send(bob, say(1, "lobby", "last words"));
    t.end_batch();
    assert!(t.chat.storing());
    t.settle();
    assert!(!t.chat.storing());
    let clock = t.clock();
    t.chat.shutdown(clock, &mut t.out);
    let got = t.take(ana);
    assert_eq!(live_seqs(&got, "lobby"), vec![1]);
    assert!(matches!(got.last(), Some(ServerMsg::Notice { kind: udpchat_chat::NoticeKind::Server, .. })));
    assert!(t.out.closed.contains_key(&ana) && t.out.closed.contains_key(&bob));
}
