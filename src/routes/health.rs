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

/// The body of `GET /healthz`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Health {
    /// Always `ok`.
    status: String,
}

/// The body of `GET /readyz` (built with `json!` below; this is its shape).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Readiness {
    /// `ready` or `not_ready`.
    status: String,
    /// `ok` or `unreachable`.
    store: String,
    /// `ok` or `unreachable`.
    sessions: String,
    /// Provider id → `ok` or `unreachable`.
    providers: std::collections::BTreeMap<String, String>,
    /// Provider id → what does not stop sign-in.
    warnings: std::collections::BTreeMap<String, Vec<String>>,
    /// Development only: provider id → why it is not usable.
    provider_errors: Option<std::collections::BTreeMap<String, String>>,
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the SQL store and the session store answer and every provider's discovery has
/// succeeded. Each check is bounded, so a store that hangs makes this red, not slow. Warnings
/// (a provider whose refresh tokens logout cannot revoke) are reported but keep it green.
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
    // Why a provider is not usable (discovery's error names the URL and the field).
    let mut provider_errors = Map::new();
    // What does not stop sign-in but needs the operator (refresh tokens logout cannot revoke).
    let mut warnings = Map::new();
    for p in state.providers.all() {
        let check = tokio::time::timeout(std::time::Duration::from_secs(5), p.check())
            .await
            .unwrap_or_else(|_| crate::providers::ProviderCheck {
                error: Some("the provider did not answer within 5 s".into()),
                warnings: Vec::new(),
            });
        let ok = check.error.is_none();
        providers.insert(
            p.id.clone(),
            Value::from(if ok { "ok" } else { "unreachable" }),
        );
        if let Some(e) = check.error {
            tracing::warn!(provider = %p.id, error = %e, "provider not ready");
            provider_errors.insert(p.id.clone(), Value::from(e));
        }
        if !check.warnings.is_empty() {
            warnings.insert(p.id.clone(), Value::from(check.warnings));
        }
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
        "warnings": warnings,
    });
    // The reasons name URLs, addresses they resolved to and words of the provider's answer: the
    // log has them always; this unauthenticated page only while developing.
    let mut body = body;
    if state.config.server.environment == crate::config::Environment::Development {
        body["provider_errors"] = Value::Object(provider_errors);
    }
    (status, Json(body))
}
