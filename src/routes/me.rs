//! `GET /auth/me`, the session check every page load pays for (by cookie, or by a broker access
//! token in `Authorization: Bearer`); `GET /auth/session`, the session's deadlines read without
//! counting as activity (for a page that warns before it is signed out); and the broker's home page.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tower_sessions::Session;

use super::{AppState, caller};
use crate::error::{AppError, AppResult};
use crate::session::{self, SessionRecord};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/me", get(me))
        .route("/auth/session", get(status))
        .route("/", get(home))
}

/// The answer of `GET /auth/me` (and of the Firebase hand-off).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Me)]
pub(super) struct MeResponse<'a> {
    user: &'a crate::identity::UserView,
    session: session::SessionView<'a>,
}

fn me_response(body: Bytes) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

fn render_me(record: &SessionRecord, policy: &crate::config::SessionConfig) -> AppResult<Bytes> {
    serde_json::to_vec(&MeResponse {
        user: &record.user,
        session: record.view(policy),
    })
    .map(Bytes::from)
    .map_err(AppError::internal)
}

async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
    web_session: Session,
) -> AppResult<Response> {
    // The rarer paths are boxed: an async function's state is as large as its largest await, and
    // this one's is moved on every request.
    if let Some(token) = caller::bearer_token(&headers) {
        return Box::pin(me_by_bearer(&state, token)).await;
    }
    let body = answer(&state, &web_session, None)
        .await?
        .ok_or_else(|| AppError::unauthorized(state.login_url()))?;
    Ok(me_response(body))
}

/// `/auth/me` by bearer token: the token's session, checked as the cookie's is (the record is read
/// on every request, so an ended session is refused at once), and saved here when it was touched.
async fn me_by_bearer(state: &AppState, token: &str) -> AppResult<Response> {
    let refused = || AppError::unauthorized(state.login_url());
    let claims = caller::verify_access_token(state, token).await?;
    let parts = state.session_parts();
    let session = session::open_by_handle(parts, &claims.sid)
        .await?
        .ok_or_else(refused)?;
    let Some(body) = answer(state, &session, Some((&claims.sid, &claims.sub))).await? else {
        session::forget(parts, &claims.sid);
        return Err(refused());
    };
    session::persist(&session).await?;
    Ok(me_response(body))
}

/// The `/auth/me` body of `web_session`, if it is live (and, for a bearer token, the session of
/// its handle and subject); touched and with provider tokens refreshed when due.
async fn answer(
    state: &AppState,
    web_session: &Session,
    token: Option<(&str, &str)>,
) -> AppResult<Option<Bytes>> {
    let policy = &state.config.session;
    let now = state.clock.now();
    let names = |record: &SessionRecord| {
        token.is_none_or(|(handle, sub)| record.handle == handle && record.user.id == sub)
    };
    // The one store read: the record as stored.
    let raw = match web_session.get_value(session::RECORD_KEY).await? {
        Some(serde_json::Value::String(s)) => Some(s),
        _ => None,
    };
    if let Some(raw) = &raw
        && let Some((cached, body)) = state.me_cache.get(raw)
        && cached.is_live(policy, now)
        && !session::needs_touch(&cached, policy, now)
        && cached.refresh_at.is_none_or(|t| now.unix_timestamp() < t)
    {
        return Ok(names(&cached).then_some(body));
    }
    let Some(record) = session::current(web_session, policy, now).await? else {
        return Ok(None);
    };
    if !names(&record) {
        return Ok(None);
    }
    Box::pin(render_fresh(state, web_session, record)).await
}

/// The body for a record read in full: touched, or with its provider token refreshed, when due,
/// and kept in the render cache.
async fn render_fresh(
    state: &AppState,
    web_session: &Session,
    record: SessionRecord,
) -> AppResult<Option<Bytes>> {
    let policy = &state.config.session;
    // Only a session whose provider token is due goes further than the read.
    let Some(record) =
        crate::session::refresh::ensure_fresh(state.session_parts(), web_session, record).await?
    else {
        return Ok(None);
    };
    let body = render_me(&record, policy)?;
    // Keyed by the record as it is now stored (rewritten if it was touched or refreshed).
    if let Ok(stored) = serde_json::to_string(&record) {
        state
            .me_cache
            .put(Arc::from(stored), Arc::new(record), body.clone());
    }
    Ok(Some(body))
}

/// `GET /auth/session`: when the caller's session ends. Unlike every other authenticated call it is
/// not activity: it writes nothing, the idle deadline stays where it is and provider tokens are not
/// refreshed, so a page may poll it and still be signed out when its user walks away. 401 (as
/// `/auth/me`) when there is no live session.
async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
    web_session: Session,
) -> AppResult<Response> {
    let record = caller::peek(&state, &headers, &web_session)
        .await?
        .ok_or_else(|| AppError::unauthorized(state.login_url()))?;
    let status = record.status(&state.config.session, state.clock.now());
    let body = serde_json::to_vec(&status).map_err(AppError::internal)?;
    Ok(me_response(Bytes::from(body)))
}

async fn home(State(state): State<AppState>, web_session: Session) -> AppResult<Response> {
    let record = session::current(&web_session, &state.config.session, state.clock.now()).await?;
    let server = &state.config.server;
    state.render(
        "home.html",
        minijinja::context! {
            user => record.map(|r| r.user),
            login_url => state.login_url(),
            me_url => server.url("/auth/me"),
            logout_url => server.url("/auth/logout"),
        },
    )
}
