//! Which address the next connection attempt goes to, with no DNS or
//! socket in it. `--server` may name several servers of one cluster
//! (they share one key) as a comma-separated list, and a name may resolve
//! to several addresses; the client takes them in turn (round robin) and
//! moves on when one does not answer or stops answering, so a dead
//! server costs a few seconds instead of the session.
//!
//! A round is one pass over every address. Names are resolved again at
//! the start of each round (by the driver, [`super::Action::Resolve`]),
//! so a changed DNS record is followed; a name that fails to resolve then
//! keeps the addresses it had. A server that answered and later stopped
//! goes to the back of the next rounds until it answers again, so the
//! client does not return first to the server that just died.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;

/// Servers that died lately, remembered to be tried last; the oldest
/// are forgotten past this (a list is a handful of addresses).
const MAX_DEMOTED: usize = 64;

/// The names in a `--server` list: `HOST:PORT`s separated by commas,
/// blanks around them and empty entries ignored.
pub fn names(list: &str) -> Vec<String> {
    list.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect()
}

/// A list written the one way the known-servers file keys it (names
/// joined by commas, no blanks, which the file could not hold): a key
/// pinned for the list holds for every address in it.
pub fn canonical(list: &str) -> String {
    names(list).join(",")
}

/// One address to try, and the name it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub addr: SocketAddr,
}

impl fmt::Display for Target {
    /// The name as the user wrote it, with the address when they differ
    /// (a DNS name), so the user sees which server of a name is in use.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == self.addr.to_string() {
            write!(f, "{}", self.name)
        } else {
            write!(f, "{} ({})", self.name, self.addr)
        }
    }
}

/// What resolving one name gave: its addresses, or why there are none.
pub type Resolved = (String, Result<Vec<SocketAddr>, String>);

#[derive(Debug, Default)]
pub struct Rotation {
    names: Vec<String>,
    /// This round's addresses not tried yet, in order.
    queue: VecDeque<Target>,
    /// The address of the current (or last) attempt.
    current: Option<Target>,
    /// Addresses in this round, the one being tried included.
    size: usize,
    /// The addresses each name last resolved to.
    last_known: Vec<(String, Vec<SocketAddr>)>,
    /// Servers that answered and then stopped answering, in the order
    /// they did: tried last, until they answer again.
    demoted: Vec<SocketAddr>,
}

impl Rotation {
    /// The rotation over `list` (a `--server` string); no round yet.
    pub fn new(list: &str) -> Self {
        Self { names: names(list), ..Self::default() }
    }

    /// The names, to resolve for the next round.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The next round's addresses when every name is an IP address and
    /// port (nothing to look up), else `None`: the names must be resolved.
    pub fn literal(&self) -> Option<Vec<Resolved>> {
        self.names.iter().map(|n| n.parse().ok().map(|a: SocketAddr| (n.clone(), Ok(vec![a])))).collect()
    }

    /// Starts a round with what the names resolved to: names in the order
    /// given, each one's addresses in the resolver's order, each address
    /// once, and the servers that died lately last. Returns a note for
    /// each name that did not resolve.
    pub fn new_round(&mut self, resolved: Vec<Resolved>) -> Vec<String> {
        let mut notes = Vec::new();
        let mut targets: Vec<Target> = Vec::new();
        for (name, result) in resolved {
            let addrs = match result {
                Ok(addrs) if !addrs.is_empty() => {
                    self.last_known.retain(|(n, _)| *n != name);
                    self.last_known.push((name.clone(), addrs.clone()));
                    addrs
                }
                failed => {
                    let why = failed.err().unwrap_or_else(|| "no addresses".into());
                    let old = self.last_known.iter().find(|(n, _)| *n == name).map(|(_, a)| a.clone());
                    let then = if old.is_some() { " (trying its last known addresses)" } else { "" };
                    notes.push(format!("cannot resolve {name}: {why}{then}"));
                    old.unwrap_or_default()
                }
            };
            for addr in addrs {
                if !targets.iter().any(|t| t.addr == addr) {
                    targets.push(Target { name: name.clone(), addr });
                }
            }
        }
        let rank = |t: &Target| self.demoted.iter().position(|a| *a == t.addr);
        // Stable: the others keep their order, ahead of every demoted one.
        targets.sort_by_key(|t| rank(t).map_or(0, |i| i + 1));
        self.size = targets.len();
        self.queue = targets.into();
        notes
    }

    /// Moves to the next address of this round; `None` once every one
    /// has been tried (then a new round starts).
    pub fn advance(&mut self) -> Option<&Target> {
        let next = self.queue.pop_front()?;
        self.current = Some(next);
        self.current.as_ref()
    }

    /// The address of the current (or last) attempt.
    pub fn current(&self) -> Option<&Target> {
        self.current.as_ref()
    }

    /// Whether this round has an address left to try.
    pub fn has_next(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Whether there is more than one address: then the user is told
    /// which one each attempt goes to.
    pub fn several(&self) -> bool {
        self.size > 1
    }

    /// The current server answered: it is no longer tried last.
    pub fn answered(&mut self) {
        if let Some(t) = &self.current {
            self.demoted.retain(|a| *a != t.addr);
        }
    }

    /// The current server answered earlier and has now stopped: the next
    /// rounds try it last.
    pub fn lost(&mut self) {
        let Some(t) = &self.current else { return };
        self.demoted.retain(|a| *a != t.addr);
        self.demoted.push(t.addr);
        if self.demoted.len() > MAX_DEMOTED {
            self.demoted.remove(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn ok(name: &str, addrs: &[&str]) -> Resolved {
        (name.into(), Ok(addrs.iter().map(|a| addr(a)).collect()))
    }

    /// The addresses of the rest of the round, in order.
    fn round(r: &mut Rotation) -> Vec<String> {
        std::iter::from_fn(|| r.advance().map(|t| t.addr.to_string())).collect()
    }

    #[test]
    fn a_list_is_split_on_commas_and_blanks_do_not_count() {
        assert_eq!(names(" a:1, b.example:2 ,,[::1]:3,"), ["a:1", "b.example:2", "[::1]:3"]);
        assert_eq!(canonical("a:1 , b:2"), "a:1,b:2");
        assert_eq!(canonical("a:1"), "a:1");
        assert!(names(" , ").is_empty());
    }

    #[test]
    fn only_ip_literals_need_no_lookup() {
        let r = Rotation::new("127.0.0.1:1,[::1]:2");
        assert_eq!(r.literal(), Some(vec![ok("127.0.0.1:1", &["127.0.0.1:1"]), ok("[::1]:2", &["[::1]:2"])]));
        assert_eq!(Rotation::new("127.0.0.1:1,localhost:2").literal(), None);
        assert_eq!(Rotation::new("b.example:7667").names(), ["b.example:7667"]);
    }

    #[test]
    fn a_round_takes_names_in_order_then_their_addresses_each_once() {
        let mut r = Rotation::new("a:1,b:2");
        let notes =
            r.new_round(vec![ok("a:1", &["10.0.0.1:1", "10.0.0.2:1"]), ok("b:2", &["10.0.0.3:2", "10.0.0.1:1"])]);
        assert!(notes.is_empty());
        assert!(r.several());
        assert!(r.has_next());
        assert_eq!(r.advance().map(ToString::to_string).as_deref(), Some("a:1 (10.0.0.1:1)"));
        assert_eq!(round(&mut r), ["10.0.0.2:1", "10.0.0.3:2"]);
        assert!(!r.has_next());
        assert_eq!(r.advance(), None);
        assert_eq!(r.current().map(|t| t.addr), Some(addr("10.0.0.3:2")), "the last one tried");
    }

    #[test]
    fn a_single_literal_address_is_shown_as_written() {
        let mut r = Rotation::new("127.0.0.1:7667");
        r.new_round(r.literal().unwrap());
        assert!(!r.several());
        assert_eq!(r.advance().map(ToString::to_string).as_deref(), Some("127.0.0.1:7667"));
    }

    #[test]
    fn a_server_that_died_goes_to_the_back_until_it_answers_again() {
        let mut r = Rotation::new("a:1,b:1,c:1");
        let fresh = || vec![ok("a:1", &["10.0.0.1:1"]), ok("b:1", &["10.0.0.2:1"]), ok("c:1", &["10.0.0.3:1"])];
        r.new_round(fresh());
        r.advance();
        r.answered();
        r.lost();
        // This round goes on where it was; the next one puts it last.
        assert_eq!(round(&mut r), ["10.0.0.2:1", "10.0.0.3:1"]);
        r.new_round(fresh());
        assert_eq!(round(&mut r), ["10.0.0.2:1", "10.0.0.3:1", "10.0.0.1:1"]);
        // b dies too: both last, a (the earlier death) first of them.
        r.new_round(fresh());
        r.advance();
        r.lost();
        r.new_round(fresh());
        assert_eq!(round(&mut r), ["10.0.0.3:1", "10.0.0.1:1", "10.0.0.2:1"]);
        // a answers again (the last round ended on it): back in its place.
        r.new_round(fresh());
        while r.advance().is_some_and(|t| t.addr != addr("10.0.0.1:1")) {}
        r.answered();
        r.new_round(fresh());
        assert_eq!(round(&mut r), ["10.0.0.1:1", "10.0.0.3:1", "10.0.0.2:1"]);
    }

    #[test]
    fn a_changed_record_is_followed_and_a_failed_lookup_keeps_the_old_addresses() {
        let mut r = Rotation::new("chat.example:7667,b:2");
        r.new_round(vec![ok("chat.example:7667", &["10.0.0.1:7667"]), ("b:2".into(), Err("no such host".into()))]);
        assert_eq!(round(&mut r), ["10.0.0.1:7667"]);
        assert!(!r.several());
        let notes = r.new_round(vec![ok("chat.example:7667", &["10.0.0.9:7667"]), ok("b:2", &["10.0.0.2:2"])]);
        assert!(notes.is_empty());
        assert_eq!(round(&mut r), ["10.0.0.9:7667", "10.0.0.2:2"]);
        let notes = r.new_round(vec![
            ("chat.example:7667".into(), Err("temporary failure".into())),
            ("b:2".into(), Ok(Vec::new())),
        ]);
        assert_eq!(
            notes,
            [
                "cannot resolve chat.example:7667: temporary failure (trying its last known addresses)",
                "cannot resolve b:2: no addresses (trying its last known addresses)"
            ]
        );
        assert_eq!(round(&mut r), ["10.0.0.9:7667", "10.0.0.2:2"]);
    }
}
