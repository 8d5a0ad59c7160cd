//! A room's state and its fan-out: members, topic, numbering, and the
//! catch-up cursors of members that lag (docs/PROTOCOL.md §15.8). Live
//! delivery skips a lagging member; one whose queue is full starts lagging
//! here, at the room's head, and `history.rs` feeds it from the store.

use std::collections::{BTreeMap, BTreeSet};

use udpchat_proto::{ConnectionHandle, SendError};

use super::Outlet;
use super::storage::ReadId;
use crate::store::Retention;

pub(crate) struct Room {
    pub(crate) topic: String,
    /// What the room keeps, as the operator set it (tuning.rs); `None`:
    /// the config's rule.
    pub(crate) retention: Option<Retention>,
    pub(crate) members: BTreeSet<ConnectionHandle>,
    /// Members fed from the store instead of live.
    pub(crate) lagging: BTreeMap<ConnectionHandle, Lag>,
    /// The next sequence number to hand out.
    pub(crate) next_seq: u64,
    /// The newest line that is stored and delivered.
    pub(crate) head: u64,
}

/// A member's catch-up cursor in one room.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lag {
    /// The last sequence number the member has been sent.
    pub(crate) cursor: u64,
    pub(crate) state: LagState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LagState {
    /// Waiting for the member to read (its queue was full) or to be
    /// pumped.
    Waiting,
    /// A read of the lines after the cursor is in flight.
    Reading(ReadId),
    /// Just joined: the room's recent lines are being read, and the lines
    /// after the head it joined at come from the store after them, so the
    /// history is never overtaken by a live line. Notices still reach it
    /// (they are not stored).
    Joining(ReadId),
    /// Needs a read, but too many are in flight.
    Starved,
}

/// What a room sends its members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Traffic {
    Line,
    Notice,
}

impl Room {
    pub(crate) fn new(head: u64) -> Self {
        Self {
            topic: String::new(),
            retention: None,
            members: BTreeSet::new(),
            lagging: BTreeMap::new(),
            next_seq: head + 1,
            head,
        }
    }

    /// Whether `m` gets this room's `traffic` live now.
    pub(crate) fn hears(&self, m: ConnectionHandle, traffic: Traffic) -> bool {
        match self.lagging.get(&m) {
            None => true,
            Some(lag) => traffic == Traffic::Notice && matches!(lag.state, LagState::Joining(_)),
        }
    }

    /// `m`'s queue is full: it gets the room's lines from the store from
    /// the head on (the line being sent is not counted in the head yet).
    pub(crate) fn fall_behind(&mut self, m: ConnectionHandle) {
        let head = self.head;
        self.lagging.entry(m).or_insert(Lag { cursor: head, state: LagState::Waiting });
    }

    pub(crate) fn remove_member(&mut self, m: ConnectionHandle) {
        self.members.remove(&m);
        self.lagging.remove(&m);
    }

    /// Sends `bytes` to every member that hears `traffic` live, except
    /// `skip`. A member whose queue is full starts lagging: it never slows
    /// the others.
    pub(crate) fn broadcast(
        &mut self,
        bytes: &[u8],
        traffic: Traffic,
        skip: Option<ConnectionHandle>,
        out: &mut impl Outlet,
    ) {
        let mut behind = Vec::new();
        for &m in &self.members {
            if Some(m) == skip || (!self.lagging.is_empty() && !self.hears(m, traffic)) {
                continue;
            }
            if out.send(m, bytes) == Err(SendError::Blocked) {
                behind.push(m);
            }
        }
        for m in behind {
            self.fall_behind(m);
        }
    }
}
