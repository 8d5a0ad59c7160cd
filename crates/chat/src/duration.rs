//! Durations as people type them in commands (`/ban ana 2h spam`): `30s`,
//! `10m`, `2h`, `7d` or plain seconds. The client parses what its user
//! typed into the seconds a message carries (Ban's `expires_secs`,
//! docs/PROTOCOL.md §15.2); the server console parses the same way and
//! shows durations back in the same form.

/// `10m`, `2h`, `7d`, `30s` (or plain seconds) as seconds; None if it is
/// not a duration (then it is the start of the reason).
pub fn parse(text: &str) -> Option<u64> {
    let unit = match text.chars().last()? {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        c if c.is_ascii_digit() => return text.parse().ok().filter(|&n| n > 0),
        _ => return None,
    };
    let n: u64 = text[..text.len() - 1].parse().ok().filter(|&n| n > 0)?;
    n.checked_mul(unit)
}

/// "2h" back from seconds, for confirmations.
pub fn show(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse("10m"), Some(600));
        assert_eq!(parse("2h"), Some(7200));
        assert_eq!(parse("7d"), Some(604_800));
        assert_eq!(parse("90"), Some(90));
        assert_eq!(parse("spam"), None);
        assert_eq!(parse("0m"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("é"), None);
        assert_eq!(show(7200), "2h");
        assert_eq!(show(90), "90s");
    }
}
