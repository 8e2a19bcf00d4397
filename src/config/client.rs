//! `[clients.ID]`: the apps that sign in through the broker as an OpenID Provider (WeWeb's OpenID
//! plugin, any OpenID Connect client). The table's name is the `client_id`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::problem::{Problem, problem};
use super::{Environment, ProviderConfig, is_loopback_host, parse_duration};
use crate::secret::Secret;

/// The scopes the broker grants; a client may be allowed fewer.
pub const SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// How a client proves itself at the token and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// A public client (a single-page app): no secret; PKCE S256 is required instead.
    None,
    /// HTTP Basic with the client id and secret (RFC 6749 §2.3.1).
    SecretBasic,
    /// `client_id` and `client_secret` in the form body.
    SecretPost,
}

impl ClientAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::None => "none",
            ClientAuth::SecretBasic => "client_secret_basic",
            ClientAuth::SecretPost => "client_secret_post",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub id: String,
    /// Exact redirect URIs, as the client will send them.
    pub redirect_uris: Vec<String>,
    /// Exact; the first is where a logout request that names none lands.
    pub post_logout_redirect_uris: Vec<String>,
    pub secret: Option<Secret>,
    pub auth: ClientAuth,
    /// The scopes it may be granted (always with `openid`).
    pub scopes: Vec<String>,
    /// The upstream providers it may sign in with; never empty after validation.
    pub providers: Vec<String>,
    pub access_token_ttl: Duration,
    pub id_token_ttl: Duration,
    /// The `aud` of its access tokens.
    pub audience: String,
    pub backchannel_logout_uri: Option<String>,
    /// The `acr_values` it may ask for; they are passed to the upstream provider.
    pub acr_values: Vec<String>,
}

impl ClientConfig {
    /// The origins of its redirect URIs: where its browser code runs, for CORS.
    pub fn origins(&self) -> impl Iterator<Item = String> + '_ {
        self.redirect_uris
            .iter()
            .chain(&self.post_logout_redirect_uris)
            .filter_map(|u| Url::parse(u).ok())
            .map(|u| u.origin().ascii_serialization())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    redirect_uris: Option<Vec<String>>,
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    client_secret: Option<Secret>,
    token_endpoint_auth_method: Option<String>,
    scopes: Option<Vec<String>>,
    providers: Option<Vec<String>>,
    access_token_ttl: Option<String>,
    id_token_ttl: Option<String>,
    audience: Option<String>,
    backchannel_logout_uri: Option<String>,
    #[serde(default)]
    acr_values: Vec<String>,
}

/// What every client check needs: its key prefix and the problems list.
struct Check<'a> {
    key: String,
    environment: Environment,
    problems: &'a mut Vec<Problem>,
}

impl Check<'_> {
    fn problem(&mut self, k: &str, message: impl Into<String>, fix: impl Into<String>) {
        problem(self.problems, format!("{}.{k}", self.key), message, fix);
    }

    /// An absolute http(s) URL without credentials or fragment; plain http only for a loopback host
    /// or in development.
    fn url(&mut self, k: &str, value: &str) -> bool {
        let ok = Url::parse(value).ok().filter(|u| {
            u.host_str().is_some()
                && u.username().is_empty()
                && u.password().is_none()
                && u.fragment().is_none()
                && (u.scheme() == "https"
                    || (u.scheme() == "http"
                        && (is_loopback_host(u) || self.environment == Environment::Development)))
        });
        if ok.is_none() {
            self.problem(
                k,
                format!("`{value}` is not an absolute https URL without credentials or fragment"),
                "write the exact URL the app uses, e.g. \"https://app.example.com/callback\" (plain http only for 127.0.0.1, localhost or in development)",
            );
        }
        ok.is_some()
    }

    fn urls(&mut self, k: &str, values: Vec<String>) -> Vec<String> {
        values.into_iter().filter(|v| self.url(k, v)).collect()
    }

    fn ttl(&mut self, k: &str, value: Option<&str>, default: Duration, max: Duration) -> Duration {
        let Some(s) = value else { return default };
        match parse_duration(s) {
            Some(d) if !d.is_zero() && d <= max => d,
            _ => {
                self.problem(
                    k,
                    format!("`{s}` is not a duration of at most {}s", max.as_secs()),
                    "write a number with a unit, e.g. \"5m\" or \"1h\"",
                );
                default
            }
        }
    }
}

/// Every `[clients.ID]`, checked against the providers it names.
pub(super) fn validate_all(
    raw: Option<toml::Value>,
    environment: Environment,
    providers: &BTreeMap<String, ProviderConfig>,
    default_access_ttl: Duration,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, ClientConfig> {
    let mut clients = BTreeMap::new();
    let table = match raw {
        None => return clients,
        Some(toml::Value::Table(t)) => t,
        Some(_) => {
            problem(
                problems,
                "clients",
                "must be a table of clients",
                "write one [clients.ID] table per app, e.g. [clients.weweb]",
            );
            return clients;
        }
    };
    for (id, value) in table {
        let key = format!("clients.{id}");
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
        if !id_ok {
            problem(
                problems,
                key,
                "client ids are 1 to 64 letters, digits, `_`, `-` and `.`",
                "rename the table, e.g. [clients.weweb]",
            );
            continue;
        }
        let raw = match value.try_into::<RawClient>() {
            Ok(raw) => raw,
            Err(e) => {
                problem(
                    problems,
                    key,
                    e.message().trim().to_string(),
                    "see docs/weweb.md for the keys of a [clients.ID] table",
                );
                continue;
            }
        };
        let mut c = Check {
            key,
            environment,
            problems,
        };
        if let Some(client) = validate(&id, raw, &mut c, providers, default_access_ttl) {
            clients.insert(id, client);
        }
    }
    clients
}

fn validate(
    id: &str,
    raw: RawClient,
    c: &mut Check<'_>,
    providers: &BTreeMap<String, ProviderConfig>,
    default_access_ttl: Duration,
) -> Option<ClientConfig> {
    let before = c.problems.len();
    let redirect_uris = c.urls("redirect_uris", raw.redirect_uris.unwrap_or_default());
    if redirect_uris.is_empty() && c.problems.len() == before {
        c.problem(
            "redirect_uris",
            "no redirect URI",
            "list the exact page URLs the app signs in from, e.g. redirect_uris = [\"https://app.example.com/callback\"]",
        );
    }
    let post_logout_redirect_uris =
        c.urls("post_logout_redirect_uris", raw.post_logout_redirect_uris);
    let (secret, auth) = client_auth(c, raw.client_secret, raw.token_endpoint_auth_method);
    let scopes = scopes(c, raw.scopes);
    let chosen = raw
        .providers
        .unwrap_or_else(|| providers.keys().cloned().collect());
    for p in chosen.iter().filter(|p| !providers.contains_key(*p)) {
        c.problem(
            "providers",
            format!("`{p}` is not a configured provider"),
            format!(
                "name providers of [providers.ID]: {}",
                providers.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        );
    }
    if chosen.is_empty() {
        c.problem(
            "providers",
            "empty",
            "remove the key (every provider) or name at least one",
        );
    }
    let access_token_ttl = c.ttl(
        "access_token_ttl",
        raw.access_token_ttl.as_deref(),
        default_access_ttl,
        Duration::from_secs(3600),
    );
    let id_token_ttl = c.ttl(
        "id_token_ttl",
        raw.id_token_ttl.as_deref(),
        Duration::from_secs(3600),
        Duration::from_secs(86400),
    );
    let audience = match raw.audience {
        Some(a) if a.trim().is_empty() => {
            c.problem(
                "audience",
                "empty",
                "remove it (the client id is the default) or name the API",
            );
            String::new()
        }
        Some(a) => a,
        None => id.to_string(),
    };
    let backchannel_logout_uri = raw
        .backchannel_logout_uri
        .filter(|u| c.url("backchannel_logout_uri", u));
    for v in raw.acr_values.iter().filter(|v| !token_like(v)) {
        c.problem(
            "acr_values",
            format!("`{v}` is not an acr value"),
            "write values without spaces or quotes, as the identity provider names them",
        );
    }
    (c.problems.len() == before).then(|| ClientConfig {
        id: id.to_string(),
        redirect_uris,
        post_logout_redirect_uris,
        secret,
        auth,
        scopes,
        providers: chosen,
        access_token_ttl,
        id_token_ttl,
        audience,
        backchannel_logout_uri,
        acr_values: raw.acr_values,
    })
}

/// Printable ASCII without space, quote or backslash (RFC 6749 §A.4's scope-token characters).
fn token_like(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\\')
}

fn client_auth(
    c: &mut Check<'_>,
    secret: Option<Secret>,
    method: Option<String>,
) -> (Option<Secret>, ClientAuth) {
    let secret = secret.filter(|s| !s.is_empty());
    let auth = match (method.as_deref(), &secret) {
        (None | Some("none"), None) => ClientAuth::None,
        (None | Some("client_secret_basic"), Some(_)) => ClientAuth::SecretBasic,
        (Some("client_secret_post"), Some(_)) => ClientAuth::SecretPost,
        (Some("client_secret_basic" | "client_secret_post"), None) => {
            c.problem(
                "client_secret",
                "missing for a confidential client",
                "set client_secret (better from the environment: BROKER_CLIENTS__ID__CLIENT_SECRET), or remove token_endpoint_auth_method for a public client",
            );
            ClientAuth::None
        }
        (Some("none"), Some(_)) => {
            c.problem(
                "token_endpoint_auth_method",
                "\"none\" with a client_secret",
                "remove client_secret for a public client, or the method for a confidential one",
            );
            ClientAuth::None
        }
        (Some(other), _) => {
            c.problem(
                "token_endpoint_auth_method",
                format!("`{other}` is not supported"),
                "write \"client_secret_basic\", \"client_secret_post\" or \"none\"",
            );
            ClientAuth::None
        }
    };
    if let Some(s) = &secret
        && s.expose().len() < 16
    {
        c.problem(
            "client_secret",
            "shorter than 16 characters",
            "use a long random secret, e.g. from `openssl rand -base64 32`",
        );
    }
    (secret, auth)
}

fn scopes(c: &mut Check<'_>, raw: Option<Vec<String>>) -> Vec<String> {
    let Some(mut scopes) = raw else {
        return SCOPES.iter().map(|s| s.to_string()).collect();
    };
    for s in scopes.iter().filter(|s| !SCOPES.contains(&s.as_str())) {
        c.problem(
            "scopes",
            format!("`{s}` is not a scope the broker grants"),
            format!("choose among {}", SCOPES.join(", ")),
        );
    }
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".into());
    }
    scopes.dedup();
    scopes
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, from_toml_str};

    const BASE: &str = r#"
        [server]
        environment = "development"
        [providers.dev]
        kind = "dev"
        [providers.other]
        kind = "dev"
    "#;

    fn problems(extra: &str) -> Vec<String> {
        match from_toml_str(&format!("{BASE}{extra}"), Vec::new()) {
            Ok(_) => Vec::new(),
            Err(ConfigError(p)) => p.into_iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn a_public_client_gets_the_defaults() {
        let c = from_toml_str(
            &format!("{BASE}[clients.weweb]\nredirect_uris = [\"https://app.example.com/cb\"]\n"),
            Vec::new(),
        )
        .unwrap();
        let w = &c.clients["weweb"];
        assert_eq!(w.auth, super::ClientAuth::None);
        assert_eq!(w.audience, "weweb");
        assert_eq!(w.providers, ["dev", "other"]);
        assert_eq!(w.scopes, super::SCOPES);
        assert_eq!(w.origins().next().unwrap(), "https://app.example.com");
    }

    #[test]
    fn every_bad_key_is_a_problem_with_its_name() {
        let cases = [
            ("redirect_uris = []", "clients.a.redirect_uris"),
            ("redirect_uris = [\"/cb\"]", "clients.a.redirect_uris"),
            (
                "redirect_uris = [\"https://x.example/#f\"]",
                "clients.a.redirect_uris",
            ),
            (
                "redirect_uris = [\"https://u:p@x.example/\"]",
                "clients.a.redirect_uris",
            ),
            (
                "redirect_uris = [\"javascript:alert(1)\"]",
                "clients.a.redirect_uris",
            ),
            (
                "post_logout_redirect_uris = [\"x\"]",
                "clients.a.post_logout_redirect_uris",
            ),
            ("scopes = [\"openid\", \"admin\"]", "clients.a.scopes"),
            ("providers = [\"nope\"]", "clients.a.providers"),
            ("providers = []", "clients.a.providers"),
            ("access_token_ttl = \"2h\"", "clients.a.access_token_ttl"),
            ("id_token_ttl = \"soon\"", "clients.a.id_token_ttl"),
            ("client_secret = \"short\"", "clients.a.client_secret"),
            (
                "token_endpoint_auth_method = \"client_secret_post\"",
                "clients.a.client_secret",
            ),
            (
                "token_endpoint_auth_method = \"private_key_jwt\"",
                "clients.a.token_endpoint_auth_method",
            ),
            (
                "backchannel_logout_uri = \"ftp://x.example/\"",
                "clients.a.backchannel_logout_uri",
            ),
            ("acr_values = [\"a b\"]", "clients.a.acr_values"),
            ("audience = \" \"", "clients.a.audience"),
            ("colour = \"red\"", "clients.a"),
        ];
        for (line, key) in cases {
            let redirect = if line.starts_with("redirect_uris") {
                ""
            } else {
                "redirect_uris = [\"https://app.example.com/cb\"]\n"
            };
            let p = problems(&format!("[clients.a]\n{redirect}{line}\n"));
            assert!(
                p.iter().any(|p| p.starts_with(&format!("{key}:"))),
                "{line}: {p:?}"
            );
        }
        let p = problems("[clients.\"a b\"]\nredirect_uris = [\"https://x.example/\"]\n");
        assert!(p.iter().any(|p| p.contains("client ids")), "{p:?}");
    }

    #[test]
    fn plain_http_is_only_for_loopback_outside_development() {
        let prod = r#"
            [server]
            public_url = "https://auth.example.com"
            [keys]
            current = "k1"
            [keys.ring]
            k1 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"
            [providers.corp]
            kind = "oidc"
            issuer = "https://idp.example.com"
            client_id = "abc"
            client_secret = "from-file"
        "#;
        let with = |uri: &str| {
            from_toml_str(
                &format!("{prod}[clients.a]\nredirect_uris = [\"{uri}\"]\n"),
                Vec::new(),
            )
        };
        assert!(with("http://127.0.0.1:3000/cb").is_ok());
        assert!(with("https://app.example.com/cb").is_ok());
        let Err(ConfigError(p)) = with("http://app.example.com/cb") else {
            panic!("plain http to a public host was accepted in production");
        };
        assert!(
            p.iter().any(|p| p.key == "clients.a.redirect_uris"),
            "{p:?}"
        );
    }

    #[test]
    fn a_confidential_client_secret_never_prints() {
        let c = from_toml_str(
            &format!(
                "{BASE}[clients.api]\nredirect_uris = [\"https://x.example/cb\"]\nclient_secret = \"a-very-long-client-secret-value\"\ntoken_endpoint_auth_method = \"client_secret_post\"\n"
            ),
            Vec::new(),
        )
        .unwrap();
        let api = &c.clients["api"];
        assert_eq!(api.auth, super::ClientAuth::SecretPost);
        assert!(!format!("{c:?}").contains("a-very-long-client-secret-value"));
    }
}
