//! `udpchat completions SHELL` and `udpchat manpage`: both generated from
//! the same clap definitions as the parser (args.rs), so they never
//! disagree with what the binary accepts.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use crate::args::Cli;

pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "udpchat", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// `udpchat.1` on standard output, or with `dir` one page per command
/// (`udpchat.1`, `udpchat-server.1`, `udpchat-user-add.1`, …) written
/// there, which is what the main page's SUBCOMMANDS section refers to.
pub fn manpage(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cmd = Cli::command();
    match dir {
        Some(dir) => {
            clap_mangen::generate_to(cmd, dir)
                .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
        }
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout()).context("cannot write the man page")?,
    }
    Ok(ExitCode::SUCCESS)
}
