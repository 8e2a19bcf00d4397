//! Firebase sign-in surfaces: the broker-hosted email + password form, and the hand-off of an ID
//! token obtained by the Firebase JS SDK (the pattern of Firebase's own session cookies).

use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use tower_sessions::Session;

use super::login::{
    find_provider, finish_login, land, login_failed, sign_in_page, token_mode, validate_return_to,
};
use super::{AppState, check_same_site};
use crate::client_info::ClientInfo;
use crate::error::{AppError, AppResult};
use crate::providers::{HostedSignIn, Provider, ProviderErrorKind};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/firebase/{provider}/password", post(password))
        .route("/auth/firebase/{provider}/session", post(handoff))
}

/// The provider's own sign-in form, which only some kinds have; the others are not found here.
fn hosted_sign_in(provider: &Provider) -> AppResult<HostedSignIn<'_>> {
    provider.hosted_sign_in().map_err(|_| {
        AppError::not_found(
            "unknown_provider",
            "There is no Firebase provider by that name.",
        )
    })
}

#[derive(Deserialize)]
struct PasswordForm {
    email: String,
    password: String,
    return_to: Option<String>,
    mode: Option<String>,
}

async fn password(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    web_session: Session,
    client: ClientInfo,
    Form(form): Form<PasswordForm>,
) -> AppResult<Response> {
    // Per account as well as per address: guessing one person's password from many addresses
    // is limited too. Refused before anything is audited or sent to Firebase.
    state.limits.check_account(&form.email)?;
    let outcome = async {
        check_same_site(&state, &headers)?;
        let provider = find_provider(&state, &provider_id)?;
        let hosted = hosted_sign_in(&provider)?;
        let return_to = validate_return_to(&state, form.return_to.as_deref())?;
        let token_mode = token_mode(form.mode.as_deref())?;
        let login = match hosted
            .with_password(form.email.trim(), &form.password)
            .await
        {
            Ok(login) => login,
            // A wrong password shows the form again, with the message, and nothing else changes.
            Err(e) if e.kind == ProviderErrorKind::Unauthorized => {
                let e = AppError::from(e);
                login_failed(&state, &provider_id, &client, &e).await;
                return sign_in_page(
                    &state,
                    &provider,
                    &hosted,
                    &return_to,
                    token_mode,
                    Some(&e.message),
                );
            }
            Err(e) => return Err(e.into()),
        };
        let record = finish_login(
            &state,
            &web_session,
            &provider,
            &login.claims,
            Some(&login.tokens),
            &client,
        )
        .await?;
        land(&state, &return_to, token_mode, None, &record).await
    }
    .await;
    if let Err(e) = &outcome {
        login_failed(&state, &provider_id, &client, e).await;
    }
    outcome
}

#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct Handoff {
    /// The Firebase ID token of a sign-in of the last five minutes.
    id_token: String,
}

/// `{"id_token": …}` from the Firebase JS SDK → a local session. Only a sign-in of the last five
/// minutes is accepted, so an old stolen ID token cannot be turned into a fresh session.
async fn handoff(
    State(state): State<AppState>,
    Path(provider_id): Path<String>,
    headers: HeaderMap,
    web_session: Session,
    client: ClientInfo,
    body: Result<Json<Handoff>, axum::extract::rejection::JsonRejection>,
) -> AppResult<Response> {
    let outcome = async {
        check_same_site(&state, &headers)?;
        let provider = find_provider(&state, &provider_id)?;
        let hosted = hosted_sign_in(&provider)?;
        let Json(body) = body.map_err(|_| {
            AppError::bad_request("invalid_request", "Send a JSON body {\"id_token\": \"…\"}.")
        })?;
        let claims = hosted.verify_handoff(&body.id_token).await?;
        let record = finish_login(&state, &web_session, &provider, &claims, None, &client).await?;
        let view = record.view(&state.config.session);
        Ok(Json(serde_json::json!({"user": record.user, "session": view})).into_response())
    }
    .await;
    if let Err(e) = &outcome {
        login_failed(&state, &provider_id, &client, e).await;
    }
    outcome
}
