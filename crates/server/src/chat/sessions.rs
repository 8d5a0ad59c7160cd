//! The sessions the server knows, by transport handle, with the two
//! indexes kept beside them: folded nickname to session, and sessions per
//! source address (for `max_sessions_per_address`). A session's address
//! follows the transport's migration (docs/PROTOCOL.md §8), so bans and
//! per-address limits see where it is now.

use std::collections::hash_map::{Iter, Keys};
use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use udpchat_proto::ConnectionHandle;

use super::login::PendingLogin;
use super::pacing::Pacing;

pub(crate) struct Session {
    pub(crate) addr: SocketAddr,
    /// Display form; `None` until logged in.
    pub(crate) nick: Option<String>,
    /// The folded account name, if logged in to an account.
    pub(crate) account: Option<String>,
    pub(crate) operator: bool,
    /// The client instance's origin from its Login (0: none), for
    /// exactly-once resends (`origins.rs`).
    pub(crate) origin: u64,
    pub(crate) rooms: BTreeSet<String>,
    /// Flood control: its rate and the requests waiting for tokens.
    pub(crate) pacing: Pacing,
    pub(crate) login_failures: u32,
    /// A login waiting for its account lookup or password check.
    pub(crate) login: Option<PendingLogin>,
    /// On a cluster: the nickname a Nick request waits to be granted.
    pub(crate) renaming: Option<String>,
    pub(crate) connected_at: Instant,
    /// Set once the session has said goodbye (QUIT, kick), so its
    /// transport close does not announce it a second time.
    pub(crate) gone: bool,
    /// Carried by the plain-text gateway (unencrypted, address not
    /// verified): the others are told when it joins a room.
    pub(crate) plain: bool,
}

impl Session {
    pub(crate) fn new(addr: SocketAddr, burst: u32, per_second: f64, now: Instant) -> Self {
        Self {
            addr,
            nick: None,
            account: None,
            operator: false,
            origin: 0,
            rooms: BTreeSet::new(),
            pacing: Pacing::new(burst, per_second, now),
            login_failures: 0,
            login: None,
            renaming: None,
            connected_at: now,
            gone: false,
            plain: false,
        }
    }
}

/// Why a session was not admitted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TooManyFromAddress;

#[derive(Default)]
pub(crate) struct Sessions {
    by_handle: HashMap<ConnectionHandle, Session>,
    /// Folded nickname to session.
    pub(crate) nicks: HashMap<String, ConnectionHandle>,
    /// Bounded by the sessions: an entry goes with its last session.
    per_address: HashMap<IpAddr, usize>,
}

impl Sessions {
    /// Adds a session unless its address already has `max_per_address`.
    pub(crate) fn admit(
        &mut self,
        h: ConnectionHandle,
        session: Session,
        max_per_address: usize,
    ) -> Result<(), TooManyFromAddress> {
        let count = self.per_address.entry(session.addr.ip()).or_insert(0);
        if *count >= max_per_address {
            if *count == 0 {
                self.per_address.remove(&session.addr.ip());
            }
            return Err(TooManyFromAddress);
        }
        *count += 1;
        self.by_handle.insert(h, session);
        Ok(())
    }

    /// Forgets a session (its nickname must have been released already).
    pub(crate) fn remove(&mut self, h: ConnectionHandle) -> Option<Session> {
        let session = self.by_handle.remove(&h)?;
        self.uncount(session.addr.ip());
        Some(session)
    }

    /// The session's peer moved to `addr`. It stays admitted even if the
    /// new address has its quota already: the session existed first.
    pub(crate) fn migrate(&mut self, h: ConnectionHandle, addr: SocketAddr) {
        let Some(session) = self.by_handle.get_mut(&h) else { return };
        let old = std::mem::replace(&mut session.addr, addr);
        if old.ip() != addr.ip() {
            self.uncount(old.ip());
            *self.per_address.entry(addr.ip()).or_insert(0) += 1;
        }
    }

    fn uncount(&mut self, ip: IpAddr) {
        if let Some(count) = self.per_address.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&ip);
            }
        }
    }

    /// Sessions from `ip` now.
    pub(crate) fn count_at(&self, ip: IpAddr) -> usize {
        self.per_address.get(&ip).copied().unwrap_or(0)
    }

    pub(crate) fn get(&self, h: &ConnectionHandle) -> Option<&Session> {
        self.by_handle.get(h)
    }

    pub(crate) fn get_mut(&mut self, h: &ConnectionHandle) -> Option<&mut Session> {
        self.by_handle.get_mut(h)
    }

    pub(crate) fn iter(&self) -> Iter<'_, ConnectionHandle, Session> {
        self.by_handle.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&ConnectionHandle, &mut Session)> {
        self.by_handle.iter_mut()
    }

    pub(crate) fn keys(&self) -> Keys<'_, ConnectionHandle, Session> {
        self.by_handle.keys()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_handle.len()
    }

    /// The session's nickname, or "" before login.
    pub(crate) fn nick_of(&self, h: ConnectionHandle) -> String {
        self.get(&h).and_then(|s| s.nick.clone()).unwrap_or_default()
    }
}
