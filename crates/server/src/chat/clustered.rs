//! The chat core on a cluster node (docs/SCALING.md, docs/PROTOCOL.md
//! §15.12): the same sessions, rooms and rules, but the cluster's stream
//! numbers and orders every room's lines, so that members on every node
//! see one order.
//!
//! A line a member says is not numbered here: it goes to the stream (a
//! [`ClusterRequest::Publish`] of the batch, one in flight, the next batch
//! waiting as commits do), and the stream's sequence number becomes its
//! room number. Nothing is delivered from the publish: every node,
//! this one included, delivers only what comes back on its ordered
//! [`Fed`] feed, through the local store as before (fed lines are group
//! committed to SQLite, the node's copy of the history, and delivered when
//! that commit completes). So the sender's Ack waits for its line to come
//! round (`awaiting`), and is sent right after the lines before it.
//!
//! Notices that must follow lines (a member's last line, then its quit) go
//! to the stream in the same batch after them and are delivered from the
//! feed too. Notices sent at once (a join, a topic) are delivered here at
//! once and shared with the other nodes ([`ClusterRequest::Share`]).
//! Operators' changes (bans, topics, rates, retention) are applied here at
//! once and published; every node stores them from its feed, and the
//! other nodes apply them. Nicknames are leases held in the cluster
//! (`Claim` before a login completes, `Release` when the session leaves).
//!
//! Bounds: the outgoing batch holds at most [`MAX_PENDING`] lines (past it
//! a line is refused as when the store is behind); `awaiting` holds only
//! lines of published batches (one in flight), so at most twice that; the
//! driver takes fed items only while the local batch has room
//! ([`ChatServer::can_take_fed`]).

use std::collections::{BTreeMap, BTreeSet};

use udpchat_chat::{ErrorCode, Line, RefuseCode, ServerMsg};
use udpchat_proto::ConnectionHandle;

use super::cluster_privates::ClusterPrivate;
use super::storage::{Backlog, Batch, LaterNotice, MAX_PENDING, PendingLine, Waiter};
use super::{ChatServer, Clock, Outlet};
use crate::cluster::ClusterError;
use crate::store::{Account, AdminChange};

/// Store work on the cluster, for the driver to hand to its cluster tasks.
#[derive(Debug)]
pub enum ClusterRequest {
    /// Lines and the notices after them, to the stream in this order.
    Publish(Batch),
    /// A notice already delivered on this node, for the other nodes.
    Share { rooms: BTreeSet<String>, msg: ServerMsg },
    /// An operator's change, for every node to store and apply.
    Admin(AdminChange),
    /// Take the nickname (folded) for the session, unless another client
    /// holds it; `origin` lets the same client take it over from a node it
    /// left (failover).
    Claim { session: ConnectionHandle, nick: String, origin: u64 },
    /// The session no longer uses the nickname.
    Release { nick: String },
    /// Whether anyone holds the nickname `private.to` (a private message
    /// to someone without an account, not on this node).
    Locate { waiter: Waiter, private: ClusterPrivate },
    /// A private message, for the node(s) of its recipient.
    PublishPrivate { waiter: Waiter, private: ClusterPrivate },
}

/// What became of a [`ClusterRequest`].
#[derive(Debug)]
pub enum ClusterCompletion {
    /// Per line of the batch, in order, where the stream stored it.
    Published {
        batch: Batch,
        result: Result<Vec<Stored>, ClusterError>,
    },
    /// `nick` folded; Ok(false): another client holds it.
    Claimed {
        session: ConnectionHandle,
        nick: String,
        result: Result<bool, ClusterError>,
    },
    /// Ok(true): someone holds `private.to`.
    Located {
        waiter: Waiter,
        private: ClusterPrivate,
        result: Result<bool, ClusterError>,
    },
    PublishedPrivate {
        waiter: Waiter,
        private: ClusterPrivate,
        result: Result<Stored, ClusterError>,
    },
}

/// Where the stream put a line.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub seq: u64,
    /// The stream had it already (a resend of a line some node stored).
    pub duplicate: bool,
}

/// One message of the stream, as every node's feed sees it.
#[derive(Debug)]
pub struct Fed {
    pub seq: u64,
    /// The node that published it, and the session that said it.
    pub node: u64,
    pub session: Option<u64>,
    pub item: FedItem,
}

#[derive(Debug)]
pub enum FedItem {
    Line(Line),
    /// `shared`: the publishing node delivered it already.
    Notice {
        rooms: BTreeSet<String>,
        msg: ServerMsg,
        shared: bool,
    },
    Admin(AdminChange),
    /// An account created, changed or (None) deleted by `udpchat user`.
    Account {
        folded: String,
        account: Option<Account>,
    },
    Private(ClusterPrivate),
}

/// A line whose Ack waits for the feed to bring it.
#[derive(Debug)]
struct Awaited {
    waiter: Waiter,
    /// Empty for a private message.
    room: String,
    duplicate: bool,
    /// What the Ack says.
    seq: u64,
}

/// This node's part in the cluster.
#[derive(Debug, Default)]
pub(crate) struct Role {
    node: u64,
    /// Accepted lines (not numbered) and notices for the next publish.
    outgoing: Batch,
    publishing: bool,
    /// The last stream sequence the feed brought.
    position: u64,
    /// By stream sequence: senders to acknowledge when the feed brings it.
    awaiting: BTreeMap<u64, Vec<Awaited>>,
    requests: Vec<ClusterRequest>,
}

impl Role {
    pub(crate) fn node(&self) -> u64 {
        self.node
    }

    fn busy(&self) -> bool {
        self.publishing || self.outgoing.lines.len() + self.outgoing.notices.len() > 0
    }
}

impl ChatServer {
    /// Makes this server a cluster node named `node` (random, unique per
    /// start): from now on lines are numbered by the cluster's stream.
    /// The local store is this node's copy of the stream up to
    /// [`ChatServer::cluster_position`].
    pub fn join_cluster(&mut self, node: u64) {
        let position = self.rooms.values().map(|r| r.head).max().unwrap_or(0);
        self.cluster = Some(Role { node, position, ..Role::default() });
    }

    /// The last stream sequence this node has: its feed goes on after it.
    pub fn cluster_position(&self) -> u64 {
        self.cluster.as_ref().map_or(0, |c| c.position)
    }

    pub fn take_cluster_requests(&mut self) -> Vec<ClusterRequest> {
        self.cluster.as_mut().map(|c| std::mem::take(&mut c.requests)).unwrap_or_default()
    }

    /// Whether the local batch has room for what the feed brings.
    pub fn can_take_fed(&self) -> bool {
        self.store.pending_len() < MAX_PENDING
    }

    pub(crate) fn clustered(&self) -> bool {
        self.cluster.is_some()
    }

    pub(crate) fn cluster_busy(&self) -> bool {
        self.cluster.as_ref().is_some_and(Role::busy)
    }

    /// A member's accepted line, for the next publish.
    pub(crate) fn publish_line(&mut self, line: PendingLine) -> Result<(), Backlog> {
        let Some(c) = self.cluster.as_mut() else { return Err(Backlog) };
        if c.outgoing.lines.len() >= MAX_PENDING {
            return Err(Backlog);
        }
        c.outgoing.lines.push(line);
        Ok(())
    }

    /// A notice that must follow the lines accepted before it: to the
    /// stream after them, delivered from the feed on every node.
    pub(crate) fn publish_notice(&mut self, notice: LaterNotice) {
        if let Some(c) = self.cluster.as_mut() {
            c.outgoing.notices.push(notice);
        }
    }

    /// Sends the outgoing batch to the stream, unless one is in flight.
    pub(crate) fn start_publish(&mut self) {
        let Some(c) = self.cluster.as_mut() else { return };
        if c.publishing || (c.outgoing.lines.is_empty() && c.outgoing.notices.is_empty()) {
            return;
        }
        c.publishing = true;
        let batch = std::mem::take(&mut c.outgoing);
        c.requests.push(ClusterRequest::Publish(batch));
    }

    /// A notice delivered here at once: the other nodes' members hear it
    /// from their feeds.
    pub(crate) fn share_notice(&mut self, rooms: BTreeSet<String>, msg: &ServerMsg) {
        if let Some(c) = self.cluster.as_mut() {
            c.requests.push(ClusterRequest::Share { rooms, msg: msg.clone() });
        }
    }

    /// Keeps an operator's change: in the local store, or, on a cluster,
    /// in the stream, from which every node stores it.
    pub(crate) fn record_admin(&mut self, change: AdminChange) {
        match self.cluster.as_mut() {
            Some(c) => c.requests.push(ClusterRequest::Admin(change)),
            None => self.store.admin(change),
        }
    }

    /// Asks the cluster for the nickname; the login goes on in
    /// [`ChatServer::cluster_completed`].
    pub(crate) fn claim_nick(&mut self, h: ConnectionHandle, folded: String) {
        let origin = self.sessions.get(&h).map_or(0, |s| s.origin);
        if let Some(c) = self.cluster.as_mut() {
            c.requests.push(ClusterRequest::Claim { session: h, nick: folded, origin });
        }
    }

    pub(crate) fn release_nick(&mut self, folded: String) {
        if let Some(c) = self.cluster.as_mut() {
            c.requests.push(ClusterRequest::Release { nick: folded });
        }
    }

    /// A cluster request finished.
    pub fn cluster_completed(&mut self, clock: Clock, completion: ClusterCompletion, out: &mut impl Outlet) {
        match completion {
            ClusterCompletion::Published { batch, result } => {
                if let Some(c) = self.cluster.as_mut() {
                    c.publishing = false;
                }
                match result {
                    Ok(stored) => self.published(batch, &stored, out),
                    Err(e) => self.not_published(clock, batch, &e, out),
                }
                self.start_publish();
            }
            ClusterCompletion::Claimed { session, nick, result } => self.claimed(clock, session, nick, result, out),
            ClusterCompletion::Located { waiter, private, result } => match result {
                Ok(true) => self.push_request(ClusterRequest::PublishPrivate { waiter, private }),
                Ok(false) => {
                    let text = format!("nobody called {} is online", private.to);
                    self.reply(
                        waiter.session,
                        &ServerMsg::Error { id: waiter.id, code: ErrorCode::NoSuchNick, text },
                        out,
                    );
                }
                Err(e) => self.private_refused(waiter, &e, out),
            },
            ClusterCompletion::PublishedPrivate { waiter, private, result } => match result {
                Ok(at) => {
                    // Numbered only if stored for an account (§15.8).
                    let seq = if private.recipient.is_some() { at.seq } else { 0 };
                    let awaited = Awaited { waiter, room: String::new(), duplicate: at.duplicate, seq };
                    let fed = self.cluster_position();
                    self.ack_when_fed(at.seq, fed, awaited, out);
                }
                Err(e) => self.private_refused(waiter, &e, out),
            },
        }
    }

    /// The stream has the batch: each sender is acknowledged once its line
    /// has come round on the feed (it may have already).
    fn published(&mut self, batch: Batch, stored: &[Stored], out: &mut impl Outlet) {
        for (pending, at) in batch.lines.iter().zip(stored) {
            let Some(waiter) = pending.waiter else { continue };
            let room = pending.line.room.clone();
            let head = self.rooms.get(&room).map_or(0, |r| r.head);
            let awaited = Awaited { waiter, room, duplicate: at.duplicate, seq: at.seq };
            self.ack_when_fed(at.seq, head, awaited, out);
        }
    }

    /// Acknowledges now if what stream sequence `seq` carries has been
    /// delivered here (`delivered`: how far), else once it has.
    fn ack_when_fed(&mut self, seq: u64, delivered: u64, awaited: Awaited, out: &mut impl Outlet) {
        if seq <= delivered {
            self.ack_fed(awaited, out);
        } else if let Some(c) = self.cluster.as_mut() {
            c.awaiting.entry(seq).or_default().push(awaited);
        }
    }

    /// The stream did not take the batch (NATS unreachable, its limits):
    /// each sender is told, nothing was delivered anywhere; its notices
    /// reach this node's members at least.
    fn not_published(&mut self, clock: Clock, batch: Batch, e: &ClusterError, out: &mut impl Outlet) {
        for notice in &batch.notices {
            self.broadcast_rooms(&notice.rooms, &notice.msg, None, out);
        }
        let count = batch.lines.len();
        if count > 0 {
            tracing::error!(target: "udpchat::cluster", error = %e, lines = count, "publish failed");
            self.announce(clock, format!("!! the cluster did not store {count} line(s): {e}"));
        }
        let text = format!("not delivered: {e}; send it again");
        for w in batch.lines.iter().filter_map(|p| p.waiter) {
            self.origins.failed(w.origin, w.id);
            self.reply(
                w.session,
                &ServerMsg::Error { id: w.id, code: ErrorCode::StorageFailed, text: text.clone() },
                out,
            );
        }
    }

    fn ack_fed(&mut self, awaited: Awaited, out: &mut impl Outlet) {
        let Awaited { waiter, room, duplicate, seq } = awaited;
        // A resend of a line stored before (through another node, say):
        // "stored earlier", as a single server says it (§15.7).
        let seq = if duplicate { 0 } else { seq };
        self.reply(waiter.session, &ServerMsg::Ack { id: waiter.id, room, seq }, out);
    }

    /// A fed line was delivered here: its sender, if on this node, hears
    /// its Ack now, after every line before it.
    pub(crate) fn cluster_delivered(&mut self, seq: u64, out: &mut impl Outlet) {
        let Some(c) = self.cluster.as_mut() else { return };
        if c.awaiting.is_empty() {
            return;
        }
        // Lines the feed skipped (already stored here) are due too.
        let due: Vec<u64> = c.awaiting.range(..=seq).map(|(s, _)| *s).collect();
        for s in due {
            let awaited = self.cluster.as_mut().and_then(|c| c.awaiting.remove(&s)).unwrap_or_default();
            for a in awaited {
                self.ack_fed(a, out);
            }
        }
    }

    /// The next message of the stream.
    pub fn fed(&mut self, clock: Clock, fed: Fed, out: &mut impl Outlet) {
        let Some(c) = self.cluster.as_mut() else { return };
        if fed.seq <= c.position {
            return;
        }
        c.position = fed.seq;
        let ours = fed.node == c.node;
        // The session here that said it hears an Ack instead.
        let skip = fed.session.filter(|_| ours).map(ConnectionHandle::from_bits);
        match fed.item {
            FedItem::Line(mut line) => {
                line.seq = fed.seq;
                let r = self.rooms.entry(line.room.clone()).or_insert_with(|| super::rooms::Room::new(0));
                // Already in the local store (a feed started before the
                // last line this node stored).
                if line.seq <= r.head {
                    self.cluster_delivered(fed.seq, out);
                    return;
                }
                let pending = PendingLine { line, waiter: None, skip };
                if self.store.accept_line(pending).is_err() {
                    // The driver feeds only while there is room.
                    tracing::error!(target: "udpchat::cluster", seq = fed.seq, "local batch full; fed line dropped");
                }
            }
            FedItem::Notice { rooms, msg, shared } => {
                if !ours {
                    self.presence_notice(clock, fed.node, &rooms, &msg);
                }
                if !(shared && ours) {
                    self.notice_in_order(LaterNotice { rooms, msg }, out);
                }
            }
            FedItem::Admin(change) => {
                if !ours {
                    self.apply_remote(clock, &change, out);
                }
                self.store.admin(change);
            }
            FedItem::Account { folded, account } => self.store.put_account(folded, account),
            FedItem::Private(p) => {
                self.private_fed(fed.seq, p, skip, out);
                // Its sender here hears the Ack now (a line's waits for
                // the local commit that delivers it).
                let awaited = self.cluster.as_mut().and_then(|c| c.awaiting.remove(&fed.seq)).unwrap_or_default();
                for a in awaited {
                    self.ack_fed(a, out);
                }
            }
        }
    }

    pub(super) fn push_request(&mut self, request: ClusterRequest) {
        if let Some(c) = self.cluster.as_mut() {
            c.requests.push(request);
        }
    }

    /// The nickname claim of a login came back.
    fn claimed(
        &mut self,
        clock: Clock,
        h: ConnectionHandle,
        folded: String,
        result: Result<bool, ClusterError>,
        out: &mut impl Outlet,
    ) {
        let refuse = |code, text: String| ServerMsg::LoginRefused { code, text };
        // A Nick request's claim, not a login's.
        let renaming = self.sessions.get_mut(&h).filter(|s| s.nick.is_some()).and_then(|s| s.renaming.take());
        if let Some(nick) = renaming {
            self.rename_claimed(clock, h, nick, folded, result, out);
            return;
        }
        match result {
            Ok(true) => {
                if !self.login_claimed(clock, h, out) {
                    self.release_nick(folded);
                }
            }
            Ok(false) => {
                let nick = self.pending_nick(h).unwrap_or(folded);
                self.drop_pending_login(h);
                let text = format!("{nick} is in use on another server of this cluster; choose another");
                self.reply(h, &refuse(RefuseCode::NickTaken, text), out);
            }
            Err(e) => {
                self.drop_pending_login(h);
                tracing::warn!(target: "udpchat::cluster", error = %e, "nickname claim failed");
                let text = format!("the cluster cannot check nicknames right now ({e}); try again in a moment");
                self.reply(h, &refuse(RefuseCode::ServerFull, text), out);
            }
        }
    }

    /// The claim of a Nick request came back: rename, unless the nickname
    /// was taken or banned here meanwhile (then the lease goes back).
    fn rename_claimed(
        &mut self,
        clock: Clock,
        h: ConnectionHandle,
        nick: String,
        folded: String,
        result: Result<bool, ClusterError>,
        out: &mut impl Outlet,
    ) {
        let error = |text: String| ServerMsg::Error { id: 0, code: ErrorCode::NickTaken, text };
        match result {
            Ok(true) => {
                let taken_here = self.sessions.nicks.get(&folded).is_some_and(|&o| o != h);
                if taken_here || self.banned_nicks.contains_key(&folded) || self.sessions.get(&h).is_none_or(|s| s.gone)
                {
                    self.release_nick(folded);
                    self.reply(h, &error(format!("{nick} is not available")), out);
                    return;
                }
                self.rename(clock, h, nick, out);
            }
            Ok(false) => {
                self.reply(
                    h,
                    &error(format!("{nick} is in use on another server of this cluster; choose another")),
                    out,
                );
            }
            Err(e) => {
                let text = format!("cannot check {nick} right now ({e}); try again in a moment");
                self.reply(h, &ServerMsg::Error { id: 0, code: ErrorCode::StorageFailed, text }, out);
            }
        }
    }

    /// An operator's change made on another node.
    fn apply_remote(&mut self, clock: Clock, change: &AdminChange, out: &mut impl Outlet) {
        match change {
            AdminChange::Ban { target, expires_ms, reason } => {
                self.banned_from_cluster(clock, target, *expires_ms, reason, out);
            }
            AdminChange::Unban { target } => {
                match target.parse::<std::net::IpAddr>() {
                    Ok(ip) => self.banned_ips.remove(&ip),
                    Err(_) => self.banned_nicks.remove(target),
                };
            }
            AdminChange::Topic { room, topic } => {
                self.rooms.entry(room.clone()).or_insert_with(|| super::rooms::Room::new(0)).topic = topic.clone();
            }
            AdminChange::AccountRate { account, rate } => {
                self.account_rate_changed(account, *rate, out);
            }
            AdminChange::Retention { room, retention } => {
                if let Some(r) = self.rooms.get_mut(room) {
                    r.retention = *retention;
                }
            }
        }
    }
}
