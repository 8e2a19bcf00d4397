//! The normalised identity: every provider kind's claims become the same shape.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::ClaimMapping;

/// A provider identity after claim mapping. Stored as the user's profile and shown as `user`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct Identity {
    pub provider: String,
    pub provider_kind: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub picture: Option<String>,
    pub locale: Option<String>,
    pub groups: Vec<String>,
    pub roles: Vec<String>,
    /// Raw claims the operator selected; empty unless configured.
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
}

/// The `user` object of `/auth/me`: the local id plus the normalised identity.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[schema(as = User)]
pub struct UserView {
    pub id: String,
    #[serde(flatten)]
    pub identity: Identity,
}

/// A claim the provider sent that cannot be read as the identity needs it.
#[derive(Debug, thiserror::Error)]
#[error("The identity provider sent a `{claim}` claim that {what}.")]
pub struct IdentityError {
    pub claim: String,
    /// What is wrong with it (`is not a string`, …).
    pub what: &'static str,
}

fn claim_error(claim: &str, what: &'static str) -> IdentityError {
    IdentityError {
        claim: claim.to_string(),
        what,
    }
}

fn opt_string(claims: &Map<String, Value>, claim: &str) -> Result<Option<String>, IdentityError> {
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(claim_error(claim, "is not a string")),
    }
}

/// Some providers send `email_verified` as the string "true" (Cognito did); both forms are read.
fn flag(claims: &Map<String, Value>, claim: &str) -> Result<bool, IdentityError> {
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(_) => Err(claim_error(claim, "is neither true nor false")),
    }
}

/// A list claim may be an array of strings, or a single string (space- or comma-separated lists
/// are left whole: a provider that sends one group sends one string).
fn string_list(claims: &Map<String, Value>, claim: &str) -> Result<Vec<String>, IdentityError> {
    match claims.get(claim) {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| claim_error(claim, "has an entry that is not a string"))
            })
            .collect(),
        Some(_) => Err(claim_error(claim, "is not a list of strings")),
    }
}

/// Builds the identity from a provider's claims (ID token merged with userinfo), through the
/// provider's claim mapping.
pub fn from_claims(
    provider: &str,
    provider_kind: &str,
    claims: &Map<String, Value>,
    map: &ClaimMapping,
) -> Result<Identity, IdentityError> {
    let subject = match claims.get("sub") {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 => s.clone(),
        Some(Value::String(_)) => {
            return Err(claim_error("sub", "is empty or longer than 255 characters"));
        }
        _ => return Err(claim_error("sub", "is missing or not a string")),
    };
    let selected = map
        .select
        .iter()
        .filter_map(|name| claims.get(name).map(|v| (name.clone(), v.clone())))
        .collect();
    Ok(Identity {
        provider: provider.to_string(),
        provider_kind: provider_kind.to_string(),
        subject,
        email: opt_string(claims, &map.email)?,
        email_verified: flag(claims, &map.email_verified)?,
        name: opt_string(claims, &map.name)?,
        given_name: opt_string(claims, &map.given_name)?,
        family_name: opt_string(claims, &map.family_name)?,
        picture: opt_string(claims, &map.picture)?,
        locale: opt_string(claims, &map.locale)?,
        groups: string_list(claims, &map.groups)?,
        roles: string_list(claims, &map.roles)?,
        claims: selected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn string_email_verified_is_read() {
        let id = from_claims(
            "p",
            "oidc",
            &map(json!({"sub": "s", "email_verified": "true"})),
            &ClaimMapping::default(),
        )
        .unwrap();
        assert!(id.email_verified);
    }

    #[test]
    fn malformed_claim_is_named_in_the_error() {
        let err = from_claims(
            "p",
            "oidc",
            &map(json!({"sub": "s", "email": 5})),
            &ClaimMapping::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`email`"), "{err}");
        let err = from_claims(
            "p",
            "oidc",
            &map(json!({"email": "a@b"})),
            &ClaimMapping::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("`sub`"), "{err}");
    }

    #[test]
    fn namespaced_claims_map_and_selected_claims_pass_through() {
        let m = ClaimMapping {
            roles: "https://example.com/roles".into(),
            groups: "cognito:groups".into(),
            select: vec!["cognito:username".into(), "absent".into()],
            ..ClaimMapping::default()
        };
        let claims = map(
            json!({"sub": "s", "https://example.com/roles": ["admin"], "cognito:groups": ["g1"], "cognito:username": "ada"}),
        );
        let id = from_claims("p", "cognito", &claims, &m).unwrap();
        assert_eq!(id.roles, vec!["admin".to_string()]);
        assert_eq!(id.groups, vec!["g1".to_string()]);
        assert_eq!(id.claims.get("cognito:username"), Some(&json!("ada")));
        assert!(!id.claims.contains_key("absent"));
    }
}
