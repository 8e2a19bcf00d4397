//! The signed-in user's sessions, one per device: `GET /auth/sessions` lists them by public handle
//! (never the cookie value) with where they were signed in from, the current one flagged;
//! `DELETE /auth/sessions/{handle}` and `POST /auth/sessions/revoke-others` end them; `GET
//! /auth/sessions/manage` is the same as a page, whose buttons post to
//! `POST /auth/sessions/{handle}/revoke` and `POST /auth/sessions/revoke-others`.
//!
//! A user can only see and end their own sessions: any other handle is a 404, whether or not it
//! exists.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use serde_json::json;

use super::AppState;
use super::caller::{Caller, Writer};
use crate::audit::{self, AuditEvent, RevokedBy};
use crate::client_info::ClientInfo;
use crate::error::{AppError, AppResult};
use crate::session;
use crate::session::list::{SessionItem, live_sessions};
use crate::store::IndexedSession;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/sessions", get(list))
        .route("/auth/sessions/manage", get(manage))
        .route("/auth/sessions/revoke-others", post(revoke_others))
        .route("/auth/sessions/{handle}", delete(revoke))
        .route("/auth/sessions/{handle}/revoke", post(revoke))
}

/// The answer of `GET /auth/sessions` (the body is built with `json!`; this is its shape).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct SessionList {
    sessions: Vec<SessionItem>,
}

/// The answer of every call that ends sessions, by handle (`/auth/sessions/…`, `/admin/…`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Revoked {
    revoked: Vec<String>,
}

async fn list(State(state): State<AppState>, me: Caller) -> AppResult<Response> {
    let items = items_of(&state, &me).await?;
    Ok(Json(json!({ "sessions": items })).into_response())
}

/// The caller's live sessions, newest first, theirs flagged `current`.
async fn items_of(state: &AppState, me: &Caller) -> AppResult<Vec<SessionItem>> {
    let policy = &state.config.session;
    let live = live_sessions(
        &state.store,
        &state.sessions,
        policy,
        state.clock.now(),
        &me.record.user.id,
    )
    .await?;
    Ok(live
        .iter()
        .map(|s| s.item(policy, Some(&me.record.handle)))
        .collect())
}

async fn revoke(
    State(state): State<AppState>,
    Writer(me): Writer,
    Path(handle): Path<String>,
    headers: HeaderMap,
    client: ClientInfo,
) -> AppResult<Response> {
    let row = state
        .store
        .indexed_session(&handle)
        .await?
        .filter(|row| row.user_id == me.record.user.id)
        .ok_or_else(|| {
            AppError::not_found("unknown_session", "You have no session with that handle.")
        })?;
    end(&state, &me, &client, &row).await?;
    answer(&state, &headers, vec![row.handle], &me).await
}

async fn revoke_others(
    State(state): State<AppState>,
    Writer(me): Writer,
    headers: HeaderMap,
    client: ClientInfo,
) -> AppResult<Response> {
    let mut revoked = Vec::new();
    for row in state.store.sessions_of_user(&me.record.user.id).await? {
        if row.handle != me.record.handle {
            end(&state, &me, &client, &row).await?;
            revoked.push(row.handle);
        }
    }
    answer(&state, &headers, revoked, &me).await
}

/// Ends one of the caller's sessions everywhere, and audits it.
async fn end(
    state: &AppState,
    me: &Caller,
    client: &ClientInfo,
    row: &IndexedSession,
) -> AppResult<()> {
    state.end_session(row).await?;
    let event = AuditEvent::revoked(row, RevokedBy::User).client(client);
    audit::record(&state.store, state.clock.now().unix_timestamp(), event).await;
    if row.handle == me.record.handle {
        // Its record is gone; this request must not write it back.
        session::end(&me.session).await?;
    }
    Ok(())
}

/// `{"revoked": [handles]}`, or, for the page's form posts, back to the page (or to the
/// signed-out page when the current session was among them).
async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    revoked: Vec<String>,
    me: &Caller,
) -> AppResult<Response> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok(Json(json!({ "revoked": revoked })).into_response());
    }
    let to = if revoked.contains(&me.record.handle) {
        state.config.server.url("/auth/logged-out")
    } else {
        state.config.server.url("/auth/sessions/manage")
    };
    Ok(Redirect::to(&to).into_response())
}

async fn manage(State(state): State<AppState>, me: Caller) -> AppResult<Response> {
    let server = &state.config.server;
    let sessions: Vec<_> = items_of(&state, &me)
        .await?
        .into_iter()
        .map(|s| {
            let revoke_url = server.url(&format!("/auth/sessions/{}/revoke", s.handle));
            minijinja::context! {
                revoke_url => revoke_url,
                signed_in => readable_time(&s.created_at),
                last_active => readable_time(&s.last_seen_at),
                ..minijinja::Value::from_serialize(&s)
            }
        })
        .collect();
    let identity = &me.record.user.identity;
    let user = identity
        .name
        .clone()
        .or_else(|| identity.email.clone())
        .unwrap_or_else(|| identity.subject.clone());
    let mut page = state.render(
        "sessions.html",
        minijinja::context! {
            user => user,
            sessions => sessions,
            revoke_others_url => server.url("/auth/sessions/revoke-others"),
            logout_url => server.url("/auth/logout"),
        },
    )?;
    page.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(page)
}

/// `2025-01-31T09:30:00Z` as `2025-01-31 09:30 UTC`, for people.
fn readable_time(rfc3339: &str) -> String {
    match rfc3339.get(..16) {
        Some(minutes) if rfc3339.ends_with('Z') => format!("{} UTC", minutes.replacen('T', " ", 1)),
        _ => rfc3339.to_string(),
    }
}
