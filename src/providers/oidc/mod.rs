//! The OpenID Connect relying party: discovery, the authorization request, the code exchange and
//! ID token validation. Every kind but Firebase goes through here.

mod authorize;
mod exchange;
mod id_token;
mod logout;
mod metadata;
mod revoke;

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::IssuerUrl;
use tokio::sync::{Mutex, RwLock};
use url::Url;

use crate::clock::SharedClock;
use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::http_client::HttpClient;

pub use metadata::{Discovered, Endpoint};
pub use revoke::RevokeError;

/// Allowed clock difference with providers, for `exp` and `iat`.
const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// An ID token from a code exchange is minted moments before; older ones are refused.
const MAX_ID_TOKEN_AGE: Duration = Duration::from_secs(600);
/// Unknown `kid`s trigger at most one re-discovery per this interval (so forged tokens cannot
/// make the broker hammer a provider).
const REDISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// The relying party for one provider of an OpenID Connect kind (oidc, auth0, cognito, dev).
pub struct OidcClient {
    pub id: String,
    pub kind: ProviderKind,
    pub issuer: IssuerUrl,
    pub redirect_uri: String,
    client_id: String,
    auth_params: Vec<(String, String)>,
    organization: Option<String>,
    /// Auth0 and Cognito: `https://{domain}`, where their logout and revocation endpoints live.
    domain_base: Option<String>,
    client_secret: Option<String>,
    scopes: Vec<String>,
    fetch_userinfo: bool,
    /// Explicit settings, for providers whose metadata lacks them.
    revocation_endpoint: Option<Url>,
    end_session_endpoint: Option<Url>,
    http: HttpClient,
    clock: SharedClock,
    discovered: RwLock<Option<Arc<Discovered>>>,
    /// Serialises discovery; holds when the last key-triggered re-discovery ran.
    discovery_gate: Mutex<Option<Instant>>,
}

impl OidcClient {
    pub fn new(
        id: &str,
        pc: &ProviderConfig,
        config: &Config,
        http: HttpClient,
        clock: SharedClock,
        dev_secret: Option<String>,
    ) -> Self {
        let issuer = match pc.kind {
            ProviderKind::Dev => config.server.url(&format!("/dev/{id}")),
            _ => pc.issuer.clone().unwrap_or_default(),
        };
        // Config validation guarantees a URL; an unparsable one fails discovery with a clear error.
        let issuer = IssuerUrl::new(issuer.clone())
            .unwrap_or_else(|_| IssuerUrl::from_url(config.server.public_url.clone()));
        OidcClient {
            id: id.to_string(),
            kind: pc.kind,
            issuer,
            auth_params: pc.auth_params.clone(),
            organization: pc.organization.clone(),
            domain_base: pc.domain_base.clone(),
            redirect_uri: config.server.url(&format!("/auth/callback/{id}")),
            client_id: pc.client_id.clone(),
            client_secret: pc
                .client_secret
                .as_ref()
                .map(|s| s.expose().to_string())
                .or(dev_secret),
            scopes: pc.scopes.clone(),
            fetch_userinfo: pc.fetch_userinfo,
            revocation_endpoint: pc.revocation_endpoint.clone(),
            end_session_endpoint: pc.end_session_endpoint.clone(),
            http,
            clock,
            discovered: RwLock::new(None),
            discovery_gate: Mutex::new(None),
        }
    }

    /// Whether this provider hands out refresh tokens: with `offline_access` (OpenID Connect Core
    /// §11), or always (Cognito's code flow).
    pub fn issues_refresh_tokens(&self) -> bool {
        match self.kind {
            ProviderKind::Dev | ProviderKind::Firebase => false,
            ProviderKind::Cognito => true,
            ProviderKind::Oidc | ProviderKind::Auth0 => {
                self.scopes.iter().any(|s| s == "offline_access")
            }
        }
    }

    /// What readiness reports: discovery's error, or warnings about a working provider.
    pub async fn check(&self) -> Result<Vec<String>, String> {
        let d = self.metadata().await.map_err(|e| e.reason())?;
        let mut warnings = Vec::new();
        if self.issues_refresh_tokens() && d.revocation.is_none() {
            warnings.push(
                "issues refresh tokens but has no revocation endpoint (neither in discovery nor in RFC 8414 metadata): they stay valid at the provider after logout; set revocation_endpoint if it has one"
                    .to_string(),
            );
        }
        Ok(warnings)
    }

    /// Client authentication at the token and revocation endpoints: HTTP Basic
    /// (`client_secret_basic`), or the credentials in the form (`client_secret_post`) when
    /// `in_body`; a public client sends only its id. Returns the Basic credentials, if any.
    fn client_auth<'a>(
        &'a self,
        form: &mut Vec<(&'a str, &'a str)>,
        in_body: bool,
    ) -> Option<(&'a str, &'a str)> {
        match self.client_secret.as_deref() {
            Some(secret) if !in_body => Some((self.client_id.as_str(), secret)),
            Some(secret) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret));
                None
            }
            None => {
                form.push(("client_id", &self.client_id));
                None
            }
        }
    }

    /// For readiness: whether discovery succeeded (it is attempted when it has not).
    pub async fn ready(&self) -> bool {
        self.metadata().await.is_ok()
    }
}
