//! The client model every front end renders: the conversations (the
//! server's, one per joined room, one per person written to privately)
//! with bounded scrollback, members, topics, unread and mention counts;
//! our own lines from sent (pending) to acknowledged (confirmed) or not;
//! the connection state and round-trip time. It takes in [`ClientEvent`]s
//! ([`Model::on_event`]) and the user's own sends ([`Model::sending`]),
//! and knows which conversation the user is looking at
//! ([`Model::focus`]), since that decides what counts as unread. Typed
//! lines go through [`Model::typed`], which says what to ask the client
//! for. Nothing
//! here draws or reads keys: the terminal client (crates/cli/src/tui) and
//! a desktop client are views of it plus their own input state.

mod completion;
mod conn;
mod conversation;
mod item;
mod names;
mod paste;
pub mod safe_text;
#[cfg(test)]
mod tests;
mod typed;
mod typed_history;

use std::collections::BTreeMap;

use udpchat_chat::{NoticeKind, RefuseCode, ServerMsg};

use crate::{ClientEvent, Input};
pub use completion::COMMANDS;
pub use conn::Conn;
pub use conversation::{Conversation, SCROLLBACK, Target};
pub use item::{Item, Kind, Status, items};
pub use names::{mentions, nick_key, room_key};
pub use paste::{PASTE_CONFIRM, paste_lines};
pub use typed::Command;
pub use typed_history::{TYPED_HISTORY, TypedHistory};

/// Own lines followed from sent to acknowledged; past this the oldest is
/// no longer followed (it stays shown as pending). The client's outbox
/// holds at most 1000 unsent, so only a stalled session gets here.
pub const MAX_PENDING: usize = 2000;
/// Private conversations kept; past this the oldest one not on screen is
/// closed (its lines are gone), so strangers cannot grow the list.
pub const MAX_PRIVATE: usize = 64;

#[derive(Debug)]
pub struct Model {
    nick: String,
    conn: Conn,
    /// `[0]` is the server conversation; rooms and private ones follow in
    /// the order they were opened.
    conversations: Vec<Conversation>,
    focus: usize,
    /// Own lines sent and not yet answered, and where they are shown.
    pending: BTreeMap<u64, Target>,
    /// The longest line the server takes (its `Limits`; the reference
    /// default until it says), so a front end can keep a longer one in
    /// its input instead of sending it to be refused.
    max_line_bytes: u64,
    /// The room to show once its Joined arrives (`/join`, `--room`).
    pending_room: Option<String>,
    /// The user picked a conversation: joins no longer move them.
    moved: bool,
    /// Still joining the rooms we start in: each such room is given a copy
    /// of the server conversation (the key fingerprint, the welcome), since
    /// that is where the user will look first.
    starting: bool,
    /// We have been logged in once, so connecting again is reconnecting.
    ever_connected: bool,
    closed: Option<String>,
    end_reason: Option<String>,
    refused: Option<String>,
    /// The keys line `/help` ends with (the front end's own keys).
    keys_help: &'static str,
    /// Items kept per conversation ([`SCROLLBACK`] unless a front end
    /// that renders only the visible rows asks for more).
    scrollback: usize,
}

impl Model {
    /// `room`: the extra room joined at start, shown first (`--room`).
    pub fn new(nick: &str, room: Option<&str>) -> Self {
        Model {
            nick: nick.to_owned(),
            conn: Conn::Connecting { attempt: 1, again: false },
            conversations: vec![Conversation::new(Target::Server)],
            focus: 0,
            pending: BTreeMap::new(),
            max_line_bytes: crate::session::pacing::DEFAULT_MAX_LINE_BYTES,
            pending_room: Some(room.map_or_else(|| udpchat_chat::LOBBY.to_owned(), room_key)),
            moved: false,
            starting: true,
            ever_connected: false,
            closed: None,
            end_reason: None,
            refused: None,
            scrollback: SCROLLBACK,
            keys_help: typed::KEYS_HELP,
        }
    }

    /// The line about keys `/help` shows (the terminal client's by default).
    pub fn set_keys_help(&mut self, keys: &'static str) {
        self.keys_help = keys;
    }

    /// Keeps up to `items` per conversation from now on (at least 1): a
    /// front end that draws only the visible rows can afford many more
    /// than [`SCROLLBACK`]; the bound still holds, at the new value.
    pub fn set_scrollback(&mut self, items: usize) {
        self.scrollback = items.max(1);
        for c in &mut self.conversations {
            c.set_limit(self.scrollback);
        }
    }

    // ---- what a view reads ----

    /// Our nickname.
    /// Our lines not yet acknowledged (shown as pending).
    pub fn pending_lines(&self) -> usize {
        self.pending.len()
    }

    /// The longest line the server takes, in bytes.
    pub fn max_line_bytes(&self) -> u64 {
        self.max_line_bytes
    }

    pub fn nick(&self) -> &str {
        &self.nick
    }

    pub fn conn(&self) -> Conn {
        self.conn
    }

    pub fn conversations(&self) -> &[Conversation] {
        &self.conversations
    }

    /// The index of the conversation the user is looking at.
    pub fn focused(&self) -> usize {
        self.focus
    }

    pub fn current(&self) -> &Conversation {
        &self.conversations[self.focus]
    }

    pub fn current_room(&self) -> Option<&str> {
        self.current().room()
    }

    /// The nickname was refused: the next thing typed is another one.
    pub fn awaiting_nick(&self) -> bool {
        self.conn == Conn::NickRefused
    }

    /// The client stopped; why.
    pub fn closed(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// Why the session ended for good (for a message after exiting).
    pub fn end_reason(&self) -> Option<&str> {
        self.end_reason.as_deref()
    }

    /// A login refusal that stopped the client.
    pub fn refused(&self) -> Option<&str> {
        self.refused.as_deref()
    }

    // ---- what the user does ----

    /// Looks at conversation `index`: its unread and mention counts clear.
    pub fn focus(&mut self, index: usize) {
        if index < self.conversations.len() {
            self.focus = index;
            let c = &mut self.conversations[index];
            c.unread = 0;
            c.mentions = 0;
        }
    }

    /// The user picks a conversation; later joins no longer move them.
    pub fn goto(&mut self, index: usize) {
        self.moved = true;
        self.starting = false;
        self.focus(index);
    }

    pub fn next(&mut self) {
        self.goto((self.focus + 1) % self.conversations.len());
    }

    pub fn prev(&mut self) {
        self.goto((self.focus + self.conversations.len() - 1) % self.conversations.len());
    }

    /// The user asked to join `room`: show it now if we are in it, else
    /// as soon as the server says we joined.
    pub fn joining(&mut self, room: &str) {
        let key = room_key(room);
        self.moved = true;
        self.starting = false;
        match self.find(&Target::Room(key.clone())) {
            Some(i) => self.focus(i),
            None => self.pending_room = Some(key),
        }
    }

    /// Another nickname typed after a refusal (the front end then calls
    /// `Client::login`).
    pub fn retry_nick(&mut self, nick: &str) {
        self.nick = nick.to_owned();
        self.conn = Conn::LoggingIn;
        self.note(Kind::Info, &format!("trying the nickname {nick}…"));
    }

    /// A line of the front end's own (help, a typing error) in the
    /// conversation on screen.
    pub fn note(&mut self, kind: Kind, text: &str) {
        self.conversations[self.focus].push(Item::note(None, kind, text.to_owned()));
    }

    /// The user sent a line or a private message, which `Client::input`
    /// numbered `id`: shown at once as pending, confirmed by its
    /// `Delivered`. A private message opens (and shows) its conversation.
    pub fn sending(&mut self, id: u64, input: &Input) {
        let (target, mut item) = match input {
            Input::Say { room, text, action } => {
                let kind = if *action { Kind::Action } else { Kind::Chat };
                let mut it = Item::note(Some(room), kind, text.clone());
                it.nick = Some(self.nick.clone());
                (Target::Room(room.clone()), it)
            }
            Input::Msg { to, text } => {
                let mut it = Item::note(None, Kind::Private, text.clone());
                it.nick = Some(format!("{} → {to}", self.nick));
                let target = Target::Private(to.clone());
                let i = self.open(&target);
                self.goto(i);
                (target, it)
            }
            _ => return,
        };
        item.id = Some(id);
        item.status = Status::Pending;
        let i = self.find(&target).unwrap_or(self.focus);
        self.push_to(i, item);
        self.pending.insert(id, self.conversations[i].target.clone());
        if self.pending.len() > MAX_PENDING {
            self.pending.pop_first();
        }
    }

    // ---- what the client reports ----

    pub fn on_event(&mut self, event: &ClientEvent) {
        let items = items(event);
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
            ClientEvent::Unconfirmed { ids } => {
                for id in ids {
                    self.settle(*id, Status::Unconfirmed);
                }
            }
            ClientEvent::Note(_) => {}
            ClientEvent::Closed { reason } => {
                self.conn = Conn::Closed;
                self.closed = Some(reason.clone());
                self.end_reason.get_or_insert_with(|| reason.clone());
            }
            ClientEvent::Delivered { id, msg } => {
                return self.delivered(*id, msg, items);
            }
            ClientEvent::Server(msg) => return self.on_server(msg, items),
        }
        for it in items {
            self.route(it);
        }
    }

    fn find(&self, target: &Target) -> Option<usize> {
        self.conversations.iter().position(|c| c.target.same(target))
    }

    /// The conversation for `target`, opened if needed.
    fn open(&mut self, target: &Target) -> usize {
        if let Some(i) = self.find(target) {
            return i;
        }
        if matches!(target, Target::Private(_)) {
            let private: Vec<usize> = (0..self.conversations.len())
                .filter(|&i| i != self.focus && self.conversations[i].peer().is_some())
                .collect();
            if private.len() >= MAX_PRIVATE {
                self.remove(private[0]);
            }
        }
        self.conversations.push(Conversation::with_limit(target.clone(), self.scrollback));
        self.conversations.len() - 1
    }

    fn remove(&mut self, i: usize) {
        self.conversations.remove(i);
        if self.focus >= i {
            self.focus(self.focus.saturating_sub(1).max(usize::from(self.conversations.len() > 1)));
        }
    }

    fn push_to(&mut self, index: usize, item: Item) {
        let visible = index == self.focus;
        let own = item.nick.as_deref().is_some_and(|n| n == self.nick || n.starts_with(&format!("{} → ", self.nick)));
        let mention = !own && item.is_said() && (item.kind == Kind::Private || mentions(&item.text, &self.nick));
        let c = &mut self.conversations[index];
        if !visible && item.is_said() {
            c.unread += 1;
            c.mentions += usize::from(mention);
        }
        c.push(item);
    }

    /// Files an item: a room's goes to that room (or to the conversation
    /// on screen when we are not in it); a server-wide one to the server
    /// conversation and to the one on screen, so it is both seen and kept.
    fn route(&mut self, item: Item) {
        if item.kind == Kind::Notice && item.text.is_empty() {
            // An empty message of the day.
            return;
        }
        match item.room.as_deref().and_then(|r| self.find(&Target::Room(r.to_owned()))) {
            Some(i) => self.push_to(i, item),
            None if item.room.is_some() => self.push_to(self.focus, item),
            None if self.focus != 0 => {
                self.push_to(self.focus, item.clone());
                // Already seen where it was shown: no unread mark here.
                self.conversations[0].push(item);
            }
            None => self.push_to(0, item),
        }
    }

    /// Our line `id` was answered: its pending item takes `status`.
    fn settle(&mut self, id: u64, status: Status) -> bool {
        let Some(target) = self.pending.remove(&id) else { return false };
        let Some(i) = self.find(&target) else { return false };
        match self.conversations[i].own_line(id) {
            Some(line) => {
                line.status = status;
                true
            }
            None => false,
        }
    }

    /// Our line as the server numbered and timed it: the pending item
    /// becomes it, in place; if it was never shown, it is added.
    fn delivered(&mut self, id: u64, msg: &ServerMsg, items: Vec<Item>) {
        let target = self.pending.remove(&id);
        if let (ServerMsg::Line(l), Some(t)) = (msg, &target)
            && l.seq == 0
            && let Some(i) = self.find(t)
            && self.conversations[i].drop_if_caught_up(id, &self.nick)
        {
            return;
        }
        for it in items {
            let shown = target.as_ref().and_then(|t| self.find(t)).and_then(|i| self.conversations[i].own_line(id));
            match shown {
                Some(line) => *line = it,
                None => match msg {
                    ServerMsg::Private { from, to, .. } => self.private(from, to, it),
                    _ => self.route(it),
                },
            }
        }
    }

    /// A private message, filed under the other person.
    fn private(&mut self, from: &str, to: &str, item: Item) {
        let peer = if nick_key(from) == nick_key(&self.nick) { to } else { from };
        let i = self.open(&Target::Private(peer.to_owned()));
        self.push_to(i, item);
    }

    fn on_server(&mut self, msg: &ServerMsg, items: Vec<Item>) {
        match msg {
            ServerMsg::Limits { max_line_bytes, .. } if *max_line_bytes > 0 => {
                self.max_line_bytes = *max_line_bytes;
            }
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
            ServerMsg::Error { id, .. } => {
                // Shown where the refused line was typed, next to it.
                let target = self.pending.get(id).cloned();
                self.settle(*id, Status::Refused);
                if let Some(i) = target.and_then(|t| self.find(&t)) {
                    for it in items {
                        self.push_to(i, it);
                    }
                    return;
                }
            }
            ServerMsg::Private { from, to, .. } => {
                for it in items {
                    self.private(from, to, it);
                }
                return;
            }
            ServerMsg::Joined { room, topic, members, .. } => return self.joined(room, topic, members, items),
            ServerMsg::Parted { room } => {
                if let Some(i) = self.find(&Target::Room(room.clone())) {
                    self.remove(i);
                }
            }
            ServerMsg::Notice { room, kind, nick, text, .. } => {
                if let Some(i) = (!room.is_empty()).then(|| self.find(&Target::Room(room.clone()))).flatten() {
                    let c = &mut self.conversations[i];
                    match kind {
                        NoticeKind::Join => c.add_member(nick),
                        NoticeKind::Part | NoticeKind::Quit | NoticeKind::Timeout | NoticeKind::Kick => {
                            c.remove_member(nick);
                        }
                        NoticeKind::Nick => c.rename_member(nick, text),
                        NoticeKind::Topic => c.topic = text.clone(),
                        NoticeKind::Server => {}
                    }
                } else if room.is_empty() && kind != &NoticeKind::Server {
                    return self.server_wide_notice(*kind, nick, text, items);
                }
            }
            ServerMsg::Members { room, nicks } => {
                if let Some(i) = self.find(&Target::Room(room.clone())) {
                    self.conversations[i].set_members(nicks);
                }
            }
            ServerMsg::Topic { room, topic } => {
                if let Some(i) = self.find(&Target::Room(room.clone())) {
                    self.conversations[i].topic = topic.clone();
                }
            }
            _ => {}
        }
        for it in items {
            self.route(it);
        }
    }

    fn joined(&mut self, room: &str, topic: &str, members: &[String], items: Vec<Item>) {
        let target = Target::Room(room.to_owned());
        let i = match self.find(&target) {
            Some(i) => i,
            None => {
                let mut c = Conversation::with_limit(target, self.scrollback);
                if self.starting {
                    c.lines = self.conversations[0].lines.clone();
                }
                self.conversations.push(c);
                self.conversations.len() - 1
            }
        };
        self.conversations[i].set_members(members);
        self.conversations[i].topic = topic.to_owned();
        for it in items {
            self.route(it);
        }
        let wanted = self.pending_room.as_deref() == Some(room);
        if wanted {
            self.pending_room = None;
            self.starting = false;
        }
        if wanted || (self.focus == 0 && !self.moved) {
            self.focus(i);
        }
    }

    /// Someone quit, timed out, was removed or changed nickname: the
    /// server says so once, for every room we share with them. Show it in
    /// those rooms and in our private conversation with them (before they
    /// leave the member lists), then update them.
    fn server_wide_notice(&mut self, kind: NoticeKind, nick: &str, text: &str, items: Vec<Item>) {
        let me = Target::Private(nick.to_owned());
        let shared: Vec<usize> = (1..self.conversations.len())
            .filter(|&i| {
                let c = &self.conversations[i];
                c.has_member(nick) || c.target.same(&me)
            })
            .collect();
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
            let c = &mut self.conversations[i];
            match kind {
                NoticeKind::Nick if c.peer().is_some() => c.target = Target::Private(text.to_owned()),
                NoticeKind::Nick => c.rename_member(nick, text),
                _ => c.remove_member(nick),
            }
        }
        if kind == NoticeKind::Nick && nick_key(nick) == nick_key(&self.nick) {
            self.nick = text.to_owned();
        }
    }
}
