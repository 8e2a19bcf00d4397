//! `[providers.ID.claims]`: which claim fills each field of the normalised identity.

use serde::{Deserialize, Serialize};

use super::ProviderKind;

/// Which claim fills each field of the normalised identity, and which raw claims are passed on
/// under `user.claims`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    pub email: String,
    pub email_verified: String,
    pub name: String,
    pub given_name: String,
    pub family_name: String,
    pub picture: String,
    pub locale: String,
    pub groups: String,
    pub roles: String,
    /// Raw claims copied as they are into `user.claims`.
    pub select: Vec<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            email: "email".into(),
            email_verified: "email_verified".into(),
            name: "name".into(),
            given_name: "given_name".into(),
            family_name: "family_name".into(),
            picture: "picture".into(),
            locale: "locale".into(),
            groups: "groups".into(),
            roles: "roles".into(),
            select: vec![],
        }
    }
}

/// Claim-mapping overrides as written: only the keys given replace the kind's defaults.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawClaims {
    email: Option<String>,
    email_verified: Option<String>,
    name: Option<String>,
    given_name: Option<String>,
    family_name: Option<String>,
    picture: Option<String>,
    locale: Option<String>,
    groups: Option<String>,
    roles: Option<String>,
    select: Option<Vec<String>>,
}

impl ClaimMapping {
    /// The defaults of a kind, before the operator's `[providers.ID.claims]` overrides.
    pub(super) fn for_kind(kind: ProviderKind) -> Self {
        let mut m = ClaimMapping::default();
        match kind {
            ProviderKind::Cognito => {
                m.groups = "cognito:groups".into();
                m.roles = "custom:roles".into();
                m.select = vec!["cognito:username".into()];
            }
            ProviderKind::Firebase => {
                m.select = vec!["firebase".into()];
            }
            _ => {}
        }
        m
    }

    /// These defaults with the keys the operator gave replacing them.
    pub(super) fn overridden(mut self, raw: Option<&RawClaims>) -> Self {
        let Some(c) = raw else { return self };
        let set = |field: &mut String, v: &Option<String>| {
            if let Some(v) = v {
                field.clone_from(v);
            }
        };
        set(&mut self.email, &c.email);
        set(&mut self.email_verified, &c.email_verified);
        set(&mut self.name, &c.name);
        set(&mut self.given_name, &c.given_name);
        set(&mut self.family_name, &c.family_name);
        set(&mut self.picture, &c.picture);
        set(&mut self.locale, &c.locale);
        set(&mut self.groups, &c.groups);
        set(&mut self.roles, &c.roles);
        if let Some(s) = &c.select {
            self.select.clone_from(s);
        }
        self
    }
}
