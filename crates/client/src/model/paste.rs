//! A paste of several lines: the protocol has no multi-line lines
//! (docs/PROTOCOL.md §15.5), so each pasted line is sent as a line of its
//! own, in order, and none is dropped (the client paces them to the
//! server's rate). Shared by the terminal client's bracketed paste and the
//! desktop client's clipboard paste, so both split a paste the same way.

/// A paste of more lines than this is confirmed first (as irssi's paste
/// detection does): a misdirected paste of a whole file is easy to make.
pub const PASTE_CONFIRM: usize = 5;

/// The lines to send for `pasted` text added to `typed` (what was in the
/// input line before it): `None` when the paste has no line break (it
/// simply goes into the input line). Blank lines are skipped: the server
/// refuses empty lines.
pub fn paste_lines(typed: &str, pasted: &str) -> Option<Vec<String>> {
    if !pasted.contains(['\n', '\r']) {
        return None;
    }
    let whole = format!("{typed}{pasted}");
    Some(whole.split(['\n', '\r']).filter(|l| !l.trim().is_empty()).map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_a_paste() {
        assert_eq!(paste_lines("x", "abc"), None);
        assert_eq!(
            paste_lines("say: ", "one\r\ntwo\n\nthree\n").unwrap(),
            vec!["say: one".to_owned(), "two".into(), "three".into()]
        );
    }
}
