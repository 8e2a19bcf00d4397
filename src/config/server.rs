//! `[server]`: where the broker listens, the URL browsers reach it at, where it may send them, and
//! its cookie and connection settings.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::cidr::Cidr;
use super::problem::{Problem, problem};
use super::{Environment, duration};
use crate::redirect::RedirectPolicy;

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub public_url: Url,
    /// Exact origins (`scheme://host[:port]`, no path) that `return_to` may point to.
    pub allowed_origins: Vec<String>,
    pub environment: Environment,
    /// Where `/auth/logged-out` sends the browser after a logout (on an allowed origin).
    pub post_logout_url: Option<String>,
    /// The session cookie's `SameSite`.
    pub same_site: SameSitePolicy,
    /// Serve the example page at `/example/`.
    pub example_app: bool,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// How long connections may take and how many may be open.
    pub listener: ListenerConfig,
}

/// Bounds on client connections, so that slow or idle clients cannot hold the listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerConfig {
    /// From the first byte of a request until its headers are complete.
    pub header_read_timeout: Duration,
    /// An open connection with no request in flight and no byte moving is closed after this.
    pub keep_alive_timeout: Duration,
    /// Connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// `SameSite` of the session cookie. `Lax` suits an app on the broker's site; `None` (https only)
/// lets a cross-site app send the cookie with `credentials: 'include'`, where the browser allows
/// third-party cookies at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSitePolicy {
    Lax,
    Strict,
    None,
}

impl ServerConfig {
    /// `https` public URLs get `__Host-` cookies with `Secure`; plain-http loopback development
    /// cannot (browsers drop `Secure` cookies set over http on most hosts), so it uses plain names.
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    pub fn public_origin(&self) -> String {
        self.public_url.origin().ascii_serialization()
    }

    /// Where the broker may send a browser: its own origin and `allowed_origins`.
    pub fn redirect_policy(&self) -> RedirectPolicy<'_> {
        RedirectPolicy {
            public_url: &self.public_url,
            allowed_origins: &self.allowed_origins,
        }
    }

    /// `{public_url}{path}` with `path` starting at `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    listen: Option<String>,
    public_url: Option<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    pub(super) environment: Option<String>,
    post_logout_url: Option<String>,
    same_site: Option<String>,
    example_app: Option<bool>,
    header_read_timeout: Option<String>,
    keep_alive_timeout: Option<String>,
    max_connections: Option<usize>,
}

/// What the other sections need from `[server]` before it is complete.
pub(super) struct ServerBase {
    pub environment: Environment,
    pub listen: SocketAddr,
    pub public_url: Url,
    pub allowed_origins: Vec<String>,
    pub listener: ListenerConfig,
}

pub fn is_loopback_host(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// The environment, addresses, origins and connection bounds.
pub(super) fn validate_base(raw: &RawServer, problems: &mut Vec<Problem>) -> ServerBase {
    let environment = environment(raw.environment.as_deref(), problems);
    let listen = listen(raw.listen.as_deref(), problems);
    let public_url = public_url(raw.public_url.as_deref(), environment, listen, problems);
    let allowed_origins = allowed_origins(&raw.allowed_origins, problems);
    let listener = listener(raw, problems);
    ServerBase {
        environment,
        listen,
        public_url,
        allowed_origins,
        listener,
    }
}

/// The rest of `[server]`, which judges URLs by the policy of the base.
pub(super) fn finish(
    raw: RawServer,
    base: ServerBase,
    trusted_proxies: Vec<Cidr>,
    problems: &mut Vec<Problem>,
) -> ServerConfig {
    let policy = RedirectPolicy {
        public_url: &base.public_url,
        allowed_origins: &base.allowed_origins,
    };
    let post_logout_url = raw
        .post_logout_url
        .as_deref()
        .and_then(|u| post_logout_url(&policy, u, problems));
    let same_site = same_site(raw.same_site.as_deref(), &base.public_url, problems);
    ServerConfig {
        listen: base.listen,
        example_app: raw
            .example_app
            .unwrap_or(base.environment == Environment::Development),
        public_url: base.public_url,
        allowed_origins: base.allowed_origins,
        environment: base.environment,
        post_logout_url,
        same_site,
        trusted_proxies,
        listener: base.listener,
    }
}

fn environment(given: Option<&str>, problems: &mut Vec<Problem>) -> Environment {
    // The unsafe mode is asked for by name: a deployment that forgets the key is production.
    match given.unwrap_or("production") {
        "development" => Environment::Development,
        "production" => Environment::Production,
        other => {
            problem(
                problems,
                "server.environment",
                format!("`{other}` is not an environment"),
                "use \"development\" or \"production\"",
            );
            Environment::Production
        }
    }
}

fn listen(given: Option<&str>, problems: &mut Vec<Problem>) -> SocketAddr {
    match given.unwrap_or("127.0.0.1:8080").parse::<SocketAddr>() {
        Ok(a) => a,
        Err(_) => {
            problem(
                problems,
                "server.listen",
                "not an address",
                "use IP:PORT, e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\"",
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    }
}

fn public_url(
    given: Option<&str>,
    environment: Environment,
    listen: SocketAddr,
    problems: &mut Vec<Problem>,
) -> Url {
    let production = environment == Environment::Production;
    match given {
        None => {
            if production {
                problem(
                    problems,
                    "server.public_url",
                    "missing: production needs the https URL browsers reach the broker at",
                    "set it, e.g. \"https://auth.example.com\"",
                );
            }
            let u = format!("http://{listen}");
            Url::parse(&u).ok()
        }
        Some(s) => given_public_url(s, production, problems),
    }
    .map(|mut u| {
        // A base without a trailing slash joins predictably.
        let path = u.path().trim_end_matches('/').to_string();
        u.set_path(&path);
        u
    })
    .unwrap_or_else(|| Url::parse("http://127.0.0.1:8080").unwrap_or_else(|_| unreachable_url()))
}

/// A written public URL: https, or plain http on a loopback host outside production.
fn given_public_url(s: &str, production: bool, problems: &mut Vec<Problem>) -> Option<Url> {
    let key = "server.public_url";
    match Url::parse(s) {
        Ok(u) if u.query().is_some() || u.fragment().is_some() => {
            problem(
                problems,
                key,
                "must not carry a query or fragment",
                "use the bare base URL, e.g. \"https://auth.example.com\"",
            );
            None
        }
        Ok(u) if u.scheme() == "https" => Some(u),
        Ok(u) if u.scheme() == "http" => {
            if production {
                problem(
                    problems,
                    key,
                    "plain http in production",
                    "serve the broker over https (a TLS-terminating proxy in front) and set an https URL",
                );
            } else if !is_loopback_host(&u) {
                problem(
                    problems,
                    key,
                    "plain http is only accepted for a loopback host",
                    "use https, or http://127.0.0.1:PORT / http://localhost:PORT for local development",
                );
            }
            Some(u)
        }
        Ok(_) | Err(_) => {
            problem(
                problems,
                key,
                format!("`{s}` is not an http(s) URL"),
                "use the URL browsers reach the broker at, e.g. \"https://auth.example.com\"",
            );
            None
        }
    }
}

fn unreachable_url() -> Url {
    // Only reached if a literal constant fails to parse, which it does not.
    Url::parse("http://127.0.0.1/").unwrap_or_else(|_| std::process::abort())
}

fn allowed_origins(given: &[String], problems: &mut Vec<Problem>) -> Vec<String> {
    let mut allowed_origins = Vec::new();
    for (i, o) in given.iter().enumerate() {
        let key = format!("server.allowed_origins[{i}]");
        match Url::parse(o) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.origin().ascii_serialization() == o.trim_end_matches('/') =>
            {
                allowed_origins.push(u.origin().ascii_serialization());
            }
            _ => problem(
                problems,
                key,
                format!("`{o}` is not an origin"),
                "write scheme://host[:port] with no path, e.g. \"https://app.example.com\"",
            ),
        }
    }
    allowed_origins
}

fn listener(raw: &RawServer, problems: &mut Vec<Problem>) -> ListenerConfig {
    let defaults = ListenerConfig::default();
    ListenerConfig {
        header_read_timeout: duration(
            problems,
            "server.header_read_timeout",
            &raw.header_read_timeout,
            defaults.header_read_timeout,
        ),
        keep_alive_timeout: duration(
            problems,
            "server.keep_alive_timeout",
            &raw.keep_alive_timeout,
            defaults.keep_alive_timeout,
        ),
        max_connections: match raw.max_connections {
            None => defaults.max_connections,
            Some(n) if n > 0 => n,
            Some(_) => {
                problem(
                    problems,
                    "server.max_connections",
                    "must be at least 1",
                    "leave it out for the default of 10000",
                );
                defaults.max_connections
            }
        },
    }
}

fn post_logout_url(
    policy: &RedirectPolicy<'_>,
    given: &str,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match policy.judge(given) {
        Ok(url) => Some(url.to_string()),
        Err(e) => {
            problem(
                problems,
                "server.post_logout_url",
                format!("`{}`: {e}", given.escape_debug()),
                "use the exact URL of a page of your app whose origin is in server.allowed_origins (or a path on the broker)",
            );
            None
        }
    }
}

fn same_site(given: Option<&str>, public_url: &Url, problems: &mut Vec<Problem>) -> SameSitePolicy {
    match given.unwrap_or("lax") {
        "lax" => SameSitePolicy::Lax,
        "strict" => SameSitePolicy::Strict,
        "none" => {
            if public_url.scheme() != "https" {
                problem(
                    problems,
                    "server.same_site",
                    "\"none\" needs an https public_url (browsers drop SameSite=None cookies without Secure)",
                    "serve the broker over https, or use \"lax\" with the app on the broker's site",
                );
            }
            SameSitePolicy::None
        }
        other => {
            problem(
                problems,
                "server.same_site",
                format!("`{other}` is not a SameSite value"),
                "use \"lax\", \"strict\" or \"none\"",
            );
            SameSitePolicy::Lax
        }
    }
}
