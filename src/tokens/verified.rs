//! Broker access tokens that verified, remembered by their whole text: an API client sends the same
//! token on every call until it expires, and its RS256 signature need not be checked each time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::claims::{AccessClaims, JwtError};

/// Tokens remembered at most; the map is emptied when full. Only tokens that verified get in, so
/// a flood of forged ones cannot fill it.
const MAX: usize = 10_000;

/// A token that verified, and the key that signed it.
struct Verified {
    claims: Arc<AccessClaims>,
    kid: Box<str>,
}

#[derive(Default)]
pub(super) struct VerifiedTokens {
    tokens: Mutex<HashMap<Box<str>, Verified>>,
}

impl VerifiedTokens {
    /// The claims of `token` if it verified before and still holds: for this issuer and audience,
    /// before its `exp`, and while `key_holds` says its signing key is still published and not
    /// retired (a reload that drops the key drops its tokens too). `Ok(None)`: check it in full.
    pub(super) fn get(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
        now: i64,
        key_holds: impl FnOnce(&str) -> bool,
    ) -> Result<Option<Arc<AccessClaims>>, JwtError> {
        let Ok(mut tokens) = self.tokens.lock() else {
            return Ok(None);
        };
        let Some(hit) = tokens.get(token) else {
            return Ok(None);
        };
        if hit.claims.iss != issuer || hit.claims.aud != audience {
            return Ok(None);
        }
        if hit.claims.exp <= now {
            tokens.remove(token);
            return Err(JwtError::Expired);
        }
        if !key_holds(&hit.kid) {
            tokens.remove(token);
            return Ok(None);
        }
        Ok(Some(hit.claims.clone()))
    }

    /// Remembers a token that has just verified in full.
    pub(super) fn put(&self, token: &str, kid: &str, claims: Arc<AccessClaims>) {
        if let Ok(mut tokens) = self.tokens.lock() {
            if tokens.len() >= MAX {
                tokens.clear();
            }
            tokens.insert(
                token.into(),
                Verified {
                    claims,
                    kid: kid.into(),
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Arc<AccessClaims> {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "iss": "https://b.test", "aud": "https://api.test", "sub": "usr_1", "sid": "ses_1",
                "iat": 0, "exp": exp, "jti": "j", "provider": "dev"
            }))
            .unwrap(),
        )
    }

    #[test]
    fn a_token_holds_only_as_it_verified_unexpired_and_while_its_key_holds() {
        let v = VerifiedTokens::default();
        let ok = |_: &str| true;
        assert!(matches!(
            v.get("t", "https://b.test", "https://api.test", 10, ok),
            Ok(None)
        ));
        v.put("t", "k1", claims(100));
        let hit = v
            .get("t", "https://b.test", "https://api.test", 10, ok)
            .unwrap();
        assert_eq!(hit.unwrap().sub, "usr_1");
        assert!(matches!(
            v.get("t", "https://evil.test", "https://api.test", 10, ok),
            Ok(None)
        ));
        assert!(matches!(
            v.get("t", "https://b.test", "https://other.test", 10, ok),
            Ok(None)
        ));
        assert!(matches!(
            v.get("t", "https://b.test", "https://api.test", 10, |k: &str| k
                != "k1"),
            Ok(None)
        ));
        // The key check dropped it: it must verify in full again.
        assert!(matches!(
            v.get("t", "https://b.test", "https://api.test", 10, ok),
            Ok(None)
        ));
        v.put("t", "k1", claims(100));
        assert!(matches!(
            v.get("t", "https://b.test", "https://api.test", 100, ok),
            Err(JwtError::Expired)
        ));
    }

    #[test]
    fn it_stays_bounded() {
        let v = VerifiedTokens::default();
        for n in 0..MAX + 3 {
            v.put(&format!("t{n}"), "k", claims(100));
        }
        assert!(v.tokens.lock().unwrap().len() <= MAX);
    }
}
