//! HTTP surfaces, one module each; [`router`] puts them together.

mod admin;
mod backchannel;
pub mod caller;
mod check;
mod example;
mod firebase;
mod health;
mod limits;
mod login;
pub mod logout;
pub mod me;
pub mod metrics;
pub mod observe;
mod op;
pub mod openapi;
pub mod pages;
pub mod proxy;
mod sessions;
mod token;

use axum::Router;
use axum::http::{HeaderMap, header};

use crate::error::{AppError, AppResult};
pub use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    // What a caller without a session can make the broker write (login transactions, audit rows)
    // is rate-limited per client; the session check and the proxy are not, and pay nothing for it.
    let limited = Router::new()
        .merge(login::router())
        .merge(firebase::router())
        .merge(backchannel::router())
        .merge(token::router())
        .merge(op::router(&state))
        .merge(admin::router(state.clone()))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limits::enforce,
        ));
    Router::new()
        .merge(limited)
        .merge(me::router())
        .merge(logout::router())
        .merge(health::router())
        .merge(openapi::router())
        .merge(metrics::router(&state))
        .merge(check::router())
        .merge(sessions::router())
        .merge(example::router(&state.config.server))
        .merge(proxy::router(&state.config.routes))
        .with_state(state)
}

/// A top-level navigation gets pages; `fetch`/XHR callers get JSON.
pub fn wants_html(headers: &HeaderMap) -> bool {
    match headers.get("sec-fetch-mode").and_then(|v| v.to_str().ok()) {
        Some(mode) => mode == "navigate",
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html")),
    }
}

/// Cookie value by name, from the request's `Cookie` headers.
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Refuses cross-site state-changing requests: an `Origin` must be the broker's own or an allowed
/// origin; without one (non-browser clients), the `X-CSRF` header must be present — a cross-site
/// form cannot send custom headers.
pub fn check_same_site(state: &AppState, headers: &HeaderMap) -> AppResult<()> {
    // Fetch metadata, set by the browser and not by page scripts: a same-origin request is ours
    // whatever its Origin says (some referrer policies make that `null`).
    if headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("same-origin") {
        return Ok(());
    }
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => {
            let ok = origin == state.config.server.public_origin()
                || state
                    .config
                    .server
                    .allowed_origins
                    .iter()
                    .any(|o| o == origin);
            if ok {
                Ok(())
            } else {
                Err(AppError::forbidden(
                    "cross_site_request",
                    "This request came from a site that is not allowed to act on your session.",
                ))
            }
        }
        None if headers.contains_key("x-csrf") => Ok(()),
        None => Err(AppError::forbidden(
            "csrf_header_missing",
            "State-changing requests need an Origin header or the X-CSRF header (any value).",
        )),
    }
}
