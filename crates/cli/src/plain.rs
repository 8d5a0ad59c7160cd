//! `udpchat chat --plain`: no full-screen interface. Commands and lines are
//! read from standard input; every event is printed as one timestamped
//! line on standard output (the client model's items, `display::plain`,
//! times in local time).
//!
//! Lines go to the current room: `--room` from the start (the session joins
//! it before sending any line), then the room of the last `/join` once it is
//! joined. A reconnect rejoins rooms but never changes the current one.
//! When standard input closes (or on `/quit`, `QUIT`, Ctrl-C), the client
//! keeps listening for `--linger` seconds, then leaves once its lines are
//! acknowledged (the session waits, bounded); the exit code is non-zero if
//! a line was refused or not acknowledged, and those lines are named.
//! Input is read from the first login answer on: a refused login ends at
//! once with a non-zero code, except a refused nickname, when the next
//! input line is taken as another nickname.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;
use udpchat_client::chat::{RefuseCode, ServerMsg};
use udpchat_client::model::items;
use udpchat_client::model::safe_text::safe;
use udpchat_client::{Client, ClientEvent, HELP, Input, input};

use crate::args::ChatArgs;
use crate::{connect, display};

/// Our lines not yet answered, by request id: (input line number, text).
type Outstanding = HashMap<u64, (usize, String)>;

pub async fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let mut options = connect::options(&args.connect, false)?;
    options.reconnect = true;
    let mut room = udpchat_chat::LOBBY.to_owned();
    if let Some(r) = &args.room {
        room = r.trim_start_matches('#').to_owned();
        options.rooms.push(room.clone());
    }
    let (client, mut events) = Client::connect(options).await?;
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut line_no = 0usize;
    // The room of the last /join: current once it is joined.
    let mut joining: Option<String> = None;
    let mut awaiting_nick = false;
    // Input is read once the login is answered: a refused nickname then
    // takes the next line as another one (not as a line to send).
    let mut answered = false;
    let mut outstanding = Outstanding::new();
    let mut linger_until = None;
    let mut leaving = false;
    let mut out = std::io::stdout();
    let mut code = ExitCode::SUCCESS;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let linger = async {
            match linger_until {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            line = stdin.next_line(), if stdin_open && !leaving && (answered || awaiting_nick) => match line {
                Ok(Some(line)) => {
                    line_no += 1;
                    if awaiting_nick {
                        let nick = line.trim();
                        if !nick.is_empty() {
                            awaiting_nick = false;
                            client.login(nick).await;
                        }
                        continue;
                    }
                    match input::parse(&line, &room) {
                        Ok(Input::Help) => writeln!(out, "{HELP}")?,
                        Ok(Input::Quit(reason)) => {
                            leaving = true;
                            client.quit(&reason).await;
                        }
                        Ok(i) => {
                            if let Input::Join(r) = &i {
                                joining = Some(r.clone());
                            }
                            if let Some(id) = client.input(i).await {
                                outstanding.insert(id, (line_no, line));
                            }
                        }
                        Err(e) => writeln!(out, "[{}] !! {e}", display::clock(now_ms()))?,
                    }
                }
                _ => {
                    stdin_open = false;
                    linger_until = Some(tokio::time::Instant::now() + Duration::from_secs_f64(args.linger.max(0.0)));
                }
            },
            _ = linger => {
                linger_until = None;
                leaving = true;
                client.quit("").await;
            }
            _ = &mut ctrl_c, if !leaving => {
                leaving = true;
                client.quit("").await;
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                match &event {
                    // No answer (yet): read on, so that the end of input is
                    // seen and leaving (bounded) names the lines not sent.
                    ClientEvent::Server(ServerMsg::Welcome { .. })
                    | ClientEvent::Note(_)
                    | ClientEvent::Disconnected { .. } => answered = true,
                    ClientEvent::Server(ServerMsg::Joined { room: r, .. }) if joining.as_deref() == Some(r.as_str()) => {
                        joining = None;
                        room = r.clone();
                    }
                    ClientEvent::Server(ServerMsg::Parted { room: r }) if *r == room => room = udpchat_chat::LOBBY.into(),
                    ClientEvent::Server(ServerMsg::LoginRefused { code: c, .. }) => {
                        if matches!(c, RefuseCode::NickTaken | RefuseCode::NickInvalid | RefuseCode::NickRegistered) {
                            awaiting_nick = true;
                        } else {
                            code = ExitCode::FAILURE;
                        }
                    }
                    ClientEvent::Delivered { id, .. } => {
                        outstanding.remove(id);
                    }
                    ClientEvent::Server(ServerMsg::Error { id, text, .. }) => {
                        if let Some((n, line)) = outstanding.remove(id) {
                            code = ExitCode::FAILURE;
                            eprintln!("udpchat chat: line {n} not delivered ({text}): {}", safe(&line));
                        }
                    }
                    ClientEvent::Unconfirmed { ids } => {
                        for id in ids {
                            if let Some((n, line)) = outstanding.remove(id) {
                                code = ExitCode::FAILURE;
                                eprintln!("udpchat chat: line {n} not acknowledged: {}", safe(&line));
                            }
                        }
                    }
                    _ => {}
                }
                for it in items(&event) {
                    writeln!(out, "{}", display::plain(&it))?;
                }
                if awaiting_nick && matches!(event, ClientEvent::Server(ServerMsg::LoginRefused { .. })) {
                    writeln!(out, "[{}] -- type another nickname", display::clock(now_ms()))?;
                }
                out.flush()?;
                if let ClientEvent::Closed { .. } = event {
                    // Never answered nor reported (the client stopped first).
                    let mut left: Vec<(usize, String)> = outstanding.drain().map(|(_, l)| l).collect();
                    left.sort();
                    for (n, line) in left {
                        code = ExitCode::FAILURE;
                        eprintln!("udpchat chat: line {n} not acknowledged: {}", safe(&line));
                    }
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
