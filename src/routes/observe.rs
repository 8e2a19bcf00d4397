//! Every request, observed: its id (`X-Request-Id`, taken from the caller when well-formed and
//! always returned), its metrics, and one access-log line (method, route, status, duration,
//! client address, id) — never a query string, a cookie or a token.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use super::AppState;
use crate::client_info::client_ip;
use crate::{metrics, request_id};

const REQUEST_ID: &str = "x-request-id";

pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id::from_header(req.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()));
    let method = req.method().clone();
    let client = state.config.log.access.then(|| {
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        client_ip(peer, req.headers(), &state.config.server.trusted_proxies)
    });
    let mut res = request_id::scope(id.clone(), next.run(req)).await;
    let took = started.elapsed();
    let status = res.status().as_u16();
    let route = res
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    metrics::request(route, method.as_str(), status, took);
    if let Some(client) = client {
        let client = client.map(|ip| ip.to_string()).unwrap_or_default();
        tracing::info!(
            target: "access",
            method = %method,
            route,
            status,
            duration_ms = took.as_secs_f64() * 1000.0,
            client = %client,
            request_id = %id,
            "request"
        );
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, v);
    }
    res
}

/// Keeps the matched route pattern on the response, for [`observe`] (which runs outside routing).
pub async fn keep_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut res = next.run(req).await;
    if let Some(r) = route {
        res.extensions_mut().insert(r);
    }
    res
}
