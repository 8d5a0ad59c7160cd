//! The terminal client's state: the client model it shows
//! ([`udpchat_client::model::Model`], shared with every front end) and
//! what only a terminal needs on top of it — the input line and its
//! history, nickname completion, how far each conversation is scrolled,
//! whether the user asked to quit. Typed lines go to the model, which
//! says what to ask the client for. Unit-tested without a screen (`state/tests.rs`).

use std::collections::HashMap;

use udpchat_client::model::{Kind, Model, Target};

use super::line::{History, InputLine};

/// Tab completion in progress: repeated Tabs cycle through `candidates`.
#[derive(Debug)]
struct Completion {
    /// Where the completed word starts.
    start: usize,
    candidates: Vec<String>,
    index: usize,
    /// The input line as the last Tab left it; if it changed since, the
    /// next Tab starts a new completion.
    left: InputLine,
}

/// Screen rows a conversation is scrolled up from its newest line.
#[derive(Debug)]
struct Scroll {
    rows: usize,
    /// The conversation's `added` when `rows` was last brought up to date.
    added: u64,
}

/// A paste of more lines than this asks first (`paste N lines? y/n`).
pub use udpchat_client::model::PASTE_CONFIRM;

/// What to ask the client for: the model decides (`Model::typed`).
pub use udpchat_client::model::Command as Action;

#[derive(Debug)]
pub struct State {
    pub model: Model,
    pub input: InputLine,
    pub history: History,
    completion: Option<Completion>,
    /// Per conversation; none (0) for those never scrolled. Entries of
    /// closed conversations are dropped when the map outgrows the list.
    scroll: HashMap<Target, Scroll>,
    pub quitting: bool,
    /// A paste of more than [`PASTE_CONFIRM`] lines, waiting for y/n.
    pub paste: Option<Vec<String>>,
    /// Actions a paste produced, for the event loop to carry out in order.
    pub outgoing: Vec<Action>,
    /// Rows of the chat pane at the last draw, for paging.
    pub chat_rows: usize,
}

impl State {
    /// `room`: the extra room to join and show (`--room`).
    pub fn new(nick: &str, room: Option<&str>) -> Self {
        State {
            model: Model::new(nick, room),
            input: InputLine::default(),
            history: History::default(),
            completion: None,
            scroll: HashMap::new(),
            quitting: false,
            paste: None,
            outgoing: Vec::new(),
            chat_rows: 20,
        }
    }

    /// The client stopped while the user did not ask to: the screen says
    /// why and waits for a key.
    pub fn stopped(&self) -> bool {
        self.model.closed().is_some() && !self.quitting
    }

    /// How far the conversation on screen is scrolled up, in rows. Lines
    /// that arrived since push it up as well, so someone reading older
    /// lines does not have them slide away.
    pub fn scroll(&mut self) -> &mut usize {
        let c = self.model.current();
        let (target, added) = (c.target.clone(), c.added);
        if self.scroll.len() > self.model.conversations().len() {
            let open: Vec<Target> = self.model.conversations().iter().map(|c| c.target.clone()).collect();
            self.scroll.retain(|t, _| open.contains(t));
        }
        let s = self.scroll.entry(target).or_insert(Scroll { rows: 0, added });
        if s.rows > 0 {
            s.rows += usize::try_from(added - s.added).unwrap_or(usize::MAX);
        }
        s.added = added;
        &mut s.rows
    }

    fn page(&self) -> usize {
        self.chat_rows.saturating_sub(1).max(1)
    }

    pub fn scroll_up(&mut self) {
        let page = self.page();
        *self.scroll() += page;
    }

    pub fn scroll_down(&mut self) {
        let page = self.page();
        let s = self.scroll();
        *s = s.saturating_sub(page);
    }

    /// Enter: the model says what the typed line asks for. A line longer
    /// than the server takes is refused here and stays in the input, to be
    /// shortened or split.
    pub fn submit(&mut self) -> Option<Action> {
        self.completion = None;
        let (len, limit) = (self.input.text().len(), self.model.max_line_bytes());
        if len as u64 > limit && !self.model.awaiting_nick() {
            self.model.note(
                Kind::Error,
                &format!(
                    "line too long: {len} bytes; this server takes at most {limit} (not sent: it is still in the input)"
                ),
            );
            return None;
        }
        let line = self.input.take();
        self.history.push(&line);
        self.model.typed(&line)
    }

    /// Bracketed paste: text without a line break goes into the input
    /// line; several lines (the input so far joined to the first) are sent
    /// one by one, each as if typed, and more than [`PASTE_CONFIRM`] of
    /// them are first confirmed (as irssi's paste detection does).
    pub fn pasted(&mut self, text: &str) {
        let Some(lines) = udpchat_client::model::paste_lines(self.input.text(), text) else {
            self.input.insert_str(text);
            return;
        };
        self.input.clear();
        if lines.len() > PASTE_CONFIRM {
            self.paste = Some(lines);
            return;
        }
        self.send_lines(&lines);
    }

    /// The answer to "paste N lines?": y sends them, anything else drops them.
    pub fn confirm_paste(&mut self, yes: bool) {
        match self.paste.take() {
            Some(lines) if yes => self.send_lines(&lines),
            Some(lines) => self.model.note(Kind::Info, &format!("paste of {} lines cancelled", lines.len())),
            None => {}
        }
    }

    fn send_lines(&mut self, lines: &[String]) {
        for line in lines {
            self.input.insert_str(line);
            if let Some(action) = self.submit() {
                self.outgoing.push(action);
            }
            // Refused as too long: it stays where the user can see it, and
            // the lines after it are not sent out of order.
            if !self.input.text().is_empty() {
                break;
            }
        }
    }

    /// Any key but Tab ends a completion.
    pub fn end_completion(&mut self) {
        self.completion = None;
    }

    /// Tab: completes the word before the cursor to a member of the room
    /// on screen; again, to the next one. A nickname at the start of the
    /// line is addressed (`bob: `).
    pub fn complete(&mut self) {
        if let Some(c) = self.completion.as_mut().filter(|c| c.left == self.input) {
            c.index = (c.index + 1) % c.candidates.len();
            let with = completed(&c.candidates[c.index], c.start);
            self.input.replace(c.start..self.input.cursor(), &with);
            c.left = self.input.clone();
            return;
        }
        let before = &self.input.text()[..self.input.cursor()];
        let start = before.char_indices().rev().find(|(_, c)| c.is_whitespace()).map_or(0, |(i, c)| i + c.len_utf8());
        let word = &before[start..];
        if word.is_empty() {
            return;
        }
        let candidates = self.model.nick_candidates(word);
        let Some(first) = candidates.first() else {
            return;
        };
        let with = completed(first, start);
        self.input.replace(start..self.input.cursor(), &with);
        self.completion = Some(Completion { start, candidates, index: 0, left: self.input.clone() });
    }
}

fn completed(nick: &str, start: usize) -> String {
    if start == 0 { format!("{nick}: ") } else { format!("{nick} ") }
}

#[cfg(test)]
mod tests;
