//! Announcing the server over DNS-SD/mDNS (docs/PROTOCOL.md §16.5) as
//! `_udpchat._udp.local.`, so that standard tools (`avahi-browse -r
//! _udpchat._udp`, Python zeroconf, macOS `dns-sd -B`) list it. mdns-sd
//! runs its own thread and answers queries there; the event loop never
//! waits on it. A name already taken on the network is renamed by mdns-sd
//! (`name (2)`, RFC 6762 §9).

use std::net::SocketAddr;
use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceInfo};
use udpchat_proto::PublicKey;

/// The DNS-SD service type.
pub const SERVICE_TYPE: &str = "_udpchat._udp.local.";
/// How long a shutdown waits for the goodbye (TTL 0) announcement.
const GOODBYE_WAIT: Duration = Duration::from_secs(1);
/// DNS-SD instance names are at most 63 bytes.
const MAX_INSTANCE: usize = 63;

#[derive(Debug, thiserror::Error)]
#[error("cannot announce the server over mDNS (set lan_discovery = \"off\" to run without it)")]
pub struct MdnsError(#[source] pub mdns_sd::Error);

/// The running announcement; [`Announcement::stop`] withdraws it.
pub struct Announcement {
    daemon: ServiceDaemon,
    fullname: String,
}

/// What a server announces.
pub struct Announced<'a> {
    pub name: &'a str,
    pub listen: SocketAddr,
    pub key: &'a PublicKey,
    pub password: bool,
    pub plain_port: u16,
}

impl Announcement {
    /// Registers the service: instance `name`, the udpchat port, and TXT
    /// records `v` (protocol version), `key` (base64), `password`
    /// (`yes`/`no`) and, with a plain-text gateway, `plain` (its port).
    /// Addresses follow the machine's interfaces unless the server
    /// listens on one address.
    pub fn start(a: &Announced<'_>) -> Result<Self, MdnsError> {
        let daemon = ServiceDaemon::new().map_err(MdnsError)?;
        let mut instance = a.name;
        if instance.len() > MAX_INSTANCE {
            let mut end = MAX_INSTANCE;
            while !instance.is_char_boundary(end) {
                end -= 1;
            }
            instance = &instance[..end];
        }
        // A host name of its own (not the machine's, which avahi owns).
        let host = format!("udpchat-{}.local.", hex4(&a.key.0));
        let key = a.key.to_string();
        let password = if a.password { "yes" } else { "no" };
        let plain = a.plain_port.to_string();
        let mut props = vec![("v", "1"), ("key", key.as_str()), ("password", password)];
        if a.plain_port != 0 {
            props.push(("plain", plain.as_str()));
        }
        let ip = a.listen.ip();
        let info = if ip.is_unspecified() {
            ServiceInfo::new(SERVICE_TYPE, instance, &host, "", a.listen.port(), &props[..])
                .map(ServiceInfo::enable_addr_auto)
        } else {
            ServiceInfo::new(SERVICE_TYPE, instance, &host, ip, a.listen.port(), &props[..])
        }
        .map_err(MdnsError)?;
        let fullname = info.get_fullname().to_owned();
        daemon.register(info).map_err(MdnsError)?;
        Ok(Self { daemon, fullname })
    }

    /// Says goodbye (so browsers drop the entry at once) and stops.
    pub fn stop(self) {
        if let Ok(done) = self.daemon.unregister(&self.fullname) {
            let _ = done.recv_timeout(GOODBYE_WAIT);
        }
        let _ = self.daemon.shutdown();
    }
}

fn hex4(bytes: &[u8; 32]) -> String {
    bytes[..4].iter().map(|b| format!("{b:02x}")).collect()
}
