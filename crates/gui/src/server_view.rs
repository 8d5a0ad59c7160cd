//! One server the window is connected to: its client model (the shared
//! `udpchat_client::model`, never a copy), and what only the desktop
//! client keeps on top of it — the text being typed, the typed-line
//! history, a Tab completion in progress, lines of a paste waiting for
//! room in the request queue, and where `/history` paging stands for each
//! room. No drawing here (that is `chat.rs` and `rows.rs`).

use std::collections::{HashMap, VecDeque};

use udpchat_client::Input;
use udpchat_client::model::{Command, Kind, Model, PASTE_CONFIRM, Target, TypedHistory, paste_lines};

use crate::backend::ConnId;

/// Items kept per conversation: rows are drawn only when visible, so the
/// window can afford far more than the terminal client.
pub const GUI_SCROLLBACK: usize = 100_000;
/// Lines of one paste; a longer paste is refused (with a note), so the
/// queue of lines waiting to be sent stays bounded.
pub const MAX_PASTE: usize = 10_000;
/// Lines asked for per `/history` page when scrolled to the top.
pub const HISTORY_PAGE: u64 = 50;

/// Tab completion in progress: repeated Tabs cycle through `candidates`.
#[derive(Debug)]
struct Completion {
    start: usize,
    candidates: Vec<String>,
    index: usize,
    /// The input as the last Tab left it; if it changed, Tab starts anew.
    left: String,
}

/// `/history` paging of one room.
#[derive(Debug, Default, Clone, Copy)]
pub struct Paging {
    /// `inserted_above` when the last page was asked for: the next page
    /// is asked only after that one arrived.
    pub asked_at: Option<u64>,
    /// `inserted_above` the view has made room for (kept in place).
    pub seen_above: u64,
    /// The scroll offset at the last frame that showed this conversation;
    /// `None` before the first (nothing to keep in place yet).
    pub last_offset: Option<f32>,
}

pub struct ServerView {
    pub conn: ConnId,
    pub address: String,
    pub model: Model,
    pub input: String,
    /// Where the cursor should go after the program changed the input.
    pub cursor_to_end: bool,
    pub typed: TypedHistory,
    completion: Option<Completion>,
    /// What to ask the client for, in order (a paste may queue many).
    pub outgoing: VecDeque<Command>,
    pub paging: HashMap<Target, Paging>,
    /// The user asked to leave this server.
    pub quitting: bool,
    /// A paste of more than `PASTE_CONFIRM` lines, waiting for "send them?".
    pub paste: Option<Vec<String>>,
}

impl ServerView {
    pub fn new(conn: ConnId, address: &str, nick: &str) -> Self {
        let mut model = Model::new(nick, None);
        model.set_scrollback(GUI_SCROLLBACK);
        model.set_keys_help(crate::chat::SHORTCUTS);
        ServerView {
            conn,
            address: address.to_owned(),
            model,
            input: String::new(),
            cursor_to_end: false,
            typed: TypedHistory::default(),
            completion: None,
            outgoing: VecDeque::new(),
            paging: HashMap::new(),
            quitting: false,
            paste: None,
        }
    }

    /// Enter: the typed line goes to the model, which says what to ask
    /// the client for. A line longer than the server takes stays in the
    /// input, with the limit named.
    pub fn submit(&mut self) {
        self.completion = None;
        let (len, limit) = (self.input.len(), self.model.max_line_bytes());
        if len as u64 > limit && !self.model.awaiting_nick() {
            self.model.note(
                Kind::Error,
                &format!(
                    "line too long: {len} bytes; this server takes at most {limit} (not sent: it is still in the input)"
                ),
            );
            return;
        }
        let line = std::mem::take(&mut self.input);
        self.typed.push(&line);
        if let Some(c) = self.model.typed(&line) {
            self.outgoing.push_back(c);
        }
    }

    /// Text pasted into the input line: with line breaks, each line is
    /// sent as if typed, in order (`paste_lines`, shared with the
    /// terminal client); without, it is simply inserted.
    pub fn pasted(&mut self, text: &str) -> bool {
        let Some(lines) = paste_lines(&self.input, text) else { return false };
        if lines.len() > MAX_PASTE {
            self.model
                .note(Kind::Error, &format!("a paste of {} lines is too long (at most {MAX_PASTE})", lines.len()));
            return true;
        }
        self.input.clear();
        if lines.len() > PASTE_CONFIRM {
            self.paste = Some(lines);
        } else {
            self.send_lines(lines);
        }
        true
    }

    /// The answer to "send N pasted lines?".
    pub fn confirm_paste(&mut self, yes: bool) {
        match self.paste.take() {
            Some(lines) if yes => self.send_lines(lines),
            Some(lines) => self.model.note(Kind::Info, &format!("paste of {} lines cancelled", lines.len())),
            None => {}
        }
    }

    fn send_lines(&mut self, lines: Vec<String>) {
        for line in lines {
            self.input = line;
            self.submit();
            // Refused as too long: it stays in the input, and the lines
            // after it are not sent out of order.
            if !self.input.is_empty() {
                break;
            }
        }
    }

    pub fn history_up(&mut self) {
        if let Some(line) = self.typed.up(&self.input) {
            self.input = line.to_owned();
            self.cursor_to_end = true;
        }
    }

    pub fn history_down(&mut self) {
        if let Some(line) = self.typed.down() {
            self.input = line;
            self.cursor_to_end = true;
        }
    }

    /// Tab: completes the word before the end of the input to a command,
    /// a room or a member; again, to the next candidate. A nickname at
    /// the start of the line is addressed (`bob: `).
    pub fn complete(&mut self) {
        if let Some(c) = self.completion.as_mut().filter(|c| c.left == self.input) {
            c.index = (c.index + 1) % c.candidates.len();
            let with = completed(&c.candidates[c.index], c.start);
            self.input.replace_range(c.start.., &with);
            c.left = self.input.clone();
            self.cursor_to_end = true;
            return;
        }
        let start =
            self.input.char_indices().rev().find(|(_, c)| c.is_whitespace()).map_or(0, |(i, c)| i + c.len_utf8());
        let word = &self.input[start..];
        if word.is_empty() {
            return;
        }
        let candidates = self.model.completions(word, start == 0);
        let Some(first) = candidates.first() else { return };
        let with = completed(first, start);
        self.input.replace_range(start.., &with);
        self.cursor_to_end = true;
        self.completion = Some(Completion { start, candidates, index: 0, left: self.input.clone() });
    }

    /// Asks for the page of `/history` before the oldest line shown in
    /// the current room, unless one is already on its way.
    pub fn want_history(&mut self) -> bool {
        let c = self.model.current();
        let Some(room) = c.room().map(str::to_owned) else { return false };
        let above = c.inserted_above;
        let p = self.paging.entry(c.target.clone()).or_default();
        if p.asked_at.is_some_and(|at| at >= above) {
            return false;
        }
        p.asked_at = Some(above);
        self.outgoing.push_back(Command::Send(Input::History { room, count: HISTORY_PAGE }));
        true
    }

    /// Rows inserted above what the current conversation showed at the
    /// last frame (a page of history), and the scroll offset then: the
    /// view adds the rows' height to keep the same lines in place.
    pub fn take_inserted_above(&mut self) -> (u64, Option<f32>) {
        let c = self.model.current();
        let p = self.paging.entry(c.target.clone()).or_default();
        let new = c.inserted_above.saturating_sub(p.seen_above);
        p.seen_above = c.inserted_above;
        (new, p.last_offset)
    }

    /// Where the current conversation's view was left this frame.
    pub fn scrolled_to(&mut self, offset: f32) {
        let c = self.model.current();
        self.paging.entry(c.target.clone()).or_default().last_offset = Some(offset);
    }
}

fn completed(word: &str, start: usize) -> String {
    if start == 0 && !word.starts_with(['/', '#']) { format!("{word}: ") } else { format!("{word} ") }
}
