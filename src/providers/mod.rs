//! Identity providers: one [`Provider`] per configured `[providers.ID]`. Every OpenID Connect kind
//! (oidc, auth0, cognito, dev) goes through the same relying-party code; Firebase, which has no
//! authorization endpoint for third parties, goes through its Identity Toolkit API. Kinds differ
//! only where a provider departs from the standard.

pub mod dev;
pub mod firebase;
mod oidc;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use firebase::FirebaseClient;
pub use oidc::{Discovered, OidcClient, ProviderTokens, RevokeError};

use crate::clock::SharedClock;
use crate::config::{ClaimMapping, Config, ProviderKind};
use crate::http_client::HttpClient;

pub struct Provider {
    pub id: String,
    pub kind: ProviderKind,
    pub display_name: String,
    pub claims: ClaimMapping,
    pub flow: Flow,
}

pub enum Flow {
    Oidc(OidcClient),
    Firebase(FirebaseClient),
}

/// A failed refresh: `definitive` (the grant is gone, e.g. `invalid_grant`) or passing.
#[derive(Debug)]
pub struct RefreshError {
    pub definitive: bool,
    pub reason: String,
}

impl Provider {
    /// Refreshes the provider tokens: the OAuth refresh grant, or Firebase's securetoken.
    pub async fn refresh(&self, refresh_token: &str) -> Result<ProviderTokens, RefreshError> {
        match &self.flow {
            Flow::Oidc(c) => c.refresh(refresh_token).await,
            Flow::Firebase(f) => f.refresh(refresh_token).await.map_err(|e| RefreshError {
                definitive: e.code == "invalid_grant",
                reason: e.cause.unwrap_or(e.message),
            }),
        }
    }

    /// For readiness: discovery succeeded (OIDC kinds), or the emulator answers (Firebase).
    pub async fn ready(&self) -> bool {
        match &self.flow {
            Flow::Oidc(c) => c.metadata().await.is_ok(),
            Flow::Firebase(f) => f.ready().await,
        }
    }
}

/// A failed call to a provider: a timeout or connection failure is a 503 (try again); a refused
/// address or a malformed request is the provider being unusable as configured.
pub(crate) fn transport_error(
    provider_id: &str,
    e: crate::http_client::HttpError,
) -> crate::error::AppError {
    use crate::error::AppError;
    if e.is_transient() {
        AppError::unavailable(&format!("identity provider `{provider_id}`"), e)
    } else {
        AppError::provider(
            "provider_unreachable",
            format!(
                "The identity provider `{provider_id}` cannot be used: its address is not allowed or the request failed."
            ),
            e,
        )
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
