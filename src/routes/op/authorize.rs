//! `GET /oauth2/authorize`: an app's authorization request, answered from the browser's broker
//! session or after an upstream sign-in (`/auth/login`, which returns to
//! `/oauth2/authorize/resume`).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use axum::routing::get;
use url::Url;

use super::super::AppState;
use super::super::caller::Caller;
use super::{pairs, redirect_no_store, single};
use crate::crypto;
use crate::error::{AppError, AppResult};
use crate::op::authorize::{self, AuthRequest, Decision, Prompt, Refusal, error_redirect};
use crate::op::{OpError, grant};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/oauth2/authorize", get(authorize).post(authorize_form))
        .route("/oauth2/authorize/resume", get(resume))
}

async fn authorize(
    State(state): State<AppState>,
    caller: Option<Caller>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let params = pairs(query.unwrap_or_default().as_bytes());
    answer(state, caller, params).await
}

/// The same request as a form post (OpenID Connect Core §3.1.2.1: GET and POST alike).
async fn authorize_form(
    State(state): State<AppState>,
    caller: Option<Caller>,
    body: Bytes,
) -> AppResult<Response> {
    answer(state, caller, pairs(&body)).await
}

async fn answer(
    state: AppState,
    caller: Option<Caller>,
    params: Vec<(String, String)>,
) -> AppResult<Response> {
    let op = state.op();
    let mut req = match authorize::check(&op, &params) {
        Ok(r) => r,
        Err(Refusal::Page(e)) => return Err(e.into()),
        Err(Refusal::Redirect(r)) => return Ok(redirect_no_store(&r.url)),
    };
    let record = caller.as_ref().map(|c| &c.record);
    let client = op
        .client(&req.client_id)
        .ok_or_else(|| AppError::internal("checked client is gone"))?;
    match authorize::decide(&req, client, record, op.now()) {
        Decision::Issue => {
            let record = record.ok_or_else(|| AppError::internal("issue without a session"))?;
            Ok(redirect_no_store(
                &grant::issue_code(&op, &req, record).await?,
            ))
        }
        Decision::LoginRequired => Ok(login_required(&state, &req)),
        Decision::SignIn => {
            if req.prompt == Prompt::Login {
                req.fresh_after = Some(op.now());
            }
            sign_in_first(&state, &req).await
        }
    }
}

fn login_required(state: &AppState, req: &AuthRequest) -> Response {
    let r = error_redirect(
        &state.op(),
        &req.redirect_uri,
        req.state.as_deref(),
        "login_required",
        "There is no sign-in session to use without showing a page.",
    );
    redirect_no_store(&r.url)
}

/// Keeps the request while the person signs in upstream, and sends them to the sign-in: the
/// client's one provider, or the chooser of the providers it may use.
async fn sign_in_first(state: &AppState, req: &AuthRequest) -> AppResult<Response> {
    let id = crypto::random_token(32);
    let json = serde_json::to_string(req).map_err(AppError::internal)?;
    let ttl = i64::try_from(state.config.session.login_timeout.as_secs()).unwrap_or(600);
    let now = state.clock.now().unix_timestamp();
    state.store.put_op_request(&id, &json, now + ttl).await?;
    let mut url = Url::parse(&state.login_url()).map_err(AppError::internal)?;
    {
        let mut q = url.query_pairs_mut();
        q.append_pair(
            "return_to",
            &format!("/oauth2/authorize/resume?request={id}"),
        );
        let allowed = state
            .op()
            .client(&req.client_id)
            .map(|c| c.providers.clone())
            .unwrap_or_default();
        match allowed.as_slice() {
            [one] => {
                q.append_pair("provider", one);
            }
            many if many.len() < state.providers.len() => {
                q.append_pair("providers", &many.join(","));
            }
            _ => {}
        }
        if req.prompt == Prompt::Login {
            q.append_pair("prompt", "login");
        }
        if let Some(m) = req.max_age {
            q.append_pair("max_age", &m.to_string());
        }
        if let Some(h) = &req.login_hint {
            q.append_pair("login_hint", h);
        }
        if let Some(a) = &req.acr_values {
            q.append_pair("acr_values", a);
        }
    }
    Ok(redirect_no_store(url.as_str()))
}

/// `GET /oauth2/authorize/resume?request=…`: back from the sign-in, the kept request is answered
/// once from the session the sign-in made.
async fn resume(
    State(state): State<AppState>,
    caller: Option<Caller>,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let params = pairs(query.unwrap_or_default().as_bytes());
    let expired = || {
        AppError::from(OpError::page(
            "request_expired",
            "This sign-in request has expired or was already answered. Go back to the app and sign in again.",
        ))
    };
    let id = single(&params, "request")?.ok_or_else(expired)?;
    let op = state.op();
    let json = state
        .store
        .take_op_request(id, op.now())
        .await?
        .ok_or_else(expired)?;
    let req: AuthRequest = serde_json::from_str(&json).map_err(|_| expired())?;
    let client = op.client(&req.client_id).ok_or_else(expired)?;
    let record = caller.as_ref().map(|c| &c.record);
    match (authorize::decide(&req, client, record, op.now()), record) {
        (Decision::Issue, Some(record)) => Ok(redirect_no_store(
            &grant::issue_code(&op, &req, record).await?,
        )),
        (_, Some(_)) => {
            let r = error_redirect(
                &op,
                &req.redirect_uri,
                req.state.as_deref(),
                "access_denied",
                "The sign-in did not meet this app's request (another identity provider than the app allows, or not a fresh sign-in).",
            );
            Ok(redirect_no_store(&r.url))
        }
        (_, None) => Ok(login_required(&state, &req)),
    }
}
