//! The audit log: every session lifecycle event (login, refresh, logout, revocation, provider
//! logout, identity link) as a row in the SQL store and as a structured log line with the same
//! fields. [`record`] is the one way in. An event names who and what — user id, session handle,
//! provider, client address and user agent, and a small JSON `detail` (reason codes, who revoked) —
//! and never holds a token, a code or a cookie value. A failed write is logged and never fails the
//! request that caused it.

use serde_json::{Map, Value};

use crate::client_info::ClientInfo;
use crate::store::{IndexedSession, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    LoginSucceeded,
    /// `detail.reason`: the error code the login ended with.
    LoginFailed,
    RefreshSucceeded,
    /// `detail.reason`; `detail.session_ended` when the failure ended the session.
    RefreshFailed,
    Logout,
    /// `detail.by`: who ended the session ([`RevokedBy`]).
    SessionRevoked,
    BackchannelLogout,
    FrontchannelLogout,
    /// A provider identity was linked to a local user (`detail.via`: `new_user` or `verified_email`).
    IdentityLinked,
    IdentityUnlinked,
}

impl Event {
    pub fn as_str(self) -> &'static str {
        match self {
            Event::LoginSucceeded => "login.succeeded",
            Event::LoginFailed => "login.failed",
            Event::RefreshSucceeded => "refresh.succeeded",
            Event::RefreshFailed => "refresh.failed",
            Event::Logout => "logout",
            Event::SessionRevoked => "session.revoked",
            Event::BackchannelLogout => "backchannel_logout",
            Event::FrontchannelLogout => "frontchannel_logout",
            Event::IdentityLinked => "identity.linked",
            Event::IdentityUnlinked => "identity.unlinked",
        }
    }

    /// The log line's message.
    pub fn message(self) -> &'static str {
        match self {
            Event::LoginSucceeded => "login succeeded",
            Event::LoginFailed => "login failed",
            Event::RefreshSucceeded => "refresh succeeded",
            Event::RefreshFailed => "refresh failed",
            Event::Logout => "logout",
            Event::SessionRevoked => "session revoked",
            Event::BackchannelLogout => "back-channel logout",
            Event::FrontchannelLogout => "front-channel logout",
            Event::IdentityLinked => "identity linked",
            Event::IdentityUnlinked => "identity unlinked",
        }
    }
}

/// Who ended a session that was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBy {
    /// The signed-in user, from their session list.
    User,
    /// An operator through the admin API.
    Admin,
    /// An operator through `oidc-broker sessions revoke`.
    Cli,
    /// A login beyond `[session] max_per_user`.
    MaxPerUser,
    /// A replaced broker refresh token used again after the grace window.
    RefreshTokenReuse,
}

impl RevokedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokedBy::User => "user",
            RevokedBy::Admin => "admin",
            RevokedBy::Cli => "cli",
            RevokedBy::MaxPerUser => "max_per_user",
            RevokedBy::RefreshTokenReuse => "refresh_token_reuse",
        }
    }
}

/// One event, built up field by field.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub event: Event,
    pub user_id: Option<String>,
    /// The session's public handle.
    pub session: Option<String>,
    pub provider: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Map<String, Value>,
}

impl AuditEvent {
    pub fn new(event: Event) -> Self {
        AuditEvent {
            event,
            user_id: None,
            session: None,
            provider: None,
            ip: None,
            user_agent: None,
            detail: Map::new(),
        }
    }

    /// An event about an indexed session: its user, handle and provider.
    pub fn of_session(event: Event, row: &IndexedSession) -> Self {
        Self::new(event)
            .user(&row.user_id)
            .session(&row.handle)
            .provider(&row.provider)
    }

    /// A session revocation, with who did it.
    pub fn revoked(row: &IndexedSession, by: RevokedBy) -> Self {
        Self::of_session(Event::SessionRevoked, row).detail("by", by.as_str())
    }

    pub fn user(mut self, id: &str) -> Self {
        self.user_id = Some(id.to_string());
        self
    }

    pub fn session(mut self, handle: &str) -> Self {
        self.session = Some(handle.to_string());
        self
    }

    pub fn provider(mut self, id: &str) -> Self {
        self.provider = Some(id.to_string());
        self
    }

    /// The address and user agent of the request that caused the event.
    pub fn client(mut self, client: &ClientInfo) -> Self {
        self.ip.clone_from(&client.ip);
        self.user_agent.clone_from(&client.user_agent);
        self
    }

    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.detail.insert(key.to_string(), value.into());
        self
    }
}

/// Writes the event to the store and to the log. Never fails: a store error is logged.
pub async fn record(store: &Store, at: i64, event: AuditEvent) {
    let detail = Value::Object(event.detail.clone()).to_string();
    tracing::info!(
        target: "audit",
        event = event.event.as_str(),
        user = event.user_id.as_deref(),
        session = event.session.as_deref(),
        provider = event.provider.as_deref(),
        ip = event.ip.as_deref(),
        user_agent = event.user_agent.as_deref(),
        detail = %detail,
        "{}",
        event.event.message()
    );
    if let Err(e) = store.insert_audit(at, &event, &detail).await {
        tracing::warn!(event = event.event.as_str(), error = %e, "the audit event could not be stored");
    }
}

/// Removes the events older than `[audit] retention` (run by the background sweeper).
pub async fn sweep_expired(state: &crate::routes::AppState) {
    let retention = i64::try_from(state.config.audit.retention.as_secs()).unwrap_or(i64::MAX / 4);
    let before = state.clock.now().unix_timestamp().saturating_sub(retention);
    match state.store.sweep_audit(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(events = n, "old audit events swept"),
        Err(e) => tracing::warn!(error = %e, "sweeping the audit log failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_who_and_where_and_what() {
        let client = ClientInfo {
            ip: Some("203.0.113.9".into()),
            user_agent: Some("curl/8".into()),
            device: "curl".into(),
        };
        let e = AuditEvent::new(Event::LoginFailed)
            .provider("corp")
            .client(&client)
            .detail("reason", "invalid_state");
        assert_eq!(e.event.as_str(), "login.failed");
        assert_eq!(e.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(e.user_agent.as_deref(), Some("curl/8"));
        assert_eq!(
            Value::Object(e.detail).to_string(),
            r#"{"reason":"invalid_state"}"#
        );
    }
}
