//! Firebase Authentication. Firebase has no authorization endpoint for third parties, so the broker
//! drives its Identity Toolkit REST API: password sign-in, federated sign-in (`createAuthUri` →
//! the identity provider → `signInWithIdp`), and ID tokens obtained by the Firebase JS SDK.
//!
//! ID tokens are verified as Firebase documents: RS256 with a `kid` from Google's securetoken key
//! set (cached as its `Cache-Control` says), `iss = https://securetoken.google.com/{project}`,
//! `aud = project`, `sub` non-empty and at most 128 characters, `iat` and `auth_time` in the past.
//! With `emulator_host` (development, loopback only) the emulator's unsigned tokens are accepted —
//! only `alg: none` with an empty signature, never a signed token with a bad signature.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;
use url::Url;

use crate::clock::SharedClock;
use crate::config::FirebaseSettings;
use crate::crypto::b64url_decode;
use crate::error::{AppError, safe_code};
use crate::http_client::HttpClient;
use crate::providers::ProviderTokens;

const GOOGLE_KEYS: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";
const CLOCK_SKEW: i64 = 60;
const MIN_KEY_REFRESH: Duration = Duration::from_secs(10);
/// Firebase's own session-cookie pattern: only a recent sign-in may be turned into a session.
pub const HANDOFF_MAX_AUTH_AGE: i64 = 5 * 60;

struct KeyCache {
    keys: HashMap<String, Jwk>,
    expires: Instant,
    last_fetch: Option<Instant>,
}

pub struct FirebaseClient {
    pub id: String,
    pub project_id: String,
    pub issuer: String,
    pub emulator: bool,
    /// Providers enabled in Firebase, offered on the sign-in page.
    pub federated: Vec<String>,
    api_key: String,
    toolkit_base: String,
    securetoken_url: String,
    keys_url: String,
    /// Whether signed tokens can be checked: always outside the emulator; with the emulator only
    /// when a key set was configured (the emulator itself signs nothing and serves no keys).
    verifies_signatures: bool,
    admin: AdminAuth,
    http: HttpClient,
    clock: SharedClock,
    keys: Mutex<KeyCache>,
}

/// A Firebase ID token that did not verify, or could not be checked.
#[derive(Debug)]
pub enum IdTokenError {
    /// The token itself is wrong (signature, project, times, subject); the text says why.
    Refused(String),
    /// Google's keys could not be fetched or used: nothing is known about the token.
    ProviderFailed(AppError),
}

impl IdTokenError {
    /// For a token the caller handed in (the SDK hand-off): a refusal is the caller's fault, a
    /// 401 — never a 502, which monitoring and clients read as an outage.
    pub fn from_caller(self) -> AppError {
        match self {
            IdTokenError::Refused(why) => AppError::new(
                crate::error::ErrorKind::Unauthorized,
                "invalid_id_token",
                format!("The Firebase ID token was refused: {why}. Sign in again."),
            )
            .with_cause(format!("firebase id token: {why}")),
            IdTokenError::ProviderFailed(e) => e,
        }
    }

    pub fn reason(&self) -> String {
        match self {
            IdTokenError::Refused(why) => why.clone(),
            IdTokenError::ProviderFailed(e) => e.cause.clone().unwrap_or_else(|| e.message.clone()),
        }
    }
}

/// A token Firebase's own API just handed the broker: a refusal means the provider failed (502).
impl From<IdTokenError> for AppError {
    fn from(e: IdTokenError) -> Self {
        match e {
            IdTokenError::Refused(why) => AppError::provider(
                "invalid_id_token",
                format!("The Firebase ID token was refused: {why}."),
                format!("firebase id token: {why}"),
            ),
            IdTokenError::ProviderFailed(e) => e,
        }
    }
}

/// How the broker authenticates Identity Toolkit admin calls (revoking a user's sessions).
enum AdminAuth {
    None,
    /// The emulator takes `Authorization: Bearer owner` for admin calls.
    Emulator,
    ServiceAccount(ServiceAccount),
}

#[derive(Deserialize)]
struct ServiceAccountFile {
    client_email: String,
    private_key: String,
    #[serde(default = "google_token_uri")]
    token_uri: String,
}

fn google_token_uri() -> String {
    "https://oauth2.googleapis.com/token".into()
}

struct ServiceAccount {
    file: ServiceAccountFile,
    /// An access token and when it expires.
    cached: Mutex<Option<(String, i64)>>,
}

impl AdminAuth {
    fn from_settings(settings: &FirebaseSettings) -> Self {
        if settings.emulator_host.is_some() {
            return AdminAuth::Emulator;
        }
        let Some(path) = &settings.service_account_file else {
            return AdminAuth::None;
        };
        // Config validation read and parsed it already; a failure here means it changed since.
        match std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<ServiceAccountFile>(&t).ok())
        {
            Some(file) => AdminAuth::ServiceAccount(ServiceAccount {
                file,
                cached: Mutex::new(None),
            }),
            None => {
                tracing::error!(path = %path, "the Firebase service account file is unreadable; logout cannot revoke Firebase sessions");
                AdminAuth::None
            }
        }
    }
}

/// What Identity Toolkit's sign-in methods answer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignInResponse {
    id_token: String,
    refresh_token: Option<String>,
    expires_in: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthUri {
    pub auth_uri: String,
    pub session_id: Option<String>,
}

#[derive(Deserialize)]
struct GoogleError {
    error: GoogleErrorBody,
}

#[derive(Deserialize)]
struct GoogleErrorBody {
    message: String,
}

impl FirebaseClient {
    pub fn new(
        id: &str,
        settings: &FirebaseSettings,
        http: HttpClient,
        clock: SharedClock,
    ) -> Self {
        let (toolkit_base, securetoken_url) = match &settings.emulator_host {
            Some(host) => (
                format!("http://{host}/identitytoolkit.googleapis.com/v1"),
                format!("http://{host}/securetoken.googleapis.com/v1/token"),
            ),
            None => (
                "https://identitytoolkit.googleapis.com/v1".into(),
                "https://securetoken.googleapis.com/v1/token".into(),
            ),
        };
        FirebaseClient {
            id: id.to_string(),
            project_id: settings.project_id.clone(),
            issuer: format!("https://securetoken.google.com/{}", settings.project_id),
            emulator: settings.emulator_host.is_some(),
            federated: settings.federated.clone(),
            api_key: settings.api_key.clone(),
            toolkit_base,
            securetoken_url,
            verifies_signatures: settings.emulator_host.is_none() || settings.keys_url.is_some(),
            keys_url: settings
                .keys_url
                .clone()
                .unwrap_or_else(|| GOOGLE_KEYS.to_string()),
            http,
            clock,
            admin: AdminAuth::from_settings(settings),
            keys: Mutex::new(KeyCache {
                keys: HashMap::new(),
                expires: Instant::now(),
                last_fetch: None,
            }),
        }
    }

    fn toolkit_url(&self, method: &str) -> Result<Url, AppError> {
        let mut u = Url::parse(&format!("{}/accounts:{method}", self.toolkit_base))
            .map_err(AppError::internal)?;
        u.query_pairs_mut().append_pair("key", &self.api_key);
        Ok(u)
    }

    async fn toolkit(&self, method: &str, body: Value) -> Result<Value, AppError> {
        let url = self.toolkit_url(method)?;
        let resp = self
            .http
            .post_json(&url, &body, None)
            .await
            .map_err(|e| super::transport_error(&self.id, e))?;
        if resp.status().is_success() {
            return serde_json::from_slice(resp.body()).map_err(|_| {
                AppError::provider(
                    "provider_error",
                    "Firebase answered something unreadable.",
                    format!("{method}: not JSON"),
                )
            });
        }
        let code = serde_json::from_slice::<GoogleError>(resp.body())
            .map(|e| e.error.message)
            .unwrap_or_else(|_| format!("status {}", resp.status()));
        // Firebase messages are codes such as INVALID_LOGIN_CREDENTIALS, sometimes with " : detail".
        let code = safe_code(code.split(" : ").next().unwrap_or_default());
        Err(firebase_error(method, &code, resp.status()))
    }

    /// `accounts:signInWithPassword`: email and password, checked by Firebase.
    pub async fn sign_in_with_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<ProviderTokens, AppError> {
        let v = self
            .toolkit(
                "signInWithPassword",
                json!({"email": email, "password": password, "returnSecureToken": true}),
            )
            .await?;
        sign_in_tokens(v)
    }

    /// `accounts:createAuthUri`: where to send the browser for a federated provider.
    pub async fn create_auth_uri(
        &self,
        provider_id: &str,
        continue_uri: &str,
    ) -> Result<AuthUri, AppError> {
        let v = self
            .toolkit(
                "createAuthUri",
                json!({"providerId": provider_id, "continueUri": continue_uri}),
            )
            .await?;
        serde_json::from_value(v).map_err(|_| {
            AppError::provider(
                "provider_error",
                "Firebase did not say where to sign in.",
                "createAuthUri: no authUri",
            )
        })
    }

    /// `accounts:signInWithIdp`: finishes a federated sign-in from the URL the provider sent the
    /// browser back to.
    pub async fn sign_in_with_idp(
        &self,
        request_uri: &str,
        session_id: Option<&str>,
    ) -> Result<ProviderTokens, AppError> {
        let mut body = json!({"requestUri": request_uri, "returnSecureToken": true, "returnIdpCredential": true});
        if let Some(s) = session_id {
            body["sessionId"] = json!(s);
        }
        let v = self.toolkit("signInWithIdp", body).await?;
        sign_in_tokens(v)
    }

    /// securetoken `v1/token`: a new ID token for a refresh token. Fields are snake_case and
    /// `expires_in` is a string.
    pub async fn refresh(&self, refresh_token: &str) -> Result<ProviderTokens, AppError> {
        let mut url = Url::parse(&self.securetoken_url).map_err(AppError::internal)?;
        url.query_pairs_mut().append_pair("key", &self.api_key);
        let resp = self
            .http
            .post_form(
                &url,
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh_token),
                ],
                None,
            )
            .await
            .map_err(|e| super::transport_error(&self.id, e))?;
        if !resp.status().is_success() {
            let code = serde_json::from_slice::<GoogleError>(resp.body())
                .map(|e| e.error.message)
                .unwrap_or_default();
            let code = safe_code(&code);
            return Err(firebase_error("refresh", &code, resp.status()));
        }
        let tokens: ProviderTokens = serde_json::from_slice(resp.body()).map_err(|e| {
            AppError::provider(
                "provider_error",
                "Firebase's token refresh answer is malformed.",
                format!("securetoken: {e}"),
            )
        })?;
        Ok(tokens)
    }

    /// Revokes every Firebase session of a user (`accounts:update` with `validSince` = now): ID
    /// tokens issued before stop verifying at Firebase. Needs admin credentials: the emulator's, or
    /// a service account. `Ok(false)` when none are configured.
    pub async fn revoke_sessions(&self, uid: &str) -> Result<bool, AppError> {
        let bearer = match &self.admin {
            AdminAuth::None => return Ok(false),
            AdminAuth::Emulator => "owner".to_string(),
            AdminAuth::ServiceAccount(sa) => self.service_account_token(sa).await?,
        };
        let url = format!(
            "{}/projects/{}/accounts:update",
            self.toolkit_base, self.project_id
        );
        let body =
            json!({"localId": uid, "validSince": self.clock.now().unix_timestamp().to_string()});
        let url = Url::parse(&url).map_err(AppError::internal)?;
        let resp = self
            .http
            .post_json(&url, &body, Some(&bearer))
            .await
            .map_err(|e| super::transport_error(&self.id, e))?;
        if resp.status().is_success() {
            Ok(true)
        } else {
            Err(AppError::provider(
                "revocation_failed",
                "Firebase refused to revoke the sessions.",
                format!("accounts:update status {}", resp.status()),
            ))
        }
    }

    /// A Google OAuth access token for the service account (JWT bearer grant, RFC 7523), cached.
    async fn service_account_token(&self, sa: &ServiceAccount) -> Result<String, AppError> {
        let now = self.clock.now().unix_timestamp();
        let mut cached = sa.cached.lock().await;
        if let Some((token, exp)) = cached.as_ref()
            && *exp > now + 60
        {
            return Ok(token.clone());
        }
        let claims = json!({"iss": sa.file.client_email, "scope": "https://www.googleapis.com/auth/identitytoolkit", "aud": sa.file.token_uri, "iat": now, "exp": now + 3600});
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(sa.file.private_key.as_bytes())
            .map_err(AppError::internal)?;
        let assertion =
            jsonwebtoken::encode(&jsonwebtoken::Header::new(Algorithm::RS256), &claims, &key)
                .map_err(AppError::internal)?;
        let url = Url::parse(&sa.file.token_uri).map_err(AppError::internal)?;
        let resp = self
            .http
            .post_form(
                &url,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", &assertion),
                ],
                None,
            )
            .await
            .map_err(|e| super::transport_error(&self.id, e))?;
        if !resp.status().is_success() {
            return Err(AppError::provider(
                "revocation_failed",
                "Google refused the service account.",
                format!("token_uri status {}", resp.status()),
            ));
        }
        let tokens: ProviderTokens =
            serde_json::from_slice(resp.body()).map_err(AppError::internal)?;
        let exp = now
            + tokens
                .expires_in
                .and_then(|e| i64::try_from(e).ok())
                .unwrap_or(3600);
        *cached = Some((tokens.access_token.clone(), exp));
        Ok(tokens.access_token)
    }

    /// Verifies a Firebase ID token. `max_auth_age` bounds how long ago the user signed in.
    pub async fn verify_id_token(
        &self,
        token: &str,
        max_auth_age: Option<i64>,
    ) -> Result<Map<String, Value>, IdTokenError> {
        let refused = |why: &str| IdTokenError::Refused(why.to_string());
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refused("it is not a JWT"));
        };
        let header: Map<String, Value> = b64url_decode(h)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| refused("its header is unreadable"))?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let claims: Map<String, Value> = if alg == "none" && sig.is_empty() && self.emulator {
            b64url_decode(p)
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| refused("its claims are unreadable"))?
        } else if alg == "RS256" && self.verifies_signatures {
            let kid = header
                .get("kid")
                .and_then(Value::as_str)
                .ok_or_else(|| refused("it has no key id (kid)"))?;
            let jwk = self
                .key(kid)
                .await
                .map_err(IdTokenError::ProviderFailed)?
                .ok_or_else(|| refused("it is signed with a key Google does not publish"))?;
            let key = DecodingKey::from_jwk(&jwk).map_err(|_| {
                IdTokenError::ProviderFailed(AppError::provider(
                    "provider_error",
                    "Firebase publishes a signing key the broker cannot use.",
                    format!("firebase key {kid}: unusable"),
                ))
            })?;
            let mut v = Validation::new(Algorithm::RS256);
            // Time and audience are checked below with the broker's clock and exact rules.
            v.validate_exp = false;
            v.validate_aud = false;
            v.required_spec_claims.clear();
            jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v)
                .map_err(|_| refused("its signature is invalid"))?
                .claims
        } else {
            return Err(refused(if self.emulator {
                "it is not an unsigned emulator token"
            } else {
                "it is not signed with RS256"
            }));
        };
        self.check_claims(&claims, max_auth_age)
            .map_err(|why| refused(&why))?;
        Ok(claims)
    }

    fn check_claims(
        &self,
        c: &Map<String, Value>,
        max_auth_age: Option<i64>,
    ) -> Result<(), String> {
        let now = self.clock.now().unix_timestamp();
        let num = |k: &str| {
            c.get(k)
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("it lacks `{k}`"))
        };
        if c.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("it was issued for another project (iss)".into());
        }
        let aud_ok = match c.get("aud") {
            Some(Value::String(a)) => *a == self.project_id,
            _ => false,
        };
        if !aud_ok {
            return Err("it was issued for another project (aud)".into());
        }
        if num("exp")? <= now - CLOCK_SKEW {
            return Err("it has expired".into());
        }
        if num("iat")? > now + CLOCK_SKEW {
            return Err("it is issued in the future (iat)".into());
        }
        let auth_time = num("auth_time")?;
        if auth_time > now + CLOCK_SKEW {
            return Err("its sign-in time is in the future (auth_time)".into());
        }
        if let Some(max) = max_auth_age
            && now - auth_time > max
        {
            return Err("the sign-in is too old to start a session; sign in again".into());
        }
        match c.get("sub").and_then(Value::as_str) {
            Some(s) if !s.is_empty() && s.len() <= 128 => Ok(()),
            _ => Err("its subject (sub) is empty or too long".into()),
        }
    }

    /// The public key for `kid`, refreshing the cached set when it is stale or lacks the kid.
    async fn key(&self, kid: &str) -> Result<Option<Jwk>, AppError> {
        let mut cache = self.keys.lock().await;
        let stale = Instant::now() >= cache.expires;
        let unknown = !cache.keys.contains_key(kid);
        let may_fetch = cache
            .last_fetch
            .is_none_or(|t| t.elapsed() >= MIN_KEY_REFRESH);
        // A stale set is always fetched again; an unknown kid only at the throttled rate.
        if stale || (unknown && may_fetch) {
            let url = Url::parse(&self.keys_url).map_err(AppError::internal)?;
            let resp = self
                .http
                .get(&url, None)
                .await
                .map_err(|e| super::transport_error(&self.id, e))?;
            if !resp.status().is_success() {
                return Err(AppError::provider(
                    "provider_error",
                    "Firebase's key service failed; try again shortly.",
                    format!("keys status {}", resp.status()),
                ));
            }
            let max_age = resp
                .headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| {
                    v.split(',').find_map(|d| {
                        d.trim()
                            .strip_prefix("max-age=")
                            .and_then(|n| n.parse::<u64>().ok())
                    })
                })
                .unwrap_or(0);
            let set: jsonwebtoken::jwk::JwkSet =
                serde_json::from_slice(resp.body()).map_err(|e| {
                    AppError::provider(
                        "provider_error",
                        "Firebase's key service answered something unreadable.",
                        format!("keys: {e}"),
                    )
                })?;
            cache.keys = set
                .keys
                .into_iter()
                .filter_map(|k| k.common.key_id.clone().map(|id| (id, k)))
                .collect();
            cache.expires = Instant::now() + Duration::from_secs(max_age);
            cache.last_fetch = Some(Instant::now());
        }
        Ok(cache.keys.get(kid).cloned())
    }

    /// Firebase always issues refresh tokens; logout ends them only with admin credentials.
    pub fn warnings(&self) -> Vec<String> {
        match self.admin {
            AdminAuth::None => vec![
                "issues refresh tokens but cannot revoke them at logout: set service_account_file (logout revokes with validSince, which needs admin credentials)"
                    .into(),
            ],
            _ => Vec::new(),
        }
    }

    /// For readiness: Firebase needs no discovery; the emulator must answer.
    pub async fn ready(&self) -> bool {
        if !self.emulator {
            return true;
        }
        match Url::parse(&self.toolkit_base) {
            Ok(u) => self.http.get(&u, None).await.is_ok(),
            Err(_) => false,
        }
    }
}

fn sign_in_tokens(v: Value) -> Result<ProviderTokens, AppError> {
    let r: SignInResponse = serde_json::from_value(v).map_err(|_| {
        AppError::provider(
            "provider_error",
            "Firebase's sign-in answer has no ID token.",
            "sign-in: no idToken",
        )
    })?;
    Ok(ProviderTokens {
        access_token: r.id_token.clone(),
        token_type: Some("Bearer".into()),
        expires_in: r.expires_in.and_then(|s| s.parse().ok()),
        refresh_token: r.refresh_token,
        id_token: Some(r.id_token),
        scope: None,
    })
}

/// Identity Toolkit error codes, in words a person can act on.
fn firebase_error(method: &str, code: &str, status: http::StatusCode) -> AppError {
    let (kind_code, message) = match code {
        "INVALID_LOGIN_CREDENTIALS"
        | "INVALID_PASSWORD"
        | "EMAIL_NOT_FOUND"
        | "INVALID_EMAIL"
        | "MISSING_PASSWORD" => (
            "invalid_credentials",
            "The email or password is not right.".to_string(),
        ),
        "USER_DISABLED" => (
            "user_disabled",
            "This account has been disabled.".to_string(),
        ),
        "TOO_MANY_ATTEMPTS_TRY_LATER" => (
            "too_many_attempts",
            "Too many attempts. Try again later.".to_string(),
        ),
        "TOKEN_EXPIRED" | "INVALID_REFRESH_TOKEN" | "USER_NOT_FOUND" => (
            "invalid_grant",
            "The Firebase sign-in has ended; sign in again.".to_string(),
        ),
        "OPERATION_NOT_ALLOWED" => (
            "provider_error",
            "This sign-in method is not enabled in Firebase.".to_string(),
        ),
        other => (
            "provider_error",
            format!("Firebase refused the request ({other})."),
        ),
    };
    let cause = format!("firebase {method}: {code} ({status})");
    if status.is_server_error() || status == http::StatusCode::NOT_IMPLEMENTED {
        AppError::provider(
            "provider_error",
            format!("Firebase could not do this ({code})."),
            cause,
        )
    } else if kind_code == "invalid_credentials"
        || kind_code == "user_disabled"
        || kind_code == "too_many_attempts"
    {
        AppError::new(crate::error::ErrorKind::Unauthorized, kind_code, message).with_cause(cause)
    } else {
        AppError::provider(kind_code, message, cause)
    }
}
