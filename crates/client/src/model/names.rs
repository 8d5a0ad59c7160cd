//! How the model compares names: nicknames and rooms the way the server
//! does (case-folded, `#Rust` is the room `rust`, udpchat_chat::names),
//! and whether a line mentions a nickname.

use udpchat_chat::names;

/// Case-insensitive key of a nickname, the way the server compares them.
pub fn nick_key(nick: &str) -> String {
    names::fold(nick)
}

/// The server's name for a room as typed (`#Rust` is `rust`).
pub fn room_key(room: &str) -> String {
    names::room_name(room).unwrap_or_else(|_| names::fold(room.trim_start_matches('#')))
}

/// Whether `text` names `nick` as a word.
pub fn mentions(text: &str, nick: &str) -> bool {
    let key = nick_key(nick);
    !key.is_empty()
        && text.split(|c: char| !(c.is_alphanumeric() || "_-[]{}|^`".contains(c))).any(|w| nick_key(w) == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_are_words() {
        assert!(mentions("hi ana!", "Ana"));
        assert!(!mentions("banana", "ana"));
        assert_eq!(room_key("#Rust"), "rust");
    }
}
