//! What a plain-text member receives (docs/PROTOCOL.md §17.3): the chat
//! server's messages to it, rendered as the one-line texts the classic
//! clients print as they come (`nick: text`). Messages a classic client
//! has no use for (acknowledgements, limits, history replays, lists) are
//! not sent at all: every byte counts against the member's reply budget.

use udpchat_chat::{LineKind, NoticeKind, RefuseCode, ServerMsg};

/// The text for `msg`, or `None` when a plain member gets nothing for it.
pub fn render(msg: &ServerMsg) -> Option<String> {
    let text = match msg {
        ServerMsg::Welcome { nick, .. } => format!("Welcome {nick}"),
        // Short: a refused nickname is all the member has sent, and a
        // reply may be at most three times that (§17.4).
        ServerMsg::LoginRefused { code, text } => match code {
            RefuseCode::NickTaken => "ERROR: nick taken".into(),
            RefuseCode::NickRegistered => "ERROR: nick registered".into(),
            RefuseCode::BadPassword => "ERROR: password (PASS secret)".into(),
            RefuseCode::Banned => "ERROR: banned".into(),
            _ => format!("ERROR: {text}"),
        },
        ServerMsg::Error { text, .. } => format!("ERROR: {text}"),
        ServerMsg::Line(line) if line.history => return None,
        ServerMsg::Line(line) => match line.kind {
            LineKind::Action => format!("* {} {}", line.from, line.text),
            LineKind::Normal | LineKind::Operator => format!("{}: {}", line.from, line.text),
        },
        ServerMsg::Notice { kind, nick, text, .. } => match kind {
            NoticeKind::Join if text.is_empty() => format!("-- {nick} joined"),
            NoticeKind::Join => format!("-- {nick} joined ({text})"),
            NoticeKind::Part | NoticeKind::Quit if text.is_empty() => format!("-- {nick} left"),
            NoticeKind::Part | NoticeKind::Quit => format!("-- {nick} left ({text})"),
            NoticeKind::Timeout => format!("-- {nick} timed out"),
            NoticeKind::Nick => format!("-- {nick} is now known as {text}"),
            NoticeKind::Topic => format!("-- {nick} set the topic: {text}"),
            NoticeKind::Kick => format!("-- {nick} was removed ({text})"),
            NoticeKind::Server => format!("-- server: {text}"),
        },
        ServerMsg::Private { from, text, history: false, .. } => format!("{from} (private): {text}"),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_chat::Line;

    fn line(from: &str, text: &str, kind: LineKind, history: bool) -> ServerMsg {
        ServerMsg::Line(Line {
            room: "lobby".into(),
            seq: 1,
            time_ms: 0,
            from: from.into(),
            text: text.into(),
            kind,
            history,
        })
    }

    #[test]
    fn classic_forms() {
        assert_eq!(render(&line("bob", "hi", LineKind::Normal, false)).as_deref(), Some("bob: hi"));
        assert_eq!(render(&line("bob", "waves", LineKind::Action, false)).as_deref(), Some("* bob waves"));
        assert_eq!(render(&line("bob", "old", LineKind::Normal, true)), None);
        let welcome =
            ServerMsg::Welcome { nick: "dina".into(), server_name: "x".into(), motd: "m".into(), operator: false };
        assert_eq!(render(&welcome).as_deref(), Some("Welcome dina"));
        assert_eq!(render(&ServerMsg::Ack { id: 1, room: "lobby".into(), seq: 1 }), None);
        let quit = ServerMsg::Notice {
            room: String::new(),
            kind: NoticeKind::Quit,
            nick: "bob".into(),
            text: String::new(),
            time_ms: 0,
        };
        assert_eq!(render(&quit).as_deref(), Some("-- bob left"));
    }
}
