//! Local logout: a confirmation page, the protected POST, and the logged-out page.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde_json::json;
use tower_sessions::Session;

use super::{AppState, check_same_site};
use crate::error::AppResult;
use crate::session;

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

/// Ends the local session. A form post is redirected to the logged-out page; an API caller gets
/// `{"logout_url": …}` to send the browser to.
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    web_session: Session,
) -> AppResult<Response> {
    check_same_site(&state, &headers)?;
    if let Some(record) =
        session::current(&web_session, &state.config.session, state.clock.now()).await?
    {
        tracing::info!(user = %record.user.id, session = %record.handle, "logout");
    }
    session::end(&web_session).await?;
    let logout_url = state.config.server.url("/auth/logged-out");
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

async fn logged_out(State(state): State<AppState>) -> AppResult<Response> {
    state.render(
        "logged_out.html",
        minijinja::context! { login_url => state.login_url() },
    )
}
