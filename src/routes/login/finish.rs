//! The common end of every kind's login: claims → identity → local user → fresh session.

use serde_json::{Map, Value};
use tower_sessions::Session;

use super::super::AppState;
use crate::audit::{self, AuditEvent, Event, RevokedBy};
use crate::client_info::ClientInfo;
use crate::error::{AppError, AppResult};
use crate::identity::{self, UserView};
use crate::providers::{Provider, ProviderTokens};
use crate::session::{self, SessionRecord};
use crate::store::IndexedSession;
use crate::store::devices::SessionDevice;
use crate::tokens::StoredTokens;

/// Verified claims → identity → local user → a fresh session (new id, no fixation), recorded with
/// the client it was signed in from and audited; beyond `max_per_user`, the oldest sessions end.
pub async fn finish_login(
    state: &AppState,
    web_session: &Session,
    provider: &Provider,
    claims: &Map<String, Value>,
    tokens: Option<&ProviderTokens>,
    client: &ClientInfo,
) -> AppResult<SessionRecord> {
    let now = state.clock.now();
    let identity = identity::from_claims(
        &provider.id,
        provider.kind.as_str(),
        claims,
        &provider.claims,
    )?;
    let link = state
        .store
        .link_identity(&identity, now, state.config.identity.link_by)
        .await?;
    let user_id = link.user_id.clone();
    let subject = identity.subject.clone();
    let record = session::start(
        web_session,
        UserView {
            id: user_id,
            identity,
        },
        &state.config.session,
        now,
    )
    .await?;
    // Saved now (not after the response) so that the session has its id for the index.
    web_session.save().await?;
    let Some(session_id) = web_session.id() else {
        return Err(AppError::internal("session has no id after save"));
    };
    let stored = tokens.map(|t| StoredTokens::from_response(t, now.unix_timestamp()));
    let sealed = match &stored {
        Some(t) => Some(
            state
                .vault
                .seal(t, &record.handle)
                .map_err(AppError::internal)?,
        ),
        None => None,
    };
    let mut record = record;
    record.refresh_at = stored
        .as_ref()
        .and_then(|t| crate::session::refresh::due_at(t, state.config.session.refresh_margin));
    if record.refresh_at.is_some() {
        session::put(web_session, &record).await?;
    }
    let row = IndexedSession {
        handle: record.handle.clone(),
        session_key: crate::store::SessionKey::of(&session_id),
        user_id: record.user.id.clone(),
        provider: provider.id.clone(),
        subject,
        // OpenID Connect Back-Channel Logout: the provider's session id, when it sends one.
        provider_sid: claims
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_string),
        created_at: record.created_at,
        expires_at: record.absolute_expires_at,
        access_expires_at: tokens
            .and_then(|t| t.expires_in)
            .and_then(|s| i64::try_from(s).ok())
            .map(|s| now.unix_timestamp() + s),
        tokens: sealed,
    };
    if let Err(e) = state.store.index_session(&row).await {
        // No half-made session: without its index row it could not be listed or revoked.
        let _ = web_session.flush().await;
        return Err(e.into());
    }
    let device = SessionDevice {
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        device: Some(client.device.clone()),
    };
    let mut done = state
        .store
        .record_session_device(&row.handle, &device)
        .await
        .map_err(AppError::from);
    if done.is_ok() {
        done = enforce_session_limit(state, &row).await;
    }
    if let Err(e) = done {
        let _ = state.end_session(&row).await;
        let _ = web_session.flush().await;
        return Err(e);
    }
    let at = now.unix_timestamp();
    if link.new_identity {
        let via = if link.new_user {
            "new_user"
        } else {
            "verified_email"
        };
        let event = AuditEvent::new(Event::IdentityLinked)
            .user(&row.user_id)
            .provider(&row.provider)
            .client(client)
            .detail("subject", row.subject.as_str())
            .detail("via", via);
        audit::record(&state.store, at, event).await;
    }
    let event = AuditEvent::of_session(Event::LoginSucceeded, &row).client(client);
    audit::record(&state.store, at, event).await;
    Ok(record)
}

/// `[session] max_per_user`: the user's oldest live sessions end so that, with the new one, at
/// most that many remain.
async fn enforce_session_limit(state: &AppState, new: &IndexedSession) -> AppResult<()> {
    let Some(max) = state.config.session.max_per_user else {
        return Ok(());
    };
    let now = state.clock.now();
    let live = crate::session::list::live_sessions(
        &state.store,
        &state.sessions,
        &state.config.session,
        now,
        &new.user_id,
    )
    .await?;
    // Newest first; the new session is always kept.
    let others = live.iter().filter(|s| s.row.handle != new.handle);
    for old in others.skip(max.saturating_sub(1)) {
        state.end_session(&old.row).await?;
        let event =
            AuditEvent::revoked(&old.row, RevokedBy::MaxPerUser).detail("max_per_user", max);
        audit::record(&state.store, now.unix_timestamp(), event).await;
    }
    Ok(())
}
