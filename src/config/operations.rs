//! What operators run the broker with: `[admin]` (the admin API's token), `[identity]` (account
//! linking), `[audit]` (retention), and two keys of other sections, `[server] trusted_proxies` and
//! `[session] max_per_user`.

use std::time::Duration;

use serde::Deserialize;

use super::cidr::Cidr;
use super::{Problem, parse_duration, problem, section};
use crate::secret::Secret;

/// The shortest admin token accepted: a long random secret, not a password.
pub const MIN_ADMIN_TOKEN: usize = 32;

/// `[admin]`: the bearer token of the admin API. Without it the admin API answers 404.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub token: Secret,
}

/// How a provider identity seen for the first time finds its local user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkBy {
    /// Every new identity is a new user.
    #[default]
    Nothing,
    /// A new identity whose email is verified joins the user with that verified email.
    VerifiedEmail,
}

#[derive(Debug, Clone, Default)]
pub struct IdentityConfig {
    pub link_by: LinkBy,
}

#[derive(Debug, Clone)]
pub struct AuditConfig {
    /// Audit events older than this are swept.
    pub retention: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            retention: Duration::from_secs(90 * 86_400),
        }
    }
}

/// Everything this module reads, taken out of the raw table before the other sections are.
#[derive(Debug, Default)]
pub(super) struct Operations {
    pub admin: Option<AdminConfig>,
    pub identity: IdentityConfig,
    pub audit: AuditConfig,
    pub trusted_proxies: Vec<Cidr>,
    pub max_per_user: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    token: Option<Secret>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIdentity {
    link_by: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    retention: Option<String>,
}

/// Removes and validates `[admin]`, `[identity]`, `[audit]`, `server.trusted_proxies` and
/// `session.max_per_user`.
pub(super) fn take(table: &mut toml::Table, problems: &mut Vec<Problem>) -> Operations {
    let admin = table
        .contains_key("admin")
        .then(|| section::<RawAdmin>(table, "admin", problems))
        .and_then(|raw| admin(raw, problems));
    let identity = identity(section(table, "identity", problems), problems);
    let audit = audit(section(table, "audit", problems), problems);
    let trusted_proxies = take_key(table, "server", "trusted_proxies")
        .map(|v| trusted_proxies(v, problems))
        .unwrap_or_default();
    let max_per_user =
        take_key(table, "session", "max_per_user").and_then(|v| max_per_user(v, problems));
    Operations {
        admin,
        identity,
        audit,
        trusted_proxies,
        max_per_user,
    }
}

/// `table[section][key]`, removed (the section's own parser does not know the key).
fn take_key(table: &mut toml::Table, section: &str, key: &str) -> Option<toml::Value> {
    match table.get_mut(section) {
        Some(toml::Value::Table(t)) => t.remove(key),
        _ => None,
    }
}

fn admin(raw: RawAdmin, problems: &mut Vec<Problem>) -> Option<AdminConfig> {
    let Some(token) = raw.token else {
        problem(
            problems,
            "admin.token",
            "missing",
            "set a long random token (better by environment: BROKER_ADMIN__TOKEN), or remove [admin] to turn the admin API off",
        );
        return None;
    };
    let token = token.expose().trim();
    if token.chars().count() < MIN_ADMIN_TOKEN {
        problem(
            problems,
            "admin.token",
            format!("shorter than {MIN_ADMIN_TOKEN} characters"),
            "use a long random secret, e.g. the output of `openssl rand -base64 48`",
        );
        return None;
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        problem(
            problems,
            "admin.token",
            "contains spaces or control characters, which cannot be sent in an Authorization header",
            "use letters, digits and punctuation only",
        );
        return None;
    }
    Some(AdminConfig {
        token: Secret::new(token),
    })
}

fn identity(raw: RawIdentity, problems: &mut Vec<Problem>) -> IdentityConfig {
    let link_by = match raw.link_by.as_deref() {
        None | Some("none") => LinkBy::Nothing,
        Some("verified_email") => LinkBy::VerifiedEmail,
        Some(other) => {
            problem(
                problems,
                "identity.link_by",
                format!("`{other}` is not a way to link identities"),
                "use \"verified_email\", or \"none\" (the default: every new identity is a new user)",
            );
            LinkBy::Nothing
        }
    };
    IdentityConfig { link_by }
}

fn audit(raw: RawAudit, problems: &mut Vec<Problem>) -> AuditConfig {
    let mut config = AuditConfig::default();
    if let Some(s) = raw.retention {
        match parse_duration(&s) {
            Some(d) if d >= Duration::from_secs(3600) => config.retention = d,
            _ => problem(
                problems,
                "audit.retention",
                format!("`{s}` is not a duration of an hour or more"),
                "write a number with a unit, e.g. \"90d\" (the default) or \"365d\"",
            ),
        }
    }
    config
}

fn trusted_proxies(value: toml::Value, problems: &mut Vec<Problem>) -> Vec<Cidr> {
    let toml::Value::Array(items) = value else {
        problem(
            problems,
            "server.trusted_proxies",
            "must be a list of networks",
            "write e.g. trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1/32\"]",
        );
        return vec![];
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let key = format!("server.trusted_proxies[{i}]");
        match item.as_str().map(str::parse::<Cidr>) {
            Some(Ok(c)) => out.push(c),
            Some(Err(why)) => problem(
                problems,
                key,
                why.to_string(),
                "write an address or a network in CIDR form, e.g. \"10.0.0.0/8\"",
            ),
            None => problem(
                problems,
                key,
                "not a string",
                "write the network in quotes, e.g. \"10.0.0.0/8\"",
            ),
        }
    }
    out
}

fn max_per_user(value: toml::Value, problems: &mut Vec<Problem>) -> Option<usize> {
    // From the environment the number arrives as a string.
    let n = match &value {
        toml::Value::Integer(n) => Some(*n),
        toml::Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n.and_then(|n| usize::try_from(n).ok()).filter(|n| *n >= 1) {
        Some(n) => Some(n),
        None => {
            problem(
                problems,
                "session.max_per_user",
                format!("`{value}` is not a number of sessions"),
                "use a whole number of 1 or more, or remove it for no limit",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LinkBy, from_toml_str};
    use std::time::Duration;

    const DEV: &str = "[providers.dev]\nkind = \"dev\"\n";
    const SERVER: &str = "[server]\nenvironment = \"development\"\n";

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn defaults_leave_the_admin_api_off_and_linking_off() {
        let c = from_toml_str(&format!("{SERVER}{DEV}"), env(&[])).unwrap();
        assert!(c.admin.is_none());
        assert_eq!(c.identity.link_by, LinkBy::Nothing);
        assert_eq!(c.audit.retention, Duration::from_secs(90 * 86_400));
        assert!(c.server.trusted_proxies.is_empty());
        assert_eq!(c.session.max_per_user, None);
    }

    #[test]
    fn every_operations_key_is_read() {
        let c = from_toml_str(
            &format!(
                "{SERVER}trusted_proxies = [\"10.0.0.0/8\", \"127.0.0.1/32\"]\n[session]\nmax_per_user = 3\n\
                 [identity]\nlink_by = \"verified_email\"\n[audit]\nretention = \"30d\"\n{DEV}"
            ),
            env(&[(
                "BROKER_ADMIN__TOKEN",
                "0123456789abcdef0123456789abcdef-from-env",
            )]),
        )
        .unwrap();
        assert_eq!(
            c.admin.as_ref().map(|a| a.token.expose()),
            Some("0123456789abcdef0123456789abcdef-from-env")
        );
        assert!(!format!("{:?}", c.admin).contains("0123456789"));
        assert_eq!(c.identity.link_by, LinkBy::VerifiedEmail);
        assert_eq!(c.audit.retention, Duration::from_secs(30 * 86_400));
        assert_eq!(c.server.trusted_proxies.len(), 2);
        assert_eq!(c.session.max_per_user, Some(3));
    }

    #[test]
    fn numbers_from_the_environment_are_understood() {
        let c = from_toml_str(
            &format!("{SERVER}{DEV}"),
            env(&[
                ("BROKER_SESSION__MAX_PER_USER", "5"),
                ("BROKER_SERVER__TRUSTED_PROXIES", "[\"10.0.0.0/8\"]"),
            ]),
        )
        .unwrap();
        assert_eq!(c.session.max_per_user, Some(5));
        assert_eq!(c.server.trusted_proxies.len(), 1);
    }

    #[test]
    fn bad_values_are_problems_with_their_keys() {
        let err = from_toml_str(
            &format!(
                "[admin]\ntoken = \"short\"\n[server]\ntrusted_proxies = [\"10.0.0.0/33\", 7]\n[session]\nmax_per_user = 0\n\
                 [identity]\nlink_by = \"email\"\n[audit]\nretention = \"forever\"\n{DEV}"
            ),
            env(&[]),
        )
        .unwrap_err();
        let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "admin.token",
            "server.trusted_proxies[0]",
            "server.trusted_proxies[1]",
            "session.max_per_user",
            "identity.link_by",
            "audit.retention",
        ] {
            assert!(keys.contains(&k), "{k} not in {keys:?}");
        }
        assert!(!err.to_string().contains("\"short\""), "{err}");
        let err = from_toml_str(&format!("[admin]\n{DEV}"), env(&[])).unwrap_err();
        assert!(err.0.iter().any(|p| p.key == "admin.token"), "{err}");
    }
}
