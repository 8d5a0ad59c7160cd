//! The data directory is the server's alone, whatever the umask: started
//! from a shell with umask 022 (which would make files 0644), the server
//! makes its data directory 0700 and every file in it 0600 (history
//! database and its -wal/-shm files, lock file, server.key), and fixes
//! files left readable by others when it starts again. A password file
//! readable by others is warned about, naming the fix.

#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, line_channel};

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the server under `umask 022` and waits until it listens;
/// returns it and its standard error lines.
fn start(dir: &Path, password_file: Option<&Path>) -> (Running, std::sync::mpsc::Receiver<String>) {
    let mut script = format!(
        "umask 022; exec '{BIN}' server --quiet --console off --listen 127.0.0.1:0 --data-dir '{}'",
        dir.join("data").display()
    );
    if let Some(p) = password_file {
        script.push_str(&format!(" --password-file '{}'", p.display()));
    }
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env_remove("UDPCHAT_SERVER_PASSWORD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start udpchat server");
    let out = line_channel(child.stdout.take().unwrap());
    let err = line_channel(child.stderr.take().unwrap());
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match out.recv_timeout(left) {
            Ok(line) if line.contains("listening on") => break,
            Ok(_) => {}
            Err(_) => panic!("server did not start: {:?}", err.try_iter().collect::<Vec<_>>()),
        }
    }
    (running, err)
}

#[test]
fn the_data_directory_and_its_files_are_owner_only_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let names = ["history.sqlite3", "history.sqlite3-wal", "history.sqlite3-shm", "udpchat.lock", "server.key"];
    {
        let (_server, _) = start(dir.path(), None);
        assert_eq!(mode(&data), 0o700);
        for name in names {
            assert_eq!(mode(&data.join(name)), 0o600, "{name}");
        }
    }
    // Loosened by hand (or by an older version): fixed at the next start.
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["history.sqlite3", "server.key", "udpchat.lock"] {
        std::fs::set_permissions(data.join(name), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let password = dir.path().join("password");
    std::fs::write(&password, "sesame\n").unwrap();
    std::fs::set_permissions(&password, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (_server, err) = start(dir.path(), Some(&password));
    assert_eq!(mode(&data), 0o700);
    for name in names {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }
    let warning = err.recv_timeout(Duration::from_secs(5)).expect("a warning about the password file");
    assert!(warning.contains("chmod 600") && warning.contains("password"), "{warning}");
}
