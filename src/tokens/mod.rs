//! Provider tokens kept server side, sealed at rest (see [`seal`]). The browser never holds one.

pub mod broker_jwt;
mod claims;
pub mod seal;
mod verified;

use serde::{Deserialize, Serialize};

use crate::providers::ProviderTokens;
use seal::{KeyRing, SealError};

/// The provider tokens of one local session, as sealed into the session index.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredTokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub id_token: Option<String>,
    /// When the access token expires (unix seconds), if the provider said.
    pub expires_at: Option<i64>,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens")
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("has_id_token", &self.id_token.is_some())
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl StoredTokens {
    pub fn from_response(t: &ProviderTokens, now: i64) -> Self {
        StoredTokens {
            access_token: t.access_token.clone(),
            refresh_token: t.refresh_token.clone(),
            id_token: t.id_token.clone(),
            expires_at: t
                .expires_in
                .and_then(|s| i64::try_from(s).ok())
                .map(|s| now + s),
        }
    }
}

/// Seals and opens the tokens of a session; the session handle is the sealing context.
pub struct TokenVault {
    ring: KeyRing,
}

impl TokenVault {
    pub fn new(ring: KeyRing) -> Self {
        TokenVault { ring }
    }

    pub fn seal(&self, tokens: &StoredTokens, handle: &str) -> Result<String, SealError> {
        let json = serde_json::to_vec(tokens).map_err(|_| SealError::Crypto)?;
        self.ring.seal(&json, handle)
    }

    pub fn open(&self, sealed: &str, handle: &str) -> Result<StoredTokens, SealError> {
        let plain = self.ring.open(sealed, handle)?;
        serde_json::from_slice(&plain).map_err(|_| SealError::Malformed)
    }

    /// Seals a single value (a refresh token queued for revocation).
    pub fn seal_value(&self, value: &str, context: &str) -> Result<String, SealError> {
        self.ring.seal(value.as_bytes(), context)
    }

    pub fn open_value(&self, sealed: &str, context: &str) -> Result<String, SealError> {
        String::from_utf8(self.ring.open(sealed, context)?).map_err(|_| SealError::Malformed)
    }
}
