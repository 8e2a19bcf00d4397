//! Firebase sign-in surfaces: the broker-hosted email + password form, and the hand-off of an ID
//! token obtained by the Firebase JS SDK (the pattern of Firebase's own session cookies).

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use tower_sessions::Session;
use url::Url;

use super::login::{
    find_provider, finish_login, land, login_failed, token_mode, validate_return_to,
};
use super::{AppState, check_same_site};
use crate::client_info::ClientInfo;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::providers::firebase::{HANDOFF_MAX_AUTH_AGE, IdTokenError};
use crate::providers::{FirebaseClient, Flow, Provider};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/firebase/{provider}/password", post(password))
        .route("/auth/firebase/{provider}/session", post(handoff))
}

fn firebase_of(provider: &Provider) -> AppResult<&FirebaseClient> {
    match &provider.flow {
        Flow::Firebase(fb) => Ok(fb),
        Flow::Oidc(_) => Err(AppError::not_found(
            "unknown_provider",
            "There is no Firebase provider by that name.",
        )),
    }
}

/// The sign-in page of a Firebase provider: email and password, and its federated providers.
pub fn sign_in_page(
    state: &AppState,
    provider: &Provider,
    fb: &FirebaseClient,
    return_to: &str,
    token_mode: bool,
    error: Option<&str>,
) -> AppResult<Response> {
    let federated: Vec<_> = fb
        .federated
        .iter()
        .map(|idp| {
            let mut u = Url::parse(&state.login_url()).ok();
            if let Some(u) = u.as_mut() {
                u.query_pairs_mut().append_pair("provider", &provider.id).append_pair("idp", idp).append_pair("return_to", return_to);
                if token_mode {
                    u.query_pairs_mut().append_pair("mode", "token");
                }
            }
            minijinja::context! { name => idp.clone(), url => u.map(|u| u.to_string()).unwrap_or_default() }
        })
        .collect();
    let page = state.render(
        "firebase_login.html",
        minijinja::context! {
            provider => provider.display_name.clone(),
            action => state.config.server.url(&format!("/auth/firebase/{}/password", provider.id)),
            return_to => return_to,
            mode => if token_mode { "token" } else { "cookie" },
            federated => federated,
            error => error,
        },
    )?;
    Ok(if error.is_some() {
        (StatusCode::UNAUTHORIZED, page).into_response()
    } else {
        page
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
        let fb = firebase_of(&provider)?;
        let return_to = validate_return_to(&state, form.return_to.as_deref())?;
        let token_mode = token_mode(form.mode.as_deref())?;
        let tokens = match fb
            .sign_in_with_password(form.email.trim(), &form.password)
            .await
        {
            Ok(t) => t,
            // A wrong password shows the form again, with the message, and nothing else changes.
            Err(e) if e.kind == ErrorKind::Unauthorized => {
                login_failed(&state, &provider_id, &client, &e).await;
                return sign_in_page(
                    &state,
                    &provider,
                    fb,
                    &return_to,
                    token_mode,
                    Some(&e.message),
                );
            }
            Err(e) => return Err(e),
        };
        let claims = fb
            .verify_id_token(tokens.id_token.as_deref().unwrap_or_default(), None)
            .await?;
        let record = finish_login(
            &state,
            &web_session,
            &provider,
            &claims,
            Some(&tokens),
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

#[derive(Deserialize)]
struct Handoff {
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
        let fb = firebase_of(&provider)?;
        let Json(body) = body.map_err(|_| {
            AppError::bad_request("invalid_request", "Send a JSON body {\"id_token\": \"…\"}.")
        })?;
        let claims = fb
            .verify_id_token(&body.id_token, Some(HANDOFF_MAX_AUTH_AGE))
            .await
            .map_err(IdTokenError::from_caller)?;
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
