//! Token revocation (RFC 7009), at the endpoint the provider names or its kind implies.

use super::{Endpoint, OidcClient};
use crate::config::ProviderKind;

/// A token that was not revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// The provider's kind revokes no single tokens (Firebase ends a user's sessions instead).
    #[error("the provider's kind revokes no single tokens")]
    NotSupported,
    /// The provider was asked and did not revoke it.
    #[error("{reason}")]
    Failed {
        /// A timeout or 5xx: worth retrying later.
        transient: bool,
        reason: String,
    },
}

impl OidcClient {
    /// Where tokens are revoked: the explicit setting, Auth0 `/oauth/revoke`, Cognito
    /// `/oauth2/revoke`, or the RFC 7009 `revocation_endpoint` of discovery or RFC 8414 metadata.
    pub async fn revocation_endpoint(&self) -> Option<Endpoint> {
        match self.fixed_revocation_endpoint() {
            Some(e) => Some(e),
            None => self.metadata().await.ok()?.revocation.clone(),
        }
    }

    /// Revokes a refresh token. `Ok(false)` when the provider offers no revocation.
    pub async fn revoke(&self, refresh_token: &str) -> Result<bool, RevokeError> {
        self.revoke_token(refresh_token, "refresh_token").await
    }

    /// Revokes a token (RFC 7009 §2.1 `token_type_hint`: `refresh_token` or `access_token`; HTTP
    /// Basic client authentication, Auth0's credentials in the body). `Ok(false)` when the
    /// provider offers no revocation.
    pub async fn revoke_token(&self, token: &str, hint: &str) -> Result<bool, RevokeError> {
        let Some(endpoint) = self.revocation_endpoint().await.map(|e| e.url) else {
            return Ok(false);
        };
        let mut form = vec![("token", token), ("token_type_hint", hint)];
        // Auth0 takes the client credentials in the body; RFC 7009 and Cognito use HTTP Basic.
        let basic = self.client_auth(&mut form, self.kind == ProviderKind::Auth0);
        let resp = self
            .http
            .post_form(&endpoint, &form, basic)
            .await
            .map_err(|e| RevokeError::Failed {
                transient: e.is_transient(),
                reason: e.to_string(),
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(true);
        }
        // RFC 7009 §2.2: an invalid token is not an error for revocation; it is already unusable.
        let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap_or_default();
        if status == http::StatusCode::BAD_REQUEST && body["error"] == "invalid_token" {
            return Ok(true);
        }
        Err(RevokeError::Failed {
            transient: status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS,
            reason: format!("revocation status {status}"),
        })
    }
}
