//! The claims of a broker access token, and why a token is refused.

use serde::{Deserialize, Serialize};

use crate::config::TokensConfig;
use crate::crypto;
use crate::identity::UserView;

/// The claims of a broker access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    /// The broker's own user id.
    pub sub: String,
    /// The public handle of the local session.
    pub sid: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub provider: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default)]
    pub email_verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// OpenID Provider mode: the app the token was issued to, its granted scopes, and the grant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
}

impl AccessClaims {
    pub fn new(
        issuer: &str,
        config: &TokensConfig,
        user: &UserView,
        handle: &str,
        now: i64,
        session_ends_at: i64,
    ) -> Self {
        let ttl = i64::try_from(config.access_ttl.as_secs()).unwrap_or(300);
        AccessClaims {
            iss: issuer.to_string(),
            aud: config.audience.clone(),
            sub: user.id.clone(),
            sid: handle.to_string(),
            iat: now,
            // Never past the session's own end.
            exp: (now + ttl).min(session_ends_at).max(now + 1),
            jti: crypto::random_token(12),
            provider: user.identity.provider.clone(),
            email: user.identity.email.clone(),
            email_verified: user.identity.email_verified,
            name: user.identity.name.clone(),
            groups: user.identity.groups.clone(),
            client_id: None,
            scope: None,
            gid: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a broker access token: {0}")]
    Invalid(String),
    #[error("the token has expired")]
    Expired,
    #[error("no signing key: {0}")]
    Keys(String),
}
