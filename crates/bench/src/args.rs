//! `udpchat-bench`'s command line. Every loop the bench runs is bounded by
//! a count and a time.

use clap::Parser;

/// Load-test a server (udpchat, or a plain-text UDP chat or an IRC server
/// for comparison) and report delivery, loss and latency.
#[derive(Debug, Parser)]
#[command(name = "udpchat-bench", version)]
pub struct BenchArgs {
    /// What to drive: udpchat://HOST:PORT, text://HOST:PORT (a plain-text
    /// UDP chat: the first datagram is the nickname, every later one a line)
    /// or irc://HOST:PORT (NICK/USER/JOIN, then PRIVMSG to the channel).
    /// Several servers of one kind (a cluster's nodes) separated by commas,
    /// udpchat://HOST:PORT,HOST:PORT: session i connects to address i mod N,
    /// so members and senders are split over them and lines cross between
    /// servers.
    #[arg(long, default_value = "udpchat://127.0.0.1:7667", value_name = "KIND://HOST:PORT[,HOST:PORT...]")]
    pub target: String,
    /// Sessions to open, each with its own socket and handshake.
    #[arg(long, default_value_t = 50)]
    pub clients: usize,
    /// Rooms to spread the sessions over (session i joins room i mod R).
    #[arg(long, default_value_t = 1)]
    pub rooms: usize,
    /// How many of the sessions send (the first ones, so they spread over
    /// the rooms too).
    #[arg(long, default_value_t = 5)]
    pub senders: usize,
    /// Lines to send in all, shared between the senders.
    #[arg(long, default_value_t = 100_000)]
    pub lines: u64,
    /// Bytes per line (the payload carries sender, sequence number and send
    /// time, padded to this size).
    #[arg(long, default_value_t = 100)]
    pub size: usize,
    /// Lines per second offered in all; 0 sends as fast as flow control
    /// allows.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Longest time to send for, in seconds; with --idle, how long to hold
    /// the sessions.
    #[arg(long, default_value_t = 60.0)]
    pub duration: f64,
    /// Once sending has ended, give up on missing deliveries after this
    /// many seconds in which none arrived.
    #[arg(long, default_value_t = 5.0)]
    pub drain: f64,
    /// Lines one sender may have in flight: unacknowledged (udpchat, default
    /// 64) or between PING round trips (irc, default 10: ngIRCd drops a
    /// client that has more than 2 KiB of unread commands). text:// has no
    /// flow control at all.
    #[arg(long)]
    pub window: Option<usize>,
    /// Sessions that may be connecting at the same time (udpchat: in two
    /// passes, every handshake and then every login). More is not faster:
    /// servers drop handshakes past their backlog or rate limit (ngIRCd's
    /// listen backlog is 10), and the retries wait seconds.
    #[arg(long, default_value_t = 8)]
    pub connect_concurrency: usize,
    /// Fraction (0 to 1) of datagrams the bench's own clients drop on
    /// purpose, received and sent alike (udpchat:// and text://).
    #[arg(long, default_value_t = 0.0)]
    pub drop: f64,
    /// The server's process id: report the CPU time it used and its memory
    /// (read from /proc, so Linux only, and the same machine). With several
    /// --target servers, one of them (benches/cluster.sh reads the others'
    /// CPU time itself).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Only connect: open the sessions, send nothing, hold them for
    /// --duration seconds, then report setup rate and server memory and CPU.
    #[arg(long)]
    pub idle: bool,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Threads for the bench's own runtime. 1 keeps the load generator on
    /// one core, leaving the others to the server when both share a machine.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// irc://: NAME:PASSWORD of an IRC operator; senders OPER and set user
    /// mode +F (ngIRCd's relaxed flood protection) before sending.
    #[arg(long, env = "UDPCHAT_BENCH_IRC_OPER")]
    pub irc_oper: Option<String>,
}
