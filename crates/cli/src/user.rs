//! `udpchat user`: accounts in the server's history database. It can run
//! while the server does (the server reads accounts at each login). With
//! `--cluster` each change is also published to the cluster's stream, from
//! which every node stores it (docs/SCALING.md).
//! Passwords are hashed with argon2id; they are read without echo, from
//! UDPCHAT_NEW_PASSWORD, or from standard input when it is not a terminal.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;

use anyhow::{Context, bail};
use udpchat_chat::names::{check_nick, fold};
use udpchat_server::chat::hash_password;
use udpchat_server::settings::default_data_dir;
use udpchat_server::store::{Account, SqliteStore, Store};

use crate::args::{UserAction, UserArgs};

fn new_password(name: &str) -> anyhow::Result<String> {
    let password = if let Ok(pw) = std::env::var("UDPCHAT_NEW_PASSWORD") {
        pw
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("new password for {name}: "))?;
        let again = rpassword::prompt_password("again: ")?;
        if first != again {
            bail!("the passwords differ");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    if password.chars().count() < 8 {
        bail!("the password must have at least 8 characters");
    }
    Ok(password)
}

/// " (N lines/s)" for an account with its own rate.
fn shown_rate(rate: u32) -> String {
    if rate == 0 { String::new() } else { format!(" ({rate} lines/s)") }
}

/// Publishes an account change to the cluster, if there is one.
fn share(cluster: Option<&str>, key: &str, account: Option<&Account>) -> anyhow::Result<()> {
    let Some(urls) = cluster else { return Ok(()) };
    // A runtime of its own on a thread of its own: this command runs
    // inside the binary's runtime, which must not be blocked on.
    let (owned_urls, key, account) = (urls.to_owned(), key.to_owned(), account.cloned());
    std::thread::spawn(move || -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(udpchat_server::cluster::publish_account(&owned_urls, &key, account.as_ref()))?;
        Ok(())
    })
    .join()
    .map_err(|_| anyhow::anyhow!("publishing to the cluster failed"))??;
    println!("published to the cluster at {urls}");
    Ok(())
}

pub fn run(args: UserArgs) -> anyhow::Result<ExitCode> {
    let dir = args.data_dir.unwrap_or_else(default_data_dir);
    let cluster = args.cluster.as_deref();
    let mut store = SqliteStore::open_admin(&dir)?;
    match args.action {
        UserAction::Add { name, operator, rate } => {
            check_nick(&name).map_err(|why| anyhow::anyhow!("{name}: {why}"))?;
            let key = fold(&name);
            if store.account(&key)?.is_some() {
                bail!("{name} is already registered (use `udpchat user passwd {name}`)");
            }
            let hash = hash_password(&new_password(&name)?).map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
            let account = Account { name: name.clone(), hash, operator, rate: rate.unwrap_or(0) };
            store.put_account(&key, &account)?;
            share(cluster, &key, Some(&account))?;
            let role = if operator { " (operator)" } else { "" };
            println!("registered {name}{role}{}", shown_rate(rate.unwrap_or(0)));
        }
        UserAction::Passwd { name, operator, no_operator, rate } => {
            let key = fold(&name);
            let Some(mut account) = store.account(&key)? else { bail!("{name} is not registered") };
            account.hash = hash_password(&new_password(&name)?).map_err(|e| anyhow::anyhow!("cannot hash: {e}"))?;
            if operator || no_operator {
                account.operator = operator;
            }
            if let Some(rate) = rate {
                account.rate = rate;
            }
            store.put_account(&key, &account)?;
            share(cluster, &key, Some(&account))?;
            println!("updated {}", account.name);
        }
        UserAction::Del { name } => {
            if !store.delete_account(&fold(&name))? {
                bail!("{name} is not registered");
            }
            share(cluster, &fold(&name), None)?;
            println!("deleted {name}");
        }
        UserAction::List => {
            for a in store.accounts()? {
                let role = if a.operator { " operator" } else { "" };
                println!("{}{role}{}", a.name, shown_rate(a.rate));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
