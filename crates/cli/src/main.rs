//! `udpchat`: the one binary. Each subcommand lives in its own module;
//! this file parses arguments, sets up logging and the runtime, and turns
//! errors into a message and a non-zero exit code.

#![forbid(unsafe_code)]

mod args;
mod connect;
mod console;
mod display;
mod plain;
mod send;
mod server;
mod tui;
mod user;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Diagnostics go to stderr so they never mix with chat output.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("UDPCHAT_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
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
            Command::Send(args) => send::run(args).await,
            Command::Chat(args) if args.plain => plain::run(args).await,
            Command::Chat(args) => tui::run(args).await,
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
