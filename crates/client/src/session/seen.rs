//! What the client has seen of each room, so that a reconnect asks for
//! exactly the missed lines and nothing is shown twice at the seam.
//!
//! Per room: the highest sequence number up to which every line has been
//! seen (`upto`), and the sequence numbers of our own acknowledged lines
//! above it (the server does not echo our lines back; during a catch-up it
//! may send them from the store). A line at or below `upto`, or one of our
//! own, is a duplicate.

use std::collections::{BTreeSet, HashMap};

/// Own acknowledged lines remembered per room above `upto`; the lowest
/// are forgotten past this (a longer gap would be a server bug).
const MAX_OWN: usize = 10_000;

#[derive(Debug, Default)]
struct RoomSeen {
    upto: u64,
    own: BTreeSet<u64>,
}

impl RoomSeen {
    fn advance(&mut self) {
        while self.own.remove(&(self.upto + 1)) {
            self.upto += 1;
        }
        let below: Vec<u64> = self.own.range(..=self.upto).copied().collect();
        for s in below {
            self.own.remove(&s);
        }
    }
}

#[derive(Debug, Default)]
pub struct Seen {
    rooms: HashMap<String, RoomSeen>,
    /// The oldest line shown per room, where /history continues from.
    oldest: HashMap<String, u64>,
    /// The newest stored private message received.
    pub private_since: u64,
}

impl Seen {
    /// Joined `room` whose newest line is `head`: live lines start after
    /// it. Keeps what we had if we were already tracking the room (a
    /// resumed join is caught up from there).
    pub fn joined(&mut self, room: &str, head: u64) {
        let r = self.rooms.entry(room.to_owned()).or_insert(RoomSeen { upto: head, own: BTreeSet::new() });
        // The server's history ends before what we saw (restored from a
        // backup, or lost its last moments): its numbers will be reused,
        // so follow the server rather than hide its new lines.
        if head < r.upto {
            r.upto = head;
            r.own.retain(|&s| s <= head);
        }
    }

    pub fn parted(&mut self, room: &str) {
        self.rooms.remove(room);
        self.oldest.remove(room);
    }

    /// Any line shown (history included), for paging backwards.
    pub fn shown(&mut self, room: &str, seq: u64) {
        let oldest = self.oldest.entry(room.to_owned()).or_insert(seq);
        *oldest = (*oldest).min(seq);
    }

    /// Where a /history request should continue from (0: the newest).
    pub fn history_before(&self, room: &str) -> u64 {
        self.oldest.get(room).copied().unwrap_or(0)
    }

    /// A live or caught-up line: true if it is new and should be shown.
    pub fn line(&mut self, room: &str, seq: u64) -> bool {
        let Some(r) = self.rooms.get_mut(room) else { return true };
        if seq <= r.upto || r.own.remove(&seq) {
            r.upto = r.upto.max(seq);
            r.advance();
            return false;
        }
        r.upto = seq;
        r.advance();
        true
    }

    /// One of our own lines was acknowledged with `seq`.
    pub fn acked(&mut self, room: &str, seq: u64) {
        let Some(r) = self.rooms.get_mut(room) else { return };
        if seq > r.upto {
            r.own.insert(seq);
            if r.own.len() > MAX_OWN {
                r.own.pop_first();
            }
            r.advance();
        }
    }

    /// Rooms to resume after a reconnect, with the last line seen in each.
    pub fn resume(&self) -> Vec<(String, u64)> {
        let mut v: Vec<_> = self.rooms.iter().map(|(room, r)| (room.clone(), r.upto)).collect();
        v.sort();
        v
    }

    pub fn is_tracked(&self, room: &str) -> bool {
        self.rooms.contains_key(room)
    }

    /// A stored private message: true if it is new.
    pub fn private(&mut self, seq: u64) -> bool {
        if seq == 0 {
            return true;
        }
        if seq <= self.private_since {
            return false;
        }
        self.private_since = seq;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_lines_and_catch_up_never_duplicate() {
        let mut s = Seen::default();
        s.joined("r", 7);
        // We lag: our line 10 is acknowledged before 8 and 9 reach us.
        s.acked("r", 10);
        assert_eq!(s.resume(), vec![("r".into(), 7)]);
        assert!(s.line("r", 8));
        assert!(s.line("r", 9));
        // The catch-up also sends our own line 10 from the store.
        assert!(!s.line("r", 10));
        assert!(s.line("r", 11));
        assert!(!s.line("r", 11));
        assert_eq!(s.resume(), vec![("r".into(), 11)]);
        s.acked("r", 12);
        assert_eq!(s.resume(), vec![("r".into(), 12)]);
        // A rejoin keeps the position; a part forgets it.
        s.joined("r", 50);
        assert_eq!(s.resume(), vec![("r".into(), 12)]);
        // A server whose history ends earlier wins: its next lines show.
        s.joined("r", 5);
        assert!(s.line("r", 6));
        s.joined("r", 6);
        s.parted("r");
        assert!(s.resume().is_empty());
    }

    #[test]
    fn private_messages_once() {
        let mut s = Seen::default();
        assert!(s.private(5));
        assert!(!s.private(5));
        assert!(!s.private(3));
        assert!(s.private(0));
        assert!(s.private(6));
    }
}
