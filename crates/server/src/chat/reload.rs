//! Applying new settings to a running server (SIGHUP, `udpchat admin
//! reload`) without dropping anyone: the MOTD and server name (for the
//! next logins), the password, limits, retention and console logging
//! take effect at once. When the line limit or the rate changes, every
//! logged-in session whose rate is the server's is told its new `Limits`
//! (docs/PROTOCOL.md §15: "sent again whenever they change"). What only a
//! restart can change (the socket, the data directory, the store, the
//! transport's settings) is named instead.

use super::{ChatServer, Clock, Outlet};
use crate::settings::Settings;

impl ChatServer {
    /// Takes `new` as the server's settings; returns what changed (one line
    /// each, for the console, the log and the admin client), settings that
    /// need a restart first and marked `restart:`.
    pub fn reload(&mut self, clock: Clock, new: Settings, out: &mut impl Outlet) -> Vec<String> {
        let old = std::mem::replace(&mut self.settings, new);
        let new = &self.settings;
        let mut said = Vec::new();
        macro_rules! changed {
            ($($field:ident),*) => {
                $(if format!("{:?}", old.$field) != format!("{:?}", new.$field) {
                    said.push(format!("{} changed", stringify!($field)));
                })*
            };
        }
        changed!(
            server_name,
            motd,
            max_line_bytes,
            rate_burst,
            rate_per_second,
            max_sessions_per_address,
            max_rooms,
            login_timeout_secs,
            console_log,
            history_on_join,
            history_page_max,
            history_max_lines,
            history_max_age_days,
            rooms,
            password_file
        );
        if old.password != new.password {
            said.push("the server password changed (sessions already logged in stay)".to_owned());
        }
        macro_rules! restart {
            ($($field:ident),*) => {
                $(if format!("{:?}", old.$field) != format!("{:?}", new.$field) {
                    said.push(format!("restart: {} changed; it takes effect at the next start", stringify!($field)));
                })*
            };
        }
        restart!(
            listen,
            data_dir,
            metrics_listen,
            history_sync,
            max_database_mb,
            max_sessions,
            send_queue_bytes,
            idle_timeout_secs,
            retry_always,
            handshake_burst,
            handshake_per_second,
            stateless_reset
        );
        // The settings live only in memory; keep the live ones and restore
        // those that cannot change, so what runs and what is reported agree.
        self.settings.listen = old.listen;
        self.settings.data_dir = old.data_dir.clone();
        self.settings.metrics_listen = old.metrics_listen;
        self.settings.history_sync = old.history_sync;
        self.settings.max_database_mb = old.max_database_mb;
        self.settings.max_sessions = old.max_sessions;
        self.settings.send_queue_bytes = old.send_queue_bytes;
        self.settings.idle_timeout_secs = old.idle_timeout_secs;
        self.settings.retry_always = old.retry_always;
        self.settings.handshake_burst = old.handshake_burst;
        self.settings.handshake_per_second = old.handshake_per_second;
        self.settings.stateless_reset = old.stateless_reset;

        let limits_changed = old.max_line_bytes != self.settings.max_line_bytes
            || old.rate_burst != self.settings.rate_burst
            || old.rate_per_second.to_bits() != self.settings.rate_per_second.to_bits();
        if limits_changed {
            self.resend_limits(out);
        }
        if said.is_empty() {
            said.push("nothing changed".to_owned());
        }
        for line in &said {
            tracing::info!(target: "udpchat::reload", change = %line, "reload");
            self.announce(clock, format!("-- reload: {line}"));
        }
        said
    }

    /// The server's rate and line limit to every logged-in session that
    /// goes by them (an account's own rate stays), and a fresh `Limits`.
    fn resend_limits(&mut self, out: &mut impl Outlet) {
        let (burst, rate, max_line) =
            (self.settings.rate_burst, self.settings.rate_per_second, self.settings.max_line_bytes);
        let mut told = Vec::new();
        for (h, session) in self.sessions.iter_mut() {
            if session.gone {
                continue;
            }
            session.pacing.burst = burst;
            if !session.pacing.own_rate {
                session.pacing.per_second = rate;
            }
            if session.nick.is_some() {
                told.push((*h, session.pacing.limits(max_line)));
            }
        }
        for (h, limits) in told {
            self.reply(h, &limits, out);
        }
    }
}
