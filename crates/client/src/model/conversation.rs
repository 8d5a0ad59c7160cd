//! One conversation the user can look at: the server's messages, a room
//! we are in, or a private conversation with one person. Each keeps a
//! bounded scrollback, its members and topic (rooms), and how much was
//! said in it since it was last looked at.

use std::collections::VecDeque;

use super::item::Item;
use super::names::nick_key;

/// Items kept per conversation; older ones are dropped.
pub const SCROLLBACK: usize = 5000;

/// Which conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// What belongs to no room: the welcome, errors, replies to /list.
    Server,
    /// The server's name of a room (`rust`).
    Room(String),
    /// A nickname as last seen (compared case-insensitively).
    Private(String),
}

impl Target {
    /// Whether `self` names the same conversation as `other`.
    pub fn same(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::Private(a), Target::Private(b)) => nick_key(a) == nick_key(b),
            _ => self == other,
        }
    }
}

#[derive(Debug)]
pub struct Conversation {
    pub target: Target,
    pub topic: String,
    pub lines: VecDeque<Item>,
    /// Sorted case-insensitively (rooms only).
    pub members: Vec<String>,
    /// Lines said here since it was last looked at.
    pub unread: usize,
    /// How many of them mention our nickname (or are private messages to us).
    pub mentions: usize,
    /// Items ever added at the bottom, so that a view scrolled up can keep
    /// its place while new lines arrive.
    pub added: u64,
    /// Items ever inserted above newer ones (pages of `/history`), so that
    /// a view can keep the line it shows in place when a page arrives.
    pub inserted_above: u64,
    /// Items kept; the oldest goes past this.
    limit: usize,
}

impl Conversation {
    pub fn new(target: Target) -> Self {
        Self::with_limit(target, SCROLLBACK)
    }

    /// A conversation keeping up to `limit` items.
    pub fn with_limit(target: Target, limit: usize) -> Self {
        Conversation {
            target,
            topic: String::new(),
            lines: VecDeque::new(),
            members: Vec::new(),
            unread: 0,
            mentions: 0,
            added: 0,
            inserted_above: 0,
            limit: limit.max(1),
        }
    }

    pub(super) fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
        while self.lines.len() > self.limit {
            self.lines.pop_front();
        }
    }

    /// `#rust`, `bob`, or `(server)`.
    pub fn name(&self) -> String {
        match &self.target {
            Target::Room(r) => format!("#{r}"),
            Target::Private(n) => n.clone(),
            Target::Server => "(server)".into(),
        }
    }

    pub fn room(&self) -> Option<&str> {
        match &self.target {
            Target::Room(r) => Some(r),
            _ => None,
        }
    }

    pub fn peer(&self) -> Option<&str> {
        match &self.target {
            Target::Private(n) => Some(n),
            _ => None,
        }
    }

    pub fn push(&mut self, item: Item) {
        // A page of /history is older than what is shown: it goes above
        // the newer lines (by time), not at the bottom.
        // Lines stamped in the same millisecond (a burst) go by their
        // sequence numbers.
        let key = |l: &Item| (l.time_ms, l.seq);
        if item.history && self.lines.back().is_some_and(|last| key(last) > key(&item)) {
            let at = self.lines.partition_point(|l| key(l) <= key(&item));
            self.lines.insert(at, item);
            self.inserted_above += 1;
        } else {
            self.lines.push_back(item);
            self.added += 1;
        }
        if self.lines.len() > self.limit {
            self.lines.pop_front();
        }
    }

    /// Our own line `id`, if it is still in the scrollback.
    pub fn own_line(&mut self, id: u64) -> Option<&mut Item> {
        self.lines.iter_mut().rev().find(|l| l.id == Some(id))
    }

    /// Drops our pending line `id` if the same text from `nick` has been
    /// shown after it: a line the server had stored before a restart comes
    /// back in the catch-up, and its resend is then acknowledged as already
    /// stored (seq 0, docs/PROTOCOL.md §15.8), so showing both would show
    /// it twice. Returns whether it dropped it.
    pub fn drop_if_caught_up(&mut self, id: u64, nick: &str) -> bool {
        let Some(at) = self.lines.iter().rposition(|l| l.id == Some(id)) else { return false };
        let text = &self.lines[at].text;
        let caught_up = self
            .lines
            .iter()
            .skip(at + 1)
            .any(|l| l.id.is_none() && !l.history && l.nick.as_deref() == Some(nick) && &l.text == text);
        if caught_up {
            self.lines.remove(at);
        }
        caught_up
    }

    pub fn has_member(&self, nick: &str) -> bool {
        let key = nick_key(nick);
        self.members.iter().any(|m| nick_key(m) == key)
    }

    pub fn add_member(&mut self, nick: &str) {
        if !self.has_member(nick) {
            self.members.push(nick.to_owned());
            self.members.sort_by_cached_key(|m| nick_key(m));
        }
    }

    pub fn remove_member(&mut self, nick: &str) {
        let key = nick_key(nick);
        self.members.retain(|m| nick_key(m) != key);
    }

    pub fn set_members(&mut self, nicks: &[String]) {
        self.members.clear();
        for n in nicks {
            self.add_member(n);
        }
    }

    pub fn rename_member(&mut self, old: &str, new: &str) {
        if self.has_member(old) {
            self.remove_member(old);
            self.add_member(new);
        }
    }
}
