//! Command-line arguments. Every flag that has an environment variable
//! says so in its help; flags win over the environment, which wins over the
//! config file, which wins over the built-in defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "udpchat", version, about = "Group chat over UDP: encrypted, loss-proof, fast.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a chat server.
    Server(ServerArgs),
    /// Chat in the terminal (or line by line with --plain).
    Chat(ChatArgs),
    /// Send lines to a room and exit once the server acknowledged them all.
    Send(SendArgs),
    /// Create the server key (if missing) and print it.
    Keygen(KeygenArgs),
    /// Manage accounts: registered nicknames and operators.
    User(UserArgs),
    /// Load-test a server (udpchat, or a plain-text UDP chat or an IRC
    /// server for comparison) and report delivery, loss and latency.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The server's data directory (where its history database is).
    #[arg(long, env = "UDPCHAT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub action: UserAction,
}

/// Passwords are asked for twice without echo; from a script, set
/// UDPCHAT_NEW_PASSWORD or pipe the password into standard input.
#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Register a nickname (only its password will log in with it).
    Add {
        name: String,
        /// May /kick, /ban and set /topic in any room.
        #[arg(long)]
        operator: bool,
    },
    /// Change an account's password (and, with --operator/--no-operator, its rights).
    Passwd {
        name: String,
        #[arg(long, conflicts_with = "no_operator")]
        operator: bool,
        #[arg(long)]
        no_operator: bool,
    },
    /// Delete an account (its nickname becomes free for anyone).
    Del { name: String },
    /// List accounts.
    List,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConsoleMode {
    /// Read operator lines when standard input is a terminal.
    Auto,
    /// Always read operator lines from standard input.
    On,
    /// Never read standard input (service mode).
    Off,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address and port to listen on ([::]:PORT accepts IPv4 and IPv6).
    #[arg(long, env = "UDPCHAT_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the server key (and, later, history).
    #[arg(long, env = "UDPCHAT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// TOML config file (see README for the keys).
    #[arg(long, env = "UDPCHAT_CONFIG")]
    pub config: Option<PathBuf>,
    /// File whose first line is the shared server password. The password
    /// can also come from UDPCHAT_SERVER_PASSWORD; there is deliberately no
    /// flag for the password itself (it would show in `ps`).
    #[arg(long, env = "UDPCHAT_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Message of the day sent to everyone who logs in.
    #[arg(long, env = "UDPCHAT_MOTD")]
    pub motd: Option<String>,
    /// Name the server gives itself in the welcome.
    #[arg(long, env = "UDPCHAT_SERVER_NAME")]
    pub server_name: Option<String>,
    /// Whether typed lines go to the chat as the operator's.
    #[arg(long, value_enum, default_value = "auto")]
    pub console: ConsoleMode,
    /// Do not print every room line on the console.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ConnectArgs {
    /// Server to connect to.
    #[arg(long, short, env = "UDPCHAT_SERVER", default_value = "127.0.0.1:7667")]
    pub server: String,
    /// Your nickname (asked for if missing and the terminal is interactive).
    #[arg(long, short, env = "UDPCHAT_NICK")]
    pub nick: Option<String>,
    /// Ask for the server password without echoing it. It can also come
    /// from UDPCHAT_PASSWORD.
    #[arg(long)]
    pub ask_password: bool,
    /// Ask for your account password (for a registered nickname) without
    /// echoing it. It can also come from UDPCHAT_ACCOUNT_PASSWORD.
    #[arg(long)]
    pub ask_account_password: bool,
    /// Expect this server key (base64) instead of trusting it on first use.
    #[arg(long, env = "UDPCHAT_SERVER_KEY")]
    pub server_key: Option<String>,
    /// Where first-use server keys are remembered
    /// (default ~/.config/udpchat/known_servers).
    #[arg(long, env = "UDPCHAT_KNOWN_SERVERS")]
    pub known_servers: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Room to join and talk in (besides the lobby).
    #[arg(long, short)]
    pub room: Option<String>,
    /// No full-screen interface: commands and lines from standard input,
    /// every event as one timestamped line on standard output.
    #[arg(long)]
    pub plain: bool,
    /// With --plain: seconds to keep listening after standard input closes.
    #[arg(long, default_value_t = 1.0)]
    pub linger: f64,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Seconds to wait for all acknowledgements before failing.
    #[arg(long, default_value_t = 30.0)]
    pub timeout: f64,
    /// Room to send to.
    #[arg(default_value = udpchat_chat::LOBBY)]
    pub room: String,
    /// The line to send; without it, each line of standard input is sent.
    pub text: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    #[arg(long, env = "UDPCHAT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `udpchat bench`. Every loop it runs is bounded by a count and a time.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to drive: udpchat://HOST:PORT, text://HOST:PORT (a plain-text
    /// UDP chat: the first datagram is the nickname, every later one a line)
    /// or irc://HOST:PORT (NICK/USER/JOIN, then PRIVMSG to the channel).
    #[arg(long, default_value = "udpchat://127.0.0.1:7667")]
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
    /// (read from /proc, so Linux only, and the same machine).
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
