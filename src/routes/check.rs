//! `GET /auth/check`: forward authentication for nginx `auth_request` and Traefik `forwardAuth`.
//! 200 with the identity in `X-Auth-*` headers when the request carries a live session (cookie or
//! bearer token), 401 with the usual JSON body when it does not.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower_sessions::Session;

use super::{AppState, caller};
use crate::identity::UserView;

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/check", get(check))
}

/// A header value from user data: UTF-8 is sent as is (RFC 9110 obs-text); anything a header
/// cannot carry (control characters, line breaks) drops the header rather than the request.
fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_bytes(s.as_bytes()).ok()
}

/// `X-Auth-*` headers for `user` in session `handle`.
pub fn identity_headers(user: &UserView, handle: &str) -> Vec<(HeaderName, HeaderValue)> {
    let id = &user.identity;
    let groups = id.groups.join(",");
    let fields: [(&str, Option<&str>); 7] = [
        ("x-auth-user", Some(&user.id)),
        ("x-auth-email", id.email.as_deref()),
        (
            "x-auth-email-verified",
            Some(if id.email_verified { "true" } else { "false" }),
        ),
        ("x-auth-name", id.name.as_deref()),
        ("x-auth-provider", Some(&id.provider)),
        ("x-auth-session", Some(handle)),
        ("x-auth-groups", Some(&groups)),
    ];
    fields
        .into_iter()
        .filter_map(|(name, v)| Some((HeaderName::from_static(name), value(v?)?)))
        .collect()
}

async fn check(
    State(state): State<AppState>,
    headers: HeaderMap,
    web_session: Session,
) -> Result<Response, crate::error::AppError> {
    let caller = caller::require(&state, &headers, &web_session).await?;
    let mut res = StatusCode::OK.into_response();
    for (name, v) in identity_headers(&caller.record.user, &caller.record.handle) {
        res.headers_mut().insert(name, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}
