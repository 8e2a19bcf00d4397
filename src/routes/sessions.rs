//! `GET /auth/sessions`: the signed-in user's live sessions, by public handle (never the cookie
//! value), the current one flagged.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tower_sessions::Session;
use tower_sessions::session::Id;
use tower_sessions::session_store::SessionStore;

use super::{AppState, caller};
use crate::error::AppResult;
use crate::session::{self, SessionRecord, rfc3339};

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/sessions", get(list))
}

#[derive(Serialize)]
struct SessionItem {
    handle: String,
    provider: String,
    created_at: String,
    last_seen_at: String,
    expires_at: String,
    current: bool,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    web_session: Session,
) -> AppResult<Response> {
    let me = caller::require(&state, &headers, &web_session).await?;
    let policy = &state.config.session;
    let now = state.clock.now();
    let mut items = Vec::new();
    for row in state.store.sessions_of_user(&me.record.user.id).await? {
        let Ok(id) = row.session_id.parse::<Id>() else {
            continue;
        };
        // The index outlives idle sessions until their absolute end: the record decides.
        let record = state
            .sessions
            .load(&id)
            .await
            .map_err(|e| crate::error::AppError::unavailable("session store", e))?
            .and_then(|r| r.data.get(session::RECORD_KEY).cloned())
            .and_then(|v| match v {
                serde_json::Value::String(s) => serde_json::from_str::<SessionRecord>(&s).ok(),
                _ => None,
            })
            .filter(|r| r.is_live(policy, now));
        let Some(record) = record else { continue };
        items.push(SessionItem {
            current: record.handle == me.record.handle,
            created_at: rfc3339(record.created_at),
            last_seen_at: rfc3339(record.last_seen_at),
            expires_at: rfc3339(record.idle_expires_at(policy)),
            handle: record.handle,
            provider: row.provider,
        });
    }
    Ok(Json(serde_json::json!({ "sessions": items })).into_response())
}
