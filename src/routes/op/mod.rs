//! The broker as an OpenID Provider toward apps (`[clients.ID]`): discovery, authorization,
//! token, userinfo, revocation and end session. Off (404) without a configured client. The work
//! is in [`crate::op`]; these are its HTTP surfaces.

mod authorize;
mod logout;
mod token;

pub(super) use token::{RevokeForm, TokenForm};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::AppState;
use crate::error::AppResult;
use crate::op::{OpError, discovery};

pub fn router(state: &AppState) -> Router<AppState> {
    if state.config.clients.is_empty() {
        return Router::new();
    }
    Router::new()
        .route("/.well-known/openid-configuration", get(configuration))
        .merge(authorize::router())
        .merge(token::router())
        .merge(logout::router())
}

/// The discovery document (OpenID Connect Discovery 1.0; built in `op::discovery`). Only the
/// members a client needs first are listed; the rest are as the specification names them.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
    response_types_supported: Vec<String>,
}

/// The userinfo answer (`token.rs`): `sub` and the claims the token's scopes allow.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct UserInfo {
    sub: String,
}

async fn configuration(State(state): State<AppState>) -> Response {
    let mut res = Json(discovery::metadata(&state.op())).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// A request's query or form pairs, in order.
fn pairs(raw: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The single value of `name`; a repeated one is an `invalid_request` (RFC 6749 §3.1).
fn single<'p>(pairs: &'p [(String, String)], name: &str) -> AppResult<Option<&'p str>> {
    let mut found = pairs.iter().filter(|(k, _)| k == name);
    let first = found.next().map(|(_, v)| v.as_str());
    if found.next().is_some() {
        return Err(OpError::oauth(
            "invalid_request",
            format!("{name} is given more than once."),
        )
        .into());
    }
    Ok(first.filter(|v| !v.is_empty()))
}

/// A redirect that must not be cached, and whose URL (a code, an error) must not leak through
/// `Referer`.
fn redirect_no_store(to: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// JSON that must not be cached (RFC 6749 §5.1).
fn json_no_store(value: impl serde::Serialize) -> Response {
    let mut res = Json(value).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

/// The bearer token of `Authorization`, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
}
