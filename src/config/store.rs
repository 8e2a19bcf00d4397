//! `[store]` (the SQL store: SQLite or Postgres) and `[sessions]` (session records in Redis
//! instead). Their URLs may hold a password: it is never shown, in messages or in `Debug`.

use std::fmt;

use serde::Deserialize;
use url::Url;

use super::problem::{Problem, problem};

#[derive(Clone)]
pub struct StoreConfig {
    /// `sqlite://PATH` or `postgres://…`.
    pub url: String,
    /// Postgres: the schema that holds the broker's tables (so brokers can share a server).
    pub schema: Option<String>,
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreConfig")
            .field("url", &redact_url(&self.url))
            .field("schema", &self.schema)
            .finish()
    }
}

/// `[sessions]`: session records in Redis instead of the SQL store.
#[derive(Clone)]
pub struct SessionStoreConfig {
    /// `redis://`, `rediss://`, `redis-cluster://` or `redis-sentinel://`.
    pub url: String,
    /// Every key starts with this, so brokers can share a Redis.
    pub prefix: String,
    /// Keep records read for the session check in memory while Redis tracks them for us, each
    /// answered after a fence (on by default; needs Redis 6 or later, not used on a Cluster).
    pub local_cache: bool,
}

impl fmt::Debug for SessionStoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionStoreConfig")
            .field("url", &redact_url(&self.url))
            .field("prefix", &self.prefix)
            .field("local_cache", &self.local_cache)
            .finish()
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    url: Option<String>,
    schema: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessions {
    url: Option<String>,
    prefix: Option<String>,
    local_cache: Option<bool>,
}

/// A store URL for messages: the password part is never shown.
pub fn redact_url(s: &str) -> String {
    match Url::parse(s) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => s.to_string(),
    }
}

/// A schema name as an identifier: letters, digits and `_` only (so it can be quoted safely).
pub fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

pub(super) fn validate_store(raw: RawStore, problems: &mut Vec<Problem>) -> StoreConfig {
    let url = raw.url.unwrap_or_else(|| "sqlite://data/broker.db".into());
    let is_postgres = url.starts_with("postgres://") || url.starts_with("postgresql://");
    if !url.starts_with("sqlite:") && !is_postgres {
        problem(
            problems,
            "store.url",
            format!("`{}` is not a supported store", redact_url(&url)),
            "use sqlite://PATH (e.g. \"sqlite://data/broker.db\") or postgres://USER@HOST/DB",
        );
    }
    match raw.schema.as_deref() {
        Some(_) if !is_postgres => problem(
            problems,
            "store.schema",
            "only a Postgres store has schemas",
            "remove it, or use a postgres:// store.url",
        ),
        Some(name) if !valid_schema(name) => problem(
            problems,
            "store.schema",
            format!("`{name}` is not a usable schema name"),
            "use lowercase letters, digits and _ (e.g. \"oidc_broker\")",
        ),
        _ => {}
    }
    StoreConfig {
        url,
        schema: raw.schema,
    }
}

pub(super) fn validate_sessions(
    raw: RawSessions,
    problems: &mut Vec<Problem>,
) -> Option<SessionStoreConfig> {
    let url = match raw.url {
        Some(u)
            if [
                "redis://",
                "rediss://",
                "redis-cluster://",
                "redis-sentinel://",
            ]
            .iter()
            .any(|p| u.starts_with(p)) =>
        {
            u
        }
        Some(u) => {
            problem(
                problems,
                "sessions.url",
                format!("`{}` is not a Redis URL", redact_url(&u)),
                "use redis://HOST:6379/0 (or rediss://, redis-cluster://, redis-sentinel://)",
            );
            return None;
        }
        None => {
            problem(
                problems,
                "sessions.url",
                "missing",
                "name the Redis that holds the sessions, or remove [sessions] to keep them in the SQL store",
            );
            return None;
        }
    };
    let prefix = raw.prefix.unwrap_or_else(|| "oidc-broker:".into());
    if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_graphic()) {
        problem(
            problems,
            "sessions.prefix",
            "must be 1 to 64 printable characters without spaces",
            "use e.g. \"oidc-broker:\" or \"app1:\"",
        );
        return None;
    }
    Some(SessionStoreConfig {
        url,
        prefix,
        local_cache: raw.local_cache.unwrap_or(true),
    })
}
