//! Bans by nickname or address, permanent or for a while
//! (docs/PROTOCOL.md §15.7): set and lifted by the console operator or an
//! operator account, kept in the store (a write on the store writer) so
//! they survive restarts, and expired at `tick`. Every action is
//! confirmed to whoever did it and shown on the console.

use std::net::IpAddr;

use udpchat_chat::{NoticeKind, ServerMsg, close};
use udpchat_proto::ConnectionHandle;

use super::{ChatServer, Clock, Outlet};
use crate::store::AdminChange;
use udpchat_chat::names::fold;

/// Who acts: the name shown, and the operator account's session (None
/// for the console).
pub(crate) type Actor<'a> = (&'a str, Option<ConnectionHandle>);

/// `10m`, `2h`, `7d`, `30s` (or plain seconds) as seconds; None if it is
/// not a duration (then it is the start of the reason).
pub fn parse_duration(text: &str) -> Option<u64> {
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
fn show_duration(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl ChatServer {
    /// Tells the operator account what its action did (the console sees
    /// every action anyway).
    pub(crate) fn confirm(&mut self, clock: Clock, to: Option<ConnectionHandle>, text: String, out: &mut impl Outlet) {
        if let Some(h) = to {
            let msg = ServerMsg::Notice {
                room: String::new(),
                kind: NoticeKind::Server,
                nick: String::new(),
                text,
                time_ms: clock.unix_ms,
            };
            self.reply(h, &msg, out);
        }
    }

    /// Bans a nickname or address for `secs` (0: for good) and closes the
    /// sessions it matches.
    pub(crate) fn ban(
        &mut self,
        clock: Clock,
        by: Actor<'_>,
        target: &str,
        reason: &str,
        secs: u64,
        out: &mut impl Outlet,
    ) {
        let (name, session) = by;
        let reason = super::clean_reason(reason);
        let why = if reason.is_empty() { format!("banned by {name}") } else { format!("banned by {name}: {reason}") };
        let expires_ms = if secs == 0 { 0 } else { clock.unix_ms.saturating_add(secs.saturating_mul(1000)) };
        let (key, victims): (String, Vec<_>) = match target.parse::<IpAddr>() {
            Ok(ip) => {
                self.banned_ips.insert(ip, expires_ms);
                (ip.to_string(), self.sessions.iter().filter(|(_, s)| s.addr.ip() == ip).map(|(h, _)| *h).collect())
            }
            Err(_) => {
                let key = fold(target);
                self.banned_nicks.insert(key.clone(), expires_ms);
                let victims = self.sessions.nicks.get(&key).copied().into_iter().collect();
                (key, victims)
            }
        };
        self.store.admin(AdminChange::Ban { target: key, expires_ms, reason: reason.clone() });
        let how_long = if secs == 0 { String::new() } else { format!(" for {}", show_duration(secs)) };
        let text = format!("{target} banned{how_long} by {name} ({} session(s) closed)", victims.len());
        self.announce(clock, format!("-- {text}"));
        self.confirm(clock, session, text, out);
        for h in victims {
            self.leave_server(clock, h, NoticeKind::Kick, &why, out);
            out.close(h, close::BANNED, &why);
        }
    }

    /// Lifts a ban on a nickname or address.
    pub(crate) fn unban(&mut self, clock: Clock, by: Actor<'_>, target: &str, out: &mut impl Outlet) {
        let (name, session) = by;
        let (key, removed) = match target.parse::<IpAddr>() {
            Ok(ip) => (ip.to_string(), self.banned_ips.remove(&ip).is_some()),
            Err(_) => (fold(target), self.banned_nicks.remove(&fold(target)).is_some()),
        };
        let text = if removed {
            self.store.admin(AdminChange::Unban { target: key });
            format!("{target} unbanned by {name}")
        } else {
            format!("{target} was not banned")
        };
        self.announce(clock, format!("-- {text}"));
        self.confirm(clock, session, text, out);
    }

    /// Lifts the bans whose time is up.
    pub(crate) fn expire_bans(&mut self, clock: Clock) {
        let due = |until: u64| until != 0 && until <= clock.unix_ms;
        let nicks: Vec<String> = self.banned_nicks.iter().filter(|(_, u)| due(**u)).map(|(k, _)| k.clone()).collect();
        let ips: Vec<IpAddr> = self.banned_ips.iter().filter(|(_, u)| due(**u)).map(|(ip, _)| *ip).collect();
        let targets = nicks.into_iter().chain(ips.into_iter().map(|ip| ip.to_string()));
        for target in targets.collect::<Vec<_>>() {
            match target.parse::<IpAddr>() {
                Ok(ip) => self.banned_ips.remove(&ip),
                Err(_) => self.banned_nicks.remove(&target),
            };
            self.store.admin(AdminChange::Unban { target: target.clone() });
            self.announce(clock, format!("-- the ban on {target} has expired"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10m"), Some(600));
        assert_eq!(parse_duration("2h"), Some(7200));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("90"), Some(90));
        assert_eq!(parse_duration("spam"), None);
        assert_eq!(parse_duration("0m"), None);
        assert_eq!(parse_duration(""), None);
        assert_eq!(show_duration(7200), "2h");
        assert_eq!(show_duration(90), "90s");
    }
}
