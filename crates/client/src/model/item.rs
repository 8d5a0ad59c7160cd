//! What one scrollback entry is, and which entries a client event makes
//! (often one, sometimes none or two). Every front end files and shows
//! the same entries, so they agree on what happened; how an entry looks
//! (colours, the clock in local time) is the front end's business.

use udpchat_chat::{LineKind, NoticeKind, RefuseCode, ServerMsg};

use std::borrow::Cow;

use super::safe_text::safe;
use crate::ClientEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Chat,
    Action,
    Operator,
    Private,
    Notice,
    Error,
    Info,
}

/// Where one of our own lines stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// Someone else's line, a notice, or our line acknowledged.
    #[default]
    Confirmed,
    /// Sent, not yet acknowledged.
    Pending,
    /// The session ended before the acknowledgement: it may or may not
    /// have been delivered.
    Unconfirmed,
    /// The server refused it (an Error for its id says why).
    Refused,
}

/// One thing to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Milliseconds since the Unix epoch (UTC); shown in local time.
    pub time_ms: u64,
    /// The room it belongs to; `None` for server-wide items.
    pub room: Option<String>,
    /// Who said it (chat lines; `from → to` for private messages).
    pub nick: Option<String>,
    pub text: String,
    pub kind: Kind,
    /// The room line's (or stored private message's) sequence number; 0
    /// for everything else. Orders history lines stamped in the same
    /// millisecond.
    pub seq: u64,
    pub history: bool,
    /// The request id of our own line, while it matters.
    pub id: Option<u64>,
    pub status: Status,
}

impl Item {
    /// A server-wide or room item stamped now.
    pub fn note(room: Option<&str>, kind: Kind, text: String) -> Item {
        Item {
            time_ms: now_ms(),
            room: room.map(str::to_owned),
            nick: None,
            text,
            kind,
            seq: 0,
            history: false,
            id: None,
            status: Status::Confirmed,
        }
    }

    /// Something said (chat, action, operator line or private message).
    pub fn is_said(&self) -> bool {
        matches!(self.kind, Kind::Chat | Kind::Action | Kind::Operator | Kind::Private)
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn item(room: Option<&str>, kind: Kind, text: String) -> Item {
    Item::note(room, kind, text)
}

/// What to show for an event (often one item, sometimes none), with
/// every text from the network made safe to print (`safe_text`).
pub fn items(event: &ClientEvent) -> Vec<Item> {
    let mut v = raw_items(event);
    for it in &mut v {
        if let Cow::Owned(t) = safe(&it.text) {
            it.text = t;
        }
        if let Some(Cow::Owned(n)) = it.nick.as_deref().map(safe) {
            it.nick = Some(n);
        }
        if let Some(Cow::Owned(r)) = it.room.as_deref().map(safe) {
            it.room = Some(r);
        }
    }
    v
}

fn raw_items(event: &ClientEvent) -> Vec<Item> {
    match event {
        ClientEvent::Connecting { attempt } => {
            let text =
                if *attempt <= 1 { "connecting…".into() } else { format!("reconnecting (attempt {attempt})…") };
            vec![item(None, Kind::Info, text)]
        }
        ClientEvent::Connected { server_key, first_use } => {
            let text = if *first_use {
                format!("connected; first visit: server key {server_key} (compare it with the one the server printed)")
            } else {
                "connected; server key verified".into()
            };
            vec![item(None, Kind::Info, text)]
        }
        ClientEvent::Rtt(_) => vec![],
        ClientEvent::Disconnected { reason, reconnecting } => {
            let then = if *reconnecting { "; reconnecting" } else { "" };
            vec![item(None, Kind::Error, format!("disconnected: {reason}{then}"))]
        }
        ClientEvent::Unconfirmed { ids } => {
            vec![item(None, Kind::Error, format!("{} line(s) could not be confirmed as delivered", ids.len()))]
        }
        ClientEvent::Note(text) => vec![item(None, Kind::Info, text.clone())],
        ClientEvent::Closed { reason } => vec![item(None, Kind::Info, format!("closed: {reason}"))],
        ClientEvent::Server(msg) => server_items(msg),
        ClientEvent::Delivered { id, msg } => {
            let mut v = server_items(msg);
            for it in &mut v {
                it.id = Some(*id);
            }
            v
        }
    }
}

fn server_items(msg: &ServerMsg) -> Vec<Item> {
    match msg {
        ServerMsg::Welcome { nick, server_name, motd, operator } => {
            let role = if *operator { " (operator)" } else { "" };
            let mut v = vec![item(None, Kind::Info, format!("logged in to {server_name} as {nick}{role}"))];
            // One item per line: a newline must not reach the terminal.
            for line in motd.lines().filter(|l| !l.trim().is_empty()) {
                v.push(item(None, Kind::Notice, line.to_owned()));
            }
            v
        }
        ServerMsg::LoginRefused { code, text } => {
            let hint = match code {
                RefuseCode::NickTaken | RefuseCode::NickInvalid | RefuseCode::NickRegistered => {
                    " (type another nickname)"
                }
                RefuseCode::BadPassword => " (set UDPCHAT_PASSWORD or use --ask-password)",
                _ => "",
            };
            vec![item(None, Kind::Error, format!("login refused: {text}{hint}"))]
        }
        ServerMsg::Line(line) => {
            let kind = match line.kind {
                LineKind::Normal => Kind::Chat,
                LineKind::Action => Kind::Action,
                LineKind::Operator => Kind::Operator,
            };
            vec![Item {
                time_ms: line.time_ms,
                room: Some(line.room.clone()),
                nick: Some(line.from.clone()),
                text: line.text.clone(),
                kind,
                seq: line.seq,
                history: line.history,
                id: None,
                status: Status::Confirmed,
            }]
        }
        ServerMsg::Ack { .. } => vec![],
        ServerMsg::Error { text, .. } => vec![item(None, Kind::Error, text.clone())],
        ServerMsg::Joined { room, topic, members, .. } => {
            let mut v = vec![item(
                Some(room),
                Kind::Notice,
                format!("you joined #{room} ({} here: {})", members.len(), members.join(", ")),
            )];
            if !topic.is_empty() {
                v.push(item(Some(room), Kind::Notice, format!("topic: {topic}")));
            }
            v
        }
        ServerMsg::Parted { room } => vec![item(Some(room), Kind::Notice, format!("you left #{room}"))],
        ServerMsg::Notice { room, kind, nick, text, time_ms } => {
            let room_ref = (!room.is_empty()).then_some(room.as_str());
            let shown = match kind {
                NoticeKind::Join if text.is_empty() => format!("{nick} joined #{room}"),
                // The server says how (a plain-text member, §15.9).
                NoticeKind::Join => format!("{nick} joined #{room} ({text})"),
                NoticeKind::Part if text.is_empty() => format!("{nick} left #{room}"),
                NoticeKind::Part => format!("{nick} left #{room} ({text})"),
                NoticeKind::Quit if text.is_empty() => format!("{nick} quit"),
                NoticeKind::Quit => format!("{nick} quit ({text})"),
                NoticeKind::Timeout => format!("{nick} timed out"),
                NoticeKind::Nick => format!("{nick} is now known as {text}"),
                NoticeKind::Topic => format!("{nick} set the topic: {text}"),
                NoticeKind::Kick => format!("{nick} was removed ({text})"),
                NoticeKind::Server => format!("server: {text}"),
            };
            let mut it = item(room_ref, Kind::Notice, shown);
            it.time_ms = *time_ms;
            vec![it]
        }
        ServerMsg::RoomList { rooms } => {
            let list: Vec<String> = rooms.iter().map(|r| format!("#{} ({})", r.name, r.members)).collect();
            vec![item(None, Kind::Notice, format!("rooms: {}", list.join(", ")))]
        }
        ServerMsg::Members { room, nicks } => {
            vec![item(Some(room), Kind::Notice, format!("in #{room}: {}", nicks.join(", ")))]
        }
        ServerMsg::Private { from, to, text, time_ms, history, seq, .. } => vec![Item {
            time_ms: *time_ms,
            room: None,
            nick: Some(format!("{from} → {to}")),
            text: text.clone(),
            kind: Kind::Private,
            seq: *seq,
            history: *history,
            id: None,
            status: Status::Confirmed,
        }],
        ServerMsg::Topic { room, topic } => {
            let t = if topic.is_empty() { "(no topic)" } else { topic };
            vec![item(Some(room), Kind::Notice, format!("topic of #{room}: {t}"))]
        }
        // Nothing to show: the session core paces itself by them.
        ServerMsg::Limits { .. } => Vec::new(),
    }
}
