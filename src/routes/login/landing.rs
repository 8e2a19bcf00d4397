//! Where a login lands and what every login surface shares: `return_to` judged, token or cookie
//! mode, the redirect back to the app (with a one-time code in token mode), the provider looked
//! up, and a failed login audited.

use std::sync::Arc;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use url::Url;

use super::super::AppState;
use crate::audit::{self, AuditEvent, Event};
use crate::client_info::ClientInfo;
use crate::crypto;
use crate::error::{AppError, AppResult};
use crate::providers::Provider;
use crate::redirect::RedirectError;
use crate::session::SessionRecord;

/// `mode=token` or `mode=cookie` (the default).
pub fn token_mode(mode: Option<&str>) -> AppResult<bool> {
    match mode.filter(|m| !m.is_empty()) {
        None | Some("cookie") => Ok(false),
        Some("token") => Ok(true),
        Some(_) => Err(AppError::bad_request(
            "invalid_request",
            "mode must be \"cookie\" or \"token\".",
        )),
    }
}

/// Where the browser goes once signed in: `return_to`, with a one-time `code` in token mode that
/// the app trades at `POST /auth/token`.
pub async fn land(
    state: &AppState,
    return_to: &str,
    token_mode: bool,
    code_challenge: Option<&str>,
    record: &SessionRecord,
) -> AppResult<Response> {
    // Judged again where it is used, whatever judged it when it was stored.
    let return_to = validate_return_to(state, Some(return_to))?;
    let target = if token_mode {
        let code = crypto::random_token(32);
        let ttl = i64::try_from(state.config.tokens.code_ttl.as_secs()).unwrap_or(60);
        state
            .store
            .put_login_code(
                &code,
                &record.handle,
                code_challenge,
                state.clock.now().unix_timestamp() + ttl,
            )
            .await?;
        let mut url = Url::parse(&return_to).map_err(AppError::internal)?;
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "code")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        url.query_pairs_mut()
            .clear()
            .extend_pairs(kept)
            .append_pair("code", &code);
        url.to_string()
    } else {
        return_to
    };
    let mut res = Redirect::to(&target).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The code must not leak to other sites through Referer from the landing page's redirect.
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    Ok(res)
}

/// `return_to` as the browser will read it, on an allowed origin or the broker's own (see
/// [`crate::redirect`]); without one, the broker's home page.
pub fn validate_return_to(state: &AppState, raw: Option<&str>) -> AppResult<String> {
    let server = &state.config.server;
    let Some(raw) = raw.filter(|s| !s.is_empty()) else {
        return Ok(server.url("/"));
    };
    match server.redirect_policy().judge(raw) {
        Ok(url) => Ok(url.to_string()),
        Err(RedirectError::TooLong) => Err(AppError::bad_request(
            "return_to_too_long",
            format!(
                "The page to return to after sign-in is longer than {} bytes. Pass a shorter URL (keep state in the app, not in return_to).",
                crate::redirect::MAX_LEN
            ),
        )),
        Err(RedirectError::NotAllowed) => Err(AppError::bad_request(
            "return_to_not_allowed",
            "The page to return to after sign-in is not an exact http(s) URL on an allowed site, or a path on this broker. Ask the site's operator to add its origin to server.allowed_origins.",
        )),
    }
}

pub fn find_provider(state: &AppState, id: &str) -> AppResult<Arc<Provider>> {
    state.providers.get(id).cloned().ok_or_else(|| {
        AppError::not_found(
            "unknown_provider",
            "There is no identity provider by that name.",
        )
    })
}

/// Audits a login that ended in an error, with the error's code as the reason.
pub async fn login_failed(state: &AppState, provider_id: &str, client: &ClientInfo, e: &AppError) {
    let mut event = AuditEvent::new(Event::LoginFailed)
        .client(client)
        .detail("reason", e.code);
    // An unknown provider id is whatever the request said: not worth keeping as a provider.
    if state.providers.get(provider_id).is_some() {
        event = event.provider(provider_id);
    }
    audit::record(&state.store, state.clock.now().unix_timestamp(), event).await;
}
