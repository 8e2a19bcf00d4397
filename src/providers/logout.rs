//! Logout with a provider, as the routes see it: revoking what the session held there, the
//! provider's own logout page, and logout the provider starts (back- and front-channel).

use serde_json::{Map, Value};

use super::error::NotSupported;
use super::{Flow, OidcClient, Provider, RevokeError};

impl Provider {
    /// Revokes a refresh token at the provider (RFC 7009). `Ok(false)` when the provider names no
    /// revocation endpoint; [`RevokeError::NotSupported`] when the kind revokes no single tokens
    /// (see [`Provider::end_user_sessions`]).
    pub async fn revoke_refresh_token(&self, refresh_token: &str) -> Result<bool, RevokeError> {
        match &self.flow {
            Flow::Oidc(client) => client.revoke(refresh_token).await,
            Flow::Firebase(_) => Err(RevokeError::NotSupported),
        }
    }

    /// Ends the user's sessions at the provider, for a kind that ends them by user rather than by
    /// token: Firebase has no token revocation endpoint, its sessions end by `validSince` (which
    /// needs admin credentials). Best effort, logged with the local `session`.
    pub async fn end_user_sessions(&self, subject: &str, session: &str) {
        let Flow::Firebase(fb) = &self.flow else {
            return;
        };
        match fb.revoke_sessions(subject).await {
            Ok(true) => {
                tracing::info!(provider = %fb.id, session = %session, "Firebase sessions revoked")
            }
            Ok(false) => {
                tracing::info!(provider = %fb.id, "Firebase sessions not revoked: no service account configured")
            }
            Err(e) => {
                tracing::warn!(provider = %fb.id, session = %session, reason = %e.reason(), "Firebase revocation failed")
            }
        }
    }

    /// Where to send the browser to log out at the provider too (RP-initiated logout), if the
    /// provider has such a place; `id_token_hint` goes along where the provider takes it.
    pub async fn logout_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: &str,
    ) -> Option<String> {
        match &self.flow {
            Flow::Oidc(client) => {
                client
                    .logout_url(id_token_hint, post_logout_redirect_uri)
                    .await
            }
            Flow::Firebase(_) => None,
        }
    }

    /// Logout the provider starts (OpenID Connect Back-Channel and Front-Channel Logout), if the
    /// kind has it.
    pub fn upstream_logout(&self) -> Result<UpstreamLogout<'_>, NotSupported> {
        match &self.flow {
            Flow::Oidc(client) => Ok(UpstreamLogout { client }),
            Flow::Firebase(_) => Err(NotSupported),
        }
    }
}

/// A provider that can tell the broker its users logged out.
pub struct UpstreamLogout<'a> {
    client: &'a OidcClient,
}

impl UpstreamLogout<'_> {
    /// The issuer a front-channel logout request must name (`iss`).
    pub fn issuer(&self) -> &str {
        self.client.issuer.as_str()
    }

    /// Verifies a back-channel logout token (§2.6); `Err` says why it was refused, never with the
    /// token. Replay (`jti`) is the caller's to check.
    pub async fn verify_logout_token(&self, raw: &str) -> Result<Map<String, Value>, String> {
        self.client.verify_logout_token(raw).await
    }
}
