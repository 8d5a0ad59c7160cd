//! The udpchat driver of `udpchat bench`: every member is a real client of
//! the client library (its own socket, Noise handshake, login), so the
//! bench measures what users get, acknowledgements and recovery included.
//! A sender keeps at most `--window` lines unacknowledged; as fast as
//! possible means as fast as acknowledgements free the window.

use std::sync::Arc;
use std::time::Instant;

use anyhow::bail;
use tokio::sync::{Semaphore, mpsc, watch};
use udpchat_client::chat::{ClientMsg, ServerMsg};
use udpchat_client::{Client, ClientEvent, ClientOptions};

use super::stats::RecvStats;
use super::{Ctx, GOODBYE_TIMEOUT, LineSender, Progress, Started};

pub struct Conn {
    client: Client,
    events: mpsc::Receiver<ClientEvent>,
    room: String,
}

/// Connects member `index`, logs in, leaves the lobby (so thousands of
/// sessions do not all share one room and its join notices) and joins its
/// bench room. Returns when it is in, with the time its handshake ended.
pub async fn connect(ctx: &Ctx, index: usize) -> anyhow::Result<(Conn, Instant)> {
    let room = ctx.room_name(ctx.room_of(index));
    let mut options = ClientOptions::new(&ctx.addr, &ctx.nick(index));
    options.password = std::env::var("UDPCHAT_PASSWORD").unwrap_or_default();
    options.rooms = vec![room.clone()];
    options.drop_rate = ctx.drop;
    // A session lost under injected loss comes back and catches up, as a
    // user's would; the bench then checks nothing was lost or doubled.
    options.reconnect = true;
    let (client, mut events) = Client::connect(options).await?;
    let mut handshake = None;
    while let Some(event) = events.recv().await {
        match event {
            ClientEvent::Connected { .. } => handshake = Some(Instant::now()),
            ClientEvent::Server(ServerMsg::Welcome { .. }) => {
                client.request(ClientMsg::Part { room: "lobby".into(), reason: String::new() }).await;
            }
            ClientEvent::Server(ServerMsg::Joined { room: r, .. }) if r == room => {
                let at = handshake.unwrap_or_else(Instant::now);
                return Ok((Conn { client, events, room }, at));
            }
            ClientEvent::Server(ServerMsg::LoginRefused { text, .. }) => bail!("login refused: {text}"),
            ClientEvent::Server(ServerMsg::Error { text, .. }) => bail!("server error: {text}"),
            ClientEvent::Closed { reason } => bail!("closed: {reason}"),
            _ => {}
        }
    }
    bail!("client stopped")
}

/// Starts the member's receiving task; senders also get a [`Sender`]
/// sharing its window.
pub fn start(
    conn: Conn,
    ctx: Arc<Ctx>,
    stats: RecvStats,
    room_size: u64,
    sends: bool,
    stop: watch::Receiver<bool>,
) -> Started {
    let window = sends.then(|| Arc::new(Semaphore::new(ctx.window)));
    let sender = window
        .clone()
        .map(|window| LineSender::Udpchat(Sender { client: conn.client.clone(), room: conn.room.clone(), window }));
    let receiver = tokio::spawn(receive(conn, ctx, stats, room_size, window, stop));
    Started { receiver, sender }
}

pub struct Sender {
    client: Client,
    room: String,
    window: Arc<Semaphore>,
}

impl Sender {
    pub async fn ready(&mut self) {
        // The receiving task gives the permit back when the line's fate is
        // known. The semaphore is never closed, so acquire cannot fail.
        if let Ok(permit) = self.window.acquire().await {
            permit.forget();
        }
    }

    pub async fn send(&mut self, text: &str) -> bool {
        self.client.say(&self.room, text).await;
        true
    }
}

async fn receive(
    mut conn: Conn,
    ctx: Arc<Ctx>,
    mut stats: RecvStats,
    room_size: u64,
    window: Option<Arc<Semaphore>>,
    mut stop: watch::Receiver<bool>,
) -> RecvStats {
    let p = &ctx.progress;
    // A line's fate is known: free its place in the window.
    let resolve = |n: usize| {
        if let Some(w) = &window {
            w.add_permits(n);
        }
        Progress::add(&p.resolved, n as u64);
    };
    let mut closed = false;
    loop {
        let event = tokio::select! {
            e = conn.events.recv() => e,
            _ = stop.changed() => break,
        };
        let Some(event) = event else {
            closed = true;
            break;
        };
        match event {
            ClientEvent::Server(ServerMsg::Line(line)) => match ctx.parse(&line.text) {
                Some((sender, seq, sent)) => {
                    stats.delivery(sender, seq, sent, Instant::now());
                    Progress::add(&p.delivered, 1);
                }
                None => stats.foreign += 1,
            },
            ClientEvent::Delivered { msg: ServerMsg::Line(line), .. } => {
                if let Some((sender, seq, _)) = ctx.parse(&line.text)
                    && sender == stats.member
                    && stats.acked.insert(seq)
                {
                    Progress::add(&p.accepted, 1);
                    Progress::add(&p.expected, room_size.saturating_sub(1));
                }
                resolve(1);
            }
            // Only lines carry request ids in the bench.
            ClientEvent::Server(ServerMsg::Error { id, .. }) if id != 0 => {
                stats.refused += 1;
                resolve(1);
            }
            ClientEvent::Unconfirmed { ids } => {
                stats.unconfirmed += ids.len() as u64;
                resolve(ids.len());
            }
            ClientEvent::Disconnected { .. } => stats.disconnects += 1,
            ClientEvent::Closed { .. } => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    if !closed {
        // Say goodbye, so the server frees the session now rather than
        // after its idle timeout (the next run may want the capacity).
        conn.client.quit("").await;
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
            while let Some(e) = conn.events.recv().await {
                if matches!(e, ClientEvent::Closed { .. }) {
                    break;
                }
            }
        })
        .await;
    }
    stats
}
