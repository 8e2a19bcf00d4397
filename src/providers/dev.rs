//! The built-in `dev` provider: a small OpenID Provider served by the broker itself (discovery,
//! authorize with a "pick a test user" page, token, JWKS, userinfo, end-session), so that a fresh
//! checkout signs in with no account anywhere. The broker reaches it through the same generic OIDC
//! code path as any issuer. Refused in production by config validation.

// Handlers answer errors as ready responses; their size does not matter off the hot path.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::clock::SharedClock;
use crate::config::{Config, DevUser, ProviderKind};
use crate::crypto;
use crate::jose::RsaSigner;
use crate::templates::Templates;

const CODE_TTL_SECS: i64 = 60;
const TOKEN_TTL_SECS: i64 = 3600;

struct IssuedCode {
    user: DevUser,
    nonce: Option<String>,
    code_challenge: String,
    redirect_uri: String,
    expires_at: i64,
}

pub struct DevIdp {
    id: String,
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect_uri: String,
    users: Vec<DevUser>,
    signer: RsaSigner,
    codes: Mutex<HashMap<String, IssuedCode>>,
    access_tokens: Mutex<HashMap<String, (DevUser, i64)>>,
}

#[derive(Clone)]
pub struct DevState {
    idps: Arc<BTreeMap<String, Arc<DevIdp>>>,
    templates: Templates,
    clock: SharedClock,
}

/// Builds the dev identity providers of a config; returns them with each one's client secret.
pub fn build(
    config: &Config,
    templates: Templates,
    clock: SharedClock,
) -> Result<(DevState, BTreeMap<String, String>), String> {
    let mut idps = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    for (id, pc) in config
        .providers
        .iter()
        .filter(|(_, p)| p.kind == ProviderKind::Dev)
    {
        let secret = pc
            .client_secret
            .as_ref()
            .map(|s| s.expose().to_string())
            .unwrap_or_else(|| crypto::random_token(32));
        let signer = RsaSigner::generate(format!("dev-{}", crypto::random_hex(4)))
            .map_err(|e| e.to_string())?;
        secrets.insert(id.clone(), secret.clone());
        idps.insert(
            id.clone(),
            Arc::new(DevIdp {
                id: id.clone(),
                issuer: config.server.url(&format!("/dev/{id}")),
                client_id: pc.client_id.clone(),
                client_secret: secret,
                redirect_uri: config.server.url(&format!("/auth/callback/{id}")),
                users: pc.dev_users.clone(),
                signer,
                codes: Mutex::new(HashMap::new()),
                access_tokens: Mutex::new(HashMap::new()),
            }),
        );
    }
    Ok((
        DevState {
            idps: Arc::new(idps),
            templates,
            clock,
        },
        secrets,
    ))
}

pub fn router(state: DevState) -> Router {
    Router::new()
        .route("/dev/{id}/.well-known/openid-configuration", get(discovery))
        .route("/dev/{id}/jwks", get(jwks))
        .route(
            "/dev/{id}/authorize",
            get(authorize_page).post(authorize_submit),
        )
        .route("/dev/{id}/token", axum::routing::post(token))
        .route("/dev/{id}/userinfo", get(userinfo))
        .route("/dev/{id}/logout", get(end_session))
        .with_state(state)
}

fn idp(state: &DevState, id: &str) -> Result<Arc<DevIdp>, Response> {
    state
        .idps
        .get(id)
        .cloned()
        .ok_or_else(|| (StatusCode::NOT_FOUND, "no such dev provider").into_response())
}

async fn discovery(
    State(state): State<DevState>,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let idp = idp(&state, &id)?;
    let i = &idp.issuer;
    Ok(Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/authorize"),
        "token_endpoint": format!("{i}/token"),
        "userinfo_endpoint": format!("{i}/userinfo"),
        "jwks_uri": format!("{i}/jwks"),
        "end_session_endpoint": format!("{i}/logout"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "offline_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code"],
        "authorization_response_iss_parameter_supported": true,
        "claims_supported": ["sub", "email", "email_verified", "name", "groups"],
    }))
    .into_response())
}

async fn jwks(State(state): State<DevState>, Path(id): Path<String>) -> Result<Response, Response> {
    let idp = idp(&state, &id)?;
    Ok(Json(json!({"keys": [idp.signer.jwk()]})).into_response())
}

#[derive(Debug, Deserialize)]
struct AuthorizeParams {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    /// Only on the form submission: which test user was picked.
    user: Option<String>,
}

/// Checks a request the way a strict provider does. Errors are shown, never redirected, because the
/// redirect URI itself may be what is wrong.
fn check_authorize(idp: &DevIdp, p: &AuthorizeParams) -> Result<(), String> {
    if p.client_id.as_deref() != Some(idp.client_id.as_str()) {
        return Err("unknown client_id".into());
    }
    if p.redirect_uri.as_deref() != Some(idp.redirect_uri.as_str()) {
        return Err("redirect_uri is not registered for this client".into());
    }
    if p.response_type.as_deref() != Some("code") {
        return Err("only response_type=code is supported".into());
    }
    if p.code_challenge_method.as_deref() != Some("S256")
        || p.code_challenge.as_deref().is_none_or(str::is_empty)
    {
        return Err("PKCE with S256 is required".into());
    }
    if !p
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .any(|s| s == "openid")
    {
        return Err("the openid scope is required".into());
    }
    Ok(())
}

async fn authorize_page(
    State(state): State<DevState>,
    Path(id): Path<String>,
    Query(p): Query<AuthorizeParams>,
) -> Result<Response, Response> {
    let idp = idp(&state, &id)?;
    if let Err(e) = check_authorize(&idp, &p) {
        return Err((StatusCode::BAD_REQUEST, format!("dev provider: {e}")).into_response());
    }
    let hidden: Vec<(&str, String)> = [
        ("response_type", &p.response_type),
        ("client_id", &p.client_id),
        ("redirect_uri", &p.redirect_uri),
        ("scope", &p.scope),
        ("state", &p.state),
        ("nonce", &p.nonce),
        ("code_challenge", &p.code_challenge),
        ("code_challenge_method", &p.code_challenge_method),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
    .collect();
    let page = state
        .templates
        .render(
            "dev_login.html",
            minijinja::context! { provider => idp.id.clone(), users => idp.users.clone(), hidden => hidden },
        )
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e).into_response())?;
    Ok(Html(page).into_response())
}

async fn authorize_submit(
    State(state): State<DevState>,
    Path(id): Path<String>,
    Form(p): Form<AuthorizeParams>,
) -> Result<Response, Response> {
    let idp = idp(&state, &id)?;
    if let Err(e) = check_authorize(&idp, &p) {
        return Err((StatusCode::BAD_REQUEST, format!("dev provider: {e}")).into_response());
    }
    let Some(user) = idp
        .users
        .iter()
        .find(|u| Some(&u.sub) == p.user.as_ref())
        .cloned()
    else {
        return Err((
            StatusCode::BAD_REQUEST,
            "dev provider: pick one of the listed users",
        )
            .into_response());
    };
    let code = crypto::random_token(32);
    let now = state.clock.now().unix_timestamp();
    if let Ok(mut codes) = idp.codes.lock() {
        codes.retain(|_, c| c.expires_at > now);
        codes.insert(
            crypto::sha256_b64(&code),
            IssuedCode {
                user,
                nonce: p.nonce.clone(),
                code_challenge: p.code_challenge.clone().unwrap_or_default(),
                redirect_uri: idp.redirect_uri.clone(),
                expires_at: now + CODE_TTL_SECS,
            },
        );
    }
    let mut target = url::Url::parse(&idp.redirect_uri)
        .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "bad redirect uri").into_response())?;
    {
        let mut q = target.query_pairs_mut();
        q.append_pair("code", &code);
        if let Some(s) = &p.state {
            q.append_pair("state", s);
        }
        q.append_pair("iss", &idp.issuer);
    }
    Ok(Redirect::to(target.as_str()).into_response())
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

fn token_error(status: StatusCode, error: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": error })),
    )
        .into_response()
}

/// Client credentials from HTTP Basic or the form body.
fn client_credentials(headers: &HeaderMap, form: &TokenForm) -> Option<(String, String)> {
    use base64::Engine;
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (id, secret) = raw.split_once(':')?;
        let dec = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
        };
        return Some((dec(id)?, dec(secret)?));
    }
    Some((form.client_id.clone()?, form.client_secret.clone()?))
}

async fn token(
    State(state): State<DevState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<TokenForm>,
) -> Result<Response, Response> {
    let idp = idp(&state, &id)?;
    let Some((cid, secret)) = client_credentials(&headers, &form) else {
        return Ok(token_error(StatusCode::UNAUTHORIZED, "invalid_client"));
    };
    if !crypto::constant_time_eq(&cid, &idp.client_id)
        || !crypto::constant_time_eq(&secret, &idp.client_secret)
    {
        return Ok(token_error(StatusCode::UNAUTHORIZED, "invalid_client"));
    }
    if form.grant_type.as_deref() != Some("authorization_code") {
        return Ok(token_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ));
    }
    let now = state.clock.now().unix_timestamp();
    let issued = form.code.as_deref().and_then(|c| {
        idp.codes
            .lock()
            .ok()
            .and_then(|mut codes| codes.remove(&crypto::sha256_b64(c)))
    });
    let Some(issued) = issued.filter(|c| c.expires_at > now) else {
        return Ok(token_error(StatusCode::BAD_REQUEST, "invalid_grant"));
    };
    let verifier_ok = form.code_verifier.as_deref().is_some_and(|v| {
        crypto::constant_time_eq(&crypto::pkce_challenge(v), &issued.code_challenge)
    });
    if !verifier_ok || form.redirect_uri.as_deref() != Some(issued.redirect_uri.as_str()) {
        return Ok(token_error(StatusCode::BAD_REQUEST, "invalid_grant"));
    }
    let u = &issued.user;
    let mut claims = json!({
        "iss": idp.issuer, "sub": u.sub, "aud": idp.client_id, "iat": now, "exp": now + TOKEN_TTL_SECS,
        "auth_time": now, "email": u.email, "email_verified": u.email_verified, "name": u.name, "groups": u.groups,
    });
    if let Some(n) = &issued.nonce {
        claims["nonce"] = json!(n);
    }
    let id_token = idp
        .signer
        .sign(&claims)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())?;
    let access_token = crypto::random_token(32);
    if let Ok(mut tokens) = idp.access_tokens.lock() {
        tokens.retain(|_, (_, exp)| *exp > now);
        tokens.insert(
            crypto::sha256_b64(&access_token),
            (issued.user.clone(), now + TOKEN_TTL_SECS),
        );
    }
    Ok((
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"access_token": access_token, "token_type": "Bearer", "expires_in": TOKEN_TTL_SECS, "id_token": id_token})),
    )
        .into_response())
}

async fn userinfo(
    State(state): State<DevState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let idp = idp(&state, &id)?;
    let now = state.clock.now().unix_timestamp();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let user = token.and_then(|t| {
        idp.access_tokens.lock().ok().and_then(|m| {
            m.get(&crypto::sha256_b64(t))
                .filter(|(_, exp)| *exp > now)
                .map(|(u, _)| u.clone())
        })
    });
    match user {
        Some(u) => Ok(Json(json!({"sub": u.sub, "email": u.email, "email_verified": u.email_verified, "name": u.name, "groups": u.groups})).into_response()),
        None => Ok((StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")]).into_response()),
    }
}

#[derive(Deserialize)]
struct EndSessionParams {
    post_logout_redirect_uri: Option<String>,
}

async fn end_session(
    State(state): State<DevState>,
    Path(id): Path<String>,
    Query(p): Query<EndSessionParams>,
) -> Result<Response, Response> {
    let idp = idp(&state, &id)?;
    // Only the broker's own pages are valid targets.
    let base = url::Url::parse(idp.issuer.trim_end_matches(&format!("/dev/{}", idp.id))).ok();
    let target = base
        .as_ref()
        .zip(p.post_logout_redirect_uri.as_deref())
        .and_then(|(base, u)| {
            crate::redirect::RedirectPolicy {
                public_url: base,
                allowed_origins: &[],
            }
            .judge(u)
            .ok()
        });
    match target {
        Some(u) => Ok(Redirect::to(u.as_str()).into_response()),
        None => Ok(Html(
            "<!doctype html><title>Signed out</title><p>Signed out of the dev provider.</p>",
        )
        .into_response()),
    }
}
