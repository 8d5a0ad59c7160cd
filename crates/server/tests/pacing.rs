//! Flood control as back-pressure (docs/PROTOCOL.md §15.10) through the
//! chat core, without sockets: requests over the rate are held and
//! handled at the rate, in order, never refused for speed; a full held
//! queue pauses reading the session (transport back-pressure) and
//! resumes it once drained; Limits follows Welcome, with an account's
//! own rate, and again when the operator changes that rate.

mod support;

use std::time::Duration;

use support::{Harness, MemoryStore, acks, join, live_seqs, say, settings};
use udpchat_chat::{ClientMsg, NoticeKind, ServerMsg};
use udpchat_server::chat::HOLD_REQUESTS;
use udpchat_server::settings::Settings;

/// The server's defaults: a burst of 5, then 2 per second.
fn paced() -> Settings {
    Settings { rate_burst: 5, rate_per_second: 2.0, ..settings() }
}

fn errors(msgs: &[ServerMsg]) -> Vec<&ServerMsg> {
    msgs.iter().filter(|m| matches!(m, ServerMsg::Error { .. })).collect()
}

#[test]
fn sixty_lines_at_once_are_all_stored_and_acknowledged_in_order() {
    let mut t = Harness::new(paced());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    for i in 1..=60 {
        t.send(bob, say(i, "lobby", &format!("line {i}")));
    }
    t.settle();
    // The burst goes at once; the rest is held, not refused.
    let first = t.take(bob);
    assert!(errors(&first).is_empty(), "{first:?}");
    assert_eq!(acks(&first).len(), 5);
    let waits = t.release_all();
    assert!(waits >= 55, "released at the rate, one token at a time ({waits} waits)");
    let rest = t.take(bob);
    assert!(errors(&rest).is_empty(), "{rest:?}");
    let all: Vec<(u64, u64)> = acks(&first).into_iter().chain(acks(&rest)).collect();
    assert_eq!(all, (1..=60).map(|i| (i, i)).collect::<Vec<_>>());
    let stored: Vec<String> = t.store.lines("lobby").into_iter().map(|l| l.text).collect();
    assert_eq!(stored, (1..=60).map(|i| format!("line {i}")).collect::<Vec<_>>());
    assert_eq!(live_seqs(&t.take(ana), "lobby"), (1..=60).collect::<Vec<_>>());
}

#[test]
fn held_requests_keep_their_order_across_a_join() {
    let mut t = Harness::new(paced());
    let bob = t.login("bob");
    for i in 1..=8 {
        t.send(bob, say(i, "lobby", "x"));
    }
    t.send(bob, join("rust"));
    t.send(bob, say(9, "rust", "in rust"));
    t.settle();
    t.release_all();
    let got = t.take(bob);
    assert!(errors(&got).is_empty(), "the line for #rust waited for its /join: {got:?}");
    assert_eq!(t.store.lines("rust").len(), 1);
    assert_eq!(t.store.lines("lobby").len(), 8);
}

#[test]
fn a_full_held_queue_pauses_reading_until_it_drains() {
    let mut t = Harness::new(paced());
    let bob = t.login("bob");
    let n = (HOLD_REQUESTS + 10) as u64;
    for i in 1..=n {
        t.send(bob, say(i, "lobby", "x"));
    }
    t.settle();
    assert!(t.out.paused.contains(&bob), "reading stops once the held queue is full");
    assert!(t.out.closed.is_empty());
    t.release_all();
    assert!(!t.out.paused.contains(&bob), "and resumes once it has drained");
    assert_eq!(t.out.pauses.get(&bob), Some(&1));
    assert_eq!(acks(&t.take(bob)).len(), n as usize);
}

#[test]
fn quit_waits_behind_held_lines() {
    let mut t = Harness::new(paced());
    let (ana, bob) = (t.login("ana"), t.login("bob"));
    t.take(ana);
    for i in 1..=8 {
        t.send(bob, say(i, "lobby", "x"));
    }
    t.send(bob, ClientMsg::Quit { reason: "done".into() });
    t.settle();
    t.release_all();
    let got = t.take(ana);
    let quit_at = got.iter().position(|m| matches!(m, ServerMsg::Notice { kind: NoticeKind::Quit, .. }));
    let last_line = got.iter().rposition(|m| matches!(m, ServerMsg::Line(_)));
    assert_eq!(live_seqs(&got, "lobby"), (1..=8).collect::<Vec<_>>());
    assert!(quit_at > last_line, "the quit notice comes after the lines: {got:?}");
}

#[test]
fn limits_follow_welcome_with_the_accounts_rate() {
    let mut t = Harness::new(paced());
    let h = t.connect("192.0.2.1:1000");
    t.login_as(h, "ana", "", Vec::new());
    let got = t.take(h);
    let welcome = got.iter().position(|m| matches!(m, ServerMsg::Welcome { .. })).unwrap();
    assert_eq!(
        got.get(welcome + 1),
        Some(&ServerMsg::Limits { max_line_bytes: 4096, rate_burst: 5, rate_milli: 2000 }),
        "{got:?}"
    );

    t.store.add_account("bot", "password1", false);
    t.store.set_rate("bot", 50);
    let h = t.connect("192.0.2.1:1001");
    t.login_as(h, "bot", "password1", Vec::new());
    let got = t.take(h);
    assert!(got.contains(&ServerMsg::Limits { max_line_bytes: 4096, rate_burst: 5, rate_milli: 50_000 }), "{got:?}");
}

#[test]
fn an_operator_changing_an_accounts_rate_resends_limits_to_its_sessions_and_it_is_kept() {
    let store = MemoryStore::default();
    store.add_account("bot", "password1", false);
    let mut t = Harness::with_store(paced(), store.clone());
    let bot = t.connect("192.0.2.1:1001");
    t.login_as(bot, "bot", "password1", Vec::new());
    let ana = t.login("ana");
    t.take(bot);
    t.take(ana);

    let clock = t.clock();
    t.chat.operator(clock, "/rate BOT 40", &mut t.out);
    t.end_batch();
    t.settle(); // the account is read, then the new rate written
    t.settle();
    let fresh = ServerMsg::Limits { max_line_bytes: 4096, rate_burst: 5, rate_milli: 40_000 };
    assert_eq!(t.take(bot), vec![fresh.clone()], "the bot is told at once");
    assert!(t.take(ana).is_empty(), "other sessions keep theirs");
    assert!(t.chat.take_console().iter().any(|l| l.ends_with("-- rate of bot set to 40 lines/s (1 session told)")));

    // The bot now gets 40 requests a second: 30 lines in a second are all
    // handled without waiting (with 2/s they would wait 12 s).
    for id in 1..=30 {
        t.send(bot, say(id, "lobby", &format!("line {id}")));
    }
    t.end_batch();
    t.settle();
    t.advance(Duration::from_millis(700));
    t.release_all();
    t.settle();
    assert_eq!(acks(&t.take(bot)).len(), 30);

    // Kept: a later login of the account gets the rate.
    drop(t);
    let mut t = Harness::with_store(paced(), store);
    let bot = t.connect("192.0.2.1:1002");
    t.login_as(bot, "bot", "password1", Vec::new());
    assert!(t.take(bot).contains(&fresh));

    // An unknown account is named, and nothing changes.
    let clock = t.clock();
    t.chat.operator(clock, "/rate nobody 9", &mut t.out);
    t.end_batch();
    t.settle();
    let console = t.chat.take_console();
    assert!(
        console.iter().any(|l| l.contains("nobody has no account") && l.contains("udpchat user add")),
        "{console:?}"
    );
}
