//! The threads that run the chat core's store requests, so that the event
//! loop never waits for SQLite or an fsync (`chat/storage.rs` has the
//! requests and why). Two plain threads, each owning its own store:
//!
//! * the **writer** owns the server's store (the one connection that
//!   writes) and runs commits and retention in the order they were asked
//!   for;
//! * the **reader** owns a second, read-only connection and runs history,
//!   catch-up and account reads, so a slow read never holds up a commit
//!   and a commit's fsync never holds up a read (SQLite's WAL lets both
//!   run at once; a read sees every commit that completed before it).
//!
//! Each completion goes back on one channel that the driver's loop selects
//! on. The channels are unbounded, but never hold more than the chat core
//! lets be in flight (one commit, one prune, `MAX_READS` reads).
//!
//! Dropping [`StoreThreads`] closes the request channels; each thread
//! finishes what it has, drops its store (the writer's last close runs the
//! final WAL checkpoint) and is joined.

use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc::UnboundedSender;

use crate::chat::{StoreCompletion, StoreRequest};
use crate::store::Store;

struct Worker {
    requests: Option<mpsc::Sender<StoreRequest>>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start(
        name: &str,
        mut store: Box<dyn Store>,
        completions: UnboundedSender<StoreCompletion>,
        commit_latency: Option<metrics::Histogram>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<StoreRequest>();
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn(move || {
            for request in rx {
                let timed = commit_latency.as_ref().filter(|_| request.is_commit()).map(|h| (h, Instant::now()));
                let completion = request.run(&mut *store);
                if let Some((histogram, start)) = timed {
                    histogram.record(start.elapsed().as_secs_f64());
                }
                // The loop is gone (shutting down): nobody wants the rest.
                if completions.send(completion).is_err() {
                    return;
                }
            }
        })?;
        Ok(Self { requests: Some(tx), thread: Some(thread) })
    }

    fn submit(&self, request: StoreRequest) {
        // Only fails if the thread panicked; the request is then lost and
        // its completion never comes (the panic is in the log).
        if let Some(tx) = &self.requests {
            let _ = tx.send(request);
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.requests.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The writer and the reader.
pub struct StoreThreads {
    /// Stops first, so that the writer's connection is the last to close
    /// and checkpoints the log away.
    reader: Worker,
    writer: Worker,
}

impl StoreThreads {
    /// Starts the threads: `writer` is the server's store, `reader` a
    /// read-only connection to the same data (or any store that sees the
    /// writer's commits once they complete). With `commit_latency`, the
    /// writer records how long each group commit took (metrics.rs).
    pub fn start(
        writer: Box<dyn Store>,
        reader: Box<dyn Store>,
        completions: UnboundedSender<StoreCompletion>,
        commit_latency: Option<metrics::Histogram>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            reader: Worker::start("store-reader", reader, completions.clone(), None)?,
            writer: Worker::start("store-writer", writer, completions, commit_latency)?,
        })
    }

    /// Hands a request to the thread that runs its kind.
    pub fn submit(&self, request: StoreRequest) {
        if request.writes() { self.writer.submit(request) } else { self.reader.submit(request) }
    }
}
