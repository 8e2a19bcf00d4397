//! Where a request comes from: the client's IP address and user agent, recorded with each session
//! and in the audit log.
//!
//! The peer address of the connection is the client, unless that peer is one of the configured
//! `[server] trusted_proxies`: then `X-Forwarded-For` is read from the right, skipping trusted
//! proxies, and the first address no trusted proxy vouches for is the client. Anyone can send the
//! header, so it is never believed from an untrusted peer.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

pub use crate::config::Cidr;
use crate::config::cidr::canonical;
use crate::device;

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
