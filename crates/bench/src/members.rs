//! The members of a bench run, one per session whatever the target:
//! connecting them all (`--connect-concurrency` at a time; udpchat's in
//! two passes, handshakes then logins, so the handshake rate is the
//! handshakes' own), starting their receiving tasks, and their sending
//! half. The drivers (udpchat.rs, text.rs, irc.rs) do the talking.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::{Semaphore, watch};
use tokio::task::{JoinHandle, JoinSet};

use crate::args::BenchArgs;
use crate::ctx::{CONNECT_TIMEOUT, Ctx, Kind, Progress};
use crate::stats::RecvStats;
use crate::{irc, text, udpchat};

/// One connected session, before its tasks start.
pub struct Member {
    pub index: usize,
    pub room: usize,
    pub sends: bool,
    /// When its handshake (or registration, for peers) completed.
    pub handshake: Instant,
    conn: Conn,
}

pub enum Conn {
    /// Boxed: a udpchat session (endpoint and all) is much larger than a socket.
    Udpchat(Box<udpchat::Conn>),
    Text(text::Conn),
    Irc(irc::Conn),
}

/// The sending half of a member, whatever the target.
pub enum LineSender {
    Udpchat(udpchat::Sender),
    Text(text::Sender),
    Irc(irc::Sender),
}

impl LineSender {
    /// Waits until flow control lets one more line go.
    pub async fn ready(&mut self) {
        match self {
            LineSender::Udpchat(s) => s.ready().await,
            LineSender::Text(_) => {}
            LineSender::Irc(s) => s.ready().await,
        }
    }

    /// Sends one line; false when the session is gone.
    pub async fn send(&mut self, text: &str) -> bool {
        match self {
            LineSender::Udpchat(s) => s.send(text).await,
            LineSender::Text(s) => s.send(text).await,
            LineSender::Irc(s) => s.send(text).await,
        }
    }
}

/// What a started member hands back: its receiving task and, for senders,
/// the way to send.
pub struct Started {
    pub receiver: JoinHandle<RecvStats>,
    pub sender: Option<LineSender>,
}

async fn connect(ctx: Arc<Ctx>, index: usize, sends: bool) -> anyhow::Result<Member> {
    let room = ctx.room_of(index);
    let (conn, handshake) = match ctx.kind {
        Kind::Udpchat => {
            let (c, h) = udpchat::connect(&ctx, index).await?;
            (Conn::Udpchat(Box::new(c)), h)
        }
        Kind::Text => {
            let (c, h) = text::connect(&ctx, index).await?;
            (Conn::Text(c), h)
        }
        Kind::Irc => {
            let (c, h) = irc::connect(&ctx, index, sends).await?;
            (Conn::Irc(c), h)
        }
    };
    Ok(Member { index, room, sends, handshake, conn })
}

pub fn start(m: Member, ctx: Arc<Ctx>, room_size: u64, stop: watch::Receiver<bool>) -> Started {
    let stats = RecvStats::new(m.index, m.room);
    match m.conn {
        Conn::Udpchat(c) => udpchat::start(*c, ctx, stats, room_size, m.sends, stop),
        Conn::Text(c) => text::start(c, ctx, stats, m.sends, stop),
        Conn::Irc(c) => irc::start(c, ctx, stats, m.sends, stop),
    }
}

/// Connects every member, `--connect-concurrency` at a time. Returns the
/// members that got in and the first error of those that did not.
pub async fn connect_all(ctx: &Arc<Ctx>, args: &BenchArgs) -> (Vec<Member>, Option<String>) {
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let mut tasks = JoinSet::new();
    for index in 0..args.clients {
        let (ctx, gate) = (ctx.clone(), gate.clone());
        let sends = !args.idle && index < args.senders;
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.context("connect gate closed")?;
            let result = tokio::time::timeout(CONNECT_TIMEOUT, connect(ctx.clone(), index, sends)).await;
            let member = match result {
                Ok(r) => r.with_context(|| format!("session {index}")),
                Err(_) => Err(anyhow::anyhow!("session {index}: not in its room after {CONNECT_TIMEOUT:?}")),
            };
            let counter = if member.is_ok() { &ctx.progress.connected } else { &ctx.progress.failed };
            Progress::add(counter, 1);
            member
        });
    }
    let mut members = Vec::with_capacity(args.clients);
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(m)) => members.push(m),
            Ok(Err(e)) => {
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                first_error.get_or_insert_with(|| format!("connect task failed: {e}"));
            }
        }
    }
    (members, first_error)
}

/// Logs every connected udpchat member in and into its room,
/// `--connect-concurrency` at a time. Returns those that got in and the
/// first error of those that did not.
pub async fn enter_all(ctx: &Arc<Ctx>, args: &BenchArgs, members: Vec<Member>) -> (Vec<Member>, Option<String>) {
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    let mut tasks = JoinSet::new();
    for mut member in members {
        let (ctx, gate) = (ctx.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.context("connect gate closed")?;
            let Conn::Udpchat(conn) = &mut member.conn else { return Ok(member) };
            let index = member.index;
            match tokio::time::timeout(CONNECT_TIMEOUT, udpchat::enter(&ctx, index, conn)).await {
                Ok(Ok(())) => Ok(member),
                Ok(Err(e)) => Err(e.context(format!("session {index}"))),
                Err(_) => Err(anyhow::anyhow!("session {index}: not in its room after {CONNECT_TIMEOUT:?}")),
            }
        });
    }
    let mut entered = Vec::with_capacity(tasks.len());
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(m)) => entered.push(m),
            Ok(Err(e)) => {
                ctx.progress.connected.fetch_sub(1, Ordering::Relaxed);
                Progress::add(&ctx.progress.failed, 1);
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
            Err(e) => {
                first_error.get_or_insert_with(|| format!("login task failed: {e}"));
            }
        }
    }
    entered.sort_by_key(|m| m.index);
    (entered, first_error)
}
