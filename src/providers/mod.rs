//! Identity providers: one [`Provider`] per configured `[providers.ID]`. Every OpenID Connect kind
//! (oidc, auth0, cognito, dev) goes through the same relying-party code; Firebase, which has no
//! authorization endpoint for third parties, goes through its Identity Toolkit API. Kinds differ
//! only where a provider departs from the standard, and only in here: a [`Provider`]'s methods
//! (start a login, complete it, revoke, the logout URL, logout tokens) answer for its kind.

mod audience;
pub mod dev;
mod discovery;
mod error;
pub mod firebase;
mod login;
mod logout;
mod oidc;
mod tokens;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use error::{NotSupported, ProviderError, ProviderErrorKind};
pub use firebase::FirebaseClient;
pub use login::{
    AuthorizationRequest, CallbackResponse, CompletedLogin, HostedSignIn, LoginStart, StartedLogin,
    UpstreamHints,
};
pub use logout::UpstreamLogout;
pub use oidc::{Discovered, Endpoint, OidcClient, RevokeError};
pub use tokens::ProviderTokens;

use crate::clock::SharedClock;
use crate::config::{ClaimMapping, Config, ProviderKind};
use crate::http_client::HttpClient;

pub struct Provider {
    pub id: String,
    pub kind: ProviderKind,
    pub display_name: String,
    pub claims: ClaimMapping,
    /// `/auth/callback/{id}` on the broker: where the provider sends the browser back.
    callback_url: String,
    flow: Flow,
}

/// How the broker signs in with a provider: as an OpenID Connect relying party, or through
/// Firebase's API. Only this module looks inside.
enum Flow {
    Oidc(OidcClient),
    Firebase(FirebaseClient),
}

/// A failed refresh: `definitive` (the grant is gone, e.g. `invalid_grant`) or passing.
#[derive(Debug)]
pub struct RefreshError {
    pub definitive: bool,
    pub reason: String,
}

/// A refresh answer whose ID token, if it carried one, was verified (OpenID Connect Core §12.2).
#[derive(Debug)]
pub struct Refreshed {
    /// Without an ID token when the one in the answer was refused.
    pub tokens: ProviderTokens,
    /// Why the answer's ID token was refused and left out (never the token itself).
    pub id_token_refused: Option<String>,
}

/// What readiness says about one provider.
#[derive(Debug, Default)]
pub struct ProviderCheck {
    /// Why the provider cannot be used now (discovery's error), if it cannot.
    pub error: Option<String>,
    /// Problems that do not stop sign-in (a refresh token that cannot be revoked, …).
    pub warnings: Vec<String>,
}

impl Provider {
    /// Refreshes the provider tokens — the OAuth refresh grant, or Firebase's securetoken — and
    /// verifies the ID token that comes back against the session's `subject`.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        subject: &str,
    ) -> Result<Refreshed, RefreshError> {
        match &self.flow {
            Flow::Oidc(c) => {
                let mut tokens = c.refresh(refresh_token).await?;
                let mut id_token_refused = None;
                if let Some(raw) = tokens.id_token.as_deref()
                    && let Err(why) = c.verify_refreshed_id_token(raw, subject).await
                {
                    tokens.id_token = None;
                    id_token_refused = Some(why);
                }
                Ok(Refreshed {
                    tokens,
                    id_token_refused,
                })
            }
            Flow::Firebase(f) => {
                let tokens = f.refresh(refresh_token).await.map_err(|e| RefreshError {
                    definitive: e.code == "invalid_grant",
                    reason: e.reason(),
                })?;
                // Firebase's access token is its ID token: a refused one refuses the whole answer.
                let raw = tokens.id_token.as_deref().unwrap_or(&tokens.access_token);
                let refused = |reason: String| RefreshError {
                    definitive: false,
                    reason: format!("the refreshed ID token was refused: {reason}"),
                };
                let claims = f
                    .verify_id_token(raw, None)
                    .await
                    .map_err(|e| refused(e.reason()))?;
                if claims.get("sub").and_then(serde_json::Value::as_str) != Some(subject) {
                    return Err(refused("its subject (sub) is not the session's".into()));
                }
                Ok(Refreshed {
                    tokens,
                    id_token_refused: None,
                })
            }
        }
    }

    /// For readiness: discovery succeeded (OIDC kinds), or the emulator answers (Firebase).
    pub async fn ready(&self) -> bool {
        match &self.flow {
            Flow::Oidc(c) => c.metadata().await.is_ok(),
            Flow::Firebase(f) => f.ready().await,
        }
    }

    /// Readiness with reasons: discovery's error, and warnings such as refresh tokens that
    /// logout cannot revoke.
    pub async fn check(&self) -> ProviderCheck {
        match &self.flow {
            Flow::Oidc(c) => match c.check().await {
                Ok(warnings) => ProviderCheck {
                    error: None,
                    warnings,
                },
                Err(e) => ProviderCheck {
                    error: Some(e),
                    warnings: Vec::new(),
                },
            },
            Flow::Firebase(f) => ProviderCheck {
                error: (!f.ready().await).then(|| "the Firebase emulator does not answer".into()),
                warnings: f.warnings(),
            },
        }
    }
}

pub struct ProviderRegistry {
    providers: BTreeMap<String, Arc<Provider>>,
}

impl ProviderRegistry {
    /// `dev_secrets` holds the client secret of each built-in dev provider.
    pub fn new(
        config: &Config,
        http: HttpClient,
        clock: SharedClock,
        dev_secrets: &BTreeMap<String, String>,
    ) -> Self {
        let providers = config
            .providers
            .iter()
            .map(|(id, pc)| {
                let flow = match &pc.firebase {
                    Some(settings) => Flow::Firebase(FirebaseClient::new(
                        id,
                        settings,
                        http.clone(),
                        clock.clone(),
                    )),
                    None => Flow::Oidc(OidcClient::new(
                        id,
                        pc,
                        config,
                        http.clone(),
                        clock.clone(),
                        dev_secrets.get(id).cloned(),
                    )),
                };
                let p = Provider {
                    id: id.clone(),
                    callback_url: config.server.url(&format!("/auth/callback/{id}")),
                    kind: pc.kind,
                    display_name: pc.display_name.clone(),
                    claims: pc.claims.clone(),
                    flow,
                };
                (id.clone(), Arc::new(p))
            })
            .collect();
        ProviderRegistry { providers }
    }

    /// Every provider checked at once, each within `timeout` (for `check-config`). The dev
    /// provider is left out: the broker itself serves it.
    pub async fn check_all(&self, timeout: std::time::Duration) -> Vec<(String, ProviderCheck)> {
        let checks = self
            .providers
            .values()
            .filter(|p| p.kind != ProviderKind::Dev)
            .map(|p| async move {
                let check = tokio::time::timeout(timeout, p.check())
                    .await
                    .unwrap_or_else(|_| ProviderCheck {
                        error: Some(format!(
                            "the provider did not answer within {} s",
                            timeout.as_secs()
                        )),
                        warnings: Vec::new(),
                    });
                (p.id.clone(), check)
            });
        futures::future::join_all(checks).await
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.providers.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    pub fn len(&self) -> usize {
        self.providers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}
