//! `udpchat-bench`: the load generator, a binary of its own so that the
//! product (`udpchat`) carries none of its code or dependencies (JSON
//! reports, progress bars, histograms, loss injection). It measures a chat
//! server from the outside, the way its users see it; `run.rs` says how,
//! and benches/compare.sh runs it against udpchat and its peers.

#![forbid(unsafe_code)]

mod args;
mod ctx;
mod irc;
mod loss;
mod members;
mod procfs;
mod progress;
mod report;
mod run;
mod stats;
mod text;
mod udpchat;

use std::process::ExitCode;

use clap::Parser;

use args::BenchArgs;

fn main() -> ExitCode {
    let args = BenchArgs::parse();
    // Diagnostics go to stderr so they never mix with the report.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("UDPCHAT_LOG").unwrap_or_else(|_| "warn".into()))
        .init();
    // One thread keeps the load generator on one core, leaving the others
    // to the server when both share a machine.
    let mut builder = if args.threads > 1 {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("udpchat-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run::run(args)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("udpchat-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
