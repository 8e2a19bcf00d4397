//! `GET /auth/callback/{id}`: the browser's return from the provider. The login transaction is
//! taken once and must belong to this provider and this browser; the provider then completes the
//! login, and the session starts.

use axum::extract::{Path, Query, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use tower_sessions::Session;

use super::super::{AppState, read_cookie};
use super::finish::finish_login;
use super::landing::{find_provider, land, login_failed};
use crate::client_info::ClientInfo;
use crate::crypto;
use crate::error::{AppError, AppResult};
use crate::providers::{CallbackResponse, StartedLogin};
use crate::store::LoginTransaction;

#[derive(Deserialize)]
pub(super) struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

pub(super) async fn callback(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    web_session: Session,
    client: ClientInfo,
    RawQuery(raw_query): RawQuery,
    Query(params): Query<CallbackParams>,
) -> AppResult<Response> {
    let outcome = complete_callback(
        &state,
        &provider_id,
        &headers,
        &web_session,
        &client,
        raw_query,
        params,
    )
    .await;
    if let Err(e) = &outcome {
        login_failed(&state, &provider_id, &client, e).await;
    }
    outcome
}

async fn complete_callback(
    state: &AppState,
    provider_id: &str,
    headers: &HeaderMap,
    web_session: &Session,
    client: &ClientInfo,
    raw_query: Option<String>,
    params: CallbackParams,
) -> AppResult<Response> {
    let provider = find_provider(state, provider_id)?;
    let tx = take_transaction(state, &provider.id, params.state.as_deref()).await?;
    // The browser that finishes the login must be the one that started it (login CSRF).
    let bound = read_cookie(headers, state.cookies.login_name)
        .is_some_and(|v| crypto::constant_time_eq(&crypto::sha256_b64(v), &tx.browser_binding));
    if !bound {
        return Err(AppError::bad_request(
            "browser_mismatch",
            "This sign-in was started in another browser, or this browser blocked the broker's cookie. Start the login again here.",
        ));
    }
    let response = CallbackResponse {
        code: params.code.as_deref(),
        iss: params.iss.as_deref(),
        error: params.error.as_deref(),
        query: raw_query.as_deref().unwrap_or_default(),
    };
    let started = StartedLogin {
        nonce: &tx.nonce,
        pkce_verifier: &tx.pkce_verifier,
        session_id: tx.firebase_session_id.as_deref(),
    };
    let login = provider.complete_login(&response, &started).await?;
    let record = finish_login(
        state,
        web_session,
        &provider,
        &login.claims,
        Some(&login.tokens),
        client,
    )
    .await?;
    land(
        state,
        &tx.return_to,
        tx.token_mode,
        tx.code_challenge.as_deref(),
        &record,
    )
    .await
}

/// The login transaction the `state` names, taken once (a replayed or unknown state finds
/// nothing), and only for the provider it was started with.
async fn take_transaction(
    state: &AppState,
    provider_id: &str,
    state_param: Option<&str>,
) -> AppResult<LoginTransaction> {
    let state_param = state_param.ok_or_else(|| {
        AppError::bad_request(
            "invalid_state",
            "The sign-in response has no state. Start the login again.",
        )
    })?;
    let tx = state
        .store
        .take_login(state_param, state.clock.now())
        .await?
        .ok_or_else(|| {
            AppError::bad_request(
                "invalid_state",
                "This sign-in link has expired or was already used. Start the login again.",
            )
        })?;
    if tx.provider != provider_id {
        return Err(AppError::bad_request(
            "invalid_state",
            "This sign-in response belongs to another provider. Start the login again.",
        ));
    }
    Ok(tx)
}
