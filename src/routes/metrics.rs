//! `GET /metrics`: the Prometheus exposition (see [`crate::metrics`]). With `[metrics] listen` it is
//! served on a listener of its own ([`standalone`]) and not on the main one; with `token`, the
//! scraper must send it as a bearer token (compared in constant time).

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use crate::secret::Secret;

pub fn router(state: &AppState) -> Router<AppState> {
    match &state.config.metrics {
        Some(m) if m.listen.is_none() => Router::new().route("/metrics", get(on_main)),
        _ => Router::new(),
    }
}

async fn on_main(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = state.config.metrics.as_ref().and_then(|m| m.token.as_ref());
    answer(token, &headers)
}

/// The router of the metrics listener.
pub fn standalone(token: Option<Secret>) -> Router {
    Router::new().route(
        "/metrics",
        get(move |headers: HeaderMap| {
            let token = token.clone();
            async move { answer(token.as_ref(), &headers) }
        }),
    )
}

fn answer(token: Option<&Secret>, headers: &HeaderMap) -> Response {
    if let Some(token) = token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !token.matches(given) {
            let mut res = (
                StatusCode::UNAUTHORIZED,
                "metrics need the [metrics] token as a bearer token\n",
            )
                .into_response();
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
            return res;
        }
    }
    let mut res = crate::metrics::encode().into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}
