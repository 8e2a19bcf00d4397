//! Admin calls to Identity Toolkit: revoking a user's sessions at logout, authenticated as the
//! emulator's owner or with a service account (a JWT bearer grant, RFC 7523).

use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::Mutex;
use url::Url;

use super::FirebaseClient;
use crate::config::FirebaseSettings;
use crate::providers::error::{ProviderError, transport_error};
use crate::providers::tokens::ProviderTokens;

/// How the broker authenticates Identity Toolkit admin calls (revoking a user's sessions).
pub(super) enum AdminAuth {
    None,
    /// The emulator takes `Authorization: Bearer owner` for admin calls.
    Emulator,
    ServiceAccount(ServiceAccount),
}

#[derive(Deserialize)]
struct ServiceAccountFile {
    client_email: String,
    private_key: String,
    #[serde(default = "google_token_uri")]
    token_uri: String,
}

fn google_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

pub(super) struct ServiceAccount {
    file: ServiceAccountFile,
    /// An access token and when it expires.
    cached: Mutex<Option<(String, i64)>>,
}

impl AdminAuth {
    pub(super) fn from_settings(settings: &FirebaseSettings) -> Self {
        if settings.emulator_host.is_some() {
            return AdminAuth::Emulator;
        }
        let Some(path) = &settings.service_account_file else {
            return AdminAuth::None;
        };
        // Config validation read and parsed it already; a failure here means it changed since.
        match std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<ServiceAccountFile>(&t).ok())
        {
            Some(file) => AdminAuth::ServiceAccount(ServiceAccount {
                file,
                cached: Mutex::new(None),
            }),
            None => {
                tracing::error!(path = %path, "the Firebase service account file is unreadable; logout cannot revoke Firebase sessions");
                AdminAuth::None
            }
        }
    }
}

impl FirebaseClient {
    /// Revokes every Firebase session of a user (`accounts:update` with `validSince` = now): ID
    /// tokens issued before stop verifying at Firebase. Needs admin credentials: the emulator's, or
    /// a service account. `Ok(false)` when none are configured.
    pub async fn revoke_sessions(&self, uid: &str) -> Result<bool, ProviderError> {
        let bearer = match &self.admin {
            AdminAuth::None => return Ok(false),
            AdminAuth::Emulator => "owner".to_string(),
            AdminAuth::ServiceAccount(sa) => self.service_account_token(sa).await?,
        };
        let url = format!(
            "{}/projects/{}/accounts:update",
            self.toolkit_base, self.project_id
        );
        let body =
            json!({"localId": uid, "validSince": self.clock.now().unix_timestamp().to_string()});
        let url = Url::parse(&url).map_err(ProviderError::internal)?;
        let resp = self
            .http
            .post_json(&url, &body, Some(&bearer))
            .await
            .map_err(|e| transport_error(&self.id, e))?;
        if resp.status().is_success() {
            Ok(true)
        } else {
            Err(ProviderError::upstream(
                "revocation_failed",
                "Firebase refused to revoke the sessions.",
                format!("accounts:update status {}", resp.status()),
            ))
        }
    }

    /// A Google OAuth access token for the service account (JWT bearer grant, RFC 7523), cached.
    async fn service_account_token(&self, sa: &ServiceAccount) -> Result<String, ProviderError> {
        let now = self.clock.now().unix_timestamp();
        let mut cached = sa.cached.lock().await;
        if let Some((token, exp)) = cached.as_ref()
            && *exp > now + 60
        {
            return Ok(token.clone());
        }
        let claims = json!({"iss": sa.file.client_email, "scope": "https://www.googleapis.com/auth/identitytoolkit", "aud": sa.file.token_uri, "iat": now, "exp": now + 3600});
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(sa.file.private_key.as_bytes())
            .map_err(ProviderError::internal)?;
        let assertion =
            jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::RS256), &claims, &key)
                .map_err(ProviderError::internal)?;
        let url = Url::parse(&sa.file.token_uri).map_err(ProviderError::internal)?;
        let resp = self
            .http
            .post_form(
                &url,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ],
                None,
            )
            .await
            .map_err(|e| transport_error(&self.id, e))?;
        if !resp.status().is_success() {
            return Err(ProviderError::upstream(
                "revocation_failed",
                "Google refused the service account.",
                format!("token_uri status {}", resp.status()),
            ));
        }
        let tokens: ProviderTokens =
            serde_json::from_slice(resp.body()).map_err(ProviderError::internal)?;
        let exp = now
            + tokens
                .expires_in
                .and_then(|e| i64::try_from(e).ok())
                .unwrap_or(3600);
        *cached = Some((tokens.access_token.clone(), exp));
        Ok(tokens.access_token)
    }
}
