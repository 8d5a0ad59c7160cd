//! Asking a server for its key without logging in: one handshake
//! (docs/PROTOCOL.md §5, "Client procedure") with no key required, then a
//! NORMAL close. A front end that wants the user to decide about a key
//! before anything is sent under it (the desktop client's "trust this
//! server?" and "the key changed" dialogs) probes first and then connects
//! with [`crate::ClientOptions::server_key`] set to the key the user
//! accepted. It also tells "no answer" (a wrong address, a server that is
//! not running, a firewall) apart from a server that refuses. A list of
//! servers (`a:7667,b:7667`, a cluster sharing one key) is probed address
//! by address until one answers, as the client would connect.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::time::sleep_until;
use udpchat_proto::{ClientConfig, CloseReason, Event, PublicKey, code};

use crate::link::Link;
use crate::resolve::{first_address, resolve};
use crate::session::servers;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The name (one of the list) that did not resolve, and why; only
    /// when no name of the list resolved.
    #[error("cannot resolve server address {0:?}: {1}")]
    Resolve(String, String),
    #[error("cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    #[error("no answer from {server} within {limit:?}")]
    NoAnswer { server: String, limit: Duration },
    #[error("the server closed the handshake: {0}")]
    Closed(CloseReason),
}

/// The key `server` (`HOST:PORT`, or several separated by commas)
/// presents, or why there is none within `limit`. With several addresses
/// each gets an equal share of what is left of `limit`, in turn, until one
/// answers; if none does, a refusal is reported over no answer.
pub async fn server_key(server: &str, limit: Duration) -> Result<PublicKey, ProbeError> {
    let give_up = Instant::now() + limit;
    let resolved = resolve(&servers::names(server)).await;
    first_address(server, &resolved).map_err(|(name, why)| ProbeError::Resolve(name, why))?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in resolved.into_iter().filter_map(|(_, r)| r.ok()).flatten() {
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    let mut refused = None;
    for (i, &addr) in addrs.iter().enumerate() {
        let left = give_up.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        match probe_one(addr, Instant::now() + share).await {
            Ok(key) => return Ok(key),
            Err(Probe::NoAnswer) => {}
            Err(Probe::Closed(reason)) => refused = Some(ProbeError::Closed(reason)),
            Err(Probe::Socket(e)) => refused = refused.or(Some(ProbeError::Socket(e))),
        }
    }
    Err(refused.unwrap_or_else(|| ProbeError::NoAnswer { server: server.to_owned(), limit }))
}

/// Why one address gave no key.
enum Probe {
    NoAnswer,
    Closed(CloseReason),
    Socket(std::io::Error),
}

/// The key the server at `addr` presents, if it does by `give_up`.
async fn probe_one(addr: SocketAddr, give_up: Instant) -> Result<PublicKey, Probe> {
    let mut link = Link::client(addr).map_err(Probe::Socket)?;
    let h = link
        .endpoint
        .connect(Instant::now(), addr, ClientConfig::default())
        .expect("the default client configuration is valid");
    loop {
        link.flush().await;
        while let Some((from, event)) = link.endpoint.poll_event() {
            if from != h {
                continue;
            }
            match event {
                Event::Connected { server_key } => {
                    link.endpoint.close(Instant::now(), h, code::NORMAL, "key check");
                    link.flush().await;
                    return Ok(server_key);
                }
                Event::Closed(CloseReason::HandshakeTimedOut | CloseReason::TimedOut) => return Err(Probe::NoAnswer),
                Event::Closed(reason) => return Err(Probe::Closed(reason)),
                _ => {}
            }
        }
        let now = Instant::now();
        if now >= give_up {
            return Err(Probe::NoAnswer);
        }
        let wake = link.endpoint.poll_timeout().map_or(give_up, |t| t.min(give_up));
        tokio::select! {
            r = link.readable() => {
                if let Err(e) = r.and_then(|()| link.receive()) {
                    tracing::debug!("receive failed: {e}");
                }
            }
            () = sleep_until(wake.into()) => link.endpoint.handle_timeout(Instant::now()),
        }
    }
}
