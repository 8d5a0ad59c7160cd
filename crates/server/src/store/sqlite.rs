//! The default store: SQLite (bundled, so nothing to install) in WAL mode,
//! in `DATA_DIR/history.sqlite3`. The schema is versioned with
//! `PRAGMA user_version` and migrated forward on start; a file from a
//! newer version is refused rather than misread. A lock file keeps a
//! second server off the same data directory.
//!
//! Sync policy: `Full` fsyncs the write-ahead log on every commit, so an
//! acknowledged line survives power loss; `Normal` leaves the fsync to
//! checkpoints, so it survives a crash of the server process (kill -9)
//! but a power cut may lose the last moments. Group commit (one
//! transaction per batch) keeps `Full` affordable. With `Normal`,
//! checkpoints (the only fsyncs) run on a thread of their own
//! (`checkpoint.rs`), never inside a commit.
//!
//! A running server has two connections of its own: the writer
//! ([`SqliteStore::open`], owned by the store writer thread) and a
//! read-only one ([`SqliteStore::open_reader`], owned by the reader
//! thread), so reads and commits never wait for each other (WAL).

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};
use udpchat_chat::LineKind;

use super::checkpoint::Checkpointer;
use super::{Account, AdminChange, AdminState, Line, MAX_ORIGINS, Retention, Store, StoreError, StoredPrivate};
use crate::private_files::{fix_files, private_dir, private_file};

pub const DB_FILE: &str = "history.sqlite3";
const LOCK_FILE: &str = "udpchat.lock";

/// Each entry moves the schema from version `index` to `index + 1`.
const MIGRATIONS: &[&str] = &[
    // 1: rooms' lines, private messages, accounts.
    "CREATE TABLE lines (
        room TEXT NOT NULL,
        seq INTEGER NOT NULL,
        time_ms INTEGER NOT NULL,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        kind INTEGER NOT NULL,
        PRIMARY KEY (room, seq)
    ) WITHOUT ROWID;
    CREATE TABLE privates (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient TEXT NOT NULL,
        sender TEXT NOT NULL,
        target TEXT NOT NULL,
        text TEXT NOT NULL,
        time_ms INTEGER NOT NULL
    );
    CREATE INDEX privates_by_recipient ON privates (recipient, id);
    CREATE TABLE accounts (
        folded TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        hash TEXT NOT NULL,
        operator INTEGER NOT NULL
    );",
    // 2: a rate per account (bots), issue 10; 0 is the server's rate.
    "ALTER TABLE accounts ADD COLUMN rate INTEGER NOT NULL DEFAULT 0;",
    // 3: per client origin, the highest request id stored (exactly-once
    // resends, docs/PROTOCOL.md §15.7); `stamp` orders them by last use,
    // so only the newest MAX_ORIGINS are kept.
    "CREATE TABLE origins (
        origin INTEGER PRIMARY KEY,
        last_id INTEGER NOT NULL,
        stamp INTEGER NOT NULL
    );
    CREATE INDEX origins_by_stamp ON origins (stamp);",
    // 4: what operators set survives restarts: bans (a folded nickname or
    // an IP address; expires_ms 0 = permanent) and room topics.
    "CREATE TABLE bans (
        target TEXT PRIMARY KEY,
        expires_ms INTEGER NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE topics (
        room TEXT PRIMARY KEY,
        topic TEXT NOT NULL
    );",
    // 5: room settings the operator changed at run time (retention over
    // the config's; NULL = no limit), kept across restarts.
    "CREATE TABLE room_settings (
        room TEXT PRIMARY KEY,
        max_lines INTEGER,
        max_age_ms INTEGER
    );",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncPolicy {
    Full,
    Normal,
}

pub struct SqliteStore {
    /// A server's store with `SyncPolicy::Normal` checkpoints in the
    /// background; the others leave it to SQLite. Declared before `conn` so it stops first and
    /// the writer's connection does the final checkpoint on close.
    checkpointer: Option<Checkpointer>,
    conn: Connection,
    path: PathBuf,
    /// Held for a server's store's life: the lock against a second server.
    _lock: Option<File>,
}

fn sqlite_error(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full,
        _ => StoreError::Sqlite(e.to_string()),
    }
}

/// The data directory, created if needed, owner-only (0700).
fn private_data_dir(data_dir: &Path) -> Result<(), StoreError> {
    private_dir(data_dir)
        .map_err(|e| StoreError::Io(format!("cannot create data directory {}: {e}", data_dir.display())))
}

/// Every file in the data directory owner-only (0600), fixing what an
/// older version or a copy left readable by others.
fn fix_data_files(data_dir: &Path) -> Result<(), StoreError> {
    let fixed = fix_files(data_dir)
        .map_err(|e| StoreError::Io(format!("cannot restrict the files in {}: {e}", data_dir.display())))?;
    for path in fixed {
        tracing::warn!("{} was readable by others; made it owner-only (0600)", path.display());
    }
    Ok(())
}

fn account_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        name: r.get(0)?,
        hash: r.get(1)?,
        operator: r.get::<_, i64>(2)? != 0,
        rate: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
    })
}

fn kind_from(v: i64) -> LineKind {
    LineKind::from_byte(v as u64).unwrap_or(LineKind::Normal)
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `data_dir`. `max_mb` caps
    /// the database size; past it, appends fail with [`StoreError::Full`]
    /// as they would on a full disk.
    pub fn open(data_dir: &Path, sync: SyncPolicy, max_mb: Option<u64>) -> Result<Self, StoreError> {
        private_data_dir(data_dir)?;
        let path = data_dir.join(DB_FILE);
        let lock_path = data_dir.join(LOCK_FILE);
        private_file(&lock_path)
            .map_err(|e| StoreError::ReadOnly { path: lock_path.clone(), detail: e.to_string() })?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::ReadOnly { path: lock_path.clone(), detail: e.to_string() })?;
        if lock.try_lock().is_err() {
            return Err(StoreError::Locked { path, lock: lock_path });
        }
        let mut store = Self::open_file(path, sync, max_mb, Some(lock))?;
        fix_data_files(data_dir)?;
        // Only where commits do not fsync: with `Full` every commit waits
        // for the disk anyway, and a log that keeps growing (see
        // checkpoint.rs) makes each of those fsyncs dearer (file size
        // metadata), while SQLite's own checkpoints reuse the log's space.
        if sync == SyncPolicy::Normal {
            let checkpointer = Checkpointer::start(&store.path)
                .map_err(|detail| StoreError::ReadOnly { path: store.path.clone(), detail })?;
            store.conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(sqlite_error)?;
            store.checkpointer = Some(checkpointer);
        }
        Ok(store)
    }

    /// Opens the store for account administration (`udpchat user`), which
    /// may run beside the server: SQLite's own locking keeps the two apart,
    /// and the server reads accounts at each login.
    pub fn open_admin(data_dir: &Path) -> Result<Self, StoreError> {
        private_data_dir(data_dir)?;
        let store = Self::open_file(data_dir.join(DB_FILE), SyncPolicy::Full, None, None)?;
        fix_data_files(data_dir)?;
        Ok(store)
    }

    /// A second connection to the database of an open server store (at
    /// `path`, see [`SqliteStore::path`]), read-only, for the server's
    /// reader thread: in WAL mode its reads and the writer's commits never
    /// wait for each other, and a read sees every commit that completed
    /// before it began.
    pub fn open_reader(path: &Path) -> Result<Self, StoreError> {
        let detail = |e: rusqlite::Error| StoreError::ReadOnly { path: path.to_owned(), detail: e.to_string() };
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(detail)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite_error)?;
        Ok(Self { checkpointer: None, conn, path: path.to_owned(), _lock: None })
    }

    fn open_file(path: PathBuf, sync: SyncPolicy, max_mb: Option<u64>, lock: Option<File>) -> Result<Self, StoreError> {
        // Created owner-only before SQLite opens it: its -wal and -shm
        // files take this file's mode.
        private_file(&path).map_err(|e| StoreError::ReadOnly { path: path.clone(), detail: e.to_string() })?;
        // Only "not a database" and "corrupt" mean the file is bad; other
        // failures (cannot open, permissions, I/O) must not advise moving a
        // good file away.
        let corrupt = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
                StoreError::Corrupt { path: path.clone(), detail: e.to_string() }
            }
            _ => StoreError::ReadOnly { path: path.clone(), detail: e.to_string() },
        };
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)
                .map_err(|e| StoreError::ReadOnly { path: path.clone(), detail: e.to_string() })?;
        // Reading the header is where a file that is not a database fails.
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(corrupt)?;
        // SQLite quietly falls back to read-only when it cannot write.
        if conn.is_readonly(rusqlite::MAIN_DB).unwrap_or(true) {
            let detail = "opened read-only: the file or its directory is not writable".to_owned();
            return Err(StoreError::ReadOnly { path, detail });
        }
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::NewerSchema { path, found: version, known });
        }
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(corrupt)?;
        if check != "ok" {
            return Err(StoreError::Corrupt { path, detail: check });
        }
        let read_only = |e: rusqlite::Error| StoreError::ReadOnly { path: path.clone(), detail: e.to_string() };
        conn.pragma_update(None, "journal_mode", "WAL").map_err(read_only)?;
        let sync_value = match sync {
            SyncPolicy::Full => "FULL",
            SyncPolicy::Normal => "NORMAL",
        };
        conn.pragma_update(None, "synchronous", sync_value).map_err(sqlite_error)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(sqlite_error)?;
        if let Some(mb) = max_mb {
            let page_size: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0)).map_err(sqlite_error)?;
            let pages = (mb as i64 * 1024 * 1024 / page_size).max(1);
            conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |_| Ok(())).map_err(sqlite_error)?;
        }
        let mut store = Self { checkpointer: None, conn, path, _lock: lock };
        store.migrate(version)?;
        Ok(store)
    }

    fn migrate(&mut self, from: i64) -> Result<(), StoreError> {
        let path = self.path.clone();
        let read_only = |e: rusqlite::Error| StoreError::ReadOnly { path: path.clone(), detail: e.to_string() };
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(from as usize) {
            let tx = self.conn.transaction().map_err(read_only)?;
            tx.execute_batch(sql).map_err(read_only)?;
            tx.pragma_update(None, "user_version", i as i64 + 1).map_err(read_only)?;
            tx.commit().map_err(read_only)?;
        }
        // A read-only file opens and reads fine; find out now, not on the
        // first line someone sends.
        self.conn.execute_batch("BEGIN IMMEDIATE; COMMIT;").map_err(read_only)?;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// After every write: the checkpoint thread takes it from here, unless
    /// the log has outgrown its bound and the writer must catch up itself.
    fn wrote(&self) {
        if let Some(c) = &self.checkpointer
            && c.wrote()
        {
            match self.conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                Ok(()) => c.caught_up(),
                Err(e) => tracing::warn!("WAL checkpoint failed: {e}"),
            }
        }
    }

    fn line_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Line> {
        Ok(Line {
            room: row.get(0)?,
            seq: row.get::<_, i64>(1)? as u64,
            time_ms: row.get::<_, i64>(2)? as u64,
            from: row.get(3)?,
            text: row.get(4)?,
            kind: kind_from(row.get(5)?),
            history: false,
        })
    }
}

impl Store for SqliteStore {
    fn append<'a>(
        &mut self,
        lines: &mut dyn Iterator<Item = &'a Line>,
        privates: &mut dyn Iterator<Item = &'a mut StoredPrivate>,
        origins: &[(u64, u64)],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(sqlite_error)?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO lines (room, seq, time_ms, sender, text, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sqlite_error)?;
            for l in lines {
                insert
                    .execute(params![l.room, l.seq as i64, l.time_ms as i64, l.from, l.text, l.kind as i64])
                    .map_err(sqlite_error)?;
            }
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO privates (recipient, sender, target, text, time_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(sqlite_error)?;
            let mut insert_numbered = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO privates (id, recipient, sender, target, text, time_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(sqlite_error)?;
            for p in privates {
                // Numbered already (by a cluster's stream): kept as it is,
                // once however often the feed brings it.
                if p.id != 0 {
                    insert_numbered
                        .execute(params![p.id as i64, p.recipient, p.from, p.to, p.text, p.time_ms as i64])
                        .map_err(sqlite_error)?;
                    continue;
                }
                insert.execute(params![p.recipient, p.from, p.to, p.text, p.time_ms as i64]).map_err(sqlite_error)?;
                p.id = tx.last_insert_rowid() as u64;
            }
            if !origins.is_empty() {
                let mut mark = tx
                    .prepare_cached(
                        "INSERT INTO origins (origin, last_id, stamp) \
                         VALUES (?1, ?2, (SELECT IFNULL(MAX(stamp), 0) + 1 FROM origins)) \
                         ON CONFLICT (origin) DO UPDATE SET last_id = MAX(last_id, ?2), stamp = excluded.stamp",
                    )
                    .map_err(sqlite_error)?;
                for &(origin, id) in origins {
                    mark.execute(params![origin as i64, id as i64]).map_err(sqlite_error)?;
                }
                // Every mark takes a new stamp, so the newest MAX_ORIGINS
                // are the ones within that many of the last.
                tx.execute(
                    "DELETE FROM origins WHERE stamp <= (SELECT MAX(stamp) FROM origins) - ?1",
                    [MAX_ORIGINS as i64],
                )
                .map_err(sqlite_error)?;
            }
        }
        tx.commit().map_err(sqlite_error)?;
        self.wrote();
        Ok(())
    }

    fn apply(&mut self, change: &AdminChange) -> Result<(), StoreError> {
        match change {
            AdminChange::Ban { target, expires_ms, reason } => self.conn.execute(
                "INSERT INTO bans (target, expires_ms, reason) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (target) DO UPDATE SET expires_ms = ?2, reason = ?3",
                params![target, *expires_ms as i64, reason],
            ),
            AdminChange::Unban { target } => self.conn.execute("DELETE FROM bans WHERE target = ?1", [target]),
            AdminChange::Topic { room, topic } if topic.is_empty() => {
                self.conn.execute("DELETE FROM topics WHERE room = ?1", [room])
            }
            AdminChange::Topic { room, topic } => self.conn.execute(
                "INSERT INTO topics (room, topic) VALUES (?1, ?2) ON CONFLICT (room) DO UPDATE SET topic = ?2",
                params![room, topic],
            ),
            AdminChange::AccountRate { account, rate } => {
                self.conn.execute("UPDATE accounts SET rate = ?2 WHERE folded = ?1", params![account, rate])
            }
            AdminChange::Retention { room, retention: None } => {
                self.conn.execute("DELETE FROM room_settings WHERE room = ?1", [room])
            }
            AdminChange::Retention { room, retention: Some(r) } => self.conn.execute(
                "INSERT INTO room_settings (room, max_lines, max_age_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (room) DO UPDATE SET max_lines = ?2, max_age_ms = ?3",
                params![room, r.max_lines.map(|n| n as i64), r.max_age_ms.map(|n| n as i64)],
            ),
        }
        .map_err(sqlite_error)?;
        self.wrote();
        Ok(())
    }

    fn admin_state(&self) -> Result<AdminState, StoreError> {
        let mut q = self.conn.prepare("SELECT target, expires_ms FROM bans ORDER BY target").map_err(sqlite_error)?;
        let bans = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
            .map_err(sqlite_error)?
            .collect::<Result<_, _>>()
            .map_err(sqlite_error)?;
        let mut q = self.conn.prepare("SELECT room, topic FROM topics ORDER BY room").map_err(sqlite_error)?;
        let topics = q
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(sqlite_error)?
            .collect::<Result<_, _>>()
            .map_err(sqlite_error)?;
        let mut q = self
            .conn
            .prepare("SELECT room, max_lines, max_age_ms FROM room_settings ORDER BY room")
            .map_err(sqlite_error)?;
        let retention = q
            .query_map([], |r| {
                let max_lines = r.get::<_, Option<i64>>(1)?.map(|n| n as u64);
                let max_age_ms = r.get::<_, Option<i64>>(2)?.map(|n| n as u64);
                Ok((r.get::<_, String>(0)?, Retention { max_lines, max_age_ms }))
            })
            .map_err(sqlite_error)?
            .collect::<Result<_, _>>()
            .map_err(sqlite_error)?;
        Ok(AdminState { bans, topics, retention })
    }

    fn origins(&self) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut q = self.conn.prepare("SELECT origin, last_id FROM origins ORDER BY stamp").map_err(sqlite_error)?;
        let rows =
            q.query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))).map_err(sqlite_error)?;
        rows.collect::<Result<_, _>>().map_err(sqlite_error)
    }

    fn room_heads(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut q = self.conn.prepare("SELECT room, MAX(seq) FROM lines GROUP BY room").map_err(sqlite_error)?;
        let rows =
            q.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))).map_err(sqlite_error)?;
        rows.collect::<Result<_, _>>().map_err(sqlite_error)
    }

    fn lines_after(&self, room: &str, after: u64, limit: usize) -> Result<Vec<Line>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT room, seq, time_ms, sender, text, kind FROM lines WHERE room = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )
            .map_err(sqlite_error)?;
        let rows = q.query_map(params![room, after as i64, limit as i64], Self::line_from_row).map_err(sqlite_error)?;
        rows.collect::<Result<_, _>>().map_err(sqlite_error)
    }

    fn lines_before(&self, room: &str, before: u64, limit: usize) -> Result<Vec<Line>, StoreError> {
        let before = if before == 0 { i64::MAX } else { before as i64 };
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT room, seq, time_ms, sender, text, kind FROM lines WHERE room = ?1 AND seq < ?2 \
                 ORDER BY seq DESC LIMIT ?3",
            )
            .map_err(sqlite_error)?;
        let rows = q.query_map(params![room, before, limit as i64], Self::line_from_row).map_err(sqlite_error)?;
        let mut lines: Vec<Line> = rows.collect::<Result<_, _>>().map_err(sqlite_error)?;
        lines.reverse();
        Ok(lines)
    }

    fn privates_after(&self, recipient: &str, after: u64, limit: usize) -> Result<Vec<StoredPrivate>, StoreError> {
        let mut q = self
            .conn
            .prepare_cached(
                "SELECT id, recipient, sender, target, text, time_ms FROM privates \
                 WHERE recipient = ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )
            .map_err(sqlite_error)?;
        let rows = q
            .query_map(params![recipient, after as i64, limit as i64], |r| {
                Ok(StoredPrivate {
                    id: r.get::<_, i64>(0)? as u64,
                    recipient: r.get(1)?,
                    from: r.get(2)?,
                    to: r.get(3)?,
                    text: r.get(4)?,
                    time_ms: r.get::<_, i64>(5)? as u64,
                })
            })
            .map_err(sqlite_error)?;
        rows.collect::<Result<_, _>>().map_err(sqlite_error)
    }

    fn account(&self, folded: &str) -> Result<Option<Account>, StoreError> {
        self.conn
            .query_row("SELECT name, hash, operator, rate FROM accounts WHERE folded = ?1", [folded], account_from_row)
            .optional()
            .map_err(sqlite_error)
    }

    fn put_account(&mut self, folded: &str, a: &Account) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO accounts (folded, name, hash, operator, rate) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (folded) DO UPDATE SET name = ?2, hash = ?3, operator = ?4, rate = ?5",
                params![folded, a.name, a.hash, i64::from(a.operator), i64::from(a.rate)],
            )
            .map_err(sqlite_error)?;
        self.wrote();
        Ok(())
    }

    fn delete_account(&mut self, folded: &str) -> Result<bool, StoreError> {
        let n = self.conn.execute("DELETE FROM accounts WHERE folded = ?1", [folded]).map_err(sqlite_error)?;
        self.wrote();
        Ok(n > 0)
    }

    fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let mut q = self
            .conn
            .prepare("SELECT name, hash, operator, rate FROM accounts ORDER BY folded")
            .map_err(sqlite_error)?;
        let rows = q.query_map([], account_from_row).map_err(sqlite_error)?;
        rows.collect::<Result<_, _>>().map_err(sqlite_error)
    }

    fn prune(&mut self, room: &str, retention: Retention, now_ms: u64, batch: usize) -> Result<usize, StoreError> {
        // Runs on the writer thread between commits, so every query here
        // walks the primary key from the room's oldest line and looks at no
        // more than `batch` rows (a commit waits for no more): keeping the newest N lines is keeping the sequence numbers
        // above head - N, and lines age in sequence order, so once the
        // oldest rows are kept, so is everything after them.
        let keep = retention.max_lines.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX));
        let min_time = retention.max_age_ms.map_or(i64::MIN, |age| now_ms.saturating_sub(age) as i64);
        let n = self
            .conn
            .execute(
                // The newest line always stays: it carries the room's
                // numbering across restarts (clients resume from it).
                "WITH head AS (SELECT MAX(seq) AS seq FROM lines WHERE room = ?1),
                 oldest AS (SELECT seq, time_ms FROM lines WHERE room = ?1 ORDER BY seq LIMIT ?4)
                 DELETE FROM lines WHERE room = ?1 AND seq IN (
                     SELECT oldest.seq FROM oldest, head WHERE oldest.seq < head.seq
                     AND (oldest.seq <= head.seq - ?2 OR oldest.time_ms < ?3))",
                params![room, keep, min_time, batch as i64],
            )
            .map_err(sqlite_error)?;
        if n > 0 {
            self.wrote();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(room: &str, seq: u64, time_ms: u64) -> Line {
        Line {
            room: room.into(),
            seq,
            time_ms,
            from: "ana".into(),
            text: format!("line {seq}"),
            kind: LineKind::Normal,
            history: false,
        }
    }

    #[test]
    fn lines_round_trip_and_page() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path(), SyncPolicy::Normal, None).unwrap();
        let lines: Vec<_> = (1..=10).map(|i| line("lobby", i, i * 1000)).collect();
        s.append(&mut lines.iter(), &mut std::iter::empty(), &[]).unwrap();
        assert_eq!(s.room_heads().unwrap(), vec![("lobby".to_owned(), 10)]);
        assert_eq!(s.lines_after("lobby", 7, 100).unwrap(), lines[7..].to_vec());
        assert_eq!(s.lines_before("lobby", 0, 3).unwrap(), lines[7..].to_vec());
        assert_eq!(s.lines_before("lobby", 8, 3).unwrap(), lines[4..7].to_vec());
        // A duplicate sequence number fails the whole batch.
        assert!(
            s.append(&mut [line("lobby", 11, 1), line("lobby", 5, 1)].iter(), &mut std::iter::empty(), &[]).is_err()
        );
        assert_eq!(s.room_heads().unwrap(), vec![("lobby".to_owned(), 10)]);
    }

    #[test]
    fn the_reader_sees_every_completed_commit_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path(), SyncPolicy::Normal, None).unwrap();
        let mut reader = SqliteStore::open_reader(s.path()).unwrap();
        assert!(reader.lines_after("lobby", 0, 10).unwrap().is_empty());
        let lines: Vec<_> = (1..=3).map(|i| line("lobby", i, i)).collect();
        s.append(&mut lines.iter(), &mut std::iter::empty(), &[]).unwrap();
        assert_eq!(reader.lines_after("lobby", 0, 10).unwrap(), lines);
        assert!(reader.append(&mut [line("lobby", 4, 4)].iter(), &mut std::iter::empty(), &[]).is_err());
        let a = Account { name: "Ana".into(), hash: "h".into(), operator: false, rate: 0 };
        s.put_account("ana", &a).unwrap();
        assert_eq!(reader.account("ana").unwrap(), Some(a));
    }

    #[test]
    fn checkpoints_happen_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path(), SyncPolicy::Normal, None).unwrap();
        let db_len = || std::fs::metadata(dir.path().join(DB_FILE)).unwrap().len();
        let before = db_len();
        let text = "x".repeat(200);
        let lines: Vec<_> = (1..=2000).map(|i| Line { text: text.clone(), ..line("lobby", i, i) }).collect();
        s.append(&mut lines.iter(), &mut std::iter::empty(), &[]).unwrap();
        // Commits go to the log only (automatic checkpoints are off); the
        // database file grows once the checkpoint thread has copied them.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while db_len() <= before {
            assert!(std::time::Instant::now() < deadline, "no checkpoint within 20 s");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert_eq!(s.lines_after("lobby", 1990, 100).unwrap().len(), 10);
        drop(s);
        // The last connection to close checkpoints everything and removes the log.
        assert!(!dir.path().join(format!("{DB_FILE}-wal")).exists());
        let s = SqliteStore::open(dir.path(), SyncPolicy::Normal, None).unwrap();
        assert_eq!(s.room_heads().unwrap(), vec![("lobby".to_owned(), 2000)]);
    }

    #[test]
    fn privates_and_accounts() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path(), SyncPolicy::Full, None).unwrap();
        let mut p = [StoredPrivate {
            id: 0,
            recipient: "bob".into(),
            from: "ana".into(),
            to: "Bob".into(),
            text: "hi".into(),
            time_ms: 1,
        }];
        s.append(&mut std::iter::empty(), &mut p.iter_mut(), &[]).unwrap();
        assert!(p[0].id > 0);
        assert_eq!(s.privates_after("bob", 0, 10).unwrap(), p.to_vec());
        assert!(s.privates_after("bob", p[0].id, 10).unwrap().is_empty());
        let a = Account { name: "Ana".into(), hash: "h".into(), operator: true, rate: 50 };
        s.put_account("ana", &a).unwrap();
        assert_eq!(s.account("ana").unwrap(), Some(a));
        assert!(s.delete_account("ana").unwrap());
        assert_eq!(s.account("ana").unwrap(), None);
    }

    #[test]
    fn origin_marks_are_stored_with_their_lines_kept_bounded_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path(), SyncPolicy::Full, None).unwrap();
        let big = u64::MAX - 7; // stored as a negative INTEGER, read back whole
        s.append(&mut [line("lobby", 1, 1)].iter(), &mut std::iter::empty(), &[(big, 3), (9, 1)]).unwrap();
        s.append(&mut [line("lobby", 2, 2)].iter(), &mut std::iter::empty(), &[(9, 4)]).unwrap();
        // A failed commit marks nothing.
        assert!(s.append(&mut [line("lobby", 2, 2)].iter(), &mut std::iter::empty(), &[(9, 8)]).is_err());
        assert_eq!(s.origins().unwrap(), vec![(big, 3), (9, 4)]);
        drop(s);
        let mut s = SqliteStore::open(dir.path(), SyncPolicy::Full, None).unwrap();
        assert_eq!(s.origins().unwrap(), vec![(big, 3), (9, 4)]);
        // Only the newest MAX_ORIGINS are kept.
        let marks: Vec<(u64, u64)> = (100..100 + MAX_ORIGINS as u64).map(|o| (o, 1)).collect();
        s.append(&mut std::iter::empty(), &mut std::iter::empty(), &marks).unwrap();
        let kept = s.origins().unwrap();
        assert_eq!(kept.len(), MAX_ORIGINS);
        assert!(!kept.iter().any(|&(o, _)| o == 9 || o == big));
    }

    #[test]
    fn bans_topics_rates_and_room_retention_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path(), SyncPolicy::Full, None).unwrap();
        let ban = |target: &str, expires_ms| AdminChange::Ban { target: target.into(), expires_ms, reason: "r".into() };
        s.apply(&ban("eve", 0)).unwrap();
        s.apply(&ban("10.0.0.9", 5000)).unwrap();
        s.apply(&ban("mallory", 0)).unwrap();
        s.apply(&AdminChange::Unban { target: "mallory".into() }).unwrap();
        s.apply(&AdminChange::Topic { room: "lobby".into(), topic: "hello".into() }).unwrap();
        s.apply(&AdminChange::Topic { room: "rust".into(), topic: "x".into() }).unwrap();
        s.apply(&AdminChange::Topic { room: "rust".into(), topic: String::new() }).unwrap();
        let keep = |max_lines, max_age_ms| Some(Retention { max_lines, max_age_ms });
        let retention = |room: &str, retention| AdminChange::Retention { room: room.into(), retention };
        s.apply(&retention("dev", keep(Some(100), None))).unwrap();
        s.apply(&retention("ops", keep(None, Some(86_400_000)))).unwrap();
        s.apply(&retention("tmp", keep(Some(5), Some(60_000)))).unwrap();
        s.apply(&retention("tmp", None)).unwrap();
        s.put_account("bot", &Account { name: "Bot".into(), hash: "h".into(), operator: false, rate: 0 }).unwrap();
        s.apply(&AdminChange::AccountRate { account: "bot".into(), rate: 40 }).unwrap();
        // No such account: nothing to change.
        s.apply(&AdminChange::AccountRate { account: "nobody".into(), rate: 40 }).unwrap();
        drop(s);
        let s = SqliteStore::open(dir.path(), SyncPolicy::Full, None).unwrap();
        let state = s.admin_state().unwrap();
        assert_eq!(state.bans, vec![("10.0.0.9".to_owned(), 5000), ("eve".to_owned(), 0)]);
        assert_eq!(state.topics, vec![("lobby".to_owned(), "hello".to_owned())]);
        assert_eq!(
            state.retention,
            vec![
                ("dev".to_owned(), Retention { max_lines: Some(100), max_age_ms: None }),
                ("ops".to_owned(), Retention { max_lines: None, max_age_ms: Some(86_400_000) }),
            ]
        );
        assert_eq!(s.account("bot").unwrap().map(|a| a.rate), Some(40));
        assert_eq!(s.account("nobody").unwrap(), None);
    }

    #[test]
    fn retention_by_count_and_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path(), SyncPolicy::Normal, None).unwrap();
        let lines: Vec<_> = (1..=100).map(|i| line("r", i, i * 1000)).collect();
        s.append(&mut lines.iter(), &mut std::iter::empty(), &[]).unwrap();
        let by_count = Retention { max_lines: Some(30), max_age_ms: None };
        let mut total = 0;
        loop {
            let n = s.prune("r", by_count, 0, 25).unwrap();
            total += n;
            if n == 0 {
                break;
            }
        }
        assert_eq!(total, 70);
        assert_eq!(s.lines_after("r", 0, 1000).unwrap().first().map(|l| l.seq), Some(71));
        // Older than 10 s at t = 90 s: lines with time < 80 000 go.
        let by_age = Retention { max_lines: None, max_age_ms: Some(10_000) };
        assert_eq!(s.prune("r", by_age, 90_000, 1000).unwrap(), 9);
        assert_eq!(s.lines_after("r", 0, 1000).unwrap().first().map(|l| l.seq), Some(80));
    }

    #[test]
    fn bad_files_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(DB_FILE), vec![0x42; 8192]).unwrap();
        let err = SqliteStore::open(dir.path(), SyncPolicy::Full, None).err().unwrap();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains(DB_FILE));
        // The bad file is still there: nothing was reset.
        assert_eq!(std::fs::read(dir.path().join(DB_FILE)).unwrap(), vec![0x42; 8192]);

        let dir = tempfile::tempdir().unwrap();
        let first = SqliteStore::open(dir.path(), SyncPolicy::Full, None).unwrap();
        let err = SqliteStore::open(dir.path(), SyncPolicy::Full, None).err().unwrap();
        assert!(matches!(err, StoreError::Locked { .. }), "{err}");
        drop(first);
        let s = SqliteStore::open(dir.path(), SyncPolicy::Full, None).unwrap();
        s.conn.pragma_update(None, "user_version", 99).unwrap();
        drop(s);
        let err = SqliteStore::open(dir.path(), SyncPolicy::Full, None).err().unwrap();
        assert!(matches!(err, StoreError::NewerSchema { found: 99, .. }), "{err}");
    }

    #[test]
    fn full_database_refuses_appends_and_keeps_working() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SqliteStore::open(dir.path(), SyncPolicy::Normal, Some(1)).unwrap();
        let big = "x".repeat(4000);
        let mut seq = 0;
        let err = loop {
            seq += 1;
            let l = Line { text: big.clone(), ..line("r", seq, 0) };
            if let Err(e) = s.append(&mut [l].iter(), &mut std::iter::empty(), &[]) {
                break e;
            }
            assert!(seq < 10_000);
        };
        assert!(matches!(err, StoreError::Full), "{err}");
        // What was stored before is intact and readable.
        assert_eq!(s.room_heads().unwrap(), vec![("r".to_owned(), seq - 1)]);
    }
}
