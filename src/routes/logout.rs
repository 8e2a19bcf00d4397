//! Logout: a confirmation page, the protected POST (local session, provider refresh token, provider
//! logout URL), and the logged-out landing page.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;
use tower_sessions::Session;

use super::{AppState, caller, check_same_site};
use crate::audit::{self, AuditEvent, Event};
use crate::client_info::ClientInfo;
use crate::error::AppResult;
use crate::providers::{Provider, RevokeError};
use crate::session;

/// How long a failed revocation waits before its first retry.
const REVOKE_RETRY_SECS: i64 = 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/logout", get(confirm).post(logout))
        .route("/auth/logged-out", get(logged_out))
}

async fn confirm(State(state): State<AppState>, web_session: Session) -> AppResult<Response> {
    let record = session::current(&web_session, &state.config.session, state.clock.now()).await?;
    let user = record.map(|r| {
        r.user
            .identity
            .name
            .or(r.user.identity.email)
            .unwrap_or(r.user.identity.subject)
    });
    state.render(
        "logout.html",
        minijinja::context! { user => user, action => state.config.server.url("/auth/logout") },
    )
}

/// Ends the session: its record and index row go first (so nothing can use it while the provider is
/// called), then the provider refresh token is revoked — a failure there is queued for retry and
/// never blocks the local logout. A form post is redirected to the provider's logout URL; an API
/// caller gets `{"logout_url": …}` to send the browser to.
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    web_session: Session,
    client: ClientInfo,
) -> AppResult<Response> {
    // A bearer token is not sent by browsers on their own, so it needs no cross-site check.
    if caller::bearer_token(&headers).is_none() {
        check_same_site(&state, &headers)?;
    }
    let logged_out = state.config.server.url("/auth/logged-out");
    let mut logout_url = logged_out.clone();
    let caller = caller::authenticate(&state, &headers, &web_session).await?;
    let ended = caller.as_ref().map(|c| c.session.clone());
    // What became of the provider refresh token, for the audit event.
    let mut revocation = None;
    if let Some(record) = caller.map(|c| c.record) {
        if let Some(row) = state.store.indexed_session(&record.handle).await? {
            let tokens = row
                .tokens
                .as_deref()
                .and_then(|s| state.vault.open(s, &row.handle).ok());
            state.end_session(&row).await?;
            if let Some(provider) = state.providers.get(&row.provider) {
                provider.end_user_sessions(&row.subject, &row.handle).await;
                if let Some(rt) = tokens.as_ref().and_then(|t| t.refresh_token.as_deref()) {
                    revocation = revoke_or_queue(&state, provider, rt, &row.handle).await;
                }
                if let Some(u) = provider
                    .logout_url(
                        tokens.as_ref().and_then(|t| t.id_token.as_deref()),
                        &logged_out,
                    )
                    .await
                {
                    logout_url = u;
                }
            }
        }
        let mut event = AuditEvent::new(Event::Logout)
            .user(&record.user.id)
            .session(&record.handle)
            .provider(&record.user.identity.provider)
            .client(&client);
        if let Some(outcome) = revocation {
            event = event.detail("revocation", outcome);
        }
        audit::record(&state.store, state.clock.now().unix_timestamp(), event).await;
    }
    if let Some(s) = &ended {
        session::end(s).await?;
    }
    session::end(&web_session).await?;
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.starts_with("application/x-www-form-urlencoded")
                || v.starts_with("multipart/form-data")
        });
    if is_form {
        Ok(Redirect::to(&logout_url).into_response())
    } else {
        Ok(Json(json!({ "logout_url": logout_url })).into_response())
    }
}

/// Revokes now; if the provider cannot be reached, queues the (sealed) token for retry. Returns
/// the outcome for the audit: `revoked`, `queued`, `not_queued`, or `nothing_revoked` when the
/// provider names no revocation endpoint anywhere (the token then stays valid at the provider);
/// `None` when the provider's kind revokes no single tokens.
pub async fn revoke_or_queue(
    state: &AppState,
    provider: &Provider,
    refresh_token: &str,
    handle: &str,
) -> Option<&'static str> {
    let outcome = match provider.revoke_refresh_token(refresh_token).await {
        Ok(true) => {
            tracing::info!(provider = %provider.id, session = %handle, "refresh token revoked");
            "revoked"
        }
        Ok(false) => {
            tracing::warn!(provider = %provider.id, session = %handle, "nothing revoked: the provider has no revocation endpoint (set revocation_endpoint if it has one); its refresh token stays valid there");
            "nothing_revoked"
        }
        Err(RevokeError::NotSupported) => return None,
        Err(RevokeError::Failed { reason, .. }) => {
            tracing::warn!(provider = %provider.id, session = %handle, reason = %reason, "revocation failed; queued for retry");
            if queue_revocation(state, &provider.id, refresh_token, handle, &reason).await {
                "queued"
            } else {
                tracing::error!(provider = %provider.id, session = %handle, "revocation could not be queued");
                "not_queued"
            }
        }
    };
    Some(outcome)
}

/// Seals the token and queues it for [`retry_revocations`]; whether that worked.
async fn queue_revocation(
    state: &AppState,
    provider_id: &str,
    refresh_token: &str,
    handle: &str,
    reason: &str,
) -> bool {
    let context = format!("revoke:{handle}");
    let Ok(sealed) = state.vault.seal_value(refresh_token, &context) else {
        return false;
    };
    let next = state.clock.now().unix_timestamp() + REVOKE_RETRY_SECS;
    state
        .store
        .queue_revocation(provider_id, &sealed, &context, next, reason)
        .await
        .is_ok()
}

/// Retries queued revocations whose time has come: backoff doubles from a minute up to an hour;
/// after 10 attempts the token is given up (and logged).
pub async fn retry_revocations(state: &AppState) {
    let now = state.clock.now().unix_timestamp();
    let Ok(due) = state.store.due_revocations(now).await else {
        return;
    };
    for (id, provider_id, sealed, context, attempts) in due {
        // A provider gone from the config: dropped.
        let Some(provider) = state.providers.get(&provider_id) else {
            let _ = state.store.revocation_done(id).await;
            continue;
        };
        let Ok(token) = state.vault.open_value(&sealed, &context) else {
            let _ = state.store.revocation_done(id).await;
            continue;
        };
        match provider.revoke_refresh_token(&token).await {
            Ok(_) => {
                tracing::info!(provider = %provider_id, attempts, "queued revocation succeeded");
                let _ = state.store.revocation_done(id).await;
            }
            // The provider's kind (changed in the config) revokes no single tokens: dropped.
            Err(RevokeError::NotSupported) => {
                let _ = state.store.revocation_done(id).await;
            }
            Err(e) if attempts >= 10 => {
                tracing::error!(provider = %provider_id, attempts, reason = %e, "revocation given up");
                let _ = state.store.revocation_done(id).await;
            }
            Err(e) => {
                let wait = (REVOKE_RETRY_SECS << attempts.clamp(0, 6)).min(3600);
                let _ = state
                    .store
                    .revocation_retry(id, now + wait, &e.to_string())
                    .await;
            }
        }
    }
}

/// Where providers send the browser after their logout: the configured `post_logout_url` (on an
/// allowed origin), or the broker's own page.
async fn logged_out(State(state): State<AppState>) -> AppResult<Response> {
    if let Some(url) = &state.config.server.post_logout_url {
        return Ok(Redirect::to(url).into_response());
    }
    state.render(
        "logged_out.html",
        minijinja::context! { login_url => state.login_url() },
    )
}
