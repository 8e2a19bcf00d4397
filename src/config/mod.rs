//! Typed configuration: a TOML file, overridden by `BROKER_<SECTION>__<KEY>` environment variables,
//! then validated into [`Config`]. Validation reports every problem at once, each with its key and a fix.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

mod frontend;
mod limits;
mod operations;
mod provider;

pub use frontend::{RouteConfig, TokensConfig};
pub use limits::{LimitsConfig, Rate, parse_rate};
pub use operations::{AdminConfig, AuditConfig, IdentityConfig, LinkBy};
pub use provider::{
    ClaimMapping, DevUser, FirebaseSettings, ProviderConfig, ProviderKind, default_dev_users,
};

pub const ENV_PREFIX: &str = "BROKER_";

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (fix: {})", self.key, self.message, self.fix)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the configuration has {} problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub session: SessionConfig,
    pub store: StoreConfig,
    pub sessions: Option<SessionStoreConfig>,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub tokens: TokensConfig,
    /// Proxied prefixes, longest first.
    pub routes: Vec<RouteConfig>,
    /// The key ring that seals provider tokens; `None` only in development (an ephemeral key is
    /// made at start).
    pub keys: Option<KeysConfig>,
    /// The admin API's token; `None`: the admin API is off.
    pub admin: Option<AdminConfig>,
    pub identity: IdentityConfig,
    pub audit: AuditConfig,
    /// `[limits]`: request rates per client address, logins in flight per browser.
    pub limits: LimitsConfig,
}

/// `[keys]`: `current` seals; every key in `ring` opens. Values are base64url 32-byte keys, or
/// `file:PATH` to read one from a file.
#[derive(Clone)]
pub struct KeysConfig {
    pub current: String,
    pub ring: BTreeMap<String, String>,
}

impl fmt::Debug for KeysConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeysConfig")
            .field("current", &self.current)
            .field("key_ids", &self.ring.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeys {
    current: Option<String>,
    #[serde(default)]
    ring: BTreeMap<String, String>,
}

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
    pub trusted_proxies: Vec<crate::client_info::Cidr>,
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
    pub fn redirect_policy(&self) -> crate::redirect::RedirectPolicy<'_> {
        crate::redirect::RedirectPolicy {
            public_url: &self.public_url,
            allowed_origins: &self.allowed_origins,
        }
    }

    /// `{public_url}{path}` with `path` starting at `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub idle_timeout: Duration,
    pub absolute_lifetime: Duration,
    pub login_timeout: Duration,
    /// Refresh the provider access token when it expires within this margin.
    pub refresh_margin: Duration,
    pub on_refresh_failure: RefreshFailurePolicy,
    /// At most this many live sessions per user: a login beyond it ends the oldest.
    pub max_per_user: Option<usize>,
}

/// What a refresh that fails for a passing reason (timeout, 5xx) does to the local session. A
/// definitive `invalid_grant` always ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshFailurePolicy {
    /// End the local session at once.
    End,
    /// Keep it, retrying with backoff, until the provider access token has actually expired.
    KeepUntilExpiry,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Postgres: the schema that holds the broker's tables (so brokers can share a server).
    pub schema: Option<String>,
}

/// `[sessions]`: session records in Redis instead of the SQL store.
#[derive(Clone)]
pub struct SessionStoreConfig {
    /// `redis://`, `rediss://`, `redis-cluster://` or `redis-sentinel://`.
    pub url: String,
    /// Every key starts with this, so brokers can share a Redis.
    pub prefix: String,
    /// Keep records read for the session check in memory while Redis tracks them for us, each
    /// answered after a fence (on by default; needs Redis 6 or later, not used on a Cluster).
    pub local_cache: bool,
}

impl fmt::Debug for SessionStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStoreConfig")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("local_cache", &self.local_cache)
            .finish()
    }
}

// ---- raw, as written ------------------------------------------------------------------------

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<String>,
    public_url: Option<String>,
    #[serde(default)]
    allowed_origins: Vec<String>,
    environment: Option<String>,
    post_logout_url: Option<String>,
    same_site: Option<String>,
    example_app: Option<bool>,
    header_read_timeout: Option<String>,
    keep_alive_timeout: Option<String>,
    max_connections: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSession {
    idle_timeout: Option<String>,
    absolute_lifetime: Option<String>,
    login_timeout: Option<String>,
    refresh_margin: Option<String>,
    on_refresh_failure: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStore {
    url: Option<String>,
    schema: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSessions {
    url: Option<String>,
    prefix: Option<String>,
    local_cache: Option<bool>,
}

const SECTIONS: &[&str] = &[
    "server",
    "session",
    "store",
    "providers",
    "keys",
    "tokens",
    "routes",
    "admin",
    "identity",
    "audit",
    "limits",
];

/// Reads the file at `path`, applies environment overrides from `env`, and validates.
pub fn load(
    path: &std::path::Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError(vec![Problem {
            key: "(file)".into(),
            message: format!("cannot read {}: {e}", path.display()),
            fix: "pass the path of a readable TOML file with --config".into(),
        }])
    })?;
    from_toml_str(&text, env)
}

/// Parses TOML text, applies environment overrides, and validates.
pub fn from_toml_str(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError(vec![Problem {
            key: "(file)".into(),
            message: format!("not valid TOML: {}", e.message()),
            fix: format!(
                "correct the syntax near {}",
                e.span()
                    .map_or("the start".into(), |s| format!("byte {}", s.start))
            ),
        }])
    })?;
    let mut problems = Vec::new();
    apply_env_overrides(&mut table, env, &mut problems);
    validate(table, problems)
}

/// `BROKER_PROVIDERS__CORP__CLIENT_SECRET=x` sets `providers.corp.client_secret = "x"`. A value that
/// reads as a TOML array, inline table or boolean is taken as one; anything else is a string.
fn apply_env_overrides(
    table: &mut toml::Table,
    env: impl IntoIterator<Item = (String, String)>,
    problems: &mut Vec<Problem>,
) {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    vars.sort();
    for (name, raw) in vars {
        let path: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|s| s.to_ascii_lowercase())
            .collect();
        if path.len() < 2
            || path.iter().any(|s| s.is_empty())
            || !SECTIONS.contains(&path[0].as_str())
        {
            // Not ours to interpret (BROKER_LOG, say) unless it names a known section.
            if SECTIONS.contains(&path[0].as_str()) {
                problems.push(Problem {
                    key: name.clone(),
                    message: "malformed override name".into(),
                    fix: "use BROKER_<SECTION>__<KEY>, e.g. BROKER_SERVER__PUBLIC_URL".into(),
                });
            }
            continue;
        }
        let value = parse_env_value(&raw);
        if let Err(seg) = set_path(table, &path, value) {
            problems.push(Problem {
                key: name.clone(),
                message: format!("`{seg}` is not a table in the file, so it cannot hold keys"),
                fix: "remove the override or the conflicting key in the file".into(),
            });
        }
    }
}

/// Sets `path` in `table`, creating tables on the way; on a non-table in the way, returns its name.
fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Ok(()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [first, rest @ ..] => match table
            .entry(first.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        {
            toml::Value::Table(t) => set_path(t, rest, value),
            _ => Err(first.clone()),
        },
    }
}

fn parse_env_value(raw: &str) -> toml::Value {
    let trimmed = raw.trim();
    let structured = trimmed.starts_with('[')
        || trimmed.starts_with('{')
        || trimmed == "true"
        || trimmed == "false";
    if structured
        && let Ok(t) = format!("v = {trimmed}").parse::<toml::Table>()
        && let Some(v) = t.get("v")
    {
        return v.clone();
    }
    toml::Value::String(raw.to_string())
}

fn section<T: for<'de> Deserialize<'de> + Default>(
    table: &mut toml::Table,
    key: &str,
    problems: &mut Vec<Problem>,
) -> T {
    match table.remove(key) {
        None => T::default(),
        Some(v) => match v.try_into::<T>() {
            Ok(t) => t,
            Err(e) => {
                problems.push(Problem {
                    key: key.into(),
                    message: e.message().trim().to_string(),
                    fix: format!("see the [{key}] section in README.md for the accepted keys"),
                });
                T::default()
            }
        },
    }
}

fn problem(
    problems: &mut Vec<Problem>,
    key: impl Into<String>,
    message: impl Into<String>,
    fix: impl Into<String>,
) {
    problems.push(Problem {
        key: key.into(),
        message: message.into(),
        fix: fix.into(),
    });
}

fn validate(mut table: toml::Table, mut problems: Vec<Problem>) -> Result<Config, ConfigError> {
    let ops = operations::take(&mut table, &mut problems);
    let limits = limits::take(&mut table, &mut problems);
    let server: RawServer = section(&mut table, "server", &mut problems);
    let session: RawSession = section(&mut table, "session", &mut problems);
    let store: RawStore = section(&mut table, "store", &mut problems);
    // A [sessions] table that does not parse is reported once, not again as missing keys.
    let before = problems.len();
    let raw_sessions: Option<RawSessions> = table
        .contains_key("sessions")
        .then(|| section(&mut table, "sessions", &mut problems))
        .filter(|_| problems.len() == before);
    let raw_keys: Option<RawKeys> = table
        .contains_key("keys")
        .then(|| section(&mut table, "keys", &mut problems));
    let raw_providers = table.remove("providers");
    let raw_tokens: frontend::RawTokens = section(&mut table, "tokens", &mut problems);
    let raw_routes = table.remove("routes");
    for key in table.keys() {
        problem(
            &mut problems,
            key.clone(),
            "unknown section",
            format!("remove it; the sections are {}", SECTIONS.join(", ")),
        );
    }

    // The unsafe mode is asked for by name: a deployment that forgets the key is production.
    let environment = match server.environment.as_deref().unwrap_or("production") {
        "development" => Environment::Development,
        "production" => Environment::Production,
        other => {
            problem(
                &mut problems,
                "server.environment",
                format!("`{other}` is not an environment"),
                "use \"development\" or \"production\"",
            );
            Environment::Production
        }
    };

    let listen = match server
        .listen
        .as_deref()
        .unwrap_or("127.0.0.1:8080")
        .parse::<SocketAddr>()
    {
        Ok(a) => a,
        Err(_) => {
            problem(
                &mut problems,
                "server.listen",
                "not an address",
                "use IP:PORT, e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\"",
            );
            SocketAddr::from(([127, 0, 0, 1], 8080))
        }
    };

    let public_url = match server.public_url.as_deref() {
        None => {
            if environment == Environment::Production {
                problem(
                    &mut problems,
                    "server.public_url",
                    "missing: production needs the https URL browsers reach the broker at",
                    "set it, e.g. \"https://auth.example.com\"",
                );
            }
            let u = format!("http://{listen}");
            Url::parse(&u).ok()
        }
        Some(s) => match Url::parse(s) {
            Ok(u) if u.query().is_some() || u.fragment().is_some() => {
                problem(&mut problems, "server.public_url", "must not carry a query or fragment", "use the bare base URL, e.g. \"https://auth.example.com\"");
                None
            }
            Ok(u) if u.scheme() == "https" => Some(u),
            Ok(u) if u.scheme() == "http" => {
                if environment == Environment::Production {
                    problem(&mut problems, "server.public_url", "plain http in production", "serve the broker over https (a TLS-terminating proxy in front) and set an https URL");
                } else if !is_loopback_host(&u) {
                    problem(&mut problems, "server.public_url", "plain http is only accepted for a loopback host", "use https, or http://127.0.0.1:PORT / http://localhost:PORT for local development");
                }
                Some(u)
            }
            Ok(_) | Err(_) => {
                problem(&mut problems, "server.public_url", format!("`{s}` is not an http(s) URL"), "use the URL browsers reach the broker at, e.g. \"https://auth.example.com\"");
                None
            }
        },
    }
    .map(|mut u| {
        // A base without a trailing slash joins predictably.
        let path = u.path().trim_end_matches('/').to_string();
        u.set_path(&path);
        u
    })
    .unwrap_or_else(|| Url::parse("http://127.0.0.1:8080").unwrap_or_else(|_| unreachable_url()));

    let mut allowed_origins = Vec::new();
    for (i, o) in server.allowed_origins.iter().enumerate() {
        let key = format!("server.allowed_origins[{i}]");
        match Url::parse(o) {
            Ok(u)
                if matches!(u.scheme(), "http" | "https")
                    && u.origin().ascii_serialization() == o.trim_end_matches('/') =>
            {
                allowed_origins.push(u.origin().ascii_serialization());
            }
            _ => problem(
                &mut problems,
                key,
                format!("`{o}` is not an origin"),
                "write scheme://host[:port] with no path, e.g. \"https://app.example.com\"",
            ),
        }
    }

    let duration =
        |problems: &mut Vec<Problem>, key: &str, v: &Option<String>, default: Duration| match v {
            None => default,
            Some(s) => match parse_duration(s) {
                Some(d) if !d.is_zero() => d,
                _ => {
                    problem(
                        problems,
                        key,
                        format!("`{s}` is not a duration"),
                        "write a number with a unit: s, m, h or d, e.g. \"30m\" or \"7d\"",
                    );
                    default
                }
            },
        };
    let listener_defaults = ListenerConfig::default();
    let listener = ListenerConfig {
        header_read_timeout: duration(
            &mut problems,
            "server.header_read_timeout",
            &server.header_read_timeout,
            listener_defaults.header_read_timeout,
        ),
        keep_alive_timeout: duration(
            &mut problems,
            "server.keep_alive_timeout",
            &server.keep_alive_timeout,
            listener_defaults.keep_alive_timeout,
        ),
        max_connections: match server.max_connections {
            None => listener_defaults.max_connections,
            Some(n) if n > 0 => n,
            Some(_) => {
                problem(
                    &mut problems,
                    "server.max_connections",
                    "must be at least 1",
                    "leave it out for the default of 10000",
                );
                listener_defaults.max_connections
            }
        },
    };
    let idle_timeout = duration(
        &mut problems,
        "session.idle_timeout",
        &session.idle_timeout,
        Duration::from_secs(30 * 60),
    );
    let absolute_lifetime = duration(
        &mut problems,
        "session.absolute_lifetime",
        &session.absolute_lifetime,
        Duration::from_secs(7 * 86400),
    );
    let login_timeout = duration(
        &mut problems,
        "session.login_timeout",
        &session.login_timeout,
        Duration::from_secs(10 * 60),
    );
    let refresh_margin = duration(
        &mut problems,
        "session.refresh_margin",
        &session.refresh_margin,
        Duration::from_secs(60),
    );
    let on_refresh_failure = match session
        .on_refresh_failure
        .as_deref()
        .unwrap_or("keep_until_expiry")
    {
        "end" => RefreshFailurePolicy::End,
        "keep_until_expiry" => RefreshFailurePolicy::KeepUntilExpiry,
        other => {
            problem(
                &mut problems,
                "session.on_refresh_failure",
                format!("`{other}` is not a policy"),
                "use \"end\" or \"keep_until_expiry\"",
            );
            RefreshFailurePolicy::KeepUntilExpiry
        }
    };
    if idle_timeout > absolute_lifetime {
        problem(
            &mut problems,
            "session.idle_timeout",
            "longer than session.absolute_lifetime",
            "make the idle timeout shorter than the absolute lifetime",
        );
    }

    let store_url = store
        .url
        .unwrap_or_else(|| "sqlite://data/broker.db".into());
    let is_postgres =
        store_url.starts_with("postgres://") || store_url.starts_with("postgresql://");
    if !store_url.starts_with("sqlite:") && !is_postgres {
        problem(
            &mut problems,
            "store.url",
            format!("`{}` is not a supported store", redact_url(&store_url)),
            "use sqlite://PATH (e.g. \"sqlite://data/broker.db\") or postgres://USER@HOST/DB",
        );
    }
    match store.schema.as_deref() {
        Some(_) if !is_postgres => problem(
            &mut problems,
            "store.schema",
            "only a Postgres store has schemas",
            "remove it, or use a postgres:// store.url",
        ),
        Some(name) if !crate::store::valid_schema(name) => problem(
            &mut problems,
            "store.schema",
            format!("`{name}` is not a usable schema name"),
            "use lowercase letters, digits and _ (e.g. \"oidc_broker\")",
        ),
        _ => {}
    }
    let sessions = raw_sessions.and_then(|raw| {
        let url = match raw.url {
            Some(u)
                if ["redis://", "rediss://", "redis-cluster://", "redis-sentinel://"]
                    .iter()
                    .any(|p| u.starts_with(p)) =>
            {
                u
            }
            Some(u) => {
                problem(
                    &mut problems,
                    "sessions.url",
                    format!("`{}` is not a Redis URL", redact_url(&u)),
                    "use redis://HOST:6379/0 (or rediss://, redis-cluster://, redis-sentinel://)",
                );
                return None;
            }
            None => {
                problem(
                    &mut problems,
                    "sessions.url",
                    "missing",
                    "name the Redis that holds the sessions, or remove [sessions] to keep them in the SQL store",
                );
                return None;
            }
        };
        let prefix = raw.prefix.unwrap_or_else(|| "oidc-broker:".into());
        if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
            problem(
                &mut problems,
                "sessions.prefix",
                "must be 1 to 64 printable characters without spaces",
                "use e.g. \"oidc-broker:\" or \"app1:\"",
            );
            return None;
        }
        Some(SessionStoreConfig {
            url,
            prefix,
            local_cache: raw.local_cache.unwrap_or(true),
        })
    });

    let mut providers = BTreeMap::new();
    match raw_providers {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (id, value) in t {
                let key = format!("providers.{id}");
                if id.is_empty()
                    || !id.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                    })
                {
                    problem(
                        &mut problems,
                        key.clone(),
                        "provider ids are lowercase letters, digits, `_` and `-`",
                        "rename the table, e.g. [providers.corp]",
                    );
                    continue;
                }
                let raw: provider::RawProvider = match value.try_into() {
                    Ok(r) => r,
                    Err(e) => {
                        problem(
                            &mut problems,
                            key,
                            e.message().trim().to_string(),
                            "see providers/ for an example of this kind",
                        );
                        continue;
                    }
                };
                if let Some(p) = provider::validate(&id, raw, environment, &mut problems) {
                    providers.insert(id, p);
                }
            }
        }
        Some(_) => problem(
            &mut problems,
            "providers",
            "must be a table of providers",
            "write one [providers.ID] table per provider",
        ),
    }
    if providers.is_empty() && !problems.iter().any(|p| p.key.starts_with("providers")) {
        problem(
            &mut problems,
            "providers",
            "no provider is configured",
            "add a [providers.ID] table; providers/dev.toml is a start",
        );
    }

    let post_logout_url = server
        .post_logout_url
        .as_deref()
        .and_then(|u| {
            let policy = crate::redirect::RedirectPolicy {
                public_url: &public_url,
                allowed_origins: &allowed_origins,
            };
            match policy.judge(u) {
                Ok(url) => Some(url.to_string()),
                Err(e) => {
                    problem(
                        &mut problems,
                        "server.post_logout_url",
                        format!("`{}`: {e}", u.escape_debug()),
                        "use the exact URL of a page of your app whose origin is in server.allowed_origins (or a path on the broker)",
                    );
                    None
                }
            }
        });
    let same_site = match server.same_site.as_deref().unwrap_or("lax") {
        "lax" => SameSitePolicy::Lax,
        "strict" => SameSitePolicy::Strict,
        "none" => {
            if public_url.scheme() != "https" {
                problem(
                    &mut problems,
                    "server.same_site",
                    "\"none\" needs an https public_url (browsers drop SameSite=None cookies without Secure)",
                    "serve the broker over https, or use \"lax\" with the app on the broker's site",
                );
            }
            SameSitePolicy::None
        }
        other => {
            problem(
                &mut problems,
                "server.same_site",
                format!("`{other}` is not a SameSite value"),
                "use \"lax\", \"strict\" or \"none\"",
            );
            SameSitePolicy::Lax
        }
    };
    let tokens = frontend::validate_tokens(raw_tokens, &public_url, &mut problems);
    let mut routes = frontend::validate_routes(raw_routes, &tokens.audience, &mut problems);
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    let keys = validate_keys(raw_keys, environment, &mut problems);
    if !problems.is_empty() {
        if server.environment.is_none() {
            problem(
                &mut problems,
                "server.environment",
                "not set, so the production rules above apply (https, a lasting [keys] ring, no dev provider, no loopback calls)",
                "fix the problems above, or for a local test setup only, set environment = \"development\" in [server]",
            );
        }
        return Err(ConfigError(problems));
    }
    Ok(Config {
        keys,
        admin: ops.admin,
        identity: ops.identity,
        audit: ops.audit,
        limits,
        server: ServerConfig {
            listen,
            public_url,
            allowed_origins,
            environment,
            post_logout_url,
            same_site,
            example_app: server
                .example_app
                .unwrap_or(environment == Environment::Development),
            trusted_proxies: ops.trusted_proxies,
            listener,
        },
        session: SessionConfig {
            idle_timeout,
            absolute_lifetime,
            login_timeout,
            refresh_margin,
            on_refresh_failure,
            max_per_user: ops.max_per_user,
        },
        store: StoreConfig {
            url: store_url,
            schema: store.schema,
        },
        sessions,
        providers,
        tokens,
        routes,
    })
}

fn unreachable_url() -> Url {
    // Only reached if a literal constant fails to parse, which it does not.
    Url::parse("http://127.0.0.1/").unwrap_or_else(|_| std::process::abort())
}

pub fn is_loopback_host(u: &Url) -> bool {
    match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn validate_keys(
    raw: Option<RawKeys>,
    environment: Environment,
    problems: &mut Vec<Problem>,
) -> Option<KeysConfig> {
    let Some(raw) = raw else {
        if environment == Environment::Production {
            problem(
                problems,
                "keys",
                "missing: provider tokens are sealed at rest and production needs a lasting key",
                "run `oidc-broker keys generate` and add its [keys] lines (or BROKER_KEYS__CURRENT / BROKER_KEYS__RING__<ID>)",
            );
        }
        return None;
    };
    let mut ring = BTreeMap::new();
    for (id, value) in raw.ring {
        let value = match value.strip_prefix("file:") {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(v) => v.trim().to_string(),
                Err(e) => {
                    problem(
                        problems,
                        format!("keys.ring.{id}"),
                        format!("cannot read {path}: {e}"),
                        "point file: at a readable file holding one key",
                    );
                    continue;
                }
            },
            None => value,
        };
        ring.insert(id, value);
    }
    let Some(current) = raw.current else {
        problem(
            problems,
            "keys.current",
            "missing",
            "name the key that seals, e.g. current = \"k1\"",
        );
        return None;
    };
    // Building the ring checks every key (length, encoding) without keeping it.
    if let Err(e) = crate::tokens::seal::KeyRing::new(&current, &ring) {
        problem(
            problems,
            "keys",
            e,
            "generate keys with `oidc-broker keys generate`",
        );
        return None;
    }
    Some(KeysConfig { current, ring })
}

/// `90s`, `30m`, `12h`, `7d`, or a sum such as `1h30m`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(
                num.unwrap_or(0)
                    .checked_mul(10)?
                    .checked_add(u64::from(d))?,
            );
        } else {
            let unit = match c {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86400,
                _ => return None,
            };
            total = total.checked_add(num.take()?.checked_mul(unit)?)?;
        }
    }
    if num.is_some() {
        return None;
    }
    Some(Duration::from_secs(total))
}

/// A store URL for messages: the password part is never shown.
pub fn redact_url(s: &str) -> String {
    match Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const MINIMAL: &str = r#"
        [server]
        environment = "development"
        [providers.corp]
        kind = "oidc"
        issuer = "https://idp.example.com"
        client_id = "abc"
        client_secret = "from-file"
    "#;

    #[test]
    fn sessions_local_cache_is_on_unless_turned_off_and_a_bad_value_is_one_problem() {
        let redis = "\n[sessions]\nurl = \"redis://127.0.0.1:6379/0\"\n";
        let c = from_toml_str(&format!("{MINIMAL}{redis}"), Vec::new()).unwrap();
        assert!(c.sessions.unwrap().local_cache);
        let c = from_toml_str(
            &format!("{MINIMAL}{redis}local_cache = false\n"),
            Vec::new(),
        );
        assert!(!c.unwrap().sessions.unwrap().local_cache);
        let Err(ConfigError(problems)) = from_toml_str(
            &format!("{MINIMAL}{redis}local_cache = \"yes\"\n"),
            Vec::new(),
        ) else {
            panic!("a string for a boolean was accepted");
        };
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].key, "sessions");
    }

    #[test]
    fn durations_parse_with_units_and_sums() {
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(7 * 86400)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30"), None);
        assert_eq!(parse_duration("m"), None);
        assert_eq!(parse_duration("3w"), None);
    }

    #[test]
    fn environment_overrides_the_file() {
        let c = from_toml_str(
            MINIMAL,
            env(&[("BROKER_PROVIDERS__CORP__CLIENT_SECRET", "from-env")]),
        )
        .unwrap();
        assert_eq!(
            c.providers["corp"].client_secret.as_deref(),
            Some("from-env")
        );
    }

    #[test]
    fn environment_can_create_keys_and_arrays() {
        let c = from_toml_str(
            MINIMAL,
            env(&[
                (
                    "BROKER_SERVER__ALLOWED_ORIGINS",
                    r#"["https://app.example.com"]"#,
                ),
                ("BROKER_SESSION__IDLE_TIMEOUT", "5m"),
                ("BROKER_LOG", "debug"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.server.allowed_origins,
            vec!["https://app.example.com".to_string()]
        );
        assert_eq!(c.session.idle_timeout, Duration::from_secs(300));
    }

    #[test]
    fn every_problem_is_reported_with_its_key() {
        let err = from_toml_str(
            r#"
            [server]
            allowed_origins = ["https://app.example.com/path"]
            [session]
            idle_timeout = "soon"
            [providers.corp]
            kind = "oidc"
            client_id = "abc"
            "#,
            env(&[]),
        )
        .unwrap_err();
        let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"server.allowed_origins[0]"), "{keys:?}");
        assert!(keys.contains(&"session.idle_timeout"), "{keys:?}");
        assert!(keys.contains(&"providers.corp.issuer"), "{keys:?}");
        assert!(keys.contains(&"providers.corp.client_secret"), "{keys:?}");
    }

    #[test]
    fn dev_provider_is_refused_in_production() {
        let err = from_toml_str(
            "[server]\nenvironment = \"production\"\npublic_url = \"https://auth.example.com\"\n[providers.dev]\nkind = \"dev\"\n",
            env(&[]),
        )
        .unwrap_err();
        assert!(err.0.iter().any(|p| p.key == "providers.dev.kind"), "{err}");
    }

    #[test]
    fn plain_http_public_url_needs_loopback() {
        let err = from_toml_str(
            "[server]\npublic_url = \"http://auth.example.com\"\n[providers.dev]\nkind = \"dev\"\n",
            env(&[]),
        )
        .unwrap_err();
        assert!(err.0.iter().any(|p| p.key == "server.public_url"), "{err}");
    }
}
