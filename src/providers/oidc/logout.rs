//! Logout with the provider: the logout tokens of OpenID Connect Back-Channel Logout, and the
//! RP-initiated logout URL.

use std::sync::Arc;

use serde_json::{Map, Value};
use url::Url;

use super::{CLOCK_SKEW, MAX_ID_TOKEN_AGE, OidcClient};
use crate::config::ProviderKind;
use crate::providers::audience;

impl OidcClient {
    /// Verifies an OpenID Connect Back-Channel Logout token (§2.6): signed by the provider's keys
    /// (re-fetched once on an unknown `kid`) with an asymmetric algorithm, explicitly typed when
    /// `typ` is present, `iss` exact, `aud` this client, `iat` within the window, a `jti`, the
    /// back-channel `events` member, `sid` or `sub`, and no `nonce`. Replay (`jti`) is the caller's.
    pub async fn verify_logout_token(&self, raw: &str) -> Result<Map<String, Value>, String> {
        let header = logout_token_header(raw)?;
        let key = self.logout_token_key(header.kid.as_deref()).await?;
        let key = jsonwebtoken::DecodingKey::from_jwk(&key)
            .map_err(|_| "the provider's key is unusable".to_string())?;
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.set_issuer(&[self.issuer.as_str()]);
        // `aud` is judged below by the same rule as ID tokens (jsonwebtoken accepts any list
        // that merely contains this client).
        v.validate_aud = false;
        v.validate_exp = false;
        v.required_spec_claims = ["iss", "aud", "iat"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let claims = jsonwebtoken::decode::<Map<String, Value>>(raw, &key, &v)
            .map_err(|e| format!("the logout token was refused: {}", logout_reason(e.kind())))?
            .claims;
        audience::check(&claims, &self.client_id)
            .map_err(|e| format!("the logout token was refused: {e}"))?;
        check_logout_claims(&claims, self.clock.now().unix_timestamp())?;
        Ok(claims)
    }

    /// The provider's key that signed a logout token: by `kid`, or the only key when there is no
    /// `kid`; the keys are fetched again once when none matches.
    async fn logout_token_key(&self, kid: Option<&str>) -> Result<jsonwebtoken::jwk::Jwk, String> {
        let mut d = self.metadata().await.map_err(|e| e.message)?;
        loop {
            let jwks: jsonwebtoken::jwk::JwkSet = serde_json::to_value(d.metadata.jwks())
                .ok()
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or_else(|| "the provider's keys are unreadable".to_string())?;
            let found = match kid {
                Some(kid) => jwks.find(kid).cloned(),
                None if jwks.keys.len() == 1 => jwks.keys.first().cloned(),
                None => None,
            };
            if let Some(k) = found {
                return Ok(k);
            }
            match self
                .rediscover_for_unknown_key(&d)
                .await
                .map_err(|e| e.message)?
            {
                Some(fresh) if !Arc::ptr_eq(&fresh, &d) => d = fresh,
                _ => {
                    return Err(
                        "the logout token is signed with a key the provider does not publish"
                            .into(),
                    );
                }
            }
        }
    }

    /// Where to send the browser for RP-initiated logout at the provider, if it has such a place:
    /// the configured `end_session_endpoint`, Cognito `/logout`, the `end_session_endpoint` of
    /// discovery or RFC 8414 metadata (OpenID Connect RP-Initiated Logout, with `id_token_hint` —
    /// the one token the specs put in a URL), or Auth0 `/v2/logout`.
    pub async fn logout_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: &str,
    ) -> Option<String> {
        if let (ProviderKind::Cognito, Some(base), None) =
            (self.kind, &self.domain_base, &self.end_session_endpoint)
        {
            let mut u = Url::parse(&format!("{base}/logout")).ok()?;
            u.query_pairs_mut()
                .append_pair("client_id", &self.client_id)
                .append_pair("logout_uri", post_logout_redirect_uri);
            return Some(u.to_string());
        }
        let end_session = match &self.end_session_endpoint {
            Some(u) => Some(u.clone()),
            None => self
                .metadata()
                .await
                .ok()
                .and_then(|d| d.end_session_endpoint.clone()),
        };
        if let Some(mut u) = end_session {
            {
                let mut q = u.query_pairs_mut();
                if let Some(hint) = id_token_hint {
                    q.append_pair("id_token_hint", hint);
                }
                q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
                    .append_pair("client_id", &self.client_id);
            }
            return Some(u.to_string());
        }
        if let (ProviderKind::Auth0, Some(base)) = (self.kind, &self.domain_base) {
            let mut u = Url::parse(&format!("{base}/v2/logout")).ok()?;
            u.query_pairs_mut()
                .append_pair("client_id", &self.client_id)
                .append_pair("returnTo", post_logout_redirect_uri);
            return Some(u.to_string());
        }
        None
    }
}

fn logout_reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => "its signature is invalid",
        K::InvalidIssuer => "it was issued by another issuer",
        K::InvalidAudience => "it is for another client (aud)",
        K::MissingRequiredClaim(_) => "a required claim (iss, aud, iat) is missing",
        K::InvalidAlgorithm => "its algorithm does not match the key",
        _ => "it is malformed",
    }
}

/// The logout token's header: explicitly typed when `typ` is present, and signed with an
/// asymmetric algorithm.
fn logout_token_header(raw: &str) -> Result<jsonwebtoken::Header, String> {
    use jsonwebtoken::Algorithm as A;
    let header = jsonwebtoken::decode_header(raw)
        .map_err(|_| "the logout token is not a signed JWT".to_string())?;
    if let Some(typ) = header.typ.as_deref()
        && !typ.eq_ignore_ascii_case("logout+jwt")
        && !typ.eq_ignore_ascii_case("application/logout+jwt")
    {
        return Err(format!("typ `{typ}` is not logout+jwt"));
    }
    let asymmetric = [
        A::RS256,
        A::RS384,
        A::RS512,
        A::PS256,
        A::PS384,
        A::PS512,
        A::ES256,
        A::ES384,
        A::EdDSA,
    ];
    if !asymmetric.contains(&header.alg) {
        return Err("the logout token is not signed with an asymmetric algorithm".into());
    }
    Ok(header)
}

/// §2.4 and §2.6 on a logout token whose signature, `iss` and `aud` are checked: `iat` within the
/// window, not expired, a `jti`, the back-channel event, `sid` or `sub`, and no `nonce`.
fn check_logout_claims(claims: &Map<String, Value>, now: i64) -> Result<(), String> {
    let skew = CLOCK_SKEW.as_secs() as i64;
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or("iat is missing")?;
    if iat > now + skew || now - iat > MAX_ID_TOKEN_AGE.as_secs() as i64 + skew {
        return Err("iat is outside the accepted window".into());
    }
    if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
        && exp <= now - skew
    {
        return Err("the logout token has expired".into());
    }
    if claims
        .get("jti")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err("jti is missing".into());
    }
    let event = claims
        .get("events")
        .and_then(|e| e.get("http://schemas.openid.net/event/backchannel-logout"));
    if !event.is_some_and(Value::is_object) {
        return Err("events lacks the back-channel logout event".into());
    }
    let has = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if !has("sid") && !has("sub") {
        return Err("neither sid nor sub is present".into());
    }
    if claims.contains_key("nonce") {
        return Err("a logout token must not carry a nonce".into());
    }
    Ok(())
}
