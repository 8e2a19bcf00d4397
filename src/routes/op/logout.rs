//! `GET|POST /oauth2/logout`: OpenID Connect RP-Initiated Logout 1.0. The app sends the browser
//! here with its `id_token_hint`; the broker session ends, the upstream refresh token is revoked,
//! the browser goes through the upstream provider's logout, and lands on the app's registered
//! `post_logout_redirect_uri` with its `state`. Without a hint that names the browser's session,
//! the person confirms first (a cross-site link alone must not sign anyone out).

use axum::Router;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::super::caller::Caller;
use super::super::logout::end_everywhere;
use super::super::{AppState, check_same_site};
use super::{pairs, redirect_no_store, single};
use crate::client_info::ClientInfo;
use crate::config::ClientConfig;
use crate::crypto;
use crate::error::{AppError, AppResult};
use crate::op::OpError;
use crate::session;
use crate::tokens::broker_jwt::Expect;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/oauth2/logout", get(by_link).post(by_form))
}

async fn by_link(
    State(state): State<AppState>,
    caller: Option<Caller>,
    headers: HeaderMap,
    client: ClientInfo,
    RawQuery(query): RawQuery,
) -> AppResult<Response> {
    let params = pairs(query.unwrap_or_default().as_bytes());
    end_session(&state, caller, &headers, &client, &params, false).await
}

async fn by_form(
    State(state): State<AppState>,
    caller: Option<Caller>,
    headers: HeaderMap,
    client: ClientInfo,
    body: Bytes,
) -> AppResult<Response> {
    let params = pairs(&body);
    end_session(&state, caller, &headers, &client, &params, true).await
}

fn page(code: &'static str, message: &str) -> AppError {
    OpError::page(code, message).into()
}

/// The verified `id_token_hint` (expired ones too: logout comes after expiry).
async fn hint(state: &AppState, raw: Option<&str>) -> AppResult<Option<Value>> {
    let Some(raw) = raw else { return Ok(None) };
    let op = state.op();
    let audiences: Vec<&str> = op.clients.keys().map(String::as_str).collect();
    let expect = Expect {
        issuer: op.issuer,
        audiences: &audiences,
        allow_expired: true,
    };
    state
        .keys
        .verify_claims(
            &state.store,
            &state.vault,
            &state.config.tokens,
            &expect,
            raw,
            op.now(),
        )
        .await
        .map(Some)
        .map_err(|_| {
            page(
                "invalid_id_token_hint",
                "The app sent an id_token_hint that is not an ID token from this sign-in service.",
            )
        })
}

/// The app that asked, from the hint's `aud` or `client_id` (which must agree).
fn asking_client<'a>(
    state: &'a AppState,
    hint: Option<&Value>,
    client_id: Option<&str>,
) -> AppResult<Option<&'a ClientConfig>> {
    let from_hint = hint.and_then(|h| h.get("aud")).and_then(Value::as_str);
    let id = match (from_hint, client_id) {
        (Some(a), Some(b)) if a != b => {
            return Err(page(
                "invalid_request",
                "client_id does not match the app the id_token_hint was issued to.",
            ));
        }
        (Some(id), _) | (None, Some(id)) => id,
        (None, None) => return Ok(None),
    };
    match state.config.clients.get(id) {
        Some(c) => Ok(Some(c)),
        None => Err(page(
            "unknown_client",
            "The app that sent you here is not registered with this sign-in service.",
        )),
    }
}

/// Where the logout finally lands: the registered URI asked for (exactly), else the app's first,
/// with its `state`; `None`: the broker's own signed-out page.
fn landing(
    client: Option<&ClientConfig>,
    asked: Option<&str>,
    state_param: Option<&str>,
) -> AppResult<Option<String>> {
    let uri = match (client, asked) {
        (None, Some(_)) => {
            return Err(page(
                "invalid_request",
                "post_logout_redirect_uri needs an id_token_hint or a client_id naming the app.",
            ));
        }
        (Some(c), Some(u)) if c.post_logout_redirect_uris.iter().any(|r| r == u) => u,
        (Some(c), Some(_)) => {
            return Err(page(
                "post_logout_redirect_uri_not_registered",
                &format!(
                    "The page this app wants to return to after sign-out is not registered for it. Its operator must add the exact URL to post_logout_redirect_uris of [clients.{}].",
                    c.id
                ),
            ));
        }
        (Some(c), None) => match c.post_logout_redirect_uris.first() {
            Some(u) => u.as_str(),
            None => return Ok(None),
        },
        (None, None) => return Ok(None),
    };
    let pairs: Vec<(&str, &str)> = state_param.map(|s| ("state", s)).into_iter().collect();
    Ok(Some(with_pairs(uri, &pairs)))
}

fn with_pairs(uri: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            if !pairs.is_empty() {
                u.query_pairs_mut().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => uri.to_string(),
    }
}

async fn end_session(
    state: &AppState,
    caller: Option<Caller>,
    headers: &HeaderMap,
    client_info: &ClientInfo,
    params: &[(String, String)],
    is_post: bool,
) -> AppResult<Response> {
    let hint = hint(state, single(params, "id_token_hint")?).await?;
    let client = asking_client(state, hint.as_ref(), single(params, "client_id")?)?;
    let target = landing(
        client,
        single(params, "post_logout_redirect_uri")?,
        single(params, "state")?,
    )?;
    let logged_out = state.config.server.url("/auth/logged-out");
    let Some(caller) = caller else {
        return Ok(redirect_no_store(target.as_deref().unwrap_or(&logged_out)));
    };
    let names_this_session = hint.as_ref().is_some_and(|h| {
        h.get("sid").and_then(Value::as_str) == Some(caller.record.handle.as_str())
            || h.get("sub").and_then(Value::as_str) == Some(caller.record.user.id.as_str())
    });
    let confirmed = is_post
        && single(params, "confirm")? == Some("yes")
        && check_same_site(state, headers).is_ok();
    if !names_this_session && !confirmed {
        return confirm_page(state, &caller, params);
    }
    let upstream = end_everywhere(state, &caller.record, client_info).await?;
    session::end(&caller.session).await?;
    let Some(target) = target else {
        return Ok(redirect_no_store(&upstream));
    };
    if upstream == logged_out {
        return Ok(redirect_no_store(&target));
    }
    // Through the provider's logout first; its return to /auth/logged-out finds the way on.
    let id = crypto::random_token(32);
    let ttl = state.config.session.login_timeout;
    let until = state.clock.now().unix_timestamp() + i64::try_from(ttl.as_secs()).unwrap_or(600);
    let kept = json!({ "logout_to": target }).to_string();
    state.store.put_op_request(&id, &kept, until).await?;
    let mut res = redirect_no_store(&upstream);
    if let Ok(v) = HeaderValue::from_str(&state.cookies.logout_cookie(&id, ttl)) {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(res)
}

/// Asks the person to confirm, posting the same request back with `confirm=yes`.
fn confirm_page(
    state: &AppState,
    caller: &Caller,
    params: &[(String, String)],
) -> AppResult<Response> {
    let keep = [
        "id_token_hint",
        "client_id",
        "post_logout_redirect_uri",
        "state",
    ];
    let mut fields: Vec<Value> = params
        .iter()
        .filter(|(k, _)| keep.contains(&k.as_str()))
        .map(|(k, v)| json!({ "name": k, "value": v }))
        .collect();
    fields.push(json!({ "name": "confirm", "value": "yes" }));
    let id = &caller.record.user.identity;
    let user = id
        .name
        .clone()
        .or(id.email.clone())
        .unwrap_or(id.subject.clone());
    state.render(
        "logout.html",
        minijinja::context! {
            user => user,
            action => state.config.server.url("/oauth2/logout"),
            fields => fields,
        },
    )
}
