//! Asking a server for its key without logging in: one handshake
//! (docs/PROTOCOL.md §5, "Client procedure") with no key required, then a
//! NORMAL close. A front end that wants the user to decide about a key
//! before anything is sent under it (the desktop client's "trust this
//! server?" and "the key changed" dialogs) probes first and then connects
//! with [`crate::ClientOptions::server_key`] set to the key the user
//! accepted. It also tells "no answer" (a wrong address, a server that is
//! not running, a firewall) apart from a server that refuses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::time::sleep_until;
use udpchat_proto::{ClientConfig, CloseReason, Event, PublicKey, code};

use crate::link::Link;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot resolve server address {0:?}: {1}")]
    Resolve(String, std::io::Error),
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
    #[error("cannot open a UDP socket: {0}")]
    Socket(std::io::Error),
    #[error("no answer from {server} within {limit:?}")]
    NoAnswer { server: String, limit: Duration },
    #[error("the server closed the handshake: {0}")]
    Closed(CloseReason),
}

/// The key `server` (`HOST:PORT`) presents, or why there is none within
/// `limit`.
pub async fn server_key(server: &str, limit: Duration) -> Result<PublicKey, ProbeError> {
    let addr: SocketAddr = tokio::net::lookup_host(server)
        .await
        .map_err(|e| ProbeError::Resolve(server.to_owned(), e))?
        .next()
        .ok_or_else(|| ProbeError::NoAddress(server.to_owned()))?;
    let mut link = Link::client(addr).map_err(ProbeError::Socket)?;
    let give_up = Instant::now() + limit;
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
                Event::Closed(CloseReason::HandshakeTimedOut | CloseReason::TimedOut) => {
                    return Err(ProbeError::NoAnswer { server: server.to_owned(), limit });
                }
                Event::Closed(reason) => return Err(ProbeError::Closed(reason)),
                _ => {}
            }
        }
        let now = Instant::now();
        if now >= give_up {
            return Err(ProbeError::NoAnswer { server: server.to_owned(), limit });
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
