//! The chat core on a cluster node, without sockets or NATS: the test
//! plays the cluster (it answers publishes and claims, and feeds stream
//! items in the order it chooses). What it checks is what makes one order
//! on every node (docs/PROTOCOL.md §15.12): nothing is delivered from a
//! publish, only from the feed; a sender's Ack follows every line before
//! its own, and its own line is not echoed; a refused publish delivers
//! nothing and says why; a resend the stream had is "stored earlier";
//! nicknames and bans are the cluster's.

mod support;

use std::collections::BTreeSet;

use support::{Harness, say, settings, stored};
use udpchat_chat::{ClientMsg, ErrorCode, NoticeKind, RefuseCode, ServerMsg, close};
use udpchat_proto::ConnectionHandle;
use udpchat_server::chat::{ClusterCompletion, ClusterRequest, Fed, FedItem, Stored};
use udpchat_server::store::AdminChange;

const ME: u64 = 0x11;
const OTHER: u64 = 0x22;

fn node() -> Harness {
    let mut h = Harness::new(settings());
    h.chat.join_cluster(ME);
    h
}

/// Plays the cluster for the requests made so far: grants every nickname
/// claim, and gives back the other requests.
fn cluster(h: &mut Harness) -> Vec<ClusterRequest> {
    let mut others = Vec::new();
    loop {
        h.settle();
        let requests = h.chat.take_cluster_requests();
        if requests.is_empty() {
            return others;
        }
        for r in requests {
            match r {
                ClusterRequest::Claim { session, nick, .. } => {
                    let clock = h.clock();
                    let claimed = ClusterCompletion::Claimed { session, nick, result: Ok(true) };
                    h.chat.cluster_completed(clock, claimed, &mut h.out);
                }
                other => others.push(other),
            }
        }
    }
}

fn login(h: &mut Harness, nick: &str) -> ConnectionHandle {
    let s = h.connect("192.0.2.1:1000");
    h.login_as(s, nick, "", Vec::new());
    cluster(h);
    let got = h.take(s);
    assert!(got.iter().any(|m| matches!(m, ServerMsg::Welcome { .. })), "{got:?}");
    s
}

fn feed(h: &mut Harness, seq: u64, node: u64, session: Option<ConnectionHandle>, item: FedItem) {
    let clock = h.clock();
    let fed = Fed { seq, node, session: session.map(ConnectionHandle::to_bits), item };
    h.chat.fed(clock, fed, &mut h.out);
    h.settle();
}

fn line(seq: u64, from: &str, text: &str) -> FedItem {
    FedItem::Line(udpchat_chat::Line { from: from.into(), seq: 0, ..stored("lobby", seq, text) })
}

/// The one publish of lines among `requests`.
fn publish(requests: Vec<ClusterRequest>) -> udpchat_server::chat::ClusterCompletion {
    let batch = requests
        .into_iter()
        .find_map(|r| match r {
            ClusterRequest::Publish(batch) => Some(batch),
            _ => None,
        })
        .expect("a publish");
    ClusterCompletion::Published { batch, result: Ok(vec![Stored { seq: 11, duplicate: false }]) }
}

#[test]
fn the_ack_follows_the_lines_before_it_and_the_sender_is_not_echoed() {
    let mut h = node();
    let (ana, bo) = (login(&mut h, "ana"), login(&mut h, "bo"));
    h.take(ana);
    h.send(ana, say(1, "lobby", "hi"));
    let requests = cluster(&mut h);
    // Stored by the stream as 11; another node's line is 10.
    let clock = h.clock();
    h.chat.cluster_completed(clock, publish(requests), &mut h.out);
    h.settle();
    assert!(h.take(ana).is_empty(), "no Ack before the feed brings the line");
    assert!(h.take(bo).is_empty(), "nothing delivered from a publish");
    feed(&mut h, 10, OTHER, Some(ConnectionHandle::from_bits(5)), line(10, "cy", "before"));
    feed(&mut h, 11, ME, Some(ana), line(11, "ana", "hi"));
    let to_bo = h.take(bo);
    let texts: Vec<(u64, &str)> = to_bo
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Line(l) => Some((l.seq, l.text.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(texts, [(10, "before"), (11, "hi")]);
    let to_ana = h.take(ana);
    let seen: Vec<String> = to_ana
        .iter()
        .filter_map(|m| match m {
            ServerMsg::Line(l) => Some(format!("line {}", l.seq)),
            ServerMsg::Ack { id, seq, .. } => Some(format!("ack {id} {seq}")),
            _ => None,
        })
        .collect();
    assert_eq!(seen, ["line 10", "ack 1 11"]);
}

#[test]
fn a_refused_publish_delivers_nothing_and_says_why() {
    let mut h = node();
    let (ana, bo) = (login(&mut h, "ana"), login(&mut h, "bo"));
    h.take(ana);
    h.send(ana, say(1, "lobby", "lost?"));
    let requests = cluster(&mut h);
    let ClusterCompletion::Published { batch, .. } = publish(requests) else { unreachable!() };
    let refused = udpchat_server::cluster::ClusterError::Publish { source: "no connection to NATS".into() };
    let clock = h.clock();
    h.chat.cluster_completed(clock, ClusterCompletion::Published { batch, result: Err(refused) }, &mut h.out);
    h.settle();
    let got = h.take(ana);
    assert!(
        matches!(&got[..], [ServerMsg::Error { id: 1, code: ErrorCode::StorageFailed, text }]
            if text.contains("not delivered") && text.contains("NATS")),
        "{got:?}"
    );
    assert!(h.take(bo).is_empty());
}

#[test]
fn a_resend_the_stream_had_is_stored_earlier() {
    let mut h = node();
    let ana = login(&mut h, "ana");
    // The line came round before (said through another node).
    feed(&mut h, 11, OTHER, None, line(11, "ana", "again"));
    h.take(ana);
    h.send(ana, say(1, "lobby", "again"));
    let requests = cluster(&mut h);
    let ClusterCompletion::Published { batch, .. } = publish(requests) else { unreachable!() };
    let clock = h.clock();
    let dup = ClusterCompletion::Published { batch, result: Ok(vec![Stored { seq: 11, duplicate: true }]) };
    h.chat.cluster_completed(clock, dup, &mut h.out);
    h.settle();
    assert_eq!(h.take(ana), [ServerMsg::Ack { id: 1, room: "lobby".into(), seq: 0 }]);
}

#[test]
fn nicknames_are_claimed_and_a_remote_ban_closes_sessions_here() {
    let mut h = node();
    let s = h.connect("192.0.2.1:1000");
    h.login_as(s, "ana", "", Vec::new());
    let claim = h.chat.take_cluster_requests();
    assert!(
        matches!(&claim[..], [ClusterRequest::Claim { nick, .. }] if nick == "ana"),
        "the login waits for the claim: {claim:?}"
    );
    let clock = h.clock();
    let taken = ClusterCompletion::Claimed { session: s, nick: "ana".into(), result: Ok(false) };
    h.chat.cluster_completed(clock, taken, &mut h.out);
    assert!(h.take(s).iter().any(|m| matches!(m, ServerMsg::LoginRefused { code: RefuseCode::NickTaken, .. })));

    let bo = login(&mut h, "bo");
    let ban = AdminChange::Ban { target: "bo".into(), expires_ms: 0, reason: "spam".into() };
    feed(&mut h, 12, OTHER, None, FedItem::Admin(ban));
    assert_eq!(h.out.closed.get(&bo).map(|c| c.0), Some(close::BANNED));
    // The quit goes to the stream, after bo's lines, for every node.
    let requests = cluster(&mut h);
    let notice = requests.iter().find_map(|r| match r {
        ClusterRequest::Publish(_) => Some(()),
        _ => None,
    });
    assert!(notice.is_some(), "{requests:?}");
    assert!(requests.iter().any(|r| matches!(r, ClusterRequest::Release { nick } if nick == "bo")));
}

#[test]
fn other_nodes_members_are_listed() {
    let mut h = node();
    let ana = login(&mut h, "ana");
    let join = ServerMsg::Notice {
        room: "lobby".into(),
        kind: NoticeKind::Join,
        nick: "cy".into(),
        text: String::new(),
        time_ms: 0,
    };
    let rooms = BTreeSet::from(["lobby".to_owned()]);
    feed(&mut h, 3, OTHER, None, FedItem::Notice { rooms, msg: join, shared: true });
    h.take(ana);
    h.send(ana, ClientMsg::Who { room: "lobby".into() });
    let got = h.take(ana);
    assert!(
        matches!(&got[..], [ServerMsg::Members { nicks, .. }] if nicks.contains(&"cy".to_owned()) && nicks.contains(&"ana".to_owned())),
        "{got:?}"
    );
}
