//! The `[limits]` check in front of the routes that callers without a session can reach
//! (see [`crate::limits`]): a client over its group's rate gets 429 with `Retry-After`, before
//! anything is read or written for it.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppState;
use crate::client_info::client_ip;
use crate::error::AppError;
use crate::limits::Group;

pub async fn enforce(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let group = req
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| Group::of_route(p.as_str()));
    if let Some(group) = group {
        // The same client address sessions and audit events record (trusted proxies honoured).
        let peer = req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip());
        let ip = client_ip(peer, req.headers(), &state.config.server.trusted_proxies);
        if let Err(refused) = state.limits.check_client(group, ip) {
            crate::metrics::rate_limited(group.name());
            return AppError::from(refused).into_response();
        }
    }
    next.run(req).await
}
