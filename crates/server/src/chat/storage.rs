//! The chat core's store work as requests and completions, so that the
//! core stays sans-IO and the event loop never waits for SQLite or an
//! fsync. This follows the pattern of password checks (`login.rs`): the
//! core queues a [`StoreRequest`], the driver takes it
//! ([`ChatServer::take_store_requests`]) and runs it on a store thread
//! ([`StoreRequest::run`]; writes on the one writer, reads on a reader),
//! and the [`StoreCompletion`] comes back through
//! [`ChatServer::completed`].
//!
//! Writes: group commit as docs/PROTOCOL.md §15.8 says. Lines and private
//! messages accepted go into the pending [`Batch`]; [`ChatServer::commit`]
//! (the end of the driver's batch of events) sends it to the writer unless
//! a commit is in flight, in which case they wait and go in the next one.
//! Only when a commit's completion comes back are its lines delivered and
//! acknowledged (or refused with StorageFailed). Retention (`prune`) is the
//! writer's other request, at most one in flight.
//!
//! Bounds: one commit and one prune in flight; at most [`MAX_PENDING`]
//! lines and private messages waiting for the next commit (past it a line
//! is refused with StorageFailed: the disk is far behind); at most
//! [`MAX_READS`] reads in flight (past it a login is asked to retry, a
//! nickname or recipient lookup fails with StorageFailed, join history and
//! History pages are skipped as when a queue is full, and a catch-up waits
//! for a free read). The driver's channels hold no more than these.

use std::collections::VecDeque;

use udpchat_proto::ConnectionHandle;

use super::{ChatServer, Clock, Outlet};
use crate::store::{Account, AdminChange, Line, Retention, Store, StoreError, StoredPrivate};

/// Lines and private messages waiting for the next commit.
pub const MAX_PENDING: usize = 65_536;
/// Store reads in flight at once.
pub const MAX_READS: usize = 1024;

/// Who waits for an accepted line or private message: the session and the
/// id of its request, for the Ack or the StorageFailed error.
#[derive(Debug, Clone, Copy)]
pub struct Waiter {
    pub(crate) session: ConnectionHandle,
    pub(crate) id: u64,
    /// The sending client's origin (0: none), whose mark the commit
    /// stores (`origins.rs`).
    pub(crate) origin: u64,
}

#[derive(Debug)]
pub(crate) struct PendingLine {
    pub(crate) line: Line,
    /// `None` for the console operator's lines and lines fed by the
    /// cluster.
    pub(crate) waiter: Option<Waiter>,
    /// A session that must not hear it (its sender, acknowledged instead:
    /// a cluster node's own line coming back on its feed).
    pub(crate) skip: Option<ConnectionHandle>,
}

#[derive(Debug)]
pub(crate) struct PendingPrivate {
    pub(crate) private: StoredPrivate,
    /// `None` for a private message a cluster's feed brought (delivered
    /// when it came; stored here for the recipient's later logins).
    pub(crate) waiter: Option<Waiter>,
}

/// A notice that must not overtake the lines accepted before it (a line
/// then QUIT: the room hears the line, then the quit).
#[derive(Debug)]
pub(crate) struct LaterNotice {
    pub(crate) rooms: std::collections::BTreeSet<String>,
    pub(crate) msg: udpchat_chat::ServerMsg,
}

/// What one commit stores, in the order it was accepted, and the notices
/// that go out after its lines.
#[derive(Debug, Default)]
pub struct Batch {
    pub(crate) lines: Vec<PendingLine>,
    pub(crate) privates: Vec<PendingPrivate>,
    /// Not stored; bounded by the sessions (at most one leave per
    /// session) and the parts of its requests.
    pub(crate) notices: Vec<LaterNotice>,
}

impl Batch {
    fn len(&self) -> usize {
        self.lines.len() + self.privates.len()
    }

    /// Per origin, the highest request id in the batch.
    fn origin_marks(&self) -> Vec<(u64, u64)> {
        let mut marks = std::collections::BTreeMap::new();
        let waiters = self.lines.iter().filter_map(|p| p.waiter).chain(self.privates.iter().filter_map(|p| p.waiter));
        for w in waiters.filter(|w| w.origin != 0) {
            let mark = marks.entry(w.origin).or_insert(w.id);
            *mark = (*mark).max(w.id);
        }
        marks.into_iter().collect()
    }
}

/// Tells a read's completion from an older one for the same member and
/// room (it left and came back meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadId(u64);

/// Which lines of a room a read wants.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Span {
    /// Numbered above this, oldest first (catch-up).
    After(u64),
    /// The newest numbered below this (0: the newest of all), oldest first.
    Before(u64),
}

/// What an account lookup is for.
#[derive(Debug)]
pub(crate) enum AccountUse {
    Login(ConnectionHandle),
    Nick {
        session: ConnectionHandle,
        nick: String,
    },
    Private {
        session: ConnectionHandle,
        id: u64,
        origin: u64,
        to: String,
        text: String,
        time_ms: u64,
    },
    /// The console operator's `/rate NICK N`.
    SetRate {
        nick: String,
        rate: u32,
    },
}

/// What a read of room lines is for.
#[derive(Debug)]
pub(crate) enum LinesUse {
    /// The recent lines on a fresh join; the member's catch-up continues
    /// from the head it joined at.
    JoinHistory {
        session: ConnectionHandle,
        room: String,
        read: ReadId,
    },
    CatchUp {
        session: ConnectionHandle,
        room: String,
        read: ReadId,
    },
    /// A History page.
    Page {
        session: ConnectionHandle,
        room: String,
    },
}

#[derive(Debug)]
enum Request {
    Commit(Batch),
    /// A ban, unban or topic to keep across restarts.
    Admin(AdminChange),
    /// An account a cluster node's feed brought (None: deleted).
    PutAccount {
        folded: String,
        account: Option<Account>,
    },
    Prune {
        room: String,
        retention: Retention,
        now_ms: u64,
        limit: usize,
    },
    Account {
        folded: String,
        then: AccountUse,
    },
    Lines {
        room: String,
        span: Span,
        limit: usize,
        then: LinesUse,
    },
    Privates {
        recipient: String,
        after: u64,
        limit: usize,
        then: ConnectionHandle,
    },
}

/// Store work for the driver to run off the event loop.
#[derive(Debug)]
pub struct StoreRequest(Request);

/// What became of a [`StoreRequest`], for [`ChatServer::completed`].
#[derive(Debug)]
pub struct StoreCompletion(Completion);

#[derive(Debug)]
pub(crate) enum Completion {
    Committed { batch: Batch, result: Result<(), StoreError> },
    Admin { change: AdminChange, result: Result<(), StoreError> },
    PutAccount { folded: String, result: Result<(), StoreError> },
    Pruned { room: String, limit: usize, result: Result<usize, StoreError> },
    Account { result: Result<Option<Account>, StoreError>, then: AccountUse },
    Lines { result: Result<Vec<Line>, StoreError>, then: LinesUse },
    Privates { result: Result<Vec<StoredPrivate>, StoreError>, then: ConnectionHandle },
}

impl StoreRequest {
    /// Whether it writes (a commit or retention): those go to the one
    /// writer, in order; the others only read and may run on a reader
    /// connection beside it.
    pub fn writes(&self) -> bool {
        matches!(self.0, Request::Commit(_) | Request::Admin(_) | Request::PutAccount { .. } | Request::Prune { .. })
    }

    /// Whether it is a group commit of lines (whose latency is a metric).
    pub fn is_commit(&self) -> bool {
        matches!(self.0, Request::Commit(_))
    }

    /// Runs it (on a store thread: this may wait for the disk).
    pub fn run(self, store: &mut dyn Store) -> StoreCompletion {
        StoreCompletion(match self.0 {
            Request::Commit(mut batch) => {
                let marks = batch.origin_marks();
                let Batch { lines, privates, .. } = &mut batch;
                let result = store.append(
                    &mut lines.iter().map(|p| &p.line),
                    &mut privates.iter_mut().map(|p| &mut p.private),
                    &marks,
                );
                Completion::Committed { batch, result }
            }
            Request::Admin(change) => {
                let result = store.apply(&change);
                Completion::Admin { change, result }
            }
            Request::PutAccount { folded, account } => {
                let result = match &account {
                    Some(account) => store.put_account(&folded, account),
                    None => store.delete_account(&folded).map(drop),
                };
                Completion::PutAccount { folded, result }
            }
            Request::Prune { room, retention, now_ms, limit } => {
                let result = store.prune(&room, retention, now_ms, limit);
                Completion::Pruned { room, limit, result }
            }
            Request::Account { folded, then } => Completion::Account { result: store.account(&folded), then },
            Request::Lines { room, span, limit, then } => {
                let result = match span {
                    Span::After(after) => store.lines_after(&room, after, limit),
                    Span::Before(before) => store.lines_before(&room, before, limit),
                };
                Completion::Lines { result, then }
            }
            Request::Privates { recipient, after, limit, then } => {
                Completion::Privates { result: store.privates_after(&recipient, after, limit), then }
            }
        })
    }
}

/// The store work the core has asked for and not yet heard back about.
#[derive(Default)]
pub(crate) struct StoreWork {
    /// Accepted, for the next commit.
    pending: Batch,
    committing: bool,
    pruning: bool,
    /// Rooms pruned in turn (an index into the room table).
    prune_cursor: usize,
    reads: usize,
    next_read: u64,
    /// Catch-ups that found no free read, oldest first; each (member,
    /// room) at most once (its cursor says it is starved).
    starved: VecDeque<(ConnectionHandle, String)>,
    /// For the driver to take.
    requests: Vec<StoreRequest>,
}

/// The pending batch is full.
#[derive(Debug)]
pub(crate) struct Backlog;

impl StoreWork {
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    pub(crate) fn reads_in_flight(&self) -> usize {
        self.reads
    }

    pub(crate) fn accept_line(&mut self, line: PendingLine) -> Result<(), Backlog> {
        if self.pending.len() >= MAX_PENDING {
            return Err(Backlog);
        }
        self.pending.lines.push(line);
        Ok(())
    }

    pub(crate) fn accept_private(&mut self, private: PendingPrivate) -> Result<(), Backlog> {
        if self.pending.len() >= MAX_PENDING {
            return Err(Backlog);
        }
        self.pending.privates.push(private);
        Ok(())
    }

    /// Accepted lines not yet in a commit, for renumbering after a failed
    /// one.
    pub(crate) fn pending_lines_mut(&mut self) -> impl Iterator<Item = &mut Line> {
        self.pending.lines.iter_mut().map(|p| &mut p.line)
    }

    /// Queues a notice behind every line accepted so far; gives it back
    /// if no line is waiting for the store (send it now).
    pub(crate) fn notice_after_lines(&mut self, notice: LaterNotice) -> Option<LaterNotice> {
        if !self.busy_writing() {
            return Some(notice);
        }
        self.pending.notices.push(notice);
        None
    }

    /// Notices that waited for lines when no line is waiting any more.
    fn notices_due(&mut self) -> Vec<LaterNotice> {
        if self.committing || self.pending.len() > 0 {
            return Vec::new();
        }
        std::mem::take(&mut self.pending.notices)
    }

    /// Sends the pending batch to the writer, unless one is in flight.
    fn start_commit(&mut self) {
        if self.committing || self.pending.len() == 0 {
            return;
        }
        self.committing = true;
        self.requests.push(StoreRequest(Request::Commit(std::mem::take(&mut self.pending))));
    }

    pub(crate) fn busy_writing(&self) -> bool {
        self.committing || self.pending.len() > 0
    }

    pub(crate) fn new_read_id(&mut self) -> ReadId {
        self.next_read += 1;
        ReadId(self.next_read)
    }

    fn can_read(&self) -> bool {
        self.reads < MAX_READS
    }

    fn read(&mut self, request: Request) -> bool {
        if !self.can_read() {
            return false;
        }
        self.reads += 1;
        self.requests.push(StoreRequest(request));
        true
    }

    /// Records an operator's change on the writer (after the writes asked
    /// for before it). Not bounded here: operator actions are paced
    /// requests of operator sessions or console lines.
    pub(crate) fn admin(&mut self, change: AdminChange) {
        self.requests.push(StoreRequest(Request::Admin(change)));
    }

    /// Stores an account the cluster's feed brought (on the writer, in
    /// feed order). Bounded like `admin`: accounts change by hand.
    pub(crate) fn put_account(&mut self, folded: String, account: Option<Account>) {
        self.requests.push(StoreRequest(Request::PutAccount { folded, account }));
    }

    /// Looks up an account; false if too many reads are in flight.
    pub(crate) fn read_account(&mut self, folded: String, then: AccountUse) -> bool {
        self.read(Request::Account { folded, then })
    }

    pub(crate) fn read_lines(&mut self, room: &str, span: Span, limit: usize, then: LinesUse) -> bool {
        self.read(Request::Lines { room: room.to_owned(), span, limit, then })
    }

    pub(crate) fn read_privates(&mut self, recipient: &str, after: u64, limit: usize, then: ConnectionHandle) -> bool {
        self.read(Request::Privates { recipient: recipient.to_owned(), after, limit, then })
    }

    pub(crate) fn starve(&mut self, session: ConnectionHandle, room: &str) {
        self.starved.push_back((session, room.to_owned()));
    }

    /// Retention for the next room in turn, if none is in flight. `pick`
    /// gets the cursor and says which room and what it keeps.
    pub(crate) fn start_prune(
        &mut self,
        now_ms: u64,
        limit: usize,
        pick: impl FnOnce(usize) -> Option<(String, Retention)>,
    ) {
        if self.pruning {
            return;
        }
        match pick(self.prune_cursor) {
            Some((room, retention)) if retention != Retention::default() => {
                self.pruning = true;
                self.requests.push(StoreRequest(Request::Prune { room, retention, now_ms, limit }));
            }
            Some(_) => self.prune_cursor += 1,
            None => {}
        }
    }
}

impl ChatServer {
    /// Store work the driver should start now (writes to the writer
    /// thread in this order, reads to a reader).
    pub fn take_store_requests(&mut self) -> Vec<StoreRequest> {
        std::mem::take(&mut self.store.requests)
    }

    /// Whether accepted lines are waiting to be stored (or, on a cluster,
    /// published) or a commit is in flight: at shutdown the driver feeds
    /// completions until it is not.
    pub fn storing(&self) -> bool {
        self.store.busy_writing() || self.cluster_busy()
    }

    /// Ends the current batch: everything accepted since the last commit
    /// goes to the store in one transaction, or, if a commit is still in
    /// flight, with the next one. Call once per batch of events.
    pub fn commit(&mut self) {
        self.store.start_commit();
        self.start_publish();
    }

    /// A store request finished.
    pub fn completed(&mut self, clock: Clock, completion: StoreCompletion, out: &mut impl Outlet) {
        match completion.0 {
            Completion::Committed { batch, result } => {
                self.store.committing = false;
                match result {
                    Ok(()) => self.deliver_batch(clock, batch, out),
                    Err(e) => self.refuse_batch(clock, batch, &e, out),
                }
                // What was accepted meanwhile goes now, not at the end of
                // the next batch of events.
                self.store.start_commit();
                for notice in self.store.notices_due() {
                    self.broadcast_rooms(&notice.rooms, &notice.msg, None, out);
                }
            }
            Completion::Admin { change, result } => {
                if let Err(e) = result {
                    self.announce(clock, format!("!! could not record {change:?}; it lasts until a restart: {e}"));
                }
            }
            Completion::PutAccount { folded, result } => {
                if let Err(e) = result {
                    self.announce(clock, format!("!! could not store the account {folded} from the cluster: {e}"));
                }
            }
            Completion::Pruned { room, limit, result } => {
                self.store.pruning = false;
                match result {
                    // A full batch may mean more to do: stay on this room.
                    Ok(n) if n == limit => {}
                    Ok(_) => self.store.prune_cursor += 1,
                    Err(e) => {
                        self.announce(clock, format!("!! retention of #{room}: {e}"));
                        self.store.prune_cursor += 1;
                    }
                }
            }
            Completion::Account { result, then } => {
                self.store.reads -= 1;
                self.account_read(clock, result, then, out);
                self.feed_starved();
            }
            Completion::Lines { result, then } => {
                self.store.reads -= 1;
                self.lines_read(clock, result, then, out);
                self.feed_starved();
            }
            Completion::Privates { result, then } => {
                self.store.reads -= 1;
                self.stored_privates_read(clock, result, then, out);
                self.feed_starved();
            }
        }
    }

    /// Catch-ups that waited for a free read get one, oldest first.
    fn feed_starved(&mut self) {
        while self.store.can_read() {
            let Some((h, room)) = self.store.starved.pop_front() else { return };
            self.catch_up_starved(h, &room);
        }
    }
}
