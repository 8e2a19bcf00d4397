//! The one outbound HTTP client: no redirects, no environment proxies, timeouts, a response size
//! cap, and a guard that refuses private, loopback and link-local addresses unless allowed.
//! Issuer URLs come from configuration and discovery documents, so they are untrusted input.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("address refused: {0} is not a public address and is not allowed for outbound calls")]
    Refused(String),
    #[error("request to {host} failed: {reason}")]
    Transport { host: String, reason: String },
    #[error("response from {0} is larger than 1 MiB")]
    TooLarge(String),
    #[error("bad request: {0}")]
    Build(String),
}

impl HttpError {
    /// A timeout or connection failure, worth retrying; a refusal or a bad request is not.
    pub fn is_transient(&self) -> bool {
        matches!(self, HttpError::Transport { .. })
    }
}

/// Which non-public destinations are allowed.
#[derive(Debug, Clone, Default)]
pub struct AddressPolicy {
    /// Loopback addresses (development: the dev provider and local test issuers).
    pub allow_loopback: bool,
    /// Hosts (as written in URLs) that may resolve to any address.
    pub allowed_hosts: HashSet<String>,
}

impl AddressPolicy {
    fn allows(&self, host: &str, ip: IpAddr) -> bool {
        is_public(ip)
            || self.allowed_hosts.contains(host)
            || (self.allow_loopback && ip.is_loopback())
    }
}

pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)) // 100.64.0.0/10, carrier-grade NAT
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let seg0 = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local
                || (seg0 & 0xffc0) == 0xfe80) // link local
        }
    }
}

struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if let Some(bad) = addrs.iter().find(|a| !policy.allows(&host, a.ip())) {
                return Err(
                    Box::new(HttpError::Refused(format!("{host} ({})", bad.ip())))
                        as Box<dyn std::error::Error + Send + Sync>,
                );
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl HttpClient {
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, HttpError> {
        let policy = Arc::new(policy);
        let inner = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("oidc-broker/", env!("CARGO_PKG_VERSION")))
            .dns_resolver(GuardedResolver {
                policy: policy.clone(),
            })
            .build()
            .map_err(|e| HttpError::Build(e.to_string()))?;
        Ok(HttpClient { inner, policy })
    }

    /// Sends a request and reads at most 1 MiB of the answer. Non-2xx statuses are returned, not errors.
    pub async fn execute(
        &self,
        req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let url =
            url::Url::parse(&req.uri().to_string()).map_err(|e| HttpError::Build(e.to_string()))?;
        let host = url.host_str().unwrap_or_default().to_string();
        // IP literals never reach the resolver, so they are checked here.
        if let Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) = url.host() {
            let ip: IpAddr = host
                .trim_matches(|c| c == '[' || c == ']')
                .parse()
                .map_err(|_| HttpError::Build(format!("bad host {host}")))?;
            if !self.policy.allows(&host, ip) {
                return Err(HttpError::Refused(host));
            }
        }
        let (parts, body) = req.into_parts();
        let mut builder = self.inner.request(parts.method, url.as_str()).body(body);
        for (name, value) in parts.headers.iter() {
            builder = builder.header(name, value);
        }
        let resp = builder.send().await.map_err(|e| classify(&host, e))?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        let mut resp = resp;
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&host, e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::TooLarge(host));
            }
            body.extend_from_slice(&chunk);
        }
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }

    /// A form POST (token endpoints). `basic` sends HTTP Basic client authentication.
    pub async fn post_form(
        &self,
        url: &url::Url,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = http::Request::post(url.as_str())
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json");
        if let Some((user, pass)) = basic {
            req = req.header(http::header::AUTHORIZATION, basic_auth(user, pass));
        }
        let req = req
            .body(body.into_bytes())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        self.execute(req).await
    }

    /// A JSON POST (Identity Toolkit), with an optional bearer token.
    pub async fn post_json(
        &self,
        url: &url::Url,
        body: &serde_json::Value,
        bearer: Option<&str>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let mut req = http::Request::post(url.as_str())
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(token) = bearer {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(body.to_string().into_bytes())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        self.execute(req).await
    }

    pub async fn get(
        &self,
        url: &url::Url,
        bearer: Option<&str>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let mut req =
            http::Request::get(url.as_str()).header(http::header::ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Vec::new())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        self.execute(req).await
    }
}

/// RFC 6749 §2.3.1: client id and secret are form-urlencoded before they are joined for Basic auth.
pub fn basic_auth(user: &str, pass: &str) -> String {
    use base64::Engine;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(user), enc(pass));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn classify(host: &str, e: reqwest::Error) -> HttpError {
    // reqwest wraps resolver errors; surface the refusal as such.
    let mut source: Option<&dyn std::error::Error> = Some(&e);
    while let Some(s) = source {
        if let Some(HttpError::Refused(what)) = s.downcast_ref::<HttpError>() {
            return HttpError::Refused(what.clone());
        }
        source = s.source();
    }
    let reason = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "could not connect".to_string()
    } else {
        // Without the URL: it could carry a query string.
        e.without_url().to_string()
    };
    HttpError::Transport {
        host: host.to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_metadata_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:4700::1111"] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn basic_auth_encodes_reserved_characters() {
        assert_eq!(
            basic_auth("a b", "p:w"),
            format!(
                "Basic {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "a+b:p%3Aw")
            )
        );
    }

    #[tokio::test]
    async fn loopback_is_refused_unless_allowed() {
        let client = HttpClient::new(AddressPolicy::default(), Duration::from_secs(2)).unwrap();
        let err = client
            .get(&"http://127.0.0.1:9/".parse().unwrap(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Refused(_)), "{err}");
        let err = client
            .get(&"http://localhost:9/".parse().unwrap(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Refused(_)), "{err}");
    }
}
