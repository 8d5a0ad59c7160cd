//! Tab completion candidates for any front end's input line: commands
//! (a word starting with `/` at the start of the line), rooms (a word
//! starting with `#`: joined rooms first, then rooms the server listed)
//! and nicknames (members of the conversation on screen).

use super::{Model, Target, nick_key, room_key};

/// The commands [`crate::input::parse`] knows, for completion.
pub const COMMANDS: &[&str] = &[
    "/join", "/part", "/list", "/who", "/nick", "/me", "/msg", "/topic", "/history", "/kick", "/ban", "/unban",
    "/quit", "/help",
];

impl Model {
    /// What `word` (the word before the cursor) may complete to; `first`:
    /// it is the first word of the line (where commands go).
    pub fn completions(&self, word: &str, first: bool) -> Vec<String> {
        if word.starts_with('/') {
            if !first {
                return Vec::new();
            }
            let w = word.to_ascii_lowercase();
            return COMMANDS.iter().filter(|c| c.starts_with(&w)).map(|c| (*c).to_owned()).collect();
        }
        if let Some(prefix) = word.strip_prefix('#') {
            let prefix = room_key(prefix);
            return self
                .conversations()
                .iter()
                .filter_map(|c| match &c.target {
                    Target::Room(r) if r.starts_with(&prefix) => Some(format!("#{r}")),
                    _ => None,
                })
                .collect();
        }
        if nick_key(word).is_empty() {
            return Vec::new();
        }
        self.nick_candidates(word)
    }
}
