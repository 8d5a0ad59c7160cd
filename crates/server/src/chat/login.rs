//! Logging in: the shared server password, the nickname rules, and
//! accounts. A registered nickname can only be used with its account
//! password; others are first come, first served.
//!
//! A login is up to two steps off the event loop. First the nickname's
//! account is looked up (a store read, `storage.rs`). If it has one, the
//! password is checked: an argon2id hash takes tens of milliseconds on
//! purpose, far too long for the event loop, so the chat server hands
//! each check to the driver as a [`Verification`] (run on a blocking
//! thread) and finishes the login when [`ChatServer::verified`] reports
//! the result. At most [`MAX_VERIFYING`] checks run at once; more logins
//! are asked to retry. Between the steps the session holds its
//! [`PendingLogin`]; what may have changed meanwhile (the nickname taken,
//! the session gone) is checked again at each completion.

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use argon2::password_hash::phc::PasswordHash;
use udpchat_chat::{ErrorCode, RefuseCode, ServerMsg, close};
use udpchat_proto::ConnectionHandle;

use super::storage::AccountUse;
use super::{ChatServer, Clock, LOBBY, Outlet};
use crate::store::{Account, StoreError, StoredPrivate};
use udpchat_chat::names::{check_nick, fold, room_name};

/// Login attempts with a wrong password one session may make.
const MAX_LOGIN_ATTEMPTS: u32 = 5;
/// Password checks running at once.
pub const MAX_VERIFYING: usize = 8;
/// Rooms one login may resume.
const MAX_RESUME: usize = 64;
/// Stored private messages sent at login.
const MAX_STORED_PRIVATES: usize = 1000;

/// A login request waiting for its account lookup or password check.
#[derive(Debug)]
pub(crate) struct PendingLogin {
    request: LoginRequest,
    step: LoginStep,
}

/// What a Login asked for, beyond its passwords.
#[derive(Debug)]
struct LoginRequest {
    nick: String,
    resume: Vec<(String, u64)>,
    private_since: u64,
}

#[derive(Debug)]
enum LoginStep {
    /// The account lookup is in flight; the password waits for it.
    LookingUp { account_password: String },
    /// The password check is in flight.
    Verifying { operator: bool, rate: u32 },
    /// On a cluster: the nickname's lease is being claimed
    /// (`clustered.rs`); then the login completes with this account.
    Claiming { account: Option<(String, bool, u32)> },
}

/// Password checks for the driver to start, and how many run.
#[derive(Default)]
pub(crate) struct PasswordChecks {
    queued: Vec<Verification>,
    running: usize,
}

/// A password check for the driver to run off the event loop; its result
/// goes back through [`ChatServer::verified`].
#[derive(Debug)]
pub struct Verification {
    pub session: ConnectionHandle,
    pub password: String,
    pub hash: String,
}

impl Verification {
    /// Runs the check (slow by design: call it on a blocking thread).
    pub fn check(&self) -> bool {
        verify_password(&self.password, &self.hash)
    }
}

/// Whether `password` matches an argon2 PHC `hash`.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

/// Hashes a new account password with argon2id and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::PasswordHasher;
    Argon2::default().hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| e.to_string())
}

fn refuse(code: RefuseCode, text: impl Into<String>) -> ServerMsg {
    ServerMsg::LoginRefused { code, text: text.into() }
}

impl ChatServer {
    /// Password checks the driver should start now.
    pub fn take_verifications(&mut self) -> Vec<Verification> {
        std::mem::take(&mut self.checks.queued)
    }

    pub(crate) fn login(
        &mut self,
        clock: Clock,
        h: ConnectionHandle,
        request: (String, String, String, Vec<(String, u64)>, u64),
        out: &mut impl Outlet,
    ) {
        let (nick, server_password, account_password, resume, private_since) = request;
        let Some(session) = self.sessions.get_mut(&h) else { return };
        if session.nick.is_some() || session.login.is_some() {
            self.reply(
                h,
                &ServerMsg::Error { id: 0, code: ErrorCode::InvalidRequest, text: "already logged in".into() },
                out,
            );
            return;
        }
        let (ip, addr) = (session.addr.ip(), session.addr);
        if let Some(until) = self.failures.locked_until(ip, clock.now) {
            let secs = until.saturating_duration_since(clock.now).as_secs() + 1;
            tracing::warn!(target: "udpchat::session", %addr, %nick, locked_secs = secs, "login rate-limited");
            self.reply(
                h,
                &refuse(RefuseCode::TooManyAttempts, format!("too many failed logins; try again in {secs} s")),
                out,
            );
            return;
        }
        if let Some(expected) = self.settings.password.clone() {
            // Constant time, so timing reveals nothing about the password.
            let ok = expected.len() == server_password.len()
                && expected.bytes().zip(server_password.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
            if !ok {
                // Told apart: a client that sent none was not told to.
                let text = if server_password.is_empty() {
                    "no server password given: this server needs one (--ask-password or UDPCHAT_PASSWORD)"
                } else {
                    "wrong server password"
                };
                self.log(clock, format!("-- failed login from {addr}: {text}"));
                self.login_failed(clock, h, refuse(RefuseCode::BadPassword, text), out);
                return;
            }
        }
        if let Err(why) = check_nick(&nick) {
            self.reply(h, &refuse(RefuseCode::NickInvalid, why), out);
            return;
        }
        if let Err(msg) = self.nick_available(&nick) {
            self.reply(h, &msg, out);
            return;
        }
        if !self.store.read_account(fold(&nick), AccountUse::Login(h)) {
            self.reply(h, &refuse(RefuseCode::ServerFull, "too many logins at once; try again in a moment"), out);
            return;
        }
        let step = LoginStep::LookingUp { account_password };
        if let Some(s) = self.sessions.get_mut(&h) {
            s.login = Some(PendingLogin { request: LoginRequest { nick, resume, private_since }, step });
        }
    }

    /// Whether a login may take `nick` now: not banned, not in use.
    fn nick_available(&self, nick: &str) -> Result<(), ServerMsg> {
        let key = fold(nick);
        if self.banned_nicks.contains_key(&key) {
            return Err(refuse(RefuseCode::Banned, "that nickname is banned"));
        }
        if self.sessions.nicks.contains_key(&key) {
            return Err(refuse(RefuseCode::NickTaken, format!("{nick} is already in use; choose another")));
        }
        Ok(())
    }

    /// The account lookup of a login came back.
    pub(crate) fn login_account(
        &mut self,
        clock: Clock,
        h: ConnectionHandle,
        result: Result<Option<Account>, StoreError>,
        out: &mut impl Outlet,
    ) {
        // The session may have ended (timeout, ban, shutdown) meanwhile.
        let Some(pending) = self.sessions.get_mut(&h).filter(|s| !s.gone).and_then(|s| s.login.take()) else {
            return;
        };
        let PendingLogin { request, step: LoginStep::LookingUp { account_password } } = pending else { return };
        let account = match result {
            Ok(account) => account,
            Err(e) => {
                self.announce(clock, format!("!! account lookup failed: {e}"));
                self.reply(h, &refuse(RefuseCode::ServerFull, "the server cannot check accounts right now"), out);
                return;
            }
        };
        // Someone may have taken the nickname, or it was banned, while
        // the lookup ran.
        if let Err(msg) = self.nick_available(&request.nick) {
            self.reply(h, &msg, out);
            return;
        }
        let Some(account) = account else {
            self.claim_or_finish(clock, h, request, None, out);
            return;
        };
        if account_password.is_empty() {
            let text = format!(
                "{} is registered and no account password was given: give it with --ask-account-password or UDPCHAT_ACCOUNT_PASSWORD",
                account.name
            );
            self.reply(h, &refuse(RefuseCode::NickRegistered, text), out);
            return;
        }
        if self.checks.running >= MAX_VERIFYING {
            self.reply(h, &refuse(RefuseCode::ServerFull, "too many logins at once; try again in a moment"), out);
            return;
        }
        self.checks.running += 1;
        let step = LoginStep::Verifying { operator: account.operator, rate: account.rate };
        if let Some(s) = self.sessions.get_mut(&h) {
            s.login = Some(PendingLogin { request, step });
        }
        self.checks.queued.push(Verification { session: h, password: account_password, hash: account.hash });
    }

    /// The result of a [`Verification`].
    pub fn verified(&mut self, clock: Clock, h: ConnectionHandle, ok: bool, out: &mut impl Outlet) {
        self.checks.running = self.checks.running.saturating_sub(1);
        // The session may have ended (timeout, ban, shutdown) meanwhile.
        let Some(pending) = self.sessions.get_mut(&h).filter(|s| !s.gone).and_then(|s| s.login.take()) else {
            return;
        };
        let PendingLogin { request, step: LoginStep::Verifying { operator, rate } } = pending else { return };
        if !ok {
            let addr = self.sessions.get(&h).map(|s| s.addr.to_string()).unwrap_or_default();
            self.log(clock, format!("-- failed login from {addr}: wrong password for {}", request.nick));
            let text = format!(
                "wrong account password for {} (give it with --ask-account-password or UDPCHAT_ACCOUNT_PASSWORD)",
                request.nick
            );
            self.login_failed(clock, h, refuse(RefuseCode::BadPassword, text), out);
            return;
        }
        // Someone may have taken the nickname while the check ran.
        let key = fold(&request.nick);
        if self.sessions.nicks.contains_key(&key) {
            self.reply(h, &refuse(RefuseCode::NickTaken, format!("{} is already in use", request.nick)), out);
            return;
        }
        self.claim_or_finish(clock, h, request, Some((key, operator, rate)), out);
    }

    /// On a cluster the nickname must be claimed cluster-wide first;
    /// elsewhere the login completes now.
    fn claim_or_finish(
        &mut self,
        clock: Clock,
        h: ConnectionHandle,
        request: LoginRequest,
        account: Option<(String, bool, u32)>,
        out: &mut impl Outlet,
    ) {
        if !self.clustered() {
            self.finish_login(clock, h, request, account, out);
            return;
        }
        let folded = fold(&request.nick);
        if let Some(s) = self.sessions.get_mut(&h) {
            s.login = Some(PendingLogin { request, step: LoginStep::Claiming { account } });
        }
        self.claim_nick(h, folded);
    }

    /// The cluster granted the nickname of `h`'s login; false if the
    /// login did not complete (the session went, or the nickname was
    /// taken here or banned meanwhile), and the lease is not needed.
    pub(crate) fn login_claimed(&mut self, clock: Clock, h: ConnectionHandle, out: &mut impl Outlet) -> bool {
        let pending = self.sessions.get_mut(&h).filter(|s| !s.gone).and_then(|s| s.login.take());
        let Some(PendingLogin { request, step: LoginStep::Claiming { account } }) = pending else { return false };
        if let Err(msg) = self.nick_available(&request.nick) {
            self.reply(h, &msg, out);
            return false;
        }
        self.finish_login(clock, h, request, account, out);
        true
    }

    /// The nickname of `h`'s login in progress.
    pub(crate) fn pending_nick(&self, h: ConnectionHandle) -> Option<String> {
        self.sessions.get(&h)?.login.as_ref().map(|p| p.request.nick.clone())
    }

    pub(crate) fn drop_pending_login(&mut self, h: ConnectionHandle) {
        if let Some(s) = self.sessions.get_mut(&h) {
            s.login = None;
        }
    }

    fn login_failed(&mut self, clock: Clock, h: ConnectionHandle, msg: ServerMsg, out: &mut impl Outlet) {
        let Some(session) = self.sessions.get_mut(&h) else { return };
        session.login_failures += 1;
        let (ip, attempts, session_addr) = (session.addr.ip(), session.login_failures, session.addr);
        self.failures.fail(ip, clock.now);
        self.stats.login_failures += 1;
        if let ServerMsg::LoginRefused { code, .. } = &msg {
            tracing::info!(target: "udpchat::session", addr = %session_addr, ?code, attempts, "login refused");
        }
        self.reply(h, &msg, out);
        if attempts >= MAX_LOGIN_ATTEMPTS {
            if let Some(s) = self.sessions.get_mut(&h) {
                s.gone = true;
            }
            out.close(h, close::LOGIN_FAILED, "too many failed logins");
        }
    }

    fn finish_login(
        &mut self,
        clock: Clock,
        h: ConnectionHandle,
        pending: LoginRequest,
        account: Option<(String, bool, u32)>,
        out: &mut impl Outlet,
    ) {
        let key = fold(&pending.nick);
        let Some(session) = self.sessions.get_mut(&h) else { return };
        let (addr, session_plain) = (session.addr, session.plain);
        self.failures.succeed(addr.ip());
        self.stats.logins += 1;
        session.nick = Some(pending.nick.clone());
        session.operator = account.as_ref().is_some_and(|(_, op, _)| *op);
        session.account = account.as_ref().map(|(k, _, _)| k.clone());
        // An account's own rate (bots) replaces the server's.
        if let Some(&(_, _, rate)) = account.as_ref().filter(|(_, _, rate)| *rate > 0) {
            session.pacing.set_rate(f64::from(rate));
        }
        let limits = session.pacing.limits(self.settings.max_line_bytes);
        let operator = session.operator;
        self.sessions.nicks.insert(key, h);
        let role = if operator {
            " (operator)"
        } else if account.is_some() {
            " (account)"
        } else if session_plain {
            " over plain UDP"
        } else {
            ""
        };
        tracing::info!(
            target: "udpchat::session",
            nick = %pending.nick,
            %addr,
            account = account.is_some(),
            operator,
            "login"
        );
        self.log(clock, format!("-- {}{role} logged in from {addr}", pending.nick));
        let welcome = ServerMsg::Welcome {
            nick: pending.nick,
            server_name: self.settings.server_name.clone(),
            motd: self.settings.motd.clone(),
            operator,
        };
        self.reply(h, &welcome, out);
        // Right after Welcome, so a client paces itself before it sends.
        self.reply(h, &limits, out);
        if pending.resume.is_empty() {
            self.enter_room(clock, h, LOBBY, None, out);
        } else {
            for (room, since) in pending.resume.into_iter().take(MAX_RESUME) {
                if let Ok(room) = room_name(&room) {
                    self.enter_room(clock, h, &room, Some(since), out);
                }
            }
        }
        if let Some((account, _, _)) = account {
            self.read_stored_privates(h, &account, pending.private_since);
        }
    }

    /// Private messages kept for an account since `after` (at most 1000),
    /// sent when the read completes. Too many reads in flight: skipped, as
    /// when the queue is full; they come at a later login.
    fn read_stored_privates(&mut self, h: ConnectionHandle, account: &str, after: u64) {
        let _ = self.store.read_privates(account, after, MAX_STORED_PRIVATES, h);
    }

    pub(crate) fn stored_privates_read(
        &mut self,
        clock: Clock,
        result: Result<Vec<StoredPrivate>, StoreError>,
        h: ConnectionHandle,
        out: &mut impl Outlet,
    ) {
        let privates = match result {
            Ok(p) => p,
            Err(e) => {
                self.announce(clock, format!("!! private messages for {}: {e}", self.sessions.nick_of(h)));
                return;
            }
        };
        for p in privates {
            // Missed while away: shown as new, not as history.
            let history = false;
            let msg = ServerMsg::Private {
                id: 0,
                seq: p.id,
                from: p.from,
                to: p.to,
                text: p.text,
                time_ms: p.time_ms,
                history,
            };
            if out.send(h, &msg.to_bytes()).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_round_trip() {
        let hash = hash_password("hunter2").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("hunter2", &hash));
        assert!(!verify_password("hunter3", &hash));
        assert!(!verify_password("hunter2", "not a hash"));
    }
}
