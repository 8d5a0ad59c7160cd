//! Turns what a user types into requests: `/join rust`, `/me waves`,
//! `/msg ana hi`, a bare `QUIT` (as one of the classic UDP chats had), or
//! plain text for the current room. Shared by the terminal client, the
//! plain stdin client and `udpchat send`, so every front end understands
//! the same commands.

/// What a typed line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Say {
        room: String,
        text: String,
        action: bool,
    },
    Join(String),
    Part {
        room: String,
        reason: String,
    },
    List,
    Who(String),
    Nick(String),
    Msg {
        to: String,
        text: String,
    },
    /// `None`: show the topic.
    Topic {
        room: String,
        topic: Option<String>,
    },
    Quit(String),
    History {
        room: String,
        count: u64,
    },
    Kick {
        room: String,
        nick: String,
        reason: String,
    },
    Ban {
        target: String,
        reason: String,
        /// Seconds until the ban lapses; 0: never.
        expires_secs: u64,
    },
    Unban {
        target: String,
    },
    Help,
    /// Nothing to do (an empty line).
    Nothing,
}

/// The commands, for `/help` and the README.
pub const HELP: &str = "\
/join ROOM           join a room (and make it current)
/part [ROOM] [why]   leave a room (default: the current one)
/list                rooms and how many are in each
/who [ROOM]          who is in a room
/nick NEW            change your nickname
/me ACTION           say an action (* ana waves)
/msg NICK TEXT       private message
/topic [TEXT]        show or set the room's topic
/history [N]         N earlier lines of the room (default 50)
/kick NICK [why]     remove someone from the room (operators)
/ban NICK|ADDR [10m|2h|7d] [why]
                     ban a nickname or address, for good or a while (operators)
/unban NICK|ADDR     lift a ban (operators)
/quit [why] or QUIT  leave the server
/help                this list";

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.split_once(char::is_whitespace) {
        Some((w, rest)) => (w, rest.trim_start()),
        None => (s, ""),
    }
}

/// Parses one typed line; `room` is the current room. Unknown commands
/// are an error with a hint.
pub fn parse(line: &str, room: &str) -> Result<Input, String> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(Input::Nothing);
    }
    if line.trim() == "QUIT" {
        return Ok(Input::Quit(String::new()));
    }
    // `//text` sends a line that starts with a slash.
    if let Some(rest) = line.strip_prefix("//") {
        return Ok(Input::Say { room: room.into(), text: format!("/{rest}"), action: false });
    }
    let Some(command) = line.strip_prefix('/') else {
        return Ok(Input::Say { room: room.into(), text: line.into(), action: false });
    };
    let (name, args) = split_word(command);
    let need = |what: &str| format!("/{name} needs {what}");
    Ok(match name.to_ascii_lowercase().as_str() {
        "join" | "j" => {
            let (r, _) = split_word(args);
            if r.is_empty() {
                return Err(need("a room name"));
            }
            Input::Join(r.into())
        }
        "part" | "leave" => {
            let (r, reason) = split_word(args);
            let r = if r.is_empty() { room } else { r };
            Input::Part { room: r.into(), reason: reason.into() }
        }
        "list" => Input::List,
        "who" | "names" => {
            let (r, _) = split_word(args);
            Input::Who(if r.is_empty() { room.into() } else { r.into() })
        }
        "nick" => {
            let (n, _) = split_word(args);
            if n.is_empty() {
                return Err(need("a nickname"));
            }
            Input::Nick(n.into())
        }
        "me" => {
            if args.trim().is_empty() {
                return Err(need("an action"));
            }
            Input::Say { room: room.into(), text: args.into(), action: true }
        }
        "msg" | "query" => {
            let (to, text) = split_word(args);
            if to.is_empty() || text.is_empty() {
                return Err(need("a nickname and a message"));
            }
            Input::Msg { to: to.into(), text: text.into() }
        }
        "topic" => Input::Topic { room: room.into(), topic: (!args.trim().is_empty()).then(|| args.trim().into()) },
        "history" => {
            let (n, _) = split_word(args);
            let count = if n.is_empty() { 50 } else { n.parse().map_err(|_| need("a number"))? };
            Input::History { room: room.into(), count }
        }
        "kick" => {
            let (nick, reason) = split_word(args);
            if nick.is_empty() {
                return Err(need("a nickname"));
            }
            Input::Kick { room: room.into(), nick: nick.into(), reason: reason.into() }
        }
        "ban" => {
            let (target, reason) = split_word(args);
            if target.is_empty() {
                return Err(need("a nickname or address"));
            }
            let (first, rest) = split_word(reason);
            match udpchat_chat::duration::parse(first) {
                Some(secs) => Input::Ban { target: target.into(), reason: rest.into(), expires_secs: secs },
                None => Input::Ban { target: target.into(), reason: reason.into(), expires_secs: 0 },
            }
        }
        "unban" => {
            let (target, _) = split_word(args);
            if target.is_empty() {
                return Err(need("a nickname or address"));
            }
            Input::Unban { target: target.into() }
        }
        "quit" | "exit" => Input::Quit(args.trim().into()),
        "help" | "?" => Input::Help,
        other => return Err(format!("unknown command /{other}; /help lists them")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(
            parse("hello", "lobby"),
            Ok(Input::Say { room: "lobby".into(), text: "hello".into(), action: false })
        );
        assert_eq!(parse("/me waves", "r"), Ok(Input::Say { room: "r".into(), text: "waves".into(), action: true }));
        assert_eq!(parse("/join rust", "lobby"), Ok(Input::Join("rust".into())));
        assert_eq!(parse("/part", "rust"), Ok(Input::Part { room: "rust".into(), reason: String::new() }));
        assert_eq!(parse("/msg ana hi there", "l"), Ok(Input::Msg { to: "ana".into(), text: "hi there".into() }));
        assert_eq!(parse("QUIT", "l"), Ok(Input::Quit(String::new())));
        assert_eq!(parse("/quit gone", "l"), Ok(Input::Quit("gone".into())));
        assert_eq!(parse("/topic", "l"), Ok(Input::Topic { room: "l".into(), topic: None }));
        assert_eq!(parse("//etc", "l"), Ok(Input::Say { room: "l".into(), text: "/etc".into(), action: false }));
        assert_eq!(parse("   ", "l"), Ok(Input::Nothing));
        assert!(parse("/frobnicate", "l").unwrap_err().contains("/help"));
        assert!(parse("/msg ana", "l").is_err());
        assert_eq!(
            parse("/ban eve 2h spam", "l"),
            Ok(Input::Ban { target: "eve".into(), reason: "spam".into(), expires_secs: 7200 })
        );
        assert_eq!(
            parse("/ban eve spam again", "l"),
            Ok(Input::Ban { target: "eve".into(), reason: "spam again".into(), expires_secs: 0 })
        );
        assert_eq!(parse("/unban 10.0.0.9", "l"), Ok(Input::Unban { target: "10.0.0.9".into() }));
        assert!(parse("/unban", "l").is_err());
    }
}
