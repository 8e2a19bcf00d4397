//! What faces the frontend beyond the session cookie: `[tokens]` (token mode for WeWeb's Token Based
//! Auth plugin and broker JWTs) and `[routes."/prefix/"]` (the identity-forwarding reverse proxy).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::{Problem, parse_duration, problem};

/// `[tokens]`: broker-signed access tokens and broker refresh tokens.
#[derive(Debug, Clone)]
pub struct TokensConfig {
    /// The `aud` of broker access tokens; the public URL unless set.
    pub audience: String,
    pub access_ttl: Duration,
    /// Rotate broker refresh tokens at every use. Off by default: WeWeb's plugin keeps re-sending
    /// the first refresh token it was given.
    pub rotate_refresh_tokens: bool,
    /// With rotation, how long a replaced refresh token is still accepted.
    pub rotation_grace: Duration,
    /// How long the one-time code of a token-mode login can be traded.
    pub code_ttl: Duration,
    /// How long a signing key signs before a new one takes over.
    pub signing_key_lifetime: Duration,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTokens {
    audience: Option<String>,
    access_ttl: Option<String>,
    rotate_refresh_tokens: Option<bool>,
    rotation_grace: Option<String>,
    code_ttl: Option<String>,
    signing_key_lifetime: Option<String>,
}

fn duration_or(
    problems: &mut Vec<Problem>,
    key: &str,
    value: Option<&str>,
    default: Duration,
    max: Duration,
) -> Duration {
    let Some(s) = value else { return default };
    match parse_duration(s) {
        Some(d) if !d.is_zero() && d <= max => d,
        Some(d) if d > max => {
            problem(
                problems,
                key,
                format!("`{s}` is longer than the allowed {}s", max.as_secs()),
                format!("use at most {}s", max.as_secs()),
            );
            default
        }
        _ => {
            problem(
                problems,
                key,
                format!("`{s}` is not a duration"),
                "write a number with a unit: s, m, h or d, e.g. \"5m\"",
            );
            default
        }
    }
}

pub(super) fn validate_tokens(
    raw: RawTokens,
    public_url: &Url,
    problems: &mut Vec<Problem>,
) -> TokensConfig {
    let audience = match raw.audience {
        Some(a) if a.trim().is_empty() => {
            problem(
                problems,
                "tokens.audience",
                "empty",
                "remove it (the public URL is the default) or name your API, e.g. \"https://api.example.com\"",
            );
            String::new()
        }
        Some(a) => a,
        None => public_url.as_str().trim_end_matches('/').to_string(),
    };
    TokensConfig {
        audience,
        access_ttl: duration_or(
            problems,
            "tokens.access_ttl",
            raw.access_ttl.as_deref(),
            Duration::from_secs(300),
            Duration::from_secs(3600),
        ),
        rotate_refresh_tokens: raw.rotate_refresh_tokens.unwrap_or(false),
        rotation_grace: duration_or(
            problems,
            "tokens.rotation_grace",
            raw.rotation_grace.as_deref(),
            Duration::from_secs(30),
            Duration::from_secs(600),
        ),
        code_ttl: duration_or(
            problems,
            "tokens.code_ttl",
            raw.code_ttl.as_deref(),
            Duration::from_secs(60),
            Duration::from_secs(300),
        ),
        signing_key_lifetime: duration_or(
            problems,
            "tokens.signing_key_lifetime",
            raw.signing_key_lifetime.as_deref(),
            Duration::from_secs(30 * 86400),
            Duration::from_secs(365 * 86400),
        ),
    }
}

/// `[routes."/api/"]`: requests under the prefix need a session and go to `upstream`.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Starts and ends with `/`.
    pub prefix: String,
    /// The path after the prefix is appended to this URL's path.
    pub upstream: Url,
    /// Send `X-Auth-User`, `X-Auth-Email`, … to the upstream.
    pub identity_headers: bool,
    /// Send `Authorization: Bearer <broker JWT>` to the upstream.
    pub jwt: bool,
    /// The `aud` of the JWTs sent to this upstream (its URL unless set). Never the token-mode
    /// audience: a token given to an upstream must not be usable at the broker.
    pub audience: String,
    /// How long the upstream may take to start answering.
    pub timeout: Duration,
    /// Whether, and where, the upstream gets the session's provider access token. Off unless
    /// the route asks: a provider token works at the provider's own APIs.
    pub provider_token: Option<ProviderTokenTo>,
}

/// `provider_token`: where the proxy puts the session's current provider access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderTokenTo {
    /// `Authorization: Bearer <provider token>` (so the route cannot also send the broker JWT
    /// there): `provider_token = "authorization"`, or `true`.
    Authorization,
    /// The token alone in a header of this name (lower case), beside whatever else the route
    /// sends: `provider_token = "X-Provider-Token"`.
    Header(String),
}

/// RFC 9110 §7.6.1: connection-specific request headers, never forwarded by the proxy (nor any
/// the `Connection` header names).
pub const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers (lower case, `_` read as `-`) that never pass the proxy as the caller sent them:
/// the ones the broker sets itself (identity, forwarding, its JWT), the ones frameworks read the
/// client's address from, and the caller's own credentials and host. A route's `provider_token`
/// header may not be one of them.
pub fn reserved_header(folded: &str) -> bool {
    const PREFIXES: [&str; 3] = ["x-auth-", "x-forwarded-", "x-original-"];
    const NAMES: [&str; 11] = [
        "host",
        "authorization",
        "cookie",
        "forwarded",
        "x-forwarded",
        "x-real-ip",
        "true-client-ip",
        "x-client-ip",
        "x-cluster-client-ip",
        "cf-connecting-ip",
        "fastly-client-ip",
    ];
    PREFIXES.iter().any(|p| folded.starts_with(p)) || NAMES.contains(&folded)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    upstream: Option<String>,
    identity_headers: Option<bool>,
    jwt: Option<bool>,
    audience: Option<String>,
    timeout: Option<String>,
    provider_token: Option<toml::Value>,
}

/// Paths the broker answers itself; a proxied prefix may not shadow them.
const RESERVED: &[&str] = &[
    "/auth/",
    "/dev/",
    "/.well-known/",
    "/example/",
    "/admin/",
    "/healthz",
    "/readyz",
];

pub(super) fn validate_routes(
    raw: Option<toml::Value>,
    token_audience: &str,
    problems: &mut Vec<Problem>,
) -> Vec<RouteConfig> {
    let table = match raw {
        None => return Vec::new(),
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            problem(
                problems,
                "routes",
                "must be a table of routes",
                "write one [routes.\"/api/\"] table per proxied prefix",
            );
            return Vec::new();
        }
    };
    BTreeMap::from_iter(table)
        .into_iter()
        .filter_map(|(prefix, value)| validate_route(prefix, value, token_audience, problems))
        .collect()
}

fn validate_route(
    prefix: String,
    value: toml::Value,
    token_audience: &str,
    problems: &mut Vec<Problem>,
) -> Option<RouteConfig> {
    let key = format!("routes.\"{prefix}\"");
    let raw: RawRoute = match value.try_into() {
        Ok(r) => r,
        Err(e) => {
            problem(
                problems,
                key,
                e.message().trim().to_string(),
                "the keys are upstream, identity_headers, jwt, audience, timeout and provider_token",
            );
            return None;
        }
    };
    if !prefix_ok(&key, &prefix, problems) {
        return None;
    }
    let upstream = upstream(&key, raw.upstream.as_deref(), problems)?;
    let timeout = duration_or(
        problems,
        &format!("{key}.timeout"),
        raw.timeout.as_deref(),
        Duration::from_secs(30),
        Duration::from_secs(3600),
    );
    let audience = raw.audience.unwrap_or_else(|| upstream.to_string());
    if audience == token_audience {
        problem(
            problems,
            format!("{key}.audience"),
            "is the audience of token-mode access tokens",
            "give the upstream an audience of its own, e.g. its URL (the default)",
        );
        return None;
    }
    let jwt = raw.jwt.unwrap_or(false);
    let provider_token = provider_token(&key, raw.provider_token, jwt, problems).ok()?;
    Some(RouteConfig {
        prefix,
        audience,
        upstream,
        identity_headers: raw.identity_headers.unwrap_or(true),
        jwt,
        timeout,
        provider_token,
    })
}

/// `provider_token`: `false` (the default), `true` or `"authorization"` for `Authorization:
/// Bearer`, or the name of a header of the upstream's own.
fn provider_token(
    key: &str,
    value: Option<toml::Value>,
    jwt: bool,
    problems: &mut Vec<Problem>,
) -> Result<Option<ProviderTokenTo>, ()> {
    let key = format!("{key}.provider_token");
    let fix_name = "write provider_token = \"authorization\" to send it as Authorization: Bearer, \
                    or a header name of its own, e.g. \"X-Provider-Token\"";
    let mut refuse = |what: String, fix: String| {
        problem(problems, key.clone(), what, fix);
        Err(())
    };
    let to = match value {
        None | Some(toml::Value::Boolean(false)) => return Ok(None),
        Some(toml::Value::Boolean(true)) => ProviderTokenTo::Authorization,
        Some(toml::Value::String(name)) if name.eq_ignore_ascii_case("authorization") => {
            ProviderTokenTo::Authorization
        }
        Some(toml::Value::String(name)) => {
            let lower = name.to_ascii_lowercase();
            let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if lower.is_empty() || !lower.bytes().all(token_char) {
                return refuse(format!("`{name}` is not a header name"), fix_name.into());
            }
            // Compared as a CGI-style upstream reads it: `_` is `-` there.
            let folded = lower.replace('_', "-");
            let owned = reserved_header(&folded)
                || HOP_BY_HOP.contains(&folded.as_str())
                || folded.starts_with("content-")
                || matches!(folded.as_str(), "expect" | "set-cookie");
            if owned {
                return refuse(
                    format!(
                        "`{name}` is a header the proxy sets, drops or needs for the request itself"
                    ),
                    "name a header of its own, e.g. \"X-Provider-Token\"".into(),
                );
            }
            if lower.contains('_') {
                return refuse(
                    format!("`{name}` has `_`, which many servers drop or read as `-`"),
                    format!("write it with `-`: \"{}\"", name.replace('_', "-")),
                );
            }
            ProviderTokenTo::Header(lower)
        }
        Some(other) => {
            return refuse(
                format!("`{other}` is neither true, false nor a header name"),
                fix_name.into(),
            );
        }
    };
    if jwt && to == ProviderTokenTo::Authorization {
        return refuse(
            "puts the provider token in Authorization, where jwt = true puts the broker JWT".into(),
            "set jwt = false to send the provider token as Authorization: Bearer, or send it \
             beside the JWT in a header of its own: provider_token = \"X-Provider-Token\""
                .into(),
        );
    }
    Ok(Some(to))
}

/// A path that starts and ends with `/`, in plain characters, outside the broker's own paths.
fn prefix_ok(key: &str, prefix: &str, problems: &mut Vec<Problem>) -> bool {
    let well_formed = prefix.starts_with('/')
        && prefix.ends_with('/')
        && prefix.len() > 1
        && !prefix.contains("//")
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/-_.~".contains(&b))
        && !prefix.split('/').any(|s| s == "." || s == "..");
    if !well_formed {
        problem(
            problems,
            key,
            "a route prefix is a path that starts and ends with `/`",
            "write e.g. [routes.\"/api/\"]",
        );
        return false;
    }
    if RESERVED
        .iter()
        .any(|r| prefix.starts_with(r) || r.starts_with(prefix))
    {
        problem(
            problems,
            key,
            "overlaps a path the broker answers itself",
            format!("choose a prefix outside {}", RESERVED.join(", ")),
        );
        return false;
    }
    true
}

fn upstream(key: &str, given: Option<&str>, problems: &mut Vec<Problem>) -> Option<Url> {
    match given.map(Url::parse) {
        Some(Ok(u))
            if matches!(u.scheme(), "http" | "https")
                && u.host().is_some()
                && u.query().is_none()
                && u.username().is_empty() =>
        {
            Some(u)
        }
        Some(_) => {
            problem(
                problems,
                format!("{key}.upstream"),
                "not an http(s) URL without query or credentials",
                "write e.g. \"http://127.0.0.1:9000/\"",
            );
            None
        }
        None => {
            problem(
                problems,
                format!("{key}.upstream"),
                "missing",
                "name the server to forward to, e.g. upstream = \"http://127.0.0.1:9000/\"",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::from_toml_str;

    const DEV: &str = "[providers.dev]\nkind = \"dev\"\n";
    const SERVER: &str = "[server]\nenvironment = \"development\"\n";

    #[test]
    fn token_defaults_follow_the_public_url() {
        let c = from_toml_str(&format!("{SERVER}{DEV}"), Vec::new()).unwrap();
        assert_eq!(c.tokens.audience, "http://127.0.0.1:8080");
        assert_eq!(c.tokens.access_ttl.as_secs(), 300);
        assert!(!c.tokens.rotate_refresh_tokens);
        assert_eq!(c.tokens.code_ttl.as_secs(), 60);
    }

    #[test]
    fn route_prefixes_are_checked() {
        let err = from_toml_str(
            &format!(
                "{SERVER}{DEV}[routes.\"/auth/\"]\nupstream = \"http://127.0.0.1:9000\"\n\
                 [routes.\"api\"]\nupstream = \"http://127.0.0.1:9000\"\n\
                 [routes.\"/data/\"]\nupstream = \"ftp://x\"\n\
                 [routes.\"/ok/\"]\nupstream = \"http://127.0.0.1:9000/v1/\"\n"
            ),
            Vec::new(),
        )
        .unwrap_err();
        let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
        assert!(keys.contains(&"routes.\"/auth/\""), "{keys:?}");
        assert!(keys.contains(&"routes.\"api\""), "{keys:?}");
        assert!(keys.contains(&"routes.\"/data/\".upstream"), "{keys:?}");
        assert_eq!(keys.len(), 3, "{keys:?}");
    }

    fn route(lines: &str) -> Result<super::super::Config, super::super::ConfigError> {
        from_toml_str(
            &format!(
                "{SERVER}{DEV}[routes.\"/x/\"]\nupstream = \"http://127.0.0.1:9000/\"\n{lines}\n"
            ),
            Vec::new(),
        )
    }

    #[test]
    fn provider_token_is_off_unless_a_route_asks_and_says_where() {
        use super::ProviderTokenTo::{Authorization, Header};
        for (lines, expected) in [
            ("", None),
            ("provider_token = false", None),
            ("provider_token = true", Some(Authorization)),
            ("provider_token = \"authorization\"", Some(Authorization)),
            ("provider_token = \"Authorization\"", Some(Authorization)),
            (
                "provider_token = \"X-Provider-Token\"",
                Some(Header("x-provider-token".into())),
            ),
            (
                "provider_token = \"X-Provider-Token\"\njwt = true",
                Some(Header("x-provider-token".into())),
            ),
        ] {
            let c = route(lines).unwrap_or_else(|e| panic!("{lines}: {e}"));
            assert_eq!(c.routes[0].provider_token, expected, "{lines}");
        }
    }

    #[test]
    fn a_provider_token_header_the_proxy_owns_or_that_is_no_header_is_refused_with_a_fix() {
        for value in [
            "\"X-Auth-Token\"",
            "\"x_auth_user\"",
            "\"X-Forwarded-Access-Token\"",
            "\"Cookie\"",
            "\"Host\"",
            "\"Proxy-Authorization\"",
            "\"Connection\"",
            "\"Content-Length\"",
            "\"X_Provider_Token\"",
            "\"X Provider Token\"",
            "\"X-Token:\"",
            "\"\"",
            "5",
            "[\"authorization\"]",
        ] {
            let err = route(&format!("provider_token = {value}")).unwrap_err();
            assert_eq!(err.0.len(), 1, "{value}: {err}");
            assert_eq!(err.0[0].key, "routes.\"/x/\".provider_token", "{value}");
            assert!(err.0[0].fix.contains("X-Provider-Token"), "{value}: {err}");
        }
        let err = route("provider_token = \"X_Provider_Token\"").unwrap_err();
        assert!(err.to_string().contains("\"X-Provider-Token\""), "{err}");
    }

    #[test]
    fn the_provider_token_and_the_broker_jwt_cannot_both_be_the_authorization_header() {
        for value in ["true", "\"authorization\""] {
            let err = route(&format!("jwt = true\nprovider_token = {value}")).unwrap_err();
            assert_eq!(err.0.len(), 1, "{err}");
            assert_eq!(err.0[0].key, "routes.\"/x/\".provider_token");
            assert!(err.0[0].fix.contains("jwt = false"), "{err}");
            assert!(err.0[0].fix.contains("X-Provider-Token"), "{err}");
        }
    }

    #[test]
    fn same_site_none_needs_https() {
        let err =
            from_toml_str(&format!("{SERVER}same_site = \"none\"\n{DEV}"), Vec::new()).unwrap_err();
        assert!(err.0.iter().any(|p| p.key == "server.same_site"), "{err}");
        let c = from_toml_str(
            &format!("{SERVER}same_site = \"strict\"\n{DEV}"),
            Vec::new(),
        )
        .unwrap();
        assert_eq!(c.server.same_site, super::super::SameSitePolicy::Strict);
    }
}
