//! `GET /auth/login` starts a login; `GET /auth/callback/{id}` finishes it. [`finish_login`] is the
//! common end of every kind's flow: claims → identity → local user → fresh session.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Map, Value};
use time::Duration as TimeDuration;
use tower_sessions::Session;
use url::Url;

use super::{AppState, read_cookie};
use crate::audit::{self, AuditEvent, Event, RevokedBy};
use crate::client_info::ClientInfo;
use crate::crypto;
use crate::error::{AppError, AppResult, safe_code};
use crate::identity::{self, UserView};
use crate::providers::{Flow, Provider, ProviderTokens};
use crate::redirect::RedirectError;
use crate::session::{self, SessionRecord};
use crate::store::IndexedSession;
use crate::store::LoginTransaction;
use crate::store::devices::SessionDevice;
use crate::tokens::StoredTokens;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback/{provider}", get(callback))
}

#[derive(Deserialize)]
struct LoginParams {
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

async fn login(
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
    let provider_id = match params.provider {
        Some(p) => p,
        None if state.providers.len() == 1 => state
            .providers
            .all()
            .next()
            .map(|p| p.id.clone())
            .unwrap_or_default(),
        None => return chooser(&state, &return_to, token_mode),
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
    let (key, url) = match &provider.flow {
        Flow::Oidc(client) => {
            let key = crypto::random_token(32);
            tx.nonce = crypto::random_token(32);
            tx.pkce_verifier = crypto::random_token(48);
            let url = client
                .authorization_url(&key, &tx.nonce, &crypto::pkce_challenge(&tx.pkce_verifier))
                .await?;
            (key, url.to_string())
        }
        Flow::Firebase(fb) => {
            let Some(idp) = params.idp else {
                return super::firebase::sign_in_page(
                    &state,
                    &provider,
                    fb,
                    &tx.return_to,
                    token_mode,
                    None,
                );
            };
            if !fb.federated.contains(&idp) {
                return Err(AppError::bad_request(
                    "unknown_provider",
                    "That sign-in method is not offered here.",
                ));
            }
            let auth = fb
                .create_auth_uri(
                    &idp,
                    &state
                        .config
                        .server
                        .url(&format!("/auth/callback/{}", provider.id)),
                )
                .await?;
            // Firebase generates the `state` the identity provider echoes back: it keys the transaction.
            let key = Url::parse(&auth.auth_uri)
                .ok()
                .and_then(|u| {
                    u.query_pairs()
                        .find(|(k, _)| k == "state")
                        .map(|(_, v)| v.into_owned())
                })
                .filter(|s| s.len() >= 16)
                .ok_or_else(|| {
                    AppError::provider(
                        "provider_error",
                        "Firebase's sign-in address carries no state.",
                        "createAuthUri: authUri without state",
                    )
                })?;
            tx.firebase_session_id = auth.session_id;
            (key, auth.auth_uri)
        }
    };
    store_transaction(&state, &key, &tx).await?;
    tracing::info!(provider = %provider.id, "login started");
    Ok(redirect_with_binding(&state, &url, &binding))
}

fn chooser(state: &AppState, return_to: &str, token_mode: bool) -> AppResult<Response> {
    let providers: Vec<_> = state
        .providers
        .all()
        .map(|p| {
            let mut u = Url::parse(&state.login_url()).ok();
            if let Some(u) = u.as_mut() {
                u.query_pairs_mut().append_pair("provider", &p.id).append_pair("return_to", return_to);
                if token_mode {
                    u.query_pairs_mut().append_pair("mode", "token");
                }
            }
            minijinja::context! { name => p.display_name.clone(), url => u.map(|u| u.to_string()).unwrap_or_default() }
        })
        .collect();
    state.render("login.html", minijinja::context! { providers => providers })
}

#[derive(Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

async fn callback(
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
    let state_param = params.state.as_deref().ok_or_else(|| {
        AppError::bad_request(
            "invalid_state",
            "The sign-in response has no state. Start the login again.",
        )
    })?;
    // Taken once: a replayed or unknown state finds nothing.
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
    if tx.provider != provider.id {
        return Err(AppError::bad_request(
            "invalid_state",
            "This sign-in response belongs to another provider. Start the login again.",
        ));
    }
    // The browser that finishes the login must be the one that started it (login CSRF).
    let bound = read_cookie(headers, state.cookies.login_name)
        .is_some_and(|v| crypto::constant_time_eq(&crypto::sha256_b64(v), &tx.browser_binding));
    if !bound {
        return Err(AppError::bad_request(
            "browser_mismatch",
            "This sign-in was started in another browser, or this browser blocked the broker's cookie. Start the login again here.",
        ));
    }
    let (claims, tokens) = match &provider.flow {
        Flow::Oidc(client) => {
            client.check_response_issuer(params.iss.as_deref()).await?;
            provider_error(params.error.as_deref())?;
            let code = params
                .code
                .as_deref()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    AppError::bad_request(
                        "invalid_request",
                        "The sign-in response has no code. Start the login again.",
                    )
                })?;
            let tokens = client.exchange_code(code, &tx.pkce_verifier).await?;
            let verified = async {
                let id_token = tokens.id_token.as_deref().ok_or_else(|| {
                    AppError::provider(
                        "invalid_id_token",
                        "The identity provider sent no ID token (is the openid scope allowed?).",
                        "no id_token in token response",
                    )
                })?;
                let mut claims = client.verify_id_token(id_token, &tx.nonce).await?;
                let subject = claims
                    .get("sub")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                if let Some(extra) = client.userinfo(&tokens.access_token, &subject).await? {
                    // The signed ID token wins over userinfo where both speak.
                    for (k, v) in extra {
                        claims.entry(k).or_insert(v);
                    }
                }
                Ok::<_, AppError>(claims)
            }
            .await;
            match verified {
                Ok(claims) => (claims, tokens),
                Err(e) => {
                    // The code is spent, but what the provider issued for it is live: revoke it.
                    provider.discard_tokens(tokens);
                    return Err(e);
                }
            }
        }
        Flow::Firebase(fb) => {
            provider_error(params.error.as_deref())?;
            // signInWithIdp wants the whole URL the identity provider sent the browser to.
            let request_uri = format!(
                "{}?{}",
                state
                    .config
                    .server
                    .url(&format!("/auth/callback/{}", provider.id)),
                raw_query.unwrap_or_default()
            );
            let tokens = fb
                .sign_in_with_idp(&request_uri, tx.firebase_session_id.as_deref())
                .await?;
            let id_token = tokens.id_token.as_deref().unwrap_or_default();
            (fb.verify_id_token(id_token, None).await?, tokens)
        }
    };
    let record = finish_login(
        state,
        web_session,
        &provider,
        &claims,
        Some(&tokens),
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

fn provider_error(error: Option<&str>) -> AppResult<()> {
    let Some(error) = error else { return Ok(()) };
    let safe = safe_code(error);
    let message = if safe == "access_denied" {
        "Sign-in was cancelled or denied at the identity provider.".to_string()
    } else {
        format!("The identity provider could not sign you in ({safe}).")
    };
    Err(AppError::bad_request("provider_error", message))
}

/// Verified claims → identity → local user → a fresh session (new id, no fixation), recorded with
/// the client it was signed in from and audited; beyond `max_per_user`, the oldest sessions end.
pub async fn finish_login(
    state: &AppState,
    web_session: &Session,
    provider: &Provider,
    claims: &Map<String, Value>,
    tokens: Option<&ProviderTokens>,
    client: &ClientInfo,
) -> AppResult<SessionRecord> {
    let now = state.clock.now();
    let identity = identity::from_claims(
        &provider.id,
        provider.kind.as_str(),
        claims,
        &provider.claims,
    )?;
    let link = state
        .store
        .link_identity(&identity, now, state.config.identity.link_by)
        .await?;
    let user_id = link.user_id.clone();
    let subject = identity.subject.clone();
    let record = session::start(
        web_session,
        UserView {
            id: user_id,
            identity,
        },
        &state.config.session,
        now,
    )
    .await?;
    // Saved now (not after the response) so that the session has its id for the index.
    web_session.save().await?;
    let Some(session_id) = web_session.id() else {
        return Err(AppError::internal("session has no id after save"));
    };
    let stored = tokens.map(|t| StoredTokens::from_response(t, now.unix_timestamp()));
    let sealed = match &stored {
        Some(t) => Some(
            state
                .vault
                .seal(t, &record.handle)
                .map_err(AppError::internal)?,
        ),
        None => None,
    };
    let mut record = record;
    record.refresh_at = stored
        .as_ref()
        .and_then(|t| crate::session::refresh::due_at(t, state.config.session.refresh_margin));
    if record.refresh_at.is_some() {
        session::put(web_session, &record).await?;
    }
    let row = IndexedSession {
        handle: record.handle.clone(),
        session_key: crate::store::SessionKey::of(&session_id),
        user_id: record.user.id.clone(),
        provider: provider.id.clone(),
        subject,
        // OpenID Connect Back-Channel Logout: the provider's session id, when it sends one.
        provider_sid: claims
            .get("sid")
            .and_then(Value::as_str)
            .map(str::to_string),
        created_at: record.created_at,
        expires_at: record.absolute_expires_at,
        access_expires_at: tokens
            .and_then(|t| t.expires_in)
            .and_then(|s| i64::try_from(s).ok())
            .map(|s| now.unix_timestamp() + s),
        tokens: sealed,
    };
    if let Err(e) = state.store.index_session(&row).await {
        // No half-made session: without its index row it could not be listed or revoked.
        let _ = web_session.flush().await;
        return Err(e.into());
    }
    let device = SessionDevice {
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        device: Some(client.device.clone()),
    };
    let mut done = state
        .store
        .record_session_device(&row.handle, &device)
        .await
        .map_err(AppError::from);
    if done.is_ok() {
        done = enforce_session_limit(state, &row).await;
    }
    if let Err(e) = done {
        let _ = state.end_session(&row).await;
        let _ = web_session.flush().await;
        return Err(e);
    }
    let at = now.unix_timestamp();
    if link.new_identity {
        let via = if link.new_user {
            "new_user"
        } else {
            "verified_email"
        };
        let event = AuditEvent::new(Event::IdentityLinked)
            .user(&row.user_id)
            .provider(&row.provider)
            .client(client)
            .detail("subject", row.subject.as_str())
            .detail("via", via);
        audit::record(&state.store, at, event).await;
    }
    let event = AuditEvent::of_session(Event::LoginSucceeded, &row).client(client);
    audit::record(&state.store, at, event).await;
    Ok(record)
}

/// `[session] max_per_user`: the user's oldest live sessions end so that, with the new one, at
/// most that many remain.
async fn enforce_session_limit(state: &AppState, new: &IndexedSession) -> AppResult<()> {
    let Some(max) = state.config.session.max_per_user else {
        return Ok(());
    };
    let now = state.clock.now();
    let live = crate::session::list::live_sessions(
        &state.store,
        &state.sessions,
        &state.config.session,
        now,
        &new.user_id,
    )
    .await?;
    // Newest first; the new session is always kept.
    let others = live.iter().filter(|s| s.row.handle != new.handle);
    for old in others.skip(max.saturating_sub(1)) {
        state.end_session(&old.row).await?;
        let event =
            AuditEvent::revoked(&old.row, RevokedBy::MaxPerUser).detail("max_per_user", max);
        audit::record(&state.store, now.unix_timestamp(), event).await;
    }
    Ok(())
}
