//! Typed configuration: a TOML file, overridden by `BROKER_<SECTION>__<KEY>` environment variables,
//! then validated into [`Config`]. Validation reports every problem at once, each with its key and a fix.
//!
//! A leaf of the crate: it imports nothing from it but [`crate::secret`]. Each section has its own
//! file with its types and checks; this file reads the sections in order and assembles them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

pub mod cidr;
mod client;
mod env;
mod frontend;
mod keys;
mod limits;
mod observability;
mod operations;
mod problem;
mod provider;
mod server;
mod session;
mod store;
mod trace;

pub use cidr::{Cidr, CidrError};
pub use client::{ClientAuth, ClientConfig, SCOPES};
pub use env::ENV_PREFIX;
pub use frontend::{HOP_BY_HOP, ProviderTokenTo, RouteConfig, TokensConfig, reserved_header};
pub use keys::{KeysConfig, decode_key};
pub use limits::{LimitsConfig, Rate, RateError, parse_rate};
pub use observability::{LogConfig, LogFormat, MetricsConfig};
pub use operations::{AdminConfig, AuditConfig, IdentityConfig, LinkBy};
pub use problem::{ConfigError, Problem};
pub use provider::{
    ClaimMapping, DevUser, FirebaseSettings, ProviderConfig, ProviderKind, default_dev_users,
};
pub use server::{ListenerConfig, SameSitePolicy, ServerConfig, is_loopback_host};
pub use session::{RefreshFailurePolicy, SessionConfig};
pub use store::{SessionStoreConfig, StoreConfig, redact_url, valid_schema};
pub use trace::TraceConfig;

use problem::problem;

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
    /// `[clients.ID]`: apps that sign in through the broker as an OpenID Provider; none: that
    /// mode is off.
    pub clients: BTreeMap<String, ClientConfig>,
    /// `[log]`: format, level, the access log.
    pub log: LogConfig,
    /// `[metrics]`: the Prometheus endpoint; none: off.
    pub metrics: Option<MetricsConfig>,
    /// `[trace]`: OpenTelemetry spans sent over OTLP; none: off.
    pub trace: Option<TraceConfig>,
}

const SECTIONS: &[&str] = &[
    "server",
    "session",
    "store",
    "sessions",
    "providers",
    "keys",
    "tokens",
    "routes",
    "admin",
    "identity",
    "audit",
    "limits",
    "clients",
    "log",
    "metrics",
    "trace",
];

/// Reads the file at `path`, applies environment overrides from `env`, and validates.
pub fn load(
    path: &std::path::Path,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::file(
            format!("cannot read {}: {e}", path.display()),
            "pass the path of a readable TOML file with --config".into(),
        )
    })?;
    from_toml_str(&text, env)
}

/// Parses TOML text, applies environment overrides, and validates.
pub fn from_toml_str(
    text: &str,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigError::file(
            format!("not valid TOML: {}", e.message()),
            format!(
                "correct the syntax near {}",
                e.span()
                    .map_or("the start".into(), |s| format!("byte {}", s.start))
            ),
        )
    })?;
    let mut problems = Vec::new();
    env::apply_env_overrides(&mut table, env, SECTIONS, &mut problems);
    validate(table, problems)
}

/// `table[key]` removed and read as `T`; a section that does not read is one problem.
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
                problem(
                    problems,
                    key,
                    e.message().trim().to_string(),
                    format!("see the [{key}] section in README.md for the accepted keys"),
                );
                T::default()
            }
        },
    }
}

/// The sections as written, taken out of the table in the order their problems are reported.
struct RawSections {
    server: server::RawServer,
    session: session::RawSession,
    store: store::RawStore,
    sessions: Option<store::RawSessions>,
    keys: Option<keys::RawKeys>,
    providers: Option<toml::Value>,
    tokens: frontend::RawTokens,
    routes: Option<toml::Value>,
    clients: Option<toml::Value>,
}

impl RawSections {
    fn take(table: &mut toml::Table, problems: &mut Vec<Problem>) -> Self {
        let server = section(table, "server", problems);
        let session = section(table, "session", problems);
        let store = section(table, "store", problems);
        // A [sessions] table that does not parse is reported once, not again as missing keys.
        let before = problems.len();
        let sessions = table
            .contains_key("sessions")
            .then(|| section(table, "sessions", problems))
            .filter(|_| problems.len() == before);
        let keys = table
            .contains_key("keys")
            .then(|| section(table, "keys", problems));
        let providers = table.remove("providers");
        let tokens = section(table, "tokens", problems);
        let routes = table.remove("routes");
        let clients = table.remove("clients");
        for key in table.keys() {
            problem(
                problems,
                key.clone(),
                "unknown section",
                format!("remove it; the sections are {}", SECTIONS.join(", ")),
            );
        }
        RawSections {
            server,
            session,
            store,
            sessions,
            keys,
            providers,
            tokens,
            routes,
            clients,
        }
    }
}

fn validate(mut table: toml::Table, mut problems: Vec<Problem>) -> Result<Config, ConfigError> {
    let problems = &mut problems;
    let ops = operations::take(&mut table, problems);
    let limits = limits::take(&mut table, problems);
    let (log, metrics) = observability::take(&mut table, problems);
    let trace = trace::take(&mut table, problems);
    let raw = RawSections::take(&mut table, problems);
    let environment_given = raw.server.environment.is_some();

    let base = server::validate_base(&raw.server, problems);
    let environment = base.environment;
    let session = session::validate(raw.session, ops.max_per_user, problems);
    let store = store::validate_store(raw.store, problems);
    let sessions = raw
        .sessions
        .and_then(|raw| store::validate_sessions(raw, problems));
    let providers = provider::validate_all(raw.providers, environment, problems);
    let tokens_public_url = base.public_url.clone();
    let server = server::finish(raw.server, base, ops.trusted_proxies, problems);
    let tokens = frontend::validate_tokens(raw.tokens, &tokens_public_url, problems);
    let mut routes = frontend::validate_routes(raw.routes, &tokens.audience, problems);
    routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
    let keys = keys::validate_keys(raw.keys, environment, problems);
    let clients = client::validate_all(
        raw.clients,
        environment,
        &providers,
        tokens.access_ttl,
        problems,
    );
    if !problems.is_empty() {
        if !environment_given {
            problem(
                problems,
                "server.environment",
                "not set, so the production rules above apply (https, a lasting [keys] ring, no dev provider, no loopback calls)",
                "fix the problems above, or for a local test setup only, set environment = \"development\" in [server]",
            );
        }
        return Err(ConfigError(std::mem::take(problems)));
    }
    Ok(Config {
        server,
        session,
        store,
        sessions,
        providers,
        tokens,
        routes,
        keys,
        admin: ops.admin,
        identity: ops.identity,
        audit: ops.audit,
        limits,
        clients,
        log,
        metrics,
        trace,
    })
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

/// A duration setting of `[server]` or `[session]`: `default` when not given; a value that is not a
/// duration (or is zero) is a problem, and `default` stands in for it.
fn duration(
    problems: &mut Vec<Problem>,
    key: &str,
    value: &Option<String>,
    default: Duration,
) -> Duration {
    match value {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

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
            c.providers["corp"]
                .client_secret
                .as_ref()
                .map(Secret::expose),
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
    fn sessions_in_redis_can_be_set_from_the_environment_alone() {
        let c = from_toml_str(
            MINIMAL,
            env(&[
                ("BROKER_SESSIONS__URL", "redis://redis.internal:6379/0"),
                ("BROKER_SESSIONS__PREFIX", "b:"),
            ]),
        )
        .unwrap();
        let sessions = c.sessions.expect("[sessions] from the environment");
        assert_eq!(sessions.prefix, "b:");
        let Err(ConfigError(problems)) =
            from_toml_str(MINIMAL, env(&[("BROKER_SESSIONS__URL", "bogus://")]))
        else {
            panic!("a bad session store URL from the environment was accepted");
        };
        assert!(
            problems.iter().any(|p| p.key.starts_with("sessions")),
            "{problems:?}"
        );
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

    /// Every provider kind, the admin API, a key ring, and store URLs with passwords.
    const FULL: &str = r#"
        [server]
        environment = "development"
        public_url = "http://127.0.0.1:8080"
        [store]
        url = "postgres://broker:pg-password-value@db.example.com/broker"
        schema = "broker"
        [sessions]
        url = "redis://:redis-password-value@127.0.0.1:6379/0"
        [admin]
        token = "admin-token-value-0123456789abcdef0123"
        [keys]
        current = "k1"
        [keys.ring]
        k1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
        [providers.corp]
        kind = "oidc"
        issuer = "https://idp.example.com"
        client_id = "corp-client"
        client_secret = "oidc-client-secret-value"
        [providers.a0]
        kind = "auth0"
        domain = "tenant.auth0.com"
        client_id = "a0-client"
        [providers.pool]
        kind = "cognito"
        region = "eu-west-1"
        user_pool_id = "eu-west-1_AbCdEfGhI"
        domain = "pool.auth.eu-west-1.amazoncognito.com"
        client_id = "pool-client"
        client_secret = "cognito-client-secret-value"
        [providers.fb]
        kind = "firebase"
        project_id = "demo-project"
        api_key = "public-web-api-key"
        [providers.dev]
        kind = "dev"
        client_secret = "dev-client-secret-value"
"#;

    #[test]
    fn debug_of_a_full_configuration_shows_no_secret() {
        const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
        let secrets = [
            "oidc-client-secret-value",
            "auth0-secret-from-env",
            "cognito-client-secret-value",
            "dev-client-secret-value",
            "admin-token-value-0123456789abcdef0123",
            "pg-password-value",
            "redis-password-value",
            KEY,
        ];
        let c = from_toml_str(
            FULL,
            env(&[(
                "BROKER_PROVIDERS__A0__CLIENT_SECRET",
                "auth0-secret-from-env",
            )]),
        )
        .unwrap();
        // Every secret was read, and is there for the code that uses it.
        let kinds: Vec<_> = c.providers.values().map(|p| p.kind.as_str()).collect();
        assert_eq!(kinds, ["auth0", "oidc", "dev", "firebase", "cognito"]);
        let client_secret = |id: &str| c.providers[id].client_secret.as_ref().map(Secret::expose);
        assert_eq!(client_secret("corp"), Some(secrets[0]));
        assert_eq!(client_secret("a0"), Some(secrets[1]));
        assert_eq!(client_secret("pool"), Some(secrets[2]));
        assert_eq!(client_secret("dev"), Some(secrets[3]));
        assert_eq!(client_secret("fb"), None);
        assert_eq!(c.admin.as_ref().map(|a| a.token.expose()), Some(secrets[4]));
        assert!(c.store.url.contains(secrets[5]));
        assert!(c.sessions.as_ref().unwrap().url.contains(secrets[6]));
        let key = c.keys.as_ref().unwrap().ring["k1"].expose();
        assert_eq!(key, &std::array::from_fn::<u8, 32, _>(|i| i as u8));

        for shown in [format!("{c:?}"), format!("{c:#?}")] {
            for secret in secrets {
                assert!(!shown.contains(secret), "`{secret}` in {shown}");
            }
            let key_bytes = format!("{key:?}");
            assert!(
                !shown.contains(&key_bytes[..20]),
                "the key's bytes in {shown}"
            );
            // What is not secret is still shown.
            for plain in ["corp-client", "db.example.com", "demo-project", "k1"] {
                assert!(shown.contains(plain), "`{plain}` missing from {shown}");
            }
        }
    }
}
