//! Connection attempts, the part of the session core that changes
//! servers: which address the next attempt goes to (`servers`), moving on
//! from one that does not answer, and what follows when a connection
//! ends (another address at once, a wait, or the end). Kept apart from
//! `mod.rs`, which handles what happens on a connection.

use std::time::Instant;

use udpchat_chat::ClientMsg;
use udpchat_proto::CloseReason;

use super::servers::Resolved;
use super::{Action, NO_ANSWER, Phase, Session, reconnect};
use crate::ClientEvent;

impl Session {
    /// Starts an attempt on the next address of this round, or a new round.
    pub(super) fn connect(&mut self, now: Instant) {
        let Some(target) = self.servers.advance().cloned() else {
            match self.servers.literal() {
                Some(resolved) => self.start_round(now, resolved),
                None => {
                    self.phase = Phase::Resolving;
                    self.actions.push_back(Action::Resolve);
                }
            }
            return;
        };
        let attempt = self.backoff.start();
        self.phase = Phase::Handshake;
        self.established = false;
        self.control.clear();
        self.no_answer_at = Some(now + NO_ANSWER);
        self.events.push_back(ClientEvent::Connecting { attempt });
        let why = self.switch.take();
        if self.servers.several() {
            let note = match why {
                Some(why) => format!("{why} — trying {target}"),
                None => format!("trying {target}"),
            };
            self.events.push_back(ClientEvent::Note(note));
        }
        self.actions.push_back(Action::Connect { server_key: self.config.server_key, to: target.addr });
    }

    /// The server names resolved, after [`Action::Resolve`]: a round
    /// starts with these addresses (a name that did not resolve keeps the
    /// addresses it had).
    pub fn on_resolved(&mut self, now: Instant, resolved: Vec<Resolved>) {
        if self.phase == Phase::Resolving {
            self.start_round(now, resolved);
        }
    }

    fn start_round(&mut self, now: Instant, resolved: Vec<Resolved>) {
        for note in self.servers.new_round(resolved) {
            self.events.push_back(ClientEvent::Note(note));
        }
        if self.servers.has_next() {
            self.connect(now);
        } else {
            // Counted as an attempt, so that lookups back off too.
            self.backoff.start();
            let why = format!("no address to connect to for {}", self.config.server);
            self.ended(now, why, false);
        }
    }

    /// The current attempt had no answer for [`NO_ANSWER`]: another
    /// address of this round is tried instead; with none left, the
    /// handshake goes on (the first time, the user is told).
    pub(super) fn no_answer(&mut self, now: Instant) {
        let target = self.servers.current().map(ToString::to_string).unwrap_or_default();
        if self.servers.has_next() {
            self.switch = Some(format!("no answer from {target}"));
            // No keys yet: nothing is sent, the attempt is just dropped.
            self.actions.push_back(Action::Close { goodbye: None, reason: "no answer".into() });
            self.connect(now);
        } else if !self.no_answer_told {
            self.no_answer_told = true;
            let server = if self.servers.several() { &target } else { &self.config.server };
            self.events.push_back(ClientEvent::Note(format!(
                "no answer from {server} — is the server running, is the address right? (still trying)"
            )));
        }
    }

    /// The connection could not be opened (a configuration the protocol
    /// refuses): nothing to retry.
    pub fn on_connect_failed(&mut self, now: Instant, why: String) {
        self.quitting = false;
        self.config.reconnect = false;
        self.ended(now, why, true);
    }

    /// The current attempt's address cannot be tried from here at all
    /// (no socket for its address family): on to the next, as from one
    /// that does not answer.
    pub fn on_unreachable(&mut self, now: Instant, why: String) {
        if self.phase != Phase::Handshake {
            return;
        }
        if let Some(target) = self.servers.current() {
            self.switch = Some(format!("{target}: {why}"));
        }
        self.ended(now, why, false);
    }

    /// The current connection ended.
    pub fn on_closed(&mut self, now: Instant, reason: &CloseReason) {
        if matches!(self.phase, Phase::Waiting { .. } | Phase::Resolving | Phase::Stopped) {
            return;
        }
        if let Some(target) = self.servers.current() {
            self.switch = Some(match reason {
                CloseReason::TimedOut | CloseReason::HandshakeTimedOut => format!("no answer from {target}"),
                // Closed here: a refusal or a changed key, already said.
                CloseReason::Local { .. } => format!("left {target}"),
                _ => format!("{target}: {reason}"),
            });
        }
        self.ended(now, self.key_changed(reason), reconnect::is_final(reason));
    }

    /// Why the session ended; for a changed key, with the known-servers
    /// entry to remove if the change is expected (a reinstalled server).
    /// The address is named when there are several (one of a cluster
    /// that should share its key does not).
    pub(super) fn key_changed(&self, reason: &CloseReason) -> String {
        let at = match self.servers.current() {
            Some(target) if self.servers.several() => format!("{target}: "),
            _ => String::new(),
        };
        match (reason, &self.config.known_hosts) {
            (CloseReason::KeyMismatch { expected, .. }, Some(path)) => format!(
                "{at}{reason} (the old key is the line \"{} {expected}\" in {})",
                self.config.server,
                path.display()
            ),
            (CloseReason::KeyMismatch { .. }, None) => format!("{at}{reason}"),
            _ => reason.to_string(),
        }
    }

    fn ended(&mut self, now: Instant, why: String, fatal: bool) {
        self.control.clear();
        self.next_rtt = None;
        // Sent and not answered: sent again, with the same ids, by the next
        // session (or reported as unconfirmed if there is none) if the
        // server can tell a resend.
        if self.resends {
            self.outbox.requeue_unacked();
        } else {
            let ids = self.outbox.unconfirmed_sent();
            if !ids.is_empty() {
                self.events.push_back(ClientEvent::Unconfirmed { ids });
            }
        }
        if self.quitting {
            let reason = self.end_reason.take().unwrap_or_else(|| "you left the server".into());
            return self.stop(reason);
        }
        if self.established {
            self.servers.lost();
            self.backoff.reset();
        }
        // Another address of this round is tried at once; a first connect
        // walks them even without `reconnect`.
        let walk = !fatal && self.servers.has_next() && (self.config.reconnect || !self.logged_in_once);
        let stop = !walk && (!self.config.reconnect || fatal);
        self.events.push_back(ClientEvent::Disconnected { reason: why.clone(), reconnecting: !stop });
        if stop {
            return self.stop(why);
        }
        if walk {
            self.connect(now);
        } else {
            self.phase = Phase::Waiting { until: now + self.backoff.delay() };
        }
    }

    pub(super) fn stop(&mut self, reason: String) {
        let ids = self.outbox.unconfirmed();
        if !ids.is_empty() {
            self.events.push_back(ClientEvent::Unconfirmed { ids });
        }
        self.phase = Phase::Stopped;
        self.events.push_back(ClientEvent::Closed { reason });
        self.actions.push_back(Action::Stop);
    }

    pub(super) fn close(&mut self, goodbye: Option<ClientMsg>, reason: String) {
        self.phase = Phase::Closing;
        self.actions.push_back(Action::Close { goodbye, reason });
    }
}
