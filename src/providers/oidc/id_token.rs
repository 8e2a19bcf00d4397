//! ID token validation (OpenID Connect Core §3.1.3.7), for a login and after a refresh (§12.2).

use openidconnect::core::{
    CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, ClientId, IdToken, IdTokenVerifier, Nonce,
    SignatureVerificationError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{CLOCK_SKEW, Discovered, MAX_ID_TOKEN_AGE, OidcClient};
use crate::config::ProviderKind;
use crate::providers::audience;
use crate::providers::discovery::Metadata;
use crate::providers::error::ProviderError;

/// Every claim, kept as JSON so mapping works the same for every kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawClaims {
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
impl AdditionalClaims for RawClaims {}

type BrokerIdToken =
    IdToken<RawClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

impl OidcClient {
    /// Validates an ID token: signature by the provider's keys (re-fetched once on an unknown
    /// `kid`), an asymmetric algorithm the provider announces, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`.
    pub async fn verify_id_token(
        &self,
        raw: &str,
        nonce: &str,
    ) -> Result<Map<String, Value>, ProviderError> {
        let token: BrokerIdToken = raw.parse().map_err(|_| {
            ProviderError::upstream(
                "invalid_id_token",
                "The identity provider sent an ID token that is not a well-formed JWT.",
                "unparsable id_token",
            )
        })?;
        self.verified_claims(&token, Some(nonce))
            .await?
            .map_err(id_token_error)
    }

    /// OpenID Connect Core §12.2: an ID token from a refresh is verified like the first one
    /// (signature, `iss`, `aud`/`azp`, `exp`, `iat`), but without a nonce, and its `sub` must be
    /// the session's. `Err` says why it was refused (never with the token).
    pub async fn verify_refreshed_id_token(&self, raw: &str, subject: &str) -> Result<(), String> {
        let token: BrokerIdToken = raw
            .parse()
            .map_err(|_| "it is not a well-formed JWT".to_string())?;
        let claims = self
            .verified_claims(&token, None)
            .await
            .map_err(|e| format!("it could not be checked: {}", e.message))?
            .map_err(|e| refusal_reason(&e).to_string())?;
        if claims.get("sub").and_then(Value::as_str) != Some(subject) {
            return Err("its subject (sub) is not the session's".into());
        }
        Ok(())
    }

    /// The claims once verified, re-fetching the provider's keys once on an unknown `kid`. The
    /// outer error is the provider being unusable; the inner one is the token refused.
    async fn verified_claims(
        &self,
        token: &BrokerIdToken,
        nonce: Option<&str>,
    ) -> Result<Result<Map<String, Value>, ClaimsVerificationError>, ProviderError> {
        let mut d = self.metadata().await?;
        let mut retried = false;
        loop {
            match self.check_claims(token, &d, nonce) {
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) if !retried => {
                    retried = true;
                    match self.rediscover_for_unknown_key(&d).await? {
                        Some(fresh) => d = fresh,
                        None => {
                            return Ok(Err(ClaimsVerificationError::SignatureVerification(
                                SignatureVerificationError::NoMatchingKey,
                            )));
                        }
                    }
                }
                outcome => return Ok(outcome),
            }
        }
    }

    /// `nonce`: the login's, or `None` for a refreshed ID token (§12.2 has none to compare).
    fn check_claims(
        &self,
        token: &BrokerIdToken,
        d: &Discovered,
        nonce: Option<&str>,
    ) -> Result<Map<String, Value>, ClaimsVerificationError> {
        let clock = self.clock.clone();
        let clock_iat = self.clock.clone();
        let verifier = IdTokenVerifier::new_public_client(
            ClientId::new(self.client_id.clone()),
            self.issuer.clone(),
            d.metadata.jwks().clone(),
        )
        .set_allowed_algs(allowed_algs(&d.metadata))
        .set_time_fn(move || to_chrono(clock.now()) - chrono_skew())
        .set_issue_time_verifier_fn(move |iat| {
            let now = to_chrono(clock_iat.now());
            if iat > now + chrono_skew() {
                Err("issued in the future".into())
            } else if now - iat
                > chrono::Duration::from_std(MAX_ID_TOKEN_AGE + CLOCK_SKEW).unwrap_or_default()
            {
                Err("issued too long ago".into())
            } else {
                Ok(())
            }
        });
        let claims = match nonce {
            Some(n) => token.claims(&verifier, &Nonce::new(n.to_string()))?,
            None => token.claims(&verifier, |_: Option<&Nonce>| Ok(()))?,
        };
        let Ok(Value::Object(map)) = serde_json::to_value(claims) else {
            return Err(ClaimsVerificationError::Other(
                "claims are not an object".into(),
            ));
        };
        // The broker's one audience rule (openidconnect 4.1 checks `aud` but leaves `azp` out).
        if let Err(e) = audience::check(&map, &self.client_id) {
            return Err(ClaimsVerificationError::InvalidAudience(e.reason().into()));
        }
        match self.kind {
            // Cognito signs access tokens with the same keys; only an ID token may sign a user in.
            ProviderKind::Cognito if map.get("token_use").and_then(Value::as_str) != Some("id") => {
                return Err(ClaimsVerificationError::Other(
                    "token_use: not an ID token".into(),
                ));
            }
            // Auth0 Organizations: the token must be for the configured organization.
            ProviderKind::Auth0 if self.organization.is_some() => {
                let org = self.organization.as_deref();
                let matches = |claim: &str| map.get(claim).and_then(Value::as_str) == org;
                if !(matches("org_id") || matches("org_name")) {
                    return Err(ClaimsVerificationError::Other(
                        "organization: org_id is not the configured organization".into(),
                    ));
                }
            }
            _ => {}
        }
        Ok(map)
    }
}

fn allowed_algs(m: &Metadata) -> Vec<CoreJwsSigningAlgorithm> {
    use CoreJwsSigningAlgorithm::*;
    let asymmetric = [
        RsaSsaPkcs1V15Sha256,
        RsaSsaPkcs1V15Sha384,
        RsaSsaPkcs1V15Sha512,
        RsaSsaPssSha256,
        RsaSsaPssSha384,
        RsaSsaPssSha512,
        EcdsaP256Sha256,
        EcdsaP384Sha384,
        EdDsa,
    ];
    let announced: Vec<_> = m
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|a| asymmetric.contains(a))
        .cloned()
        .collect();
    if announced.is_empty() {
        vec![RsaSsaPkcs1V15Sha256]
    } else {
        announced
    }
}

fn to_chrono(t: time::OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

fn chrono_skew() -> chrono::Duration {
    chrono::Duration::seconds(CLOCK_SKEW.as_secs() as i64)
}

fn id_token_error(e: ClaimsVerificationError) -> ProviderError {
    let reason = refusal_reason(&e);
    ProviderError::upstream(
        "invalid_id_token",
        format!("The identity provider's ID token was refused: {reason}. Start the login again."),
        e,
    )
}

fn refusal_reason(e: &ClaimsVerificationError) -> &'static str {
    match e {
        // openidconnect reports the issue-time check as `Expired` with our message.
        ClaimsVerificationError::Expired(m) if m.starts_with("issued") => {
            "its issue time (iat) is out of range"
        }
        ClaimsVerificationError::Expired(_) => "it has expired",
        ClaimsVerificationError::InvalidAudience(_) => {
            "it was issued for another application (aud/azp)"
        }
        ClaimsVerificationError::InvalidIssuer(_) => "it was issued by another issuer",
        ClaimsVerificationError::Other(m) if m.starts_with("token_use") => {
            "it is not an ID token (token_use)"
        }
        ClaimsVerificationError::Other(m) if m.starts_with("organization") => {
            "it is for another organization (org_id)"
        }
        ClaimsVerificationError::InvalidNonce(_) => "its nonce does not match this login",
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_)
            | SignatureVerificationError::NoSignature,
        ) => "it is not signed with an accepted algorithm",
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => "it is signed with a key the provider does not publish",
        ClaimsVerificationError::SignatureVerification(_) => "its signature is invalid",
        ClaimsVerificationError::Other(m) if m.contains("issued") => {
            "its issue time (iat) is out of range"
        }
        _ => "its claims are invalid",
    }
}
