//! Liveness and readiness.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the SQL store and the session store answer and every provider's discovery has
/// succeeded. Each check is bounded, so a store that hangs makes this red, not slow.
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let bounded = std::time::Duration::from_secs(3);
    let store_ok = matches!(
        tokio::time::timeout(bounded, state.store.ping()).await,
        Ok(Ok(()))
    );
    let sessions_ok = matches!(
        tokio::time::timeout(bounded, state.sessions.ping()).await,
        Ok(Ok(()))
    );
    let mut providers = Map::new();
    for p in state.providers.all() {
        let ok = tokio::time::timeout(std::time::Duration::from_secs(5), p.ready())
            .await
            .unwrap_or(false);
        providers.insert(
            p.id.clone(),
            Value::from(if ok { "ok" } else { "unreachable" }),
        );
    }
    let ready = store_ok && sessions_ok && providers.values().all(|v| v == "ok");
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "store": if store_ok { "ok" } else { "unreachable" },
        "sessions": if sessions_ok { "ok" } else { "unreachable" },
        "providers": providers,
    });
    (status, Json(body))
}
