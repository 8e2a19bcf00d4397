//! `[providers.ID]` tables: one per identity provider, with a `kind` and the settings that kind needs.
//! What every kind shares is checked here; each kind's own settings in its file.

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

use super::problem::{Problem, problem};
use super::{Environment, is_loopback_host};
use crate::secret::Secret;

mod auth0;
mod claims;
mod cognito;
mod dev;
mod firebase;
mod oidc;
mod urls;

pub use claims::ClaimMapping;
use claims::RawClaims;
pub use dev::{DevUser, default_dev_users};
pub use firebase::FirebaseSettings;
use urls::endpoint_url;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Oidc,
    Auth0,
    Cognito,
    Firebase,
    Dev,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Oidc => "oidc",
            ProviderKind::Auth0 => "auth0",
            ProviderKind::Cognito => "cognito",
            ProviderKind::Firebase => "firebase",
            ProviderKind::Dev => "dev",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "oidc" => ProviderKind::Oidc,
            "auth0" => ProviderKind::Auth0,
            "cognito" => ProviderKind::Cognito,
            "firebase" => ProviderKind::Firebase,
            "dev" => ProviderKind::Dev,
            _ => return None,
        })
    }

    /// Which optional keys the kind understands (the common ones are always accepted).
    fn keys(self) -> &'static [&'static str] {
        match self {
            ProviderKind::Oidc => oidc::KEYS,
            ProviderKind::Auth0 => auth0::KEYS,
            ProviderKind::Cognito => cognito::KEYS,
            ProviderKind::Firebase => firebase::KEYS,
            ProviderKind::Dev => dev::KEYS,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub display_name: String,
    /// Exactly as written or derived (issuers are compared byte for byte, so never normalised);
    /// for `dev` it is derived from the public URL at start.
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub scopes: Vec<String>,
    /// Extra parameters of the authorization request (Auth0 `audience`, `organization`,
    /// `connection`; Cognito `identity_provider`).
    pub auth_params: Vec<(String, String)>,
    /// Lets the outbound client reach this provider on a private or loopback address.
    pub allow_private_network: bool,
    pub fetch_userinfo: bool,
    pub claims: ClaimMapping,
    /// The base URL of the provider's own endpoints (`https://{domain}`), for Auth0 and Cognito.
    pub domain_base: Option<String>,
    /// Auth0: an ID token must carry this `org_id` (or `org_name`).
    pub organization: Option<String>,
    /// RFC 7009 revocation endpoint, for a provider whose metadata does not name one (it wins
    /// over discovery, RFC 8414 metadata and the kind's own).
    pub revocation_endpoint: Option<Url>,
    /// RP-initiated logout endpoint, likewise.
    pub end_session_endpoint: Option<Url>,
    pub firebase: Option<FirebaseSettings>,
    /// Test users offered by a `dev` provider's login page.
    pub dev_users: Vec<DevUser>,
}

/// A `[providers.ID]` table as written: every key any kind understands, each optional.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: Option<String>,
    display_name: Option<String>,
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Secret>,
    scopes: Option<Vec<String>>,
    allow_private_network: Option<bool>,
    fetch_userinfo: Option<bool>,
    revocation_endpoint: Option<String>,
    end_session_endpoint: Option<String>,
    claims: Option<RawClaims>,
    users: Option<Vec<DevUser>>,
    // auth0
    domain: Option<String>,
    audience: Option<String>,
    organization: Option<String>,
    connection: Option<String>,
    // cognito
    region: Option<String>,
    user_pool_id: Option<String>,
    identity_provider: Option<String>,
    // firebase
    project_id: Option<String>,
    api_key: Option<String>,
    emulator_host: Option<String>,
    federated: Option<Vec<String>>,
    keys_url: Option<String>,
    service_account_file: Option<String>,
}

impl RawProvider {
    /// The kind-specific keys that are set, to be checked against what the kind understands.
    fn present_keys(&self) -> Vec<&'static str> {
        [
            ("issuer", self.issuer.is_some()),
            ("client_secret", self.client_secret.is_some()),
            ("users", self.users.is_some()),
            ("domain", self.domain.is_some()),
            ("audience", self.audience.is_some()),
            ("organization", self.organization.is_some()),
            ("connection", self.connection.is_some()),
            ("region", self.region.is_some()),
            ("user_pool_id", self.user_pool_id.is_some()),
            ("identity_provider", self.identity_provider.is_some()),
            ("project_id", self.project_id.is_some()),
            ("api_key", self.api_key.is_some()),
            ("emulator_host", self.emulator_host.is_some()),
            ("federated", self.federated.is_some()),
            ("keys_url", self.keys_url.is_some()),
            ("service_account_file", self.service_account_file.is_some()),
            ("revocation_endpoint", self.revocation_endpoint.is_some()),
            ("end_session_endpoint", self.end_session_endpoint.is_some()),
        ]
        .into_iter()
        .filter_map(|(k, set)| set.then_some(k))
        .collect()
    }
}

/// One provider's table under check: its id, the environment, and where problems go.
struct Check<'a> {
    id: &'a str,
    environment: Environment,
    problems: &'a mut Vec<Problem>,
}

impl Check<'_> {
    /// `providers.{id}.{k}`.
    fn key(&self, k: &str) -> String {
        format!("providers.{}.{k}", self.id)
    }

    fn problem(&mut self, k: &str, message: impl Into<String>, fix: impl Into<String>) {
        let key = self.key(k);
        problem(self.problems, key, message, fix);
    }

    /// The value of a key the kind cannot do without; a missing or blank one is a problem.
    fn required(&mut self, k: &str, value: Option<String>, fix: &str) -> String {
        match value.filter(|v| !v.trim().is_empty()) {
            Some(v) => v,
            None => {
                self.problem(k, "missing", fix);
                String::new()
            }
        }
    }

    /// https, or plain http to a loopback host in development (a local fake or emulator).
    fn secure_enough(&self, u: &Url) -> bool {
        u.scheme() == "https" || self.development_loopback(u)
    }

    fn development_loopback(&self, u: &Url) -> bool {
        u.scheme() == "http" && self.environment == Environment::Development && is_loopback_host(u)
    }
}

/// What a kind's own settings decide.
#[derive(Default)]
struct KindSettings {
    issuer: Option<String>,
    client_id: String,
    auth_params: Vec<(String, String)>,
    domain_base: Option<String>,
    firebase: Option<FirebaseSettings>,
}

/// Every `[providers.ID]` table; at least one is needed.
pub(super) fn validate_all(
    raw: Option<toml::Value>,
    environment: Environment,
    problems: &mut Vec<Problem>,
) -> BTreeMap<String, ProviderConfig> {
    let mut providers = BTreeMap::new();
    match raw {
        None => {}
        Some(toml::Value::Table(t)) => {
            for (id, value) in t {
                if let Some(p) = validate_table(&id, value, environment, problems) {
                    providers.insert(id, p);
                }
            }
        }
        Some(_) => problem(
            problems,
            "providers",
            "must be a table of providers",
            "write one [providers.ID] table per provider",
        ),
    }
    if providers.is_empty() && !problems.iter().any(|p| p.key.starts_with("providers")) {
        problem(
            problems,
            "providers",
            "no provider is configured",
            "add a [providers.ID] table; providers/dev.toml is a start",
        );
    }
    providers
}

/// One table: its id, then its keys.
fn validate_table(
    id: &str,
    value: toml::Value,
    environment: Environment,
    problems: &mut Vec<Problem>,
) -> Option<ProviderConfig> {
    let key = format!("providers.{id}");
    if id.is_empty()
        || !id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        problem(
            problems,
            key,
            "provider ids are lowercase letters, digits, `_` and `-`",
            "rename the table, e.g. [providers.corp]",
        );
        return None;
    }
    match value.try_into::<RawProvider>() {
        Ok(raw) => validate(id, raw, environment, problems),
        Err(e) => {
            problem(
                problems,
                key,
                e.message().trim().to_string(),
                "see providers/ for an example of this kind",
            );
            None
        }
    }
}

fn validate(
    id: &str,
    raw: RawProvider,
    environment: Environment,
    problems: &mut Vec<Problem>,
) -> Option<ProviderConfig> {
    let mut c = Check {
        id,
        environment,
        problems,
    };
    let kind = kind(&mut c, raw.kind.as_deref())?;
    let before = c.problems.len();
    for k in raw.present_keys() {
        if !kind.keys().contains(&k) {
            c.problem(
                k,
                format!("not a setting of a {} provider", kind.as_str()),
                "remove it (see providers/ for this kind's settings)",
            );
        }
    }
    let scopes = scopes(&mut c, kind, raw.scopes.clone());
    let claims = ClaimMapping::for_kind(kind).overridden(raw.claims.as_ref());
    let revocation_endpoint = endpoint_url(&mut c, "revocation_endpoint", &raw.revocation_endpoint);
    let end_session_endpoint =
        endpoint_url(&mut c, "end_session_endpoint", &raw.end_session_endpoint);
    let settings = match kind {
        ProviderKind::Dev => dev::check(&mut c, &raw),
        ProviderKind::Oidc => oidc::check(&mut c, &raw),
        ProviderKind::Auth0 => auth0::check(&mut c, &raw),
        ProviderKind::Cognito => cognito::check(&mut c, &raw),
        ProviderKind::Firebase => firebase::check(&mut c, &raw),
    };
    let client_secret = client_secret(&mut c, kind, raw.client_secret.clone());
    let dev_users = match kind {
        ProviderKind::Dev => dev::users(&mut c, raw.users.clone()),
        _ => vec![],
    };
    if c.problems.len() > before {
        return None;
    }
    Some(ProviderConfig {
        kind,
        display_name: raw.display_name.unwrap_or_else(|| match kind {
            ProviderKind::Dev => "Test users (dev)".into(),
            _ => id.to_string(),
        }),
        issuer: settings.issuer,
        client_id: settings.client_id,
        client_secret,
        scopes,
        auth_params: settings.auth_params,
        allow_private_network: raw.allow_private_network.unwrap_or(false),
        fetch_userinfo: raw.fetch_userinfo.unwrap_or(true),
        claims,
        domain_base: settings.domain_base,
        organization: raw.organization,
        revocation_endpoint,
        end_session_endpoint,
        firebase: settings.firebase,
        dev_users,
    })
}

fn kind(c: &mut Check<'_>, given: Option<&str>) -> Option<ProviderKind> {
    let Some(given) = given else {
        c.problem(
            "kind",
            "missing",
            "add kind = \"oidc\", \"auth0\", \"cognito\", \"firebase\" or \"dev\"",
        );
        return None;
    };
    let kind = ProviderKind::parse(given);
    if kind.is_none() {
        c.problem(
            "kind",
            format!("`{given}` is not a provider kind"),
            "use one of: oidc, auth0, cognito, firebase, dev",
        );
    }
    kind
}

fn scopes(c: &mut Check<'_>, kind: ProviderKind, given: Option<Vec<String>>) -> Vec<String> {
    if kind == ProviderKind::Firebase {
        return Vec::new();
    }
    let scopes = given.unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        c.problem("scopes", "lacks `openid`", "add \"openid\" to the list");
    }
    scopes
}

/// Oidc and Auth0 clients authenticate with a secret; Firebase has none.
fn client_secret(c: &mut Check<'_>, kind: ProviderKind, given: Option<Secret>) -> Option<Secret> {
    let secret = given.filter(|s| !s.is_empty() && kind != ProviderKind::Firebase);
    if matches!(kind, ProviderKind::Oidc | ProviderKind::Auth0) && secret.is_none() {
        let env = format!(
            "BROKER_PROVIDERS__{}__CLIENT_SECRET",
            c.id.to_ascii_uppercase().replace('-', "_")
        );
        c.problem(
            "client_secret",
            "missing",
            format!("copy it from the provider, or set {env}"),
        );
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::super::{ConfigError, from_toml_str};

    fn provider(environment: &str, extra: &str) -> Result<super::super::Config, ConfigError> {
        from_toml_str(
            &format!(
                "[server]\nenvironment = \"{environment}\"\npublic_url = \"https://auth.example.com\"\n\
                 [providers.corp]\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"a\"\nclient_secret = \"b\"\n{extra}"
            ),
            Vec::new(),
        )
    }

    fn refused_keys(environment: &str, extra: &str) -> Vec<String> {
        match provider(environment, extra) {
            Ok(_) => Vec::new(),
            Err(ConfigError(problems)) => problems.into_iter().map(|p| p.key).collect(),
        }
    }

    #[test]
    fn explicit_endpoints_are_taken_as_urls() {
        let c = provider(
            "development",
            "revocation_endpoint = \"https://idp.example.com/oauth2/revoke\"\nend_session_endpoint = \"https://idp.example.com/logout?x=1\"\n",
        )
        .unwrap();
        let p = &c.providers["corp"];
        assert_eq!(
            p.revocation_endpoint.as_ref().map(|u| u.as_str()),
            Some("https://idp.example.com/oauth2/revoke")
        );
        assert_eq!(
            p.end_session_endpoint.as_ref().map(|u| u.as_str()),
            Some("https://idp.example.com/logout?x=1")
        );
    }

    #[test]
    fn explicit_endpoints_must_be_https_urls_without_credentials() {
        for (value, environment) in [
            ("not a url", "development"),
            ("/relative/revoke", "development"),
            ("http://idp.example.com/revoke", "development"),
            ("http://127.0.0.1:9/revoke", "production"),
            ("https://user:pw@idp.example.com/revoke", "development"),
            ("https://idp.example.com/revoke#x", "development"),
            ("javascript:alert(1)", "development"),
        ] {
            for key in ["revocation_endpoint", "end_session_endpoint"] {
                let keys = refused_keys(environment, &format!("{key} = \"{value}\"\n"));
                assert!(
                    keys.contains(&format!("providers.corp.{key}")),
                    "{key} = {value} in {environment}: {keys:?}"
                );
            }
        }
        assert!(
            refused_keys(
                "development",
                "revocation_endpoint = \"http://127.0.0.1:9/revoke\"\n"
            )
            .is_empty(),
            "plain http on loopback in development, as for issuers"
        );
    }

    #[test]
    fn explicit_endpoints_are_not_settings_of_firebase_or_dev() {
        let err = from_toml_str(
            "[server]\nenvironment = \"development\"\npublic_url = \"http://127.0.0.1:8080\"\n\
             [providers.dev]\nkind = \"dev\"\nrevocation_endpoint = \"http://127.0.0.1:1/r\"\n",
            Vec::new(),
        )
        .unwrap_err();
        assert!(
            err.0
                .iter()
                .any(|p| p.key == "providers.dev.revocation_endpoint"),
            "{err}"
        );
    }
}
