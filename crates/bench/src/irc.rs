//! The irc:// driver of `udpchat bench`: a member of an IRC server (tested
//! against ngIRCd). Each member is one TCP connection: NICK and USER, then
//! JOIN of its room's channel; senders PRIVMSG the channel and every
//! PRIVMSG that arrives is a delivery. IRC acknowledges nothing, so a sent
//! line counts as accepted.
//!
//! Flow control: IRC servers read a bounded amount per client (ngIRCd
//! disconnects a client with more than 2 KiB of unprocessed commands), and
//! TCP's own flow control does not stop a client from writing that much. So
//! a sender sends its lines in batches of half the window, each followed by
//! a PING, and starts a batch only when the PONG for the one before the
//! last has come back: at most a window of lines is ever unprocessed. With
//! `--irc-oper`, senders become IRC operators and set user mode +F, which
//! lifts ngIRCd's per-client command throttling.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Mutex, Notify, watch};

use crate::ctx::{Ctx, GOODBYE_TIMEOUT, Progress};
use crate::members::{LineSender, Started};
use crate::stats::RecvStats;

type Writer = Arc<Mutex<OwnedWriteHalf>>;

pub struct Conn {
    lines: Lines<BufReader<OwnedReadHalf>>,
    writer: Writer,
    channel: String,
}

/// The command (or numeric) of a line, after its prefix.
fn command(line: &str) -> &str {
    let mut words = line.split(' ');
    match words.next() {
        Some(w) if w.starts_with(':') => words.next().unwrap_or(""),
        Some(w) => w,
        None => "",
    }
}

/// The trailing parameter (after " :"), or the last word.
fn trailing(line: &str) -> &str {
    match line.find(" :") {
        Some(i) => &line[i + 2..],
        None => line.rsplit(' ').next().unwrap_or(""),
    }
}

async fn write(writer: &Writer, text: &str) -> std::io::Result<()> {
    writer.lock().await.write_all(text.as_bytes()).await
}

/// Reads lines (answering PINGs) until one whose command is in `want`;
/// fails on one in `fail` or an ERROR.
async fn expect(
    lines: &mut Lines<BufReader<OwnedReadHalf>>,
    writer: &Writer,
    want: &[&str],
    fail: &[&str],
    what: &str,
) -> anyhow::Result<String> {
    while let Some(line) = lines.next_line().await.with_context(|| format!("reading while waiting for {what}"))? {
        let cmd = command(&line);
        if cmd == "PING" {
            write(writer, &format!("PONG :{}\r\n", trailing(&line))).await?;
        } else if want.contains(&cmd) {
            return Ok(line);
        } else if cmd == "ERROR" || fail.contains(&cmd) {
            bail!("{what}: {line}");
        }
    }
    bail!("connection closed while waiting for {what}")
}

/// Connects member `index`: registers, becomes an operator with user mode
/// +F if it sends and `--irc-oper` was given, and joins its channel.
pub async fn connect(ctx: &Ctx, index: usize, sends: bool) -> anyhow::Result<(Conn, Instant)> {
    let addr = ctx.addr_of(index);
    let stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    // Each line is its own message: do not let Nagle hold it back.
    stream.set_nodelay(true)?;
    let (read, write_half) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let writer: Writer = Arc::new(Mutex::new(write_half));
    let nick = ctx.nick(index);
    write(&writer, &format!("NICK {nick}\r\nUSER {nick} 0 * :udpchat bench\r\n")).await?;
    // 001 welcomes; 432/433/436 refuse the nickname; 465 is a ban.
    expect(&mut lines, &writer, &["001"], &["432", "433", "436", "465"], "the welcome").await?;
    let registered = Instant::now();
    if sends && let Some((name, password)) = &ctx.irc_oper {
        write(&writer, &format!("OPER {name} {password}\r\n")).await?;
        expect(&mut lines, &writer, &["381"], &["464", "491"], "OPER").await?;
        write(&writer, &format!("MODE {nick} +F\r\n")).await?;
        let line = expect(&mut lines, &writer, &["MODE", "221"], &["472", "481", "501", "502"], "MODE +F").await?;
        if !line.contains('F') {
            bail!("the server did not set user mode +F: {line}");
        }
    }
    let channel = format!("#{}", ctx.room_name(ctx.room_of(index)));
    write(&writer, &format!("JOIN {channel}\r\n")).await?;
    // 366 ends the member list that follows a successful JOIN.
    expect(&mut lines, &writer, &["366"], &["403", "405", "471", "473", "474", "475"], "JOIN").await?;
    Ok((Conn { lines, writer, channel }, registered))
}

/// PONGs received, by the number of the PING they answer.
#[derive(Default)]
struct Pongs {
    last: AtomicU64,
    arrived: Notify,
}

pub fn start(conn: Conn, ctx: Arc<Ctx>, stats: RecvStats, sends: bool, stop: watch::Receiver<bool>) -> Started {
    let pongs = Arc::new(Pongs::default());
    let sender = sends.then(|| {
        LineSender::Irc(Sender {
            writer: conn.writer.clone(),
            channel: conn.channel.clone(),
            batch_size: (ctx.window as u64 / 2).max(1),
            in_batch: 0,
            batch: 0,
            pongs: pongs.clone(),
        })
    });
    let receiver = tokio::spawn(receive(conn, ctx, stats, pongs, stop));
    Started { receiver, sender }
}

pub struct Sender {
    writer: Writer,
    channel: String,
    batch_size: u64,
    in_batch: u64,
    /// Batches ended so far (each with a PING carrying its number).
    batch: u64,
    pongs: Arc<Pongs>,
}

impl Sender {
    pub async fn ready(&mut self) {
        if self.in_batch < self.batch_size {
            return;
        }
        self.batch += 1;
        self.in_batch = 0;
        if write(&self.writer, &format!("PING :{}\r\n", self.batch)).await.is_err() {
            return; // send() reports the broken connection
        }
        // Two batches in flight at most: the one just ended, and the next.
        loop {
            let arrived = self.pongs.arrived.notified();
            if self.pongs.last.load(Ordering::Acquire) + 1 >= self.batch {
                return;
            }
            arrived.await;
        }
    }

    pub async fn send(&mut self, text: &str) -> bool {
        self.in_batch += 1;
        write(&self.writer, &format!("PRIVMSG {} :{text}\r\n", self.channel)).await.is_ok()
    }
}

async fn receive(
    mut conn: Conn,
    ctx: Arc<Ctx>,
    mut stats: RecvStats,
    pongs: Arc<Pongs>,
    mut stop: watch::Receiver<bool>,
) -> RecvStats {
    loop {
        let line = tokio::select! {
            l = conn.lines.next_line() => l,
            _ = stop.changed() => break,
        };
        let Ok(Some(line)) = line else {
            stats.disconnects += 1;
            break;
        };
        match command(&line) {
            "PRIVMSG" => match ctx.parse(trailing(&line)) {
                Some((sender, seq, sent)) => {
                    stats.delivery(sender, seq, sent, ctx.now_ns());
                    Progress::add(&ctx.progress.delivered, 1);
                }
                None => stats.foreign += 1,
            },
            "PING" => {
                let _ = write(&conn.writer, &format!("PONG :{}\r\n", trailing(&line))).await;
            }
            "PONG" => {
                if let Ok(n) = trailing(&line).parse::<u64>() {
                    pongs.last.fetch_max(n, Ordering::AcqRel);
                    pongs.arrived.notify_waiters();
                }
            }
            "ERROR" => {
                stats.disconnects += 1;
                break;
            }
            _ => {}
        }
    }
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, write(&conn.writer, "QUIT :bench over\r\n")).await;
    stats
}
