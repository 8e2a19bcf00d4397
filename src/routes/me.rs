//! `GET /auth/me`, the session check every page load pays for, and the broker's home page.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tower_sessions::Session;

use super::AppState;
use crate::error::{AppError, AppResult};
use crate::session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/me", get(me))
        .route("/", get(home))
}

#[derive(Serialize)]
struct MeResponse<'a> {
    user: &'a crate::identity::UserView,
    session: session::SessionView<'a>,
}

async fn me(State(state): State<AppState>, web_session: Session) -> AppResult<Response> {
    let policy = &state.config.session;
    let record = session::current(&web_session, policy, state.clock.now())
        .await?
        .ok_or_else(|| AppError::unauthorized(state.login_url()))?;
    // One read on the hot path; only a session whose provider token is due goes further.
    let record = crate::tokens::refresh::ensure_fresh(&state, &web_session, record)
        .await?
        .ok_or_else(|| AppError::unauthorized(state.login_url()))?;
    let body = MeResponse {
        user: &record.user,
        session: record.view(policy),
    };
    let mut res = Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
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
