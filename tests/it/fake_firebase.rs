//! A stand-in for Firebase's Identity Toolkit and securetoken services that signs its ID tokens
//! (RS256, with a key set served with Cache-Control), plus a federated identity provider behind
//! `createAuthUri` — the path the real emulator answers with 501.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use oidc_broker::jose::RsaSigner;
use serde_json::{Value, json};

pub const PROJECT: &str = "demo-fake";
pub const API_KEY: &str = "fake-api-key";

struct Shared {
    signer: RsaSigner,
    base: String,
    /// createAuthUri state → (continueUri, sessionId)
    pending: Mutex<HashMap<String, (String, String)>>,
    key_fetches: Mutex<u32>,
    /// What the key set answers: 200, or a failure status.
    keys_status: Mutex<u16>,
    /// securetoken: the subject of refreshed ID tokens, instead of the refresh token's own.
    refresh_subject: Mutex<Option<String>>,
}

#[derive(Clone)]
pub struct FakeFirebase {
    pub host: String,
    pub base: String,
    shared: Arc<Shared>,
}

impl FakeFirebase {
    pub async fn start() -> FakeFirebase {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let host = listener.local_addr().unwrap().to_string();
        let base = format!("http://{host}");
        let shared = Arc::new(Shared {
            signer: RsaSigner::generate("fb-key-1").unwrap(),
            base: base.clone(),
            pending: Mutex::new(HashMap::new()),
            key_fetches: Mutex::new(0),
            keys_status: Mutex::new(200),
            refresh_subject: Mutex::new(None),
        });
        let app = Router::new()
            .route("/identitytoolkit.googleapis.com/v1/{method}", post(toolkit))
            .route("/securetoken.googleapis.com/v1/token", post(securetoken))
            .route("/keys", get(keys))
            .route("/idp/authorize", get(idp_authorize))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeFirebase { host, base, shared }
    }

    /// A provider table pointing at this stand-in.
    pub fn provider_toml(&self, id: &str) -> String {
        format!(
            "[providers.{id}]\nkind = \"firebase\"\nproject_id = \"{PROJECT}\"\napi_key = \"{API_KEY}\"\nemulator_host = \"{}\"\nkeys_url = \"{}/keys\"\nfederated = [\"google.com\"]\n",
            self.host, self.base
        )
    }

    /// A Firebase ID token as Firebase would sign it, edited by `edit`.
    pub fn id_token(&self, sub: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut c = claims(sub, "password");
        edit(&mut c);
        self.shared.signer.sign(&c).unwrap()
    }

    /// A token with the same header (kid) but signed by another key.
    pub fn forged_token(&self, sub: &str) -> String {
        let other = RsaSigner::generate(self.shared.signer.kid()).unwrap();
        other.sign(&claims(sub, "password")).unwrap()
    }

    /// Makes the key set answer `status` (a failing Google key service).
    pub fn keys_answer(&self, status: u16) {
        *self.shared.keys_status.lock().unwrap() = status;
    }

    /// Makes securetoken answer refreshes with ID tokens for `sub` (someone else's).
    pub fn refresh_as(&self, sub: &str) {
        *self.shared.refresh_subject.lock().unwrap() = Some(sub.to_string());
    }

    pub fn key_fetches(&self) -> u32 {
        *self.shared.key_fetches.lock().unwrap()
    }
}

fn claims(sub: &str, provider: &str) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "iss": format!("https://securetoken.google.com/{PROJECT}"), "aud": PROJECT, "auth_time": now, "user_id": sub, "sub": sub,
        "iat": now, "exp": now + 3600, "email": format!("{sub}@example.test"), "email_verified": true, "name": "Test User",
        "firebase": {"identities": {"email": [format!("{sub}@example.test")]}, "sign_in_provider": provider},
    })
}

fn error(message: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": {"code": 400, "message": message, "errors": [{"message": message, "reason": "invalid"}]}}))).into_response()
}

fn signed_in(s: &Shared, sub: &str, provider: &str) -> Response {
    let token = s.signer.sign(&claims(sub, provider)).unwrap();
    Json(json!({"kind": "identitytoolkit#VerifyPasswordResponse", "localId": sub, "email": format!("{sub}@example.test"),
        "idToken": token, "registered": true, "refreshToken": format!("refresh-{sub}"), "expiresIn": "3600"}))
    .into_response()
}

async fn toolkit(
    State(s): State<Arc<Shared>>,
    axum::extract::Path(method): axum::extract::Path<String>,
    Query(q): Query<HashMap<String, String>>,
    Json(body): Json<Value>,
) -> Response {
    if q.get("key").map(String::as_str) != Some(API_KEY) {
        return error("API key not valid. Please pass a valid API key.");
    }
    match method.as_str() {
        "accounts:signInWithPassword" => {
            if body["email"] == "ada@example.test" && body["password"] == "right-password" {
                signed_in(&s, "ada", "password")
            } else {
                error("INVALID_LOGIN_CREDENTIALS")
            }
        }
        "accounts:createAuthUri" => {
            let state = oidc_broker::crypto::random_token(24);
            let session_id = oidc_broker::crypto::random_token(12);
            let cont = body["continueUri"].as_str().unwrap_or_default().to_string();
            s.pending
                .lock()
                .unwrap()
                .insert(state.clone(), (cont.clone(), session_id.clone()));
            let auth_uri = format!(
                "{}/idp/authorize?state={state}&redirect_uri={}",
                s.base,
                url::form_urlencoded::byte_serialize(cont.as_bytes()).collect::<String>()
            );
            Json(json!({"kind": "identitytoolkit#CreateAuthUriResponse", "authUri": auth_uri, "providerId": body["providerId"], "sessionId": session_id})).into_response()
        }
        "accounts:signInWithIdp" => {
            let request_uri = body["requestUri"].as_str().unwrap_or_default();
            let Ok(u) = url::Url::parse(request_uri) else {
                return error("INVALID_REQUEST_URI");
            };
            let param = |k: &str| {
                u.query_pairs()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.into_owned())
            };
            let Some((cont, session_id)) =
                param("state").and_then(|st| s.pending.lock().unwrap().remove(&st))
            else {
                return error("INVALID_IDP_RESPONSE");
            };
            let same_endpoint = request_uri.starts_with(&cont);
            if !same_endpoint
                || body["sessionId"].as_str() != Some(&session_id)
                || param("code").as_deref() != Some("idp-code")
            {
                return error("INVALID_IDP_RESPONSE");
            }
            signed_in(&s, "grace", "google.com")
        }
        _ => (StatusCode::NOT_IMPLEMENTED, "not in this stand-in").into_response(),
    }
}

async fn idp_authorize(Query(q): Query<HashMap<String, String>>) -> Response {
    let target = format!("{}?code=idp-code&state={}", q["redirect_uri"], q["state"]);
    Redirect::to(&target).into_response()
}

async fn securetoken(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    if q.get("key").map(String::as_str) != Some(API_KEY)
        || f.get("grant_type").map(String::as_str) != Some("refresh_token")
    {
        return error("INVALID_GRANT_TYPE");
    }
    let Some(sub) = f
        .get("refresh_token")
        .and_then(|r| r.strip_prefix("refresh-"))
    else {
        return error("INVALID_REFRESH_TOKEN");
    };
    let as_sub = s.refresh_subject.lock().unwrap().clone();
    let token = s
        .signer
        .sign(&claims(as_sub.as_deref().unwrap_or(sub), "password"))
        .unwrap();
    // securetoken answers in snake_case with expires_in as a string.
    Json(json!({"access_token": token, "expires_in": "3600", "token_type": "Bearer", "refresh_token": format!("refresh-{sub}"),
        "id_token": token, "user_id": sub, "project_id": "123456"}))
    .into_response()
}

async fn keys(State(s): State<Arc<Shared>>) -> Response {
    *s.key_fetches.lock().unwrap() += 1;
    let status = *s.keys_status.lock().unwrap();
    if status != 200 {
        return StatusCode::from_u16(status).unwrap().into_response();
    }
    (
        [(
            header::CACHE_CONTROL,
            "public, max-age=3600, must-revalidate, no-transform",
        )],
        Json(json!({"keys": [s.signer.jwk()]})),
    )
        .into_response()
}
