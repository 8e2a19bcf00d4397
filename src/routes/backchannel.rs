//! Logout initiated by the provider: OpenID Connect Back-Channel Logout 1.0 (a signed logout token
//! POSTed server to server) and Front-Channel Logout 1.0 (an iframe the provider loads).

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::audit::{self, AuditEvent, Event};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/backchannel-logout/{provider}", post(backchannel))
        .route("/auth/frontchannel-logout/{provider}", get(frontchannel))
}

/// The form a provider posts (§2.5).
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct BackchannelForm {
    /// The logout token (a signed JWT).
    logout_token: Option<String>,
}

/// The body of a refusal: an OAuth 2.0 error (§2.8). `refuse` builds it with `json!`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(super) struct Refusal {
    /// Always `invalid_request`.
    error: String,
    error_description: String,
}

/// §2.8: 200 on success, 400 with an OAuth error otherwise; never cached.
fn answer(status: StatusCode, body: Option<Value>) -> Response {
    let mut res = match body {
        Some(b) => (status, Json(b)).into_response(),
        None => status.into_response(),
    };
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn refuse(description: &str) -> Response {
    answer(
        StatusCode::BAD_REQUEST,
        Some(json!({"error": "invalid_request", "error_description": description})),
    )
}

async fn backchannel(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    form: Result<Form<BackchannelForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    // A provider whose kind sends no logout tokens is as unknown here as one not configured.
    let Some(upstream) = state
        .providers
        .get(&provider_id)
        .and_then(|p| p.upstream_logout().ok())
    else {
        return refuse("unknown provider");
    };
    let Some(token) = form.ok().and_then(|Form(f)| f.logout_token) else {
        return refuse("logout_token is missing");
    };
    let claims = match upstream.verify_logout_token(&token).await {
        Ok(c) => c,
        Err(why) => {
            tracing::info!(provider = %provider_id, reason = %why, "back-channel logout refused");
            return refuse(&why);
        }
    };
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    // Remembered a day past its issue time: longer than any accepted iat window.
    match state
        .store
        .remember_logout_jti(&provider_id, jti, iat + 86_400)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(provider = %provider_id, "back-channel logout refused: jti replayed");
            return refuse("this logout token was already used (jti)");
        }
        Err(e) => {
            tracing::error!(provider = %provider_id, error = %e, "back-channel logout: store unavailable");
            return answer(StatusCode::SERVICE_UNAVAILABLE, None);
        }
    }
    let sid = claims.get("sid").and_then(Value::as_str);
    let sub = claims.get("sub").and_then(Value::as_str);
    match end_sessions(&state, &provider_id, sid, sub, Event::BackchannelLogout).await {
        Ok(n) => {
            tracing::info!(provider = %provider_id, sessions = n, "back-channel logout");
            answer(StatusCode::OK, None)
        }
        Err(e) => {
            tracing::error!(provider = %provider_id, error = %e, "back-channel logout: store unavailable");
            answer(StatusCode::SERVICE_UNAVAILABLE, None)
        }
    }
}

/// Ends the sessions of a provider session (`sid`) or, without one, of the provider subject.
async fn end_sessions(
    state: &AppState,
    provider: &str,
    sid: Option<&str>,
    sub: Option<&str>,
    event: Event,
) -> crate::error::AppResult<usize> {
    let rows = state.store.sessions_of(provider, sid, sub).await?;
    // With both, §2.6 says the sid identifies the session and sub must agree with it.
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| sub.is_none_or(|s| r.subject == s))
        .collect();
    let matched_by = if sid.is_some() { "sid" } else { "sub" };
    for row in &rows {
        state.end_session(row).await?;
        let e = AuditEvent::of_session(event, row).detail("matched_by", matched_by);
        audit::record(&state.store, state.clock.now().unix_timestamp(), e).await;
    }
    Ok(rows.len())
}

#[derive(Deserialize)]
struct FrontchannelParams {
    iss: Option<String>,
    sid: Option<String>,
}

/// Front-Channel Logout 1.0 §2: the provider loads this in an iframe with `iss` and `sid`.
async fn frontchannel(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    Query(q): Query<FrontchannelParams>,
) -> Response {
    let Some(upstream) = state
        .providers
        .get(&provider_id)
        .and_then(|p| p.upstream_logout().ok())
    else {
        return (StatusCode::NOT_FOUND, "unknown provider").into_response();
    };
    let (Some(iss), Some(sid)) = (q.iss.as_deref(), q.sid.as_deref()) else {
        return (StatusCode::BAD_REQUEST, "iss and sid are required").into_response();
    };
    if iss != upstream.issuer() {
        return (StatusCode::BAD_REQUEST, "iss is not this provider's issuer").into_response();
    }
    match end_sessions(
        &state,
        &provider_id,
        Some(sid),
        None,
        Event::FrontchannelLogout,
    )
    .await
    {
        Ok(n) => {
            tracing::info!(provider = %provider_id, sessions = n, "front-channel logout");
            let mut res = Html("<!doctype html><title>Signed out</title>").into_response();
            res.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // The provider frames this page, so it may not carry frame-ancestors 'none'.
            res.headers_mut().insert(
                http::HeaderName::from_static("content-security-policy"),
                HeaderValue::from_static("default-src 'none'"),
            );
            res
        }
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
