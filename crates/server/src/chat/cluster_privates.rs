//! Private messages on a cluster node (docs/PROTOCOL.md §15.12): they go
//! through the cluster's stream like room lines, so that the recipient's
//! node delivers them wherever it is logged in, and every node stores one
//! sent to an account, numbered by the stream (so `private_since` means
//! the same on every node). The publish and its Ack are `clustered.rs`'s.

use std::collections::BTreeSet;

use udpchat_chat::{ErrorCode, ServerMsg};
use udpchat_proto::ConnectionHandle;

use super::clustered::ClusterRequest;
use super::storage::{PendingPrivate, Waiter};
use super::{ChatServer, Outlet};
use crate::cluster::ClusterError;
use crate::store::StoredPrivate;

/// A private message as the cluster carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterPrivate {
    pub from: String,
    pub to: String,
    /// The recipient's folded account name, if it has one: every node
    /// then stores the message for it (numbered by the stream).
    pub recipient: Option<String>,
    pub text: String,
    pub time_ms: u64,
}

impl ChatServer {
    /// A private message on a cluster: to the stream, which every node
    /// reads; the recipient's node delivers it, and every node stores it
    /// if the recipient has an account. Someone without an account must
    /// be online somewhere: asked of the nickname leases first, unless
    /// the recipient is here.
    pub(crate) fn private_to_cluster(&mut self, waiter: Waiter, private: ClusterPrivate, online_here: bool) {
        self.origins.accept(waiter.origin, waiter.id);
        let request = if private.recipient.is_some() || online_here {
            ClusterRequest::PublishPrivate { waiter, private }
        } else {
            ClusterRequest::Locate { waiter, private }
        };
        self.push_request(request);
    }

    pub(super) fn private_refused(&mut self, waiter: Waiter, e: &ClusterError, out: &mut impl Outlet) {
        self.origins.failed(waiter.origin, waiter.id);
        let text = format!("not delivered: {e}; send it again");
        self.reply(waiter.session, &ServerMsg::Error { id: waiter.id, code: ErrorCode::StorageFailed, text }, out);
    }

    /// A private message the feed brought: to its recipient's sessions on
    /// this node (by nickname, or by account under any nickname), and
    /// into the local store for an account.
    pub(super) fn private_fed(
        &mut self,
        seq: u64,
        p: ClusterPrivate,
        skip: Option<ConnectionHandle>,
        out: &mut impl Outlet,
    ) {
        let key = udpchat_chat::names::fold(&p.to);
        let mut targets: BTreeSet<ConnectionHandle> = self.sessions.nicks.get(&key).copied().into_iter().collect();
        if let Some(account) = &p.recipient {
            targets.extend(self.sessions.iter().filter(|(_, s)| s.account.as_ref() == Some(account)).map(|(h, _)| *h));
        }
        let stored_seq = if p.recipient.is_some() { seq } else { 0 };
        let msg = ServerMsg::Private {
            id: 0,
            seq: stored_seq,
            from: p.from.clone(),
            to: p.to.clone(),
            text: p.text.clone(),
            time_ms: p.time_ms,
            history: false,
        };
        for h in targets.into_iter().filter(|h| Some(*h) != skip) {
            self.reply(h, &msg, out);
        }
        if let Some(recipient) = p.recipient {
            let private =
                StoredPrivate { id: seq, recipient, from: p.from, to: p.to, text: p.text, time_ms: p.time_ms };
            if self.store.accept_private(PendingPrivate { private, waiter: None }).is_err() {
                tracing::error!(target: "udpchat::cluster", seq, "local batch full; fed private message not stored here");
            }
        }
    }
}
