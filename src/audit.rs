//! The audit log: every session lifecycle event (login, refresh, logout, revocation, provider
//! logout, identity link) as a row in the SQL store and as a structured log line with the same
//! fields. [`record`] is the one way in. An event names who and what — user id, session handle,
//! provider, client address and user agent, and a small JSON `detail` (reason codes, who revoked) —
//! and never holds a token, a code or a cookie value. A failed write is logged and never fails the
//! request that caused it.
//!
//! Failures of callers who are not signed in (a failed login, a refused broker refresh token, a
//! wrong admin token: failure events without a user) are aggregated: one row per identical event
//! from one address per [`FAILURE_WINDOW_SECS`], with a count, written by an upsert on a key of
//! the window that every instance computes alike. A flood of them adds to a count instead of
//! adding rows, and logs a line at the first, the tenth, the hundredth… of each window.

use serde_json::{Map, Value};

use crate::client_info::ClientInfo;
use crate::store::{IndexedSession, NewAuditRow, Store};

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
    /// A logout token sent to an app's `backchannel_logout_uri` (`detail.client`, `detail.outcome`:
    /// `delivered`, `retrying` or `given_up`).
    ClientLogout,
    /// A provider identity was linked to a local user (`detail.via`: `new_user` or `verified_email`).
    IdentityLinked,
    IdentityUnlinked,
    /// A call to the admin API without the admin token (`detail.reason`: `missing_token`,
    /// `wrong_token`).
    AdminAuthFailed,
}

/// Failures without a user are counted per window of this many seconds.
pub const FAILURE_WINDOW_SECS: i64 = 600;

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
            Event::ClientLogout => "client_logout",
            Event::IdentityLinked => "identity.linked",
            Event::IdentityUnlinked => "identity.unlinked",
            Event::AdminAuthFailed => "admin.auth_failed",
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
            Event::ClientLogout => "back-channel logout to a client",
            Event::IdentityLinked => "identity linked",
            Event::IdentityUnlinked => "identity unlinked",
            Event::AdminAuthFailed => "admin authentication failed",
        }
    }

    fn is_failure(self) -> bool {
        matches!(
            self,
            Event::LoginFailed | Event::RefreshFailed | Event::AdminAuthFailed
        )
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

    /// A failure of a caller who is not signed in: counted per window, not a row each.
    pub fn is_aggregated(&self) -> bool {
        self.event.is_failure() && self.user_id.is_none()
    }

    /// What makes two aggregated events the same row: the window and everything but the time
    /// and the user agent (which a client can vary at will).
    fn window_key(&self, at: i64, detail: &str) -> String {
        let window = at - at.rem_euclid(FAILURE_WINDOW_SECS);
        let fields = serde_json::json!([
            window,
            self.event.as_str(),
            self.provider,
            self.ip,
            self.session,
            detail
        ]);
        crate::crypto::sha256_b64(&fields.to_string())
    }
}

impl AuditEvent {
    /// The event as the store writes it.
    fn row<'a>(&'a self, at: i64, detail: &'a str) -> NewAuditRow<'a> {
        NewAuditRow {
            at,
            event: self.event.as_str(),
            user_id: self.user_id.as_deref(),
            session: self.session.as_deref(),
            provider: self.provider.as_deref(),
            ip: self.ip.as_deref(),
            user_agent: self.user_agent.as_deref(),
            detail,
        }
    }
}

/// Writes the event to the store and to the log. Never fails: a store error is logged.
pub async fn record(store: &Store, at: i64, event: AuditEvent) {
    count(&event);
    let detail = Value::Object(event.detail.clone()).to_string();
    if !event.is_aggregated() {
        log(&event, &detail, None);
        if let Err(e) = store.insert_audit(event.row(at, &detail)).await {
            tracing::warn!(event = event.event.as_str(), error = %e, "the audit event could not be stored");
        }
        return;
    }
    match store
        .count_audit(event.row(at, &detail), &event.window_key(at, &detail))
        .await
    {
        Ok(count) if is_power_of_ten(count) => log(&event, &detail, Some(count)),
        Ok(_) => {}
        Err(e) => {
            log(&event, &detail, None);
            tracing::warn!(event = event.event.as_str(), error = %e, "the audit event could not be stored");
        }
    }
}

/// The event in the metrics: by provider (an app's events by client), and how it ended.
fn count(event: &AuditEvent) {
    let text = |key: &str| event.detail.get(key).and_then(Value::as_str);
    let name = event.provider.as_deref().or_else(|| text("client"));
    let how = text("by").or_else(|| text("outcome"));
    crate::metrics::event(event.event.as_str(), name, how);
}

/// 1, 10, 100, …
fn is_power_of_ten(mut n: i64) -> bool {
    while n >= 10 && n % 10 == 0 {
        n /= 10;
    }
    n == 1
}

/// The event's log line; `count`: how many times it happened in its window so far.
fn log(event: &AuditEvent, detail: &str, count: Option<i64>) {
    tracing::info!(
        target: "audit",
        event = event.event.as_str(),
        user = event.user_id.as_deref(),
        session = event.session.as_deref(),
        provider = event.provider.as_deref(),
        ip = event.ip.as_deref(),
        user_agent = event.user_agent.as_deref(),
        detail = %detail,
        count,
        "{}",
        event.event.message()
    );
}

/// Removes the events older than `[audit] retention` (run by the background sweeper).
pub async fn sweep_expired(store: &Store, retention: std::time::Duration, now: i64) {
    let retention = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX / 4);
    let before = now.saturating_sub(retention);
    match store.sweep_audit(before).await {
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
            Value::Object(e.detail.clone()).to_string(),
            r#"{"reason":"invalid_state"}"#
        );
        assert!(e.is_aggregated());
    }

    #[test]
    fn only_failures_without_a_user_are_aggregated() {
        assert!(AuditEvent::new(Event::AdminAuthFailed).is_aggregated());
        assert!(AuditEvent::new(Event::RefreshFailed).is_aggregated());
        assert!(
            !AuditEvent::new(Event::RefreshFailed)
                .user("u1")
                .is_aggregated()
        );
        assert!(!AuditEvent::new(Event::LoginSucceeded).is_aggregated());
        assert!(!AuditEvent::new(Event::Logout).is_aggregated());
    }

    #[test]
    fn one_window_key_per_event_address_and_window() {
        let e = |ip: &str| {
            AuditEvent::new(Event::LoginFailed)
                .client(&ClientInfo {
                    ip: Some(ip.into()),
                    user_agent: Some(crate::crypto::random_hex(4)),
                    device: String::new(),
                })
                .detail("reason", "invalid_state")
        };
        let d = r#"{"reason":"invalid_state"}"#;
        let start = 1_800_000_000 - 1_800_000_000 % FAILURE_WINDOW_SECS;
        let key = e("192.0.2.1").window_key(start, d);
        // Any user agent, any time in the window: the same row.
        assert_eq!(
            e("192.0.2.1").window_key(start + FAILURE_WINDOW_SECS - 1, d),
            key
        );
        assert_ne!(e("192.0.2.2").window_key(start, d), key);
        assert_ne!(
            e("192.0.2.1").window_key(start + FAILURE_WINDOW_SECS, d),
            key
        );
        assert_ne!(
            e("192.0.2.1").window_key(start, r#"{"reason":"other"}"#),
            key
        );
        assert_ne!(e("192.0.2.1").provider("corp").window_key(start, d), key);
    }

    #[test]
    fn powers_of_ten_are_logged() {
        let logged: Vec<i64> = (1..=1000).filter(|n| is_power_of_ten(*n)).collect();
        assert_eq!(logged, [1, 10, 100, 1000]);
    }
}
