//! `kind = "dev"`: the built-in test provider, which signs in anyone as one of its test users.
//! Development only.

use serde::{Deserialize, Serialize};

use super::{Check, Environment, KindSettings, RawProvider};

pub(super) const KEYS: &[&str] = &["users", "client_secret"];

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DevUser {
    pub sub: String,
    pub email: String,
    #[serde(default = "yes")]
    pub email_verified: bool,
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

fn yes() -> bool {
    true
}

pub fn default_dev_users() -> Vec<DevUser> {
    let user = |sub: &str, name: &str, verified: bool, groups: &[&str]| DevUser {
        sub: sub.to_string(),
        email: format!("{sub}@example.test"),
        email_verified: verified,
        name: name.to_string(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    };
    vec![
        user("alice", "Alice Example", true, &["admins", "staff"]),
        user("bob", "Bob Example", true, &["staff"]),
        user("carol", "Carol Unverified", false, &[]),
    ]
}

pub(super) fn check(c: &mut Check<'_>, raw: &RawProvider) -> KindSettings {
    if c.environment == Environment::Production {
        c.problem(
            "kind",
            "the dev provider signs in anyone without a password",
            "remove it in production, or set server.environment = \"development\"",
        );
    }
    KindSettings {
        client_id: raw
            .client_id
            .clone()
            .unwrap_or_else(|| "oidc-broker-dev".into()),
        ..KindSettings::default()
    }
}

/// The test users offered: as listed, or the defaults.
pub(super) fn users(c: &mut Check<'_>, given: Option<Vec<DevUser>>) -> Vec<DevUser> {
    match given {
        Some(users) if users.is_empty() => {
            c.problem(
                "users",
                "empty",
                "list at least one test user, or remove the key for the defaults",
            );
            vec![]
        }
        Some(users) => users,
        None => default_dev_users(),
    }
}
