//! WAL checkpoints off the commit path. SQLite's automatic checkpoint runs
//! inside the commit that crosses its threshold, and a checkpoint fsyncs
//! the log and then the database: when commits ran on the event loop that
//! stalled every session for as long as the disk took (the largest part
//! of the p99 latency at 2,000 lines/s, see docs/PERFORMANCE.md); on the
//! writer thread (`crate::store_threads`) it would still hold up every
//! line waiting for the next commit.
//!
//! So the writing connection turns automatic checkpoints off and this
//! thread, with its own connection to the same file, runs a PASSIVE
//! checkpoint (which never blocks the writer) a short while after each
//! write. Commits stay as durable as the sync policy says: the checkpoint
//! only moves committed pages from the log into the database.
//!
//! Used with `history_sync = "normal"` only, where checkpoints are the
//! only fsyncs (with `full` every commit waits for the disk anyway).
//!
//! Bound: the log only starts over once a checkpoint has caught up with
//! it completely at the moment a write begins, which a steady stream of
//! commits can keep from happening for a long while; the log file then
//! grows (each checkpoint still moves its pages into the database). If it
//! grows past [`MAX_LOG_PAGES`] the writer checkpoints itself (blocking,
//! as SQLite's own would, but with almost everything already copied) and
//! the log starts over.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How long after a write the checkpoint runs: long enough to gather a
/// busy second's commits into one pair of fsyncs.
const DELAY: Duration = Duration::from_millis(500);
/// Log pages (4 KiB each by default, so 64 MiB) past which the writer
/// checkpoints itself.
pub const MAX_LOG_PAGES: i64 = 16_384;

/// What the writer and the checkpoint thread share.
#[derive(Default)]
struct Shared {
    /// Set by the writer after a commit, cleared by the thread.
    dirty: AtomicBool,
    /// Pages in the log after the thread's last checkpoint.
    log_pages: AtomicI64,
}

/// The checkpoint thread. Dropping it stops the thread (and waits for a
/// checkpoint in progress), so the writer's connection, closed after it,
/// is the last and does the final checkpoint.
pub struct Checkpointer {
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on the database at `path`. Fails only if the
    /// thread's connection cannot be opened or the thread not spawned.
    pub fn start(path: &Path) -> Result<Self, String> {
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(|e| e.to_string())?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared::default());
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("wal-checkpoint".into())
            .spawn({
                let shared = shared.clone();
                move || run(conn, &shared, &stopped)
            })
            .map_err(|e| e.to_string())?;
        Ok(Self { shared, stop: Some(stop), thread: Some(thread) })
    }

    /// Called by the writer after each commit. Returns whether the log has
    /// outgrown [`MAX_LOG_PAGES`], so the writer should checkpoint itself.
    pub fn wrote(&self) -> bool {
        self.shared.dirty.store(true, Ordering::Relaxed);
        self.shared.log_pages.load(Ordering::Relaxed) > MAX_LOG_PAGES
    }

    /// The writer checkpointed the whole log itself.
    pub fn caught_up(&self) {
        self.shared.log_pages.store(0, Ordering::Relaxed);
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: Connection, shared: &Shared, stopped: &mpsc::Receiver<()>) {
    loop {
        match stopped.recv_timeout(DELAY) {
            Err(RecvTimeoutError::Timeout) => {}
            // The store is closing (or, never sent, the sender dropped).
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        if !shared.dirty.swap(false, Ordering::Relaxed) {
            continue;
        }
        // Returns (busy, pages in the log, pages checkpointed).
        match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))) {
            Ok((log, done)) => {
                shared.log_pages.store(log, Ordering::Relaxed);
                if done < log {
                    // Writes came in during the checkpoint: go again.
                    shared.dirty.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::warn!("background WAL checkpoint failed: {e}");
                shared.dirty.store(true, Ordering::Relaxed);
            }
        }
    }
}
