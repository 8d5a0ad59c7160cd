//! The text:// driver of `udpchat bench`: a member of a plain-text UDP
//! chat, the classic design udpchat grew from. Each member has its own
//! socket; its first datagram is its nickname (the server answers with a
//! welcome), every later one is a line, and every datagram that arrives is
//! a delivery. There are no acknowledgements and no flow control, so every
//! sent line counts as accepted and whatever the network or the server
//! drops is lost.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::loss::Loss;
use anyhow::{Context, bail};
use tokio::net::UdpSocket;
use tokio::sync::watch;

use crate::ctx::{Ctx, Progress};
use crate::members::{LineSender, Started};
use crate::stats::RecvStats;

/// Nickname attempts before giving up, and the wait for a welcome after each.
const LOGIN_TRIES: u32 = 10;
const LOGIN_WAIT: Duration = Duration::from_millis(500);

pub struct Conn {
    socket: Arc<UdpSocket>,
}

pub async fn connect(ctx: &Ctx, index: usize) -> anyhow::Result<(Conn, Instant)> {
    let addr = ctx.addr_of(index);
    let server: SocketAddr = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .with_context(|| format!("{addr} has no address"))?;
    let bind: SocketAddr = if server.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(bind).await.context("cannot open a UDP socket")?;
    socket.connect(server).await.with_context(|| format!("cannot reach {server}"))?;
    let nick = ctx.nick(index);
    let mut buf = vec![0u8; 2048];
    // The nickname or its welcome may be lost like any datagram: try again.
    for _ in 0..LOGIN_TRIES {
        socket.send(nick.as_bytes()).await.context("cannot send the nickname")?;
        match tokio::time::timeout(LOGIN_WAIT, socket.recv(&mut buf)).await {
            Ok(Ok(_)) => return Ok((Conn { socket: Arc::new(socket) }, Instant::now())),
            Ok(Err(e)) => bail!("no server at {server}: {e}"),
            Err(_) => continue,
        }
    }
    bail!("no welcome from {server} after {LOGIN_TRIES} tries")
}

pub fn start(conn: Conn, ctx: Arc<Ctx>, stats: RecvStats, sends: bool, stop: watch::Receiver<bool>) -> Started {
    let sender = sends.then(|| LineSender::Text(Sender { socket: conn.socket.clone(), loss: Loss::new(ctx.drop) }));
    let receiver = tokio::spawn(receive(conn, ctx, stats, stop));
    Started { receiver, sender }
}

pub struct Sender {
    socket: Arc<UdpSocket>,
    loss: Loss,
}

impl Sender {
    pub async fn send(&mut self, text: &str) -> bool {
        if self.loss.drop() {
            return true;
        }
        // A failed send is a lost line, which is what the bench counts.
        let _ = self.socket.send(text.as_bytes()).await;
        true
    }
}

async fn receive(conn: Conn, ctx: Arc<Ctx>, mut stats: RecvStats, mut stop: watch::Receiver<bool>) -> RecvStats {
    let mut loss = Loss::new(ctx.drop);
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            r = conn.socket.recv(&mut buf) => r,
            _ = stop.changed() => break,
        };
        let n = match received {
            Ok(n) => n,
            Err(_) => {
                // The server went away (ICMP port unreachable); do not spin.
                stats.disconnects += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if loss.drop() {
            continue;
        }
        match ctx.parse(&String::from_utf8_lossy(&buf[..n])) {
            Some((sender, seq, sent)) => {
                stats.delivery(sender, seq, sent, ctx.now_ns());
                Progress::add(&ctx.progress.delivered, 1);
            }
            None => stats.foreign += 1,
        }
    }
    // The classic servers' way of leaving.
    let _ = conn.socket.send(b"QUIT").await;
    stats
}
