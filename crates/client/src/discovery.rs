//! Finding servers on the LAN (docs/PROTOCOL.md §16) for `udpchat
//! discover`, `chat --lan` and the GUI: [`discover`] probes by broadcast
//! (255.255.255.255 and each interface's directed broadcast) and by the
//! IPv6 all-nodes group (ff02::1 on each interface), and browses DNS-SD
//! over mDNS (`_udpchat._udp.local.`) at the same time; answers are merged
//! per server key.
//!
//! Nothing found this way is authenticated: a beacon or an mDNS record can
//! be forged by anyone on the LAN. The key it names is what the server
//! will have to prove in the handshake, and the client still pins it on
//! first use like any other (known_hosts.rs).

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;
use udpchat_chat::discovery::{self, Beacon, FLAG_PASSWORD, FLAG_PLAIN};
use udpchat_proto::PublicKey;

/// The port probes go to unless told otherwise (the server's default).
pub const DEFAULT_PORT: u16 = 7667;
/// The DNS-SD service type servers announce.
pub const SERVICE_TYPE: &str = "_udpchat._udp.local.";
/// Probes sent per discovery, spread over its time, in case one is lost.
const ROUNDS: u32 = 3;
/// Servers one discovery lists; more answers are ignored.
pub const MAX_FOUND: usize = 256;

/// How a server was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Via {
    /// It answered a probe (§16.3).
    Beacon,
    /// Its DNS-SD record (§16.5).
    Mdns,
}

/// A server that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundServer {
    pub name: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The key the server says it has (unverified until the handshake).
    pub key: PublicKey,
    pub password: bool,
    /// Logged-in sessions, when a beacon said (mDNS records do not).
    pub members: Option<u32>,
    pub version: u32,
    /// The plain-text gateway's port (§17; the udpchat port itself when
    /// they share it), if the server has one.
    pub plain_port: Option<u16>,
    pub via: Vec<Via>,
}

/// What to look for, and how long.
#[derive(Debug, Clone)]
pub struct DiscoverOptions {
    pub port: u16,
    pub timeout: Duration,
    /// Also browse mDNS.
    pub mdns: bool,
}

impl DiscoverOptions {
    pub fn new(timeout: Duration) -> Self {
        Self { port: DEFAULT_PORT, timeout, mdns: true }
    }
}

/// Every server that answers on the default port within `timeout`.
pub async fn discover(timeout: Duration) -> io::Result<Vec<FoundServer>> {
    discover_with(&DiscoverOptions::new(timeout)).await
}

/// Every server that answers within `options.timeout`, sorted by name.
/// Fails only if no probe could be sent at all and mDNS could not browse.
pub async fn discover_with(options: &DiscoverOptions) -> io::Result<Vec<FoundServer>> {
    let mdns = options.mdns.then(|| {
        let timeout = options.timeout;
        tokio::task::spawn_blocking(move || browse_mdns(timeout))
    });
    let probed = probe(options).await;
    let mut found = match &probed {
        Ok(found) => found.clone(),
        Err(_) => BTreeMap::new(),
    };
    let mut mdns_ok = false;
    if let Some(task) = mdns {
        match task.await.map_err(io::Error::other)? {
            Ok(servers) => {
                mdns_ok = true;
                for server in servers {
                    merge(&mut found, server);
                }
            }
            Err(e) => tracing::debug!("mDNS browse failed: {e}"),
        }
    }
    if let Err(e) = probed
        && !mdns_ok
    {
        return Err(io::Error::new(e.kind(), format!("cannot send discovery probes: {e}")));
    }
    let mut list: Vec<FoundServer> = found.into_values().collect();
    list.sort_by(|a, b| a.name.cmp(&b.name).then(a.addr.cmp(&b.addr)));
    Ok(list)
}

/// Adds `server`, or its way of being found to the entry of the same key
/// and port (the same server seen by broadcast, IPv6 and mDNS).
fn merge(found: &mut BTreeMap<([u8; 32], u16), FoundServer>, server: FoundServer) {
    if found.len() >= MAX_FOUND {
        return;
    }
    let entry = found.entry((server.key.0, server.addr.port())).or_insert_with(|| server.clone());
    for via in server.via {
        if !entry.via.contains(&via) {
            entry.via.push(via);
        }
    }
    entry.via.sort();
    if entry.members.is_none() {
        entry.members = server.members;
    }
    // An IPv4 address is the more useful one to show and connect to.
    if entry.addr.is_ipv6() && server.addr.is_ipv4() {
        entry.addr = server.addr;
    }
}

/// Where probes go: the limited broadcast, each interface's directed
/// broadcast, and ff02::1 on each IPv6 interface.
fn targets(port: u16) -> (Vec<SocketAddr>, Vec<SocketAddr>) {
    let mut v4 = vec![SocketAddr::from((Ipv4Addr::BROADCAST, port))];
    let mut v6 = Vec::new();
    for iface in if_addrs::get_if_addrs().unwrap_or_default() {
        if iface.is_loopback() {
            continue;
        }
        match iface.addr {
            if_addrs::IfAddr::V4(a) => {
                if let Some(b) = a.broadcast
                    && !v4.contains(&SocketAddr::from((b, port)))
                {
                    v4.push(SocketAddr::from((b, port)));
                }
            }
            if_addrs::IfAddr::V6(_) => {
                if let Some(index) = iface.index {
                    let all_nodes =
                        SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), port, 0, index));
                    if !v6.contains(&all_nodes) {
                        v6.push(all_nodes);
                    }
                }
            }
        }
    }
    (v4, v6)
}

/// Sends probes in rounds and collects beacons until the timeout.
async fn probe(options: &DiscoverOptions) -> io::Result<BTreeMap<([u8; 32], u16), FoundServer>> {
    let mut nonce = [0u8; 8];
    getrandom::getrandom(&mut nonce).map_err(|e| io::Error::other(e.to_string()))?;
    let datagram = discovery::probe(nonce, discovery::PROBE_SIZE);
    let (v4_targets, v6_targets) = targets(options.port);
    let v4 = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    v4.set_broadcast(true)?;
    // No IPv6 on this machine is not an error.
    let v6 = UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).await.ok();
    let deadline = Instant::now() + options.timeout;
    let every = options.timeout / ROUNDS;
    let mut next_round = Instant::now();
    let mut rounds = 0;
    let mut sent_any = false;
    let mut last_error = None;
    let mut found = BTreeMap::new();
    let mut buf = vec![0u8; 2048];
    let mut buf6 = vec![0u8; 2048];
    loop {
        if rounds < ROUNDS && Instant::now() >= next_round {
            rounds += 1;
            next_round += every;
            for to in &v4_targets {
                // 255.255.255.255 fails without a route for it; the
                // directed broadcasts still go.
                match v4.send_to(&datagram, to).await {
                    Ok(_) => sent_any = true,
                    Err(e) => last_error = Some(e),
                }
            }
            if let Some(v6) = &v6 {
                for to in &v6_targets {
                    match v6.send_to(&datagram, to).await {
                        Ok(_) => sent_any = true,
                        Err(e) => last_error = Some(e),
                    }
                }
            }
        }
        let wake = if rounds < ROUNDS { next_round.min(deadline) } else { deadline };
        let received = tokio::select! {
            r = v4.recv_from(&mut buf) => r.map(|(n, from)| (buf[..n].to_vec(), from)),
            r = async { match &v6 { Some(s) => s.recv_from(&mut buf6).await, None => std::future::pending().await } } => {
                r.map(|(n, from)| (buf6[..n].to_vec(), from))
            }
            () = tokio::time::sleep_until(wake) => {
                if Instant::now() >= deadline {
                    break;
                }
                continue;
            }
        };
        let Ok((bytes, from)) = received else { continue };
        let Some(beacon) = Beacon::decode(&bytes).filter(|b| b.nonce == nonce) else { continue };
        merge(&mut found, from_beacon(&beacon, from));
    }
    if !sent_any {
        return Err(last_error.unwrap_or_else(|| io::Error::other("no interface to send probes on")));
    }
    Ok(found)
}

fn from_beacon(b: &Beacon, from: SocketAddr) -> FoundServer {
    let ip = b.address.parse::<IpAddr>().unwrap_or_else(|_| from.ip().to_canonical());
    let addr = match (ip, from) {
        // A link-local address needs the interface it came in on.
        (IpAddr::V6(v6), SocketAddr::V6(f)) if v6.segments()[0] & 0xffc0 == 0xfe80 => {
            SocketAddr::V6(SocketAddrV6::new(v6, b.port, 0, f.scope_id()))
        }
        (ip, _) => SocketAddr::new(ip, b.port),
    };
    FoundServer {
        name: b.name.clone(),
        addr,
        key: PublicKey(b.key),
        password: b.flags & FLAG_PASSWORD != 0,
        members: Some(b.members),
        version: b.version,
        plain_port: (b.plain_port != 0 && b.flags & FLAG_PLAIN != 0).then_some(b.plain_port),
        via: vec![Via::Beacon],
    }
}

/// Browses `_udpchat._udp.local.` for `timeout` (blocking: mdns-sd has
/// its own thread, this one waits on its channel).
fn browse_mdns(timeout: Duration) -> Result<Vec<FoundServer>, mdns_sd::Error> {
    let daemon = mdns_sd::ServiceDaemon::new()?;
    let events = daemon.browse(SERVICE_TYPE)?;
    let deadline = std::time::Instant::now() + timeout;
    let mut found = Vec::new();
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        let Ok(event) = events.recv_timeout(left) else { break };
        if let mdns_sd::ServiceEvent::ServiceResolved(service) = event
            && let Some(server) = from_mdns(&service)
            && found.len() < MAX_FOUND
        {
            found.push(server);
        }
    }
    let _ = daemon.stop_browse(SERVICE_TYPE);
    let _ = daemon.shutdown();
    Ok(found)
}

fn from_mdns(service: &mdns_sd::ResolvedService) -> Option<FoundServer> {
    let key: PublicKey = service.get_property_val_str("key")?.parse().ok()?;
    let addresses: Vec<IpAddr> = service.get_addresses().iter().map(mdns_sd::ScopedIp::to_ip_addr).collect();
    let ip = addresses.iter().find(|a| a.is_ipv4()).or_else(|| addresses.first())?;
    let fullname = service.get_fullname();
    let name = fullname.strip_suffix(&format!(".{SERVICE_TYPE}")).unwrap_or(fullname).replace("\\ ", " ");
    Some(FoundServer {
        name,
        addr: SocketAddr::new(*ip, service.get_port()),
        key,
        password: service.get_property_val_str("password") == Some("yes"),
        members: None,
        version: service.get_property_val_str("v").and_then(|v| v.parse().ok()).unwrap_or(1),
        plain_port: service.get_property_val_str("plain").and_then(|p| p.parse().ok()),
        via: vec![Via::Mdns],
    })
}
