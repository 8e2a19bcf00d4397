//! Keeping provider tokens fresh while a session is used. When the access token is within the
//! refresh margin of expiry, one request refreshes it — single-flight per session across every
//! instance sharing the store (a lock row), so a rotating refresh token is never presented twice
//! (Auth0 revokes the whole family on reuse). The rotated token is stored before any response.
//! A definitive failure (`invalid_grant`) ends the local session; a passing one follows
//! `on_refresh_failure`.

use std::time::Duration;

use time::OffsetDateTime;
use tower_sessions::Session;

use crate::audit::{self, AuditEvent, Event};
use crate::config::RefreshFailurePolicy;
use crate::crypto;
use crate::error::AppResult;
use crate::state::AppState;
use crate::session::{self, SessionRecord};
use crate::store::IndexedSession;
use crate::tokens::StoredTokens;

/// How long a holder may keep the refresh lock (longer than the provider call's timeout).
const LOCK_SECS: i64 = 30;
/// How long a waiter waits for another instance's refresh before giving up on this request.
const WAIT: Duration = Duration::from_secs(12);
/// After a passing failure, the next attempt waits this long (kept in the record).
const RETRY_SECS: i64 = 30;

/// When the next refresh of these tokens is due.
pub fn due_at(tokens: &StoredTokens, margin: Duration) -> Option<i64> {
    tokens.refresh_token.as_ref()?;
    let margin = i64::try_from(margin.as_secs()).unwrap_or(60);
    tokens.expires_at.map(|e| e - margin)
}

/// Returns the record to use (refreshed if it was due), or `None` when the session had to end.
pub async fn ensure_fresh(
    state: &AppState,
    web_session: &Session,
    record: SessionRecord,
) -> AppResult<Option<SessionRecord>> {
    let now = state.clock.now();
    if record.refresh_at.is_none_or(|t| now.unix_timestamp() < t) {
        return Ok(Some(record));
    }
    let handle = record.handle.clone();
    let holder = crypto::random_token(12);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now_ts = state.clock.now().unix_timestamp();
        if state
            .store
            .try_lock_refresh(&handle, &holder, now_ts, now_ts + LOCK_SECS)
            .await?
        {
            let outcome = refresh_locked(state, web_session, record, now).await;
            let _ = state.store.unlock_refresh(&handle, &holder).await;
            return outcome;
        }
        // Another request (maybe on another instance) is refreshing: use its result.
        tokio::time::sleep(Duration::from_millis(40)).await;
        let Some(row) = state.store.indexed_session(&handle).await? else {
            session::end(web_session).await?;
            return Ok(None);
        };
        if let Some(fresh) = fresh_record(state, &record, &row, now) {
            session::put(web_session, &fresh).await?;
            return Ok(Some(fresh));
        }
        if tokio::time::Instant::now() >= deadline {
            // Still refreshing elsewhere: this request goes on with the tokens it has.
            return Ok(Some(record));
        }
    }
}

/// The record updated from the index row if the row's tokens are no longer due.
fn fresh_record(
    state: &AppState,
    record: &SessionRecord,
    row: &IndexedSession,
    now: OffsetDateTime,
) -> Option<SessionRecord> {
    let tokens = state.vault.open(row.tokens.as_deref()?, &row.handle).ok()?;
    let next = due_at(&tokens, state.config.session.refresh_margin);
    if next.is_some_and(|t| now.unix_timestamp() >= t) {
        return None;
    }
    let mut r = record.clone();
    r.refresh_at = next;
    Some(r)
}

async fn refresh_locked(
    state: &AppState,
    web_session: &Session,
    record: SessionRecord,
    now: OffsetDateTime,
) -> AppResult<Option<SessionRecord>> {
    let policy = &state.config.session;
    let Some(row) = state.store.indexed_session(&record.handle).await? else {
        session::end(web_session).await?;
        return Ok(None);
    };
    // Refreshed by someone else between our check and the lock.
    if let Some(fresh) = fresh_record(state, &record, &row, now) {
        session::put(web_session, &fresh).await?;
        return Ok(Some(fresh));
    }
    let Some(tokens) = row
        .tokens
        .as_deref()
        .and_then(|s| state.vault.open(s, &row.handle).ok())
    else {
        // Unreadable (a key left the ring): nothing to refresh with; the local policy still rules.
        let mut r = record.clone();
        r.refresh_at = None;
        session::put(web_session, &r).await?;
        return Ok(Some(r));
    };
    let (Some(refresh_token), Some(provider)) = (
        tokens.refresh_token.clone(),
        state.providers.get(&row.provider).cloned(),
    ) else {
        let mut r = record.clone();
        r.refresh_at = None;
        session::put(web_session, &r).await?;
        return Ok(Some(r));
    };
    match provider.refresh(&refresh_token, &row.subject).await {
        Ok(refreshed) => {
            let now_ts = now.unix_timestamp();
            let mut stored = StoredTokens::from_response(&refreshed.tokens, now_ts);
            // Cognito (and others without rotation) send no new refresh token: keep the old one.
            if stored.refresh_token.is_none() {
                stored.refresh_token = Some(refresh_token);
            }
            // No ID token in the answer, or one that failed §12.2's checks: the login's stays
            // (it is the `id_token_hint` of the logout URL).
            if stored.id_token.is_none() {
                stored.id_token = tokens.id_token;
            }
            if let Some(why) = &refreshed.id_token_refused {
                tracing::warn!(provider = %provider.id, session = %row.handle, reason = %why, "refreshed ID token refused; the previous one is kept");
            }
            let sealed = state
                .vault
                .seal(&stored, &row.handle)
                .map_err(crate::error::AppError::internal)?;
            // Stored before any response returns, so a rotated token is never lost.
            state
                .store
                .update_tokens(&row.handle, &sealed, stored.expires_at)
                .await?;
            let mut r = record.clone();
            r.refresh_at = due_at(&stored, policy.refresh_margin);
            session::put(web_session, &r).await?;
            let mut event =
                AuditEvent::of_session(Event::RefreshSucceeded, &row).detail("token", "provider");
            if let Some(why) = refreshed.id_token_refused {
                event = event.detail("id_token_refused", why);
            }
            audit::record(&state.store, now_ts, event).await;
            Ok(Some(r))
        }
        Err(e) if e.definitive => {
            tracing::info!(provider = %provider.id, session = %row.handle, reason = %e.reason, "refresh refused: session ended");
            state.end_session(&row).await?;
            refresh_failed(state, &row, &e.reason, true, now).await;
            session::end(web_session).await?;
            Ok(None)
        }
        Err(e) => {
            let expired = tokens
                .expires_at
                .is_none_or(|exp| now.unix_timestamp() >= exp);
            if policy.on_refresh_failure == RefreshFailurePolicy::End || expired {
                tracing::info!(provider = %provider.id, session = %row.handle, reason = %e.reason, "refresh failed: session ended by policy");
                state.end_session(&row).await?;
                refresh_failed(state, &row, &e.reason, true, now).await;
                session::end(web_session).await?;
                return Ok(None);
            }
            tracing::warn!(provider = %provider.id, session = %row.handle, reason = %e.reason, "refresh failed: kept until the provider token expires; retrying later");
            refresh_failed(state, &row, &e.reason, false, now).await;
            let mut r = record.clone();
            let retry = now.unix_timestamp() + RETRY_SECS;
            r.refresh_at = Some(tokens.expires_at.map_or(retry, |exp| retry.min(exp)));
            session::put(web_session, &r).await?;
            Ok(Some(r))
        }
    }
}

async fn refresh_failed(
    state: &AppState,
    row: &IndexedSession,
    reason: &str,
    session_ended: bool,
    now: OffsetDateTime,
) {
    let event = AuditEvent::of_session(Event::RefreshFailed, row)
        .detail("token", "provider")
        // Written by the provider clients (status and safe error code, or a transport error).
        .detail("reason", reason.chars().take(200).collect::<String>())
        .detail("session_ended", session_ended);
    audit::record(&state.store, now.unix_timestamp(), event).await;
}
