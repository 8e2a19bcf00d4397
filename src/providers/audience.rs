//! Who a provider-signed JWT is for: one rule for ID tokens (OpenID Connect Core §3.1.3.7 steps
//! 3–5) and back-channel logout tokens (Back-Channel Logout §2.6 step 4, which defers to the ID
//! token rule). `aud` must name this client and nothing else — the broker trusts no other
//! audience, so a token that also lists one was minted for a party that may replay it here — and
//! `azp`, when present, must be this client.

use serde_json::{Map, Value};

/// Why a token's audience was refused; the text is safe to show and to log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudienceError {
    /// `aud` is missing, malformed, or does not name this client.
    NotForUs,
    /// `aud` names this client and also an audience the broker does not trust.
    UntrustedAudience,
    /// `azp` names another client.
    OtherParty,
}

impl AudienceError {
    pub fn reason(self) -> &'static str {
        match self {
            AudienceError::NotForUs => "it is for another client (aud)",
            AudienceError::UntrustedAudience => {
                "it also lists audiences other than this client (aud)"
            }
            AudienceError::OtherParty => "it was issued to another client (azp)",
        }
    }
}

impl std::fmt::Display for AudienceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// Checks `aud` and `azp` of already signature-verified claims against the broker's client id.
pub fn check(claims: &Map<String, Value>, client_id: &str) -> Result<(), AudienceError> {
    match claims.get("aud") {
        Some(Value::String(aud)) if aud == client_id => {}
        Some(Value::Array(auds)) => {
            let mut ours = false;
            for aud in auds {
                match aud.as_str() {
                    Some(a) if a == client_id => ours = true,
                    _ => return Err(AudienceError::UntrustedAudience),
                }
            }
            if !ours {
                return Err(AudienceError::NotForUs);
            }
        }
        _ => return Err(AudienceError::NotForUs),
    }
    match claims.get("azp") {
        None => Ok(()),
        Some(Value::String(azp)) if azp == client_id => Ok(()),
        Some(_) => Err(AudienceError::OtherParty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const US: &str = "broker-client";

    fn claims(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn this_client_alone_is_accepted() {
        assert_eq!(check(&claims(json!({"aud": US})), US), Ok(()));
        assert_eq!(check(&claims(json!({"aud": [US]})), US), Ok(()));
        assert_eq!(check(&claims(json!({"aud": [US], "azp": US})), US), Ok(()));
    }

    #[test]
    fn another_audience_beside_this_client_is_refused() {
        assert_eq!(
            check(&claims(json!({"aud": [US, "someone-else"]})), US),
            Err(AudienceError::UntrustedAudience)
        );
        assert_eq!(
            check(&claims(json!({"aud": [US, 7]})), US),
            Err(AudienceError::UntrustedAudience)
        );
    }

    #[test]
    fn missing_empty_or_foreign_audiences_are_refused() {
        for aud in [json!(null), json!([]), json!("other"), json!(5), json!({})] {
            assert_eq!(
                check(&claims(json!({"aud": aud})), US),
                Err(AudienceError::NotForUs),
                "{aud}"
            );
        }
        assert_eq!(check(&Map::new(), US), Err(AudienceError::NotForUs));
    }

    #[test]
    fn azp_of_another_client_is_refused() {
        assert_eq!(
            check(&claims(json!({"aud": US, "azp": "other"})), US),
            Err(AudienceError::OtherParty)
        );
        assert_eq!(
            check(&claims(json!({"aud": US, "azp": 1})), US),
            Err(AudienceError::OtherParty)
        );
    }

    proptest! {
        /// Whatever else a hostile `aud` lists, any entry that is not this client refuses it.
        #[test]
        fn any_foreign_entry_refuses_the_token(
            others in proptest::collection::vec(".{0,12}", 1..4),
            ours in 0usize..3,
            at in 0usize..4,
        ) {
            prop_assume!(others.iter().any(|o| o != US));
            let mut aud: Vec<Value> = others.iter().map(|o| json!(o)).collect();
            for _ in 0..ours {
                let i = at.min(aud.len());
                aud.insert(i, json!(US));
            }
            let token = claims(json!({"aud": aud}));
            prop_assert!(check(&token, US).is_err());
        }

        /// Only the exact client id counts: no prefix, case or padding variant is ours.
        #[test]
        fn only_the_exact_client_id_is_ours(aud in ".{0,20}") {
            let token = claims(json!({"aud": aud.clone()}));
            let result = check(&token, US);
            prop_assert_eq!(result.is_ok(), aud == US);
        }
    }
}
