//! Nicknames unique across the cluster: a key per nickname in a JetStream
//! key-value bucket, created only if absent (so two nodes never both get
//! it), renewed every [`RENEW`] while the session lasts, and deleted when
//! it ends. The bucket forgets a key [`LEASE`] after its last write, so the
//! nicknames of a node that dies (kill -9, a lost machine) come free by
//! themselves. (NATS 2.9, Debian's, has no per-key TTL: the bucket's
//! max_age is the lease.)
//!
//! A lease's value names the node and the client's Login origin (§15.3):
//! the same client failing over to another node before its old lease ran
//! out takes the nickname over (compare-and-set on the revision it read),
//! while anyone else is told it is taken. A release deletes only the
//! revision this node holds, so it never frees a nickname taken over.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{self, kv, stream};
use tokio::sync::{mpsc, oneshot};
use udpchat_proto::ConnectionHandle;

use super::{ClusterError, NICKS, wire};
use crate::chat::{ClusterCompletion, ClusterPrivate, Waiter};

/// A lease lasts this long after its last renewal.
pub const LEASE: Duration = Duration::from_secs(30);
/// Leases are renewed this often.
const RENEW: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(super) enum LeaseRequest {
    Claim {
        session: ConnectionHandle,
        nick: String,
        origin: u64,
    },
    Release {
        nick: String,
    },
    ReleaseAll {
        done: oneshot::Sender<()>,
    },
    /// Whether anyone holds `private.to`.
    Locate {
        waiter: Waiter,
        private: ClusterPrivate,
    },
}

/// Makes the bucket if it is missing. By hand, with the stream settings
/// a bucket has: async-nats's create_key_value asks for features newer
/// than the nats-server 2.9 Debian ships.
pub(super) async fn bucket(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, ClusterError> {
    let fail = |e: async_nats::Error| ClusterError::Setup { what: "nickname bucket", source: e };
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{NICKS}"),
        subjects: vec![format!("$KV.{NICKS}.>")],
        max_messages_per_subject: 1,
        max_age: LEASE,
        storage: stream::StorageType::File,
        num_replicas: replicas,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .map_err(|e| fail(e.into()))?;
    js.get_key_value(NICKS).await.map_err(|e| fail(e.into()))
}

struct Held {
    revision: u64,
    value: String,
}

/// Serves lease requests and renews what this node holds.
pub(super) async fn run(
    kv: kv::Store,
    node: u64,
    mut requests: mpsc::UnboundedReceiver<LeaseRequest>,
    completions: mpsc::UnboundedSender<ClusterCompletion>,
) {
    let mut held: HashMap<String, Held> = HashMap::new();
    let mut renew = tokio::time::interval(RENEW);
    loop {
        tokio::select! {
            request = requests.recv() => match request {
                Some(LeaseRequest::Claim { session, nick, origin }) => {
                    let result = claim(&kv, node, &nick, origin, &mut held).await;
                    let _ = completions.send(ClusterCompletion::Claimed { session, nick, result });
                }
                Some(LeaseRequest::Release { nick }) => {
                    if let Some(h) = held.remove(&nick) {
                        let _ = kv.delete_expect_revision(wire::lease_key(&nick), Some(h.revision)).await;
                    }
                }
                Some(LeaseRequest::Locate { waiter, private }) => {
                    let key = wire::lease_key(&udpchat_chat::names::fold(&private.to));
                    let result = kv.entry(key).await.map(|e| e.is_some()).map_err(|e| ClusterError::Lease { source: e.into() });
                    let _ = completions.send(ClusterCompletion::Located { waiter, private, result });
                }
                Some(LeaseRequest::ReleaseAll { done }) => {
                    for (nick, h) in held.drain() {
                        let _ = kv.delete_expect_revision(wire::lease_key(&nick), Some(h.revision)).await;
                    }
                    let _ = done.send(());
                }
                None => return,
            },
            _ = renew.tick() => renew_all(&kv, &mut held).await,
        }
    }
}

async fn claim(
    kv: &kv::Store,
    node: u64,
    nick: &str,
    origin: u64,
    held: &mut HashMap<String, Held>,
) -> Result<bool, ClusterError> {
    let fail = |e: async_nats::Error| ClusterError::Lease { source: e };
    let key = wire::lease_key(nick);
    let value = format!("{node:x} {origin:x}");
    match kv.create(&key, value.clone().into()).await {
        Ok(revision) => {
            held.insert(nick.to_owned(), Held { revision, value });
            return Ok(true);
        }
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(e.into())),
    }
    let Some(entry) = kv.entry(&key).await.map_err(|e| fail(e.into()))? else {
        // Gone between the two calls: free now.
        let revision = kv.create(&key, value.clone().into()).await.map_err(|e| fail(e.into()))?;
        held.insert(nick.to_owned(), Held { revision, value });
        return Ok(true);
    };
    let holder_origin = std::str::from_utf8(&entry.value)
        .ok()
        .and_then(|v| v.split(' ').nth(1))
        .and_then(|o| u64::from_str_radix(o, 16).ok());
    // The same client, come back through this node: it takes it over.
    if origin == 0 || holder_origin != Some(origin) {
        return Ok(false);
    }
    match kv.update(&key, value.clone().into(), entry.revision).await {
        Ok(revision) => {
            held.insert(nick.to_owned(), Held { revision, value });
            Ok(true)
        }
        Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
        Err(e) => Err(fail(e.into())),
    }
}

/// Writes each lease again so it does not run out; a lease another node
/// took over (its revision moved on) is dropped.
async fn renew_all(kv: &kv::Store, held: &mut HashMap<String, Held>) {
    let mut lost = Vec::new();
    for (nick, h) in held.iter_mut() {
        match kv.update(wire::lease_key(nick), h.value.clone().into(), h.revision).await {
            Ok(revision) => h.revision = revision,
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => lost.push(nick.clone()),
            Err(e) => {
                tracing::warn!(target: "udpchat::cluster", error = %e, "renewing nickname leases failed; retrying");
                return;
            }
        }
    }
    for nick in lost {
        held.remove(&nick);
    }
}
