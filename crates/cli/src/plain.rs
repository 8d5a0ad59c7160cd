//! `udpchat chat --plain`: no full-screen interface. Commands and lines are
//! read from standard input; every event is printed as one timestamped
//! line on standard output (the client model's items, `display::plain`,
//! times in local time). When standard input closes, the client keeps
//! listening for `--linger` seconds, then says goodbye and exits.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use udpchat_client::chat::ServerMsg;
use udpchat_client::model::items;
use udpchat_client::{Client, ClientEvent, HELP, Input, input};

use crate::args::ChatArgs;
use crate::{connect, display};

pub async fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let mut options = connect::options(&args.connect, false)?;
    options.reconnect = true;
    if let Some(room) = &args.room {
        options.rooms.push(room.trim_start_matches('#').to_owned());
    }
    let (client, mut events) = Client::connect(options).await?;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut room = udpchat_chat::LOBBY.to_owned();
    let mut linger_until = None;
    let mut out = std::io::stdout();
    let mut code = ExitCode::SUCCESS;
    loop {
        let linger = async {
            match linger_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => match input::parse(&line, &room) {
                    Ok(Input::Help) => writeln!(out, "{HELP}")?,
                    Ok(i) => {
                        client.input(i).await;
                    }
                    Err(e) => writeln!(out, "[{}] !! {e}", display::clock(now_ms()))?,
                },
                _ => {
                    stdin_open = false;
                    linger_until = Some(tokio::time::Instant::now() + Duration::from_secs_f64(args.linger.max(0.0)));
                }
            },
            _ = linger => {
                linger_until = None;
                client.quit("").await;
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                match &event {
                    ClientEvent::Server(ServerMsg::Joined { room: r, .. }) => room = r.clone(),
                    ClientEvent::Server(ServerMsg::Parted { room: r }) if *r == room => room = udpchat_chat::LOBBY.into(),
                    ClientEvent::Server(ServerMsg::LoginRefused { .. }) => code = ExitCode::FAILURE,
                    _ => {}
                }
                for it in items(&event) {
                    writeln!(out, "{}", display::plain(&it))?;
                }
                out.flush()?;
                if let ClientEvent::Closed { .. } = event {
                    break;
                }
            }
        }
    }
    Ok(code)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
