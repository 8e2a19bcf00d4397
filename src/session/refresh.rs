//! Keeping provider tokens fresh while a session is used. When the access token is within the
//! refresh margin of expiry, one request refreshes it — single-flight per session across every
//! instance sharing the store (a lock row), so a rotating refresh token is never presented twice
//! (Auth0 revokes the whole family on reuse). The rotated token is stored before any response.
//! A definitive failure (`invalid_grant`) ends the local session; a passing one follows
//! `on_refresh_failure`.

use std::time::Duration;

use time::OffsetDateTime;
use tower_sessions::Session;

use super::{Parts, SessionError, SessionRecord, end_session, record};
use crate::audit::{self, AuditEvent, Event};
use crate::config::RefreshFailurePolicy;
use crate::crypto;
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
    parts: Parts<'_>,
    web_session: &Session,
    record: SessionRecord,
) -> Result<Option<SessionRecord>, SessionError> {
    let now = parts.clock.now();
    if record.refresh_at.is_none_or(|t| now.unix_timestamp() < t) {
        return Ok(Some(record));
    }
    let handle = record.handle.clone();
    let holder = crypto::random_token(12);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now_ts = parts.clock.now().unix_timestamp();
        if parts
            .store
            .try_lock_refresh(&handle, &holder, now_ts, now_ts + LOCK_SECS)
            .await?
        {
            let outcome = refresh_locked(parts, web_session, record, now).await;
            let _ = parts.store.unlock_refresh(&handle, &holder).await;
            return outcome;
        }
        // Another request (maybe on another instance) is refreshing: use its result.
        tokio::time::sleep(Duration::from_millis(40)).await;
        let Some(row) = parts.store.indexed_session(&handle).await? else {
            record::end(web_session).await?;
            return Ok(None);
        };
        if let Some(fresh) = fresh_record(parts, &record, &row, now) {
            record::put(web_session, &fresh).await?;
            return Ok(Some(fresh));
        }
        if tokio::time::Instant::now() >= deadline {
            // Still refreshing elsewhere: this request goes on with the tokens it has.
            return Ok(Some(record));
        }
    }
}

/// The session's current provider access token, for an upstream route that asked for it: the one
/// the last refresh stored (the live check of the request has refreshed it if it was due). `None`
/// when the session has none still valid: expired with nothing to refresh it, or sealed under a key
/// that has left the ring.
pub async fn current_access_token(
    parts: Parts<'_>,
    handle: &str,
) -> Result<Option<String>, SessionError> {
    let Some(row) = parts.store.indexed_session(handle).await? else {
        return Ok(None);
    };
    let Some(tokens) = row
        .tokens
        .as_deref()
        .and_then(|s| parts.vault.open(s, &row.handle).ok())
    else {
        return Ok(None);
    };
    let now = parts.clock.now().unix_timestamp();
    if tokens.access_token.is_empty() || tokens.expires_at.is_some_and(|exp| now >= exp) {
        return Ok(None);
    }
    Ok(Some(tokens.access_token))
}

/// The record updated from the index row if the row's tokens are no longer due.
fn fresh_record(
    parts: Parts<'_>,
    record: &SessionRecord,
    row: &IndexedSession,
    now: OffsetDateTime,
) -> Option<SessionRecord> {
    let tokens = parts.vault.open(row.tokens.as_deref()?, &row.handle).ok()?;
    let next = due_at(&tokens, parts.policy.refresh_margin);
    if next.is_some_and(|t| now.unix_timestamp() >= t) {
        return None;
    }
    let mut r = record.clone();
    r.refresh_at = next;
    Some(r)
}

async fn refresh_locked(
    parts: Parts<'_>,
    web_session: &Session,
    record: SessionRecord,
    now: OffsetDateTime,
) -> Result<Option<SessionRecord>, SessionError> {
    let policy = parts.policy;
    let Some(row) = parts.store.indexed_session(&record.handle).await? else {
        record::end(web_session).await?;
        return Ok(None);
    };
    // Refreshed by someone else between our check and the lock.
    if let Some(fresh) = fresh_record(parts, &record, &row, now) {
        record::put(web_session, &fresh).await?;
        return Ok(Some(fresh));
    }
    let Some(tokens) = row
        .tokens
        .as_deref()
        .and_then(|s| parts.vault.open(s, &row.handle).ok())
    else {
        // Unreadable (a key left the ring): nothing to refresh with; the local policy still rules.
        let mut r = record.clone();
        r.refresh_at = None;
        record::put(web_session, &r).await?;
        return Ok(Some(r));
    };
    let (Some(refresh_token), Some(provider)) = (
        tokens.refresh_token.clone(),
        parts.providers.get(&row.provider).cloned(),
    ) else {
        let mut r = record.clone();
        r.refresh_at = None;
        record::put(web_session, &r).await?;
        return Ok(Some(r));
    };
    match provider.refresh(&refresh_token, &row.subject).await {
        Ok(refreshed) => {
            let stored =
                store_refreshed(parts, &row, tokens, refresh_token, refreshed, now).await?;
            let mut r = record.clone();
            r.refresh_at = due_at(&stored, policy.refresh_margin);
            record::put(web_session, &r).await?;
            Ok(Some(r))
        }
        Err(e) if e.definitive => {
            tracing::info!(provider = %provider.id, session = %row.handle, reason = %e.reason, "refresh refused: session ended");
            end_session(parts.store, parts.sessions, &row).await?;
            refresh_failed(parts, &row, &e.reason, true, now).await;
            record::end(web_session).await?;
            Ok(None)
        }
        Err(e) => {
            let expired = tokens
                .expires_at
                .is_none_or(|exp| now.unix_timestamp() >= exp);
            if policy.on_refresh_failure == RefreshFailurePolicy::End || expired {
                tracing::info!(provider = %provider.id, session = %row.handle, reason = %e.reason, "refresh failed: session ended by policy");
                end_session(parts.store, parts.sessions, &row).await?;
                refresh_failed(parts, &row, &e.reason, true, now).await;
                record::end(web_session).await?;
                return Ok(None);
            }
            tracing::warn!(provider = %provider.id, session = %row.handle, reason = %e.reason, "refresh failed: kept until the provider token expires; retrying later");
            refresh_failed(parts, &row, &e.reason, false, now).await;
            let mut r = record.clone();
            let retry = now.unix_timestamp() + RETRY_SECS;
            r.refresh_at = Some(tokens.expires_at.map_or(retry, |exp| retry.min(exp)));
            record::put(web_session, &r).await?;
            Ok(Some(r))
        }
    }
}

/// Keeps what a refresh answer leaves out (Cognito sends no new refresh token; a refused or
/// missing ID token keeps the login's, the `id_token_hint` of the logout URL), then seals and
/// stores the tokens before any response returns, so a rotated token is never lost.
async fn store_refreshed(
    parts: Parts<'_>,
    row: &IndexedSession,
    old: StoredTokens,
    refresh_token: String,
    refreshed: crate::providers::Refreshed,
    now: OffsetDateTime,
) -> Result<StoredTokens, SessionError> {
    let now_ts = now.unix_timestamp();
    let mut stored = StoredTokens::from_response(&refreshed.tokens, now_ts);
    if stored.refresh_token.is_none() {
        stored.refresh_token = Some(refresh_token);
    }
    if stored.id_token.is_none() {
        stored.id_token = old.id_token;
    }
    if let Some(why) = &refreshed.id_token_refused {
        tracing::warn!(provider = %row.provider, session = %row.handle, reason = %why, "refreshed ID token refused; the previous one is kept");
    }
    let sealed = parts
        .vault
        .seal(&stored, &row.handle)
        .map_err(|e| SessionError::Internal(e.to_string()))?;
    parts
        .store
        .update_tokens(&row.handle, &sealed, stored.expires_at)
        .await?;
    let mut event =
        AuditEvent::of_session(Event::RefreshSucceeded, row).detail("token", "provider");
    if let Some(why) = refreshed.id_token_refused {
        event = event.detail("id_token_refused", why);
    }
    audit::record(parts.store, now_ts, event).await;
    Ok(stored)
}

async fn refresh_failed(
    parts: Parts<'_>,
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
    audit::record(parts.store, now.unix_timestamp(), event).await;
}
