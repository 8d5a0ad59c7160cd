//! The udpchat driver of `udpchat bench`. Every member is a real session:
//! its own socket ([`Link`], the client library's I/O half: GRO receive,
//! GSO send), its own Noise handshake, login and room, with the protocol's
//! acknowledgements, retransmission and ordering. What it leaves out is
//! the client driver's front-end service (an event channel, reconnection,
//! echoing lines back): a bench member only counts what arrives, like the
//! IRC and text members, so the load generator costs as little per
//! delivery as it can and the figures are the server's.
//!
//! A sender keeps at most `--window` lines unacknowledged; as fast as
//! possible means as fast as acknowledgements free the window. A session
//! that ends early is counted (`disconnects`); its missing lines show as
//! lost.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;
use udpchat_client::chat::{ClientMsg, LineRef, ServerMsg};
use udpchat_client::link::Link;

use crate::loss::Loss;
use udpchat_proto::{ClientConfig, ConnectionHandle, Event, SendError, code};

use crate::ctx::{Ctx, GOODBYE_TIMEOUT, Progress};
use crate::members::{LineSender, Started};
use crate::stats::RecvStats;

/// How long the loop sleeps when the endpoint has no timer at all.
const IDLE_WAKE: Duration = Duration::from_secs(60);

/// A connected member, kept alive (read, acknowledged, its timers run)
/// by a task of its own until [`start`] takes it over: thousands of
/// sessions connect one after another, and the first must not go silent
/// while the last are still connecting. The keeper also logs it in and
/// into its room when [`enter`] asks.
pub struct Conn {
    keeper: JoinHandle<Session>,
    enter: Option<oneshot::Sender<Entry>>,
    handover: oneshot::Sender<()>,
}

/// A request to log in (with this message) and join the member's room;
/// the keeper answers on the sender once in, or with why not.
type Entry = (ClientMsg, oneshot::Sender<Result<(), String>>);

struct Session {
    link: Link,
    h: ConnectionHandle,
    room: String,
    /// The session ended while it was kept.
    closed: bool,
}

/// Opens member `index`'s session: its own socket and a full handshake.
/// Returns once the handshake is done, with the time it was, so that
/// handshakes are measured by themselves; [`enter`] does the rest.
pub async fn connect(ctx: &Ctx, index: usize) -> anyhow::Result<(Conn, Instant)> {
    let room = ctx.room_name(ctx.room_of(index));
    let addr = ctx.addr_of(index);
    let server: SocketAddr = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .with_context(|| format!("{addr} has no address"))?;
    let mut link = Link::client(server).context("cannot open a UDP socket")?;
    if ctx.drop > 0.0 {
        let mut loss = Loss::new(ctx.drop);
        link = link.discarding(move || loss.drop());
    }
    let h = link.endpoint.connect(Instant::now(), server, ClientConfig::default())?;
    let mut conn = Session { link, h, room, closed: false };
    loop {
        while let Some((_, event)) = conn.link.endpoint.poll_event() {
            match event {
                Event::Connected { .. } => {
                    let at = Instant::now();
                    let (enter, entries) = oneshot::channel();
                    let (handover, taken) = oneshot::channel();
                    let keeper = tokio::spawn(keep(conn, entries, taken));
                    return Ok((Conn { keeper, enter: Some(enter), handover }, at));
                }
                Event::Closed(reason) => bail!("closed: {reason}"),
                _ => {}
            }
        }
        conn.link.flush().await;
        conn.wait().await?;
    }
}

/// Logs member `index` in, leaves the lobby (so thousands of sessions do
/// not all share one room and its join notices) and joins its bench room.
/// Returns when it is in.
pub async fn enter(ctx: &Ctx, index: usize, conn: &mut Conn) -> anyhow::Result<()> {
    let login = ClientMsg::Login {
        nick: ctx.nick(index),
        server_password: std::env::var("UDPCHAT_PASSWORD").unwrap_or_default(),
        account_password: String::new(),
        resume: Vec::new(),
        private_since: 0,
        origin: 0,
    };
    let (done, entered) = oneshot::channel();
    let sent = conn.enter.take().map(|enter| enter.send((login, done)).is_ok());
    if sent != Some(true) {
        bail!("session already gone");
    }
    match entered.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(why)) => bail!("{why}"),
        Err(_) => bail!("session ended"),
    }
}

/// Services the session: logs it in when asked (`entries`), and hands it
/// back when `taken` fires (or its sender is dropped).
async fn keep(mut conn: Session, mut entries: oneshot::Receiver<Entry>, mut taken: oneshot::Receiver<()>) -> Session {
    let mut asked = false;
    let mut entering: Option<oneshot::Sender<Result<(), String>>> = None;
    loop {
        while let Some((_, event)) = conn.link.endpoint.poll_event() {
            let outcome = match event {
                Event::Message(bytes) => {
                    let outcome = match ServerMsg::decode(&bytes) {
                        Ok(ServerMsg::Welcome { .. }) if entering.is_some() => {
                            let part =
                                conn.send(&ClientMsg::Part { room: udpchat_chat::LOBBY.into(), reason: String::new() });
                            let join = conn.send(&ClientMsg::Join { room: conn.room.clone() });
                            part.and(join).err().map(|e| Err(format!("cannot send: {e}")))
                        }
                        Ok(ServerMsg::Joined { room, .. }) if room == conn.room => Some(Ok(())),
                        Ok(ServerMsg::LoginRefused { text, .. }) => Some(Err(format!("login refused: {text}"))),
                        Ok(ServerMsg::Error { text, .. }) => Some(Err(format!("server error: {text}"))),
                        _ => None,
                    };
                    conn.link.endpoint.recycle(bytes);
                    outcome
                }
                Event::Closed(reason) => {
                    conn.closed = true;
                    Some(Err(format!("closed: {reason}")))
                }
                _ => None,
            };
            if let Some(outcome) = outcome
                && let Some(done) = entering.take()
            {
                let _ = done.send(outcome);
            }
        }
        conn.link.flush().await;
        if conn.closed {
            let _ = taken.await;
            return conn;
        }
        tokio::select! {
            _ = &mut taken => return conn,
            entry = &mut entries, if !asked => {
                asked = true;
                if let Ok((login, done)) = entry {
                    match conn.send(&login) {
                        Ok(()) => entering = Some(done),
                        Err(e) => {
                            let _ = done.send(Err(format!("cannot send: {e}")));
                        }
                    }
                }
            }
            r = conn.wait() => {
                if let Err(e) = r {
                    tracing::debug!("receive failed: {e}");
                }
            }
        }
    }
}

impl Session {
    fn send(&mut self, msg: &ClientMsg) -> Result<(), SendError> {
        self.link.endpoint.send(self.h, &msg.to_bytes())
    }

    /// Waits for datagrams (and hands them to the endpoint) or the
    /// endpoint's next deadline.
    async fn wait(&mut self) -> std::io::Result<()> {
        let now = Instant::now();
        let deadline = self.link.endpoint.poll_timeout().unwrap_or(now + IDLE_WAKE);
        tokio::select! {
            r = self.link.readable() => {
                r?;
                self.link.receive()?;
            }
            _ = sleep_until(deadline.into()) => self.link.endpoint.handle_timeout(Instant::now()),
        }
        Ok(())
    }
}

/// Starts the member's task; senders also get a [`Sender`] feeding it.
pub fn start(
    conn: Conn,
    ctx: Arc<Ctx>,
    stats: RecvStats,
    room_size: u64,
    sends: bool,
    stop: watch::Receiver<bool>,
) -> Started {
    let (sender, lines) = if sends {
        let window = Arc::new(Semaphore::new(ctx.window));
        let (tx, rx) = mpsc::channel(ctx.window.max(1));
        (Some(LineSender::Udpchat(Sender { tx, window: window.clone() })), Some((rx, window)))
    } else {
        (None, None)
    };
    let receiver = tokio::spawn(run(conn, ctx, stats, room_size, lines, stop));
    Started { receiver, sender }
}

pub struct Sender {
    tx: mpsc::Sender<String>,
    window: Arc<Semaphore>,
}

impl Sender {
    pub async fn ready(&mut self) {
        // The member's task gives the permit back when the line's fate is
        // known. The semaphore is never closed, so acquire cannot fail.
        if let Ok(permit) = self.window.acquire().await {
            permit.forget();
        }
    }

    /// False when the member's task has ended (its session is gone).
    pub async fn send(&mut self, text: &str) -> bool {
        self.tx.send(text.to_owned()).await.is_ok()
    }
}

/// The member's task: receives and counts, and sends the lines its
/// [`Sender`] hands over. The request id of line `seq` is `seq + 1`, so an
/// acknowledgement says which line it is for.
async fn run(
    conn: Conn,
    ctx: Arc<Ctx>,
    mut stats: RecvStats,
    room_size: u64,
    mut lines: Option<(mpsc::Receiver<String>, Arc<Semaphore>)>,
    mut stop: watch::Receiver<bool>,
) -> RecvStats {
    let p = &ctx.progress;
    let _ = conn.handover.send(());
    let Ok(mut conn) = conn.keeper.await else {
        stats.disconnects += 1;
        return stats;
    };
    if conn.closed {
        stats.disconnects += 1;
        return stats;
    }
    let resolve = |lines: &Option<(mpsc::Receiver<String>, Arc<Semaphore>)>, n: usize| {
        if let Some((_, window)) = lines {
            window.add_permits(n);
        }
        Progress::add(&p.resolved, n as u64);
    };
    // Lines handed over and not yet taken by the endpoint: at most the
    // window. They go in as a batch, so several share a datagram.
    let mut held: VecDeque<Vec<u8>> = VecDeque::new();
    let mut in_flight = 0usize;
    let mut closed = false;
    'session: loop {
        let now = Instant::now();
        let now_ns = ctx.now_ns();
        let mut delivered = 0;
        while let Some((_, event)) = conn.link.endpoint.poll_event() {
            match event {
                // Lines are read in place, and their buffers reused: no
                // copies or allocations on the hot path.
                Event::Message(bytes) => {
                    match LineRef::decode(&bytes) {
                        Ok(Some(line)) => match ctx.parse(line.text) {
                            Some((sender, seq, sent)) => {
                                stats.delivery(sender, seq, sent, now_ns);
                                delivered += 1;
                            }
                            None => stats.foreign += 1,
                        },
                        Ok(None) => match ServerMsg::decode(&bytes) {
                            Ok(ServerMsg::Ack { id, .. }) if id != 0 => {
                                if stats.acked.insert(id - 1) {
                                    Progress::add(&p.accepted, 1);
                                    Progress::add(&p.expected, room_size.saturating_sub(1));
                                }
                                in_flight = in_flight.saturating_sub(1);
                                resolve(&lines, 1);
                            }
                            Ok(ServerMsg::Error { id, .. }) if id != 0 => {
                                stats.refused += 1;
                                in_flight = in_flight.saturating_sub(1);
                                resolve(&lines, 1);
                            }
                            _ => {}
                        },
                        Err(_) => stats.foreign += 1,
                    }
                    conn.link.endpoint.recycle(bytes);
                }
                Event::Closed(_) => {
                    stats.disconnects += 1;
                    stats.unconfirmed += (in_flight + held.len()) as u64;
                    resolve(&lines, in_flight + held.len());
                    closed = true;
                    break 'session;
                }
                _ => {}
            }
        }
        Progress::add(&p.delivered, delivered);
        if let Some((rx, _)) = &mut lines {
            while let Ok(text) = rx.try_recv() {
                held.extend(say(&ctx, &conn.room, text));
            }
        }
        while let Some(bytes) = held.front() {
            match conn.link.endpoint.send(conn.h, bytes) {
                Ok(()) => in_flight += 1,
                Err(SendError::Blocked) => break,
                Err(_) => {
                    stats.unconfirmed += 1;
                    resolve(&lines, 1);
                }
            }
            held.pop_front();
        }
        conn.link.flush().await;
        let deadline = conn.link.endpoint.poll_timeout().unwrap_or(now + IDLE_WAKE);
        let taking = held.is_empty() && lines.is_some();
        tokio::select! {
            r = conn.link.readable() => {
                if let Err(e) = r.and_then(|()| conn.link.receive()) {
                    tracing::debug!("receive failed: {e}");
                }
            }
            _ = sleep_until(deadline.into()) => conn.link.endpoint.handle_timeout(Instant::now()),
            text = async { lines.as_mut()?.0.recv().await }, if taking => match text {
                Some(text) => held.extend(say(&ctx, &conn.room, text)),
                // Every sender is done; keep receiving.
                None => lines = None,
            },
            _ = stop.changed() => break,
        }
    }
    if !closed {
        // Say goodbye, so the server frees the session now rather than
        // after its idle timeout (the next run may want the capacity).
        let _ = conn.send(&ClientMsg::Quit { reason: String::new() });
        conn.link.endpoint.close(Instant::now(), conn.h, code::NORMAL, "quit");
        let _ = tokio::time::timeout(GOODBYE_TIMEOUT, async {
            loop {
                while let Some((_, event)) = conn.link.endpoint.poll_event() {
                    if matches!(event, Event::Closed(_)) {
                        return;
                    }
                }
                conn.link.flush().await;
                if conn.wait().await.is_err() {
                    return;
                }
            }
        })
        .await;
    }
    stats
}

/// The message for a line of this member's: its request id is its
/// sequence number plus one.
fn say(ctx: &Ctx, room: &str, text: String) -> Option<Vec<u8>> {
    let (_, seq, _) = ctx.parse(&text)?;
    Some(ClientMsg::Say { id: seq + 1, room: room.to_owned(), text, action: false }.to_bytes())
}
