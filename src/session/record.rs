//! The session record: what a local session knows, its idle and absolute policy, and reading
//! and writing it in the request's tower-sessions session.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tower_sessions::{Expiry, Session};

use super::SessionError;
use crate::config::SessionConfig;
use crate::crypto;
use crate::identity::UserView;

/// The key of the broker's record inside the tower-sessions data. The record is kept there as one
/// JSON string rather than a JSON tree: the session check then decodes it with one allocation-light
/// parse instead of cloning and converting a tree of values.
pub const RECORD_KEY: &str = "broker";

/// What a local session knows. Kept whole in the session store so that a session check is one read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The public handle: shown to the user and to operators, never the cookie value.
    pub handle: String,
    pub user: UserView,
    pub created_at: i64,
    pub absolute_expires_at: i64,
    pub last_seen_at: i64,
    /// When the provider access token is due for a refresh (expiry minus the margin); none when
    /// there is nothing to refresh.
    #[serde(default)]
    pub refresh_at: Option<i64>,
    /// The authentication context class the provider reported for the sign-in (`acr`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
}

impl SessionRecord {
    pub fn idle_expires_at(&self, policy: &SessionConfig) -> i64 {
        (self.last_seen_at + secs(policy.idle_timeout)).min(self.absolute_expires_at)
    }

    pub fn is_live(&self, policy: &SessionConfig, now: OffsetDateTime) -> bool {
        now.unix_timestamp() < self.idle_expires_at(policy)
    }

    fn store_expiry(&self, policy: &SessionConfig) -> Expiry {
        Expiry::AtDateTime(
            OffsetDateTime::from_unix_timestamp(self.idle_expires_at(policy))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        )
    }

    /// The `session` object of `/auth/me`.
    pub fn view(&self, policy: &SessionConfig) -> SessionView<'_> {
        SessionView {
            handle: &self.handle,
            provider: &self.user.identity.provider,
            created_at: rfc3339(self.created_at),
            expires_at: rfc3339(self.absolute_expires_at),
            idle_expires_at: rfc3339(self.idle_expires_at(policy)),
        }
    }

    /// The answer of `GET /auth/session` at `now`.
    pub fn status(&self, policy: &SessionConfig, now: OffsetDateTime) -> SessionStatus {
        let now = now.unix_timestamp();
        let idle = self.idle_expires_at(policy);
        SessionStatus {
            idle_expires_at: rfc3339(idle),
            expires_at: rfc3339(self.absolute_expires_at),
            idle_expires_in: (idle - now).max(0),
            expires_in: (self.absolute_expires_at - now).max(0),
            idle_timeout: secs(policy.idle_timeout),
        }
    }
}

/// The answer of `GET /auth/session`: when the session ends, as times and as seconds from now (a
/// page counts down from the seconds, so its own clock does not matter).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionStatus {
    /// When the session ends unless it is used before (never after `expires_at`).
    pub idle_expires_at: String,
    /// When the session ends whatever happens (the absolute lifetime).
    pub expires_at: String,
    /// Seconds until `idle_expires_at`.
    pub idle_expires_in: i64,
    /// Seconds until `expires_at`.
    pub expires_in: i64,
    /// The idle timeout in seconds: how far the next activity moves `idle_expires_at` (up to
    /// `expires_at`).
    pub idle_timeout: i64,
}

/// The `session` object of `/auth/me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub struct SessionView<'a> {
    pub handle: &'a str,
    pub provider: &'a str,
    pub created_at: String,
    pub expires_at: String,
    pub idle_expires_at: String,
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 4)
}

pub fn rfc3339(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Last-seen writes are throttled so that most session checks are a single read. The idle
/// deadline is therefore conservative by up to this interval.
/// Whether a check at `now` must rewrite last-seen (and so cannot be answered from a cache).
pub fn needs_touch(record: &SessionRecord, policy: &SessionConfig, now: OffsetDateTime) -> bool {
    now.unix_timestamp() - record.last_seen_at >= touch_interval(policy)
}

fn touch_interval(policy: &SessionConfig) -> i64 {
    (secs(policy.idle_timeout) / 10).clamp(1, 60)
}

/// The live session of this request, if any. An expired one is deleted on the spot.
pub async fn current(
    session: &Session,
    policy: &SessionConfig,
    now: OffsetDateTime,
) -> Result<Option<SessionRecord>, SessionError> {
    let Some(value) = session.get_value(RECORD_KEY).await? else {
        return Ok(None);
    };
    let parsed = match &value {
        serde_json::Value::String(s) => serde_json::from_str::<SessionRecord>(s).ok(),
        _ => None,
    };
    let record = match parsed {
        Some(r) if r.is_live(policy, now) => r,
        _ => {
            session.flush().await?;
            return Ok(None);
        }
    };
    let now_ts = now.unix_timestamp();
    if now_ts - record.last_seen_at >= touch_interval(policy) {
        let mut touched = record.clone();
        touched.last_seen_at = now_ts;
        put(session, &touched).await?;
        session.set_expiry(Some(touched.store_expiry(policy)));
        return Ok(Some(touched));
    }
    Ok(Some(record))
}

/// The live record of this request's session as stored, read without counting as activity: nothing
/// is written (no touch of last-seen, no refresh; an expired record is left to its store expiry).
pub async fn peek(
    session: &Session,
    policy: &SessionConfig,
    now: OffsetDateTime,
) -> Result<Option<SessionRecord>, SessionError> {
    let Some(serde_json::Value::String(text)) = session.get_value(RECORD_KEY).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_str::<SessionRecord>(&text)
        .ok()
        .filter(|r| r.is_live(policy, now)))
}

/// Starts a fresh session for `user`: a new id (no fixation), the old record gone.
pub async fn start(
    session: &Session,
    user: UserView,
    policy: &SessionConfig,
    now: OffsetDateTime,
) -> Result<SessionRecord, SessionError> {
    session.cycle_id().await?;
    let now_ts = now.unix_timestamp();
    let record = SessionRecord {
        handle: format!("ses_{}", crypto::random_token(12)),
        user,
        created_at: now_ts,
        absolute_expires_at: now_ts + secs(policy.absolute_lifetime),
        last_seen_at: now_ts,
        refresh_at: None,
        acr: None,
    };
    put(session, &record).await?;
    session.set_expiry(Some(record.store_expiry(policy)));
    Ok(record)
}

pub async fn put(session: &Session, record: &SessionRecord) -> Result<(), SessionError> {
    let text = serde_json::to_string(record).map_err(|e| SessionError::Internal(e.to_string()))?;
    session.insert(RECORD_KEY, text).await?;
    Ok(())
}

/// Ends the session of this request: the record is deleted and the cookie cleared.
pub async fn end(session: &Session) -> Result<(), SessionError> {
    session.flush().await?;
    Ok(())
}
