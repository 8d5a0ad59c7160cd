//! The terminal client's model, with no terminal in it: one scrollback per
//! room plus a server buffer, the member lists, the connection state, the
//! input line with its history and nickname completion. Client events and
//! typed lines go in; what to ask the client for comes out. Everything
//! here is unit-tested without a screen.

use std::collections::VecDeque;
use std::time::Duration;

use udpchat_chat::names;
use udpchat_client::chat::{NoticeKind, RefuseCode, ServerMsg};
use udpchat_client::{ClientEvent, HELP, Input, input};

use crate::display::{self, Item, Kind};

/// Items kept per buffer; older ones are dropped.
pub const SCROLLBACK: usize = 5000;
/// Typed lines remembered for Up/Down.
pub const HISTORY: usize = 200;

/// Case-insensitive key of a nickname, the way the server compares them.
pub fn nick_key(nick: &str) -> String {
    names::fold(nick)
}

/// The server's name for a room as typed (`#Rust` is `rust`).
pub fn room_key(room: &str) -> String {
    names::room_name(room).unwrap_or_else(|_| names::fold(room.trim_start_matches('#')))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Where the session stands, for the status bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    Connecting {
        attempt: u32,
        again: bool,
    },
    LoggingIn,
    Connected {
        rtt: Option<Duration>,
    },
    Disconnected,
    /// The nickname was refused; the next typed line is another one.
    NickRefused,
    Closed,
}

impl Conn {
    pub fn describe(&self) -> String {
        match self {
            Conn::Connecting { attempt, again } if *again || *attempt > 1 => {
                format!("reconnecting (attempt {attempt})…")
            }
            Conn::Connecting { .. } => "connecting…".into(),
            Conn::LoggingIn => "logging in…".into(),
            Conn::Connected { rtt: None } => "connected".into(),
            Conn::Connected { rtt: Some(rtt) } => {
                let ms = rtt.as_secs_f64() * 1000.0;
                // Loopback and LAN round trips are well under a millisecond.
                if ms < 10.0 { format!("connected, rtt {ms:.1} ms") } else { format!("connected, rtt {ms:.0} ms") }
            }
            Conn::Disconnected => "disconnected".into(),
            Conn::NickRefused => "nickname refused: type another".into(),
            Conn::Closed => "closed".into(),
        }
    }
}

/// One scrollback: a room's, or the server buffer (`room: None`).
#[derive(Debug, Default)]
pub struct Buffer {
    pub room: Option<String>,
    pub topic: String,
    pub lines: VecDeque<Item>,
    /// Sorted case-insensitively.
    pub members: Vec<String>,
    /// Screen rows scrolled up from the newest line (0: following).
    pub scroll: usize,
    /// Lines said here since it was last looked at.
    pub unread: usize,
    /// One of them mentions our nickname.
    pub mentioned: bool,
}

impl Buffer {
    fn new(room: Option<String>) -> Self {
        Buffer { room, ..Buffer::default() }
    }

    pub fn name(&self) -> String {
        match &self.room {
            Some(r) => format!("#{r}"),
            None => "(server)".into(),
        }
    }

    fn push(&mut self, item: Item) {
        // A page of /history is older than what is shown: it goes above
        // the newer lines (by time), not at the bottom.
        if item.history && self.lines.back().is_some_and(|last| last.time_ms > item.time_ms) {
            let at = self.lines.partition_point(|l| l.time_ms <= item.time_ms);
            self.lines.insert(at, item);
            if self.lines.len() > SCROLLBACK {
                self.lines.pop_front();
            }
            return;
        }
        self.lines.push_back(item);
        if self.lines.len() > SCROLLBACK {
            self.lines.pop_front();
        }
        // Someone reading older lines should not have them slide away.
        if self.scroll > 0 {
            self.scroll += 1;
        }
    }

    fn has_member(&self, nick: &str) -> bool {
        let key = nick_key(nick);
        self.members.iter().any(|m| nick_key(m) == key)
    }

    fn add_member(&mut self, nick: &str) {
        if !self.has_member(nick) {
            self.members.push(nick.to_owned());
            self.sort_members();
        }
    }

    fn remove_member(&mut self, nick: &str) {
        let key = nick_key(nick);
        self.members.retain(|m| nick_key(m) != key);
    }

    fn set_members(&mut self, nicks: &[String]) {
        self.members.clear();
        for n in nicks {
            self.add_member(n);
        }
    }

    fn sort_members(&mut self) {
        self.members.sort_by_cached_key(|m| nick_key(m));
    }
}

/// The line being typed; `cursor` is a byte offset, always on a char
/// boundary, so multi-byte characters are moved over and deleted whole.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InputLine {
    text: String,
    cursor: usize,
}

impl InputLine {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn insert(&mut self, c: char) {
        // Control characters would be refused by the server and could
        // upset the terminal; a pasted tab or newline becomes a space.
        let c = if c.is_control() { ' ' } else { c };
        self.text.insert(self.cursor, c);
        self.cursor += c.len_utf8();
    }

    pub fn insert_str(&mut self, s: &str) {
        for c in s.chars() {
            self.insert(c);
        }
    }

    fn prev_boundary(&self) -> Option<usize> {
        self.text[..self.cursor].char_indices().next_back().map(|(i, _)| i)
    }

    pub fn backspace(&mut self) {
        if let Some(i) = self.prev_boundary() {
            self.text.drain(i..self.cursor);
            self.cursor = i;
        }
    }

    pub fn delete(&mut self) {
        if let Some(c) = self.text[self.cursor..].chars().next() {
            self.text.drain(self.cursor..self.cursor + c.len_utf8());
        }
    }

    pub fn left(&mut self) {
        if let Some(i) = self.prev_boundary() {
            self.cursor = i;
        }
    }

    pub fn right(&mut self) {
        if let Some(c) = self.text[self.cursor..].chars().next() {
            self.cursor += c.len_utf8();
        }
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.text.len();
    }

    /// Ctrl-W: the word before the cursor and the spaces after it.
    pub fn delete_word(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        let start = trimmed.char_indices().rev().find(|(_, c)| c.is_whitespace()).map_or(0, |(i, c)| i + c.len_utf8());
        self.text.drain(start..self.cursor);
        self.cursor = start;
    }

    /// Ctrl-K: everything from the cursor on.
    pub fn kill_to_end(&mut self) {
        self.text.truncate(self.cursor);
    }

    pub fn clear(&mut self) {
        self.text.clear();
        self.cursor = 0;
    }

    pub fn set(&mut self, text: &str) {
        self.text = text.to_owned();
        self.cursor = self.text.len();
    }

    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    fn replace(&mut self, range: std::ops::Range<usize>, with: &str) {
        self.text.replace_range(range.clone(), with);
        self.cursor = range.start + with.len();
    }
}

/// Lines typed before, walked with Up and Down.
#[derive(Debug, Default)]
pub struct History {
    entries: VecDeque<String>,
    /// Which entry is shown; `None`: the line being typed.
    pos: Option<usize>,
    /// The line being typed when Up was first pressed.
    draft: String,
}

impl History {
    pub fn push(&mut self, line: &str) {
        self.pos = None;
        self.draft.clear();
        if line.trim().is_empty() || self.entries.back().is_some_and(|l| l == line) {
            return;
        }
        self.entries.push_back(line.to_owned());
        if self.entries.len() > HISTORY {
            self.entries.pop_front();
        }
    }

    /// The older entry to show, if any.
    pub fn up(&mut self, current: &str) -> Option<&str> {
        let pos = match self.pos {
            None if self.entries.is_empty() => return None,
            None => {
                self.draft = current.to_owned();
                self.entries.len() - 1
            }
            Some(0) => return None,
            Some(p) => p - 1,
        };
        self.pos = Some(pos);
        self.entries.get(pos).map(String::as_str)
    }

    /// The newer entry to show, or the draft past the newest.
    pub fn down(&mut self) -> Option<String> {
        let p = self.pos?;
        if p + 1 < self.entries.len() {
            self.pos = Some(p + 1);
            self.entries.get(p + 1).cloned()
        } else {
            self.pos = None;
            Some(std::mem::take(&mut self.draft))
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

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

/// What the front end should ask the client for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Input),
    /// Try another nickname after a refusal.
    Login(String),
    Quit(String),
    /// Leave the interface (the client has already stopped).
    Exit,
}

#[derive(Debug)]
pub struct State {
    pub nick: String,
    pub conn: Conn,
    /// `buffers[0]` is the server buffer; the rest are rooms we are in.
    pub buffers: Vec<Buffer>,
    pub current: usize,
    pub input: InputLine,
    pub history: History,
    completion: Option<Completion>,
    /// The room to show once its Joined arrives (`/join`, `--room`).
    pending_room: Option<String>,
    /// The user picked a buffer: joins no longer move them.
    moved: bool,
    /// Still joining the rooms we start in: each such room is given a copy
    /// of the server buffer (the key fingerprint, the welcome), since that
    /// is where the user will look first.
    starting: bool,
    /// We have been logged in once, so connecting again is reconnecting.
    ever_connected: bool,
    pub quitting: bool,
    /// The client stopped; why.
    pub closed: Option<String>,
    /// Why the session ended for good (for the message after exiting).
    pub end_reason: Option<String>,
    /// A login refusal that stopped the client.
    pub refused: Option<String>,
    /// Rows of the chat pane at the last draw, for paging.
    pub chat_rows: usize,
}

impl State {
    /// `room`: the extra room to join and show (`--room`).
    pub fn new(nick: &str, room: Option<&str>) -> Self {
        State {
            nick: nick.to_owned(),
            conn: Conn::Connecting { attempt: 1, again: false },
            buffers: vec![Buffer::new(None)],
            current: 0,
            input: InputLine::default(),
            history: History::default(),
            completion: None,
            pending_room: Some(room.map_or_else(|| udpchat_chat::LOBBY.to_owned(), room_key)),
            moved: false,
            starting: true,
            ever_connected: false,
            quitting: false,
            closed: None,
            end_reason: None,
            refused: None,
            chat_rows: 20,
        }
    }

    pub fn buffer(&self) -> &Buffer {
        &self.buffers[self.current]
    }

    pub fn current_room(&self) -> Option<&str> {
        self.buffer().room.as_deref()
    }

    /// Waiting for another nickname after a refusal.
    pub fn awaiting_nick(&self) -> bool {
        self.conn == Conn::NickRefused
    }

    fn find(&self, room: &str) -> Option<usize> {
        self.buffers.iter().position(|b| b.room.as_deref() == Some(room))
    }

    pub fn select(&mut self, index: usize) {
        if index < self.buffers.len() {
            self.current = index;
            let b = &mut self.buffers[index];
            b.unread = 0;
            b.mentioned = false;
        }
    }

    /// The user picks a buffer; later joins no longer move them.
    pub fn goto(&mut self, index: usize) {
        self.moved = true;
        self.starting = false;
        self.select(index);
    }

    pub fn next_buffer(&mut self) {
        self.goto((self.current + 1) % self.buffers.len());
    }

    pub fn prev_buffer(&mut self) {
        self.goto((self.current + self.buffers.len() - 1) % self.buffers.len());
    }

    pub fn scroll_up(&mut self) {
        let page = self.chat_rows.saturating_sub(1).max(1);
        self.buffers[self.current].scroll += page;
    }

    pub fn scroll_down(&mut self) {
        let page = self.chat_rows.saturating_sub(1).max(1);
        let b = &mut self.buffers[self.current];
        b.scroll = b.scroll.saturating_sub(page);
    }

    /// A line of our own (help, a typing error) in the buffer on screen.
    pub fn local(&mut self, kind: Kind, text: &str) {
        let item = Item { time_ms: now_ms(), room: None, nick: None, text: text.to_owned(), kind, history: false };
        self.buffers[self.current].push(item);
    }

    fn push_to(&mut self, index: usize, item: Item) {
        let visible = index == self.current;
        let said = matches!(item.kind, Kind::Chat | Kind::Action | Kind::Operator | Kind::Private);
        let mention = said && item.nick.as_deref() != Some(self.nick.as_str()) && mentions(&item.text, &self.nick);
        let b = &mut self.buffers[index];
        if !visible && said {
            b.unread += 1;
            b.mentioned |= mention;
        }
        b.push(item);
    }

    /// Files an item: a room's goes to that room (or to the buffer on
    /// screen when we are not in it); a server-wide one to the server
    /// buffer and to the buffer on screen, so it is both seen and kept.
    fn route(&mut self, item: Item) {
        if item.kind == Kind::Notice && item.text.is_empty() {
            // An empty message of the day.
            return;
        }
        match item.room.as_deref().and_then(|r| self.find(r)) {
            Some(i) => self.push_to(i, item),
            None if item.room.is_some() => self.push_to(self.current, item),
            None if self.current != 0 => {
                self.push_to(self.current, item.clone());
                // Already seen where it was shown: no unread mark here.
                self.buffers[0].push(item);
            }
            None => self.push_to(0, item),
        }
    }

    /// Takes in one client event.
    pub fn on_event(&mut self, event: &ClientEvent) {
        let items = display::items(event);
        match event {
            ClientEvent::Connecting { attempt } => {
                self.conn = Conn::Connecting { attempt: *attempt, again: self.ever_connected };
            }
            ClientEvent::Connected { .. } => self.conn = Conn::LoggingIn,
            ClientEvent::Rtt(rtt) => self.conn = Conn::Connected { rtt: Some(*rtt) },
            ClientEvent::Disconnected { reason, reconnecting } => {
                self.conn = Conn::Disconnected;
                if !reconnecting {
                    self.end_reason = Some(reason.clone());
                }
            }
            ClientEvent::Unconfirmed { .. } => {}
            ClientEvent::Closed { reason } => {
                self.conn = Conn::Closed;
                self.closed = Some(reason.clone());
                self.end_reason.get_or_insert_with(|| reason.clone());
            }
            ClientEvent::Server(msg) | ClientEvent::Delivered { msg, .. } => {
                return self.on_server(msg, items);
            }
        }
        for it in items {
            self.route(it);
        }
    }

    fn on_server(&mut self, msg: &ServerMsg, items: Vec<Item>) {
        match msg {
            ServerMsg::Welcome { nick, .. } => {
                self.nick = nick.clone();
                self.conn = Conn::Connected { rtt: None };
                self.ever_connected = true;
            }
            ServerMsg::LoginRefused { code, text } => {
                if matches!(code, RefuseCode::NickTaken | RefuseCode::NickInvalid | RefuseCode::NickRegistered) {
                    self.conn = Conn::NickRefused;
                } else {
                    // The client gives up after this; Closed follows.
                    self.refused = Some(text.clone());
                }
            }
            ServerMsg::Joined { room, topic, members, .. } => {
                let i = match self.find(room) {
                    Some(i) => i,
                    None => {
                        let mut b = Buffer::new(Some(room.clone()));
                        if self.starting {
                            b.lines = self.buffers[0].lines.clone();
                        }
                        self.buffers.push(b);
                        self.buffers.len() - 1
                    }
                };
                self.buffers[i].set_members(members);
                self.buffers[i].topic = topic.clone();
                for it in items {
                    self.route(it);
                }
                let wanted = self.pending_room.as_deref() == Some(room.as_str());
                if wanted {
                    self.pending_room = None;
                    self.starting = false;
                }
                if wanted || (self.current == 0 && !self.moved) {
                    self.select(i);
                }
                return;
            }
            ServerMsg::Parted { room } => {
                if let Some(i) = self.find(room) {
                    self.buffers.remove(i);
                    if self.current >= i {
                        self.select(self.current.saturating_sub(1).max(usize::from(self.buffers.len() > 1)));
                    }
                }
            }
            ServerMsg::Notice { room, kind, nick, text, .. } => {
                if let Some(i) = (!room.is_empty()).then(|| self.find(room)).flatten() {
                    match kind {
                        NoticeKind::Join => self.buffers[i].add_member(nick),
                        NoticeKind::Part | NoticeKind::Quit | NoticeKind::Timeout | NoticeKind::Kick => {
                            self.buffers[i].remove_member(nick)
                        }
                        NoticeKind::Nick => rename(&mut self.buffers[i], nick, text),
                        NoticeKind::Topic => self.buffers[i].topic = text.clone(),
                        NoticeKind::Server => {}
                    }
                } else if room.is_empty() && kind != &NoticeKind::Server {
                    return self.server_wide_notice(*kind, nick, text, items);
                }
            }
            ServerMsg::Members { room, nicks } => {
                if let Some(i) = self.find(room) {
                    self.buffers[i].set_members(nicks);
                }
            }
            ServerMsg::Topic { room, topic } => {
                if let Some(i) = self.find(room) {
                    self.buffers[i].topic = topic.clone();
                }
            }
            _ => {}
        }
        for it in items {
            self.route(it);
        }
    }

    /// Someone quit, timed out, was removed or changed nickname: the
    /// server says so once, for every room we share with them. Show it in
    /// those rooms (before they leave the member lists), then update them.
    fn server_wide_notice(&mut self, kind: NoticeKind, nick: &str, text: &str, items: Vec<Item>) {
        let shared: Vec<usize> = (1..self.buffers.len()).filter(|&i| self.buffers[i].has_member(nick)).collect();
        for it in items {
            if shared.is_empty() {
                self.route(it);
            } else {
                for &i in &shared {
                    self.push_to(i, it.clone());
                }
            }
        }
        for &i in &shared {
            match kind {
                NoticeKind::Nick => rename(&mut self.buffers[i], nick, text),
                _ => self.buffers[i].remove_member(nick),
            }
        }
        if kind == NoticeKind::Nick && nick_key(nick) == nick_key(&self.nick) {
            self.nick = text.to_owned();
        }
    }

    /// Enter: what the typed line asks for. Help, typing errors and lines
    /// that need a room in the server buffer are answered here.
    pub fn submit(&mut self) -> Option<Action> {
        self.completion = None;
        let line = self.input.take();
        self.history.push(&line);
        if self.closed.is_some() {
            return Some(Action::Exit);
        }
        if self.awaiting_nick() {
            if let Ok(Input::Quit(reason)) = input::parse(&line, "") {
                return Some(Action::Quit(reason));
            }
            let nick = line.trim();
            if nick.is_empty() || nick.contains(char::is_whitespace) {
                self.local(Kind::Error, "type a nickname (one word)");
                return None;
            }
            self.nick = nick.to_owned();
            self.conn = Conn::LoggingIn;
            self.local(Kind::Info, &format!("trying the nickname {nick}…"));
            return Some(Action::Login(nick.to_owned()));
        }
        let room = self.current_room().unwrap_or_default().to_owned();
        match input::parse(&line, &room) {
            Ok(Input::Nothing) => None,
            Ok(Input::Help) => {
                for l in HELP.lines() {
                    self.local(Kind::Info, l);
                }
                self.local(Kind::Info, "keys: PgUp/PgDn scroll, Tab completes nicknames, Ctrl-N/Ctrl-P or Alt-Left/Right switch rooms, Ctrl-C quits");
                None
            }
            Ok(Input::Quit(reason)) => Some(Action::Quit(reason)),
            Ok(Input::Join(r)) => {
                let key = room_key(&r);
                self.moved = true;
                self.starting = false;
                match self.find(&key) {
                    Some(i) => self.select(i),
                    None => self.pending_room = Some(key),
                }
                Some(Action::Send(Input::Join(r)))
            }
            Ok(i) if room.is_empty() && needs_room(&i) => {
                self.local(Kind::Error, "this is the server buffer: switch to a room (Ctrl-N) or /join one");
                None
            }
            Ok(i) => Some(Action::Send(i)),
            Err(e) => {
                self.local(Kind::Error, &e);
                None
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
        let prefix = nick_key(word);
        let me = nick_key(&self.nick);
        let candidates: Vec<String> = self
            .buffer()
            .members
            .iter()
            .filter(|m| {
                let k = nick_key(m);
                k.starts_with(&prefix) && k != me
            })
            .cloned()
            .collect();
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

fn rename(b: &mut Buffer, old: &str, new: &str) {
    if b.has_member(old) {
        b.remove_member(old);
        b.add_member(new);
    }
}

/// Whether `text` names `nick` as a word.
pub fn mentions(text: &str, nick: &str) -> bool {
    let key = nick_key(nick);
    !key.is_empty()
        && text.split(|c: char| !(c.is_alphanumeric() || "_-[]{}|^`".contains(c))).any(|w| nick_key(w) == key)
}

/// Inputs that act on the current room, which the server buffer lacks.
fn needs_room(i: &Input) -> bool {
    match i {
        Input::Say { .. } | Input::Topic { .. } | Input::History { .. } | Input::Kick { .. } => true,
        Input::Part { room, .. } | Input::Who(room) => room.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
