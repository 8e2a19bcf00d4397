//! `GET /auth/login`: the provider chooser, or the start of a login with one provider — its
//! authorization request (a login transaction stored under its `state`, bound to this browser by
//! a cookie), or the broker's own sign-in form.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use time::Duration as TimeDuration;
use url::Url;

use super::super::{AppState, read_cookie};
use super::landing::{find_provider, token_mode, validate_return_to};
use super::sign_in_page::sign_in_page;
use crate::crypto;
use crate::error::{AppError, AppResult};
use crate::providers::{LoginStart, UpstreamHints};
use crate::store::LoginTransaction;

#[derive(Deserialize)]
pub(super) struct LoginParams {
    provider: Option<String>,
    return_to: Option<String>,
    /// Firebase: which federated provider (`google.com`, …) to sign in with.
    idp: Option<String>,
    /// `token`: the app gets a one-time code on `return_to` (token mode); `cookie` (the default):
    /// the session cookie alone.
    mode: Option<String>,
    /// Token mode: an RFC 7636 S256 challenge; the code is then only traded with its verifier.
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// Passed to the provider (OpenID Connect Core §3.1.2.1): `prompt=login`, `max_age`,
    /// `login_hint`, `acr_values`.
    prompt: Option<String>,
    /// The chooser offers only these providers (comma-separated ids): the ones an app may use.
    providers: Option<String>,
    max_age: Option<String>,
    login_hint: Option<String>,
    acr_values: Option<String>,
}

impl LoginParams {
    /// The hints for the provider, checked: short, printable, and only what they can mean.
    fn hints(&self) -> AppResult<UpstreamHints> {
        let bad = |what: &str| {
            AppError::bad_request(
                "invalid_request",
                format!("{what} is not valid for a sign-in request."),
            )
        };
        let printable = |v: &str| v.len() <= 256 && v.chars().all(|c| !c.is_control());
        let prompt_login = match self.prompt.as_deref().filter(|p| !p.is_empty()) {
            None => false,
            Some("login") => true,
            Some(_) => return Err(bad("prompt (only \"login\" is passed on)")),
        };
        let max_age = match self.max_age.as_deref().filter(|m| !m.is_empty()) {
            None => None,
            Some(m) => Some(
                m.parse::<u64>()
                    .ok()
                    .filter(|_| m.len() <= 10)
                    .ok_or_else(|| bad("max_age"))?,
            ),
        };
        let login_hint = self.login_hint.clone().filter(|h| !h.is_empty());
        if login_hint.as_deref().is_some_and(|h| !printable(h)) {
            return Err(bad("login_hint"));
        }
        let acr_values = self.acr_values.clone().filter(|a| !a.is_empty());
        if acr_values
            .as_deref()
            .is_some_and(|a| !printable(a) || a.contains(['"', '\\']))
        {
            return Err(bad("acr_values"));
        }
        Ok(UpstreamHints {
            prompt_login,
            max_age,
            login_hint,
            acr_values,
        })
    }
}

/// A token-mode PKCE challenge as given: S256 only, 43 base64url characters.
fn code_challenge(
    token_mode: bool,
    challenge: Option<&str>,
    method: Option<&str>,
) -> AppResult<Option<String>> {
    let Some(challenge) = challenge.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !token_mode || method.unwrap_or("S256") != "S256" || !well_formed {
        return Err(AppError::bad_request(
            "invalid_request",
            "code_challenge goes with mode=token, as an S256 challenge (code_challenge_method=S256).",
        ));
    }
    Ok(Some(challenge.to_string()))
}

/// The browser's binding value: the existing cookie if well-formed, else a new one.
fn browser_binding(state: &AppState, headers: &HeaderMap) -> String {
    read_cookie(headers, state.cookies.login_name)
        .filter(|v| {
            v.len() >= 32
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(|| crypto::random_token(32))
}

/// Redirects to the provider, setting (or refreshing) the browser-binding cookie.
fn redirect_with_binding(state: &AppState, to: &str, binding: &str) -> Response {
    let mut res = Redirect::to(to).into_response();
    let cookie = state.cookies.login_cookie(
        binding,
        state.config.session.login_timeout + std::time::Duration::from_secs(3600),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

async fn store_transaction(state: &AppState, key: &str, tx: &LoginTransaction) -> AppResult<()> {
    let ttl = i64::try_from(state.config.session.login_timeout.as_secs()).unwrap_or(600);
    state
        .store
        .put_login(
            key,
            tx,
            state.clock.now() + TimeDuration::seconds(ttl),
            state.config.limits.logins_per_browser,
        )
        .await?;
    Ok(())
}

pub(super) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(params): Query<LoginParams>,
) -> AppResult<Response> {
    let return_to = validate_return_to(&state, params.return_to.as_deref())?;
    let token_mode = token_mode(params.mode.as_deref())?;
    let challenge = code_challenge(
        token_mode,
        params.code_challenge.as_deref(),
        params.code_challenge_method.as_deref(),
    )?;
    let hints = params.hints()?;
    let provider_id = match params.provider {
        Some(p) => p,
        None if state.providers.len() == 1 => state
            .providers
            .all()
            .next()
            .map(|p| p.id.clone())
            .unwrap_or_default(),
        None => {
            let only = params.providers.as_deref().filter(|p| !p.is_empty());
            return chooser(&state, &return_to, token_mode, &hints, only);
        }
    };
    let provider = find_provider(&state, &provider_id)?;
    // One binding per browser, shared by its tabs; each tab has its own transaction.
    let binding = browser_binding(&state, &headers);
    let mut tx = LoginTransaction {
        provider: provider.id.clone(),
        nonce: String::new(),
        pkce_verifier: String::new(),
        return_to,
        browser_binding: crypto::sha256_b64(&binding),
        created_at: state.clock.now().unix_timestamp(),
        firebase_session_id: None,
        token_mode,
        code_challenge: challenge,
    };
    let request = match provider.start_login(params.idp.as_deref(), &hints).await? {
        LoginStart::Redirect(request) => request,
        LoginStart::SignInPage(form) => {
            return sign_in_page(&state, &provider, &form, &tx.return_to, token_mode, None);
        }
    };
    tx.nonce = request.nonce;
    tx.pkce_verifier = request.pkce_verifier;
    tx.firebase_session_id = request.session_id;
    store_transaction(&state, &request.state, &tx).await?;
    tracing::info!(provider = %provider.id, "login started");
    Ok(redirect_with_binding(&state, &request.url, &binding))
}

fn chooser(
    state: &AppState,
    return_to: &str,
    token_mode: bool,
    hints: &UpstreamHints,
    only: Option<&str>,
) -> AppResult<Response> {
    let providers: Vec<_> = state
        .providers
        .all()
        .filter(|p| only.is_none_or(|only| only.split(',').any(|id| id == p.id)))
        .map(|p| {
            let mut u = Url::parse(&state.login_url()).ok();
            if let Some(u) = u.as_mut() {
                u.query_pairs_mut().append_pair("provider", &p.id).append_pair("return_to", return_to);
                if token_mode {
                    u.query_pairs_mut().append_pair("mode", "token");
                }
                u.query_pairs_mut().extend_pairs(hints.params());
            }
            minijinja::context! { name => p.display_name.clone(), url => u.map(|u| u.to_string()).unwrap_or_default() }
        })
        .collect();
    state.render("login.html", minijinja::context! { providers => providers })
}
