//! What the operator tunes while the server runs, kept in the store so it
//! survives restarts: an account's rate (`/rate NICK N`, for bots), applied
//! at once to its sessions online, which are sent fresh `Limits`
//! (docs/PROTOCOL.md §15.10: "again whenever they change"); and what a room
//! keeps (`/retention ROOM ...`), which overrides the config's rule for
//! that room until set back to `default`.

use udpchat_chat::names::{fold, room_name};
use udpchat_proto::ConnectionHandle;

use super::rooms::Room;
use super::storage::AccountUse;
use super::{ChatServer, Clock, Outlet};
use crate::store::{Account, AdminChange, Retention, StoreError};

pub const RETENTION_HELP: &str = "-- /retention ROOM (show), /retention ROOM lines N days D (0: no limit; either may be left out), /retention ROOM default";

const DAY_MS: u64 = 86_400_000;

/// The retention rules of a room: the operator's, else the config's
/// `[rooms.NAME]`, else the server-wide ones. 0 in the config means no
/// limit (so a room can opt out of a server-wide one).
pub(crate) fn effective_retention(settings: &crate::settings::Settings, name: &str, room: Option<&Room>) -> Retention {
    if let Some(set) = room.and_then(|r| r.retention) {
        return set;
    }
    let specific = settings.rooms.get(name);
    let max_lines = specific.and_then(|r| r.max_lines).or(settings.history_max_lines).filter(|&n| n > 0);
    let max_age_days = specific.and_then(|r| r.max_age_days).or(settings.history_max_age_days);
    Retention { max_lines, max_age_ms: max_age_days.map(|d| d.saturating_mul(DAY_MS)) }
}

/// "the last 1000 lines, 30 days" / "everything".
fn describe(r: Retention) -> String {
    let lines = r.max_lines.map(|n| format!("the last {n} lines"));
    let age = r.max_age_ms.map(|ms| match ms / DAY_MS {
        1 => "1 day".to_owned(),
        days if ms.is_multiple_of(DAY_MS) => format!("{days} days"),
        _ => format!("{} hours", ms / 3_600_000),
    });
    match (lines, age) {
        (Some(l), Some(a)) => format!("{l}, at most {a} old"),
        (Some(l), None) => l,
        (None, Some(a)) => format!("lines up to {a} old"),
        (None, None) => "everything".to_owned(),
    }
}

/// `lines N days D` (either or both) over `current`; None if malformed.
fn parse_retention(words: &[&str], current: Retention) -> Option<Retention> {
    let mut r = current;
    if words.is_empty() || !words.len().is_multiple_of(2) {
        return None;
    }
    for pair in words.chunks(2) {
        let n: u64 = pair[1].parse().ok()?;
        match pair[0] {
            "lines" => r.max_lines = (n > 0).then_some(n),
            "days" => r.max_age_ms = (n > 0).then(|| n.saturating_mul(DAY_MS)),
            _ => return None,
        }
    }
    Some(r)
}

impl ChatServer {
    /// `/rate NICK N`: the account's requests per second (0: the server's).
    pub(crate) fn console_rate(&mut self, nick: &str, rate: &str) {
        let rate = rate.trim();
        let Ok(rate) = rate.parse::<u32>() else {
            self.answer("-- /rate NICK LINES_PER_SECOND (0: the server's rate) for an account, e.g. a bot");
            return;
        };
        if nick.is_empty() {
            self.answer("-- /rate NICK LINES_PER_SECOND");
            return;
        }
        let then = AccountUse::SetRate { nick: nick.to_owned(), rate };
        if !self.store.read_account(fold(nick), then) {
            self.answer("-- the history database is busy; try /rate again in a moment");
        }
    }

    /// The account of a `/rate` came back: store the rate and apply it to
    /// the account's sessions online.
    pub(crate) fn rate_account_read(
        &mut self,
        clock: Clock,
        nick: &str,
        rate: u32,
        result: Result<Option<Account>, StoreError>,
        out: &mut impl Outlet,
    ) {
        let account = match result {
            Ok(Some(account)) => account,
            Ok(None) => {
                let text = format!(
                    "-- {nick} has no account; rates belong to accounts: create it with `udpchat user add {nick} --rate {rate}`"
                );
                self.answer(text);
                return;
            }
            Err(e) => {
                self.answer(format!("-- could not look up {nick}: {e}"));
                return;
            }
        };
        let folded = fold(&account.name);
        self.record_admin(AdminChange::AccountRate { account: folded.clone(), rate });
        let online = self.account_rate_changed(&folded, rate, out);
        let shown = if rate > 0 { format!("{rate} lines/s") } else { "the server's rate".to_owned() };
        let sessions = match online.len() {
            0 => "no session online".to_owned(),
            1 => "1 session told".to_owned(),
            n => format!("{n} sessions told"),
        };
        self.announce(clock, format!("-- rate of {} set to {shown} ({sessions})", account.name));
    }

    /// `/retention ROOM [lines N] [days D] | default`.
    pub(crate) fn console_retention(&mut self, clock: Clock, args: &str) {
        let words: Vec<&str> = args.split_whitespace().collect();
        let Some((&first, rest)) = words.split_first() else {
            self.answer(RETENTION_HELP);
            return;
        };
        let name = match room_name(first) {
            Ok(name) => name,
            Err(why) => {
                self.answer(format!("-- {why}"));
                return;
            }
        };
        let current = effective_retention(&self.settings, &name, self.rooms.get(&name));
        let set_by_operator = self.rooms.get(&name).is_some_and(|r| r.retention.is_some());
        match rest {
            [] => {
                let source = if set_by_operator { "set by the operator" } else { "from the config" };
                self.answer(format!("-- #{name} keeps {} ({source})", describe(current)));
            }
            ["default"] => {
                if let Some(r) = self.rooms.get_mut(&name) {
                    r.retention = None;
                }
                self.record_admin(AdminChange::Retention { room: name.clone(), retention: None });
                let now = effective_retention(&self.settings, &name, self.rooms.get(&name));
                self.announce(clock, format!("-- #{name} keeps {} again (from the config)", describe(now)));
            }
            words => {
                let Some(new) = parse_retention(words, current) else {
                    self.answer(RETENTION_HELP);
                    return;
                };
                if !self.rooms.contains_key(&name) && self.rooms.len() >= self.settings.max_rooms {
                    self.answer(format!("-- cannot create #{name}: the server has too many rooms"));
                    return;
                }
                self.rooms.entry(name.clone()).or_insert_with(|| Room::new(0)).retention = Some(new);
                self.record_admin(AdminChange::Retention { room: name.clone(), retention: Some(new) });
                self.announce(clock, format!(
                    "-- #{name} now keeps {} (kept across restarts; /retention {name} default goes back to the config)",
                    describe(new)
                ));
            }
        }
    }
}

impl ChatServer {
    /// The account's sessions online here take its new rate (0: the
    /// server's) and hear fresh Limits (§15.10). Returns them.
    pub(crate) fn account_rate_changed(
        &mut self,
        folded: &str,
        rate: u32,
        out: &mut impl Outlet,
    ) -> Vec<ConnectionHandle> {
        let per_second = if rate > 0 { f64::from(rate) } else { self.settings.rate_per_second };
        let max_line = self.settings.max_line_bytes;
        let online: Vec<_> =
            self.sessions.iter().filter(|(_, s)| s.account.as_deref() == Some(folded)).map(|(h, _)| *h).collect();
        for &h in &online {
            let Some(session) = self.sessions.get_mut(&h) else { continue };
            session.pacing.set_rate(per_second);
            // Back to the server's rate: a reload's new rate applies again.
            session.pacing.own_rate = rate > 0;
            let limits = session.pacing.limits(max_line);
            self.reply(h, &limits, out);
        }
        online
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_words_change_only_what_they_name() {
        let current = Retention { max_lines: Some(10), max_age_ms: Some(2 * DAY_MS) };
        assert_eq!(
            parse_retention(&["lines", "500"], current),
            Some(Retention { max_lines: Some(500), max_age_ms: Some(2 * DAY_MS) })
        );
        assert_eq!(
            parse_retention(&["days", "0", "lines", "0"], current),
            Some(Retention { max_lines: None, max_age_ms: None })
        );
        assert_eq!(parse_retention(&["lines"], current), None);
        assert_eq!(parse_retention(&["weeks", "2"], current), None);
        assert_eq!(parse_retention(&["lines", "-1"], current), None);
        assert_eq!(
            describe(Retention { max_lines: Some(5), max_age_ms: Some(DAY_MS) }),
            "the last 5 lines, at most 1 day old"
        );
        assert_eq!(describe(Retention::default()), "everything");
    }
}
