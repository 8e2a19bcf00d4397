//! The admin API, for operators: any user's sessions, revoking them, and the audit log. Every call
//! needs `Authorization: Bearer <[admin] token>` (compared in constant time); without an `[admin]`
//! token configured the whole API answers 404, as if it did not exist.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AppState, caller};
use crate::audit::{self, AuditEvent, Event, RevokedBy};
use crate::client_info::ClientInfo;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::session::list::live_sessions;
use crate::session::rfc3339;
use crate::store::UserSummary;

/// `GET /admin/audit` answers this many events unless asked for fewer.
const DEFAULT_AUDIT_LIMIT: i64 = 100;
const MAX_AUDIT_LIMIT: i64 = 1000;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/admin/users/{id}/sessions",
            get(user_sessions).delete(revoke_user_sessions),
        )
        .route("/admin/sessions/{handle}", delete(revoke_session))
        .route("/admin/audit", get(audit_log))
        .route_layer(middleware::from_fn_with_state(state, require_admin))
}

/// 404 when the admin API is off; 401 (with `WWW-Authenticate`, RFC 6750 §3) without the token,
/// audited (counted per address and window).
async fn require_admin(
    State(state): State<AppState>,
    client: ClientInfo,
    req: Request,
    next: Next,
) -> Response {
    let Some(admin) = &state.config.admin else {
        return AppError::not_found("not_found", "There is nothing here.").into_response();
    };
    let given = caller::bearer_token(req.headers());
    // Hashed first (`matches`), so that the comparison takes the same time whatever the lengths.
    let authorized = given.is_some_and(|given| admin.token.matches(given));
    if authorized {
        return next.run(req).await;
    }
    let reason = if given.is_some() {
        "wrong_token"
    } else {
        "missing_token"
    };
    let event = AuditEvent::new(Event::AdminAuthFailed)
        .client(&client)
        .detail("reason", reason);
    audit::record(&state.store, state.clock.now().unix_timestamp(), event).await;
    let mut res = AppError::new(
        ErrorKind::Unauthorized,
        "admin_token_required",
        "The admin API needs Authorization: Bearer <the [admin] token>.",
    )
    .into_response();
    res.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"admin\""),
    );
    res
}

async fn known_user(state: &AppState, id: &str) -> AppResult<UserSummary> {
    state
        .store
        .user(id)
        .await?
        .ok_or_else(|| AppError::not_found("unknown_user", "There is no user with that id."))
}

async fn user_sessions(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> AppResult<Response> {
    let user = known_user(&state, &id).await?;
    let policy = &state.config.session;
    let sessions: Vec<_> = live_sessions(
        &state.store,
        &state.sessions,
        policy,
        state.clock.now(),
        &user.id,
    )
    .await?
    .iter()
    .map(|s| s.item(policy, None))
    .collect();
    Ok(Json(json!({ "user": user, "sessions": sessions })).into_response())
}

async fn revoke_user_sessions(
    State(state): State<AppState>,
    Path(id): Path<String>,
    client: ClientInfo,
) -> AppResult<Response> {
    let user = known_user(&state, &id).await?;
    let mut revoked = Vec::new();
    for row in state.store.sessions_of_user(&user.id).await? {
        state.end_session(&row).await?;
        let event = AuditEvent::revoked(&row, RevokedBy::Admin).client(&client);
        audit::record(&state.store, state.clock.now().unix_timestamp(), event).await;
        revoked.push(row.handle);
    }
    Ok(Json(json!({ "revoked": revoked })).into_response())
}

async fn revoke_session(
    State(state): State<AppState>,
    Path(handle): Path<String>,
    client: ClientInfo,
) -> AppResult<Response> {
    let row = state.store.indexed_session(&handle).await?.ok_or_else(|| {
        AppError::not_found("unknown_session", "There is no session with that handle.")
    })?;
    state.end_session(&row).await?;
    let event = AuditEvent::revoked(&row, RevokedBy::Admin).client(&client);
    audit::record(&state.store, state.clock.now().unix_timestamp(), event).await;
    Ok(Json(json!({ "revoked": [row.handle] })).into_response())
}

/// The answer of `GET /admin/users/{id}/sessions`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct UserSessions {
    user: UserSummary,
    sessions: Vec<crate::session::list::SessionItem>,
}

/// The answer of `GET /admin/audit`, newest first.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct AuditEvents {
    events: Vec<AuditEventView>,
}

/// One audit event as `GET /admin/audit` shows it (built with `json!` below).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct AuditEventView {
    id: i64,
    /// RFC 3339; the first time, for a counted failure.
    at: String,
    event: String,
    user_id: Option<String>,
    session: Option<String>,
    provider: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    /// The event's details (a JSON object), or null.
    #[schema(value_type = Option<Object>)]
    detail: Option<Value>,
    /// More than 1 only for failures counted per address and window.
    count: i64,
    /// RFC 3339: the last time a counted failure happened in its window.
    last_at: Option<String>,
}

#[derive(Deserialize)]
struct AuditQuery {
    user: Option<String>,
    limit: Option<String>,
}

async fn audit_log(
    State(state): State<AppState>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> AppResult<Response> {
    let Query(q) = query.map_err(|_| {
        AppError::bad_request("invalid_request", "Use ?user=ID&limit=N (both optional).")
    })?;
    let limit = match q.limit.as_deref() {
        None => DEFAULT_AUDIT_LIMIT,
        Some(s) => match s.parse::<i64>() {
            Ok(n) if (1..=MAX_AUDIT_LIMIT).contains(&n) => n,
            _ => {
                return Err(AppError::bad_request(
                    "invalid_request",
                    format!("limit must be a whole number from 1 to {MAX_AUDIT_LIMIT}."),
                ));
            }
        },
    };
    let user = q.user.as_deref().filter(|u| !u.is_empty());
    let events: Vec<Value> = state
        .store
        .audit_events(user, limit)
        .await?
        .into_iter()
        .map(|e| {
            json!({
                "id": e.id,
                "at": rfc3339(e.at),
                "event": e.event,
                "user_id": e.user_id,
                "session": e.session,
                "provider": e.provider,
                "ip": e.ip,
                "user_agent": e.user_agent,
                "detail": serde_json::from_str::<Value>(&e.detail).unwrap_or(Value::Null),
                "count": e.count,
                "last_at": e.last_at.map(rfc3339),
            })
        })
        .collect();
    Ok(Json(json!({ "events": events })).into_response())
}
