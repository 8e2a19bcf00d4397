//! A user's live sessions, as the user (`/auth/sessions`), operators (`/admin/…`, the CLI) and
//! `[session] max_per_user` see them: the session index says which sessions a user has, the
//! session store says which of them are still live (the index keeps idle-expired sessions until
//! their absolute end).

use serde::Serialize;
use time::OffsetDateTime;

use super::store::SessionBackend;
use super::{RECORD_KEY, SessionError, SessionRecord, rfc3339};
use crate::config::SessionConfig;
use crate::store::devices::SessionDevice;
use crate::store::{IndexedSession, Store};

/// A live session with where it was signed in from.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub row: IndexedSession,
    pub record: SessionRecord,
    pub device: SessionDevice,
}

/// A session as listed: by public handle, never the cookie value.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionItem {
    pub handle: String,
    pub provider: String,
    pub created_at: String,
    pub last_seen_at: String,
    /// When the session ends if unused (idle timeout, capped by the absolute lifetime).
    pub expires_at: String,
    pub ip: Option<String>,
    pub device: String,
    pub user_agent: Option<String>,
    /// The session of this request.
    pub current: bool,
}

impl LiveSession {
    pub fn item(&self, policy: &SessionConfig, current: Option<&str>) -> SessionItem {
        SessionItem {
            handle: self.row.handle.clone(),
            provider: self.row.provider.clone(),
            created_at: rfc3339(self.record.created_at),
            last_seen_at: rfc3339(self.record.last_seen_at),
            expires_at: rfc3339(self.record.idle_expires_at(policy)),
            ip: self.device.ip.clone(),
            device: self
                .device
                .device
                .clone()
                .unwrap_or_else(|| "Unknown device".into()),
            user_agent: self.device.user_agent.clone(),
            current: current == Some(self.row.handle.as_str()),
        }
    }
}

/// The user's live sessions, newest first.
pub async fn live_sessions(
    store: &Store,
    sessions: &SessionBackend,
    policy: &SessionConfig,
    now: OffsetDateTime,
    user_id: &str,
) -> Result<Vec<LiveSession>, SessionError> {
    let rows = store.sessions_of_user(user_id).await?;
    let mut devices = store.session_devices(user_id).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let record = sessions
            .load_key(&row.session_key)
            .await?
            .and_then(|r| r.data.get(RECORD_KEY).cloned())
            .and_then(|v| match v {
                serde_json::Value::String(s) => serde_json::from_str::<SessionRecord>(&s).ok(),
                _ => None,
            })
            .filter(|r| r.is_live(policy, now) && r.handle == row.handle);
        let Some(record) = record else { continue };
        let device = devices.remove(&row.handle).unwrap_or_default();
        out.push(LiveSession {
            row,
            record,
            device,
        });
    }
    Ok(out)
}
