//! The example page (`examples/spa/`), served at `/example/` when `server.example_app` is on: a
//! small app that signs in through the broker in cookie mode or token mode, as a WeWeb app would.
//! The files are compiled into the binary, so the quickstart works from any folder.

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;
use crate::config::ServerConfig;

const INDEX: &str = include_str!("../../examples/spa/index.html");
const SCRIPT: &str = include_str!("../../examples/spa/app.js");
const STYLE: &str = include_str!("../../examples/spa/app.css");

/// Scripts and styles from this origin only, and calls to this origin only.
const POLICY: &str =
    "default-src 'self'; img-src 'self' https: data:; frame-ancestors 'none'; form-action 'self'";

pub fn router(server: &ServerConfig) -> Router<AppState> {
    if !server.example_app {
        return Router::new();
    }
    Router::new()
        .route(
            "/example",
            get(|| async { Redirect::permanent("/example/") }),
        )
        .route(
            "/example/",
            get(|| async { file(INDEX, "text/html; charset=utf-8") }),
        )
        .route(
            "/example/app.js",
            get(|| async { file(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/example/app.css",
            get(|| async { file(STYLE, "text/css; charset=utf-8") }),
        )
}

fn file(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static(POLICY),
            ),
        ],
        body,
    )
        .into_response()
}
