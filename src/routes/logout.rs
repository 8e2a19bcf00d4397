//! Logout: a confirmation page, the protected POST (local session, provider refresh token, provider
//! logout URL), and the logged-out landing page.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use std::time::Duration;

use serde_json::json;
use tower_sessions::Session;

use super::caller::Writer;
use super::{AppState, read_cookie};
use crate::audit::{self, AuditEvent, Event};
use crate::client_info::ClientInfo;
use crate::error::AppResult;
use crate::session::{self, SessionRecord};

/// The JSON answer of `POST /auth/logout`: where to send the browser next.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct LogoutAnswer {
    /// The provider's logout URL, or the broker's signed-out page.
    logout_url: String,
}

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
    caller: Option<Writer>,
    headers: HeaderMap,
    web_session: Session,
    client: ClientInfo,
) -> AppResult<Response> {
    let caller = caller.map(|Writer(c)| c);
    let logout_url = match &caller {
        Some(c) => end_everywhere(&state, &c.record, &client).await?,
        None => state.config.server.url("/auth/logged-out"),
    };
    if let Some(c) = &caller {
        session::end(&c.session).await?;
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

/// Ends `record`'s session everywhere, revokes its provider refresh token (queued for retry on
/// failure) and audits the logout; returns the provider's logout URL, or the broker's logged-out
/// page when the provider has none. The caller ends the request's own session object.
pub(super) async fn end_everywhere(
    state: &AppState,
    record: &SessionRecord,
    client: &ClientInfo,
) -> AppResult<String> {
    let logged_out = state.config.server.url("/auth/logged-out");
    let mut logout_url = logged_out.clone();
    // What became of the provider refresh token, for the audit event.
    let mut revocation = None;
    if let Some(row) = state.store.indexed_session(&record.handle).await? {
        let tokens = row
            .tokens
            .as_deref()
            .and_then(|s| state.vault.open(s, &row.handle).ok());
        state.end_session(&row).await?;
        if let Some(provider) = state.providers.get(&row.provider) {
            provider.end_user_sessions(&row.subject, &row.handle).await;
            if let Some(rt) = tokens.as_ref().and_then(|t| t.refresh_token.as_deref()) {
                revocation = session::revocation::revoke_or_queue(
                    state.session_parts(),
                    provider,
                    rt,
                    &row.handle,
                )
                .await;
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
        .client(client);
    if let Some(outcome) = revocation {
        event = event.detail("revocation", outcome);
    }
    audit::record(&state.store, state.clock.now().unix_timestamp(), event).await;
    Ok(logout_url)
}

/// Where providers send the browser after their logout: the configured `post_logout_url` (on an
/// allowed origin), or the broker's own page.
async fn logged_out(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    // An app's logout (OpenID Provider mode) lands where the app asked.
    if let Some(res) = land(&state, &headers).await? {
        return Ok(res);
    }
    if let Some(url) = &state.config.server.post_logout_url {
        return Ok(Redirect::to(url).into_response());
    }
    state.render(
        "logged_out.html",
        minijinja::context! { login_url => state.login_url() },
    )
}

/// At `/auth/logged-out`: an app's logout that went through the provider's logout lands where the
/// app asked; the cookie that remembered it is cleared.
async fn land(state: &AppState, headers: &HeaderMap) -> AppResult<Option<Response>> {
    let Some(id) = read_cookie(headers, state.cookies.logout_name) else {
        return Ok(None);
    };
    let now = state.clock.now().unix_timestamp();
    let kept = state.store.take_op_request(id, now).await?;
    let target = kept
        .and_then(|k| serde_json::from_str::<serde_json::Value>(&k).ok())
        .and_then(|v| v.get("logout_to")?.as_str().map(str::to_string));
    let Some(target) = target else {
        return Ok(None);
    };
    let mut res = no_store_redirect(&target);
    if let Ok(v) = HeaderValue::from_str(&state.cookies.logout_cookie("", Duration::ZERO)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(Some(res))
}

fn no_store_redirect(to: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
