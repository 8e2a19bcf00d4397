//! Firebase ID tokens: RS256 with a key from Google's securetoken key set (cached as its
//! `Cache-Control` says), or unsigned emulator tokens; then the claims Firebase documents.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use url::Url;

use super::FirebaseClient;
use crate::crypto::b64url_decode;
use crate::providers::error::{ProviderError, transport_error};

pub(super) const GOOGLE_KEYS: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";
const CLOCK_SKEW: i64 = 60;
const MIN_KEY_REFRESH: Duration = Duration::from_secs(10);
/// Firebase's own session-cookie pattern: only a recent sign-in may be turned into a session.
pub const HANDOFF_MAX_AUTH_AGE: i64 = 5 * 60;

pub(super) struct KeyCache {
    keys: HashMap<String, Jwk>,
    expires: Instant,
    last_fetch: Option<Instant>,
}

impl KeyCache {
    /// No keys yet: the first token fetches them.
    pub(super) fn empty() -> Self {
        KeyCache {
            keys: HashMap::new(),
            expires: Instant::now(),
            last_fetch: None,
        }
    }
}

/// A Firebase ID token that did not verify, or could not be checked.
#[derive(Debug)]
pub enum IdTokenError {
    /// The token itself is wrong (signature, project, times, subject); the text says why.
    Refused(String),
    /// Google's keys could not be fetched or used: nothing is known about the token.
    ProviderFailed(ProviderError),
}

impl IdTokenError {
    /// For a token the caller handed in (the SDK hand-off): a refusal is the caller's fault, a
    /// 401 — never a 502, which monitoring and clients read as an outage.
    pub fn from_caller(self) -> ProviderError {
        match self {
            IdTokenError::Refused(why) => ProviderError::unauthorized(
                "invalid_id_token",
                format!("The Firebase ID token was refused: {why}. Sign in again."),
                format!("firebase id token: {why}"),
            ),
            IdTokenError::ProviderFailed(e) => e,
        }
    }

    pub fn reason(&self) -> String {
        match self {
            IdTokenError::Refused(why) => why.clone(),
            IdTokenError::ProviderFailed(e) => e.reason(),
        }
    }
}

/// A token Firebase's own API just handed the broker: a refusal means the provider failed (502).
impl From<IdTokenError> for ProviderError {
    fn from(e: IdTokenError) -> Self {
        match e {
            IdTokenError::Refused(why) => ProviderError::upstream(
                "invalid_id_token",
                format!("The Firebase ID token was refused: {why}."),
                format!("firebase id token: {why}"),
            ),
            IdTokenError::ProviderFailed(e) => e,
        }
    }
}

impl FirebaseClient {
    /// Verifies a Firebase ID token. `max_auth_age` bounds how long ago the user signed in.
    pub async fn verify_id_token(
        &self,
        token: &str,
        max_auth_age: Option<i64>,
    ) -> Result<Map<String, Value>, IdTokenError> {
        let refused = |why: &str| IdTokenError::Refused(why.to_string());
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused("it is not a JWT"));
        };
        let header: Map<String, Value> = b64url_decode(h)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| refused("its header is unreadable"))?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let claims: Map<String, Value> = if alg == "none" && sig.is_empty() && self.emulator {
            b64url_decode(p)
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| refused("its claims are unreadable"))?
        } else if alg == "RS256" && self.verifies_signatures {
            let kid = header
                .get("kid")
                .and_then(Value::as_str)
                .ok_or_else(|| refused("it has no key id (kid)"))?;
            let jwk = self
                .key(kid)
                .await
                .map_err(IdTokenError::ProviderFailed)?
                .ok_or_else(|| refused("it is signed with a key Google does not publish"))?;
            let key = DecodingKey::from_jwk(&jwk).map_err(|_| {
                IdTokenError::ProviderFailed(ProviderError::upstream(
                    "provider_error",
                    "Firebase publishes a signing key the broker cannot use.",
                    format!("firebase key {kid}: unusable"),
                ))
            })?;
            let mut v = Validation::new(Algorithm::RS256);
            // Time and audience are checked below with the broker's clock and exact rules.
            v.validate_exp = false;
            v.validate_aud = false;
            v.required_spec_claims.clear();
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v)
                .map_err(|_| refused("its signature is invalid"))?
                .claims
        } else {
            return Err(refused(if self.emulator {
                "it is not an unsigned emulator token"
            } else {
                "it is not signed with RS256"
            }));
        };
        self.check_claims(&claims, max_auth_age)
            .map_err(|why| refused(&why))?;
        Ok(claims)
    }

    fn check_claims(
        &self,
        c: &Map<String, Value>,
        max_auth_age: Option<i64>,
    ) -> Result<(), String> {
        let now = self.clock.now().unix_timestamp();
        let num = |k: &str| {
            c.get(k)
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("it lacks `{k}`"))
        };
        if c.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("it was issued for another project (iss)".into());
        }
        let aud_ok = match c.get("aud") {
            Some(Value::String(a)) => *a == self.project_id,
            _ => false,
        };
        if !aud_ok {
            return Err("it was issued for another project (aud)".into());
        }
        if num("exp")? <= now - CLOCK_SKEW {
            return Err("it has expired".into());
        }
        if num("iat")? > now + CLOCK_SKEW {
            return Err("it is issued in the future (iat)".into());
        }
        let auth_time = num("auth_time")?;
        if auth_time > now + CLOCK_SKEW {
            return Err("its sign-in time is in the future (auth_time)".into());
        }
        if let Some(max) = max_auth_age
            && now - auth_time > max
        {
            return Err("the sign-in is too old to start a session; sign in again".into());
        }
        match c.get("sub").and_then(Value::as_str) {
            Some(s) if !s.is_empty() && s.len() <= 128 => Ok(()),
            _ => Err("its subject (sub) is empty or too long".into()),
        }
    }

    /// The public key for `kid`, refreshing the cached set when it is stale or lacks the kid.
    async fn key(&self, kid: &str) -> Result<Option<Jwk>, ProviderError> {
        let mut cache = self.keys.lock().await;
        let stale = Instant::now() >= cache.expires;
        let unknown = !cache.keys.contains_key(kid);
        let may_fetch = cache
            .last_fetch
            .is_none_or(|t| t.elapsed() >= MIN_KEY_REFRESH);
        // A stale set is always fetched again; an unknown kid only at the throttled rate.
        if stale || (unknown && may_fetch) {
            let url = Url::parse(&self.keys_url).map_err(ProviderError::internal)?;
            let resp = self
                .http
                .get(&url, None)
                .await
                .map_err(|e| transport_error(&self.id, e))?;
            if !resp.status().is_success() {
                return Err(ProviderError::upstream(
                    "provider_error",
                    "Firebase's key service failed; try again shortly.",
                    format!("keys status {}", resp.status()),
                ));
            }
            let max_age = resp
                .headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.split(',').find_map(|d| {
                        d.trim()
                            .strip_prefix("max-age=")
                            .and_then(|n| n.parse::<u64>().ok())
                    })
                })
                .unwrap_or(0);
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_slice(resp.body()).map_err(|e| {
                    ProviderError::upstream(
                        "provider_error",
                        "Firebase's key service answered something unreadable.",
                        format!("keys: {e}"),
                    )
                })?;
            cache.keys = set
                .keys
                .into_iter()
                .filter_map(|k| k.common.key_id.clone().map(|id| (id, k)))
                .collect();
            cache.expires = Instant::now() + Duration::from_secs(max_age);
            cache.last_fetch = Some(Instant::now());
        }
        Ok(cache.keys.get(kid).cloned())
    }
}
