//! The server console's input and output. At a terminal the operator types
//! into a line editor (rustyline) and the chat record is printed above the
//! half-typed line, which stays as it was, cursor included — a line being
//! typed while members talk is not broken up by their lines. Up and Down
//! recall earlier console lines. With standard input or output redirected
//! (a pipe, a service) lines are read and written plainly, one per line.
//!
//! Ctrl-C at the editor stops the server (the editor owns the terminal, so
//! no SIGINT is sent); Ctrl-D on an empty line closes the console input and
//! the server keeps running.

use std::io::{IsTerminal, Write};

use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use tokio::sync::{mpsc, oneshot};

/// How many typed lines wait for the server: a paste of a thousand lines
/// waits for it instead of piling up.
const PENDING_LINES: usize = 64;

/// The editor's prompt.
const PROMPT: &str = "> ";

/// Where operator lines come from and where the chat record goes.
pub struct Console {
    /// Lines the operator typed; `None` when the console is output only.
    pub lines: Option<mpsc::Receiver<String>>,
    /// The chat record.
    pub output: Box<dyn Write + Send>,
    /// Completes when the operator pressed Ctrl-C at the editor.
    pub interrupted: oneshot::Receiver<()>,
    /// Puts the terminal back as it was when the server stops while the
    /// editor is reading (raw mode would outlive the process otherwise).
    pub terminal: Option<TerminalGuard>,
}

impl Console {
    /// A console that reads lines when `read` is set: with the editor when
    /// both ends are a terminal, plainly otherwise.
    pub fn start(read: bool) -> Self {
        let (interrupt_tx, interrupted) = oneshot::channel();
        if read && std::io::stdin().is_terminal() && std::io::stdout().is_terminal() {
            let terminal = TerminalGuard::save();
            match editor(interrupt_tx) {
                Ok((lines, printer)) => {
                    let output = Box::new(PrinterOutput { printer, pending: Vec::new() });
                    return Self { lines: Some(lines), output, interrupted, terminal };
                }
                Err((e, interrupt_tx)) => {
                    tracing::warn!("the console line editor is not available ({e}); reading lines plainly");
                    return Self::plain(true, interrupt_tx, interrupted);
                }
            }
        }
        Self::plain(read, interrupt_tx, interrupted)
    }

    fn plain(read: bool, interrupt_tx: oneshot::Sender<()>, interrupted: oneshot::Receiver<()>) -> Self {
        // Never fired: Ctrl-C reaches the process as a signal here.
        std::mem::forget(interrupt_tx);
        let lines = read.then(plain_reader);
        Self { lines, output: Box::new(std::io::stdout()), interrupted, terminal: None }
    }
}

type EditorError = (ReadlineError, oneshot::Sender<()>);

/// Starts the editor on its own thread (it blocks on the terminal) and
/// returns the lines it reads and a printer that writes above them.
fn editor(interrupt_tx: oneshot::Sender<()>) -> Result<(mpsc::Receiver<String>, impl ExternalPrinter), EditorError> {
    let mut editor = match DefaultEditor::new() {
        Ok(editor) => editor,
        Err(e) => return Err((e, interrupt_tx)),
    };
    let printer = match editor.create_external_printer() {
        Ok(printer) => printer,
        Err(e) => return Err((e, interrupt_tx)),
    };
    let (tx, rx) = mpsc::channel(PENDING_LINES);
    std::thread::spawn(move || {
        loop {
            match editor.readline(PROMPT) {
                Ok(line) => {
                    if !line.trim().is_empty() {
                        let _ = editor.add_history_entry(line.as_str());
                    }
                    if tx.blocking_send(line).is_err() {
                        break;
                    }
                }
                Err(ReadlineError::Interrupted) => {
                    let _ = interrupt_tx.send(());
                    break;
                }
                Err(ReadlineError::Eof) => {
                    println!("-- console input closed; the server keeps running (Ctrl-C stops it)");
                    break;
                }
                Err(e) => {
                    tracing::warn!("reading the console failed ({e}); no more console input");
                    break;
                }
            }
        }
    });
    Ok((rx, printer))
}

/// Operator lines from standard input, read on a plain thread (stdin
/// blocks). Bounded: a paste of a thousand lines waits for the server.
fn plain_reader() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(PENDING_LINES);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The chat record through the editor: what the server writes is kept
/// until it flushes (once per batch of lines) and then printed above the
/// line being typed in one piece.
struct PrinterOutput<P> {
    printer: P,
    pending: Vec<u8>,
}

impl<P: ExternalPrinter + Send> Write for PrinterOutput<P> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.printer.print(text).map_err(std::io::Error::other)
    }
}

/// The terminal's settings from before the editor started, put back on
/// drop.
pub struct TerminalGuard {
    #[cfg(unix)]
    saved: nix::sys::termios::Termios,
}

impl TerminalGuard {
    #[cfg(unix)]
    fn save() -> Option<Self> {
        nix::sys::termios::tcgetattr(std::io::stdin()).ok().map(|saved| Self { saved })
    }

    #[cfg(not(unix))]
    fn save() -> Option<Self> {
        None
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, &self.saved);
            // The cursor is on the prompt line; the next output starts
            // below it.
            println!();
        }
    }
}
