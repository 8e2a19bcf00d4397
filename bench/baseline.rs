//! The baseline server the session check is compared with, run as a process of its own (the bench
//! executable started again with `--serve-baseline`), on a 2-worker runtime with mimalloc, as the
//! broker binary runs:
//!
//! - `GET /me`: an in-memory session lookup — the `broker_session` cookie parsed from `Cookie`, its
//!   id looked up in a `HashMap` behind an `RwLock`, and that session's pre-serialised bytes
//!   answered (`application/json`, `no-store`; the same bytes as the broker's `/auth/me` body);
//!   401 for an unknown id;
//! - `GET /bare`: a bare handler answering 2 bytes;
//! - `GET /up/{*rest}`: the upstream of the broker's proxy route (2 bytes too).
//!
//! `--serve-baseline PORT COOKIES BODY`: `COOKIES` holds one `broker_session=ID` per line, `BODY`
//! the bytes answered for each of them.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;

const COOKIE: &str = "broker_session";

type Sessions = Arc<RwLock<HashMap<String, Bytes>>>;

/// Runs the baseline server until the process is killed.
pub fn serve(args: &[String]) -> ! {
    let [port, cookies, body] = args else {
        panic!("usage: --serve-baseline PORT COOKIES BODY");
    };
    let body = std::fs::read(body).unwrap();
    let mut map = HashMap::new();
    for line in std::fs::read_to_string(cookies).unwrap().lines() {
        let id = line.strip_prefix("broker_session=").unwrap_or(line);
        // Each session its own copy, as each record is its own in a store.
        map.insert(id.to_string(), Bytes::from(body.clone()));
    }
    let sessions: Sessions = Arc::new(RwLock::new(map));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let app = axum::Router::new()
            .route("/me", get(me))
            .route("/bare", get(bare))
            .route("/up/{*rest}", get(bare))
            .with_state(sessions);
        let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}"))
            .await
            .unwrap();
        axum::serve(listener, app).await.unwrap();
    });
    std::process::exit(0)
}

fn session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (name, value) = c.trim().split_once('=')?;
            (name == COOKIE).then_some(value)
        })
}

async fn me(State(sessions): State<Sessions>, headers: HeaderMap) -> Response {
    let found = session_id(&headers).and_then(|id| sessions.read().unwrap().get(id).cloned());
    match found {
        Some(body) => (
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            r#"{"error":"unauthorized"}"#,
        )
            .into_response(),
    }
}

async fn bare() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        "{}",
    )
        .into_response()
}
