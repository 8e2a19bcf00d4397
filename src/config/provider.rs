//! `[providers.ID]` tables: one per identity provider, with a `kind` and the settings that kind needs.

use serde::{Deserialize, Serialize};
use url::Url;

use super::{Environment, Problem, is_loopback_host, problem};

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
}

#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub display_name: String,
    /// Exactly as written or derived (issuers are compared byte for byte, so never normalised);
    /// for `dev` it is derived from the public URL at start.
    pub issuer: Option<String>,
    pub client_id: String,
    pub client_secret: Option<String>,
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

#[derive(Debug, Clone)]
pub struct FirebaseSettings {
    pub project_id: String,
    pub api_key: String,
    /// `host:port` of a Firebase Auth emulator (development, loopback only).
    pub emulator_host: Option<String>,
    /// Identity providers enabled in Firebase to offer on the sign-in page (`google.com`, `apple.com`,
    /// `oidc.NAME`, `saml.NAME`).
    pub federated: Vec<String>,
    /// Where Firebase's public signing keys are fetched; Google's securetoken key set by default.
    pub keys_url: Option<String>,
    /// A service account key file (JSON), for revoking a user's Firebase sessions at logout.
    pub service_account_file: Option<String>,
}

/// Which claim fills each field of the normalised identity, and which raw claims are passed on
/// under `user.claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    pub email: String,
    pub email_verified: String,
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    pub picture: String,
    pub locale: String,
    pub groups: String,
    pub roles: String,
    /// Raw claims copied as they are into `user.claims`.
    pub select: Vec<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            email: "email".into(),
            email_verified: "email_verified".into(),
            name: "name".into(),
            given_name: "given_name".into(),
            family_name: "family_name".into(),
            picture: "picture".into(),
            locale: "locale".into(),
            groups: "groups".into(),
            roles: "roles".into(),
            select: vec![],
        }
    }
}

impl ClaimMapping {
    /// The defaults of a kind, before the operator's `[providers.ID.claims]` overrides.
    fn for_kind(kind: ProviderKind) -> Self {
        let mut m = ClaimMapping::default();
        match kind {
            ProviderKind::Cognito => {
                m.groups = "cognito:groups".into();
                m.roles = "custom:roles".into();
                m.select = vec!["cognito:username".into()];
            }
            ProviderKind::Firebase => {
                m.select = vec!["firebase".into()];
            }
            _ => {}
        }
        m
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DevUser {
    pub sub: String,
    pub email: String,
    #[serde(default = "yes")]
    pub email_verified: bool,
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

fn yes() -> bool {
    true
}

pub fn default_dev_users() -> Vec<DevUser> {
    let user = |sub: &str, name: &str, verified: bool, groups: &[&str]| DevUser {
        sub: sub.to_string(),
        email: format!("{sub}@example.test"),
        email_verified: verified,
        name: name.to_string(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    vec![
        user("alice", "Alice Example", true, &["admins", "staff"]),
        user("bob", "Bob Example", true, &["staff"]),
        user("carol", "Carol Unverified", false, &[]),
    ]
}

/// Claim-mapping overrides as written: only the keys given replace the kind's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClaims {
    email: Option<String>,
    email_verified: Option<String>,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    picture: Option<String>,
    locale: Option<String>,
    groups: Option<String>,
    roles: Option<String>,
    select: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawProvider {
    kind: Option<String>,
    display_name: Option<String>,
    issuer: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
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

/// Which optional keys each kind understands (the common ones are always accepted).
fn kind_keys(kind: ProviderKind) -> &'static [&'static str] {
    match kind {
        ProviderKind::Oidc => &[
            "issuer",
            "client_secret",
            "revocation_endpoint",
            "end_session_endpoint",
        ],
        ProviderKind::Auth0 => &[
            "domain",
            "audience",
            "organization",
            "connection",
            "client_secret",
            "revocation_endpoint",
            "end_session_endpoint",
        ],
        ProviderKind::Cognito => &[
            "region",
            "user_pool_id",
            "domain",
            "identity_provider",
            "client_secret",
            "issuer",
            "revocation_endpoint",
            "end_session_endpoint",
        ],
        ProviderKind::Firebase => &[
            "project_id",
            "api_key",
            "emulator_host",
            "federated",
            "keys_url",
            "service_account_file",
        ],
        ProviderKind::Dev => &["users", "client_secret"],
    }
}

fn present_keys(raw: &RawProvider) -> Vec<&'static str> {
    let mut keys = Vec::new();
    let mut add = |k: &'static str, set: bool| {
        if set {
            keys.push(k);
        }
    };
    add("issuer", raw.issuer.is_some());
    add("client_secret", raw.client_secret.is_some());
    add("users", raw.users.is_some());
    add("domain", raw.domain.is_some());
    add("audience", raw.audience.is_some());
    add("organization", raw.organization.is_some());
    add("connection", raw.connection.is_some());
    add("region", raw.region.is_some());
    add("user_pool_id", raw.user_pool_id.is_some());
    add("identity_provider", raw.identity_provider.is_some());
    add("project_id", raw.project_id.is_some());
    add("api_key", raw.api_key.is_some());
    add("emulator_host", raw.emulator_host.is_some());
    add("federated", raw.federated.is_some());
    add("keys_url", raw.keys_url.is_some());
    add("service_account_file", raw.service_account_file.is_some());
    add("revocation_endpoint", raw.revocation_endpoint.is_some());
    add("end_session_endpoint", raw.end_session_endpoint.is_some());
    keys
}

/// An explicit endpoint: a URL without credentials or fragment, https (plain http only for a
/// loopback host in development, as for issuers).
fn endpoint_url(
    key: &str,
    value: Option<&str>,
    environment: Environment,
    problems: &mut Vec<Problem>,
) -> Option<Url> {
    let value = value?;
    let Ok(u) = Url::parse(value) else {
        problem(
            problems,
            key,
            format!("`{value}` is not a URL"),
            "write the full URL, e.g. \"https://idp.example.com/oauth2/revoke\", or remove the key",
        );
        return None;
    };
    let scheme_ok = u.scheme() == "https"
        || (u.scheme() == "http"
            && environment == Environment::Development
            && is_loopback_host(&u));
    if u.host_str().is_none()
        || !u.username().is_empty()
        || u.password().is_some()
        || u.fragment().is_some()
    {
        problem(
            problems,
            key,
            "must be a plain URL with a host, without credentials or fragment",
            "write the endpoint as the provider documents it",
        );
        None
    } else if !scheme_ok {
        problem(
            problems,
            key,
            "must use https (plain http only for a loopback host in development)",
            "use the provider's https endpoint",
        );
        None
    } else {
        Some(u)
    }
}

/// `tenant.auth0.com` → `https://tenant.auth0.com`. A full `http://` URL is accepted only for a
/// loopback host in development (a local fake or emulator).
fn domain_base(
    key: &str,
    domain: &str,
    environment: Environment,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    let with_scheme = if domain.contains("://") {
        domain.to_string()
    } else {
        format!("https://{domain}")
    };
    match Url::parse(&with_scheme) {
        Ok(u)
            if u.host_str().is_some()
                && (u.path() == "/" || u.path().is_empty())
                && u.query().is_none() =>
        {
            let ok = u.scheme() == "https"
                || (u.scheme() == "http"
                    && environment == Environment::Development
                    && is_loopback_host(&u));
            if ok {
                Some(with_scheme.trim_end_matches('/').to_string())
            } else {
                problem(
                    problems,
                    key,
                    "plain http is only accepted for a loopback host in development",
                    "write the bare domain, e.g. \"tenant.auth0.com\"",
                );
                None
            }
        }
        _ => {
            problem(
                problems,
                key,
                format!("`{domain}` is not a domain"),
                "write the bare domain, e.g. \"tenant.auth0.com\" or \"auth.example.com\"",
            );
            None
        }
    }
}

fn required(problems: &mut Vec<Problem>, key: String, value: Option<String>, fix: &str) -> String {
    match value.filter(|v| !v.trim().is_empty()) {
        Some(v) => v,
        None => {
            problem(problems, key, "missing", fix);
            String::new()
        }
    }
}

pub(super) fn validate(
    id: &str,
    raw: RawProvider,
    environment: Environment,
    problems: &mut Vec<Problem>,
) -> Option<ProviderConfig> {
    let key = |k: &str| format!("providers.{id}.{k}");
    let secret_env = format!(
        "BROKER_PROVIDERS__{}__CLIENT_SECRET",
        id.to_ascii_uppercase().replace('-', "_")
    );
    let Some(kind_str) = raw.kind.clone() else {
        problem(
            problems,
            key("kind"),
            "missing",
            "add kind = \"oidc\", \"auth0\", \"cognito\", \"firebase\" or \"dev\"",
        );
        return None;
    };
    let Some(kind) = ProviderKind::parse(&kind_str) else {
        problem(
            problems,
            key("kind"),
            format!("`{kind_str}` is not a provider kind"),
            "use one of: oidc, auth0, cognito, firebase, dev",
        );
        return None;
    };
    let before = problems.len();
    for k in present_keys(&raw) {
        if !kind_keys(kind).contains(&k) {
            problem(
                problems,
                key(k),
                format!("not a setting of a {} provider", kind.as_str()),
                "remove it (see providers/ for this kind's settings)",
            );
        }
    }

    let mut scopes = raw
        .scopes
        .clone()
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if kind == ProviderKind::Firebase {
        scopes.clear();
    } else if !scopes.iter().any(|s| s == "openid") {
        problem(
            problems,
            key("scopes"),
            "lacks `openid`",
            "add \"openid\" to the list",
        );
    }

    let mut claims = ClaimMapping::for_kind(kind);
    if let Some(c) = raw.claims {
        let set = |field: &mut String, v: Option<String>| {
            if let Some(v) = v {
                *field = v;
            }
        };
        set(&mut claims.email, c.email);
        set(&mut claims.email_verified, c.email_verified);
        set(&mut claims.name, c.name);
        set(&mut claims.given_name, c.given_name);
        set(&mut claims.family_name, c.family_name);
        set(&mut claims.picture, c.picture);
        set(&mut claims.locale, c.locale);
        set(&mut claims.groups, c.groups);
        set(&mut claims.roles, c.roles);
        if let Some(s) = c.select {
            claims.select = s;
        }
    }

    let mut issuer = None;
    let mut auth_params = Vec::new();
    let mut domain_base_url = None;
    let mut firebase = None;
    let client_id;
    let mut client_secret = raw.client_secret.clone().filter(|s| !s.is_empty());
    let needs_secret = matches!(kind, ProviderKind::Oidc | ProviderKind::Auth0);
    let revocation_endpoint = endpoint_url(
        &key("revocation_endpoint"),
        raw.revocation_endpoint.as_deref(),
        environment,
        problems,
    );
    let end_session_endpoint = endpoint_url(
        &key("end_session_endpoint"),
        raw.end_session_endpoint.as_deref(),
        environment,
        problems,
    );
    match kind {
        ProviderKind::Dev => {
            if environment == Environment::Production {
                problem(
                    problems,
                    key("kind"),
                    "the dev provider signs in anyone without a password",
                    "remove it in production, or set server.environment = \"development\"",
                );
            }
            client_id = raw
                .client_id
                .clone()
                .unwrap_or_else(|| "oidc-broker-dev".into());
        }
        ProviderKind::Oidc => {
            issuer = issuer_url(&key("issuer"), raw.issuer.as_deref(), environment, problems);
            client_id = required(
                problems,
                key("client_id"),
                raw.client_id.clone(),
                "copy the client id from the provider's application settings",
            );
        }
        ProviderKind::Auth0 => {
            let domain = required(
                problems,
                key("domain"),
                raw.domain.clone(),
                "copy the Domain from the Auth0 application's settings, e.g. \"tenant.eu.auth0.com\"",
            );
            if !domain.is_empty() {
                domain_base_url = domain_base(&key("domain"), &domain, environment, problems);
                // Auth0's issuer is the domain with a trailing slash, compared byte for byte.
                issuer = domain_base_url.as_ref().map(|b| format!("{b}/"));
            }
            client_id = required(
                problems,
                key("client_id"),
                raw.client_id.clone(),
                "copy the Client ID from the Auth0 application's settings",
            );
            for (name, v) in [
                ("audience", &raw.audience),
                ("organization", &raw.organization),
                ("connection", &raw.connection),
            ] {
                if let Some(v) = v {
                    auth_params.push((name.to_string(), v.clone()));
                }
            }
        }
        ProviderKind::Cognito => {
            let region = required(
                problems,
                key("region"),
                raw.region.clone(),
                "the user pool's AWS region, e.g. \"eu-west-1\"",
            );
            let pool = required(
                problems,
                key("user_pool_id"),
                raw.user_pool_id.clone(),
                "the User pool ID, e.g. \"eu-west-1_AbCdEfGhI\"",
            );
            let domain = required(
                problems,
                key("domain"),
                raw.domain.clone(),
                "the user pool's domain (App integration → Domain), e.g. \"myapp.auth.eu-west-1.amazoncognito.com\"",
            );
            if !domain.is_empty() {
                domain_base_url = domain_base(&key("domain"), &domain, environment, problems);
            }
            if !region.is_empty()
                && !region
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                problem(
                    problems,
                    key("region"),
                    format!("`{region}` is not an AWS region"),
                    "write it like \"eu-west-1\"",
                );
            }
            if !pool.is_empty() && !pool.starts_with(&format!("{region}_")) {
                problem(
                    problems,
                    key("user_pool_id"),
                    "does not start with the region",
                    "copy the pool id exactly, e.g. \"eu-west-1_AbCdEfGhI\"",
                );
            }
            issuer = match raw.issuer.as_deref() {
                // Only to point at a local stand-in during development.
                Some(custom) => match Url::parse(custom) {
                    Ok(u) if environment == Environment::Development && is_loopback_host(&u) => {
                        Some(custom.to_string())
                    }
                    _ => {
                        problem(
                            problems,
                            key("issuer"),
                            "a Cognito issuer is derived from region and user_pool_id",
                            "remove the key (it is only for a local stand-in in development)",
                        );
                        None
                    }
                },
                None => Some(format!("https://cognito-idp.{region}.amazonaws.com/{pool}")),
            };
            client_id = required(
                problems,
                key("client_id"),
                raw.client_id.clone(),
                "the App client id (App integration → App clients)",
            );
            if let Some(idp) = &raw.identity_provider {
                auth_params.push(("identity_provider".into(), idp.clone()));
            }
        }
        ProviderKind::Firebase => {
            let project_id = required(
                problems,
                key("project_id"),
                raw.project_id.clone(),
                "the Firebase project id (Project settings → General)",
            );
            let api_key = required(
                problems,
                key("api_key"),
                raw.api_key.clone(),
                "the Web API key (Project settings → General)",
            );
            if let Some(host) = &raw.emulator_host {
                let loopback = Url::parse(&format!("http://{host}"))
                    .is_ok_and(|u| is_loopback_host(&u) && u.port().is_some());
                if environment == Environment::Production {
                    problem(
                        problems,
                        key("emulator_host"),
                        "the emulator accepts unsigned tokens, so it is refused in production",
                        "remove emulator_host",
                    );
                } else if !loopback {
                    problem(
                        problems,
                        key("emulator_host"),
                        "must be a loopback host:port",
                        "e.g. \"127.0.0.1:9099\"",
                    );
                }
            }
            if let Some(path) = &raw.service_account_file
                && let Err(e) = crate::providers::firebase::check_service_account_file(path)
            {
                problem(
                    problems,
                    key("service_account_file"),
                    e,
                    "download a key from Google Cloud → IAM → Service accounts (the Firebase Admin SDK one), or remove the key",
                );
            }
            if let Some(u) = &raw.keys_url {
                let ok = Url::parse(u).is_ok_and(|u| {
                    u.scheme() == "https"
                        || (u.scheme() == "http"
                            && environment == Environment::Development
                            && is_loopback_host(&u))
                });
                if !ok {
                    problem(
                        problems,
                        key("keys_url"),
                        "must be an https URL (plain http only on loopback in development)",
                        "remove it to use Google's securetoken key set",
                    );
                }
            }
            issuer = Some(format!("https://securetoken.google.com/{project_id}"));
            client_id = project_id.clone();
            client_secret = None;
            firebase = Some(FirebaseSettings {
                project_id,
                api_key,
                emulator_host: raw.emulator_host.clone(),
                federated: raw.federated.clone().unwrap_or_default(),
                keys_url: raw.keys_url.clone(),
                service_account_file: raw.service_account_file.clone(),
            });
        }
    }
    if needs_secret && client_secret.is_none() {
        problem(
            problems,
            key("client_secret"),
            "missing",
            format!("copy it from the provider, or set {secret_env}"),
        );
    }

    let dev_users = match (kind, raw.users) {
        (ProviderKind::Dev, Some(users)) if users.is_empty() => {
            problem(
                problems,
                key("users"),
                "empty",
                "list at least one test user, or remove the key for the defaults",
            );
            vec![]
        }
        (ProviderKind::Dev, Some(users)) => users,
        (ProviderKind::Dev, None) => default_dev_users(),
        _ => vec![],
    };
    if problems.len() > before {
        return None;
    }
    Some(ProviderConfig {
        kind,
        display_name: raw.display_name.unwrap_or_else(|| match kind {
            ProviderKind::Dev => "Test users (dev)".into(),
            _ => id.to_string(),
        }),
        issuer,
        client_id,
        client_secret,
        scopes,
        auth_params,
        allow_private_network: raw.allow_private_network.unwrap_or(false),
        fetch_userinfo: raw.fetch_userinfo.unwrap_or(true),
        claims,
        domain_base: domain_base_url,
        organization: raw.organization,
        revocation_endpoint,
        end_session_endpoint,
        firebase,
        dev_users,
    })
}

fn issuer_url(
    key: &str,
    issuer: Option<&str>,
    environment: Environment,
    problems: &mut Vec<Problem>,
) -> Option<String> {
    match issuer.map(|s| (s, Url::parse(s))) {
        None => {
            problem(
                problems,
                key,
                "missing",
                "set the issuer URL exactly as the provider's discovery document states it",
            );
            None
        }
        Some((_, Err(_))) => {
            problem(
                problems,
                key,
                "not a URL",
                "set the issuer URL, e.g. \"https://idp.example.com\"",
            );
            None
        }
        Some((s, Ok(u)))
            if u.scheme() == "https"
                || (u.scheme() == "http"
                    && environment == Environment::Development
                    && is_loopback_host(&u)) =>
        {
            Some(s.to_string())
        }
        Some(_) => {
            problem(
                problems,
                key,
                "issuers must use https (plain http only for a loopback issuer in development)",
                "use the provider's https issuer URL",
            );
            None
        }
    }
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
