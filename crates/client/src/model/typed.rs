//! What a line the user typed asks for, given where they are: a line for
//! the room on screen, a private message in a private conversation,
//! another nickname after a refusal, a command, or something answered
//! right here (help, a typing error, a line that needs a room). Every
//! front end with an input line hands it to [`Model::typed`] and carries
//! out the [`Command`] that comes back.

use crate::{HELP, Input, input};

use super::{Kind, Model, nick_key};

/// What the front end should ask the client for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `Client::input`; for lines and private messages, then
    /// [`Model::sending`] with the id it returns.
    Send(Input),
    /// `Client::login`: another nickname after a refusal.
    Login(String),
    /// `Client::quit`.
    Quit(String),
    /// Leave the interface (the client has already stopped).
    Exit,
}

/// Keys of the terminal client, for `/help`; other front ends give
/// theirs with [`Model::set_keys_help`].
pub const KEYS_HELP: &str =
    "keys: PgUp/PgDn scroll, Tab completes nicknames, Ctrl-N/Ctrl-P or Alt-Left/Right switch rooms, Ctrl-C quits";

impl Model {
    /// Interprets one typed line.
    pub fn typed(&mut self, line: &str) -> Option<Command> {
        if self.closed().is_some() {
            return Some(Command::Exit);
        }
        if self.awaiting_nick() {
            if let Ok(Input::Quit(reason)) = input::parse(line, "") {
                return Some(Command::Quit(reason));
            }
            let nick = line.trim();
            if nick.is_empty() || nick.contains(char::is_whitespace) {
                self.note(Kind::Error, "type a nickname (one word)");
                return None;
            }
            self.retry_nick(nick);
            return Some(Command::Login(nick.to_owned()));
        }
        let room = self.current_room().unwrap_or_default().to_owned();
        let peer = self.current().peer().map(str::to_owned);
        match input::parse(line, &room) {
            Ok(Input::Nothing) => None,
            Ok(Input::Help) => {
                for l in HELP.lines() {
                    self.note(Kind::Info, l);
                }
                let keys = self.keys_help;
                self.note(Kind::Info, keys);
                None
            }
            Ok(Input::Quit(reason)) => Some(Command::Quit(reason)),
            Ok(Input::Join(r)) => {
                self.joining(&r);
                Some(Command::Send(Input::Join(r)))
            }
            // Plain text in a private conversation goes to that person.
            Ok(Input::Say { text, action: false, .. }) if peer.is_some() => {
                Some(Command::Send(Input::Msg { to: peer.unwrap_or_default(), text }))
            }
            Ok(i) if room.is_empty() && needs_room(&i) => {
                let here = if peer.is_some() { "a private conversation" } else { "the server buffer" };
                self.note(Kind::Error, &format!("this is {here}: switch to a room (Ctrl+N) or /join one"));
                None
            }
            Ok(i) => Some(Command::Send(i)),
            Err(e) => {
                self.note(Kind::Error, &e);
                None
            }
        }
    }

    /// Nicknames of the conversation on screen starting with `prefix`
    /// (case-insensitively), ours left out: for completion.
    pub fn nick_candidates(&self, prefix: &str) -> Vec<String> {
        let prefix = nick_key(prefix);
        let me = nick_key(self.nick());
        let current = self.current();
        current
            .members
            .iter()
            .map(String::as_str)
            .chain(current.peer())
            .filter(|m| {
                let k = nick_key(m);
                k.starts_with(&prefix) && k != me
            })
            .map(str::to_owned)
            .collect()
    }
}

/// Inputs that act on the current room, which the other conversations lack.
fn needs_room(i: &Input) -> bool {
    match i {
        Input::Say { .. } | Input::Topic { .. } | Input::History { .. } | Input::Kick { .. } => true,
        Input::Part { room, .. } | Input::Who(room) => room.is_empty(),
        _ => false,
    }
}
