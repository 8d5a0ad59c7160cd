//! End-to-end: udpchat servers as one cluster on NATS JetStream (Debian's
//! `nats-server`, started here on loopback ports with stores of their
//! own), the real `udpchat server` binary on each node with the shared key
//! file. Members on different nodes share rooms in one order with the
//! same numbers; history, nicknames and bans are the cluster's; a node
//! killed with -9 loses its clients nothing (they fail over); NATS going
//! down refuses lines with a reason and recovers; a three-node NATS with
//! R3 streams survives losing one of them.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use common::nats::{self, Nats};
use common::{ServerProc, WAIT, collect, expect, login, tool_or_skip};
use tokio::sync::mpsc::Receiver;
use udpchat_client::chat::{ErrorCode, RefuseCode, ServerMsg};
use udpchat_client::{Client, ClientEvent, ClientOptions};

/// No flood limit: the tests send as fast as the acknowledgements come.
const CONFIG: &str = "rate_per_second = 0\nhistory_on_join = 100\n";

fn have_nats(test: &str) -> bool {
    tool_or_skip("nats-server", "nats-server", test)
}

/// One key file for every node (`udpchat keygen`), as docs/SCALING.md says.
struct SharedKey {
    dir: tempfile::TempDir,
}

impl SharedKey {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new(common::BIN)
            .args(["keygen", "--data-dir"])
            .arg(dir.path())
            .output()
            .expect("udpchat keygen");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Self { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }
}

fn node(urls: &str, key: &SharedKey, extra: &[&str]) -> ServerProc {
    let key = key.path();
    let key = key.to_str().expect("utf-8 path");
    let mut args = vec!["--cluster", urls, "--key-file", key];
    args.extend_from_slice(extra);
    let mut server = ServerProc::start(CONFIG, &args, &[]);
    server.wait_line(|l| l.contains("cluster: node"));
    server
}

/// (seq, from, text) of live lines in `room`.
fn room_lines(events: &[ClientEvent], room: &str) -> Vec<(u64, String, String)> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Server(ServerMsg::Line(l)) if l.room == room && !l.history => {
                Some((l.seq, l.from.clone(), l.text.clone()))
            }
            _ => None,
        })
        .collect()
}

/// Waits until `events` has brought `n` live lines of `room`.
async fn lines_until(events: &mut Receiver<ClientEvent>, room: &str, n: usize) -> Vec<(u64, String, String)> {
    let mut seen = Vec::new();
    let ok = tokio::time::timeout(WAIT * 3, async {
        while let Some(e) = events.recv().await {
            seen.push(e);
            if room_lines(&seen, room).len() >= n {
                return true;
            }
        }
        false
    })
    .await;
    let got = room_lines(&seen, room);
    assert_eq!(
        ok,
        Ok(true),
        "only {} of {n} lines came: {:?}",
        got.len(),
        got.iter().rev().take(3).collect::<Vec<_>>()
    );
    got
}

/// Says each of `texts`, waiting for every acknowledgement; returns
/// text → seq.
async fn say_acked(client: &Client, events: &mut Receiver<ClientEvent>, texts: &[String]) -> BTreeMap<String, u64> {
    let mut ids = HashMap::new();
    for t in texts {
        ids.insert(client.say("lobby", t).await, t.clone());
    }
    let mut acked = BTreeMap::new();
    let ok = tokio::time::timeout(WAIT * 3, async {
        while acked.len() < texts.len() {
            match events.recv().await.expect("client runs") {
                ClientEvent::Delivered { id, msg: ServerMsg::Line(l) } => {
                    if let Some(t) = ids.remove(&id) {
                        acked.insert(t, l.seq);
                    }
                }
                ClientEvent::Server(ServerMsg::Error { id, text, .. }) if ids.contains_key(&id) => {
                    panic!("line refused: {text}");
                }
                _ => {}
            }
        }
    })
    .await;
    assert!(ok.is_ok(), "{} lines never acknowledged", ids.len());
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_order_one_numbering_and_history() {
    if !have_nats("three_nodes_one_order_one_numbering_and_history") {
        return;
    }
    let nats = Nats::start();
    let key = SharedKey::new();
    let nodes: Vec<ServerProc> = (0..3).map(|_| node(&nats.url(), &key, &[])).collect();
    // A watcher and a talker on every node.
    let mut watchers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        watchers.push(login(n.options(&format!("watch{i}"))).await);
    }
    let mut talkers = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        talkers.push(login(n.options(&format!("talk{i}"))).await);
    }
    const EACH: usize = 20;
    let mut sends = Vec::new();
    for (i, (client, mut events)) in talkers.into_iter().enumerate() {
        sends.push(tokio::spawn(async move {
            let texts: Vec<String> = (0..EACH).map(|k| format!("n{i} line {k}")).collect();
            let acked = say_acked(&client, &mut events, &texts).await;
            (client, acked)
        }));
    }
    let mut acked = BTreeMap::new();
    let mut keep = Vec::new();
    for s in sends {
        let (client, a) = s.await.expect("sender");
        acked.extend(a);
        keep.push(client);
    }
    assert_eq!(acked.len(), 3 * EACH);
    // Every watcher: every line once, in one order, numbered as acknowledged.
    let mut orders = Vec::new();
    for (_, events) in &mut watchers {
        let got = lines_until(events, "lobby", 3 * EACH).await;
        assert_eq!(got.len(), 3 * EACH, "no line twice");
        for (seq, _, text) in &got {
            assert_eq!(acked.get(text), Some(seq), "{text} numbered as its Ack said");
        }
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "numbers increase in delivery order");
        orders.push(got);
    }
    assert!(orders.windows(2).all(|w| w[0] == w[1]), "every node delivers one order");
    // Each sender's lines in the order it said them.
    for i in 0..3 {
        let mine: Vec<&String> =
            orders[0].iter().map(|(_, _, t)| t).filter(|t| t.starts_with(&format!("n{i} "))).collect();
        let said: Vec<String> = (0..EACH).map(|k| format!("n{i} line {k}")).collect();
        assert_eq!(mine, said.iter().collect::<Vec<_>>());
    }
    // A member who comes later, on any node, gets the same history, and
    // the room's members on every node are listed to it.
    let (_late, mut events) = Client::connect(nodes[2].options("late")).await.expect("client starts");
    let seen = expect(&mut events, "Joined", |e| matches!(e, ClientEvent::Server(ServerMsg::Joined { .. }))).await;
    let Some(ClientEvent::Server(ServerMsg::Joined { members, .. })) = seen.last() else { unreachable!() };
    for who in ["late", "watch0", "watch1", "watch2", "talk0", "talk1"] {
        assert!(members.iter().any(|m| m == who), "{who} not listed in {members:?}");
    }
    let seen = collect(&mut events, Duration::from_millis(800)).await;
    let history: Vec<(u64, String)> = seen
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Server(ServerMsg::Line(l)) if l.history => Some((l.seq, l.text.clone())),
            _ => None,
        })
        .collect();
    let expected: Vec<(u64, String)> = orders[0].iter().map(|(s, _, t)| (*s, t.clone())).collect();
    assert_eq!(history, expected);
}

fn refused(events: &[ClientEvent]) -> Option<(RefuseCode, String)> {
    events.iter().find_map(|e| match e {
        ClientEvent::Server(ServerMsg::LoginRefused { code, text }) => Some((*code, text.clone())),
        _ => None,
    })
}

async fn try_login(options: ClientOptions) -> (Client, Receiver<ClientEvent>, Vec<ClientEvent>) {
    let (client, mut events) = Client::connect(options).await.expect("client starts");
    let seen = expect(&mut events, "welcome or refusal", |e| {
        matches!(e, ClientEvent::Server(ServerMsg::Welcome { .. } | ServerMsg::LoginRefused { .. }))
    })
    .await;
    (client, events, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nicknames_and_bans_hold_across_nodes() {
    if !have_nats("nicknames_and_bans_hold_across_nodes") {
        return;
    }
    let nats = Nats::start();
    let key = SharedKey::new();
    let mut a = node(&nats.url(), &key, &["--console", "on"]);
    let b = node(&nats.url(), &key, &[]);

    // Taken on a: refused on b, saying why.
    let (ana, _ana_events) = login(a.options("ana")).await;
    let (_c, _e, seen) = try_login(b.options("ANA")).await;
    let (code, text) = refused(&seen).expect("refused");
    assert_eq!(code, RefuseCode::NickTaken);
    assert!(text.contains("another server of this cluster"), "{text}");
    // Free again once ana quits.
    ana.quit("bye").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ana_b, mut ana_events, seen) = try_login(b.options("ana")).await;
    assert!(refused(&seen).is_none(), "{seen:?}");
    // /nick on a cluster: the new name is claimed cluster-wide, the old
    // one freed.
    ana_b.request(udpchat_client::chat::ClientMsg::Nick { nick: "anna".into() }).await;
    expect(
        &mut ana_events,
        "the nick notice",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Notice { text, .. }) if text == "anna"),
    )
    .await;
    let (_c, _e, seen) = try_login(a.options("Anna")).await;
    assert_eq!(refused(&seen).map(|r| r.0), Some(RefuseCode::NickTaken));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_ana_a, _e, seen) = try_login(a.options("ana")).await;
    assert!(refused(&seen).is_none(), "ana is free again: {seen:?}");

    // A ban on a's console closes bob's session on b and refuses him.
    let (_bob, mut bob_events) = login(b.options("bob")).await;
    a.type_line("/ban bob spamming");
    expect(&mut bob_events, "bob's session closed by the ban", |e| {
        matches!(e, ClientEvent::Closed { reason } | ClientEvent::Disconnected { reason, .. } if reason.contains("banned"))
    })
    .await;
    let (_c, _e, seen) = try_login(b.options("bob")).await;
    assert_eq!(refused(&seen).map(|r| r.0), Some(RefuseCode::Banned));

    // A topic set on b reaches a's members and a newcomer on a.
    let (_t, mut t_events) = login(a.options("tess")).await;
    let (setter, _s) = login(b.options("sam")).await;
    setter
        .request(udpchat_client::chat::ClientMsg::Topic { room: "lobby".into(), topic: Some("release day".into()) })
        .await;
    expect(
        &mut t_events,
        "the topic notice on a",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Notice { text, .. }) if text == "release day"),
    )
    .await;
    let (_n, mut n_events) = Client::connect(a.options("newt")).await.expect("client starts");
    expect(
        &mut n_events,
        "the topic in Joined on a",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Joined { topic, .. }) if topic == "release day"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_refuses_lines_with_the_reason_and_recovers() {
    if !have_nats("nats_down_refuses_lines_with_the_reason_and_recovers") {
        return;
    }
    let mut nats = Nats::start();
    let key = SharedKey::new();
    let a = node(&nats.url(), &key, &[]);
    let b = node(&nats.url(), &key, &[]);
    let (ana, mut ana_events) = login(a.options("ana")).await;
    let (_bo, mut bo_events) = login(b.options("bo")).await;
    say_acked(&ana, &mut ana_events, &["before".to_owned()]).await;
    lines_until(&mut bo_events, "lobby", 1).await;

    nats.kill();
    let id = ana.say("lobby", "while NATS is down").await;
    let seen = expect(
        &mut ana_events,
        "the line refused",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Error { id: i, .. }) if *i == id),
    )
    .await;
    let Some(ClientEvent::Server(ServerMsg::Error { code, text, .. })) = seen.last() else { unreachable!() };
    assert_eq!(*code, ErrorCode::StorageFailed);
    assert!(text.contains("cluster") && text.contains("not delivered"), "{text}");

    nats.restart();
    // Once NATS is back (the servers reconnect by themselves) lines flow again.
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    loop {
        let id = ana.say("lobby", "after").await;
        let seen = expect(&mut ana_events, "an answer", |e| match e {
            ClientEvent::Delivered { id: i, .. } => *i == id,
            ClientEvent::Server(ServerMsg::Error { id: i, .. }) => *i == id,
            _ => false,
        })
        .await;
        if matches!(seen.last(), Some(ClientEvent::Delivered { .. })) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "lines still refused long after NATS came back");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let got = lines_until(&mut bo_events, "lobby", 1).await;
    assert_eq!(got.last().map(|l| l.2.as_str()), Some("after"));
    assert!(!got.iter().any(|l| l.2 == "while NATS is down"), "a refused line was delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nats_servers_r3_survive_losing_one() {
    if !have_nats("three_nats_servers_r3_survive_losing_one") {
        return;
    }
    let mut servers = Nats::cluster();
    let urls = nats::urls(&servers);
    let key = SharedKey::new();
    // The three NATS servers must elect a JetStream leader first: the
    // cluster library waits for that (as a starting node does) and makes
    // the stream and bucket with three replicas.
    let ready = udpchat_server::cluster::ClusterConfig { urls: urls.clone(), replicas: 3, max_age: None };
    udpchat_server::cluster::Cluster::connect(&ready).await.expect("JetStream on three NATS servers");
    let config = format!("{CONFIG}cluster_replicas = 3\n");
    let mut a = ServerProc::start(&config, &["--cluster", &urls, "--key-file", key.path().to_str().unwrap()], &[]);
    a.wait_line(|l| l.contains("cluster: node"));
    let b = node(&urls, &key, &[]);
    let (ana, mut ana_events) = login(a.options("ana")).await;
    let (_bo, mut bo_events) = login(b.options("bo")).await;
    let first: Vec<String> = (0..20).map(|i| format!("before {i}")).collect();
    let mut acked = say_acked(&ana, &mut ana_events, &first).await;
    // One NATS server dies (not the first in the list, which the nodes
    // may not be using; any one of three must do): the stream keeps a
    // quorum of two.
    servers[1].kill();
    let then: Vec<String> = (0..20).map(|i| format!("after {i}")).collect();
    let deadline = tokio::time::Instant::now() + WAIT * 3;
    for text in &then {
        loop {
            let id = ana.say("lobby", text).await;
            // The first answers may wait for NATS to elect new leaders and
            // for the node's reader to be made again.
            let answered = tokio::time::timeout(WAIT * 3, async {
                loop {
                    match ana_events.recv().await.expect("client runs") {
                        ClientEvent::Delivered { id: i, msg } if i == id => return Ok(msg),
                        ClientEvent::Server(ServerMsg::Error { id: i, text, .. }) if i == id => return Err(text),
                        _ => {}
                    }
                }
            })
            .await
            .expect("an answer to every line");
            let seen = match answered {
                Ok(msg) => vec![ClientEvent::Delivered { id, msg }],
                Err(_) => Vec::new(),
            };
            if let Some(ClientEvent::Delivered { msg: ServerMsg::Line(l), .. }) = seen.last() {
                acked.insert(text.clone(), l.seq);
                break;
            }
            // Refused while NATS elects a new stream leader: said, not lost.
            assert!(tokio::time::Instant::now() < deadline, "lines refused for too long after one NATS server died");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    // bo, on the other node, sees every acknowledged line once, in order.
    let got = lines_until(&mut bo_events, "lobby", acked.len()).await;
    let texts: Vec<&String> = got.iter().map(|l| &l.2).collect();
    let said: Vec<&String> = first.iter().chain(&then).collect();
    assert_eq!(texts, said);
    for (seq, _, text) in &got {
        assert_eq!(acked.get(text), Some(seq));
    }
}

fn private_from(events: &[ClientEvent]) -> Option<(String, String, u64)> {
    events.iter().find_map(|e| match e {
        ClientEvent::Server(ServerMsg::Private { from, text, seq, .. }) => Some((from.clone(), text.clone(), *seq)),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_messages_and_accounts_across_nodes() {
    if !have_nats("private_messages_and_accounts_across_nodes") {
        return;
    }
    let nats = Nats::start();
    let key = SharedKey::new();
    let a = node(&nats.url(), &key, &[]);
    let b = node(&nats.url(), &key, &[]);
    // An account made through the cluster: every node has it.
    let out = common::run_bounded(
        std::process::Command::new(common::BIN)
            .args(["user", "add", "carol", "--cluster", &nats.url(), "--data-dir"])
            .arg(b.data_dir())
            .env("UDPCHAT_NEW_PASSWORD", "carol-secret"),
        WAIT,
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (_ana, mut ana_events) = login(a.options("ana")).await;
    let (bo, mut bo_events) = login(b.options("bo")).await;
    // bo on b to ana on a, who has no account: delivered live, not stored.
    let id = bo.input(udpchat_client::Input::Msg { to: "ana".into(), text: "psst".into() }).await.unwrap();
    let seen = expect(&mut ana_events, "bo's private message on a", |e| {
        matches!(e, ClientEvent::Server(ServerMsg::Private { .. }))
    })
    .await;
    assert_eq!(private_from(&seen), Some(("bo".into(), "psst".into(), 0)));
    expect(&mut bo_events, "the Ack", |e| matches!(e, ClientEvent::Delivered { id: i, .. } if *i == id)).await;
    // Nobody by that name anywhere: said so.
    let id = bo.input(udpchat_client::Input::Msg { to: "nobody".into(), text: "?".into() }).await.unwrap();
    let seen = expect(
        &mut bo_events,
        "no such nick",
        |e| matches!(e, ClientEvent::Server(ServerMsg::Error { id: i, .. }) if *i == id),
    )
    .await;
    assert!(matches!(seen.last(), Some(ClientEvent::Server(ServerMsg::Error { code: ErrorCode::NoSuchNick, .. }))));
    // carol is offline: stored by every node, delivered when she logs in
    // on a (whose account copy came from the cluster too).
    let id = bo.input(udpchat_client::Input::Msg { to: "carol".into(), text: "for later".into() }).await.unwrap();
    expect(&mut bo_events, "the Ack", |e| matches!(e, ClientEvent::Delivered { id: i, .. } if *i == id)).await;
    let mut o = a.options("carol");
    o.account_password = "carol-secret".into();
    let (_carol, mut carol_events) = Client::connect(o).await.expect("client starts");
    let seen = expect(&mut carol_events, "the stored message", |e| {
        matches!(e, ClientEvent::Server(ServerMsg::Private { .. }))
    })
    .await;
    let (from, text, seq) = private_from(&seen).expect("a private message");
    assert_eq!((from.as_str(), text.as_str()), ("bo", "for later"));
    assert_ne!(seq, 0, "stored messages are numbered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_traffic_loses_its_clients_nothing() {
    if !have_nats("a_node_killed_mid_traffic_loses_its_clients_nothing") {
        return;
    }
    let nats = Nats::start();
    let key = SharedKey::new();
    let a = node(&nats.url(), &key, &[]);
    let b = node(&nats.url(), &key, &[]);
    let (_watch, mut watch_events) = login(b.options("watch")).await;
    // The sender and a second watcher know both nodes; they are on a,
    // the first.
    let both = |nick: &str| {
        let mut o = a.options(nick);
        o.server = format!("{},{}", a.addr(), b.addr());
        o.reconnect = true;
        o.idle_timeout = Duration::from_secs(2);
        o
    };
    let (_moving, mut moving_events) = login(both("moving")).await;
    let (sender, mut events) = login(both("sender")).await;

    const LINES: usize = 100;
    let texts: Vec<String> = (0..LINES).map(|i| format!("line {i}")).collect();
    let mut ids = HashMap::new();
    let mut answered = HashMap::new();
    let mut a = Some(a);
    let mut reconnected = false;
    for (i, text) in texts.iter().enumerate() {
        ids.insert(sender.say("lobby", text).await, text.clone());
        // kill -9 the sender's node a third of the way in.
        if i == LINES / 3 {
            drop(a.take().map(ServerProc::kill));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Ok(e) = events.try_recv() {
            record(e, &ids, &mut answered, &mut reconnected);
        }
    }
    let done = tokio::time::timeout(WAIT * 4, async {
        while answered.len() < LINES {
            let e = events.recv().await.expect("client runs");
            record(e, &ids, &mut answered, &mut reconnected);
        }
    })
    .await;
    assert!(done.is_ok(), "{} of {LINES} lines answered", answered.len());
    assert!(reconnected, "the sender failed over");
    // The watcher on b: every line once, in the order said.
    let got = lines_until(&mut watch_events, "lobby", LINES).await;
    let seen: Vec<&String> = got.iter().map(|l| &l.2).collect();
    assert_eq!(seen, texts.iter().collect::<Vec<_>>());
    // Numbered as acknowledged (seq 0: "stored earlier", a resend the
    // cluster already had).
    for (seq, _, text) in &got {
        let acked = answered[text];
        assert!(acked == *seq || acked == 0, "{text}: acknowledged as {acked}, delivered as {seq}");
    }
    let more = collect(&mut watch_events, Duration::from_millis(500)).await;
    assert!(room_lines(&more, "lobby").is_empty(), "nothing twice: {more:?}");
    // The watcher that was on a moved to b with the sender and caught up:
    // every line once, in order, live or caught up alike.
    let got = lines_until(&mut moving_events, "lobby", LINES).await;
    let seen: Vec<&String> = got.iter().map(|l| &l.2).collect();
    assert_eq!(seen, texts.iter().collect::<Vec<_>>());
    let more = collect(&mut moving_events, Duration::from_millis(500)).await;
    assert!(room_lines(&more, "lobby").is_empty(), "nothing twice: {more:?}");
}

/// Notes an answer to one of the sender's lines: its text → the seq its
/// Ack gave. A refusal fails the test.
fn record(e: ClientEvent, ids: &HashMap<u64, String>, answered: &mut HashMap<String, u64>, reconnected: &mut bool) {
    match e {
        ClientEvent::Delivered { id, msg: ServerMsg::Line(l) } => {
            if let Some(text) = ids.get(&id) {
                answered.insert(text.clone(), l.seq);
            }
        }
        ClientEvent::Server(ServerMsg::Error { id, text, .. }) if ids.contains_key(&id) => panic!("refused: {text}"),
        ClientEvent::Unconfirmed { ids: lost } if lost.iter().any(|id| ids.contains_key(id)) => {
            panic!("lines left unconfirmed: {lost:?}");
        }
        ClientEvent::Disconnected { reconnecting: true, .. } => *reconnected = true,
        _ => {}
    }
}
