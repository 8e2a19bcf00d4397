//! The broker's own sign-in form, for a provider kind that has one (Firebase): email and
//! password, and links to its federated providers.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use url::Url;

use super::super::AppState;
use crate::error::AppResult;
use crate::providers::{HostedSignIn, Provider};

/// The sign-in page of `provider`; with `error`, shown again with the message and a 401.
pub fn sign_in_page(
    state: &AppState,
    provider: &Provider,
    form: &HostedSignIn<'_>,
    return_to: &str,
    token_mode: bool,
    error: Option<&str>,
) -> AppResult<Response> {
    let federated: Vec<_> = form
        .federated()
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
