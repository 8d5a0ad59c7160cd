//! Who is in which room on the other nodes of a cluster, so that Joined,
//! Members (`/who`) and RoomList name every member, not only this node's
//! (docs/PROTOCOL.md §15.12). Two sources, neither stored:
//!
//! * the other nodes' join, part, quit, kick and nick notices, as the feed
//!   brings them: a change shows at once;
//! * each node's snapshot of its rooms, sent to the others every
//!   [`SNAPSHOT_EVERY`] over plain NATS: it corrects what notices missed
//!   (a node that started after them) and tells that a node is alive. A
//!   node not heard from for [`FORGET_AFTER`] (killed, cut off) is
//!   forgotten with its members.
//!
//! Bounds: at most [`MAX_NODES`] other nodes; a node's snapshot lists at
//! most [`MAX_LISTED`](super::MAX_LISTED) members a room and
//! [`MAX_ROOMS`] rooms (a larger node is listed in part, as a single
//! server lists a large room in part).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use udpchat_chat::{NoticeKind, ServerMsg};

use super::{ChatServer, Clock, MAX_LISTED};

/// How often a node sends its snapshot.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(10);
/// A node silent this long is taken to be gone.
const FORGET_AFTER: Duration = Duration::from_secs(35);
/// Other nodes remembered.
const MAX_NODES: usize = 256;
/// Rooms in one snapshot.
const MAX_ROOMS: usize = 10_000;

/// One node's rooms and their members, as it sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresenceSnapshot {
    pub node: u64,
    pub rooms: BTreeMap<String, Vec<String>>,
}

#[derive(Debug)]
struct NodeRooms {
    heard: Instant,
    rooms: BTreeMap<String, BTreeSet<String>>,
}

/// The other nodes' members.
#[derive(Debug, Default)]
pub(crate) struct Presence {
    nodes: HashMap<u64, NodeRooms>,
}

impl Presence {
    fn node(&mut self, node: u64, now: Instant) -> Option<&mut NodeRooms> {
        if !self.nodes.contains_key(&node) && self.nodes.len() >= MAX_NODES {
            return None;
        }
        let entry = self.nodes.entry(node).or_insert_with(|| NodeRooms { heard: now, rooms: BTreeMap::new() });
        Some(entry)
    }

    /// A notice from another node's feed.
    fn notice(&mut self, node: u64, rooms: &BTreeSet<String>, msg: &ServerMsg, now: Instant) {
        let ServerMsg::Notice { room, kind, nick, text, .. } = msg else { return };
        let Some(n) = self.node(node, now) else { return };
        match (kind, room.is_empty()) {
            (NoticeKind::Join, false) => {
                n.rooms.entry(room.clone()).or_default().insert(nick.clone());
            }
            (NoticeKind::Part | NoticeKind::Kick, false) => {
                if let Some(members) = n.rooms.get_mut(room) {
                    members.remove(nick);
                }
            }
            (NoticeKind::Quit | NoticeKind::Timeout | NoticeKind::Kick, true) => {
                for r in rooms {
                    if let Some(members) = n.rooms.get_mut(r) {
                        members.remove(nick);
                    }
                }
            }
            (NoticeKind::Nick, _) => {
                for members in n.rooms.values_mut() {
                    if members.remove(nick) {
                        members.insert(text.clone());
                    }
                }
            }
            _ => {}
        }
        n.rooms.retain(|_, members| !members.is_empty());
    }

    fn snapshot(&mut self, snapshot: PresenceSnapshot, now: Instant) {
        let Some(n) = self.node(snapshot.node, now) else { return };
        n.heard = now;
        n.rooms = snapshot
            .rooms
            .into_iter()
            .take(MAX_ROOMS)
            .map(|(room, nicks)| (room, nicks.into_iter().take(MAX_LISTED).collect()))
            .collect();
    }

    fn expire(&mut self, now: Instant) {
        self.nodes.retain(|_, n| now.saturating_duration_since(n.heard) < FORGET_AFTER);
    }

    /// The other nodes' members of `room`.
    pub(crate) fn members<'a>(&'a self, room: &'a str) -> impl Iterator<Item = &'a String> + 'a {
        self.nodes.values().filter_map(move |n| n.rooms.get(room)).flatten()
    }

    /// Rooms with members on other nodes, and how many.
    pub(crate) fn counts(&self) -> BTreeMap<&str, usize> {
        let mut counts = BTreeMap::new();
        for n in self.nodes.values() {
            for (room, members) in &n.rooms {
                *counts.entry(room.as_str()).or_default() += members.len();
            }
        }
        counts
    }
}

impl ChatServer {
    /// This node's rooms and members, for the other nodes (every
    /// [`SNAPSHOT_EVERY`]).
    pub fn presence_snapshot(&self) -> Option<PresenceSnapshot> {
        let node = self.cluster.as_ref()?.node();
        let rooms = self
            .rooms
            .iter()
            .filter(|(_, r)| !r.members.is_empty())
            .take(MAX_ROOMS)
            .map(|(name, r)| {
                let nicks = r.members.iter().filter_map(|m| self.sessions.get(m)?.nick.clone()).take(MAX_LISTED);
                (name.clone(), nicks.collect())
            })
            .collect();
        Some(PresenceSnapshot { node, rooms })
    }

    /// Another node's snapshot.
    pub fn presence_received(&mut self, clock: Clock, snapshot: PresenceSnapshot) {
        if self.cluster.as_ref().is_some_and(|c| c.node() != snapshot.node) {
            self.presence.snapshot(snapshot, clock.now);
        }
    }

    pub(crate) fn presence_notice(&mut self, clock: Clock, node: u64, rooms: &BTreeSet<String>, msg: &ServerMsg) {
        self.presence.notice(node, rooms, msg, clock.now);
    }

    pub(crate) fn expire_presence(&mut self, clock: Clock) {
        self.presence.expire(clock.now);
    }

    /// Everyone in `room`: this node's members, then the other nodes'
    /// (each name once), at most [`MAX_LISTED`].
    pub(crate) fn room_members(&self, room: &str) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        let mut seen = BTreeSet::new();
        let local = self.rooms.get(room).into_iter().flat_map(|r| &r.members);
        let local = local.filter_map(|m| self.sessions.get(m)?.nick.clone());
        for name in local.chain(self.presence.members(room).cloned()) {
            if names.len() >= MAX_LISTED {
                break;
            }
            if seen.insert(udpchat_chat::names::fold(&name)) {
                names.push(name);
            }
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notice(kind: NoticeKind, room: &str, nick: &str, text: &str) -> ServerMsg {
        ServerMsg::Notice { room: room.into(), kind, nick: nick.into(), text: text.into(), time_ms: 0 }
    }

    #[test]
    fn notices_and_snapshots_and_silence() {
        let mut p = Presence::default();
        let t0 = Instant::now();
        let none = BTreeSet::new();
        p.notice(7, &none, &notice(NoticeKind::Join, "lobby", "ana", ""), t0);
        p.notice(7, &none, &notice(NoticeKind::Join, "rust", "ana", ""), t0);
        p.notice(8, &none, &notice(NoticeKind::Join, "lobby", "bo", ""), t0);
        assert_eq!(p.members("lobby").count(), 2);
        p.notice(7, &none, &notice(NoticeKind::Nick, "", "ana", "anna"), t0);
        assert!(p.members("rust").any(|n| n == "anna"));
        let quit_rooms = BTreeSet::from(["lobby".to_owned(), "rust".to_owned()]);
        p.notice(7, &quit_rooms, &notice(NoticeKind::Quit, "", "anna", "bye"), t0);
        assert_eq!(p.members("lobby").collect::<Vec<_>>(), ["bo"]);
        assert_eq!(p.counts().get("rust"), None);
        // A snapshot replaces what the notices built; silence forgets.
        let snap = PresenceSnapshot { node: 8, rooms: BTreeMap::from([("dev".to_owned(), vec!["cy".to_owned()])]) };
        p.snapshot(snap, t0 + Duration::from_secs(20));
        assert_eq!(p.members("lobby").count(), 0);
        assert_eq!(p.counts().get("dev"), Some(&1));
        p.expire(t0 + Duration::from_secs(40));
        assert!(p.nodes.contains_key(&8) && !p.nodes.contains_key(&7));
        p.expire(t0 + Duration::from_secs(60));
        assert!(p.nodes.is_empty());
    }
}
