//! Looking up the `--server` names, the one place the client does DNS:
//! every address of every name (a DNS name may stand for several servers
//! of a cluster), each lookup bounded in time. The driver looks up when
//! connecting and again at the start of each round of addresses
//! (`session::servers`), so a changed record is followed; the key probe
//! looks up once.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::time::timeout;

use crate::session::servers::Resolved;

/// How long one name's lookup may take (the system resolver's own
/// retries usually give up sooner).
pub const RESOLVE_WAIT: Duration = Duration::from_secs(10);

/// What each of `names` (`HOST:PORT`) resolves to, in order.
pub async fn resolve(names: &[String]) -> Vec<Resolved> {
    let mut resolved = Vec::with_capacity(names.len());
    for name in names {
        let result = match timeout(RESOLVE_WAIT, tokio::net::lookup_host(name.as_str())).await {
            Ok(Ok(addrs)) => Ok(addrs.collect()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer from the resolver within {} s", RESOLVE_WAIT.as_secs())),
        };
        resolved.push((name.clone(), result));
    }
    resolved
}

/// The first address any name resolved to; if none did, the first name
/// and why (for [`crate::ClientError::Resolve`] and the probe's).
pub fn first_address(list: &str, resolved: &[Resolved]) -> Result<SocketAddr, (String, String)> {
    if let Some(addr) = resolved.iter().find_map(|(_, r)| r.as_ref().ok()?.first().copied()) {
        return Ok(addr);
    }
    Err(match resolved.first() {
        Some((name, Err(why))) => (name.clone(), why.clone()),
        Some((name, Ok(_))) => (name.clone(), "no addresses".into()),
        None => (list.to_owned(), "no server address given".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_name_is_looked_up_and_a_failure_names_its_name() {
        let names = ["127.0.0.1:7667".to_owned(), "no port".to_owned()];
        let resolved = resolve(&names).await;
        assert_eq!(resolved[0], ("127.0.0.1:7667".to_owned(), Ok(vec!["127.0.0.1:7667".parse().unwrap()])));
        assert!(resolved[1].1.is_err());
        let reversed = [resolved[1].clone(), resolved[0].clone()];
        assert_eq!(first_address("no port,127.0.0.1:7667", &reversed).unwrap(), "127.0.0.1:7667".parse().unwrap());
        let (name, why) = first_address("no port", &resolved[1..]).unwrap_err();
        assert_eq!(name, "no port");
        assert!(why.contains("invalid socket address"), "{why}");
        assert_eq!(first_address(" , ", &[]).unwrap_err(), (" , ".into(), "no server address given".into()));
    }
}
