//! Calls to the token and userinfo endpoints: the code exchange, userinfo, the refresh grant.

use openidconnect::core::CoreClientAuthMethod;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::OidcClient;
use crate::providers::RefreshError;
use crate::providers::error::{ProviderError, safe_code, transport_error};
use crate::providers::tokens::ProviderTokens;

#[derive(Deserialize)]
struct TokenErrorBody {
    error: String,
}

impl OidcClient {
    /// Exchanges an authorization code (with its PKCE verifier) at the token endpoint.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<ProviderTokens, ProviderError> {
        let d = self.metadata().await?;
        let token_url = d
            .metadata
            .token_endpoint()
            .map(|u| u.url().clone())
            .ok_or_else(|| {
                ProviderError::upstream(
                    "provider_misconfigured",
                    "The identity provider has no token endpoint.",
                    "no token_endpoint in discovery",
                )
            })?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", pkce_verifier),
        ];
        // client_secret_basic unless the provider only supports client_secret_post.
        let methods = d.metadata.token_endpoint_auth_methods_supported();
        let use_post = methods.is_some_and(|m| {
            !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && m.contains(&CoreClientAuthMethod::ClientSecretPost)
        });
        let basic = self.client_auth(&mut form, use_post);
        let resp = self
            .http
            .post_form(&token_url, &form, basic)
            .await
            .map_err(|e| transport_error(&self.id, e))?;
        parse_token_response(&self.id, resp)
    }

    /// Claims from the userinfo endpoint, when configured and advertised; `sub` must match.
    pub async fn userinfo(
        &self,
        access_token: &str,
        subject: &str,
    ) -> Result<Option<Map<String, Value>>, ProviderError> {
        if !self.fetch_userinfo {
            return Ok(None);
        }
        let d = self.metadata().await?;
        let Some(endpoint) = d.metadata.userinfo_endpoint().map(|u| u.url().clone()) else {
            return Ok(None);
        };
        let resp = self
            .http
            .get(&endpoint, Some(access_token))
            .await
            .map_err(|e| transport_error(&self.id, e))?;
        if !resp.status().is_success() {
            return Err(ProviderError::upstream(
                "userinfo_failed",
                "The identity provider refused the user information request.",
                format!("userinfo status {}", resp.status()),
            ));
        }
        let claims: Map<String, Value> = serde_json::from_slice(resp.body())
            .map_err(|_| ProviderError::upstream("userinfo_failed", "The identity provider's user information is not a JSON object (signed userinfo is not supported).", "userinfo not JSON"))?;
        // OIDC Core §5.3.2: the userinfo `sub` must equal the ID token's.
        if claims.get("sub").and_then(Value::as_str) != Some(subject) {
            return Err(ProviderError::upstream(
                "userinfo_failed",
                "The identity provider's user information is for a different user.",
                "userinfo sub mismatch",
            ));
        }
        Ok(Some(claims))
    }

    /// The refresh grant. A 4xx answer (other than 429) is definitive — `invalid_grant` above all;
    /// a timeout or 5xx is transient.
    pub async fn refresh(&self, refresh_token: &str) -> Result<ProviderTokens, RefreshError> {
        let transient = |reason: String| RefreshError {
            definitive: false,
            reason,
        };
        let d = self.metadata().await.map_err(|e| transient(e.message))?;
        let token_url = d
            .metadata
            .token_endpoint()
            .map(|u| u.url().clone())
            .ok_or_else(|| transient("no token endpoint".into()))?;
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        let basic = self.client_auth(&mut form, false);
        let resp = self
            .http
            .post_form(&token_url, &form, basic)
            .await
            .map_err(|e| RefreshError {
                definitive: !e.is_transient(),
                reason: e.to_string(),
            })?;
        let status = resp.status();
        if status.is_success() {
            return serde_json::from_slice(resp.body())
                .map_err(|e| transient(format!("malformed refresh answer: {e}")));
        }
        let code = serde_json::from_slice::<TokenErrorBody>(resp.body())
            .map(|b| b.error)
            .unwrap_or_default();
        let code = safe_code(&code);
        let definitive = status.is_client_error() && status != http::StatusCode::TOO_MANY_REQUESTS;
        Err(RefreshError {
            definitive,
            reason: format!("refresh status {status} {code}"),
        })
    }
}

fn parse_token_response(
    provider: &str,
    resp: http::Response<Vec<u8>>,
) -> Result<ProviderTokens, ProviderError> {
    if resp.status().is_success() {
        return serde_json::from_slice::<ProviderTokens>(resp.body()).map_err(|e| {
            ProviderError::upstream(
                "token_exchange_failed",
                "The identity provider's token response is malformed.",
                format!("{provider}: token response: {e}"),
            )
        });
    }
    let code = serde_json::from_slice::<TokenErrorBody>(resp.body())
        .map(|b| b.error)
        .unwrap_or_else(|_| "unknown".into());
    // Only the OAuth error code is repeated; `error_description` can echo request data.
    let safe_code = safe_code(&code);
    Err(ProviderError::upstream(
        "token_exchange_failed",
        format!("The identity provider refused the sign-in ({safe_code}). Start the login again."),
        format!(
            "{provider}: token endpoint status {} error {safe_code}",
            resp.status()
        ),
    ))
}
