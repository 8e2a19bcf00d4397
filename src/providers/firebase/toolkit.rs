//! Identity Toolkit's sign-in API: password sign-in, federated sign-in (`createAuthUri` → the
//! identity provider → `signInWithIdp`), and securetoken's refresh; its error codes in words.

use serde::Deserialize;
use serde_json::{Value, json};
use url::Url;

use super::FirebaseClient;
use crate::providers::error::{ProviderError, safe_code, transport_error};
use crate::providers::tokens::ProviderTokens;

/// What Identity Toolkit's sign-in methods answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInResponse {
    id_token: String,
    refresh_token: Option<String>,
    expires_in: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthUri {
    pub auth_uri: String,
    pub session_id: Option<String>,
}

#[derive(Deserialize)]
struct GoogleError {
    error: GoogleErrorBody,
}

#[derive(Deserialize)]
struct GoogleErrorBody {
    message: String,
}

impl FirebaseClient {
    fn toolkit_url(&self, method: &str) -> Result<Url, ProviderError> {
        let mut u = Url::parse(&format!("{}/accounts:{method}", self.toolkit_base))
            .map_err(ProviderError::internal)?;
        u.query_pairs_mut().append_pair("key", &self.api_key);
        Ok(u)
    }

    async fn toolkit(&self, method: &str, body: Value) -> Result<Value, ProviderError> {
        let url = self.toolkit_url(method)?;
        let resp = self
            .http
            .post_json(&url, &body, None)
            .await
            .map_err(|e| transport_error(&self.id, e))?;
        if resp.status().is_success() {
            return serde_json::from_slice(resp.body()).map_err(|_| {
                ProviderError::upstream(
                    "provider_error",
                    "Firebase answered something unreadable.",
                    format!("{method}: not JSON"),
                )
            });
        }
        let code = serde_json::from_slice::<GoogleError>(resp.body())
            .map(|e| e.error.message)
            .unwrap_or_else(|_| format!("status {}", resp.status()));
        // Firebase messages are codes such as INVALID_LOGIN_CREDENTIALS, sometimes with " : detail".
        let code = safe_code(code.split(" : ").next().unwrap_or_default());
        Err(firebase_error(method, &code, resp.status()))
    }

    /// `accounts:signInWithPassword`: email and password, checked by Firebase.
    pub async fn sign_in_with_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<ProviderTokens, ProviderError> {
        let v = self
            .toolkit(
                "signInWithPassword",
                json!({"email": email, "password": password, "returnSecureToken": true}),
            )
            .await?;
        sign_in_tokens(v)
    }

    /// `accounts:createAuthUri`: where to send the browser for a federated provider.
    pub async fn create_auth_uri(
        &self,
        provider_id: &str,
        continue_uri: &str,
    ) -> Result<AuthUri, ProviderError> {
        let v = self
            .toolkit(
                "createAuthUri",
                json!({"providerId": provider_id, "continueUri": continue_uri}),
            )
            .await?;
        serde_json::from_value(v).map_err(|_| {
            ProviderError::upstream(
                "provider_error",
                "Firebase did not say where to sign in.",
                "createAuthUri: no authUri",
            )
        })
    }

    /// `accounts:signInWithIdp`: finishes a federated sign-in from the URL the provider sent the
    /// browser back to.
    pub async fn sign_in_with_idp(
        &self,
        request_uri: &str,
        session_id: Option<&str>,
    ) -> Result<ProviderTokens, ProviderError> {
        let mut body = json!({"requestUri": request_uri, "returnSecureToken": true, "returnIdpCredential": true});
        if let Some(s) = session_id {
            body["sessionId"] = json!(s);
        }
        let v = self.toolkit("signInWithIdp", body).await?;
        sign_in_tokens(v)
    }

    /// securetoken `v1/token`: a new ID token for a refresh token. Fields are snake_case and
    /// `expires_in` is a string.
    pub async fn refresh(&self, refresh_token: &str) -> Result<ProviderTokens, ProviderError> {
        let mut url = Url::parse(&self.securetoken_url).map_err(ProviderError::internal)?;
        url.query_pairs_mut().append_pair("key", &self.api_key);
        let resp = self
            .http
            .post_form(
                &url,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
                None,
            )
            .await
            .map_err(|e| transport_error(&self.id, e))?;
        if !resp.status().is_success() {
            let code = serde_json::from_slice::<GoogleError>(resp.body())
                .map(|e| e.error.message)
                .unwrap_or_default();
            let code = safe_code(&code);
            return Err(firebase_error("refresh", &code, resp.status()));
        }
        let tokens: ProviderTokens = serde_json::from_slice(resp.body()).map_err(|e| {
            ProviderError::upstream(
                "provider_error",
                "Firebase's token refresh answer is malformed.",
                format!("securetoken: {e}"),
            )
        })?;
        Ok(tokens)
    }
}

fn sign_in_tokens(v: Value) -> Result<ProviderTokens, ProviderError> {
    let r: SignInResponse = serde_json::from_value(v).map_err(|_| {
        ProviderError::upstream(
            "provider_error",
            "Firebase's sign-in answer has no ID token.",
            "sign-in: no idToken",
        )
    })?;
    Ok(ProviderTokens {
        access_token: r.id_token.clone(),
        token_type: Some("Bearer".into()),
        expires_in: r.expires_in.and_then(|s| s.parse().ok()),
        refresh_token: r.refresh_token,
        id_token: Some(r.id_token),
        scope: None,
    })
}

/// Identity Toolkit error codes, in words a person can act on.
fn firebase_error(method: &str, code: &str, status: http::StatusCode) -> ProviderError {
    let (kind_code, message) = match code {
        "INVALID_LOGIN_CREDENTIALS"
        | "INVALID_PASSWORD"
        | "EMAIL_NOT_FOUND"
        | "INVALID_EMAIL"
        | "MISSING_PASSWORD" => (
            "invalid_credentials",
            "The email or password is not right.".to_string(),
        ),
        "USER_DISABLED" => (
            "user_disabled",
            "This account has been disabled.".to_string(),
        ),
        "TOO_MANY_ATTEMPTS_TRY_LATER" => (
            "too_many_attempts",
            "Too many attempts. Try again later.".to_string(),
        ),
        "TOKEN_EXPIRED" | "INVALID_REFRESH_TOKEN" | "USER_NOT_FOUND" => (
            "invalid_grant",
            "The Firebase sign-in has ended; sign in again.".to_string(),
        ),
        "OPERATION_NOT_ALLOWED" => (
            "provider_error",
            "This sign-in method is not enabled in Firebase.".to_string(),
        ),
        other => (
            "provider_error",
            format!("Firebase refused the request ({other})."),
        ),
    };
    let cause = format!("firebase {method}: {code} ({status})");
    if status.is_server_error() || status == http::StatusCode::NOT_IMPLEMENTED {
        ProviderError::upstream(
            "provider_error",
            format!("Firebase could not do this ({code})."),
            cause,
        )
    } else if kind_code == "invalid_credentials"
        || kind_code == "user_disabled"
        || kind_code == "too_many_attempts"
    {
        ProviderError::unauthorized(kind_code, message, cause)
    } else {
        ProviderError::upstream(kind_code, message, cause)
    }
}
