//! Token mode, for frontends that keep tokens rather than cookies (WeWeb's Token Based Auth
//! plugin): the one-time code of a login is traded at `POST /auth/token` for a broker access token
//! and a broker refresh token; `POST /auth/token/refresh` renews the access token;
//! `GET /.well-known/jwks.json` publishes the keys that sign them.
//!
//! A refresh token is bound to its local session: it is refused as soon as the session has ended
//! (logout, revocation, idle timeout, absolute lifetime), and each use counts as activity.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::AppState;
use super::caller::{self, Caller};
use crate::audit::{self, AuditEvent, Event, RevokedBy};
use crate::client_info::ClientInfo;
use crate::crypto;
use crate::error::{AppError, AppResult};
use crate::store::RefreshTokenRow;
use crate::tokens::broker_jwt::AccessClaims;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/token", post(token))
        .route("/auth/token/refresh", post(refresh))
        .route("/.well-known/jwks.json", get(jwks))
}

/// A JSON body (what WeWeb sends) or a form body, read into `T`.
fn read_body<T: DeserializeOwned>(headers: &HeaderMap, body: &Bytes) -> AppResult<T> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    let parsed = if is_form {
        serde_urlencoded_like(body)
    } else {
        serde_json::from_slice(body).map_err(|e| e.to_string())
    };
    parsed.map_err(|cause| {
        AppError::bad_request(
            "invalid_request",
            "The request body must be JSON, e.g. {\"code\": \"…\"} or {\"refresh_token\": \"…\"}.",
        )
        .with_cause(cause)
    })
}

/// Form bodies, through the JSON deserialiser: every field is a string.
fn serde_urlencoded_like<T: DeserializeOwned>(body: &Bytes) -> Result<T, String> {
    let map: serde_json::Map<String, serde_json::Value> = url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
        .collect();
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())
}

fn no_store(mut res: Response) -> Response {
    // RFC 6749 §5.1: token responses are never cached.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn invalid_grant(message: &'static str) -> AppError {
    let mut e = AppError::bad_request("invalid_grant", message);
    e.kind = crate::error::ErrorKind::Unauthorized;
    e
}

/// A signed access token for the caller's session.
pub async fn access_token(state: &AppState, caller: &Caller) -> AppResult<(String, i64)> {
    access_token_for(state, caller, &state.config.tokens.audience).await
}

/// A signed access token for the caller's session, for `audience`.
pub async fn access_token_for(
    state: &AppState,
    caller: &Caller,
    audience: &str,
) -> AppResult<(String, i64)> {
    let now = state.clock.now().unix_timestamp();
    let mut claims = AccessClaims::new(
        &state.issuer(),
        &state.config.tokens,
        &caller.record.user,
        &caller.record.handle,
        now,
        caller.record.idle_expires_at(&state.config.session),
    );
    claims.aud = audience.to_string();
    let token = state
        .keys
        .sign(&state.store, &state.vault, &state.config.tokens, &claims)
        .await
        .map_err(AppError::internal)?;
    Ok((token, claims.exp - now))
}

/// The answer of both token endpoints (RFC 6749 §5.1 shape, plus the user); `token_response`
/// builds it with `json!`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct TokenAnswer {
    /// A broker access token (RS256 JWT).
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Seconds.
    expires_in: i64,
    refresh_token: String,
    user: crate::identity::UserView,
}

/// The body of `GET /.well-known/jwks.json` (RFC 7517).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Jwks {
    #[schema(value_type = Vec<Object>)]
    keys: Vec<serde_json::Value>,
}

/// The answer of both token endpoints (RFC 6749 §5.1 shape, plus the user), never cached.
async fn token_response(
    state: &AppState,
    caller: &Caller,
    refresh_token: &str,
) -> AppResult<Response> {
    let (access_token, expires_in) = access_token(state, caller).await?;
    Ok(no_store(
        Json(json!({
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": expires_in,
            "refresh_token": refresh_token,
            "user": caller.record.user,
        }))
        .into_response(),
    ))
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct TokenRequest {
    code: String,
    /// RFC 7636: required when the login was started with a `code_challenge`.
    code_verifier: Option<String>,
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let req: TokenRequest = read_body(&headers, &body)?;
    let now = state.clock.now().unix_timestamp();
    let refused = || {
        let mut e = AppError::bad_request(
            "invalid_grant",
            "This sign-in code has expired or was already used. Sign in again.",
        );
        e.login_url = Some(state.login_url());
        e
    };
    let (handle, challenge) = state
        .store
        .take_login_code(&req.code, now)
        .await?
        .ok_or_else(refused)?;
    // The code is taken either way: a wrong verifier burns it.
    if let Some(challenge) = challenge {
        let matches = req
            .code_verifier
            .as_deref()
            .is_some_and(|v| crypto::constant_time_eq(&crypto::pkce_challenge(v), &challenge));
        if !matches {
            return Err(refused());
        }
    }
    let caller = caller::live_by_handle(&state, &handle)
        .await?
        .ok_or_else(refused)?;
    let refresh_token = format!("rt_{}", crypto::random_token(32));
    state
        .store
        .put_refresh_token(
            &refresh_token,
            &handle,
            now,
            caller.record.absolute_expires_at,
        )
        .await?;
    tracing::info!(user = %caller.record.user.id, session = %handle, "token-mode code traded");
    token_response(&state, &caller, &refresh_token).await
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct RefreshRequest {
    refresh_token: String,
}

async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    body: Bytes,
) -> AppResult<Response> {
    let req: RefreshRequest = read_body(&headers, &body)?;
    let now = state.clock.now().unix_timestamp();
    const ENDED: &str = "This sign-in has ended. Sign in again.";
    let failed = |reason: &'static str| {
        AuditEvent::new(Event::RefreshFailed)
            .client(&client)
            .detail("token", "broker")
            .detail("reason", reason)
    };
    let Some(row) = state
        .store
        .refresh_token(&req.refresh_token)
        .await?
        .filter(|r| r.expires_at > now)
    else {
        audit::record(&state.store, now, failed("unknown_or_expired")).await;
        return Err(invalid_grant(ENDED));
    };
    let tokens = &state.config.tokens;
    let grace = i64::try_from(tokens.rotation_grace.as_secs()).unwrap_or(30);
    if let Some(superseded_at) = row.superseded_at
        && now - superseded_at > grace
    {
        // A replaced token used again after the grace window: it was copied. End the session so
        // that neither copy goes on working.
        if let Some(indexed) = state.store.indexed_session(&row.handle).await? {
            state.end_session(&indexed).await?;
            let event = AuditEvent::revoked(&indexed, RevokedBy::RefreshTokenReuse).client(&client);
            audit::record(&state.store, now, event).await;
        }
        tracing::warn!(session = %row.handle, "replaced refresh token used again; session ended");
        return Err(invalid_grant(ENDED));
    }
    let Some(caller) = caller::live_by_handle(&state, &row.handle).await? else {
        let event = failed("session_ended").session(&row.handle);
        audit::record(&state.store, now, event).await;
        return Err(invalid_grant(ENDED));
    };
    let refresh_token = if tokens.rotate_refresh_tokens {
        successor(&state, &row, &req.refresh_token, &caller, now).await?
    } else {
        req.refresh_token
    };
    let response = token_response(&state, &caller, &refresh_token).await?;
    let event = AuditEvent::new(Event::RefreshSucceeded)
        .user(&caller.record.user.id)
        .session(&caller.record.handle)
        .provider(&caller.record.user.identity.provider)
        .client(&client)
        .detail("token", "broker");
    audit::record(&state.store, now, event).await;
    Ok(response)
}

/// The refresh token that replaces `presented` (rotation on). A retry within the grace window (a
/// lost answer, two tabs at once) gets the same successor, so there is still one chain, and a copy
/// used later is still recognised.
async fn successor(
    state: &AppState,
    row: &RefreshTokenRow,
    presented: &str,
    caller: &Caller,
    now: i64,
) -> AppResult<String> {
    const ENDED: &str = "This sign-in has ended. Sign in again.";
    let context = successor_context(&row.handle);
    if let Some(sealed) = &row.successor_sealed {
        return state
            .vault
            .open_value(sealed, &context)
            .map_err(|_| invalid_grant(ENDED));
    }
    let next = format!("rt_{}", crypto::random_token(32));
    let sealed = state
        .vault
        .seal_value(&next, &context)
        .map_err(AppError::internal)?;
    let rotated = state
        .store
        .rotate_refresh_token(
            presented,
            &next,
            &sealed,
            &row.handle,
            now,
            caller.record.absolute_expires_at,
        )
        .await?;
    if rotated {
        return Ok(next);
    }
    // Another request rotated it a moment ago: its successor is the one.
    let sealed = state
        .store
        .refresh_token(presented)
        .await?
        .and_then(|r| r.successor_sealed)
        .ok_or_else(|| invalid_grant(ENDED))?;
    state
        .vault
        .open_value(&sealed, &context)
        .map_err(|_| invalid_grant(ENDED))
}

fn successor_context(handle: &str) -> String {
    format!("refresh-successor:{handle}")
}

async fn jwks(State(state): State<AppState>) -> AppResult<Response> {
    let keys = state
        .keys
        .jwks(
            &state.store,
            &state.vault,
            &state.config.tokens,
            state.clock.now().unix_timestamp(),
        )
        .await
        .map_err(|e| AppError::unavailable("key store", e))?;
    let mut res = Json(keys).into_response();
    // Short enough that a verifier sees a new key well before it signs (keys are published ahead).
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(res)
}
