//! Turning connection flags into client options: the nickname (asked for
//! when missing), the password (environment or a no-echo prompt), the
//! pinned key and the known-servers file.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use udpchat_client::ClientOptions;
use udpchat_client::known_hosts::KnownHosts;

use crate::args::ConnectArgs;

pub fn options(args: &ConnectArgs, interactive: bool) -> anyhow::Result<ClientOptions> {
    let nick = match &args.nick {
        Some(n) => n.clone(),
        None if interactive && std::io::stdin().is_terminal() => {
            print!("nickname: ");
            std::io::stdout().flush()?;
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            let nick = line.trim().to_owned();
            if nick.is_empty() {
                bail!("a nickname is needed (--nick)");
            }
            nick
        }
        None => bail!("a nickname is needed: --nick NAME or UDPCHAT_NICK"),
    };
    let password = if args.ask_password {
        rpassword::prompt_password("server password: ").context("cannot read the password")?
    } else {
        std::env::var("UDPCHAT_PASSWORD").unwrap_or_default()
    };
    let account_password = if args.ask_account_password {
        rpassword::prompt_password("account password: ").context("cannot read the password")?
    } else {
        std::env::var("UDPCHAT_ACCOUNT_PASSWORD").unwrap_or_default()
    };
    let server_key =
        args.server_key.as_deref().map(|k| k.parse().map_err(|e| anyhow::anyhow!("--server-key: {e}"))).transpose()?;
    let known_hosts = args.known_servers.clone().or_else(KnownHosts::default_path);
    let mut options = ClientOptions::new(&args.server, &nick);
    options.password = password;
    options.account_password = account_password;
    options.server_key = server_key;
    options.known_hosts = known_hosts;
    Ok(options)
}
