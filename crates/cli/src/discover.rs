//! `udpchat discover` (list the servers on the LAN, docs/PROTOCOL.md §16)
//! and `chat --lan` (connect to the one found, or ask which). Discovery
//! itself is the client library's (`udpchat_client::discovery`), shared
//! with the GUI.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use udpchat_client::discovery::{DiscoverOptions, FoundServer, Via, discover_with};

use crate::args::{ConnectArgs, DiscoverArgs};

/// How long `chat --lan` listens for answers.
const LAN_TIMEOUT: Duration = Duration::from_secs(2);

fn via(server: &FoundServer) -> String {
    let names: Vec<&str> = server
        .via
        .iter()
        .map(|v| match v {
            Via::Beacon => "broadcast",
            Via::Mdns => "mdns",
        })
        .collect();
    names.join("+")
}

fn json(server: &FoundServer) -> serde_json::Value {
    serde_json::json!({
        "name": server.name,
        "address": server.addr.to_string(),
        "key": server.key.to_string(),
        "password": server.password,
        "members": server.members,
        "version": server.version,
        "plain_port": server.plain_port,
        "via": server.via.iter().map(|v| match v { Via::Beacon => "broadcast", Via::Mdns => "mdns" }).collect::<Vec<_>>(),
    })
}

pub async fn run(args: DiscoverArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.timeout > 0.0 && args.timeout <= 60.0, "--timeout: give 0.1 to 60 seconds");
    let options =
        DiscoverOptions { port: args.port, timeout: Duration::from_secs_f64(args.timeout), mdns: !args.no_mdns };
    let servers = discover_with(&options).await.context("discovery failed")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<_> = servers.iter().map(json).collect();
        writeln!(out, "{}", serde_json::to_string_pretty(&list)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if servers.is_empty() {
        eprintln!(
            "no udpchat server answered within {} s (servers answer when lan_discovery is on: by default on a private address)",
            args.timeout
        );
        return Ok(ExitCode::from(1));
    }
    writeln!(
        out,
        "{:<24} {:<28} {:>7} {:<8} {:<6} {:<44} FOUND BY",
        "NAME", "ADDRESS", "MEMBERS", "PASSWORD", "PLAIN", "KEY"
    )?;
    for s in &servers {
        let members = s.members.map_or_else(|| "?".to_owned(), |m| m.to_string());
        let plain = s.plain_port.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let password = if s.password { "yes" } else { "no" };
        let name = udpchat_client::model::safe_text::safe(&s.name);
        writeln!(
            out,
            "{name:<24} {:<28} {members:>7} {password:<8} {plain:<6} {:<44} {}",
            s.addr.to_string(),
            s.key.to_string(),
            via(s)
        )?;
    }
    writeln!(out, "(unauthenticated: the key is checked when you connect, and pinned on first use)")?;
    Ok(ExitCode::SUCCESS)
}

/// For `chat --lan`: sets `--server` to the server found on the LAN, or
/// to the one the user picks when several answer.
pub async fn pick(connect: &mut ConnectArgs) -> anyhow::Result<()> {
    let servers = discover_with(&DiscoverOptions::new(LAN_TIMEOUT)).await.context("discovery failed")?;
    let chosen = match servers.len() {
        0 => bail!(
            "no udpchat server answered on the LAN within {} s; is lan_discovery on at the server? Or give --server HOST:PORT",
            LAN_TIMEOUT.as_secs()
        ),
        1 => &servers[0],
        n if std::io::stdin().is_terminal() => {
            eprintln!("{n} servers answered:");
            for (i, s) in servers.iter().enumerate() {
                eprintln!(
                    "  {}) {} at {} (key {})",
                    i + 1,
                    udpchat_client::model::safe_text::safe(&s.name),
                    s.addr,
                    s.key
                );
            }
            eprint!("which one (1-{n})? ");
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            match line.trim().parse::<usize>() {
                Ok(i) if (1..=n).contains(&i) => &servers[i - 1],
                _ => bail!("no server chosen (type a number from 1 to {n})"),
            }
        }
        n => {
            let list: Vec<String> = servers.iter().map(|s| format!("{} ({})", s.addr, s.name)).collect();
            bail!("{n} servers answered on the LAN; choose one with --server: {}", list.join(", "));
        }
    };
    eprintln!(
        "-- found {} at {} on the LAN (unauthenticated; its key {} is checked when connecting)",
        udpchat_client::model::safe_text::safe(&chosen.name),
        chosen.addr,
        chosen.key
    );
    connect.server = chosen.addr.to_string();
    Ok(())
}
