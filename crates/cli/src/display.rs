//! How model items look as text: the clock in local time (as irssi shows
//! it, through jiff and the system time zone) and the one-line form
//! `chat --plain` prints. The items themselves, and which ones an event
//! makes, are the client model's (`udpchat_client::model::items`), so the
//! terminal interface and `--plain` always agree on what happened.

use std::sync::OnceLock;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use udpchat_client::model::{Item, Kind, Status};

/// The system time zone, looked up once (`TZ`, else /etc/localtime; UTC
/// if neither says).
fn local_zone() -> &'static TimeZone {
    static ZONE: OnceLock<TimeZone> = OnceLock::new();
    ZONE.get_or_init(TimeZone::system)
}

/// `HH:MM:SS` in local time.
pub fn clock(time_ms: u64) -> String {
    clock_in(time_ms, local_zone())
}

/// `HH:MM:SS` in `zone`.
pub fn clock_in(time_ms: u64, zone: &TimeZone) -> String {
    let at = i64::try_from(time_ms).ok().and_then(|ms| Timestamp::from_millisecond(ms).ok());
    zone.to_datetime(at.unwrap_or(Timestamp::UNIX_EPOCH)).strftime("%H:%M:%S").to_string()
}

/// One line of plain text: `[HH:MM:SS] #room <nick> text`, local time.
pub fn plain(it: &Item) -> String {
    plain_in(it, local_zone())
}

/// [`plain`] with the clock in `zone`.
pub fn plain_in(it: &Item, zone: &TimeZone) -> String {
    let mut s = format!("[{}] ", clock_in(it.time_ms, zone));
    if it.history {
        s.push_str("(history) ");
    }
    if let Some(room) = &it.room {
        s.push_str(&format!("#{room} "));
    }
    match (it.kind, &it.nick) {
        (Kind::Chat, Some(n)) => s.push_str(&format!("<{n}> {}", it.text)),
        (Kind::Operator, Some(n)) => s.push_str(&format!("<{n}!> {}", it.text)),
        (Kind::Action, Some(n)) => s.push_str(&format!("* {n} {}", it.text)),
        (Kind::Private, Some(n)) => s.push_str(&format!("[{n}] {}", it.text)),
        (Kind::Error, _) => s.push_str(&format!("!! {}", it.text)),
        _ => s.push_str(&format!("-- {}", it.text)),
    }
    match it.status {
        Status::Confirmed | Status::Pending => {}
        Status::Unconfirmed => s.push_str(" (not confirmed)"),
        Status::Refused => s.push_str(" (refused)"),
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 13:04:05.678 UTC.
    const T: u64 = 1_796_216_645_678;

    #[test]
    fn clock_follows_the_zone_given() {
        assert_eq!(clock_in(T, &TimeZone::UTC), "13:04:05");
        // A rule, not a database name: the test needs no tzdata installed.
        let paris = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").expect("a POSIX TZ string");
        assert_eq!(clock_in(T, &paris), "14:04:05");
        let offset = TimeZone::fixed(jiff::tz::offset(-5));
        assert_eq!(clock_in(T, &offset), "08:04:05");
    }

    #[test]
    fn plain_lines() {
        let it = Item {
            time_ms: T,
            room: Some("rust".into()),
            nick: Some("bob".into()),
            text: "hi".into(),
            kind: Kind::Chat,
            seq: 0,
            history: false,
            id: None,
            status: Status::Confirmed,
        };
        assert_eq!(plain_in(&it, &TimeZone::UTC), "[13:04:05] #rust <bob> hi");
        let it = Item { kind: Kind::Error, nick: None, room: None, text: "no".into(), ..it };
        assert_eq!(plain_in(&it, &TimeZone::UTC), "[13:04:05] !! no");
    }
}
