//! `udpchat admin`: the server console for a server without one (a
//! service): each subcommand becomes a console line sent over the admin
//! socket in the data directory (udpchat_server::admin), and the server's
//! answers are printed. The commands themselves are the console's
//! (crates/server/src/chat/console.rs); nothing is parsed twice.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use udpchat_server::admin::SOCKET_FILE;
use udpchat_server::settings::default_data_dir;

use crate::args::{AdminArgs, AdminCommand};

/// How long to wait for the server's answer.
const TIMEOUT: Duration = Duration::from_secs(15);

/// The room and the console line a subcommand stands for.
fn console_line(command: AdminCommand) -> (Option<String>, String) {
    let words = |w: Vec<String>| w.join(" ").replace(['\n', '\r', '\t'], " ");
    match command {
        AdminCommand::Who { room } => (room, "/who".into()),
        AdminCommand::List => (None, "/list".into()),
        AdminCommand::Kick { nick, reason } => (None, format!("/kick {nick} {}", words(reason))),
        AdminCommand::Ban { target, rest } => (None, format!("/ban {target} {}", words(rest))),
        AdminCommand::Unban { target } => (None, format!("/unban {target}")),
        // A plain console line is said as the operator; one starting with
        // '/' would be a command, so it is doubled as clients do ("//").
        AdminCommand::Say { room, text } => {
            let text = words(text);
            let text = if text.starts_with('/') { format!("/{text}") } else { text };
            (Some(room), text)
        }
        AdminCommand::Msg { nick, text } => (None, format!("/msg {nick} {}", words(text))),
        AdminCommand::Topic { room, text } => (Some(room), format!("/topic {}", words(text))),
        AdminCommand::Reload => (None, "/reload".into()),
        AdminCommand::Stats => (None, "/stats".into()),
    }
}

pub fn run(args: AdminArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir.unwrap_or_else(default_data_dir);
    let path = dir.join(SOCKET_FILE);
    let mut stream = UnixStream::connect(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => anyhow::anyhow!(
            "the server is not running on {} (no one answers at {}); start it, or give its --data-dir",
            dir.display(),
            path.display()
        ),
        std::io::ErrorKind::PermissionDenied => {
            anyhow::anyhow!("not allowed to use {}: run udpchat admin as the server's user (or root)", path.display())
        }
        _ => anyhow::Error::new(e).context(format!("cannot reach the server at {}", path.display())),
    })?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let (room, line) = console_line(args.command);
    writeln!(stream, "{}\t{line}", room.unwrap_or_default()).context("cannot send the command")?;
    let mut failed = false;
    for answer in BufReader::new(stream).lines() {
        let answer = answer.context("no answer from the server")?;
        failed |= answer.starts_with("error: ");
        println!("{answer}");
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
