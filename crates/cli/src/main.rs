//! `udpchat`: the one binary. Each subcommand lives in its own module;
//! this file parses arguments, sets up logging and the runtime, and turns
//! errors into a message and a non-zero exit code.

#![forbid(unsafe_code)]

mod admin;
mod args;
mod connect;
mod console;
mod discover;
mod display;
mod docs;
mod plain;
mod send;
mod server;
mod tui;
mod user;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Diagnostics go to stderr so they never mix with chat output.
    let filter = tracing_subscriber::EnvFilter::try_from_env("UDPCHAT_LOG").unwrap_or_else(|_| "warn".into());
    let logs = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        // One object per line: timestamp, level, target, and the event's
        // fields flattened beside its message.
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("udpchat: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Server(args) => server::run(args).await,
            Command::Keygen(args) => server::keygen(args),
            Command::User(args) => user::run(args),
            Command::Admin(args) => admin::run(args),
            Command::Send(args) => send::run(args).await,
            Command::Discover(args) => discover::run(args).await,
            Command::Chat(mut args) => {
                if args.lan {
                    discover::pick(&mut args.connect).await?;
                }
                if args.plain { plain::run(args).await } else { tui::run(args).await }
            }
            Command::Completions { shell } => Ok(docs::completions(shell)),
            Command::Manpage { dir } => docs::manpage(dir.as_deref()),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("udpchat: {e:#}");
            ExitCode::FAILURE
        }
    }
}
