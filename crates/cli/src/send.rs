//! `udpchat send`: for scripts and bots. Sends its arguments (or each line
//! of standard input) to a room and exits 0 only when the server has
//! acknowledged every line; otherwise it says why and exits 1.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use tokio::io::AsyncBufReadExt;
use udpchat_client::chat::ServerMsg;
use udpchat_client::{Client, ClientEvent};

use crate::args::SendArgs;
use crate::connect;

pub async fn run(args: SendArgs) -> anyhow::Result<ExitCode> {
    let mut lines = Vec::new();
    if args.text.is_empty() {
        if std::io::stdin().is_terminal() {
            bail!("nothing to send: give TEXT, or pipe lines into standard input");
        }
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = stdin.next_line().await? {
            lines.push(line);
        }
    } else {
        lines.push(args.text.join(" "));
    }
    let mut options = connect::options(&args.connect, false)?;
    let room = args.room.trim_start_matches('#').to_owned();
    if room != udpchat_chat::LOBBY {
        options.rooms.push(room.clone());
    }
    let (client, mut events) = Client::connect(options).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.timeout.max(0.1));
    let mut pending: HashSet<u64> = HashSet::new();
    let mut failures = Vec::new();
    let mut sent = false;
    let outcome = loop {
        let event = tokio::select! {
            e = events.recv() => e,
            _ = tokio::time::sleep_until(deadline) => break Err(format!("timed out with {} line(s) unacknowledged", pending.len())),
        };
        let Some(event) = event else { break Err("client stopped".into()) };
        match event {
            ClientEvent::Server(ServerMsg::Joined { room: r, .. }) if r == room && !sent => {
                sent = true;
                for line in &lines {
                    pending.insert(client.say(&room, line).await);
                }
            }
            ClientEvent::Server(ServerMsg::Ack { id, .. }) => {
                pending.remove(&id);
            }
            ClientEvent::Server(ServerMsg::Error { id, text, .. }) => {
                if pending.remove(&id) {
                    failures.push(text);
                } else if !sent {
                    break Err(text);
                }
            }
            ClientEvent::Server(ServerMsg::LoginRefused { text, .. }) => break Err(format!("login refused: {text}")),
            ClientEvent::Disconnected { reason, .. } => break Err(format!("disconnected: {reason}")),
            ClientEvent::Closed { reason } => break Err(format!("closed: {reason}")),
            _ => {}
        }
        if sent && pending.is_empty() {
            break Ok(());
        }
    };
    client.quit("").await;
    // Give the goodbye a moment to leave; the result does not depend on it.
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(e) = events.recv().await {
            if matches!(e, ClientEvent::Closed { .. }) {
                break;
            }
        }
    })
    .await;
    match outcome {
        Ok(()) if failures.is_empty() => Ok(ExitCode::SUCCESS),
        Ok(()) => {
            for f in &failures {
                eprintln!("udpchat send: refused: {f}");
            }
            Ok(ExitCode::FAILURE)
        }
        Err(why) => {
            eprintln!("udpchat send: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}
