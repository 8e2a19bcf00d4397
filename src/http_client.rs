//! The one outbound HTTP client: no redirects, no environment proxies, timeouts, a response size
//! cap, and a guard that refuses every non-public address (the IANA special-purpose registries,
//! IPv4 carried inside IPv6 judged as itself: `public_address`) unless allowed.
//! Issuer URLs come from configuration and discovery documents, so they are untrusted input.
//! With `[trace]`, each call is a client span (inside the span of the request being served) and
//! carries its `traceparent` to the provider.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::trace::{self, Ended, Kind, Tracer};

mod public_address;
pub mod upstream;
pub use public_address::{is_host_loopback, is_public};

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

    /// A short name of what went wrong, from a fixed set (a span's `error.type`).
    pub fn kind(&self) -> &'static str {
        match self {
            HttpError::Refused(_) => "address_refused",
            HttpError::Transport { reason, .. } if reason == TIMED_OUT => "timeout",
            HttpError::Transport { reason, .. } if reason == NO_CONNECTION => "connect_error",
            HttpError::Transport { .. } => "transport_error",
            HttpError::TooLarge(_) => "response_too_large",
            HttpError::Build(_) => "bad_request",
        }
    }
}

const TIMED_OUT: &str = "timed out";
const NO_CONNECTION: &str = "could not connect";

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
            || (self.allow_loopback && is_host_loopback(ip))
    }

    /// A name is refused when any address it resolves to is: the connector may try any of them.
    fn check_resolved(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), HttpError> {
        match addrs.iter().find(|a| !self.allows(host, a.ip())) {
            Some(bad) => Err(HttpError::Refused(format!("{host} ({})", bad.ip()))),
            None => Ok(()),
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
            policy.check_resolved(&host, &addrs)?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[derive(Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    policy: Arc<AddressPolicy>,
    tracer: Option<Tracer>,
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
        Ok(HttpClient {
            inner,
            policy,
            tracer: None,
        })
    }

    /// Every call a client span of `tracer` (`[trace]`); `None`: no spans.
    pub fn with_tracer(mut self, tracer: Option<Tracer>) -> Self {
        self.tracer = tracer;
        self
    }

    /// Sends a request and reads at most 1 MiB of the answer. Non-2xx statuses are returned, not
    /// errors. Counted in the metrics by host and outcome, and traced with `[trace]`.
    pub async fn execute(
        &self,
        mut req: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, HttpError> {
        let host = req.uri().host().unwrap_or_default().to_string();
        let span = self.tracer.as_ref().map(|tracer| {
            let span = tracer.start_client(crate::request_id::current_span());
            if let Ok(v) = http::HeaderValue::from_str(&span.context().traceparent()) {
                req.headers_mut().insert(trace::TRACEPARENT, v);
            }
            (tracer, span, req.method().clone(), req.uri().clone())
        });
        let started = std::time::Instant::now();
        let result = self.send_and_read(req).await;
        let status = result.as_ref().ok().map(|r| r.status().as_u16());
        crate::metrics::upstream(&host, status, started.elapsed());
        if let Some((tracer, span, method, uri)) = span {
            tracer.end(span, || client_span(&method, &uri, &result));
        }
        result
    }

    async fn send_and_read(
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

/// A provider call as the HTTP semantic conventions describe a client span, with its target cut
/// down to scheme, host, port and path: a query string can hold a key (Firebase's `?key=`), and
/// the paths of provider endpoints come from configuration and discovery, not from users. Any
/// status from 400 up is a failed call.
fn client_span(
    method: &http::Method,
    uri: &http::Uri,
    result: &Result<http::Response<Vec<u8>>, HttpError>,
) -> Ended {
    let method = trace::method_name(method);
    let mut attributes = vec![
        ("http.request.method", method.into()),
        ("server.address", uri.host().unwrap_or_default().into()),
        ("url.path", uri.path().into()),
    ];
    let scheme = uri.scheme_str().unwrap_or("https");
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "http" { 80 } else { 443 });
    attributes.push(("server.port", port.into()));
    attributes.push(("url.scheme", scheme.into()));
    let error = match result {
        Ok(res) => {
            let status = res.status().as_u16();
            attributes.push(("http.response.status_code", status.into()));
            (status >= 400).then(|| status.to_string())
        }
        Err(e) => Some(e.kind().to_string()),
    };
    if let Some(kind) = &error {
        attributes.push(("error.type", kind.as_str().into()));
    }
    Ended {
        name: if method == "_OTHER" { "HTTP" } else { method }.to_string(),
        kind: Kind::Client,
        attributes,
        error: error.is_some(),
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
        TIMED_OUT.to_string()
    } else if e.is_connect() {
        NO_CONNECTION.to_string()
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
    fn basic_auth_encodes_reserved_characters() {
        assert_eq!(
            basic_auth("a b", "p:w"),
            format!(
                "Basic {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "a+b:p%3Aw")
            )
        );
    }

    #[test]
    fn a_name_is_refused_when_any_address_it_resolves_to_is_not_public() {
        let addrs = |list: &[&str]| -> Vec<SocketAddr> {
            list.iter()
                .map(|ip| SocketAddr::new(ip.parse().unwrap(), 443))
                .collect()
        };
        let strict = AddressPolicy::default();
        assert!(
            strict
                .check_resolved("idp.test", &addrs(&["8.8.8.8", "2606:4700::1111"]))
                .is_ok()
        );
        for bad in [
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a00:1::1",
            "::10.0.0.1",
            "198.18.0.1",
            "fec0::1",
        ] {
            let err = strict.check_resolved("idp.test", &addrs(&["8.8.8.8", bad]));
            assert!(matches!(err, Err(HttpError::Refused(_))), "{bad}");
        }
        let mut listed = AddressPolicy::default();
        listed.allowed_hosts.insert("idp.internal".into());
        assert!(
            listed
                .check_resolved("idp.internal", &addrs(&["10.0.0.1"]))
                .is_ok()
        );
        assert!(
            listed
                .check_resolved("idp.test", &addrs(&["10.0.0.1"]))
                .is_err()
        );
    }

    #[test]
    fn allowed_loopback_includes_ipv4_mapped_loopback_but_not_translated_loopback() {
        let dev = AddressPolicy {
            allow_loopback: true,
            ..AddressPolicy::default()
        };
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "::ffff:127.1.2.3"] {
            assert!(dev.allows("h", ip.parse().unwrap()), "{ip}");
            assert!(
                !AddressPolicy::default().allows("h", ip.parse().unwrap()),
                "{ip}"
            );
        }
        // These leave the host (to a NAT64 gateway, a 6to4 or Teredo relay) or mean nothing.
        for ip in [
            "64:ff9b::127.0.0.1",
            "::127.0.0.1",
            "2002:7f00:1::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!dev.allows("h", ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn ip_literals_carrying_private_ipv4_are_refused_before_any_connection() {
        let client = HttpClient::new(AddressPolicy::default(), Duration::from_secs(2)).unwrap();
        for url in [
            "http://[::ffff:127.0.0.1]:9/",
            "http://[::ffff:a9fe:a9fe]/latest/meta-data/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/",
            "http://198.18.0.1/",
            "http://240.0.0.1/",
            "http://0x7f.1:9/",
        ] {
            let err = client.get(&url.parse().unwrap(), None).await.unwrap_err();
            assert!(matches!(err, HttpError::Refused(_)), "{url}: {err}");
        }
        // With loopback allowed, the mapped form gets through the guard (and finds nothing on
        // port 9 of this host).
        let dev = HttpClient::new(
            AddressPolicy {
                allow_loopback: true,
                ..AddressPolicy::default()
            },
            Duration::from_secs(2),
        )
        .unwrap();
        let err = dev
            .get(&"http://[::ffff:127.0.0.1]:9/".parse().unwrap(), None)
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Transport { .. }), "{err}");
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
