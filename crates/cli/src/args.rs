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
    /// Diagnostics on standard error as human-readable text or as one JSON
    /// object per line (for log collectors). Levels: UDPCHAT_LOG.
    #[arg(long, value_enum, env = "UDPCHAT_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
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
    /// List the udpchat servers on the local network (broadcast and mDNS).
    Discover(DiscoverArgs),
    /// Operator commands for a running server (over its admin socket).
    Admin(AdminArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one page per command to --dir.
    Manpage {
        /// Write udpchat.1, udpchat-server.1, … here (e.g. /usr/local/share/man/man1).
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// Seconds to listen for answers.
    #[arg(long, default_value_t = 2.0)]
    pub timeout: f64,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The udpchat port probes go to.
    #[arg(long, default_value_t = udpchat_client::discovery::DEFAULT_PORT)]
    pub port: u16,
    /// Only probe by broadcast; do not browse mDNS.
    #[arg(long)]
    pub no_mdns: bool,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The server's data directory (where its history database is).
    #[arg(long, env = "UDPCHAT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// On a cluster: also publish the change to these NATS servers, so
    /// every node has it (nats://host:port, comma-separated).
    #[arg(long, env = "UDPCHAT_CLUSTER", global = true)]
    pub cluster: Option<String>,
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
        /// Lines (requests) per second this account may send, for bots;
        /// the server paces faster senders to it. Default: the server's
        /// rate_per_second.
        #[arg(long, value_name = "N")]
        rate: Option<u32>,
    },
    /// Change an account's password (and, with --operator/--no-operator, its rights).
    Passwd {
        name: String,
        #[arg(long, conflicts_with = "no_operator")]
        operator: bool,
        #[arg(long)]
        no_operator: bool,
        /// Lines per second for this account (0: the server's rate).
        #[arg(long, value_name = "N")]
        rate: Option<u32>,
    },
    /// Delete an account (its nickname becomes free for anyone).
    Del { name: String },
    /// List accounts.
    List,
}

/// The server console's commands, for a server started without one
/// (`--console off`, a service). Run as the server's user (or root).
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The running server's data directory (its admin socket is there).
    #[arg(long, env = "UDPCHAT_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Who is in a room (default: the lobby).
    Who { room: Option<String> },
    /// Sessions, and rooms with how many are in each.
    List,
    /// Disconnect someone.
    Kick {
        nick: String,
        /// Why (shown to the room).
        reason: Vec<String>,
    },
    /// Ban a nickname or address: [DURATION like 10m, 2h, 7d] [reason].
    Ban {
        target: String,
        #[arg(value_name = "DURATION_AND_REASON")]
        rest: Vec<String>,
    },
    /// Lift a ban.
    Unban { target: String },
    /// Say TEXT in ROOM as the operator.
    Say {
        room: String,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// A private message from the operator to someone online.
    Msg {
        nick: String,
        #[arg(required = true)]
        text: Vec<String>,
    },
    /// Set a room's topic.
    Topic { room: String, text: Vec<String> },
    /// Reread the config and password file (like SIGHUP).
    Reload,
    /// The server's main counters.
    Stats,
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
    /// Directory for the server key, history and accounts.
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
    /// Answer LAN discovery and announce over mDNS: auto (on for a
    /// private or link-local --listen address), on, off.
    #[arg(long, env = "UDPCHAT_LAN_DISCOVERY")]
    pub lan_discovery: Option<udpchat_server::discovery::LanDiscovery>,
    /// Also take the classic clients' plain-text protocol here
    /// (UNENCRYPTED, addresses unverified; off by default). May equal
    /// --listen: the first byte tells the kinds apart.
    #[arg(long, env = "UDPCHAT_PLAIN_LISTEN")]
    pub plain_listen: Option<SocketAddr>,
    /// Run as a node of a cluster: the NATS JetStream servers that share
    /// the rooms (nats://host:port, comma-separated; see docs/SCALING.md).
    #[arg(long, env = "UDPCHAT_CLUSTER")]
    pub cluster: Option<String>,
    /// Read the server key from this file instead of DATA_DIR/server.key;
    /// a cluster's nodes share one key.
    #[arg(long, env = "UDPCHAT_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Check the settings (config file, password file, environment, flags)
    /// and exit: 0 if they are valid, else 1 naming the problem.
    #[arg(long)]
    pub check_config: bool,
}

#[derive(Debug, Args, Clone)]
pub struct ConnectArgs {
    /// Server to connect to: HOST:PORT, or several separated by commas
    /// (servers of one cluster, sharing one key), tried in turn when one
    /// does not answer. A name with several addresses stands for all.
    #[arg(long, short, env = "UDPCHAT_SERVER", default_value = "127.0.0.1:7667", value_name = "HOST:PORT[,...]")]
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
    /// Find the server on the local network instead of --server (asks
    /// which when several answer).
    #[arg(long, conflicts_with = "server")]
    pub lan: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Seconds to wait for all acknowledgements before failing (naming
    /// the lines left). Without it: as long as acknowledgements keep
    /// coming (lines are paced to the server's rate), but no more than
    /// 30 s without one.
    #[arg(long)]
    pub timeout: Option<f64>,
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
