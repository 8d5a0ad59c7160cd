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

use udpchat_chat::duration::show as show_duration;

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
        self.record_admin(AdminChange::Ban { target: key, expires_ms, reason: reason.clone() });
        let how_long = if secs == 0 { String::new() } else { format!(" for {}", show_duration(secs)) };
        let text = format!("{target} banned{how_long} by {name} ({} session(s) closed)", victims.len());
        tracing::info!(target: "udpchat::admin", %target, by = name, secs, %reason, closed = victims.len(), "ban");
        self.announce(clock, format!("-- {text}"));
        self.confirm(clock, session, text, out);
        for h in victims {
            self.leave_server(clock, h, NoticeKind::Kick, &why, out);
            out.close(h, close::BANNED, &why);
        }
    }

    /// A ban set on another cluster node (its target as stored: a folded
    /// nickname or an address): kept here too, and the sessions it
    /// matches here are closed as that node's are.
    pub(crate) fn banned_from_cluster(
        &mut self,
        clock: Clock,
        target: &str,
        expires_ms: u64,
        reason: &str,
        out: &mut impl Outlet,
    ) {
        let victims: Vec<_> = match target.parse::<IpAddr>() {
            Ok(ip) => {
                self.banned_ips.insert(ip, expires_ms);
                self.sessions.iter().filter(|(_, s)| s.addr.ip() == ip).map(|(h, _)| *h).collect()
            }
            Err(_) => {
                self.banned_nicks.insert(target.to_owned(), expires_ms);
                self.sessions.nicks.get(target).copied().into_iter().collect()
            }
        };
        let why = if reason.is_empty() { "banned".to_owned() } else { format!("banned: {reason}") };
        self.announce(clock, format!("-- {target} banned on another node ({} session(s) closed here)", victims.len()));
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
        tracing::info!(target: "udpchat::admin", %target, by = name, was_banned = removed, "unban");
        let text = if removed {
            self.record_admin(AdminChange::Unban { target: key });
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
            self.record_admin(AdminChange::Unban { target: target.clone() });
            tracing::info!(target: "udpchat::admin", %target, "ban expired");
            self.announce(clock, format!("-- the ban on {target} has expired"));
        }
    }
}
