//! A new local session after a login: a fresh id (no fixation), the record, its index row with the
//! sealed provider tokens and the device it was signed in from, and `max_per_user` applied. A
//! failure on the way leaves no half-made session behind.

use tower_sessions::Session;

use super::{Parts, SessionError, SessionRecord, end_session, list, record, refresh};
use crate::audit::{self, AuditEvent, RevokedBy};
use crate::client_info::ClientInfo;
use crate::identity::UserView;
use crate::providers::ProviderTokens;
use crate::store::devices::SessionDevice;
use crate::store::{IndexedSession, SessionKey};
use crate::tokens::StoredTokens;

/// What a completed login brings to its new session.
pub struct Login<'a> {
    pub user: UserView,
    pub provider: &'a str,
    /// OpenID Connect Back-Channel Logout: the provider's session id, when it sends one.
    pub provider_sid: Option<String>,
    pub tokens: Option<&'a ProviderTokens>,
    pub client: &'a ClientInfo,
    /// The provider's `acr` for this sign-in.
    pub acr: Option<String>,
}

/// Starts the session of `web_session` for `login`; returns the record and its index row.
pub async fn after_login(
    parts: Parts<'_>,
    web_session: &Session,
    login: Login<'_>,
) -> Result<(SessionRecord, IndexedSession), SessionError> {
    let now = parts.clock.now();
    let subject = login.user.identity.subject.clone();
    let mut record = record::start(web_session, login.user, parts.policy, now).await?;
    // Saved now (not after the response) so that the session has its id for the index.
    web_session.save().await?;
    let Some(session_id) = web_session.id() else {
        return Err(SessionError::Internal(
            "session has no id after save".into(),
        ));
    };
    let stored = login
        .tokens
        .map(|t| StoredTokens::from_response(t, now.unix_timestamp()));
    let sealed = match &stored {
        Some(t) => Some(
            parts
                .vault
                .seal(t, &record.handle)
                .map_err(|e| SessionError::Internal(e.to_string()))?,
        ),
        None => None,
    };
    record.refresh_at = stored
        .as_ref()
        .and_then(|t| refresh::due_at(t, parts.policy.refresh_margin));
    record.acr = login.acr;
    if record.refresh_at.is_some() || record.acr.is_some() {
        record::put(web_session, &record).await?;
    }
    let row = IndexedSession {
        handle: record.handle.clone(),
        session_key: SessionKey::of(&session_id),
        user_id: record.user.id.clone(),
        provider: login.provider.to_string(),
        subject,
        provider_sid: login.provider_sid,
        created_at: record.created_at,
        expires_at: record.absolute_expires_at,
        access_expires_at: login
            .tokens
            .and_then(|t| t.expires_in)
            .and_then(|s| i64::try_from(s).ok())
            .map(|s| now.unix_timestamp() + s),
        tokens: sealed,
    };
    if let Err(e) = parts.store.index_session(&row).await {
        // No half-made session: without its index row it could not be listed or revoked.
        let _ = web_session.flush().await;
        return Err(e.into());
    }
    let device = SessionDevice {
        ip: login.client.ip.clone(),
        user_agent: login.client.user_agent.clone(),
        device: Some(login.client.device.clone()),
    };
    let mut done = parts
        .store
        .record_session_device(&row.handle, &device)
        .await
        .map_err(SessionError::from);
    if done.is_ok() {
        done = enforce_session_limit(parts, &row).await;
    }
    if let Err(e) = done {
        let _ = end_session(parts.store, parts.sessions, &row).await;
        let _ = web_session.flush().await;
        return Err(e);
    }
    Ok((record, row))
}

/// `[session] max_per_user`: the user's oldest live sessions end so that, with the new one, at
/// most that many remain.
async fn enforce_session_limit(parts: Parts<'_>, new: &IndexedSession) -> Result<(), SessionError> {
    let Some(max) = parts.policy.max_per_user else {
        return Ok(());
    };
    let now = parts.clock.now();
    let live =
        list::live_sessions(parts.store, parts.sessions, parts.policy, now, &new.user_id).await?;
    // Newest first; the new session is always kept.
    let others = live.iter().filter(|s| s.row.handle != new.handle);
    for old in others.skip(max.saturating_sub(1)) {
        end_session(parts.store, parts.sessions, &old.row).await?;
        let event =
            AuditEvent::revoked(&old.row, RevokedBy::MaxPerUser).detail("max_per_user", max);
        audit::record(parts.store, now.unix_timestamp(), event).await;
    }
    Ok(())
}
