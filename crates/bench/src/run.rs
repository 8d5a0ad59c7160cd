//! `udpchat bench`: a load generator that measures a chat server from the
//! outside, the way its users see it. It opens N sessions (each its own
//! socket and handshake), puts them in R rooms, lets S of them send lines
//! at a fixed offered rate or as fast as flow control allows, and counts
//! what every member receives: loss, duplicates, reordering and end-to-end
//! latency (each line carries its sender, sequence number and send time).
//!
//! The same tool drives udpchat and, for comparison in the same run, a
//! plain-text UDP chat server and an IRC server; one driver module per
//! kind of target (udpchat.rs, text.rs, irc.rs) does the talking,
//! members.rs connects and starts the members, and this file runs the
//! phases: connect, send, drain, report. Every loop stops by
//! a count and by a time, so a dead server makes a short, honest report
//! rather than a hung bench.

use std::process::ExitCode;
use std::sync::Arc;

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::sync::watch;

use crate::args::BenchArgs;
use crate::ctx::{Ctx, Kind, Progress, parse_target, run_tag};
use crate::members::{LineSender, connect_all, enter_all, start};
use crate::progress::Bar;
use crate::report::Report;
use crate::stats::SendStats;
use crate::{procfs, report, stats};

fn validate(args: &BenchArgs, kind: Kind) -> anyhow::Result<()> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if args.rooms == 0 || args.rooms > args.clients {
        bail!("--rooms must be between 1 and --clients");
    }
    if !args.idle && (args.senders == 0 || args.senders > args.clients) {
        bail!("--senders must be between 1 and --clients");
    }
    if !(0.0..1.0).contains(&args.drop) {
        bail!("--drop is a fraction: at least 0 and below 1");
    }
    if args.drop > 0.0 && kind == Kind::Irc {
        bail!("--drop works on datagrams; irc:// runs over TCP, which hides loss in the kernel");
    }
    if kind == Kind::Text && args.rooms > 1 {
        bail!("text:// servers have one room; use --rooms 1");
    }
    if !(args.rate >= 0.0 && args.rate.is_finite()) {
        bail!("--rate must be 0 (as fast as possible) or more");
    }
    if !(args.duration > 0.0 && args.duration.is_finite() && args.drain >= 0.0 && args.drain.is_finite()) {
        bail!("--duration must be above 0 and --drain 0 or more");
    }
    if args.size > 400 {
        // IRC lines are at most 512 bytes with the command and prefix.
        bail!("--size is at most 400 bytes");
    }
    if args.connect_concurrency == 0 {
        bail!("--connect-concurrency must be at least 1");
    }
    if let Some(w) = args.window
        && (w == 0 || (kind == Kind::Udpchat && w > 900))
    {
        // The client library holds at most 1000 requests before sending.
        bail!("--window must be between 1 and 900");
    }
    Ok(())
}

pub async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let (kind, addrs) = parse_target(&args.target)?;
    validate(&args, kind)?;
    if let Some(limit) = procfs::open_files_limit()
        && (args.clients as u64) + 64 > limit
    {
        eprintln!(
            "udpchat bench: warning: {} sessions need as many sockets but only {limit} files may be open; \
             raise the limit (ulimit -n)",
            args.clients
        );
    }
    let irc_oper = match &args.irc_oper {
        Some(s) => {
            let (n, p) = s.split_once(':').context("--irc-oper is NAME:PASSWORD")?;
            Some((n.to_owned(), p.to_owned()))
        }
        None => None,
    };
    let tag = run_tag();
    let ctx = Arc::new(Ctx {
        kind,
        addrs,
        marker: format!("~{tag} "),
        tag,
        base: Instant::now(),
        rooms: args.rooms,
        size: args.size,
        drop: args.drop,
        window: args.window.unwrap_or(match kind {
            Kind::Udpchat => 64,
            _ => 10,
        }),
        irc_oper,
        progress: Progress::default(),
    });
    let bar = Bar::new();
    let pid = args.server_pid;
    let peak_reset = pid.is_some_and(|p| procfs::reset_peak(Some(p)));
    let server_baseline = pid.and_then(|p| procfs::sample(Some(p)));
    if pid.is_some() && server_baseline.is_none() {
        eprintln!("udpchat bench: warning: cannot read /proc for --server-pid; server use is not reported");
    }
    let bench_start = procfs::sample(None);

    // Connect: every session its own socket and handshake, a bounded number
    // at a time (servers rate-limit handshakes per address).
    let connect_start = Instant::now();
    let ticker = bar.connecting(ctx.clone(), args.clients as u64);
    let (mut members, mut first_error) = connect_all(&ctx, &args).await;
    let handshakes_done = members.iter().map(|m| m.handshake).max().unwrap_or_else(Instant::now);
    if ctx.kind == Kind::Udpchat {
        // Handshakes first, all of them, then logins: so the handshake
        // rate is the handshakes' own, not that of handshake, login and
        // room entry (with its join notices) interleaved.
        let refused;
        (members, refused) = enter_all(&ctx, &args, members).await;
        first_error = first_error.or(refused);
    }
    ticker.abort();
    members.sort_by_key(|m| m.index);
    let setup_done = Instant::now();
    let failed = args.clients - members.len();
    if members.is_empty() {
        bar.finish();
        bail!("no session could connect: {}", first_error.unwrap_or_default());
    }
    let server_setup = pid.and_then(|p| procfs::sample(Some(p)));

    let mut room_size = vec![0u64; args.rooms];
    for m in &members {
        room_size[m.room] += 1;
    }
    let connected = members.len();
    let sender_count = members.iter().filter(|m| m.sends).count();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    for m in members {
        let (index, room) = (m.index, m.room);
        let started = start(m, ctx.clone(), room_size[room], stop_rx.clone());
        receivers.push(started.receiver);
        if let Some(s) = started.sender {
            senders.push((index, room, s));
        }
    }

    // Traffic (or, with --idle, nothing) and then the drain.
    let phase_start = Instant::now();
    let duration = Duration::from_secs_f64(args.duration);
    let mut send_stats = Vec::new();
    let mut send_secs = 0.0;
    if args.idle {
        let ticker = bar.holding(duration);
        tokio::time::sleep(duration).await;
        ticker.abort();
    } else {
        let ticker = bar.sending(ctx.clone(), args.lines);
        send_stats = send_all(&ctx, &args, senders, &room_size).await;
        send_secs = phase_start.elapsed().as_secs_f64();
        ticker.abort();
        let ticker = bar.draining(ctx.clone());
        drain(&ctx, Duration::from_secs_f64(args.drain), duration + Duration::from_secs_f64(args.drain)).await;
        ticker.abort();
    }
    let phase_secs = phase_start.elapsed().as_secs_f64();
    let server_end = pid.and_then(|p| procfs::sample(Some(p)));

    // Stop every member (they say goodbye) and collect what they saw.
    let _ = stop_tx.send(true);
    let mut recv_stats = Vec::with_capacity(receivers.len());
    for r in receivers {
        recv_stats.push(r.await.context("a receiving task failed")?);
    }
    bar.finish();
    let bench_end = procfs::sample(None);

    let totals = stats::totals(&recv_stats, &send_stats, &room_size, !kind.acks());
    let report = Report::build(report::Inputs {
        args: &args,
        ctx: &ctx,
        connected,
        failed,
        first_error,
        senders: sender_count,
        setup_secs: setup_done.duration_since(connect_start).as_secs_f64(),
        handshake_secs: handshakes_done.duration_since(connect_start).as_secs_f64(),
        send_secs,
        phase_secs,
        phase_start,
        totals: &totals,
        server: [server_baseline, server_setup, server_end],
        peak_reset,
        bench: [bench_start, bench_end],
    });
    if args.json {
        println!("{}", report.json()?);
    } else {
        print!("{}", report.table());
    }
    // Loss and errors are results, reported above, not failures of the bench.
    Ok(ExitCode::SUCCESS)
}

/// Runs every sender until its share of the lines is sent or `--duration`
/// is up, and returns what each sent.
async fn send_all(
    ctx: &Arc<Ctx>,
    args: &BenchArgs,
    senders: Vec<(usize, usize, LineSender)>,
    room_size: &[u64],
) -> Vec<SendStats> {
    let n = senders.len() as u64;
    if n == 0 {
        return Vec::new();
    }
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for (k, (member, room, tx)) in senders.into_iter().enumerate() {
        let k = k as u64;
        // The first `lines % n` senders send one more, so the total is exact.
        let lines = args.lines / n + u64::from(k < args.lines % n);
        let plan = Plan {
            member,
            room,
            lines,
            rate: args.rate / n as f64,
            // Senders take turns within each interval rather than all firing at once.
            offset: k as f64 / n as f64,
            t0,
            deadline,
            peers: room_size[room].saturating_sub(1),
        };
        tasks.push(tokio::spawn(send_lines(ctx.clone(), tx, plan)));
    }
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(s) = t.await {
            out.push(s);
        }
    }
    out
}

struct Plan {
    member: usize,
    room: usize,
    lines: u64,
    /// Lines per second for this sender; 0: as fast as flow control allows.
    rate: f64,
    /// Where in its interval this sender's lines fall (0 to 1).
    offset: f64,
    t0: Instant,
    deadline: Instant,
    /// Other members of the room: each accepted line is expected this often.
    peers: u64,
}

async fn send_lines(ctx: Arc<Ctx>, mut tx: LineSender, plan: Plan) -> SendStats {
    let mut sent = 0;
    for seq in 0..plan.lines {
        let stamp = if plan.rate > 0.0 {
            let due = plan.t0 + Duration::from_secs_f64((seq as f64 + plan.offset) / plan.rate);
            if due >= plan.deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            // Stamped when it was due to be typed (as late as the timer woke
            // us), before waiting for flow control: a line held back by a
            // full window is late, and that delay is the server's.
            Some(Instant::now())
        } else {
            None
        };
        if Instant::now() >= plan.deadline || tokio::time::timeout_at(plan.deadline.into(), tx.ready()).await.is_err() {
            break;
        }
        // As fast as possible, the window is always full: latency counts
        // from the moment the line leaves, not from the queue in front.
        let at = stamp.unwrap_or_else(Instant::now);
        if !tx.send(&ctx.payload(plan.member, seq, at)).await {
            break;
        }
        sent += 1;
        Progress::add(&ctx.progress.sent, 1);
        if !ctx.kind.acks() {
            Progress::add(&ctx.progress.accepted, 1);
            Progress::add(&ctx.progress.resolved, 1);
            Progress::add(&ctx.progress.expected, plan.peers);
        }
        // UDP sends rarely wait, so a sender could keep the thread to itself.
        if sent % 64 == 0 {
            tokio::task::yield_now().await;
        }
    }
    SendStats { member: plan.member, room: plan.room, sent }
}

/// After sending: waits until every line's fate is known and every
/// expected delivery has arrived, or until nothing has arrived for `idle`,
/// or `limit` has passed.
async fn drain(ctx: &Ctx, idle: Duration, limit: Duration) {
    let p = &ctx.progress;
    let start = Instant::now();
    let mut last = (u64::MAX, u64::MAX);
    let mut last_change = start;
    loop {
        let now = (Progress::get(&p.delivered), Progress::get(&p.resolved));
        if now.0 >= Progress::get(&p.expected) && now.1 >= Progress::get(&p.sent) {
            return;
        }
        if now != last {
            last = now;
            last_change = Instant::now();
        }
        if last_change.elapsed() >= idle || start.elapsed() >= limit {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
