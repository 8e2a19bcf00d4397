//! `GET /openapi.json`: the OpenAPI 3.1 document of every JSON endpoint. The operations are
//! listed here, one function each (never called: `utoipa` reads their attributes); the bodies are
//! the schemas derived from the types the handlers send, or, where a handler builds its JSON by
//! hand, from a small type beside it that describes the shape. `docs/openapi.json` is a copy that a
//! test compares with [`document`].
#![allow(dead_code)]

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::OpenApi;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::AppState;
use crate::error::ErrorBody;

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(serve))
}

async fn serve() -> Response {
    let mut res = ([(header::CONTENT_TYPE, "application/json")], document()).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

/// The document as served and as committed in `docs/openapi.json` (pretty, with a final newline).
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "oidc-broker",
        description = "The broker's JSON API. Errors share one body (`ErrorBody`); a top-level \
            navigation (`Sec-Fetch-Mode: navigate`, or `Accept: text/html`) gets an HTML error \
            page instead. Every answer carries `X-Request-Id`, which an error's `correlation_id` \
            repeats.",
        license(name = "Apache-2.0")
    ),
    paths(
        me, session_status, sessions_list, sessions_revoke, sessions_revoke_others, check, logout,
        token, token_refresh, firebase_session, backchannel_logout, jwks, openid_configuration, op_token,
        op_userinfo_get, op_userinfo_post, op_revoke, healthz, readyz, admin_user_sessions,
        admin_revoke_user_sessions, admin_revoke_session, admin_audit, metrics, openapi,
    ),
    modifiers(&Security),
)]
struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        // The type's doc comment speaks of the code; the document speaks to callers.
        if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(body))) =
            components.schemas.get_mut("ErrorBody")
        {
            body.description = Some(
                "Every error of the broker's own endpoints: `error` is a stable code, `message` \
                 (also as `error_description`, the name OAuth 2.0 clients read) is safe to show, \
                 `correlation_id` names the request in the broker's log, and `login_url`, when \
                 present, is where to sign in again."
                    .into(),
            );
        }
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Host-broker_session",
                "The session cookie set at sign-in (`broker_session` on plain-http loopback in \
                 development). Writes with it need an allowed `Origin` or an `X-CSRF` header.",
            ))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A broker access token (token mode, `POST /auth/token`).",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The `[admin] token`. Without it configured, `/admin/` is a 404.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "op_access_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An access token the broker issued to a `[clients.ID]`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "metrics_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The `[metrics] token` (on the main listener)."))
                    .build(),
            ),
        );
    }
}

type Me = super::me::MeResponse<'static>;

#[utoipa::path(get, path = "/auth/me", tag = "session",
    description = "The signed-in user and their session. Counts as activity.",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Me),
        (status = 401, description = "No live session", body = ErrorBody),
        (status = 503, description = "The session store is unavailable", body = ErrorBody),
    ))]
fn me() {}

#[utoipa::path(get, path = "/auth/session", tag = "session",
    description = "The session's deadlines, read without counting as activity.",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = crate::session::SessionStatus),
        (status = 401, description = "No live session", body = ErrorBody),
        (status = 503, description = "The session store is unavailable", body = ErrorBody),
    ))]
fn session_status() {}

#[utoipa::path(get, path = "/auth/sessions", tag = "session",
    description = "The signed-in user's live sessions, newest first, the current one flagged.",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = super::sessions::SessionList),
        (status = 401, description = "No live session", body = ErrorBody),
        (status = 503, description = "The session store is unavailable", body = ErrorBody),
    ))]
fn sessions_list() {}

#[utoipa::path(delete, path = "/auth/sessions/{handle}", tag = "session",
    description = "Ends one of the caller's own sessions on every instance.",
    params(("handle" = String, Path, description = "A session handle")),
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = super::sessions::Revoked),
        (status = 401, description = "No live session", body = ErrorBody),
        (status = 403, description = "A cookie write without an allowed Origin or X-CSRF", body = ErrorBody),
        (status = 404, description = "Not a session of the caller", body = ErrorBody),
        (status = 503, description = "The session store is unavailable", body = ErrorBody),
    ))]
fn sessions_revoke() {}

#[utoipa::path(post, path = "/auth/sessions/revoke-others", tag = "session",
    description = "Ends every other session of the caller.",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = super::sessions::Revoked),
        (status = 401, description = "No live session", body = ErrorBody),
        (status = 403, description = "A cookie write without an allowed Origin or X-CSRF", body = ErrorBody),
        (status = 503, description = "The session store is unavailable", body = ErrorBody),
    ))]
fn sessions_revoke_others() {}

#[utoipa::path(get, path = "/auth/check", tag = "session",
    description = "Forward auth: 200 with `X-Auth-*` identity headers and no body, or 401.",
    security(("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Signed in; identity in X-Auth-User, X-Auth-Email, X-Auth-Groups, …"),
        (status = 401, description = "No live session", body = ErrorBody),
        (status = 503, description = "The session store is unavailable", body = ErrorBody),
    ))]
fn check() {}

#[utoipa::path(post, path = "/auth/logout", tag = "session",
    description = "Ends the session and revokes the provider refresh token. A form post is \
        redirected to the logout URL instead.",
    security((), ("session_cookie" = []), ("bearer" = [])),
    responses(
        (status = 200, body = super::logout::LogoutAnswer),
        (status = 303, description = "A form post: to the logout URL"),
        (status = 403, description = "A cookie write without an allowed Origin or X-CSRF", body = ErrorBody),
        (status = 503, description = "The session store is unavailable", body = ErrorBody),
    ))]
fn logout() {}

#[utoipa::path(post, path = "/auth/token", tag = "token mode",
    description = "Trades a token-mode login's one-time code for broker tokens (JSON or form body).",
    request_body = super::token::TokenRequest,
    responses(
        (status = 200, body = super::token::TokenAnswer),
        (status = 400, description = "Unknown, used or expired code, wrong verifier, or a malformed body", body = ErrorBody),
        (status = 429, description = "Over the `token` rate", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn token() {}

#[utoipa::path(post, path = "/auth/token/refresh", tag = "token mode",
    description = "A new broker access token for a broker refresh token (JSON or form body).",
    request_body = super::token::RefreshRequest,
    responses(
        (status = 200, body = super::token::TokenAnswer),
        (status = 400, description = "A malformed body", body = ErrorBody),
        (status = 401, description = "An unknown, ended or replayed refresh token (`invalid_grant`)", body = ErrorBody),
        (status = 429, description = "Over the `token` rate", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn token_refresh() {}

#[utoipa::path(post, path = "/auth/firebase/{provider}/session", tag = "session",
    description = "A Firebase ID token from the JS SDK becomes a local session (same-site only).",
    params(("provider" = String, Path, description = "A Firebase provider id")),
    request_body = super::firebase::Handoff,
    responses(
        (status = 200, body = Me),
        (status = 400, description = "A malformed body, or a provider that is not Firebase", body = ErrorBody),
        (status = 401, description = "The ID token failed verification", body = ErrorBody),
        (status = 403, description = "Not same-site", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 429, description = "Over the `firebase` rate", body = ErrorBody),
        (status = 502, description = "The provider failed", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn firebase_session() {}

#[utoipa::path(post, path = "/auth/backchannel-logout/{provider}", tag = "provider logout",
    description = "OpenID Connect Back-Channel Logout 1.0: a verified `logout_token` ends the \
        matching sessions on every instance.",
    params(("provider" = String, Path, description = "A provider id")),
    request_body(content = super::backchannel::BackchannelForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The matching sessions are ended"),
        (status = 400, description = "An unknown provider, or a missing or refused logout token", body = super::backchannel::Refusal),
        (status = 429, description = "Over the `provider_logout` rate", body = ErrorBody),
        (status = 503, description = "The store is unavailable (no body)"),
    ))]
fn backchannel_logout() {}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "keys",
    description = "The public keys of broker access tokens and ID tokens (RS256, by `kid`).",
    responses(
        (status = 200, body = super::token::Jwks),
        (status = 503, description = "The key store is unavailable", body = ErrorBody),
    ))]
fn jwks() {}

#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "openid provider",
    description = "Discovery, in OpenID Provider mode (with a `[clients.ID]`).",
    responses(
        (status = 200, body = super::op::Discovery),
        (status = 404, description = "OpenID Provider mode is off"),
    ))]
fn openid_configuration() {}

#[utoipa::path(post, path = "/oauth2/token", tag = "openid provider",
    description = "RFC 6749 token endpoint: form body with `grant_type` `authorization_code` \
        (`code`, `redirect_uri`, `code_verifier`) or `refresh_token`; client authentication by \
        HTTP Basic or in the form.",
    request_body(content = super::op::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, body = crate::op::tokens::TokenResponse),
        (status = 400, description = "RFC 6749 §5.2 error", body = ErrorBody),
        (status = 401, description = "invalid_client", body = ErrorBody),
        (status = 404, description = "OpenID Provider mode is off"),
        (status = 429, description = "Over the `token` rate", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn op_token() {}

#[utoipa::path(get, path = "/oauth2/userinfo", tag = "openid provider",
    description = "`sub` and the claims the access token's scopes allow.",
    security(("op_access_token" = [])),
    responses(
        (status = 200, body = super::op::UserInfo),
        (status = 401, description = "invalid_token", body = ErrorBody),
        (status = 404, description = "OpenID Provider mode is off"),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn op_userinfo_get() {}

#[utoipa::path(post, path = "/oauth2/userinfo", tag = "openid provider",
    description = "As `GET /oauth2/userinfo`.",
    security(("op_access_token" = [])),
    responses(
        (status = 200, body = super::op::UserInfo),
        (status = 401, description = "invalid_token", body = ErrorBody),
        (status = 404, description = "OpenID Provider mode is off"),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn op_userinfo_post() {}

#[utoipa::path(post, path = "/oauth2/revoke", tag = "openid provider",
    description = "RFC 7009: form body `token`, `token_type_hint`; client authentication as at the \
        token endpoint. 200 with no body whether or not the token was known.",
    request_body(content = super::op::RevokeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or never known"),
        (status = 400, description = "RFC 6749 §5.2 error", body = ErrorBody),
        (status = 401, description = "invalid_client", body = ErrorBody),
        (status = 404, description = "OpenID Provider mode is off"),
        (status = 429, description = "Over the `token` rate", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn op_revoke() {}

#[utoipa::path(get, path = "/healthz", tag = "operations",
    description = "Liveness.",
    responses((status = 200, body = super::health::Health)))]
fn healthz() {}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    description = "Readiness: the stores answer and every provider's discovery succeeded.",
    responses(
        (status = 200, body = super::health::Readiness),
        (status = 503, description = "Not ready", body = super::health::Readiness),
    ))]
fn readyz() {}

#[utoipa::path(get, path = "/admin/users/{id}/sessions", tag = "admin",
    description = "A user's live sessions.",
    params(("id" = String, Path, description = "The broker's user id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = super::admin::UserSessions),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 404, description = "No such user, or no `[admin] token`", body = ErrorBody),
        (status = 429, description = "Over the `admin` rate", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn admin_user_sessions() {}

#[utoipa::path(delete, path = "/admin/users/{id}/sessions", tag = "admin",
    description = "Ends every session of a user.",
    params(("id" = String, Path, description = "The broker's user id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = super::sessions::Revoked),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 404, description = "No such user, or no `[admin] token`", body = ErrorBody),
        (status = 429, description = "Over the `admin` rate", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn admin_revoke_user_sessions() {}

#[utoipa::path(delete, path = "/admin/sessions/{handle}", tag = "admin",
    description = "Ends one session.",
    params(("handle" = String, Path, description = "A session handle")),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = super::sessions::Revoked),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 404, description = "No such session, or no `[admin] token`", body = ErrorBody),
        (status = 429, description = "Over the `admin` rate", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn admin_revoke_session() {}

#[utoipa::path(get, path = "/admin/audit", tag = "admin",
    description = "Audit events, newest first.",
    params(
        ("user" = Option<String>, Query, description = "Only this user's events"),
        ("limit" = Option<i64>, Query, description = "1–1000, default 100", minimum = 1, maximum = 1000),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, body = super::admin::AuditEvents),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 401, description = "No or a wrong admin token", body = ErrorBody),
        (status = 404, description = "No `[admin] token`", body = ErrorBody),
        (status = 429, description = "Over the `admin` rate", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    ))]
fn admin_audit() {}

#[utoipa::path(get, path = "/metrics", tag = "operations",
    description = "With `[metrics]`: the Prometheus text exposition.",
    security(("metrics_token" = [])),
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain", body = String),
        (status = 401, description = "No or a wrong metrics token", content_type = "text/plain", body = String),
        (status = 404, description = "No `[metrics]`, or metrics on a listener of their own"),
    ))]
fn metrics() {}

#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    description = "This document.",
    responses((status = 200, description = "OpenAPI 3.1", content_type = "application/json", body = Object)))]
fn openapi() {}
