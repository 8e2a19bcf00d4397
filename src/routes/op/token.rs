//! `POST /oauth2/token` (authorization code and refresh token grants), `GET|POST
//! /oauth2/userinfo` and `POST /oauth2/revoke` (RFC 7009).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::super::AppState;
use super::{bearer, json_no_store, pairs, single};
use crate::config::ClientConfig;
use crate::error::{AppError, AppResult};
use crate::op::client_auth::{self, Presented};
use crate::op::{Op, OpError, grant};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth2/token", post(token))
        .route("/oauth2/userinfo", get(userinfo).post(userinfo))
        .route("/oauth2/revoke", post(revoke))
}

/// The form `POST /oauth2/token` reads (RFC 6749 §4.1.3, §6); a name given twice is refused. A
/// confidential client authenticates by HTTP Basic or with `client_id` and `client_secret` here.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct TokenForm {
    grant_type: GrantType,
    /// `authorization_code`: the code from the redirect.
    code: Option<String>,
    /// `authorization_code`: the `redirect_uri` the authorization request named.
    redirect_uri: Option<String>,
    /// `authorization_code`: the PKCE verifier (required of public clients).
    code_verifier: Option<String>,
    /// `refresh_token`: the refresh token.
    refresh_token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub(crate) enum GrantType {
    AuthorizationCode,
    RefreshToken,
}

/// The form `POST /oauth2/revoke` reads (RFC 7009 §2.1), for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct RevokeForm {
    token: String,
    /// `access_token` or `refresh_token` (a hint only).
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// The form body: `application/x-www-form-urlencoded` only (RFC 6749 §3.2).
fn form(headers: &HeaderMap, body: &Bytes) -> AppResult<Vec<(String, String)>> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(OpError::oauth(
            "invalid_request",
            "Send the parameters as application/x-www-form-urlencoded.",
        )
        .into());
    }
    Ok(pairs(body))
}

/// The client that authenticated with this request.
fn client<'a>(
    op: &Op<'a>,
    headers: &HeaderMap,
    form: &[(String, String)],
) -> AppResult<&'a ClientConfig> {
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let presented = Presented {
        basic: client_auth::basic(authorization)?,
        client_id: single(form, "client_id")?,
        client_secret: single(form, "client_secret")?,
    };
    Ok(client_auth::authenticate(op, &presented)?)
}

async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let form = form(&headers, &body)?;
    let op = state.op();
    let client = client(&op, &headers, &form)?;
    let answer = match single(&form, "grant_type")? {
        Some("authorization_code") => {
            let code = single(&form, "code")?
                .ok_or_else(|| OpError::oauth("invalid_request", "code is missing."))?;
            grant::exchange_code(
                &op,
                client,
                code,
                single(&form, "redirect_uri")?,
                single(&form, "code_verifier")?,
            )
            .await?
        }
        Some("refresh_token") => {
            let rt = single(&form, "refresh_token")?
                .ok_or_else(|| OpError::oauth("invalid_request", "refresh_token is missing."))?;
            grant::refresh(&op, client, rt).await?
        }
        Some(_) => {
            return Err(OpError::oauth(
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token.",
            )
            .into());
        }
        None => return Err(OpError::oauth("invalid_request", "grant_type is missing.").into()),
    };
    Ok(json_no_store(answer))
}

async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> AppResult<Response> {
    let token = bearer(&headers).ok_or_else(|| {
        AppError::from(OpError::invalid_token(
            "Send the access token as Authorization: Bearer.",
        ))
    })?;
    let claims = grant::userinfo(&state.op(), token).await?;
    Ok(json_no_store(claims))
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> AppResult<Response> {
    let form = form(&headers, &body)?;
    let op = state.op();
    let client = client(&op, &headers, &form)?;
    let token = single(&form, "token")?
        .ok_or_else(|| OpError::oauth("invalid_request", "token is missing."))?;
    grant::revoke(&op, client, token).await?;
    // RFC 7009 §2.2: 200 whether or not the token was known.
    Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")]).into_response())
}
