//! History through the chat core, without sockets: recent lines on a
//! fresh join, History pages, catch-up after a reconnect (resume cursors)
//! and for a slow reader (queue full, fed from the store, live again),
//! with store reads that complete later than the lines around them. The
//! rule checked throughout: every room line reaches every member exactly
//! once, in order (docs/PROTOCOL.md §15.8).

mod support;

use support::{Harness, MemoryStore, join, lines, live_seqs, say, settings, stored};
use udpchat_chat::{ClientMsg, ServerMsg};
use udpchat_server::store::Store;

fn store_with(room: &str, count: u64) -> MemoryStore {
    let mut store = MemoryStore::default();
    let old: Vec<_> = (1..=count).map(|i| stored(room, i, &format!("old {i}"))).collect();
    store.append(&mut old.iter(), &mut std::iter::empty(), &[]).unwrap();
    store
}

fn history_seqs(msgs: &[ServerMsg]) -> Vec<u64> {
    lines(msgs).into_iter().filter(|(_, _, history)| *history).map(|(seq, _, _)| seq).collect()
}

#[test]
fn a_fresh_join_gets_the_recent_lines_as_history_and_pages_go_back() {
    let mut t = Harness::with_store(settings(), store_with("lobby", 60));
    let ana = t.connect("192.0.2.1:1000");
    t.login_as(ana, "ana", "", Vec::new());
    let got = t.take(ana);
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Joined { head: 60, .. })));
    assert_eq!(history_seqs(&got), (11..=60).collect::<Vec<_>>(), "history_on_join = 50, oldest first");
    t.request(ana, ClientMsg::History { room: "lobby".into(), before: 11, limit: 5 });
    assert_eq!(history_seqs(&t.take(ana)), vec![6, 7, 8, 9, 10]);
    t.request(ana, ClientMsg::History { room: "lobby".into(), before: 3, limit: 100 });
    assert_eq!(history_seqs(&t.take(ana)), vec![1, 2]);
    t.request(ana, ClientMsg::History { room: "elsewhere".into(), before: 0, limit: 5 });
    assert!(matches!(t.take(ana).as_slice(), [ServerMsg::Error { code: udpchat_chat::ErrorCode::NotInRoom, .. }]));
}

#[test]
fn a_resumed_join_catches_up_exactly_after_the_cursor() {
    let mut t = Harness::with_store(settings(), store_with("lobby", 600));
    let ana = t.connect("192.0.2.1:1000");
    // More than one catch-up read (256 lines each).
    t.login_as(ana, "ana", "", vec![("lobby".into(), 20)]);
    let got = t.take(ana);
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Joined { head: 600, .. })));
    assert!(history_seqs(&got).is_empty(), "a resumed join gets no recent-history lines");
    assert_eq!(live_seqs(&got, "lobby"), (21..=600).collect::<Vec<_>>());
    // Live from here on.
    let bob = t.login("bob");
    t.request(bob, say(1, "lobby", "now"));
    assert_eq!(live_seqs(&t.take(ana), "lobby"), vec![601]);
}

#[test]
fn a_slow_reader_is_fed_from_the_store_then_goes_live_without_gap_or_duplicate() {
    let mut t = Harness::new(settings());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    t.request(bob, say(1, "lobby", "1"));
    t.set_full(ana, true);
    for id in 2..=10 {
        t.request(bob, say(id, "lobby", "x"));
    }
    let mut got = t.take(ana);
    // Ana reads again: a catch-up read goes out. While it is in flight,
    // more lines are stored and delivered to the others.
    t.set_full(ana, false);
    t.end_batch();
    assert_eq!(t.requests.iter().filter(|r| !r.writes()).count(), 1);
    for id in 11..=13 {
        t.send(bob, say(id, "lobby", "during the read"));
        t.run_store_where(|r| r.writes());
    }
    got.extend(t.take(ana));
    assert_eq!(live_seqs(&got, "lobby"), vec![1], "lines while lagging come from the store, not live");
    // The read completes (it may see lines up to 13 or not), then the
    // catch-up reaches the head and ana is live again.
    t.settle();
    t.request(bob, say(14, "lobby", "live again"));
    got.extend(t.take(ana));
    assert_eq!(live_seqs(&got, "lobby"), (1..=14).collect::<Vec<_>>());
}

#[test]
fn a_catch_up_read_that_returns_lines_stored_but_not_yet_delivered_does_not_send_them_early() {
    let mut t = Harness::new(settings());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    t.set_full(ana, true);
    t.request(bob, say(1, "lobby", "missed"));
    t.set_full(ana, false);
    t.send(bob, say(2, "lobby", "racing"));
    t.end_batch();
    // The commit of line 2 runs on the writer, but its completion has not
    // come back when the catch-up read runs: the read sees line 2, which
    // is not delivered (nor acknowledged) yet.
    let commit = t.requests.iter().position(|r| r.writes()).unwrap();
    let commit = t.requests.remove(commit);
    let committed = commit.run(&mut t.store);
    t.run_store_where(|r| !r.writes());
    assert_eq!(live_seqs(&t.take(ana), "lobby"), vec![1]);
    let clock = t.clock();
    t.chat.completed(clock, committed, &mut t.out);
    t.settle();
    t.request(bob, say(3, "lobby", "after"));
    assert_eq!(live_seqs(&t.take(ana), "lobby"), vec![2, 3]);
}

#[test]
fn live_lines_never_overtake_a_joins_history() {
    let mut t = Harness::with_store(settings(), store_with("archive", 5));
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.request(bob, join("archive"));
    t.take(ana);
    t.send(ana, join("archive"));
    t.end_batch();
    // The history read is stuck; bob speaks in the room meanwhile.
    t.send(bob, say(1, "archive", "new"));
    t.run_store_where(|r| r.writes());
    assert!(t.take(bob).iter().any(|m| matches!(m, ServerMsg::Ack { seq: 6, .. })));
    let before = t.take(ana);
    assert!(lines(&before).is_empty(), "{before:?}");
    t.settle();
    let after = lines(&t.take(ana));
    let expected: Vec<(u64, bool)> = (1..=5).map(|s| (s, true)).chain([(6, false)]).collect();
    assert_eq!(after.into_iter().map(|(s, _, h)| (s, h)).collect::<Vec<_>>(), expected);
    // Joining members still hear notices meanwhile; and ana is live now.
    t.request(bob, say(2, "archive", "live"));
    assert_eq!(live_seqs(&t.take(ana), "archive"), vec![7]);
}

#[test]
fn a_completion_for_a_cursor_that_was_dropped_is_ignored() {
    let mut t = Harness::with_store(settings(), store_with("archive", 5));
    let ana = t.login("ana");
    t.send(ana, join("archive"));
    t.end_batch();
    // Leaves and rejoins before the first history read completes: only the
    // second join's history is shown.
    t.send(ana, ClientMsg::Part { room: "archive".into(), reason: String::new() });
    t.send(ana, join("archive"));
    t.end_batch();
    t.settle();
    assert_eq!(history_seqs(&t.take(ana)), vec![1, 2, 3, 4, 5]);
}

#[test]
fn retention_prunes_in_the_background_on_the_writer() {
    let mut s = settings();
    s.history_max_lines = Some(10);
    let mut t = Harness::with_store(s, store_with("lobby", 30));
    let clock = t.clock();
    t.chat.tick(clock, &mut t.out);
    t.end_batch();
    assert!(t.requests.iter().all(|r| r.writes()) && t.requests.len() == 1);
    t.settle();
    assert_eq!(t.store.lines("lobby").first().map(|l| l.seq), Some(21));
}

#[test]
fn retention_the_operator_sets_overrides_the_config_and_survives_a_restart() {
    let mut s = settings();
    s.history_max_lines = Some(10);
    let store = store_with("lobby", 30);
    let mut t = Harness::with_store(s.clone(), store.clone());
    let clock = t.clock();
    t.chat.operator(clock, "/retention lobby", &mut t.out);
    assert_eq!(t.chat.take_console(), vec!["-- #lobby keeps the last 10 lines (from the config)"]);
    t.chat.operator(clock, "/retention lobby lines 25", &mut t.out);
    t.chat.operator(clock, "/retention lobby weeks 2", &mut t.out);
    let console = t.chat.take_console();
    assert!(console[0].ends_with("-- #lobby now keeps the last 25 lines (kept across restarts; /retention lobby default goes back to the config)"), "{console:?}");
    assert!(console[1].starts_with("-- /retention ROOM (show)"), "{console:?}");
    t.end_batch();
    t.settle();
    t.chat.tick(clock, &mut t.out);
    t.end_batch();
    t.settle();
    assert_eq!(t.store.lines("lobby").first().map(|l| l.seq), Some(6), "the operator's 25, not the config's 10");

    // After a restart the operator's rule still holds; `default` goes back
    // to the config's.
    drop(t);
    let mut t = Harness::with_store(s, store);
    let clock = t.clock();
    t.chat.operator(clock, "/retention lobby", &mut t.out);
    assert_eq!(t.chat.take_console(), vec!["-- #lobby keeps the last 25 lines (set by the operator)"]);
    t.chat.operator(clock, "/retention lobby default", &mut t.out);
    assert!(t.chat.take_console()[0].ends_with("-- #lobby keeps the last 10 lines again (from the config)"));
    t.end_batch();
    t.settle();
    t.chat.tick(clock, &mut t.out);
    t.end_batch();
    t.settle();
    assert_eq!(t.store.lines("lobby").first().map(|l| l.seq), Some(21));
}
