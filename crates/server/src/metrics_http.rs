//! The `/metrics` endpoint: just enough HTTP/1.x for Prometheus (and
//! curl) to GET the text format. A scrape asks the event loop for a
//! rendering over a channel (the counters live there); the loop answers
//! between two batches of datagrams.
//!
//! Bounds: at most [`MAX_CONNECTIONS`] connections at once (more are
//! closed at once), a request head of at most [`MAX_HEAD`] bytes read
//! within [`TIMEOUT`], and at most [`MAX_SCRAPES`] renderings queued for
//! the loop (past it: 503).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, oneshot};

pub const MAX_CONNECTIONS: usize = 16;
pub const MAX_HEAD: usize = 8 * 1024;
pub const TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_SCRAPES: usize = 4;

/// A scrape waiting for the loop's rendering.
pub type Scrape = oneshot::Sender<String>;

/// Serves until the loop goes away (the receiver of `scrapes` drops).
pub async fn serve(listener: TcpListener, scrapes: mpsc::Sender<Scrape>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, say: try again, not in a spin.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if scrapes.is_closed() {
            return;
        }
        let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
        let scrapes = scrapes.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(TIMEOUT, answer(stream, scrapes)).await;
            drop(permit);
        });
    }
}

async fn answer(mut stream: TcpStream, scrapes: mpsc::Sender<Scrape>) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let request_line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = request_line.split(|&b| b == b' ');
    let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, body) = if method != b"GET" && method != b"HEAD" {
        ("405 Method Not Allowed", "only GET\n".to_owned())
    } else if path != b"/metrics" {
        ("404 Not Found", "metrics are at /metrics\n".to_owned())
    } else {
        let (tx, rx) = oneshot::channel();
        match scrapes.try_send(tx) {
            Ok(()) => match rx.await {
                Ok(text) => ("200 OK", text),
                Err(_) => ("503 Service Unavailable", "the server is stopping\n".to_owned()),
            },
            Err(_) => ("503 Service Unavailable", "too many scrapes at once\n".to_owned()),
        }
    };
    let content_type =
        if status.starts_with("200") { "text/plain; version=0.0.4; charset=utf-8" } else { "text/plain" };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(header.as_bytes()).await?;
    if method != b"HEAD" {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}
