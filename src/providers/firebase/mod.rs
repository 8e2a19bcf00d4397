//! Firebase Authentication. Firebase has no authorization endpoint for third parties, so the broker
//! drives its Identity Toolkit REST API: password sign-in, federated sign-in (`createAuthUri` →
//! the identity provider → `signInWithIdp`), and ID tokens obtained by the Firebase JS SDK.
//!
//! ID tokens are verified as Firebase documents: RS256 with a `kid` from Google's securetoken key
//! set (cached as its `Cache-Control` says), `iss = https://securetoken.google.com/{project}`,
//! `aud = project`, `sub` non-empty and at most 128 characters, `iat` and `auth_time` in the past.
//! With `emulator_host` (development, loopback only) the emulator's unsigned tokens are accepted —
//! only `alg: none` with an empty signature, never a signed token with a bad signature.

mod admin;
mod id_token;
mod toolkit;

use tokio::sync::Mutex;
use url::Url;

use crate::clock::SharedClock;
use crate::config::FirebaseSettings;
use crate::http_client::HttpClient;

use admin::AdminAuth;
use id_token::{GOOGLE_KEYS, KeyCache};
pub use id_token::{HANDOFF_MAX_AUTH_AGE, IdTokenError};
pub use toolkit::AuthUri;

/// The broker as a client of one Firebase project.
pub struct FirebaseClient {
    pub id: String,
    pub project_id: String,
    pub issuer: String,
    pub emulator: bool,
    /// Providers enabled in Firebase, offered on the sign-in page.
    pub federated: Vec<String>,
    api_key: String,
    toolkit_base: String,
    securetoken_url: String,
    keys_url: String,
    /// Whether signed tokens can be checked: always outside the emulator; with the emulator only
    /// when a key set was configured (the emulator itself signs nothing and serves no keys).
    verifies_signatures: bool,
    admin: AdminAuth,
    http: HttpClient,
    clock: SharedClock,
    keys: Mutex<KeyCache>,
}

impl FirebaseClient {
    pub fn new(
        id: &str,
        settings: &FirebaseSettings,
        http: HttpClient,
        clock: SharedClock,
    ) -> Self {
        let (toolkit_base, securetoken_url) = match &settings.emulator_host {
            Some(host) => (
                format!("http://{host}/identitytoolkit.googleapis.com/v1"),
                format!("http://{host}/securetoken.googleapis.com/v1/token"),
            ),
            None => (
                "https://identitytoolkit.googleapis.com/v1".into(),
                "https://securetoken.googleapis.com/v1/token".into(),
            ),
        };
        FirebaseClient {
            id: id.to_string(),
            project_id: settings.project_id.clone(),
            issuer: format!("https://securetoken.google.com/{}", settings.project_id),
            emulator: settings.emulator_host.is_some(),
            federated: settings.federated.clone(),
            api_key: settings.api_key.clone(),
            toolkit_base,
            securetoken_url,
            verifies_signatures: settings.emulator_host.is_none() || settings.keys_url.is_some(),
            keys_url: settings
                .keys_url
                .clone()
                .unwrap_or_else(|| GOOGLE_KEYS.to_string()),
            http,
            clock,
            admin: AdminAuth::from_settings(settings),
            keys: Mutex::new(KeyCache::empty()),
        }
    }

    /// Firebase always issues refresh tokens; logout ends them only with admin credentials.
    pub fn warnings(&self) -> Vec<String> {
        match self.admin {
            AdminAuth::None => vec![
                "issues refresh tokens but cannot revoke them at logout: set service_account_file (logout revokes with validSince, which needs admin credentials)"
                    .into(),
            ],
            _ => Vec::new(),
        }
    }

    /// For readiness: Firebase needs no discovery; the emulator must answer.
    pub async fn ready(&self) -> bool {
        if !self.emulator {
            return true;
        }
        match Url::parse(&self.toolkit_base) {
            Ok(u) => self.http.get(&u, None).await.is_ok(),
            Err(_) => false,
        }
    }
}
