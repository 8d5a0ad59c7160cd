//! Nickname and room-name rules. Names are compared after Unicode NFKC
//! normalisation and lowercasing, so `Ana`, `ANA` and `Ａｎａ` (full-width)
//! are one nickname; the user's own spelling is kept for display.

use unicode_normalization::UnicodeNormalization;

use crate::ErrorCode;

pub const MAX_NICK_CHARS: usize = 24;
pub const MAX_ROOM_CHARS: usize = 32;

/// The form names are compared in.
pub fn fold(name: &str) -> String {
    name.nfkc().flat_map(char::to_lowercase).collect()
}

fn allowed(c: char) -> bool {
    c.is_alphanumeric() || "_-.[]{}|^`".contains(c)
}

/// Checks a nickname; the error says what is wrong, for the refusal text.
pub fn check_nick(nick: &str) -> Result<(), String> {
    let n = nick.chars().count();
    if n == 0 || n > MAX_NICK_CHARS {
        return Err(format!("a nickname has 1 to {MAX_NICK_CHARS} characters"));
    }
    if let Some(c) = nick.chars().find(|&c| !allowed(c)) {
        return Err(format!("{c:?} is not allowed in a nickname (letters, digits and _-.[]{{}}|^` are)"));
    }
    if fold(nick) == "server" || fold(nick) == "operator" {
        return Err("that nickname is reserved".into());
    }
    Ok(())
}

/// Checks a room name and returns its folded form (rooms are shown as
/// folded: there is no owner whose spelling would win).
pub fn room_name(room: &str) -> Result<String, String> {
    let room = room.strip_prefix('#').unwrap_or(room);
    let n = room.chars().count();
    if n == 0 || n > MAX_ROOM_CHARS {
        return Err(format!("a room name has 1 to {MAX_ROOM_CHARS} characters"));
    }
    if let Some(c) = room.chars().find(|&c| !allowed(c)) {
        return Err(format!("{c:?} is not allowed in a room name"));
    }
    Ok(fold(room))
}

/// A line's problem, if any: too long, or control characters (tab is fine).
pub fn check_line(text: &str, max_bytes: usize) -> Result<(), (ErrorCode, String)> {
    if text.len() > max_bytes {
        return Err((ErrorCode::LineTooLong, format!("line is {} bytes; the limit is {max_bytes}", text.len())));
    }
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err((ErrorCode::ControlCharacters, "control characters other than tab are not allowed".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nicknames_fold_case_and_width() {
        assert_eq!(fold("Ana"), fold("ANA"));
        assert_eq!(fold("Ａｎａ"), "ana");
        assert!(check_nick("ana_1").is_ok());
        assert!(check_nick("").is_err());
        assert!(check_nick("a b").is_err());
        assert!(check_nick(&"x".repeat(25)).is_err());
        assert!(check_nick("Server").is_err());
    }

    #[test]
    fn rooms_and_lines() {
        assert_eq!(room_name("#Rust"), Ok("rust".into()));
        assert!(room_name("").is_err());
        assert!(check_line("tab\tok", 10).is_ok());
        assert!(check_line("bell\u{7}", 10).is_err());
        assert!(check_line("12345678901", 10).is_err());
    }
}
