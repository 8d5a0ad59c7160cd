//! `udpchat chat`: the full-screen terminal client, a view of the client
//! model (`udpchat_client::model`). This file owns the terminal (set up
//! and restored by `ratatui::try_init`/`ratatui::restore`, panics
//! included, plus the bracketed paste the input line wants) and the loop
//! that reads keys and client events at the same time; the terminal's own
//! state (input line, completion, scrolling) is in `state` and `line`,
//! drawing in `view`, key bindings in `keys`.

mod keys;
mod line;
mod state;
mod view;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event, EventStream, KeyEventKind};
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior};
use udpchat_client::{Client, ClientEvent};

use crate::args::ChatArgs;
use crate::connect;
use state::{Action, State};

/// Client events taken in before the screen is drawn again: a burst of
/// lines costs one redraw, yet the screen still moves during a flood.
const EVENT_BATCH: usize = 1024;
/// The longest wait after /quit for the client to close: it waits for its
/// lines' acknowledgements itself (10 s after the queued lines could have
/// gone); a second /quit or Ctrl-C leaves at once.
const QUIT_WAIT: Duration = Duration::from_secs(120);

type Term = DefaultTerminal;

pub async fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    if !std::io::stdout().is_terminal() || !std::io::stdin().is_terminal() {
        bail!("the full-screen client needs a terminal; use `udpchat chat --plain` for pipes and scripts");
    }
    // Asks for the nickname on the ordinary screen, before taking it over.
    let mut options = connect::options(&args.connect, true)?;
    options.reconnect = true;
    if let Some(room) = &args.room {
        options.rooms.push(room.trim_start_matches('#').to_owned());
    }
    let mut state = State::new(&options.nick, args.room.as_deref());
    let (client, events) = Client::connect(options).await?;
    let result = match Screen::enter() {
        Ok(mut screen) => event_loop(&mut screen.terminal, &client, events, &mut state).await,
        Err(e) => Err(e),
    };
    // The screen is restored by now, so what follows is seen and kept.
    result?;
    if let Some(text) = state.model.refused() {
        eprintln!("udpchat: login refused: {text}");
        return Ok(ExitCode::FAILURE);
    }
    if !state.quitting
        && let Some(reason) = state.model.end_reason()
    {
        eprintln!("udpchat: disconnected: {reason}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the interface has the terminal (so leaving is done once).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// Puts the terminal back as it was: bracketed paste off and the cursor
/// shown (ours), raw mode and the alternate screen (`ratatui::restore`).
/// Safe to call more than once and from the panic hook.
fn leave() {
    if ACTIVE.swap(false, Ordering::SeqCst) {
        // Nothing useful can be done if this fails: the terminal may be gone.
        let _ = crossterm::execute!(std::io::stdout(), DisableBracketedPaste, crossterm::cursor::Show);
        ratatui::restore();
    }
}

/// ratatui's panic hook restores raw mode and the screen; ours, run
/// before it, also turns bracketed paste off, which ratatui does not know
/// we turned on.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            leave();
            previous(info);
        }));
    });
}

/// The terminal while the interface runs; dropping it restores it.
struct Screen {
    terminal: Term,
}

impl Screen {
    fn enter() -> anyhow::Result<Self> {
        let mut terminal = ratatui::try_init().context("cannot put the terminal in raw mode")?;
        ACTIVE.store(true, Ordering::SeqCst);
        install_panic_hook();
        let setup = crossterm::execute!(std::io::stdout(), EnableBracketedPaste)
            .and_then(|()| terminal.clear())
            .context("cannot set up the terminal");
        match setup {
            Ok(()) => Ok(Screen { terminal }),
            Err(e) => {
                leave();
                Err(e)
            }
        }
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        leave();
    }
}

/// Resolves when the process is asked to stop (SIGTERM, SIGHUP, SIGINT),
/// so those also say goodbye and restore the terminal.
#[cfg(unix)]
async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut hup), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::hangup()), signal(SignalKind::interrupt()))
    else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = hup.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(not(unix))]
async fn terminated() {
    std::future::pending().await
}

fn minute_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() / 60).unwrap_or(0)
}

/// Reads keys and client events until the user leaves or the client has
/// stopped and the user has seen why.
async fn event_loop(
    terminal: &mut Term,
    client: &Client,
    mut events: mpsc::Receiver<ClientEvent>,
    state: &mut State,
) -> anyhow::Result<()> {
    let mut keys = EventStream::new();
    // The status bar shows the time to the minute.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut minute = minute_now();
    let mut events_open = true;
    let mut keys_open = true;
    let mut quit_by: Option<Instant> = None;
    let terminate = terminated();
    tokio::pin!(terminate);
    let mut signalled = false;
    let mut dirty = true;
    loop {
        if dirty {
            terminal.draw(|f| view::draw(f, state)).context("cannot draw on the terminal")?;
            dirty = false;
        }
        let quit_wait = async {
            match quit_by {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        let mut action = None;
        tokio::select! {
            event = events.recv(), if events_open => {
                let Some(event) = event else {
                    // The client is gone. It says Closed first, unless its
                    // task died; then say so rather than look connected.
                    events_open = false;
                    if state.quitting {
                        return Ok(());
                    }
                    if state.model.closed().is_none() {
                        let reason = "the client stopped unexpectedly".to_owned();
                        state.model.on_event(&ClientEvent::Closed { reason });
                        dirty = true;
                    }
                    continue;
                };
                let mut next = Some(event);
                let mut taken = 0;
                while let Some(event) = next {
                    state.model.on_event(&event);
                    taken += 1;
                    next = if taken < EVENT_BATCH { events.try_recv().ok() } else { None };
                }
                dirty = true;
                if state.quitting && state.model.closed().is_some() {
                    return Ok(());
                }
            }
            key = keys.next(), if keys_open => match key {
                Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => {
                    action = keys::handle(state, k);
                    dirty = true;
                }
                Some(Ok(Event::Paste(text))) => {
                    state.pasted(&text);
                    dirty = true;
                }
                Some(Ok(Event::Resize(..))) => dirty = true,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("cannot read the terminal"),
                // No more terminal input: nobody is there to type.
                None => {
                    keys_open = false;
                    action = Some(Action::Quit(String::new()));
                }
            },
            _ = quit_wait => return Ok(()),
            _ = tick.tick() => {
                let now = minute_now();
                if now != minute {
                    minute = now;
                    dirty = true;
                }
            }
            _ = &mut terminate, if !signalled => {
                signalled = true;
                action = Some(Action::Quit(String::new()));
            }
        }
        let mut actions: Vec<Action> = action.into_iter().collect();
        actions.append(&mut state.outgoing);
        for action in actions {
            match action {
                Action::Send(input) => {
                    // Lines and private messages show at once, as pending.
                    if let Some(id) = client.input(input.clone()).await {
                        state.model.sending(id, &input);
                        dirty = true;
                    }
                }
                Action::Login(nick) => client.login(&nick).await,
                Action::Quit(reason) => {
                    // Asked twice, or nothing left to say goodbye to: go now.
                    if state.quitting || state.model.closed().is_some() {
                        return Ok(());
                    }
                    state.quitting = true;
                    // The client leaves once its lines are acknowledged
                    // (bounded, saying so); this only guards against a
                    // client that never closes.
                    client.quit(&reason).await;
                    quit_by = Some(Instant::now() + QUIT_WAIT);
                }
                Action::Exit => return Ok(()),
            }
        }
    }
}
