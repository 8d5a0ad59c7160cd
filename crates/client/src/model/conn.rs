//! Where the session stands, as a front end shows it (a status bar, a
//! window title): connecting, logging in, connected with the round-trip
//! time, waiting for another nickname, disconnected, closed.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conn {
    Connecting {
        attempt: u32,
        /// We were logged in before: this is a reconnect.
        again: bool,
    },
    LoggingIn,
    Connected {
        rtt: Option<Duration>,
    },
    Disconnected,
    /// The nickname was refused; the front end asks for another
    /// ([`super::Model::retry_nick`]).
    NickRefused,
    Closed,
}

impl Conn {
    pub fn describe(&self) -> String {
        match self {
            Conn::Connecting { attempt, again } if *again || *attempt > 1 => {
                format!("reconnecting (attempt {attempt})…")
            }
            Conn::Connecting { .. } => "connecting…".into(),
            Conn::LoggingIn => "logging in…".into(),
            Conn::Connected { rtt: None } => "connected".into(),
            Conn::Connected { rtt: Some(rtt) } => {
                let ms = rtt.as_secs_f64() * 1000.0;
                // Loopback and LAN round trips are well under a millisecond.
                if ms < 10.0 { format!("connected, rtt {ms:.1} ms") } else { format!("connected, rtt {ms:.0} ms") }
            }
            Conn::Disconnected => "disconnected".into(),
            Conn::NickRefused => "nickname refused: type another".into(),
            Conn::Closed => "closed".into(),
        }
    }

    pub fn is_connected(&self) -> bool {
        matches!(self, Conn::Connected { .. })
    }
}
