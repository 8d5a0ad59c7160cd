//! What a classic plain-UDP client's datagrams mean (docs/PROTOCOL.md
//! §17.2): the first datagrams from an address say who it is (a bare
//! nickname, `PASS secret` then a nickname, `nick:secret`, or a first line
//! already in the `nick: text` form of clients that prefix every line),
//! later ones are lines, one per text line, and `QUIT` leaves.

/// What the first datagram (or the one after `PASS`) of an address asks.
#[derive(Debug, PartialEq, Eq)]
pub enum Hello {
    /// `PASS secret`: the server password; the nickname comes next.
    Pass(String),
    /// A nickname, maybe with the server password (`nick:secret`), maybe
    /// with a first line (`nick: text` / `nick : text`, the clients that
    /// prefix every line with their name).
    Nick { nick: String, password: Option<String>, prefixed: Option<String> },
}

/// One datagram's text lines without their line ends (a piped `nc -u`
/// may send several lines in one datagram); empty lines are skipped.
pub fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).filter(|l| !l.trim().is_empty())
}

/// Reads a first datagram (its first line; the rest is ignored).
pub fn hello(text: &str) -> Option<Hello> {
    let first = lines(text).next()?;
    if let Some(secret) = first.strip_prefix("PASS ") {
        return Some(Hello::Pass(secret.trim().to_owned()));
    }
    if let Some((name, rest)) = first.split_once(':') {
        let name = name.trim();
        if let Some(text) = rest.strip_prefix(' ') {
            // `ana: hello` / `ana : hello`: this client names itself in
            // every line.
            return Some(Hello::Nick { nick: name.to_owned(), password: None, prefixed: Some(text.to_owned()) });
        }
        if !rest.is_empty() && !rest.contains(' ') {
            return Some(Hello::Nick { nick: name.to_owned(), password: Some(rest.to_owned()), prefixed: None });
        }
    }
    Some(Hello::Nick { nick: first.trim().to_owned(), password: None, prefixed: None })
}

/// A later line of a member that prefixes its lines with its nickname:
/// the line without `nick: ` / `nick : ` (any other line is kept whole).
pub fn strip_prefix<'a>(line: &'a str, nick: &str) -> &'a str {
    let Some(rest) = line.strip_prefix(nick) else { return line };
    rest.strip_prefix(": ").or_else(|| rest.strip_prefix(" : ")).unwrap_or(line)
}

/// Whether a line asks to leave: `QUIT` (any case) or `/quit`.
pub fn is_quit(line: &str) -> bool {
    let l = line.trim();
    l.eq_ignore_ascii_case("quit") || l.eq_ignore_ascii_case("/quit")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nick(n: &str, p: Option<&str>, first: Option<&str>) -> Option<Hello> {
        Some(Hello::Nick { nick: n.into(), password: p.map(Into::into), prefixed: first.map(Into::into) })
    }

    #[test]
    fn first_datagrams() {
        assert_eq!(hello("ana"), nick("ana", None, None));
        assert_eq!(hello("ana\n"), nick("ana", None, None));
        assert_eq!(hello("ana\r\n"), nick("ana", None, None));
        assert_eq!(hello("PASS GAS1"), Some(Hello::Pass("GAS1".into())));
        assert_eq!(hello("ana:GAS1"), nick("ana", Some("GAS1"), None));
        assert_eq!(hello("ana: hello all"), nick("ana", None, Some("hello all")));
        assert_eq!(hello("Ryo : Hii"), nick("Ryo", None, Some("Hii")));
        assert_eq!(hello("\n\n"), None);
        // Not a nickname; the chat server's nickname rules refuse it.
        assert_eq!(hello("hello there"), nick("hello there", None, None));
    }

    #[test]
    fn later_lines() {
        assert_eq!(lines("a\nb\r\n\nc").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(strip_prefix("ana: hi", "ana"), "hi");
        assert_eq!(strip_prefix("ana : hi", "ana"), "hi");
        assert_eq!(strip_prefix("anabel: hi", "ana"), "anabel: hi");
        assert_eq!(strip_prefix("hi", "ana"), "hi");
        assert!(is_quit("QUIT") && is_quit("quit\n") && is_quit("/quit") && !is_quit("quitting"));
    }
}
