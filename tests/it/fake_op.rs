//! A fake OpenID Provider on loopback whose answers a test can bend: the ID token's header and
//! claims, the key it is signed with, the RFC 9207 `iss` parameter, key rotation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use oidc_broker::crypto::{b64url, pkce_challenge};
use oidc_broker::jose::RsaSigner;
use serde_json::{Value, json};

pub const CLIENT_ID: &str = "broker-client";
pub const CLIENT_SECRET: &str = "s3cret-for-tests";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum IssParam {
    Correct,
    Wrong,
    Missing,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SignWith {
    /// The first published key.
    Published,
    /// A key the JWKS never publishes, under a kid the JWKS does not know.
    UnknownKey,
    /// A key the JWKS does not publish, under the published key's kid (a forgery).
    ForgedUnderPublishedKid,
    /// `alg: none` and an empty signature.
    None,
}

pub type Tamper = Arc<dyn Fn(&mut Value, &mut Value) + Send + Sync>;
pub type DocumentEdit = Arc<dyn Fn(&mut Value) + Send + Sync>;

/// An ID token in refresh answers (OpenID Connect Core §12.2): signed as `sign_with` says, its
/// claims (`sub`, `aud`, …, and `"refreshed": true`) edited by `tamper`.
#[derive(Clone)]
pub struct RefreshIdToken {
    pub sign_with: SignWith,
    pub tamper: Option<Tamper>,
}

/// Where the fake publishes its revocation endpoint.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Revocation {
    /// In OpenID Connect discovery (the generic flavour's default).
    Discovery,
    /// Only in RFC 8414 metadata, at §3.1's URL (well-known segment before the issuer's path).
    Rfc8414Only,
    /// Only in RFC 8414 metadata whose `issuer` is someone else's.
    Rfc8414ForAnotherIssuer,
    /// Nowhere.
    Nowhere,
}

/// Whose quirks the fake reproduces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flavor {
    /// A plain issuer at the server root.
    Generic,
    /// Auth0: the issuer is the domain with a trailing slash; `/oauth/token`, `/.well-known/jwks.json`;
    /// custom claims are namespaced URLs.
    Auth0,
    /// Cognito: the issuer is `…/{user pool id}`; the hosted-UI endpoints live under `/oauth2/`;
    /// ID tokens carry `token_use`, `cognito:groups`, `cognito:username`; userinfo sends
    /// `email_verified` as a string.
    Cognito,
}

pub const COGNITO_POOL: &str = "us-east-1_TestPool1";

#[derive(Clone)]
pub struct Behaviour {
    pub iss_param: IssParam,
    pub advertise_iss: bool,
    pub sign_with: SignWith,
    /// Edits the header and the claims of the next ID tokens.
    pub tamper: Option<Tamper>,
    pub subject: String,
    /// What the revocation endpoint answers.
    pub revoke_status: u16,
    /// Refresh grant: rotate refresh tokens (Auth0 with rotation) or keep them (Cognito).
    pub rotate: bool,
    /// Refresh grant: a status to answer instead (503 for a passing failure).
    pub refresh_status: u16,
    /// Refresh grant: refuse with this OAuth error (e.g. invalid_grant).
    pub refresh_error: Option<&'static str>,
    /// Refresh grant: send an ID token too.
    pub refresh_id_token: Option<RefreshIdToken>,
    /// Where the revocation endpoint is published (generic flavour: discovery by default).
    pub revocation: Revocation,
    /// Edits the discovery document (to break it).
    pub discovery_edit: Option<DocumentEdit>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            iss_param: IssParam::Correct,
            advertise_iss: true,
            sign_with: SignWith::Published,
            tamper: None,
            subject: "user-1".into(),
            revoke_status: 200,
            rotate: true,
            refresh_status: 200,
            refresh_error: None,
            refresh_id_token: None,
            revocation: Revocation::Discovery,
            discovery_edit: None,
        }
    }
}

struct IssuedCode {
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
}

struct Shared {
    issuer: String,
    flavor: Flavor,
    base: String,
    last_authorize: Mutex<HashMap<String, String>>,
    signers: Mutex<Vec<Arc<RsaSigner>>>,
    outsider: RsaSigner,
    codes: Mutex<HashMap<String, IssuedCode>>,
    behaviour: Mutex<Behaviour>,
    revoked: Mutex<Vec<String>>,
    /// refresh token → (family, already used)
    refresh_tokens: Mutex<HashMap<String, (u32, bool)>>,
    revoked_families: Mutex<Vec<u32>>,
    refresh_calls: Mutex<u32>,
    reuse_detected: Mutex<bool>,
    pub token_calls: Mutex<u32>,
    /// Paths of RFC 8414 metadata requests.
    metadata_requests: Mutex<Vec<String>>,
    /// Revocation requests: (token, token_type_hint).
    revocations: Mutex<Vec<(String, String)>>,
    /// Every access token issued, in order (code and refresh grants).
    access_tokens: Mutex<Vec<String>>,
}

#[derive(Clone)]
pub struct FakeOp {
    pub issuer: String,
    /// `http://127.0.0.1:PORT`: the "domain" of Auth0 and Cognito fakes.
    pub base: String,
    shared: Arc<Shared>,
}

struct Layout {
    /// The issuer's path ("" at the root).
    issuer_path: String,
    revoke: String,
    discovery: String,
    authorize: String,
    token: String,
    jwks: String,
    userinfo: String,
}

impl Flavor {
    fn layout(self) -> Layout {
        let l = |d: &str, a: &str, t: &str, j: &str, u: &str| Layout {
            issuer_path: match self {
                Flavor::Cognito => format!("/{COGNITO_POOL}"),
                _ => String::new(),
            },
            discovery: d.into(),
            authorize: a.into(),
            token: t.into(),
            jwks: j.into(),
            userinfo: u.into(),
            revoke: match self {
                Flavor::Generic => "/revoke".into(),
                Flavor::Auth0 => "/oauth/revoke".into(),
                Flavor::Cognito => "/oauth2/revoke".into(),
            },
        };
        match self {
            Flavor::Generic => l(
                "/.well-known/openid-configuration",
                "/authorize",
                "/token",
                "/jwks",
                "/userinfo",
            ),
            Flavor::Auth0 => l(
                "/.well-known/openid-configuration",
                "/authorize",
                "/oauth/token",
                "/.well-known/jwks.json",
                "/userinfo",
            ),
            Flavor::Cognito => l(
                &format!("/{COGNITO_POOL}/.well-known/openid-configuration"),
                "/oauth2/authorize",
                "/oauth2/token",
                &format!("/{COGNITO_POOL}/.well-known/jwks.json"),
                "/oauth2/userInfo",
            ),
        }
    }
}

impl FakeOp {
    pub async fn start() -> FakeOp {
        Self::start_flavor(Flavor::Generic).await
    }

    pub async fn start_flavor(flavor: Flavor) -> FakeOp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = match flavor {
            Flavor::Generic => base.clone(),
            Flavor::Auth0 => format!("{base}/"),
            Flavor::Cognito => format!("{base}/{COGNITO_POOL}"),
        };
        let layout = flavor.layout();
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            flavor,
            base: base.clone(),
            last_authorize: Mutex::new(HashMap::new()),
            signers: Mutex::new(vec![Arc::new(RsaSigner::generate("key-1").unwrap())]),
            outsider: RsaSigner::generate("key-1").unwrap(),
            codes: Mutex::new(HashMap::new()),
            behaviour: Mutex::new(Behaviour::default()),
            token_calls: Mutex::new(0),
            revoked: Mutex::new(Vec::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
            revoked_families: Mutex::new(Vec::new()),
            refresh_calls: Mutex::new(0),
            reuse_detected: Mutex::new(false),
            metadata_requests: Mutex::new(Vec::new()),
            revocations: Mutex::new(Vec::new()),
            access_tokens: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route(&layout.discovery, get(discovery))
            .route(&layout.jwks, get(jwks))
            .route(&layout.authorize, get(authorize))
            .route(&layout.token, post(token))
            .route(&layout.userinfo, get(userinfo))
            .route(&layout.revoke, post(revoke))
            .route(
                "/.well-known/oauth-authorization-server",
                get(authorization_server_metadata),
            )
            .route(
                "/.well-known/oauth-authorization-server/{*rest}",
                get(authorization_server_metadata),
            );
        // An issuer with a path: also where the OpenID Connect style would look (and find nothing).
        let app = if layout.issuer_path.is_empty() {
            app
        } else {
            app.route(
                &format!(
                    "{}/.well-known/oauth-authorization-server",
                    layout.issuer_path
                ),
                get(authorization_server_metadata),
            )
        }
        .with_state(shared.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeOp {
            issuer,
            base,
            shared,
        }
    }

    /// The access token issued last (by the code or the refresh grant).
    pub fn last_access_token(&self) -> String {
        self.shared
            .access_tokens
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("an access token was issued")
    }

    pub fn refresh_calls(&self) -> u32 {
        *self.shared.refresh_calls.lock().unwrap()
    }

    /// Whether an already-rotated refresh token was ever presented (Auth0 then revokes the family).
    pub fn reuse_detected(&self) -> bool {
        *self.shared.reuse_detected.lock().unwrap()
    }

    /// Refresh tokens the provider was asked to revoke.
    pub fn revoked(&self) -> Vec<String> {
        self.shared.revoked.lock().unwrap().clone()
    }

    /// A back-channel logout token for the current subject and its `sid`, edited by `edit`
    /// (header, claims), signed with the published key.
    pub fn logout_token(&self, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let sub = self.shared.behaviour.lock().unwrap().subject.clone();
        let mut claims = json!({
            "iss": self.issuer, "aud": CLIENT_ID, "iat": now, "exp": now + 120, "jti": oidc_broker::crypto::random_token(12),
            "sub": sub, "sid": format!("sid-{sub}"), "events": {"http://schemas.openid.net/event/backchannel-logout": {}},
        });
        let signer = self.shared.signers.lock().unwrap()[0].clone();
        let mut header = json!({"alg": "RS256", "typ": "logout+jwt", "kid": signer.kid()});
        edit(&mut header, &mut claims);
        signer.sign_with_header(&header, &claims).unwrap()
    }

    /// A logout token signed by a key the provider does not publish, under its kid.
    pub fn forged_logout_token(&self) -> String {
        let good = self.logout_token(|_, _| {});
        let claims: Value = serde_json::from_slice(
            &oidc_broker::crypto::b64url_decode(good.split('.').nth(1).unwrap()).unwrap(),
        )
        .unwrap();
        let kid = self.shared.signers.lock().unwrap()[0].kid().to_string();
        self.shared
            .outsider
            .sign_with_header(
                &json!({"alg": "RS256", "typ": "logout+jwt", "kid": kid}),
                &claims,
            )
            .unwrap()
    }

    /// The query of the last authorization request.
    pub fn last_authorize(&self) -> HashMap<String, String> {
        self.shared.last_authorize.lock().unwrap().clone()
    }

    /// A `[providers.ID]` table for this provider.
    pub fn provider_toml(&self, id: &str) -> String {
        format!(
            "[providers.{id}]\nkind = \"oidc\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nfetch_userinfo = false\n",
            self.issuer
        )
    }

    pub fn behave(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.shared.behaviour.lock().unwrap());
    }

    pub fn tamper(&self, f: impl Fn(&mut Value, &mut Value) + Send + Sync + 'static) {
        self.behave(|b| b.tamper = Some(Arc::new(f)));
    }

    /// Replaces the signing key: the old key is no longer published.
    pub fn rotate_keys(&self) {
        let mut signers = self.shared.signers.lock().unwrap();
        let n = signers.len() + 1;
        *signers = vec![Arc::new(RsaSigner::generate(format!("key-{n}")).unwrap())];
    }

    pub fn token_calls(&self) -> u32 {
        *self.shared.token_calls.lock().unwrap()
    }

    /// The paths at which RFC 8414 metadata was asked for.
    pub fn metadata_requests(&self) -> Vec<String> {
        self.shared.metadata_requests.lock().unwrap().clone()
    }

    /// Every accepted revocation: (token, token_type_hint).
    pub fn revocations(&self) -> Vec<(String, String)> {
        self.shared.revocations.lock().unwrap().clone()
    }
}

/// RFC 8414 metadata: served (at §3.1's URL only) when the behaviour says so.
async fn authorization_server_metadata(
    State(s): State<Arc<Shared>>,
    uri: axum::http::Uri,
) -> Response {
    s.metadata_requests
        .lock()
        .unwrap()
        .push(uri.path().to_string());
    let layout = s.flavor.layout();
    let expected = format!(
        "/.well-known/oauth-authorization-server{}",
        url::Url::parse(&s.issuer)
            .unwrap()
            .path()
            .trim_end_matches('/')
    );
    let issuer = match s.behaviour.lock().unwrap().revocation {
        Revocation::Rfc8414Only => s.issuer.clone(),
        Revocation::Rfc8414ForAnotherIssuer => "https://someone-else.example".to_string(),
        Revocation::Discovery | Revocation::Nowhere => {
            return StatusCode::NOT_FOUND.into_response();
        }
    };
    if uri.path() != expected {
        return StatusCode::NOT_FOUND.into_response();
    }
    let b = &s.base;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{b}{}", layout.authorize),
        "token_endpoint": format!("{b}{}", layout.token),
        "jwks_uri": format!("{b}{}", layout.jwks),
        "response_types_supported": ["code"],
        "revocation_endpoint": format!("{b}{}", layout.revoke),
    }))
    .into_response()
}

async fn discovery(State(s): State<Arc<Shared>>) -> Json<Value> {
    let behaviour = s.behaviour.lock().unwrap().clone();
    let advertise = behaviour.advertise_iss;
    let layout = s.flavor.layout();
    let b = &s.base;
    let revocation_in_discovery =
        s.flavor == Flavor::Generic && behaviour.revocation == Revocation::Discovery;
    let mut doc = json!({
        "issuer": s.issuer,
        "authorization_endpoint": format!("{b}{}", layout.authorize),
        "token_endpoint": format!("{b}{}", layout.token),
        "userinfo_endpoint": format!("{b}{}", layout.userinfo),
        "jwks_uri": format!("{b}{}", layout.jwks),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "authorization_response_iss_parameter_supported": advertise,
        "revocation_endpoint": if revocation_in_discovery { json!(format!("{b}{}", layout.revoke)) } else { Value::Null },
        "end_session_endpoint": if s.flavor == Flavor::Generic { json!(format!("{b}/logout")) } else { Value::Null },
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    });
    if let Some(edit) = &behaviour.discovery_edit {
        edit(&mut doc);
    }
    Json(doc)
}

async fn jwks(State(s): State<Arc<Shared>>) -> Json<Value> {
    let keys: Vec<Value> = s.signers.lock().unwrap().iter().map(|k| k.jwk()).collect();
    Json(json!({ "keys": keys }))
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if q.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
        || q.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    *s.last_authorize.lock().unwrap() = q.clone();
    let code = oidc_broker::crypto::random_token(16);
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    s.codes.lock().unwrap().insert(
        code.clone(),
        IssuedCode {
            nonce: q.get("nonce").cloned(),
            challenge: q.get("code_challenge").cloned().unwrap_or_default(),
            redirect_uri: redirect_uri.clone(),
        },
    );
    let mut target = url::Url::parse(&redirect_uri).unwrap();
    {
        let mut p = target.query_pairs_mut();
        p.append_pair("code", &code);
        if let Some(st) = q.get("state") {
            p.append_pair("state", st);
        }
        match s.behaviour.lock().unwrap().iss_param {
            IssParam::Correct => {
                p.append_pair("iss", &s.issuer);
            }
            IssParam::Wrong => {
                p.append_pair("iss", "https://attacker.example");
            }
            IssParam::Missing => {}
        }
    }
    Redirect::to(target.as_str()).into_response()
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    *s.token_calls.lock().unwrap() += 1;
    let expected = oidc_broker::http_client::basic_auth(CLIENT_ID, CLIENT_SECRET);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    if f.get("grant_type").map(String::as_str) == Some("refresh_token") {
        return refresh_grant(&s, f.get("refresh_token").cloned().unwrap_or_default());
    }
    let Some(issued) = f
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    let pkce_ok = f
        .get("code_verifier")
        .is_some_and(|v| pkce_challenge(v) == issued.challenge);
    if !pkce_ok || f.get("redirect_uri") != Some(&issued.redirect_uri) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    }
    let b = s.behaviour.lock().unwrap().clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "iss": s.issuer, "sub": b.subject, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "sid": format!("sid-{}", b.subject),
        "email": format!("{}@example.test", b.subject), "email_verified": true, "name": "Test User",
    });
    if let Some(n) = issued.nonce {
        claims["nonce"] = json!(n);
    }
    match s.flavor {
        Flavor::Generic => {}
        Flavor::Auth0 => {
            claims["https://example.com/roles"] = json!(["admin"]);
            claims["picture"] = json!("https://cdn.example.com/ada.png");
        }
        Flavor::Cognito => {
            claims["token_use"] = json!("id");
            claims["cognito:groups"] = json!(["staff"]);
            claims["cognito:username"] = json!(b.subject);
        }
    }
    let id_token = sign_id_token(s.as_ref(), b.sign_with, b.tamper.as_ref(), claims);
    let refresh_token = format!("rt-{}", oidc_broker::crypto::random_token(8));
    let family = s.refresh_tokens.lock().unwrap().len() as u32 + 1;
    s.refresh_tokens
        .lock()
        .unwrap()
        .insert(refresh_token.clone(), (family, false));
    s.access_tokens.lock().unwrap().push("at-fake".into());
    Json(json!({"access_token": "at-fake", "token_type": "Bearer", "expires_in": 300, "id_token": id_token, "refresh_token": refresh_token})).into_response()
}

fn sign_id_token(
    s: &Shared,
    sign_with: SignWith,
    tamper: Option<&Tamper>,
    mut claims: Value,
) -> String {
    let signer = s.signers.lock().unwrap()[0].clone();
    let mut header = json!({"alg": "RS256", "typ": "JWT", "kid": signer.kid()});
    if let Some(t) = tamper {
        t(&mut header, &mut claims);
    }
    match sign_with {
        SignWith::Published => signer.sign_with_header(&header, &claims).unwrap(),
        SignWith::ForgedUnderPublishedKid => s.outsider.sign_with_header(&header, &claims).unwrap(),
        SignWith::UnknownKey => {
            header["kid"] = json!("not-published");
            s.outsider.sign_with_header(&header, &claims).unwrap()
        }
        SignWith::None => {
            header["alg"] = json!("none");
            format!(
                "{}.{}.",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            )
        }
    }
}

/// The refresh grant, with Auth0's reuse detection: presenting a refresh token that was already
/// rotated revokes its whole family.
fn refresh_grant(s: &Shared, presented: String) -> Response {
    *s.refresh_calls.lock().unwrap() += 1;
    let b = s.behaviour.lock().unwrap().clone();
    if b.refresh_status != 200 {
        return (
            StatusCode::from_u16(b.refresh_status).unwrap(),
            Json(json!({"error": "temporarily_unavailable"})),
        )
            .into_response();
    }
    if let Some(e) = b.refresh_error {
        return (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response();
    }
    let mut tokens = s.refresh_tokens.lock().unwrap();
    let Some((family, used)) = tokens.get(&presented).cloned() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant"})),
        )
            .into_response();
    };
    if used {
        *s.reuse_detected.lock().unwrap() = true;
        s.revoked_families.lock().unwrap().push(family);
    }
    if used || s.revoked_families.lock().unwrap().contains(&family) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_grant", "error_description": "reused refresh token"})),
        )
            .into_response();
    }
    let access_token = format!("at-{}", oidc_broker::crypto::random_token(6));
    s.access_tokens.lock().unwrap().push(access_token.clone());
    let mut answer =
        json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 300});
    if b.rotate {
        tokens.insert(presented, (family, true));
        let next = format!("rt-{}", oidc_broker::crypto::random_token(8));
        tokens.insert(next.clone(), (family, false));
        answer["refresh_token"] = json!(next);
    }
    if let Some(r) = &b.refresh_id_token {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = json!({
            "iss": s.issuer, "sub": b.subject, "aud": CLIENT_ID, "iat": now, "exp": now + 300, "refreshed": true,
        });
        answer["id_token"] = json!(sign_id_token(s, r.sign_with, r.tamper.as_ref(), claims));
    }
    Json(answer).into_response()
}

/// RFC 7009 (Auth0 takes client credentials in the body, the others HTTP Basic).
async fn revoke(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let basic_ok = headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some(oidc_broker::http_client::basic_auth(CLIENT_ID, CLIENT_SECRET).as_str());
    let body_ok = f.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && f.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    let authed = if s.flavor == Flavor::Auth0 {
        body_ok
    } else {
        basic_ok
    };
    if !authed {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client"})),
        )
            .into_response();
    }
    let status = s.behaviour.lock().unwrap().revoke_status;
    if status != 200 {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    if let Some(t) = f.get("token") {
        s.revoked.lock().unwrap().push(t.clone());
        s.revocations.lock().unwrap().push((
            t.clone(),
            f.get("token_type_hint").cloned().unwrap_or_default(),
        ));
    }
    StatusCode::OK.into_response()
}

/// Only the Cognito flavour serves userinfo, with its string `email_verified`.
async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let bearer =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer at-fake");
    if s.flavor != Flavor::Cognito || !bearer {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let sub = s.behaviour.lock().unwrap().subject.clone();
    Json(json!({"sub": sub, "email": format!("{sub}@example.test"), "email_verified": "true", "username": sub})).into_response()
}
