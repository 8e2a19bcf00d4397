//! Where a request comes from: the client's IP address and user agent, recorded with each session
//! and in the audit log.
//!
//! The peer address of the connection is the client, unless that peer is one of the configured
//! `[server] trusted_proxies`: then `X-Forwarded-For` is read from the right, skipping trusted
//! proxies, and the first address no trusted proxy vouches for is the client. Anyone can send the
//! header, so it is never believed from an untrusted peer.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::device;

/// An IP network: an address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(
                u128::from(u32::from(net)),
                u128::from(u32::from(ip)),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(u128::from(net), u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` of `width` bits are equal.
fn prefix_eq(a: u128, b: u128, width: u8, prefix: u8) -> bool {
    if prefix == 0 {
        return true;
    }
    let shift = u32::from(width - prefix);
    (a >> shift) == (b >> shift)
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack listener reports) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let network = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("`{addr}` is not an IP address"))?,
        );
        let width = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= width && !p.starts_with('+') => n,
                _ => return Err(format!("`/{p}` is not a prefix length from 0 to {width}")),
            },
        };
        // Host bits set (10.1.2.3/8) usually mean a typo; the network is what was meant.
        let host_bits = bits(network) & !mask(width, prefix);
        if host_bits != 0 {
            return Err(format!(
                "`{s}` has host bits set; write the network address (e.g. {})",
                Cidr {
                    network: from_bits(bits(network) & mask(width, prefix), width),
                    prefix
                }
            ));
        }
        Ok(Cidr { network, prefix })
    }
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(b: u128, width: u8) -> IpAddr {
    if width == 32 {
        IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(b).unwrap_or(0)))
    } else {
        IpAddr::V6(std::net::Ipv6Addr::from(b))
    }
}

/// The network part of a `width`-bit address with a `prefix`-bit network.
fn mask(width: u8, prefix: u8) -> u128 {
    let all = if width == 32 {
        u128::from(u32::MAX)
    } else {
        u128::MAX
    };
    if prefix == 0 {
        0
    } else {
        all & (all << u32::from(width - prefix))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The client's address: the peer, or, from a trusted proxy, what `X-Forwarded-For` says.
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[Cidr]) -> Option<IpAddr> {
    let peer = canonical(peer?);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return Some(peer);
    }
    // Each proxy appends the address it received from; several header lines form one list.
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage from beyond the last trusted proxy: what that proxy saw is all we know.
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    Some(client)
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5678`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// Where a request comes from, as recorded with sessions and audit events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<String>,
    /// Cleaned and bounded ([`device::clean_user_agent`]).
    pub user_agent: Option<String>,
    /// The readable label of the user agent ("Firefox on Linux").
    pub device: String,
}

impl ClientInfo {
    pub fn from_parts(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[Cidr]) -> Self {
        let user_agent = headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .and_then(device::clean_user_agent);
        ClientInfo {
            ip: client_ip(peer, headers, trusted).map(|ip| ip.to_string()),
            device: device::label(user_agent.as_deref()),
            user_agent,
        }
    }
}

/// What the [`ClientInfo`] extractor needs from the app: the proxies trusted to name the client.
pub trait TrustedProxies {
    fn trusted_proxies(&self) -> &[Cidr];
}

impl<S: TrustedProxies + Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Present when the server runs with connect info (`App::run`); absent in router-only use.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        Ok(ClientInfo::from_parts(
            peer,
            &parts.headers,
            state.trusted_proxies(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(s: &str) -> Cidr {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_match_their_network_only() {
        let c = cidr("10.0.0.0/8");
        assert!(c.contains(ip("10.0.0.1")));
        assert!(c.contains(ip("10.255.255.255")));
        assert!(!c.contains(ip("11.0.0.0")));
        assert!(!c.contains(ip("9.255.255.255")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped");
        assert!(!c.contains(ip("2001:db8::1")));
        let one = cidr("127.0.0.1/32");
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        assert_eq!(cidr("192.168.1.7"), cidr("192.168.1.7/32"));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        let v6 = cidr("2001:db8::/32");
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let odd = cidr("172.16.0.0/12");
        assert!(odd.contains(ip("172.31.255.255")));
        assert!(!odd.contains(ip("172.32.0.0")));
    }

    #[test]
    fn bad_cidrs_are_refused_with_a_reason() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/+8",
            "10.0.0/8",
            "example.com/8",
            "",
            "::/129",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        let e = "10.1.2.3/8".parse::<Cidr>().unwrap_err();
        assert!(e.contains("10.0.0.0/8"), "{e}");
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [cidr("10.0.0.0/8"), cidr("127.0.0.1/32")];
        let h = xff(&["198.51.100.7"]);
        // An untrusted peer: the header is ignored.
        assert_eq!(
            client_ip(Some(ip("203.0.113.5")), &h, &trusted),
            Some(ip("203.0.113.5"))
        );
        // A trusted peer: the header's last untrusted entry is the client.
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &h, &trusted),
            Some(ip("198.51.100.7"))
        );
        // A spoofed entry at the left is not believed: the trusted chain ends at the first outsider.
        let h = xff(&["1.1.1.1, 198.51.100.7, 10.2.2.2", "10.3.3.3"]);
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &trusted),
            Some(ip("198.51.100.7"))
        );
        // Without the header, the trusted peer itself.
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &HeaderMap::new(), &trusted),
            Some(ip("10.1.1.1"))
        );
        // Garbage stops the walk at what the last trusted hop saw.
        let h = xff(&["198.51.100.7, not-an-ip, 10.2.2.2"]);
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &h, &trusted),
            Some(ip("10.2.2.2"))
        );
        // Ports and IPv6 brackets are understood.
        let h = xff(&["[2001:db8::5]:4711"]);
        assert_eq!(
            client_ip(Some(ip("10.1.1.1")), &h, &trusted),
            Some(ip("2001:db8::5"))
        );
        // No trusted proxies configured: never believed.
        let h = xff(&["198.51.100.7"]);
        assert_eq!(
            client_ip(Some(ip("127.0.0.1")), &h, &[]),
            Some(ip("127.0.0.1"))
        );
        assert_eq!(client_ip(None, &h, &trusted), None);
    }
}
