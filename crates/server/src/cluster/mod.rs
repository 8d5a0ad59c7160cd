//! A udpchat cluster on NATS JetStream (docs/SCALING.md): several servers
//! share their rooms through one stream, which numbers and orders every
//! line, and a key-value bucket of nickname leases. The chat core's side
//! is `chat/clustered.rs`; this module is the I/O: it connects, makes the
//! stream and bucket if they are missing, and runs three tasks beside the
//! driver's loop:
//!
//! * the **publisher** publishes the core's batches in order, each batch
//!   pipelined (every message sent, then every acknowledgement awaited),
//!   and reports where the stream stored each line;
//! * the **feed** (`feed.rs`) reads the stream in order from where this
//!   node's store ends and hands each item to the driver;
//! * the **leases** task (`leases.rs`) claims, renews and releases
//!   nicknames.
//!
//! If NATS goes away, publishes fail after [`PUBLISH_TIMEOUT`] (the lines
//! are refused to their senders with the reason, never dropped silently),
//! the client reconnects on its own, and the feed resumes where it was.

mod feed;
mod leases;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::chat::{ClusterCompletion, ClusterRequest, Fed, PresenceSnapshot, Stored};
use crate::store::Account;

/// The stream of every room's lines, notices and operators' changes.
pub const STREAM: &str = "UDPCHAT";
/// The bucket of nickname leases.
pub const NICKS: &str = "udpchat_nicks";
/// How long a starting node waits for JetStream to be ready.
const SETUP_WAIT: Duration = Duration::from_secs(30);
/// How long a publish may wait for its acknowledgement.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
/// A resend with the same origin and id within this window is stored once.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(600);
/// Fed items waiting for the driver (the feed waits when it is full).
const FEED_QUEUE: usize = 4096;
/// Other nodes' presence snapshots waiting for the driver; more are
/// dropped (the next comes in 10 s).
const PRESENCE_QUEUE: usize = 64;
/// Where nodes tell each other who is in their rooms (`chat/presence.rs`):
/// plain NATS, outside the stream's subjects, since nothing of it is kept.
const PRESENCE: &str = "udpchat-presence";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot reach the cluster at {urls}; is nats-server running there with JetStream (nats-server -js)?")]
    Connect {
        urls: String,
        #[source]
        source: async_nats::ConnectError,
    },
    #[error("cannot set up the cluster's {what} in JetStream ({source}); check that nats-server runs with -js")]
    Setup {
        what: &'static str,
        #[source]
        source: async_nats::Error,
    },
    #[error("the cluster (NATS) did not store it ({source})")]
    Publish {
        #[source]
        source: async_nats::Error,
    },
    #[error("the cluster's nickname leases are unavailable ({source})")]
    Lease {
        #[source]
        source: async_nats::Error,
    },
}

/// Where the cluster is and how it keeps the stream.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `nats://host:port`, comma-separated.
    pub urls: String,
    /// Copies JetStream keeps of the stream and bucket (1, or 3 on a
    /// three-node NATS cluster).
    pub replicas: usize,
    /// The stream forgets lines older than this (None: kept).
    pub max_age: Option<Duration>,
}

/// A connection to the cluster, streams ready.
pub struct Cluster {
    js: jetstream::Context,
    nicks: jetstream::kv::Store,
    node: u64,
    /// Told when the connection to NATS is made again.
    reconnected: Arc<Notify>,
}

impl Cluster {
    /// Connects and makes the stream and the lease bucket if missing.
    pub async fn connect(config: &ClusterConfig) -> Result<Self, ClusterError> {
        let urls = config.urls.clone();
        let reconnected = Arc::new(Notify::new());
        let notify = reconnected.clone();
        let client = async_nats::ConnectOptions::new()
            .name("udpchat-server")
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let notify = notify.clone();
                async move {
                    match event {
                        async_nats::Event::Disconnected => {
                            tracing::error!(target: "udpchat::cluster", "lost the connection to NATS; lines are refused until it is back");
                        }
                        async_nats::Event::Connected => {
                            tracing::info!(target: "udpchat::cluster", "connected to NATS");
                            // The feed's reader may not have survived (a
                            // restarted NATS forgets it): make it again now.
                            notify.notify_one();
                        }
                        // Each failed reconnect attempt, among others.
                        other => tracing::debug!(target: "udpchat::cluster", "NATS: {other}"),
                    }
                }
            })
            .connect(urls.split(',').map(str::trim).collect::<Vec<_>>().as_slice())
            .await
            .map_err(|source| ClusterError::Connect { urls: urls.clone(), source })?;
        let mut js = jetstream::new(client);
        js.set_timeout(PUBLISH_TIMEOUT);
        let replicas = config.replicas.max(1);
        // A NATS cluster that is starting has no JetStream leader yet: wait
        // for one (bounded) rather than fail the node's start.
        let deadline = tokio::time::Instant::now() + SETUP_WAIT;
        loop {
            match Self::set_up(&js, config, replicas).await {
                Ok(nicks) => {
                    let mut node = [0u8; 8];
                    getrandom::getrandom(&mut node)
                        .map_err(|e| ClusterError::Setup { what: "node name", source: e.into() })?;
                    return Ok(Self { js, nicks, node: u64::from_le_bytes(node) | 1, reconnected });
                }
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::warn!(target: "udpchat::cluster", error = %e, "JetStream is not ready; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes the stream and the lease bucket if they are missing.
    async fn set_up(
        js: &jetstream::Context,
        config: &ClusterConfig,
        replicas: usize,
    ) -> Result<jetstream::kv::Store, ClusterError> {
        js.get_or_create_stream(stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![wire::ALL.to_owned()],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: DUPLICATE_WINDOW,
            max_age: config.max_age.unwrap_or_default(),
            allow_direct: true,
            ..Default::default()
        })
        .await
        .map_err(|e| ClusterError::Setup { what: "stream", source: e.into() })?;
        leases::bucket(js, replicas).await
    }

    /// This node's name in the cluster: random, new at each start.
    pub fn node(&self) -> u64 {
        self.node
    }

    /// Starts the tasks. `position`: the last stream sequence the local
    /// store has (`ChatServer::cluster_position`).
    pub fn start(self, position: u64) -> ClusterLink {
        let (completions_tx, completions) = mpsc::unbounded_channel();
        let (fed_tx, fed) = mpsc::channel(FEED_QUEUE);
        let (publish_tx, publish_rx) = mpsc::unbounded_channel();
        let (lease_tx, lease_rx) = mpsc::unbounded_channel();
        let (presence_out, presence_rx) = mpsc::unbounded_channel();
        let (presence_tx, presence) = mpsc::channel(PRESENCE_QUEUE);
        let tasks = vec![
            tokio::spawn(publisher(self.js.clone(), self.node, publish_rx, completions_tx.clone())),
            tokio::spawn(feed::run(self.js.clone(), position, fed_tx, self.reconnected)),
            tokio::spawn(leases::run(self.nicks, self.node, lease_rx, completions_tx)),
            tokio::spawn(share_presence(self.js.client(), presence_rx, presence_tx)),
        ];
        ClusterLink { publish: publish_tx, leases: lease_tx, presence_out, completions, fed, presence, tasks }
    }
}

/// The driver's side of the cluster tasks. The request channels are
/// unbounded but hold no more than the core lets be in flight (one
/// publish; claims bounded by logins in progress).
pub struct ClusterLink {
    publish: mpsc::UnboundedSender<ClusterRequest>,
    leases: mpsc::UnboundedSender<leases::LeaseRequest>,
    /// This node's presence snapshots (one every 10 s).
    presence_out: mpsc::UnboundedSender<PresenceSnapshot>,
    pub completions: mpsc::UnboundedReceiver<ClusterCompletion>,
    pub fed: mpsc::Receiver<Fed>,
    presence: mpsc::Receiver<PresenceSnapshot>,
    tasks: Vec<JoinHandle<()>>,
}

/// What the cluster's tasks have for the driver.
pub enum ClusterEvent {
    Completed(ClusterCompletion),
    Fed(Fed),
    /// Another node's rooms and members.
    Presence(PresenceSnapshot),
}

impl ClusterLink {
    /// The next completion, or (if `take_fed`) fed item.
    pub async fn recv(&mut self, take_fed: bool) -> Option<ClusterEvent> {
        tokio::select! {
            Some(c) = self.completions.recv() => Some(ClusterEvent::Completed(c)),
            Some(f) = self.fed.recv(), if take_fed => Some(ClusterEvent::Fed(f)),
            Some(p) = self.presence.recv() => Some(ClusterEvent::Presence(p)),
            else => None,
        }
    }

    /// Tells the other nodes who is in this node's rooms.
    pub fn share_presence(&self, snapshot: PresenceSnapshot) {
        let _ = self.presence_out.send(snapshot);
    }

    pub fn submit(&self, request: ClusterRequest) {
        match request {
            ClusterRequest::Claim { session, nick, origin } => {
                let _ = self.leases.send(leases::LeaseRequest::Claim { session, nick, origin });
            }
            ClusterRequest::Release { nick } => {
                let _ = self.leases.send(leases::LeaseRequest::Release { nick });
            }
            ClusterRequest::Locate { waiter, private } => {
                let _ = self.leases.send(leases::LeaseRequest::Locate { waiter, private });
            }
            other => {
                let _ = self.publish.send(other);
            }
        }
    }

    /// Releases this node's nickname leases (a clean stop: the names are
    /// free at once, not when their leases run out) and stops the tasks.
    pub async fn close(self) {
        let (done_tx, done) = tokio::sync::oneshot::channel();
        let _ = self.leases.send(leases::LeaseRequest::ReleaseAll { done: done_tx });
        let _ = tokio::time::timeout(Duration::from_secs(2), done).await;
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Publishes the core's requests in order.
async fn publisher(
    js: jetstream::Context,
    node: u64,
    mut requests: mpsc::UnboundedReceiver<ClusterRequest>,
    completions: mpsc::UnboundedSender<ClusterCompletion>,
) {
    while let Some(request) = requests.recv().await {
        match request {
            ClusterRequest::Publish(batch) => {
                let mut messages: Vec<wire::Outgoing> = batch
                    .lines
                    .iter()
                    .map(|p| {
                        let origin_id = p.waiter.map(|w| (w.origin, w.id));
                        wire::line(node, p.waiter.map(|w| w.session.to_bits()), origin_id, &p.line)
                    })
                    .collect();
                messages.extend(batch.notices.iter().map(|n| wire::notice(node, &n.rooms, &n.msg, false)));
                let lines = batch.lines.len();
                let result = publish_all(&js, messages).await.map(|mut stored| {
                    stored.truncate(lines);
                    stored
                });
                if completions.send(ClusterCompletion::Published { batch, result }).is_err() {
                    return;
                }
            }
            ClusterRequest::Share { rooms, msg } => {
                if let Err(e) = publish_all(&js, vec![wire::notice(node, &rooms, &msg, true)]).await {
                    tracing::warn!(target: "udpchat::cluster", error = %e, "a notice did not reach the other nodes");
                }
            }
            ClusterRequest::Admin(change) => {
                if let Err(e) = publish_all(&js, vec![wire::admin(node, &change)]).await {
                    tracing::error!(
                        target: "udpchat::cluster",
                        error = %e,
                        ?change,
                        "an operator's change did not reach the cluster; it holds on this node until a restart"
                    );
                }
            }
            ClusterRequest::PublishPrivate { waiter, private } => {
                let message = wire::private(node, waiter.session.to_bits(), (waiter.origin, waiter.id), &private);
                let result = publish_all(&js, vec![message]).await.map(|stored| stored[0]);
                if completions.send(ClusterCompletion::PublishedPrivate { waiter, private, result }).is_err() {
                    return;
                }
            }
            ClusterRequest::Claim { .. } | ClusterRequest::Release { .. } | ClusterRequest::Locate { .. } => {}
        }
    }
}

/// Sends this node's presence snapshots and hands on the others'. Lost
/// snapshots (NATS away) are no harm: the next comes 10 s later.
async fn share_presence(
    client: async_nats::Client,
    mut outgoing: mpsc::UnboundedReceiver<PresenceSnapshot>,
    incoming: mpsc::Sender<PresenceSnapshot>,
) {
    let mut subscription = match client.subscribe(PRESENCE).await {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(target: "udpchat::cluster", error = %e, "no member lists from other nodes");
            None
        }
    };
    loop {
        tokio::select! {
            snapshot = outgoing.recv() => {
                let Some(snapshot) = snapshot else { return };
                if let Ok(payload) = serde_json::to_vec(&snapshot) {
                    let _ = client.publish(PRESENCE, payload.into()).await;
                }
            }
            Some(message) = async { subscription.as_mut()?.next().await }, if subscription.is_some() => {
                if let Ok(snapshot) = serde_json::from_slice::<PresenceSnapshot>(&message.payload) {
                    let _ = incoming.try_send(snapshot);
                }
            }
        }
    }
}

/// Publishes every message, then waits for every acknowledgement, so a
/// batch costs about one round trip to NATS.
async fn publish_all(js: &jetstream::Context, messages: Vec<wire::Outgoing>) -> Result<Vec<Stored>, ClusterError> {
    let fail = |e: async_nats::Error| ClusterError::Publish { source: e };
    // Not connected: refused now. The client would keep the messages and
    // send them once it reconnects, storing lines whose senders were told
    // they were not delivered.
    if js.client().connection_state() != async_nats::connection::State::Connected {
        return Err(fail("no connection to NATS".into()));
    }
    let mut acks = Vec::with_capacity(messages.len());
    for m in messages {
        let ack = js.publish_with_headers(m.subject, m.headers, m.payload.into()).await.map_err(|e| fail(e.into()))?;
        acks.push(ack);
    }
    let mut stored = Vec::with_capacity(acks.len());
    for ack in acks {
        let ack = ack.await.map_err(|e| fail(e.into()))?;
        stored.push(Stored { seq: ack.sequence, duplicate: ack.duplicate });
    }
    Ok(stored)
}

/// Publishes an account (None: deleted) for every node of the cluster at
/// `urls`: `udpchat user` on a cluster.
pub async fn publish_account(urls: &str, folded: &str, account: Option<&Account>) -> Result<(), ClusterError> {
    let config = ClusterConfig { urls: urls.to_owned(), replicas: 1, max_age: None };
    let cluster = Cluster::connect(&config).await?;
    publish_all(&cluster.js, vec![wire::account(folded, account)]).await.map(drop)
}
