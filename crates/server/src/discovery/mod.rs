//! LAN discovery on the server side (docs/PROTOCOL.md §16): when it is on
//! (`lan_discovery`, [`LanDiscovery::resolve`]), the server answers probes
//! with a beacon ([`responder`], sans-IO, in the driver before the
//! transport) and announces itself over DNS-SD/mDNS ([`mdns`]).

pub mod mdns;
pub mod responder;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use serde::Deserialize;
use udpchat_proto::ServerKey;

use crate::settings::Settings;
use mdns::{Announced, Announcement};
use responder::Responder;

/// The `lan_discovery` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LanDiscovery {
    /// On when the server listens on a private or link-local address (or
    /// on every address of a machine that has no public one), off on a
    /// public or loopback address.
    #[default]
    Auto,
    On,
    Off,
}

impl std::str::FromStr for LanDiscovery {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "on" | "true" => Ok(Self::On),
            "off" | "false" => Ok(Self::Off),
            other => Err(format!("{other:?}: use auto, on or off")),
        }
    }
}

impl LanDiscovery {
    /// Whether discovery runs for a server listening on `listen`. `Auto`
    /// answers the LAN a private address is on, and stays silent where
    /// the internet could ask (a public address) or nobody else can
    /// (loopback). For an unspecified address it looks at the machine's
    /// interfaces: any public address among them means off.
    pub fn resolve(self, listen: SocketAddr) -> bool {
        match self {
            Self::On => true,
            Self::Off => false,
            Self::Auto if listen.ip().is_unspecified() => {
                let addrs = if_addrs::get_if_addrs().unwrap_or_default();
                let ips: Vec<IpAddr> = addrs.iter().map(if_addrs::Interface::ip).collect();
                ips.iter().any(|ip| is_lan(*ip)) && !ips.iter().any(|ip| is_public(*ip))
            }
            Self::Auto => is_lan(listen.ip()),
        }
    }
}

/// The discovery responder and mDNS announcement `lan_discovery` asks for
/// (docs/PROTOCOL.md §16). mDNS that cannot start is a warning, not an
/// error: probes are still answered.
/// `local` is where the server listens, `plain_port` the plain-text
/// gateway's port (the udpchat port when they share it).
pub fn lan_discovery(
    settings: &Settings,
    key: &ServerKey,
    local: SocketAddr,
    plain_port: Option<u16>,
) -> (Option<Responder>, Option<Announcement>) {
    // The socket's address, not the configured one: a caller (a test)
    // may hand the driver a socket bound elsewhere, such as loopback.
    if !settings.lan_discovery.resolve(local) {
        return (None, None);
    }
    let plain_port = plain_port.unwrap_or(0);
    let mut flags = 0;
    if settings.password.is_some() {
        flags |= udpchat_chat::discovery::FLAG_PASSWORD;
    }
    if settings.plain_listen.is_some() {
        flags |= udpchat_chat::discovery::FLAG_PLAIN;
    }
    let address = if local.ip().is_unspecified() { String::new() } else { local.ip().to_string() };
    let template = udpchat_chat::discovery::Beacon {
        nonce: [0; 8],
        version: udpchat_chat::discovery::VERSION,
        flags,
        port: local.port(),
        plain_port,
        members: 0,
        key: key.public.0,
        name: settings.server_name.clone(),
        address,
    };
    let announced = Announced {
        name: &settings.server_name,
        listen: local,
        key: &key.public,
        password: settings.password.is_some(),
        plain_port,
    };
    let mdns = Announcement::start(&announced).inspect_err(|e| tracing::warn!("{e}: {}", e.0)).ok();
    (Some(Responder::new(template, Instant::now())), mdns)
}

/// Private (RFC 1918, RFC 4193) or link-local.
pub fn is_lan(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => is_unique_local(v6) || is_link_local6(v6),
    }
}

fn is_unique_local(v6: Ipv6Addr) -> bool {
    v6.segments()[0] & 0xfe00 == 0xfc00
}

fn is_link_local6(v6: Ipv6Addr) -> bool {
    v6.segments()[0] & 0xffc0 == 0xfe80
}

/// Reachable from the internet: not LAN, loopback, unspecified,
/// multicast, documentation or shared (CGNAT) space.
fn is_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let shared = v4.octets()[0] == 100 && v4.octets()[1] & 0xc0 == 64;
            !(is_lan(ip) || v4.is_loopback() || v4.is_unspecified() || v4.is_multicast() || shared)
                && v4 != Ipv4Addr::BROADCAST
        }
        IpAddr::V6(v6) => {
            let documentation = v6.segments()[0] == 0x2001 && v6.segments()[1] == 0x0db8;
            v6.segments()[0] & 0xe000 == 0x2000 && !documentation
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(addr: &str) -> bool {
        LanDiscovery::Auto.resolve(addr.parse().unwrap())
    }

    #[test]
    fn auto_follows_the_listen_address() {
        assert!(auto("10.213.1.1:7667"));
        assert!(auto("192.168.0.5:7667"));
        assert!(auto("[fe80::1]:7667"));
        assert!(auto("[fd00::1]:7667"));
        assert!(!auto("127.0.0.1:7667"));
        assert!(!auto("[::1]:7667"));
        assert!(!auto("203.0.113.7:7667"));
        assert!(!auto("[2a01:4f8::1]:7667"));
        assert!(LanDiscovery::On.resolve("127.0.0.1:1".parse().unwrap()));
        assert!(!LanDiscovery::Off.resolve("10.0.0.1:1".parse().unwrap()));
        assert!(is_public("8.8.8.8".parse().unwrap()) && !is_public("100.64.0.1".parse().unwrap()));
    }
}
