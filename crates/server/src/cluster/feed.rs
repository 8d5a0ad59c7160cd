//! The feed: this node's ordered read of the cluster's stream, from where
//! its local store ends, handed to the driver one item at a time (the chat
//! core stores and delivers each, `chat/clustered.rs`). An ordered
//! consumer is JetStream's gap-free, in-order reader: it notices a missed
//! message and starts again after the last one it gave. If NATS goes away
//! the read fails; it is made again, after the last item handed on, once
//! NATS answers.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use tokio::sync::{Notify, mpsc};

use super::{STREAM, wire};
use crate::chat::Fed;

/// How long to wait before reading again after a failure.
const RETRY: Duration = Duration::from_secs(1);
/// How often a silent reader is checked against the stream's last
/// sequence.
const STALL_CHECK: Duration = Duration::from_secs(2);

/// Reads the stream after `position` until the driver goes away.
pub(super) async fn run(js: jetstream::Context, mut position: u64, fed: mpsc::Sender<Fed>, reconnected: Arc<Notify>) {
    let mut failing = false;
    loop {
        match read(&js, &mut position, &fed, &mut failing, &reconnected).await {
            Ok(()) => return,
            Err(e) => {
                // A reconnect is not a failure worth a retry's wait, and a
                // reader made again after it went quiet is routine.
                if e.to_string().starts_with("reconnected") {
                    continue;
                }
                if e.to_string().starts_with("the stream's reader stalled") {
                    tracing::warn!(target: "udpchat::cluster", position, "the stream's reader went quiet while the stream moved on (a NATS server gone?); reading again");
                    continue;
                }
                if !failing {
                    tracing::error!(target: "udpchat::cluster", error = %e, position, "reading the cluster's stream failed; retrying every second");
                }
                failing = true;
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Hands on the stream's messages after `position`, moving it; Ok when
/// the driver is gone.
async fn read(
    js: &jetstream::Context,
    position: &mut u64,
    fed: &mpsc::Sender<Fed>,
    failing: &mut bool,
    reconnected: &Notify,
) -> Result<(), async_nats::Error> {
    let mut stream = js.get_stream(STREAM).await?;
    let deliver_policy = match *position {
        0 => consumer::DeliverPolicy::All,
        p => consumer::DeliverPolicy::ByStartSequence { start_sequence: p + 1 },
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: wire::ALL.to_owned(),
            deliver_policy,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    if *failing {
        tracing::info!(target: "udpchat::cluster", position = *position, "reading the cluster's stream again");
        *failing = false;
    }
    let mut watchdog = tokio::time::interval(STALL_CHECK);
    watchdog.tick().await;
    let mut progressed = false;
    loop {
        let message = tokio::select! {
            message = messages.next() => message,
            () = reconnected.notified() => return Err("reconnected to NATS; reading again".into()),
            _ = watchdog.tick() => {
                // A reader whose NATS server died (while this node's
                // connection went to another one) stays silent: the
                // stream has moved on without it.
                if !progressed && stream.info().await?.state.last_sequence > *position {
                    return Err("the stream's reader stalled; reading again".into());
                }
                progressed = false;
                continue;
            }
        };
        progressed = true;
        let Some(message) = message else { break };
        let message = message?;
        let seq = message.info()?.stream_sequence;
        if seq <= *position {
            continue;
        }
        *position = seq;
        match wire::read(seq, message.subject.as_str(), message.headers.as_ref(), &message.payload) {
            Ok(item) => {
                if fed.send(item).await.is_err() {
                    return Ok(());
                }
            }
            Err(e) => tracing::warn!(target: "udpchat::cluster", "{e}"),
        }
    }
    Err("the stream's reader ended".into())
}
