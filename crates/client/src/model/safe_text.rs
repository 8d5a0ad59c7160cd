//! Text from the network made safe to print (issue 10, item 9): every
//! front end shows what other people and the server wrote (lines, nicks,
//! topics, the MOTD, the server name, notices), and a control character or
//! escape sequence in it must not reach the terminal (it could move the
//! cursor, change colours, set the window title or fake another line), nor
//! may a bidirectional override or isolate make the text after it read in
//! a different order than it was written.
//!
//! The server refuses control characters in lines it stores, but not in
//! everything (and a client must not depend on the server for its own
//! terminal), so the model cleans every item it makes.

use std::borrow::Cow;

/// What a neutralised character is shown as.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Characters that must not reach a terminal as they are: C0 and C1
/// controls (escape, newline, bell, …) and DEL, and the bidirectional
/// embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069).
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every [`is_unsafe`] character replaced by [`REPLACEMENT`]
/// (a tab by a space); borrowed when nothing needed replacing.
pub fn safe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    Cow::Owned(
        s.chars()
            .map(|c| match c {
                '\t' => ' ',
                c if is_unsafe(c) => REPLACEMENT,
                c => c,
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_controls_are_neutralised() {
        assert_eq!(safe("plain text, ünïcödé"), "plain text, ünïcödé");
        assert!(matches!(safe("ok"), Cow::Borrowed(_)));
        assert_eq!(safe("\x1b]0;owned\x07title"), "\u{FFFD}]0;owned\u{FFFD}title");
        assert_eq!(safe("a\r\nb\tc\u{7f}\u{9b}"), "a\u{FFFD}\u{FFFD}b c\u{FFFD}\u{FFFD}");
    }

    #[test]
    fn bidi_overrides_and_isolates_are_neutralised() {
        for c in
            ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}']
        {
            let s = format!("abc{c}def");
            assert_eq!(safe(&s), "abc\u{FFFD}def", "{c:?}");
        }
        // Right-to-left text itself is fine.
        assert_eq!(safe("שלום"), "שלום");
    }
}
