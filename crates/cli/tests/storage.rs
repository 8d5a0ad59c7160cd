//! End-to-end: history storage that goes wrong. At start (a corrupt file,
//! one from a newer udpchat, a second server on the same data, a file or
//! directory that cannot be written) the server refuses to run with a
//! message naming the file and what to do, without a panic and without
//! touching the file. While running, a full database refuses new lines
//! with StorageFailed and keeps serving, losing nothing it acknowledged.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{ServerProc, expect, login, run_bounded, stored_lines};
use udpchat_client::chat::{ClientMsg, ErrorCode, ServerMsg};
use udpchat_client::{ClientEvent, Input};

const DB: &str = "history.sqlite3";

/// Starts `udpchat server` on `data_dir` and expects it to refuse: a
/// non-zero exit within a few seconds, and no panic. Returns its stderr.
fn refused_start(data_dir: &Path) -> String {
    let mut cmd = Command::new(common::BIN);
    cmd.arg("server")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", "127.0.0.1:0", "--console", "off"])
        .env_remove("UDPCHAT_SERVER_PASSWORD");
    // A server that starts would run until killed: a few seconds is ample
    // for one that refuses.
    let out = run_bounded(&mut cmd, Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "the server panicked: {stderr}");
    assert!(!out.status.success(), "the server exited successfully: {stderr}");
    stderr
}

/// A data directory with a history database made by a real server run
/// (and some lines in it), the server stopped.
async fn used_data_dir() -> tempfile::TempDir {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    ana.say("lobby", "kept").await;
    expect(&mut ana_ev, "the ack", |e| matches!(e, ClientEvent::Delivered { .. })).await;
    server.kill()
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("data").join(DB)
}

#[test]
fn a_corrupt_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let garbage: Vec<u8> = (0..16_384u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(data.join(DB), &garbage).unwrap();
    let err = refused_start(&data);
    assert!(err.contains(&data.join(DB).display().to_string()), "names the file: {err}");
    assert!(err.contains("corrupt") && err.contains("backup"), "says what to do: {err}");
    assert_eq!(std::fs::read(data.join(DB)).unwrap(), garbage, "the file was changed");
}

#[tokio::test]
async fn a_database_from_a_newer_udpchat_is_refused_and_left_alone() {
    let dir = used_data_dir().await;
    let db = db_path(&dir);
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = std::fs::read(&db).unwrap();
    let err = refused_start(&dir.path().join("data"));
    assert!(err.contains(&db.display().to_string()), "names the file: {err}");
    assert!(err.contains("newer") && err.contains("99") && err.contains("upgrade"), "says what to do: {err}");
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file was changed");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 99);
}

#[tokio::test]
async fn a_second_server_on_the_same_data_is_refused() {
    let server = ServerProc::start("", &["--console", "off"], &[]);
    let err = refused_start(&server.data_dir());
    assert!(err.contains("another udpchat server") && err.contains("udpchat.lock"), "{err}");
    assert!(err.contains(&server.data_dir().join(DB).display().to_string()), "names the file: {err}");
    // The first one is undisturbed.
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    ana.say("lobby", "still here").await;
    expect(&mut ana_ev, "the ack", |e| matches!(e, ClientEvent::Delivered { .. })).await;
    let dir = server.kill();
    let kept = stored_lines(&dir.path().join("data"), "lobby");
    assert_eq!(kept.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(), ["still here"]);
}

/// Runs a setup command for a case; false (with a note) when the
/// environment does not allow it, so the caller skips rather than fails.
fn try_run(what: &str, program: &str, args: &[&std::ffi::OsStr]) -> bool {
    match Command::new(program).args(args).output() {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            println!("skipped: {what} failed: {}", String::from_utf8_lossy(&o.stderr).trim());
            false
        }
        Err(e) => {
            println!("skipped: cannot run {program} ({e})");
            false
        }
    }
}

/// Makes `path` immutable (`chattr +i`, which stops even root, where a
/// chmod would not) until dropped.
struct Immutable(PathBuf);

impl Immutable {
    fn set(path: &Path) -> Option<Self> {
        try_run("chattr +i", "chattr", &["+i".as_ref(), path.as_os_str()]).then(|| Self(path.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        // Or the temporary directory could not be removed.
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// Mounts `dir` over itself read-only until dropped: a read-only file
/// system, as a full or failing disk remounted by the kernel would be.
struct ReadOnlyMount(PathBuf);

impl ReadOnlyMount {
    fn set(dir: &Path) -> Option<Self> {
        let d = dir.as_os_str();
        if !try_run("mount --bind", "mount", &["--bind".as_ref(), d, d]) {
            return None;
        }
        let mounted = Self(dir.to_owned());
        try_run("remount read-only", "mount", &["-o".as_ref(), "remount,bind,ro".as_ref(), d]).then_some(mounted)
    }
}

impl Drop for ReadOnlyMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Says it cannot write the history, names the file or directory, and
/// points at permissions (not at restoring a backup of a good file).
fn assert_cannot_write(err: &str, names: &Path) {
    assert!(err.contains(&names.display().to_string()), "names {}: {err}", names.display());
    assert!(err.contains("cannot write") && err.contains("permissions"), "says what to do: {err}");
    assert!(!err.contains("corrupt"), "calls a good file corrupt: {err}");
}

/// Stops SQLite cleanly on `db`, so that no -wal or -shm file is left
/// (a kill -9 leaves them): opening the database must then create them.
fn checkpoint(db: &Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let _: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    drop(conn);
    for suffix in ["-wal", "-shm"] {
        let side = format!("{}{suffix}", db.display());
        assert!(!Path::new(&side).exists(), "{side} is still there");
    }
}

#[tokio::test]
async fn a_read_only_file_system_is_refused_at_start() {
    let dir = used_data_dir().await;
    let (data, db) = (dir.path().join("data"), db_path(&dir));
    checkpoint(&db);
    let before = std::fs::read(&db).unwrap();
    let Some(_mount) = ReadOnlyMount::set(&data) else { return };
    let err = refused_start(&data);
    assert_cannot_write(&err, &data);
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file was changed");
}

#[tokio::test]
async fn a_read_only_database_is_refused_at_start() {
    let dir = used_data_dir().await;
    let db = db_path(&dir);
    let Some(_guard) = Immutable::set(&db) else { return };
    let before = std::fs::read(&db).unwrap();
    let err = refused_start(&dir.path().join("data"));
    assert_cannot_write(&err, &db);
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file was changed");
}

/// The database itself is writable but no file can be created beside it
/// (the -wal and -shm files of WAL mode), as when the directory belongs to
/// another user.
#[tokio::test]
async fn a_data_directory_that_cannot_be_written_is_not_called_corrupt() {
    let dir = used_data_dir().await;
    let (data, db) = (dir.path().join("data"), db_path(&dir));
    checkpoint(&db);
    let Some(_guard) = Immutable::set(&data) else { return };
    let before = std::fs::read(&db).unwrap();
    let err = refused_start(&data);
    assert_cannot_write(&err, &data);
    assert_eq!(std::fs::read(&db).unwrap(), before, "the file was changed");
}

/// A database capped at 1 MiB fills up: the line that does not fit gets
/// StorageFailed and reaches nobody, everything acknowledged before is
/// stored and was delivered, and the server keeps answering.
#[tokio::test]
async fn a_full_database_refuses_lines_and_keeps_serving() {
    let config = "max_database_mb = 1\nrate_per_second = 0\n";
    let server = ServerProc::start(config, &["--console", "off", "--quiet"], &[]);
    let (ana, mut ana_ev) = login(server.options("ana")).await;
    let (_bob, mut bob_ev) = login(server.options("bob")).await;
    let filler = "x".repeat(3990);
    let mut acked = Vec::new();
    let mut refused = Vec::new();
    // One at a time, so each answer belongs to one line. 1 MiB holds
    // about 250 of these; 600 bounds the loop.
    for i in 0..600 {
        let text = format!("{i:04} {filler}");
        let id = ana.say("lobby", &text).await;
        let seen = expect(&mut ana_ev, "the line's answer", |e| match e {
            ClientEvent::Delivered { id: d, .. } => *d == id,
            ClientEvent::Server(ServerMsg::Error { id: d, .. }) => *d == id,
            _ => false,
        })
        .await;
        match seen.last() {
            Some(ClientEvent::Delivered { msg: ServerMsg::Line(l), .. }) => acked.push((l.seq, text)),
            Some(ClientEvent::Server(ServerMsg::Error { code: ErrorCode::StorageFailed, text: why, .. })) => {
                assert!(why.contains("full"), "{why}");
                refused.push(text);
                // A couple more, to see that it stays refused cleanly.
                if refused.len() == 3 {
                    break;
                }
            }
            other => panic!("unexpected answer: {other:?}"),
        }
    }
    assert!(!refused.is_empty(), "600 lines of 4 KB fit in 1 MiB");
    assert!(acked.len() > 100, "only {} lines fit", acked.len());

    // Still serving.
    ana.input(Input::List).await;
    expect(&mut ana_ev, "the room list", |e| matches!(e, ClientEvent::Server(ServerMsg::RoomList { .. }))).await;
    ana.request(ClientMsg::Who { room: "lobby".into() }).await;
    expect(&mut ana_ev, "the members", |e| matches!(e, ClientEvent::Server(ServerMsg::Members { .. }))).await;

    // Bob got exactly the acknowledged lines, none that was refused.
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + common::WAIT;
    while got.len() < acked.len() {
        let e = tokio::time::timeout_at(deadline, bob_ev.recv()).await;
        match e.unwrap_or_else(|_| panic!("bob got {} of {} lines", got.len(), acked.len())) {
            Some(ClientEvent::Server(ServerMsg::Line(l))) if !l.history => got.push((l.seq, l.text)),
            Some(_) => {}
            None => panic!("bob's client stopped"),
        }
    }
    let late = common::collect(&mut bob_ev, Duration::from_millis(500)).await;
    got.extend(late.into_iter().filter_map(|e| match e {
        ClientEvent::Server(ServerMsg::Line(l)) => Some((l.seq, l.text)),
        _ => None,
    }));
    // Compared by sequence number and a digest, not 4 KB texts.
    let short = |v: &[(u64, String)]| v.iter().map(|(seq, t)| (*seq, t[..4].to_owned(), t.len())).collect::<Vec<_>>();
    assert_eq!(short(&got), short(&acked), "bob's lines are exactly the acknowledged ones");
    assert!(got == acked, "bob's lines differ from the acknowledged ones");
    assert!(!got.iter().any(|(_, t)| refused.contains(t)), "a refused line was delivered");

    let dir = server.kill();
    let stored: Vec<(u64, String)> =
        stored_lines(&dir.path().join("data"), "lobby").into_iter().map(|l| (l.seq, l.text)).collect();
    assert_eq!(short(&stored), short(&acked), "the store holds exactly the acknowledged lines");
    assert!(stored == acked, "stored texts differ from the acknowledged ones");
}
