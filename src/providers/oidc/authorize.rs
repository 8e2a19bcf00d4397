//! The authorization request (OAuth 2.0 code flow with PKCE and a nonce) and the checks on the
//! response the browser brings back.

use url::Url;

use super::OidcClient;
use crate::providers::error::ProviderError;

impl OidcClient {
    /// The URL the browser is sent to.
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        code_challenge: &str,
        hints: &[(&'static str, String)],
    ) -> Result<Url, ProviderError> {
        let d = self.metadata().await?;
        let mut url: Url = d.metadata.authorization_endpoint().url().clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        // The app's hints win over the same parameters set in the provider's config.
        for (k, v) in &self.auth_params {
            if !hints.iter().any(|(h, _)| h == k) {
                url.query_pairs_mut().append_pair(k, v);
            }
        }
        for (k, v) in hints {
            url.query_pairs_mut().append_pair(k, v);
        }
        Ok(url)
    }

    /// RFC 9207: `iss` in the authorization response must equal the issuer exactly; it must be
    /// present when the provider says it sends it.
    pub async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), ProviderError> {
        let d = self.metadata().await?;
        match iss {
            Some(iss) if iss == self.issuer.as_str() => Ok(()),
            Some(_) => Err(ProviderError::bad_request(
                "issuer_mismatch",
                "The sign-in response names a different identity provider than the one this login was started with (RFC 9207 iss parameter). Start the login again.",
            )),
            None if d
                .metadata
                .additional_metadata()
                .authorization_response_iss_parameter_supported
                == Some(true) =>
            {
                Err(ProviderError::bad_request(
                    "issuer_missing",
                    "The sign-in response lacks the iss parameter this provider promises to send. Start the login again.",
                ))
            }
            None => Ok(()),
        }
    }
}
