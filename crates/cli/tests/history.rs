//! End-to-end: history that never loses a line, against the real
//! `udpchat server` binary on loopback. Acknowledged lines survive kill -9
//! and reach every member exactly once, in order; members that vanish or
//! reconnect get exactly what they missed; newcomers get recent history
//! and can page back; retention keeps rooms bounded; registered nicknames,
//! operator rights and stored private messages work as accounts promise.
//! The bad-storage cases are in storage.rs.

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::raw::RawClient;
use common::{ServerProc, WAIT, add_user, collect, expect, login, stored_lines};
use tokio::sync::mpsc::Receiver;
use udpchat_client::chat::{ClientMsg, ErrorCode, NoticeKind, RefuseCode, ServerMsg};
use udpchat_client::{Client, ClientEvent, ClientOptions, Input};

/// Lines a test keeps unacknowledged at once, so the client library's
/// outbox never overflows (past 1,000 it drops the oldest).
const WINDOW: usize = 100;

fn notice(e: &ClientEvent, kind: NoticeKind, who: &str) -> bool {
    matches!(e, ClientEvent::Server(ServerMsg::Notice { kind: k, nick, .. }) if *k == kind && nick == who)
}

fn joined(e: &ClientEvent, which: &str) -> bool {
    matches!(e, ClientEvent::Server(ServerMsg::Joined { room, .. }) if room == which)
}

fn error_code(e: &ClientEvent) -> Option<ErrorCode> {
    match e {
        ClientEvent::Server(ServerMsg::Error { code, .. }) => Some(*code),
        _ => None,
    }
}

/// (seq, text) of the lines of `room` among `events`, live or history as
/// asked, in arrival order.
fn room_lines(events: &[ClientEvent], room: &str, history: bool) -> Vec<(u64, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Server(ServerMsg::Line(l)) if l.room == room && l.history == history => {
                Some((l.seq, l.text.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Collects events until `done(all collected so far)`; panics after [`WAIT`].
async fn gather(
    events: &mut Receiver<ClientEvent>,
    what: &str,
    mut done: impl FnMut(&[ClientEvent]) -> bool,
) -> Vec<ClientEvent> {
    let mut seen = Vec::new();
    let ok = tokio::time::timeout(WAIT, async {
        while let Some(e) = events.recv().await {
            seen.push(e);
            if done(&seen) {
                return true;
            }
        }
        false
    })
    .await;
    if ok != Ok(true) {
        let tail: Vec<_> = seen.iter().rev().take(5).rev().collect();
        panic!("timed out waiting for {what} ({} events; last: {tail:?})", seen.len());
    }
    seen
}

/// Sends `texts` to `room`, at most [`WINDOW`] unacknowledged, and waits
/// for every acknowledgement. Returns the acknowledged (seq, text) in
/// order, and every other event seen meanwhile.
async fn say_all(
    client: &Client,
    events: &mut Receiver<ClientEvent>,
    room: &str,
    texts: impl IntoIterator<Item = String>,
) -> (Vec<(u64, String)>, Vec<ClientEvent>) {
    let mut texts = texts.into_iter();
    let (mut inflight, mut acked, mut others) = (HashMap::new(), Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        while inflight.len() < WINDOW {
            let Some(text) = texts.next() else { break };
            inflight.insert(client.say(room, &text).await, text);
        }
        if inflight.is_empty() {
            return (acked, others);
        }
        let e = tokio::time::timeout_at(deadline, events.recv()).await;
        let e = e.unwrap_or_else(|_| panic!("{} lines never acknowledged", inflight.len())).expect("client runs");
        let refused = match &e {
            ClientEvent::Server(ServerMsg::Error { id, .. }) => inflight.contains_key(id),
            ClientEvent::Unconfirmed { ids } => ids.iter().any(|id| inflight.contains_key(id)),
            _ => false,
        };
        assert!(!refused, "a line was not accepted: {e:?}");
        match e {
            ClientEvent::Delivered { id, msg: ServerMsg::Line(l) } if inflight.remove(&id).is_some() => {
                acked.push((l.seq, l.text));
            }
            other => others.push(other),
        }
    }
}

fn reconnecting(mut o: ClientOptions) -> ClientOptions {
    o.reconnect = true;
    o
}

// ---------------------------------------------------------------------------
// Durability: kill -9 in the middle of 10,000 lines

const SENDERS: usize = 5;
const PER_SENDER: usize = 2000;

/// What one sender saw of the lobby.
#[derive(Default)]
struct Member {
    nick: String,
    /// Its own lines the server acknowledged: seq to text.
    acked: BTreeMap<u64, String>,
    /// Its own lines whose fate it never learned (unconfirmed when the
    /// session was lost, or never answered): stored or not, but not twice.
    unknown: HashSet<String>,
    /// Its own lines resent after the restart that the server had already
    /// stored before it died (acknowledged with seq 0, §15.8): stored
    /// exactly once, under a number the sender learns from the catch-up.
    resent: HashSet<String>,
    /// Room lines shown (live or caught up, never history), in order...
    shown: Vec<(u64, String)>,
    /// ...and its own lines as acknowledged, in order.
    own: Vec<(u64, String)>,
    reconnects: usize,
    problems: Vec<String>,
}

impl Member {
    /// Takes an event in; returns whether it acknowledged one of our lines.
    fn record(&mut self, e: ClientEvent, inflight: &mut HashMap<u64, String>) -> bool {
        match e {
            ClientEvent::Delivered { id, msg: ServerMsg::Line(l) } if l.seq == 0 => {
                inflight.remove(&id);
                self.resent.insert(l.text);
                return true;
            }
            ClientEvent::Delivered { id, msg: ServerMsg::Line(l) } => {
                inflight.remove(&id);
                self.acked.insert(l.seq, l.text.clone());
                self.own.push((l.seq, l.text));
                return true;
            }
            ClientEvent::Server(ServerMsg::Line(l)) if !l.history && l.room == "lobby" => {
                self.shown.push((l.seq, l.text));
            }
            ClientEvent::Unconfirmed { ids } => {
                self.unknown.extend(ids.iter().filter_map(|id| inflight.remove(id)));
            }
            ClientEvent::Disconnected { reconnecting: true, .. } => self.reconnects += 1,
            ClientEvent::Server(ServerMsg::Error { id, .. }) if inflight.contains_key(&id) => {
                self.problems.push(format!("{e:?}"));
                inflight.remove(&id);
            }
            ClientEvent::Disconnected { reconnecting: false, .. } | ClientEvent::Closed { .. } => {
                self.problems.push(format!("{e:?}"));
            }
            _ => {}
        }
        false
    }
}

/// Sends `c{n} n{i}` for every i, keeping [`WINDOW`] lines in flight,
/// until all are answered one way or another or `deadline` passes. This
/// loop sends each line once; the client library itself resends the lines
/// left unanswered by the crash, with their ids and Login origin, and the
/// server acknowledges those it had already stored with seq 0 instead of
/// storing them twice.
async fn send_lines(
    n: usize,
    client: Client,
    mut events: Receiver<ClientEvent>,
    acks: Arc<AtomicUsize>,
    deadline: tokio::time::Instant,
) -> (Client, Receiver<ClientEvent>, Member) {
    let mut m = Member { nick: format!("c{n}"), ..Member::default() };
    let mut inflight = HashMap::new();
    let mut next = 0;
    while (next < PER_SENDER || !inflight.is_empty()) && m.problems.is_empty() {
        while next < PER_SENDER && inflight.len() < WINDOW {
            let text = format!("c{n} n{next}");
            inflight.insert(client.say("lobby", &text).await, text);
            next += 1;
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(e)) => {
                if m.record(e, &mut inflight) {
                    acks.fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(None) => break,
            Err(_) => {
                m.problems.push(format!("gave up with {} lines unanswered", inflight.len()));
                break;
            }
        }
    }
    m.unknown.extend(inflight.into_values());
    (client, events, m)
}

/// Every line that got an acknowledgement survives a kill -9 of the
/// server in the middle of a 10,000-line burst, is stored exactly once,
/// and reaches every member exactly once and in order, across the
/// reconnect and catch-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_lines_survive_kill_9_and_reach_everyone_once() {
    let started = Instant::now();
    // Stateless resets: clients learn of the restart at their next packet.
    let config = "rate_per_second = 0\nhistory_sync = \"full\"\nidle_timeout_secs = 5\nstateless_reset = true\n";
    let args = ["--console", "off", "--quiet"];
    let server = ServerProc::start(config, &args, &[]);
    let port = server.port;
    let mut clients = Vec::new();
    for n in 0..SENDERS {
        clients.push(login(reconnecting(server.options(&format!("c{n}")))).await);
    }
    let acks = Arc::new(AtomicUsize::new(0));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(n, (client, events))| tokio::spawn(send_lines(n, client, events, acks.clone(), deadline)))
        .collect();

    // Part-way through, kill -9 and restart on the same data and port.
    let crash_by = Instant::now() + Duration::from_secs(20);
    while acks.load(Ordering::Relaxed) < 3000 {
        assert!(Instant::now() < crash_by, "only {} lines acknowledged in 20 s", acks.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let dir = server.kill();
    let acked_at_crash = acks.load(Ordering::Relaxed);
    let server = ServerProc::restart(dir, port, config, &args);

    let mut members = Vec::new();
    for t in tasks {
        members.push(t.await.expect("sender task"));
    }
    let total: usize = members.iter().map(|(_, _, m)| m.acked.len()).sum();
    assert!(acked_at_crash < total, "the crash came after everything was sent");
    for (_, _, m) in &members {
        assert!(m.problems.is_empty(), "{}: {:?}", m.nick, m.problems);
    }
    // (A sender that happened to finish before the crash reconnects later,
    // while the marker is awaited, so not every one need have done it yet.)
    assert!(members.iter().any(|(_, _, m)| m.reconnects > 0), "nobody noticed the restart");

    // A last line marks the end: once a member has it, it has everything.
    let (first, first_ev, m0) = &mut members[0];
    let marker_id = first.say("lobby", "marker").await;
    let seen = gather(
        first_ev,
        "the marker's ack",
        |s| matches!(s.last(), Some(ClientEvent::Delivered { id, .. }) if *id == marker_id),
    )
    .await;
    let mut none = HashMap::new();
    for e in seen {
        m0.record(e, &mut none);
    }
    let marker = *m0.acked.iter().find(|(_, t)| *t == "marker").expect("marker acknowledged").0;
    for (_, events, m) in members.iter_mut().skip(1) {
        let seen = gather(events, "the marker", |s| room_lines(s, "lobby", false).iter().any(|l| l.0 == marker)).await;
        for e in seen {
            m.record(e, &mut none);
        }
    }
    let dir = server.kill();
    let stored = stored_lines(&dir.path().join("data"), "lobby");

    // (a) The store: every acknowledged line exactly once, nothing else.
    let by_seq: BTreeMap<u64, (String, String)> =
        stored.iter().map(|l| (l.seq, (l.from.clone(), l.text.clone()))).collect();
    let mut texts = HashSet::new();
    for l in &stored {
        assert!(texts.insert(&l.text), "{:?} is stored twice", l.text);
    }
    assert_eq!(by_seq.keys().copied().collect::<Vec<_>>(), (1..=marker).collect::<Vec<_>>(), "numbering has a gap");
    for (_, _, m) in &members {
        for (seq, text) in &m.acked {
            assert_eq!(by_seq.get(seq), Some(&(m.nick.clone(), text.clone())), "acknowledged line {seq} of {}", m.nick);
        }
        for text in &m.resent {
            let copies = stored.iter().filter(|l| l.from == m.nick && &l.text == text).count();
            assert_eq!(copies, 1, "{text:?}, resent by {} as already stored, is stored {copies} times", m.nick);
        }
    }
    let senders: HashMap<&str, &Member> = members.iter().map(|(_, _, m)| (m.nick.as_str(), m)).collect();
    for l in &stored {
        let m = senders[l.from.as_str()];
        assert!(
            m.acked.get(&l.seq) == Some(&l.text) || m.unknown.contains(&l.text) || m.resent.contains(&l.text),
            "stored line {} {:?} was neither acknowledged nor in doubt",
            l.seq,
            l.text
        );
    }

    // (b) Every member showed every stored line exactly once, in order:
    // room lines in increasing order, its own as acknowledged (in order
    // too), the two never overlapping.
    for (_, _, m) in &members {
        let increasing = |v: &[(u64, String)]| v.windows(2).all(|w| w[0].0 < w[1].0);
        assert!(increasing(&m.shown), "{}: room lines out of order or repeated", m.nick);
        assert!(increasing(&m.own), "{}: own lines out of order", m.nick);
        let mut all: Vec<(u64, String)> = m.shown.iter().chain(&m.own).cloned().collect();
        all.sort();
        let seqs: Vec<u64> = all.iter().map(|l| l.0).collect();
        let missing: Vec<_> = by_seq.keys().filter(|s| seqs.binary_search(s).is_err()).take(10).collect();
        assert!(missing.is_empty(), "{} never showed lines {missing:?}", m.nick);
        assert_eq!(seqs.len(), by_seq.len(), "{} showed a line twice, or one never stored", m.nick);
        for (seq, text) in &all {
            assert_eq!(&by_seq[seq].1, text, "{} showed line {seq} wrong", m.nick);
        }
    }
    let unknown: usize = members.iter().map(|(_, _, m)| m.unknown.len()).sum();
    println!(
        "{total} lines acknowledged ({acked_at_crash} before the crash), {unknown} in doubt, {} stored, in {:?}",
        stored.len(),
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Catch-up after an absence

/// A member whose network vanishes (no goodbye) and who comes back with
/// the last sequence number it saw gets exactly the lines it missed, once
/// each and in order, and then live lines again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_vanished_resumes_with_exactly_the_missed_lines() {
    let config = "idle_timeout_secs = 5\nrate_per_second = 0\n";
    let server = ServerProc::start(config, &["--console", "off", "--quiet"], &[]);
    let addr: SocketAddr = server.addr().parse().unwrap();
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    let ana = tokio::task::spawn_blocking(move || {
        let mut raw = RawClient::connect(addr);
        raw.login("ana");
        raw
    })
    .await
    .unwrap();
    expect(&mut bob_ev, "ana joining", |e| notice(e, NoticeKind::Join, "ana")).await;
    let (before, _) = say_all(&bob, &mut bob_ev, "lobby", (0..20).map(|i| format!("before {i}"))).await;
    let (ana, seen) = tokio::task::spawn_blocking(move || {
        let mut ana = ana;
        let mut got = Vec::new();
        ana.pump_until(Instant::now() + WAIT, &mut got, |m| raw_lines(m, false).len() >= 20);
        (ana, raw_lines(&got, false))
    })
    .await
    .unwrap();
    assert_eq!(seen, before);
    let last_seq = seen.last().unwrap().0;

    // Ana's network goes away: no goodbye, the server times her out while
    // bob talks on.
    drop(ana);
    let (missed, others) = say_all(&bob, &mut bob_ev, "lobby", (0..1000).map(|i| format!("missed {i}"))).await;
    if !others.iter().any(|e| notice(e, NoticeKind::Timeout, "ana")) {
        expect(&mut bob_ev, "ana timing out", |e| notice(e, NoticeKind::Timeout, "ana")).await;
    }

    let (ana, got) = tokio::task::spawn_blocking(move || {
        let mut ana = RawClient::connect(addr);
        let mut got = ana.login_with("ana", vec![("lobby".into(), last_seq)]);
        ana.pump_until(Instant::now() + WAIT, &mut got, |m| raw_lines(m, false).len() >= 1000);
        (ana, got)
    })
    .await
    .unwrap();
    assert!(matches!(got.first(), Some(ServerMsg::Welcome { .. })), "{:?}", got.first());
    let head = missed.last().unwrap().0;
    assert!(
        got.iter().any(|m| matches!(m, ServerMsg::Joined { room, head: h, .. } if room == "lobby" && *h == head)),
        "no Joined for the lobby with head {head}"
    );
    assert_eq!(raw_lines(&got, false), missed, "the catch-up is exactly the missed lines");
    assert!(raw_lines(&got, true).is_empty(), "a resumed join gets no history");

    // Then live again, with nothing repeated.
    let (live, _) = say_all(&bob, &mut bob_ev, "lobby", ["live again".to_owned()]).await;
    let got = tokio::task::spawn_blocking(move || {
        let mut ana = ana;
        let mut got = Vec::new();
        ana.pump_until(Instant::now() + WAIT, &mut got, |m| !raw_lines(m, false).is_empty());
        got.extend(ana.pump(Duration::from_millis(300)));
        got
    })
    .await
    .unwrap();
    assert_eq!(raw_lines(&got, false), live);
    assert_eq!(live[0].0, head + 1);
}

/// (seq, text) of room lines among raw messages.
fn raw_lines(msgs: &[ServerMsg], history: bool) -> Vec<(u64, String)> {
    msgs.iter()
        .filter_map(|m| match m {
            ServerMsg::Line(l) if l.history == history => Some((l.seq, l.text.clone())),
            _ => None,
        })
        .collect()
}

/// The client library's own reconnect: lines sent after a restart but
/// before the client noticed it reach it once each when it resumes.
#[tokio::test]
async fn a_reconnecting_client_gets_lines_sent_while_it_was_away_exactly_once() {
    // No stateless resets: ana, idle, notices only after the idle timeout.
    let config = "idle_timeout_secs = 5\nrate_per_second = 0\n";
    let args = ["--console", "off", "--quiet"];
    let server = ServerProc::start(config, &args, &[]);
    let port = server.port;
    let (_ana, mut ana_ev) = login(reconnecting(server.options("ana"))).await;
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    let (mut expected, _) = say_all(&bob, &mut bob_ev, "lobby", (0..10).map(|i| format!("before {i}"))).await;
    let mut seen = gather(&mut ana_ev, "the first lines", |s| room_lines(s, "lobby", false).len() >= 10).await;

    let dir = server.kill();
    let killed = Instant::now();
    drop((bob, bob_ev));
    let server = ServerProc::restart(dir, port, config, &args);
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    let (during, _) = say_all(&bob, &mut bob_ev, "lobby", (0..200).map(|i| format!("during {i}"))).await;
    expected.extend(during);
    // Ana must not have reconnected yet (she needs the 5 s idle timeout and
    // a 1 s back-off), or this would test live delivery instead.
    while let Ok(e) = ana_ev.try_recv() {
        let early = matches!(e, ClientEvent::Server(ServerMsg::Welcome { .. }));
        assert!(!early, "ana came back {:?} after the kill, before the lines were sent", killed.elapsed());
        seen.push(e);
    }

    seen.extend(gather(&mut ana_ev, "ana rejoining", |s| s.iter().any(|e| joined(e, "lobby"))).await);
    let missing = expected.len() - room_lines(&seen, "lobby", false).len();
    seen.extend(
        gather(&mut ana_ev, "the lines sent while away", |s| room_lines(s, "lobby", false).len() >= missing).await,
    );
    let (live, _) = say_all(&bob, &mut bob_ev, "lobby", ["live".to_owned()]).await;
    expected.extend(live);
    seen.extend(
        gather(&mut ana_ev, "the live line", |s| room_lines(s, "lobby", false).iter().any(|l| l.1 == "live")).await,
    );
    seen.extend(collect(&mut ana_ev, Duration::from_millis(300)).await);
    assert!(seen.iter().any(|e| matches!(e, ClientEvent::Disconnected { reconnecting: true, .. })));
    assert_eq!(room_lines(&seen, "lobby", false), expected, "every line once, in order");
}

/// A member that fell behind (its queue full, so it is fed from the store)
/// and leaves a room meanwhile, then joins it again, gets the room's live
/// lines like anyone else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_parts_while_behind_gets_live_lines_after_rejoining() {
    let config = "send_queue_bytes = 131072\nrate_per_second = 0\n";
    let server = ServerProc::start(config, &["--console", "off", "--quiet"], &[]);
    let addr: SocketAddr = server.addr().parse().unwrap();
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    bob.input(Input::Join("r".into())).await;
    expect(&mut bob_ev, "joined #r", |e| joined(e, "r")).await;
    let join = |raw: &mut RawClient| {
        raw.send(&ClientMsg::Join { room: "r".into() }.to_bytes());
        let mut got = Vec::new();
        let ok = raw.pump_until(Instant::now() + WAIT, &mut got, |m| {
            m.iter().any(|m| matches!(m, ServerMsg::Joined { room, .. } if room == "r"))
        });
        assert!(ok, "no Joined for #r: {got:?}");
    };
    let ana = tokio::task::spawn_blocking(move || {
        let mut raw = RawClient::connect(addr);
        raw.login("ana");
        join(&mut raw);
        raw.reading = false;
        raw
    })
    .await
    .unwrap();
    expect(&mut bob_ev, "ana joining #r", |e| notice(e, NoticeKind::Join, "ana")).await;

    // 400 KB for a reader of nothing with a 128 KB queue: ana falls behind.
    let big = "y".repeat(4000);
    say_all(&bob, &mut bob_ev, "r", (0..100).map(|i| format!("{i} {big}"))).await;
    // Still behind, she leaves #r, then reads everything queued and joins
    // #r again.
    let ana = tokio::task::spawn_blocking(move || {
        let mut raw = ana;
        raw.send(&ClientMsg::Part { room: "r".into(), reason: String::new() }.to_bytes());
        raw.pump(Duration::from_millis(300));
        raw.reading = true;
        // Everything queued before the Part comes first (one ordered
        // stream), however long the server's backed-off retransmissions
        // take, then the Parted.
        let mut got = Vec::new();
        let parted = raw.pump_until(Instant::now() + WAIT, &mut got, |m| {
            m.iter().any(|m| matches!(m, ServerMsg::Parted { room } if room == "r"))
        });
        assert!(parted, "no Parted for #r");
        join(&mut raw);
        raw
    })
    .await
    .unwrap();
    let (live, _) = say_all(&bob, &mut bob_ev, "r", ["after the rejoin".to_owned()]).await;
    let got = tokio::task::spawn_blocking(move || {
        let mut raw = ana;
        let mut got = Vec::new();
        raw.pump_until(Instant::now() + Duration::from_secs(3), &mut got, |m| !raw_lines(m, false).is_empty());
        got
    })
    .await
    .unwrap();
    // Sequence numbers only: the old lines are 4 KB each.
    let seqs: Vec<u64> = raw_lines(&got, false).iter().map(|l| l.0).collect();
    assert_eq!(seqs, [live[0].0], "only the live line after rejoining, not old lines from a stale cursor");
}

/// A server whose store lost its newest lines (restored from a backup,
/// as the corrupt-database message advises, or a power cut under
/// `history_sync = "normal"`) numbers new lines from where its store
/// ends. A client that had seen the lost numbers must not take the new
/// lines for duplicates.
#[tokio::test]
async fn a_client_ahead_of_a_restored_store_still_shows_new_lines() {
    let config = "idle_timeout_secs = 5\nrate_per_second = 0\n";
    let args = ["--console", "off", "--quiet"];
    let server = ServerProc::start(config, &args, &[]);
    let port = server.port;
    let (_ana, mut ana_ev) = login(reconnecting(server.options("ana"))).await;
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    say_all(&bob, &mut bob_ev, "lobby", (1..=100).map(|i| format!("old {i}"))).await;
    gather(&mut ana_ev, "the old lines", |s| room_lines(s, "lobby", false).len() >= 100).await;

    // The store goes back to an older state: its last 50 lines are gone.
    let dir = server.kill();
    drop((bob, bob_ev));
    {
        let db = rusqlite::Connection::open(dir.path().join("data/history.sqlite3")).unwrap();
        db.execute("DELETE FROM lines WHERE room = 'lobby' AND seq > 50", []).unwrap();
    }
    let server = ServerProc::restart(dir, port, config, &args);
    gather(&mut ana_ev, "ana rejoining", |s| s.iter().any(|e| joined(e, "lobby"))).await;
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    let (new, _) = say_all(&bob, &mut bob_ev, "lobby", (1..=60).map(|i| format!("new {i}"))).await;
    assert_eq!(new[0].0, 51, "numbering continues from the store");
    let mut seen =
        gather(&mut ana_ev, "the last new line", |s| room_lines(s, "lobby", false).iter().any(|l| l.1 == "new 60"))
            .await;
    seen.extend(collect(&mut ana_ev, Duration::from_millis(300)).await);
    assert_eq!(room_lines(&seen, "lobby", false), new, "every new line shown once");
}

// ---------------------------------------------------------------------------
// Accounts: registered nicknames, operators, stored private messages

/// Connects and returns the events up to the login's answer (the
/// Welcome or LoginRefused).
async fn try_login(options: ClientOptions) -> (Client, Receiver<ClientEvent>, ServerMsg) {
    let (client, mut events) = Client::connect(options).await.expect("client starts");
    let seen = expect(&mut events, "the login's answer", |e| {
        matches!(e, ClientEvent::Server(ServerMsg::Welcome { .. } | ServerMsg::LoginRefused { .. }))
    })
    .await;
    let Some(ClientEvent::Server(answer)) = seen.last() else { unreachable!() };
    (client, events, answer.clone())
}

fn with_password(mut o: ClientOptions, password: &str) -> ClientOptions {
    o.account_password = password.into();
    o
}

/// A nickname registered with `udpchat user add` (while the server runs)
/// needs its account password, in any spelling; others stay first come,
/// first served.
#[tokio::test]
async fn a_registered_nickname_needs_its_account_password() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    // Registered while the server runs: it reads accounts at each login.
    add_user(&server.data_dir(), "ana", "correct-horse", false);
    for nick in ["ana", "ANA"] {
        let (c, _ev, answer) = try_login(server.options(nick)).await;
        let ServerMsg::LoginRefused { code: RefuseCode::NickRegistered, text } = answer else {
            panic!("{nick} without a password: {answer:?}")
        };
        assert!(text.contains("ana") && text.contains("password"), "{text}");
        c.quit("").await;
    }
    let (_c, mut ev, answer) = try_login(with_password(server.options("ana"), "wrong-horse")).await;
    assert!(matches!(answer, ServerMsg::LoginRefused { code: RefuseCode::BadPassword, .. }), "{answer:?}");
    expect(&mut ev, "the client to stop", |e| matches!(e, ClientEvent::Closed { .. })).await;

    let (_ana, _ev, answer) = try_login(with_password(server.options("Ana"), "correct-horse")).await;
    assert!(matches!(&answer, ServerMsg::Welcome { nick, operator: false, .. } if nick == "Ana"), "{answer:?}");
    // Nor can a /nick take a registered name.
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    bob.input(Input::Nick("ANA".into())).await;
    let seen = expect(&mut bob_ev, "an error", |e| error_code(e).is_some()).await;
    assert_eq!(error_code(seen.last().unwrap()), Some(ErrorCode::NickTaken));
    bob.quit("").await;
    expect(&mut bob_ev, "bob's client to stop", |e| matches!(e, ClientEvent::Closed { .. })).await;
    // Unregistered nicknames are still first come, first served.
    let (_bob, _ev, answer) = try_login(server.options("bob")).await;
    assert!(matches!(answer, ServerMsg::Welcome { .. }), "{answer:?}");
    let (_bob2, _ev, answer) = try_login(server.options("BOB")).await;
    assert!(matches!(answer, ServerMsg::LoginRefused { code: RefuseCode::NickTaken, .. }), "{answer:?}");
}

/// An operator account may kick from and set the topic of rooms it is not
/// in, and ban a nickname for good; an ordinary member may do neither.
#[tokio::test]
async fn operators_kick_ban_and_set_topics_anywhere() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    add_user(&server.data_dir(), "boss", "boss-password", true);
    let (boss, mut boss_ev, answer) = try_login(with_password(server.options("boss"), "boss-password")).await;
    assert!(matches!(answer, ServerMsg::Welcome { operator: true, .. }), "{answer:?}");
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let (eve, mut eve_ev) = login(server.options("eve")).await;
    for (c, ev) in [(&ana, &mut ana_ev), (&eve, &mut eve_ev)] {
        c.input(Input::Join("rust".into())).await;
        expect(ev, "joined #rust", |e| joined(e, "rust")).await;
    }

    // A member without operator rights may do neither.
    ana.input(Input::Kick { room: "rust".into(), nick: "eve".into(), reason: "no".into() }).await;
    let seen = expect(&mut ana_ev, "an error", |e| error_code(e).is_some()).await;
    assert_eq!(error_code(seen.last().unwrap()), Some(ErrorCode::NotPermitted));
    ana.input(Input::Ban { target: "eve".into(), reason: "no".into(), expires_secs: 0 }).await;
    let seen = expect(&mut ana_ev, "an error", |e| error_code(e).is_some()).await;
    assert_eq!(error_code(seen.last().unwrap()), Some(ErrorCode::NotPermitted));
    say_all(&eve, &mut eve_ev, "rust", ["still in #rust".to_owned()]).await;

    // The operator kicks eve out of #rust without being in it: the room is
    // told, eve is parted but stays connected.
    boss.input(Input::Kick { room: "rust".into(), nick: "EVE".into(), reason: "spam".into() }).await;
    let seen = expect(&mut ana_ev, "the kick notice", |e| notice(e, NoticeKind::Kick, "eve")).await;
    assert!(matches!(seen.last(), Some(ClientEvent::Server(ServerMsg::Notice { room, text, .. }))
        if room == "rust" && text.contains("boss") && text.contains("spam")));
    expect(
        &mut eve_ev,
        "eve parted",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Parted { room }) if room == "rust"),
    )
    .await;
    eve.say("rust", "let me back").await;
    let seen = expect(&mut eve_ev, "an error", |e| error_code(e).is_some()).await;
    assert_eq!(error_code(seen.last().unwrap()), Some(ErrorCode::NotInRoom));
    say_all(&eve, &mut eve_ev, "lobby", ["still connected".to_owned()]).await;

    // The topic of a room the operator is not in; eve, now outside, may not.
    boss.input(Input::Topic { room: "rust".into(), topic: Some("be nice".into()) }).await;
    let seen = expect(&mut ana_ev, "the topic notice", |e| notice(e, NoticeKind::Topic, "boss")).await;
    assert!(matches!(seen.last(), Some(ClientEvent::Server(ServerMsg::Notice { text, .. })) if text == "be nice"));
    boss.input(Input::Topic { room: "rust".into(), topic: None }).await;
    expect(
        &mut boss_ev,
        "the topic",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Topic { room, topic }) if room == "rust" && topic == "be nice"),
    )
    .await;
    eve.input(Input::Topic { room: "rust".into(), topic: Some("mine".into()) }).await;
    let seen = expect(&mut eve_ev, "an error", |e| error_code(e).is_some()).await;
    assert_eq!(error_code(seen.last().unwrap()), Some(ErrorCode::NotInRoom));

    // A ban ends eve's session for good, and her nickname stays barred.
    boss.input(Input::Ban { target: "eve".into(), reason: "enough".into(), expires_secs: 0 }).await;
    let seen = expect(&mut ana_ev, "eve leaving", |e| notice(e, NoticeKind::Kick, "eve")).await;
    assert!(
        matches!(seen.last(), Some(ClientEvent::Server(ServerMsg::Notice { text, .. })) if text.contains("enough"))
    );
    let seen = expect(&mut eve_ev, "eve's client to stop", |e| matches!(e, ClientEvent::Closed { .. })).await;
    assert!(!seen.iter().any(|e| matches!(e, ClientEvent::Disconnected { reconnecting: true, .. })));
    for nick in ["eve", "Eve"] {
        let (_c, _ev, answer) = try_login(server.options(nick)).await;
        assert!(matches!(answer, ServerMsg::LoginRefused { code: RefuseCode::Banned, .. }), "{nick}: {answer:?}");
    }
}

/// A private message to an account holder who is offline is stored and
/// acknowledged, and reaches them when they log in; to an unknown nickname
/// that is offline it is an error.
#[tokio::test]
async fn private_messages_to_an_account_wait_for_its_holder() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    add_user(&server.data_dir(), "ana", "correct-horse", false);
    let (bob, mut bob_ev) = login(server.options("bob")).await;
    let id = bob.input(Input::Msg { to: "Ana".into(), text: "while you were out".into() }).await.unwrap();
    let seen = expect(&mut bob_ev, "delivery", |e| matches!(e, ClientEvent::Delivered { id: i, .. } if *i == id)).await;
    let Some(ClientEvent::Delivered { msg: ServerMsg::Private { seq, .. }, .. }) = seen.last() else {
        panic!("{:?}", seen.last())
    };
    let stored = *seq;
    assert!(stored > 0, "a message to an account is stored");
    // Nobody by that name, online or registered: an error, not a store.
    let id = bob.input(Input::Msg { to: "nobody".into(), text: "hello?".into() }).await.unwrap();
    expect(
        &mut bob_ev,
        "no such nick",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Error { id: i, code: ErrorCode::NoSuchNick, .. }) if *i == id),
    )
    .await;

    // Ana logs in later, from a fresh client, and finds it waiting.
    let (_ana, mut ana_ev) = login(with_password(server.options("ana"), "correct-horse")).await;
    let seen =
        expect(&mut ana_ev, "the stored message", |e| matches!(e, ClientEvent::Server(ServerMsg::Private { .. })))
            .await;
    let Some(ClientEvent::Server(ServerMsg::Private { seq, from, text, .. })) = seen.last() else { unreachable!() };
    assert_eq!((*seq, from.as_str(), text.as_str()), (stored, "bob", "while you were out"));
    // Online now: the next one arrives live, once.
    bob.input(Input::Msg { to: "ana".into(), text: "welcome back".into() }).await;
    let seen =
        expect(&mut ana_ev, "the live message", |e| matches!(e, ClientEvent::Server(ServerMsg::Private { .. }))).await;
    assert!(matches!(seen.last(), Some(ClientEvent::Server(ServerMsg::Private { seq, text, .. }))
        if *seq > stored && text == "welcome back"));
    let more = collect(&mut ana_ev, Duration::from_millis(300)).await;
    assert!(!more.iter().any(|e| matches!(e, ClientEvent::Server(ServerMsg::Private { .. }))), "{more:?}");
}

// ---------------------------------------------------------------------------
// History on join, paging, retention

#[tokio::test]
async fn a_newcomer_gets_the_last_50_lines_and_pages_back() {
    history_scenario("rate_per_second = 0\n", 50, 30).await;
}

#[tokio::test]
async fn history_on_join_and_the_page_size_are_settings() {
    history_scenario("rate_per_second = 0\nhistory_on_join = 20\nhistory_page_max = 25\n", 20, 25).await;
}

/// 120 lines in #talk; a newcomer gets the last `on_join` as history on
/// joining, then asks for 30 before them and gets `page`.
async fn history_scenario(config: &str, on_join: usize, page: usize) {
    let server = ServerProc::start(config, &["--console", "off", "--quiet"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    ana.input(Input::Join("talk".into())).await;
    expect(&mut ana_ev, "joined #talk", |e| joined(e, "talk")).await;
    let (sent, _) = say_all(&ana, &mut ana_ev, "talk", (1..=120).map(|i| format!("line {i}"))).await;
    assert_eq!(sent.iter().map(|l| l.0).collect::<Vec<_>>(), (1..=120).collect::<Vec<_>>());

    let (bob, mut bob_ev) = login(server.options("bob")).await;
    bob.input(Input::Join("talk".into())).await;
    let mut seen = gather(&mut bob_ev, "the join history", |s| room_lines(s, "talk", true).len() >= on_join).await;
    assert!(seen.iter().any(|e| matches!(e, ClientEvent::Server(ServerMsg::Joined { room, head: 120, .. })
        if room == "talk")));
    seen.extend(collect(&mut bob_ev, Duration::from_millis(300)).await);
    assert_eq!(room_lines(&seen, "talk", true), sent[120 - on_join..].to_vec(), "the newest {on_join}, in order");
    assert!(room_lines(&seen, "talk", false).is_empty());

    let before = sent[120 - on_join].0;
    bob.request(ClientMsg::History { room: "talk".into(), before, limit: 30 }).await;
    let mut seen = gather(&mut bob_ev, "a page of history", |s| room_lines(s, "talk", true).len() >= page).await;
    seen.extend(collect(&mut bob_ev, Duration::from_millis(300)).await);
    let first = 120 - on_join - page;
    assert_eq!(room_lines(&seen, "talk", true), sent[first..120 - on_join].to_vec());

    // Only members read a room's history.
    let (cat, mut cat_ev) = login(server.options("cat")).await;
    cat.request(ClientMsg::History { room: "talk".into(), before: 0, limit: 10 }).await;
    let seen = expect(&mut cat_ev, "an error", |e| error_code(e).is_some()).await;
    assert_eq!(error_code(seen.last().unwrap()), Some(ErrorCode::NotInRoom));
}

/// History lines a /history request returns (after the request, within
/// a short window).
async fn history_page(client: &Client, events: &mut Receiver<ClientEvent>, room: &str) -> Vec<(u64, String)> {
    client.request(ClientMsg::History { room: room.into(), before: 0, limit: 200 }).await;
    room_lines(&collect(events, Duration::from_millis(400)).await, room, true)
}

/// `[rooms.small] max_lines = 10` prunes #small (one batch per room per
/// tick) down to its newest 10 lines, for joins, pages and the store,
/// while the lobby keeps everything under the server-wide limit.
#[tokio::test]
async fn retention_keeps_only_the_newest_lines() {
    let config = "rate_per_second = 0\nhistory_max_lines = 1000\n[rooms.small]\nmax_lines = 10\n";
    let server = ServerProc::start(config, &["--console", "off", "--quiet"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    ana.input(Input::Join("small".into())).await;
    expect(&mut ana_ev, "joined #small", |e| joined(e, "small")).await;
    let (small, _) = say_all(&ana, &mut ana_ev, "small", (1..=100).map(|i| format!("small {i}"))).await;
    let (lobby, _) = say_all(&ana, &mut ana_ev, "lobby", (1..=100).map(|i| format!("lobby {i}"))).await;
    let newest = small[90..].to_vec();

    // One batch per room per tick, a tick a second: poll until pruned.
    let deadline = Instant::now() + WAIT;
    loop {
        let page = history_page(&ana, &mut ana_ev, "small").await;
        if page == newest {
            break;
        }
        assert!(Instant::now() < deadline, "#small still keeps {} lines", page.len());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let (cat, mut cat_ev) = login(server.options("cat")).await;
    cat.input(Input::Join("small".into())).await;
    let mut seen = gather(&mut cat_ev, "joined #small", |s| s.iter().any(|e| joined(e, "small"))).await;
    seen.extend(collect(&mut cat_ev, Duration::from_millis(400)).await);
    assert_eq!(room_lines(&seen, "small", true), newest, "join history");
    cat.request(ClientMsg::History { room: "small".into(), before: newest[0].0, limit: 50 }).await;
    let older = collect(&mut cat_ev, Duration::from_millis(400)).await;
    assert!(room_lines(&older, "small", true).is_empty(), "nothing older is kept");
    // The lobby's own limit (1,000) keeps all of its lines.
    assert_eq!(history_page(&cat, &mut cat_ev, "lobby").await, lobby);

    let dir = server.kill();
    let kept: Vec<(u64, String)> =
        stored_lines(&dir.path().join("data"), "small").into_iter().map(|l| (l.seq, l.text)).collect();
    assert_eq!(kept, newest);
    assert_eq!(stored_lines(&dir.path().join("data"), "lobby").len(), 100);
}
