//! Exactly-once resends (docs/PROTOCOL.md §15.7) through the chat core:
//! a client instance (its Login origin) that resends, with the same ids,
//! lines it had no acknowledgement for gets them acknowledged with seq 0
//! and not stored twice: after a reconnect, while the original's commit
//! is still in flight, and after a restart (the marks are stored with the
//! lines and read at startup). A failed commit does not count.

mod support;

use support::{Harness, MemoryStore, acks, say, settings};
use udpchat_chat::ClientMsg;
use udpchat_proto::CloseReason;

const ORIGIN: u64 = 0x5eed_1234;

fn texts(t: &Harness) -> Vec<String> {
    t.store.lines("lobby").into_iter().map(|l| l.text).collect()
}

fn session(t: &mut Harness, port: u16) -> udpchat_proto::ConnectionHandle {
    let h = t.connect(&format!("192.0.2.1:{port}"));
    t.login_from(h, "ana", "", Vec::new(), ORIGIN);
    t.take(h);
    h
}

#[test]
fn a_resend_after_a_reconnect_is_acknowledged_not_stored_again() {
    let mut t = Harness::new(settings());
    let first = session(&mut t, 1000);
    t.request(first, say(1, "lobby", "one"));
    t.request(first, say(2, "lobby", "two"));
    // The acks are lost with the session; the client resends both.
    t.close(first, CloseReason::TimedOut);
    let second = session(&mut t, 1001);
    t.request(second, say(1, "lobby", "one"));
    t.request(second, say(2, "lobby", "two"));
    t.request(second, say(3, "lobby", "three"));
    assert_eq!(acks(&t.take(second)), vec![(1, 0), (2, 0), (3, 3)]);
    assert_eq!(texts(&t), ["one", "two", "three"]);
    // Another client instance with the same ids is not a resend.
    let other = t.login("bob");
    t.request(other, say(1, "lobby", "bob's one"));
    assert_eq!(acks(&t.take(other)), vec![(1, 4)]);
}

#[test]
fn a_resend_while_the_original_is_still_being_committed_is_not_stored_twice() {
    let mut t = Harness::new(settings());
    let first = session(&mut t, 1000);
    t.send(first, say(1, "lobby", "one"));
    t.end_batch(); // the commit is in flight (a slow disk)
    t.close(first, CloseReason::TimedOut);
    let second = session(&mut t, 1001);
    t.send(second, say(1, "lobby", "one"));
    t.settle();
    assert_eq!(acks(&t.take(second)), vec![(1, 0)]);
    assert_eq!(texts(&t), ["one"]);
}

#[test]
fn a_resend_after_a_restart_is_acknowledged_not_stored_again() {
    let store = MemoryStore::default();
    let mut t = Harness::with_store(settings(), store.clone());
    let h = session(&mut t, 1000);
    t.request(h, say(1, "lobby", "one"));
    t.request(h, ClientMsg::Private { id: 2, to: "ana".into(), text: "note to self".into() });
    drop(t); // kill -9: nothing but the store survives
    let mut t = Harness::with_store(settings(), store);
    let h = session(&mut t, 1000);
    t.request(h, say(1, "lobby", "one"));
    t.request(h, say(3, "lobby", "three"));
    assert_eq!(acks(&t.take(h)), vec![(1, 0), (3, 2)]);
    assert_eq!(texts(&t), ["one", "three"]);
}

#[test]
fn lines_of_a_failed_commit_are_stored_when_resent() {
    let mut t = Harness::new(settings());
    let h = session(&mut t, 1000);
    t.store.set_full(true);
    t.request(h, say(1, "lobby", "one"));
    t.store.set_full(false);
    t.request(h, say(1, "lobby", "one"));
    let got = acks(&t.take(h));
    assert_eq!(got, vec![(1, 1)]);
    assert_eq!(texts(&t), ["one"]);
}
