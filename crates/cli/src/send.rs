//! `udpchat send`: for scripts and bots. Sends its arguments (or each line
//! of standard input, in order) to a room and exits 0 only when the server
//! has acknowledged every line; otherwise it names the lines that were not
//! acknowledged (by input line number) and why, and exits 1.
//!
//! Lines are handed to the client as fast as it takes them: the session
//! core paces them to the server's `Limits` (docs/PROTOCOL.md §15.6) and
//! holds the front end back when its outbox is full, so any number of
//! lines go out without being refused for speed. On a terminal, stderr
//! shows progress (acknowledged of total, time left at the current rate).
//! Ctrl-C stops handing over lines, waits at most `session::QUIT_WAIT`
//! (plus a moment to close) for those handed over, and names the rest.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use udpchat_client::chat::ServerMsg;
use udpchat_client::{Client, ClientEvent};

use crate::args::SendArgs;
use crate::connect;

/// Without `--timeout`: how long to wait without any acknowledgement.
/// Longer than a dead server takes to notice (the 30 s idle timeout) and
/// the move to the next address of `--server` after it, so a server that
/// dies under `send` costs a failover, not the run.
const STALL: Duration = Duration::from_secs(60);
/// After giving up, how long the client may take to close.
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// Ranges of line numbers printed at most (the count is always given).
const MAX_RANGES: usize = 20;

/// What became of each input line, by index.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    Waiting,
    Acknowledged,
    Refused(String),
}

struct Tally {
    fates: Vec<Fate>,
    /// Request id → line index.
    line_of: HashMap<u64, usize>,
    /// Answers that came before the feeder reported their id (a race
    /// between the feeder task and this one).
    early: HashMap<u64, Fate>,
    handed: usize,
    answered: usize,
}

impl Tally {
    fn new(total: usize) -> Self {
        Self {
            fates: vec![Fate::Waiting; total],
            line_of: HashMap::new(),
            early: HashMap::new(),
            handed: 0,
            answered: 0,
        }
    }

    fn handed(&mut self, id: u64, index: usize) {
        self.handed += 1;
        self.line_of.insert(id, index);
        if let Some(fate) = self.early.remove(&id) {
            self.answer(id, fate);
        }
    }

    fn answer(&mut self, id: u64, fate: Fate) {
        match self.line_of.get(&id) {
            Some(&i) if self.fates[i] == Fate::Waiting => {
                self.fates[i] = fate;
                self.answered += 1;
            }
            Some(_) => {}
            None => {
                self.early.insert(id, fate);
            }
        }
    }

    fn done(&self) -> bool {
        self.answered == self.fates.len()
    }

    /// 1-based numbers of the lines never acknowledged nor refused.
    fn waiting(&self) -> Vec<usize> {
        self.fates.iter().enumerate().filter(|(_, f)| **f == Fate::Waiting).map(|(i, _)| i + 1).collect()
    }
}

/// `1-3, 7, 9-10`, at most [`MAX_RANGES`] ranges then `…`.
fn ranges(numbers: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        while i + 1 < numbers.len() && numbers[i + 1] == numbers[i] + 1 {
            i += 1;
        }
        if out.len() == MAX_RANGES {
            out.push("…".into());
            break;
        }
        out.push(if numbers[i] == start { start.to_string() } else { format!("{start}-{}", numbers[i]) });
        i += 1;
    }
    out.join(", ")
}

fn progress_bar(total: usize) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() || total < 2 {
        return None;
    }
    let bar = ProgressBar::new(total as u64);
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} acknowledged, {msg}, {eta} left")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Some(bar)
}

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
    // Reconnecting is safe: lines not acknowledged are sent again with
    // the same ids and the server stores each once (Login origin).
    let mut options = connect::options(&args.connect, false)?;
    options.reconnect = true;
    let room = args.room.trim_start_matches('#').to_owned();
    if room != udpchat_chat::LOBBY {
        // Joined before any line goes: the session sends its joins first.
        options.rooms.push(room.clone());
    }
    let total = lines.len();
    let (client, mut events) = Client::connect(options).await?;
    let (id_tx, mut id_rx) = mpsc::unbounded_channel();
    let feeder = {
        let (client, room) = (client.clone(), room.clone());
        tokio::spawn(async move {
            for (index, line) in lines.into_iter().enumerate() {
                let id = client.say(&room, &line).await;
                if id_tx.send((id, index)).is_err() {
                    break;
                }
            }
        })
    };
    let limit = args.timeout.map(|t| Duration::from_secs_f64(t.max(0.1)));
    let started = Instant::now();
    let mut last_progress = started;
    let bar = progress_bar(total);
    let mut tally = Tally::new(total);
    let mut why: Option<String> = None;
    let mut leaving_since: Option<Instant> = None;
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let give_up_at = match (leaving_since, limit) {
            // Interrupted: the client's own bounded wait for the lines it has.
            (Some(t), _) if interrupted => t + udpchat_client::session::QUIT_WAIT + CLOSE_WAIT,
            (Some(t), _) => t + CLOSE_WAIT,
            (None, Some(limit)) => started + limit,
            (None, None) => last_progress + STALL,
        };
        tokio::select! {
            Some((id, index)) = id_rx.recv() => {
                tally.handed(id, index);
                if let Some(bar) = &bar {
                    bar.set_message(format!("{} handed to the client", tally.handed));
                }
                continue;
            }
            // Ctrl-C: hand over no more lines, wait (bounded) for those
            // handed over (at most QUIT_WAIT more), and name the rest.
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                feeder.abort();
                why = Some("interrupted".into());
                leaving_since = Some(Instant::now());
                client.quit("").await;
            }
            _ = tokio::time::sleep_until(give_up_at) => {
                if leaving_since.is_some() {
                    why.get_or_insert_with(|| "the client did not close in time".into());
                    break;
                }
                why = Some(match limit {
                    Some(l) => format!("timed out after {} s", l.as_secs_f64()),
                    None => format!("no acknowledgement for {} s", STALL.as_secs()),
                });
                leaving_since = Some(Instant::now());
                client.quit_within("", Duration::ZERO).await;
            }
            event = events.recv() => {
                let Some(event) = event else { break };
                match event {
                    ClientEvent::Delivered { id, .. } => {
                        tally.answer(id, Fate::Acknowledged);
                        last_progress = Instant::now();
                    }
                    ClientEvent::Server(ServerMsg::Error { id, text, .. }) if id != 0 => {
                        tally.answer(id, Fate::Refused(text));
                        last_progress = Instant::now();
                    }
                    ClientEvent::Server(ServerMsg::Error { text, .. }) => {
                        // A failed join: the lines for the room will be refused too.
                        eprintln!("udpchat send: {text}");
                    }
                    ClientEvent::Server(ServerMsg::LoginRefused { text, .. }) => {
                        why = Some(format!("login refused: {text}"));
                        leaving_since.get_or_insert_with(Instant::now);
                        client.quit_within("", Duration::ZERO).await;
                    }
                    // After Ctrl-C this command bounds the wait itself.
                    ClientEvent::Note(_) if interrupted => {}
                    ClientEvent::Note(text) => {
                        match &bar {
                            Some(bar) => bar.println(format!("udpchat send: {text}")),
                            None => eprintln!("udpchat send: {text}"),
                        }
                    }
                    ClientEvent::Disconnected { reason, reconnecting: false } => {
                        why.get_or_insert(format!("disconnected: {reason}"));
                    }
                    ClientEvent::Closed { reason } => {
                        why.get_or_insert(format!("closed: {reason}"));
                        break;
                    }
                    _ => {}
                }
                if let Some(bar) = &bar {
                    bar.set_position(tally.answered as u64);
                }
                if tally.done() && leaving_since.is_none() {
                    leaving_since = Some(Instant::now());
                    client.quit("").await;
                }
            }
        }
    }
    feeder.abort();
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let waiting = tally.waiting();
    let refused: Vec<(usize, &str)> = tally
        .fates
        .iter()
        .enumerate()
        .filter_map(|(i, f)| match f {
            Fate::Refused(text) => Some((i + 1, text.as_str())),
            _ => None,
        })
        .collect();
    for (line, text) in refused.iter().take(MAX_RANGES) {
        eprintln!("udpchat send: line {line} refused: {text}");
    }
    if refused.len() > MAX_RANGES {
        eprintln!("udpchat send: … {} lines refused in all", refused.len());
    }
    if !waiting.is_empty() {
        let why = why.unwrap_or_else(|| "the client stopped".into());
        eprintln!(
            "udpchat send: {why}: {} of {total} line(s) not acknowledged (line {}); they may or may not have been delivered",
            waiting.len(),
            ranges(&waiting)
        );
    }
    Ok(if waiting.is_empty() && refused.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_ranges() {
        assert_eq!(ranges(&[1, 2, 3, 7, 9, 10]), "1-3, 7, 9-10");
        assert_eq!(ranges(&[5]), "5");
        let many: Vec<usize> = (1..100).step_by(2).collect();
        assert!(ranges(&many).ends_with(", …"));
    }

    #[test]
    fn answers_before_ids_still_count() {
        let mut t = Tally::new(3);
        t.answer(10, Fate::Acknowledged);
        t.handed(10, 0);
        t.handed(11, 1);
        t.answer(11, Fate::Refused("too long".into()));
        t.answer(11, Fate::Acknowledged);
        assert_eq!(t.answered, 2);
        assert_eq!(t.waiting(), [3]);
        assert!(!t.done());
    }
}
