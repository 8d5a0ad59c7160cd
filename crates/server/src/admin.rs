//! The admin socket: `udpchat admin` talks to a running server over a Unix
//! socket in the data directory (`admin.sock`, mode 0600 in a 0700
//! directory: only the server's own user, and root, can use it). This is
//! the console without a terminal, for a server run as a service.
//!
//! One request per connection: a line `ROOM<TAB>COMMAND`, where COMMAND is
//! a console line (`/kick ana flooding`, plain text to say, `/who`) or one
//! of the driver's own (`/reload`, `/stats`), and ROOM (may be empty) is
//! the room the console line is about. The answer is the lines the console
//! would have shown, then the connection closes. Commands go to the event
//! loop over a channel and are handled there like console lines
//! (`ChatServer::admin`).
//!
//! Bounds: at most [`MAX_CONNECTIONS`] connections at once (more are
//! closed at once), a request of at most [`MAX_REQUEST`] bytes read within
//! [`TIMEOUT`], and [`MAX_QUEUED`] commands waiting for the loop.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

/// The socket's name in the data directory.
pub const SOCKET_FILE: &str = "admin.sock";
pub const MAX_CONNECTIONS: usize = 8;
pub const MAX_REQUEST: usize = 8 * 1024;
pub const TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_QUEUED: usize = 16;

/// One command for the event loop, and where its answer goes.
pub struct AdminRequest {
    /// The room the command is about (`say`, `topic`, `who`), if any.
    pub room: Option<String>,
    /// A console line.
    pub line: String,
    pub reply: oneshot::Sender<Vec<String>>,
}

/// The listening socket; its file is removed when this drops.
pub struct AdminSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl AdminSocket {
    /// Binds `DIR/admin.sock`. A file left there by a server that died is
    /// replaced (the data directory's lock, taken before, says no other
    /// server runs on it).
    pub fn bind(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(SOCKET_FILE);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        let listener = std::os::unix::net::UnixListener::bind(&path)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        listener.set_nonblocking(true)?;
        Ok(Self { listener: UnixListener::from_std(listener)?, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves until the loop goes away (the receiver of `requests` drops).
    pub async fn serve(self, requests: mpsc::Sender<AdminRequest>) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        loop {
            let Ok((stream, _)) = self.listener.accept().await else {
                // Out of file descriptors, say: try again, not in a spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            if requests.is_closed() {
                return;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
            let requests = requests.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(TIMEOUT, answer(stream, requests)).await;
                drop(permit);
            });
        }
    }
}

impl Drop for AdminSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

async fn answer(stream: UnixStream, requests: mpsc::Sender<AdminRequest>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut request = String::new();
    BufReader::new(read.take(MAX_REQUEST as u64)).read_line(&mut request).await?;
    let request = request.trim_end_matches(['\r', '\n']);
    let (room, line) = request.split_once('\t').unwrap_or(("", request));
    let room = Some(room.trim()).filter(|r| !r.is_empty()).map(str::to_owned);
    let (reply, answer) = oneshot::channel();
    let lines = match requests.try_send(AdminRequest { room, line: line.to_owned(), reply }) {
        Ok(()) => answer.await.unwrap_or_else(|_| vec!["error: the server is stopping".to_owned()]),
        Err(_) => vec!["error: too many admin commands at once; try again".to_owned()],
    };
    let mut text = lines.join("\n");
    text.push('\n');
    write.write_all(text.as_bytes()).await?;
    write.shutdown().await
}
