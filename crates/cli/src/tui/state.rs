//! The terminal client's state: the client model it shows
//! ([`udpchat_client::model::Model`], shared with every front end) and
//! what only a terminal needs on top of it — the input line and its
//! history, nickname completion, how far each conversation is scrolled,
//! whether the user asked to quit. Typed lines go to the model, which
//! says what to ask the client for. Unit-tested without a screen (`state/tests.rs`).

use std::collections::HashMap;

use udpchat_client::model::{Model, Target};

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

    /// Enter: the model says what the typed line asks for.
    pub fn submit(&mut self) -> Option<Action> {
        self.completion = None;
        let line = self.input.take();
        self.history.push(&line);
        self.model.typed(&line)
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
