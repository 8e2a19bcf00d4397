//! The OpenID Connect relying party: discovery, the authorization request, the code exchange and
//! ID token validation. Every kind goes through here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreClientAuthMethod, CoreGenderClaim, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
};
use openidconnect::{
    AdditionalClaims, ClaimsVerificationError, ClientId, IdToken, IdTokenVerifier, IssuerUrl,
    Nonce, SignatureVerificationError,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, RwLock};
use url::Url;

use crate::clock::SharedClock;
use crate::config::{Config, ProviderConfig, ProviderKind};
use crate::error::{AppError, safe_code};
use crate::http_client::HttpClient;

pub use super::discovery::Metadata;

/// Allowed clock difference with providers, for `exp` and `iat`.
const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// An ID token from a code exchange is minted moments before; older ones are refused.
const MAX_ID_TOKEN_AGE: Duration = Duration::from_secs(600);
/// Unknown `kid`s trigger at most one re-discovery per this interval (so forged tokens cannot
/// make the broker hammer a provider).
const REDISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// Every claim, kept as JSON so mapping works the same for every kind.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RawClaims {
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}
impl AdditionalClaims for RawClaims {}

type BrokerIdToken =
    IdToken<RawClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

#[derive(Debug)]
pub struct RevokeError {
    /// A timeout or 5xx: worth retrying later.
    pub transient: bool,
    pub reason: String,
}

pub struct Discovered {
    pub metadata: Metadata,
    pub fetched_at: Instant,
    /// Where tokens are revoked (RFC 7009), when the provider says so anywhere.
    pub revocation: Option<Endpoint>,
    /// Where RP-initiated logout goes.
    pub end_session_endpoint: Option<Url>,
}

/// An endpoint and where the broker learnt it (for logs and readiness).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: Url,
    /// `config`, the provider's `kind`, `discovery`, or `rfc8414`.
    pub source: &'static str,
}

/// A provider's token endpoint answer. Read by hand rather than with oauth2's standard type
/// because providers differ (Firebase sends `expires_in` as a string).
#[derive(Clone, Deserialize)]
pub struct ProviderTokens {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub refresh_token: Option<String>,
    #[serde(default)]
    pub id_token: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl std::fmt::Debug for ProviderTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderTokens")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("has_id_token", &self.id_token.is_some())
            .finish_non_exhaustive()
    }
}

fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        N(u64),
        S(String),
    }
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::N(n)) => Ok(Some(n)),
        Some(NumOrStr::S(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

#[derive(Deserialize)]
struct TokenErrorBody {
    error: String,
}

/// The relying party for one provider of an OpenID Connect kind (oidc, auth0, cognito, dev).
pub struct OidcClient {
    pub id: String,
    pub kind: ProviderKind,
    pub issuer: IssuerUrl,
    pub redirect_uri: String,
    client_id: String,
    auth_params: Vec<(String, String)>,
    organization: Option<String>,
    /// Auth0 and Cognito: `https://{domain}`, where their logout and revocation endpoints live.
    domain_base: Option<String>,
    client_secret: Option<String>,
    scopes: Vec<String>,
    fetch_userinfo: bool,
    /// Explicit settings, for providers whose metadata lacks them.
    revocation_endpoint: Option<Url>,
    end_session_endpoint: Option<Url>,
    http: HttpClient,
    clock: SharedClock,
    discovered: RwLock<Option<Arc<Discovered>>>,
    /// Serialises discovery; holds when the last key-triggered re-discovery ran.
    discovery_gate: Mutex<Option<Instant>>,
}

impl OidcClient {
    pub fn new(
        id: &str,
        pc: &ProviderConfig,
        config: &Config,
        http: HttpClient,
        clock: SharedClock,
        dev_secret: Option<String>,
    ) -> Self {
        let issuer = match pc.kind {
            ProviderKind::Dev => config.server.url(&format!("/dev/{id}")),
            _ => pc.issuer.clone().unwrap_or_default(),
        };
        // Config validation guarantees a URL; an unparsable one fails discovery with a clear error.
        let issuer = IssuerUrl::new(issuer.clone())
            .unwrap_or_else(|_| IssuerUrl::from_url(config.server.public_url.clone()));
        OidcClient {
            id: id.to_string(),
            kind: pc.kind,
            issuer,
            auth_params: pc.auth_params.clone(),
            organization: pc.organization.clone(),
            domain_base: pc.domain_base.clone(),
            redirect_uri: config.server.url(&format!("/auth/callback/{id}")),
            client_id: pc.client_id.clone(),
            client_secret: pc
                .client_secret
                .as_ref()
                .map(|s| s.expose().to_string())
                .or(dev_secret),
            scopes: pc.scopes.clone(),
            fetch_userinfo: pc.fetch_userinfo,
            revocation_endpoint: pc.revocation_endpoint.clone(),
            end_session_endpoint: pc.end_session_endpoint.clone(),
            http,
            clock,
            discovered: RwLock::new(None),
            discovery_gate: Mutex::new(None),
        }
    }

    /// The provider's metadata and keys, discovering them on first use.
    pub async fn metadata(&self) -> Result<Arc<Discovered>, AppError> {
        if let Some(d) = self.discovered.read().await.clone() {
            return Ok(d);
        }
        let _gate = self.discovery_gate.lock().await;
        if let Some(d) = self.discovered.read().await.clone() {
            return Ok(d);
        }
        self.discover().await
    }

    async fn discover(&self) -> Result<Arc<Discovered>, AppError> {
        let metadata = super::discovery::discover(&self.http, self.issuer.as_str())
            .await
            .map_err(|e| {
                tracing::warn!(provider = %self.id, reason = %e, "discovery failed");
                if e.transient {
                    AppError::unavailable(&format!("identity provider `{}`", self.id), e)
                } else {
                    AppError::provider(
                        "provider_misconfigured",
                        format!(
                            "The identity provider `{}` cannot be used: its discovery document or keys are unusable.",
                            self.id
                        ),
                        e,
                    )
                }
            })?;
        let extra = metadata.additional_metadata();
        let mut revocation = self.fixed_revocation_endpoint().or_else(|| {
            extra
                .revocation_endpoint
                .clone()
                .filter(|u| self.acceptable_endpoint(u))
                .map(|url| Endpoint {
                    url,
                    source: "discovery",
                })
        });
        let mut end_session = self.end_session_endpoint.clone().or_else(|| {
            extra
                .end_session_endpoint
                .clone()
                .filter(|u| self.acceptable_endpoint(u))
        });
        // RFC 8414 metadata, when OpenID Connect discovery does not say where to revoke (the
        // built-in dev provider issues no refresh tokens: nothing to look for).
        if revocation.is_none()
            && self.kind != ProviderKind::Dev
            && let Some(m) = super::discovery::authorization_server_metadata(
                &self.http,
                &self.id,
                self.issuer.as_str(),
            )
            .await
        {
            revocation = m
                .revocation_endpoint
                .filter(|u| self.acceptable_endpoint(u))
                .map(|url| Endpoint {
                    url,
                    source: "rfc8414",
                });
            if end_session.is_none() {
                end_session = m
                    .end_session_endpoint
                    .filter(|u| self.acceptable_endpoint(u));
            }
        }
        let d = Arc::new(Discovered {
            metadata,
            fetched_at: Instant::now(),
            revocation,
            end_session_endpoint: end_session,
        });
        *self.discovered.write().await = Some(d.clone());
        tracing::info!(
            provider = %self.id,
            issuer = %self.issuer.as_str(),
            revocation = d.revocation.as_ref().map_or("none", |e| e.source),
            "provider discovered"
        );
        Ok(d)
    }

    /// A revocation endpoint known without metadata: the explicit setting, or the kind's own.
    fn fixed_revocation_endpoint(&self) -> Option<Endpoint> {
        if let Some(url) = &self.revocation_endpoint {
            return Some(Endpoint {
                url: url.clone(),
                source: "config",
            });
        }
        let path = match self.kind {
            ProviderKind::Auth0 => "/oauth/revoke",
            ProviderKind::Cognito => "/oauth2/revoke",
            _ => return None,
        };
        let url = Url::parse(&format!("{}{path}", self.domain_base.as_deref()?)).ok()?;
        Some(Endpoint {
            url,
            source: "kind",
        })
    }

    /// Metadata endpoints get the client secret or tokens: https, or the issuer's own scheme
    /// (plain http only ever for a loopback issuer in development, as config validation allows).
    fn acceptable_endpoint(&self, u: &Url) -> bool {
        u.scheme() == "https"
            || self
                .issuer
                .as_str()
                .starts_with(&format!("{}:", u.scheme()))
    }

    /// Whether this provider hands out refresh tokens: with `offline_access` (OpenID Connect Core
    /// §11), or always (Cognito's code flow).
    pub fn issues_refresh_tokens(&self) -> bool {
        match self.kind {
            ProviderKind::Dev | ProviderKind::Firebase => false,
            ProviderKind::Cognito => true,
            ProviderKind::Oidc | ProviderKind::Auth0 => {
                self.scopes.iter().any(|s| s == "offline_access")
            }
        }
    }

    /// What readiness reports: discovery's error, or warnings about a working provider.
    pub async fn check(&self) -> Result<Vec<String>, String> {
        let d = self
            .metadata()
            .await
            .map_err(|e| e.cause.unwrap_or(e.message))?;
        let mut warnings = Vec::new();
        if self.issues_refresh_tokens() && d.revocation.is_none() {
            warnings.push(
                "issues refresh tokens but has no revocation endpoint (neither in discovery nor in RFC 8414 metadata): they stay valid at the provider after logout; set revocation_endpoint if it has one"
                    .to_string(),
            );
        }
        Ok(warnings)
    }

    /// Re-discovers after an unknown signing key, at most once per [`REDISCOVERY_INTERVAL`].
    /// Returns `None` when the interval has not passed.
    pub(crate) async fn rediscover_for_unknown_key(
        &self,
        seen: &Arc<Discovered>,
    ) -> Result<Option<Arc<Discovered>>, AppError> {
        let mut gate = self.discovery_gate.lock().await;
        if let Some(current) = self.discovered.read().await.clone()
            && !Arc::ptr_eq(&current, seen)
        {
            return Ok(Some(current)); // someone else refreshed meanwhile
        }
        if gate.is_some_and(|last| last.elapsed() < REDISCOVERY_INTERVAL) {
            return Ok(None);
        }
        *gate = Some(Instant::now());
        tracing::info!(provider = %self.id, "unknown signing key: fetching the provider's keys again");
        self.discover().await.map(Some)
    }

    /// Client authentication at the token and revocation endpoints: HTTP Basic
    /// (`client_secret_basic`), or the credentials in the form (`client_secret_post`) when
    /// `in_body`; a public client sends only its id. Returns the Basic credentials, if any.
    fn client_auth<'a>(
        &'a self,
        form: &mut Vec<(&'a str, &'a str)>,
        in_body: bool,
    ) -> Option<(&'a str, &'a str)> {
        match self.client_secret.as_deref() {
            Some(secret) if !in_body => Some((self.client_id.as_str(), secret)),
            Some(secret) => {
                form.push(("client_id", &self.client_id));
                form.push(("client_secret", secret));
                None
            }
            None => {
                form.push(("client_id", &self.client_id));
                None
            }
        }
    }

    /// The URL the browser is sent to.
    pub async fn authorization_url(
        &self,
        state: &str,
        nonce: &str,
        code_challenge: &str,
    ) -> Result<Url, AppError> {
        let d = self.metadata().await?;
        let mut url: Url = d.metadata.authorization_endpoint().url().clone();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scopes.join(" "))
            .append_pair("state", state)
            .append_pair("nonce", nonce)
            .append_pair("code_challenge", code_challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in &self.auth_params {
            url.query_pairs_mut().append_pair(k, v);
        }
        Ok(url)
    }

    /// RFC 9207: `iss` in the authorization response must equal the issuer exactly; it must be
    /// present when the provider says it sends it.
    pub async fn check_response_issuer(&self, iss: Option<&str>) -> Result<(), AppError> {
        let d = self.metadata().await?;
        match iss {
            Some(iss) if iss == self.issuer.as_str() => Ok(()),
            Some(_) => Err(AppError::bad_request(
                "issuer_mismatch",
                "The sign-in response names a different identity provider than the one this login was started with (RFC 9207 iss parameter). Start the login again.",
            )),
            None if d
                .metadata
                .additional_metadata()
                .authorization_response_iss_parameter_supported
                == Some(true) =>
            {
                Err(AppError::bad_request(
                    "issuer_missing",
                    "The sign-in response lacks the iss parameter this provider promises to send. Start the login again.",
                ))
            }
            None => Ok(()),
        }
    }

    /// Exchanges an authorization code (with its PKCE verifier) at the token endpoint.
    pub async fn exchange_code(
        &self,
        code: &str,
        pkce_verifier: &str,
    ) -> Result<ProviderTokens, AppError> {
        let d = self.metadata().await?;
        let token_url = d
            .metadata
            .token_endpoint()
            .map(|u| u.url().clone())
            .ok_or_else(|| {
                AppError::provider(
                    "provider_misconfigured",
                    "The identity provider has no token endpoint.",
                    "no token_endpoint in discovery",
                )
            })?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", pkce_verifier),
        ];
        // client_secret_basic unless the provider only supports client_secret_post.
        let methods = d.metadata.token_endpoint_auth_methods_supported();
        let use_post = methods.is_some_and(|m| {
            !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && m.contains(&CoreClientAuthMethod::ClientSecretPost)
        });
        let basic = self.client_auth(&mut form, use_post);
        let resp = self
            .http
            .post_form(&token_url, &form, basic)
            .await
            .map_err(|e| super::transport_error(&self.id, e))?;
        parse_token_response(&self.id, resp)
    }

    /// Validates an ID token: signature by the provider's keys (re-fetched once on an unknown
    /// `kid`), an asymmetric algorithm the provider announces, `iss`, `aud`, `azp`, `exp`, `iat`, `nonce`.
    pub async fn verify_id_token(
        &self,
        raw: &str,
        nonce: &str,
    ) -> Result<Map<String, Value>, AppError> {
        let token: BrokerIdToken = raw.parse().map_err(|_| {
            AppError::provider(
                "invalid_id_token",
                "The identity provider sent an ID token that is not a well-formed JWT.",
                "unparsable id_token",
            )
        })?;
        self.verified_claims(&token, Some(nonce))
            .await?
            .map_err(id_token_error)
    }

    /// OpenID Connect Core §12.2: an ID token from a refresh is verified like the first one
    /// (signature, `iss`, `aud`/`azp`, `exp`, `iat`), but without a nonce, and its `sub` must be
    /// the session's. `Err` says why it was refused (never with the token).
    pub async fn verify_refreshed_id_token(&self, raw: &str, subject: &str) -> Result<(), String> {
        let token: BrokerIdToken = raw
            .parse()
            .map_err(|_| "it is not a well-formed JWT".to_string())?;
        let claims = self
            .verified_claims(&token, None)
            .await
            .map_err(|e| format!("it could not be checked: {}", e.message))?
            .map_err(|e| refusal_reason(&e).to_string())?;
        if claims.get("sub").and_then(Value::as_str) != Some(subject) {
            return Err("its subject (sub) is not the session's".into());
        }
        Ok(())
    }

    /// The claims once verified, re-fetching the provider's keys once on an unknown `kid`. The
    /// outer error is the provider being unusable; the inner one is the token refused.
    async fn verified_claims(
        &self,
        token: &BrokerIdToken,
        nonce: Option<&str>,
    ) -> Result<Result<Map<String, Value>, ClaimsVerificationError>, AppError> {
        let mut d = self.metadata().await?;
        let mut retried = false;
        loop {
            match self.check_claims(token, &d, nonce) {
                Err(ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                )) if !retried => {
                    retried = true;
                    match self.rediscover_for_unknown_key(&d).await? {
                        Some(fresh) => d = fresh,
                        None => {
                            return Ok(Err(ClaimsVerificationError::SignatureVerification(
                                SignatureVerificationError::NoMatchingKey,
                            )));
                        }
                    }
                }
                outcome => return Ok(outcome),
            }
        }
    }

    /// `nonce`: the login's, or `None` for a refreshed ID token (§12.2 has none to compare).
    fn check_claims(
        &self,
        token: &BrokerIdToken,
        d: &Discovered,
        nonce: Option<&str>,
    ) -> Result<Map<String, Value>, ClaimsVerificationError> {
        let clock = self.clock.clone();
        let clock_iat = self.clock.clone();
        let verifier = IdTokenVerifier::new_public_client(
            ClientId::new(self.client_id.clone()),
            self.issuer.clone(),
            d.metadata.jwks().clone(),
        )
        .set_allowed_algs(allowed_algs(&d.metadata))
        .set_time_fn(move || to_chrono(clock.now()) - chrono_skew())
        .set_issue_time_verifier_fn(move |iat| {
            let now = to_chrono(clock_iat.now());
            if iat > now + chrono_skew() {
                Err("issued in the future".into())
            } else if now - iat
                > chrono::Duration::from_std(MAX_ID_TOKEN_AGE + CLOCK_SKEW).unwrap_or_default()
            {
                Err("issued too long ago".into())
            } else {
                Ok(())
            }
        });
        let claims = match nonce {
            Some(n) => token.claims(&verifier, &Nonce::new(n.to_string()))?,
            None => token.claims(&verifier, |_: Option<&Nonce>| Ok(()))?,
        };
        let Ok(Value::Object(map)) = serde_json::to_value(claims) else {
            return Err(ClaimsVerificationError::Other(
                "claims are not an object".into(),
            ));
        };
        // The broker's one audience rule (openidconnect 4.1 checks `aud` but leaves `azp` out).
        if let Err(e) = super::audience::check(&map, &self.client_id) {
            return Err(ClaimsVerificationError::InvalidAudience(e.reason().into()));
        }
        match self.kind {
            // Cognito signs access tokens with the same keys; only an ID token may sign a user in.
            ProviderKind::Cognito if map.get("token_use").and_then(Value::as_str) != Some("id") => {
                return Err(ClaimsVerificationError::Other(
                    "token_use: not an ID token".into(),
                ));
            }
            // Auth0 Organizations: the token must be for the configured organization.
            ProviderKind::Auth0 if self.organization.is_some() => {
                let org = self.organization.as_deref();
                let matches = |claim: &str| map.get(claim).and_then(Value::as_str) == org;
                if !(matches("org_id") || matches("org_name")) {
                    return Err(ClaimsVerificationError::Other(
                        "organization: org_id is not the configured organization".into(),
                    ));
                }
            }
            _ => {}
        }
        Ok(map)
    }

    /// Claims from the userinfo endpoint, when configured and advertised; `sub` must match.
    pub async fn userinfo(
        &self,
        access_token: &str,
        subject: &str,
    ) -> Result<Option<Map<String, Value>>, AppError> {
        if !self.fetch_userinfo {
            return Ok(None);
        }
        let d = self.metadata().await?;
        let Some(endpoint) = d.metadata.userinfo_endpoint().map(|u| u.url().clone()) else {
            return Ok(None);
        };
        let resp = self
            .http
            .get(&endpoint, Some(access_token))
            .await
            .map_err(|e| super::transport_error(&self.id, e))?;
        if !resp.status().is_success() {
            return Err(AppError::provider(
                "userinfo_failed",
                "The identity provider refused the user information request.",
                format!("userinfo status {}", resp.status()),
            ));
        }
        let claims: Map<String, Value> = serde_json::from_slice(resp.body())
            .map_err(|_| AppError::provider("userinfo_failed", "The identity provider's user information is not a JSON object (signed userinfo is not supported).", "userinfo not JSON"))?;
        // OIDC Core §5.3.2: the userinfo `sub` must equal the ID token's.
        if claims.get("sub").and_then(Value::as_str) != Some(subject) {
            return Err(AppError::provider(
                "userinfo_failed",
                "The identity provider's user information is for a different user.",
                "userinfo sub mismatch",
            ));
        }
        Ok(Some(claims))
    }

    /// Verifies an OpenID Connect Back-Channel Logout token (§2.6): signed by the provider's keys
    /// (re-fetched once on an unknown `kid`) with an asymmetric algorithm, explicitly typed when
    /// `typ` is present, `iss` exact, `aud` this client, `iat` within the window, a `jti`, the
    /// back-channel `events` member, `sid` or `sub`, and no `nonce`. Replay (`jti`) is the caller's.
    pub async fn verify_logout_token(&self, raw: &str) -> Result<Map<String, Value>, String> {
        use jsonwebtoken::Algorithm as A;
        let header = jsonwebtoken::decode_header(raw)
            .map_err(|_| "the logout token is not a signed JWT".to_string())?;
        if let Some(typ) = header.typ.as_deref()
            && !typ.eq_ignore_ascii_case("logout+jwt")
            && !typ.eq_ignore_ascii_case("application/logout+jwt")
        {
            return Err(format!("typ `{typ}` is not logout+jwt"));
        }
        let asymmetric = [
            A::RS256,
            A::RS384,
            A::RS512,
            A::PS256,
            A::PS384,
            A::PS512,
            A::ES256,
            A::ES384,
            A::EdDSA,
        ];
        if !asymmetric.contains(&header.alg) {
            return Err("the logout token is not signed with an asymmetric algorithm".into());
        }
        let mut d = self.metadata().await.map_err(|e| e.message)?;
        let key =
            loop {
                let jwks: jsonwebtoken::jwk::JwkSet = serde_json::to_value(d.metadata.jwks())
                    .ok()
                    .and_then(|v| serde_json::from_value(v).ok())
                    .ok_or_else(|| "the provider's keys are unreadable".to_string())?;
                let found = match &header.kid {
                    Some(kid) => jwks.find(kid).cloned(),
                    None if jwks.keys.len() == 1 => jwks.keys.first().cloned(),
                    None => None,
                };
                match found {
                    Some(k) => break k,
                    None => match self
                        .rediscover_for_unknown_key(&d)
                        .await
                        .map_err(|e| e.message)?
                    {
                        Some(fresh) if !Arc::ptr_eq(&fresh, &d) => d = fresh,
                        _ => return Err(
                            "the logout token is signed with a key the provider does not publish"
                                .into(),
                        ),
                    },
                }
            };
        let key = jsonwebtoken::DecodingKey::from_jwk(&key)
            .map_err(|_| "the provider's key is unusable".to_string())?;
        let mut v = jsonwebtoken::Validation::new(header.alg);
        v.set_issuer(&[self.issuer.as_str()]);
        // `aud` is judged below by the same rule as ID tokens (jsonwebtoken accepts any list
        // that merely contains this client).
        v.validate_aud = false;
        v.validate_exp = false;
        v.required_spec_claims = ["iss", "aud", "iat"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let claims = jsonwebtoken::decode::<Map<String, Value>>(raw, &key, &v)
            .map_err(|e| format!("the logout token was refused: {}", logout_reason(e.kind())))?
            .claims;
        super::audience::check(&claims, &self.client_id)
            .map_err(|e| format!("the logout token was refused: {e}"))?;
        let now = self.clock.now().unix_timestamp();
        let skew = CLOCK_SKEW.as_secs() as i64;
        let iat = claims
            .get("iat")
            .and_then(Value::as_i64)
            .ok_or("iat is missing")?;
        if iat > now + skew || now - iat > MAX_ID_TOKEN_AGE.as_secs() as i64 + skew {
            return Err("iat is outside the accepted window".into());
        }
        if let Some(exp) = claims.get("exp").and_then(Value::as_i64)
            && exp <= now - skew
        {
            return Err("the logout token has expired".into());
        }
        if claims
            .get("jti")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err("jti is missing".into());
        }
        let event = claims
            .get("events")
            .and_then(|e| e.get("http://schemas.openid.net/event/backchannel-logout"));
        if !event.is_some_and(Value::is_object) {
            return Err("events lacks the back-channel logout event".into());
        }
        let has = |k: &str| {
            claims
                .get(k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        if !has("sid") && !has("sub") {
            return Err("neither sid nor sub is present".into());
        }
        if claims.contains_key("nonce") {
            return Err("a logout token must not carry a nonce".into());
        }
        Ok(claims)
    }

    /// The refresh grant. A 4xx answer (other than 429) is definitive — `invalid_grant` above all;
    /// a timeout or 5xx is transient.
    pub async fn refresh(
        &self,
        refresh_token: &str,
    ) -> Result<ProviderTokens, super::RefreshError> {
        let transient = |reason: String| super::RefreshError {
            definitive: false,
            reason,
        };
        let d = self.metadata().await.map_err(|e| transient(e.message))?;
        let token_url = d
            .metadata
            .token_endpoint()
            .map(|u| u.url().clone())
            .ok_or_else(|| transient("no token endpoint".into()))?;
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        let basic = self.client_auth(&mut form, false);
        let resp = self
            .http
            .post_form(&token_url, &form, basic)
            .await
            .map_err(|e| super::RefreshError {
                definitive: !e.is_transient(),
                reason: e.to_string(),
            })?;
        let status = resp.status();
        if status.is_success() {
            return serde_json::from_slice(resp.body())
                .map_err(|e| transient(format!("malformed refresh answer: {e}")));
        }
        let code = serde_json::from_slice::<TokenErrorBody>(resp.body())
            .map(|b| b.error)
            .unwrap_or_default();
        let code = safe_code(&code);
        let definitive = status.is_client_error() && status != http::StatusCode::TOO_MANY_REQUESTS;
        Err(super::RefreshError {
            definitive,
            reason: format!("refresh status {status} {code}"),
        })
    }

    /// Where tokens are revoked: the explicit setting, Auth0 `/oauth/revoke`, Cognito
    /// `/oauth2/revoke`, or the RFC 7009 `revocation_endpoint` of discovery or RFC 8414 metadata.
    pub async fn revocation_endpoint(&self) -> Option<Endpoint> {
        match self.fixed_revocation_endpoint() {
            Some(e) => Some(e),
            None => self.metadata().await.ok()?.revocation.clone(),
        }
    }

    /// Revokes a refresh token. `Ok(false)` when the provider offers no revocation.
    pub async fn revoke(&self, refresh_token: &str) -> Result<bool, RevokeError> {
        self.revoke_token(refresh_token, "refresh_token").await
    }

    /// Revokes a token (RFC 7009 §2.1 `token_type_hint`: `refresh_token` or `access_token`; HTTP
    /// Basic client authentication, Auth0's credentials in the body). `Ok(false)` when the
    /// provider offers no revocation.
    pub async fn revoke_token(&self, token: &str, hint: &str) -> Result<bool, RevokeError> {
        let Some(endpoint) = self.revocation_endpoint().await.map(|e| e.url) else {
            return Ok(false);
        };
        let mut form = vec![("token", token), ("token_type_hint", hint)];
        // Auth0 takes the client credentials in the body; RFC 7009 and Cognito use HTTP Basic.
        let basic = self.client_auth(&mut form, self.kind == ProviderKind::Auth0);
        let resp = self
            .http
            .post_form(&endpoint, &form, basic)
            .await
            .map_err(|e| RevokeError {
                transient: e.is_transient(),
                reason: e.to_string(),
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(true);
        }
        // RFC 7009 §2.2: an invalid token is not an error for revocation; it is already unusable.
        let body: serde_json::Value = serde_json::from_slice(resp.body()).unwrap_or_default();
        if status == http::StatusCode::BAD_REQUEST && body["error"] == "invalid_token" {
            return Ok(true);
        }
        Err(RevokeError {
            transient: status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS,
            reason: format!("revocation status {status}"),
        })
    }

    /// Where to send the browser for RP-initiated logout at the provider, if it has such a place:
    /// the configured `end_session_endpoint`, Cognito `/logout`, the `end_session_endpoint` of
    /// discovery or RFC 8414 metadata (OpenID Connect RP-Initiated Logout, with `id_token_hint` —
    /// the one token the specs put in a URL), or Auth0 `/v2/logout`.
    pub async fn logout_url(
        &self,
        id_token_hint: Option<&str>,
        post_logout_redirect_uri: &str,
    ) -> Option<String> {
        if let (ProviderKind::Cognito, Some(base), None) =
            (self.kind, &self.domain_base, &self.end_session_endpoint)
        {
            let mut u = Url::parse(&format!("{base}/logout")).ok()?;
            u.query_pairs_mut()
                .append_pair("client_id", &self.client_id)
                .append_pair("logout_uri", post_logout_redirect_uri);
            return Some(u.to_string());
        }
        let end_session = match &self.end_session_endpoint {
            Some(u) => Some(u.clone()),
            None => self
                .metadata()
                .await
                .ok()
                .and_then(|d| d.end_session_endpoint.clone()),
        };
        if let Some(mut u) = end_session {
            {
                let mut q = u.query_pairs_mut();
                if let Some(hint) = id_token_hint {
                    q.append_pair("id_token_hint", hint);
                }
                q.append_pair("post_logout_redirect_uri", post_logout_redirect_uri)
                    .append_pair("client_id", &self.client_id);
            }
            return Some(u.to_string());
        }
        if let (ProviderKind::Auth0, Some(base)) = (self.kind, &self.domain_base) {
            let mut u = Url::parse(&format!("{base}/v2/logout")).ok()?;
            u.query_pairs_mut()
                .append_pair("client_id", &self.client_id)
                .append_pair("returnTo", post_logout_redirect_uri);
            return Some(u.to_string());
        }
        None
    }

    /// For readiness: whether discovery succeeded (it is attempted when it has not).
    pub async fn ready(&self) -> bool {
        self.metadata().await.is_ok()
    }
}

fn parse_token_response(
    provider: &str,
    resp: http::Response<Vec<u8>>,
) -> Result<ProviderTokens, AppError> {
    if resp.status().is_success() {
        return serde_json::from_slice::<ProviderTokens>(resp.body()).map_err(|e| {
            AppError::provider(
                "token_exchange_failed",
                "The identity provider's token response is malformed.",
                format!("{provider}: token response: {e}"),
            )
        });
    }
    let code = serde_json::from_slice::<TokenErrorBody>(resp.body())
        .map(|b| b.error)
        .unwrap_or_else(|_| "unknown".into());
    // Only the OAuth error code is repeated; `error_description` can echo request data.
    let safe_code = safe_code(&code);
    Err(AppError::provider(
        "token_exchange_failed",
        format!("The identity provider refused the sign-in ({safe_code}). Start the login again."),
        format!(
            "{provider}: token endpoint status {} error {safe_code}",
            resp.status()
        ),
    ))
}

fn logout_reason(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::InvalidSignature => "its signature is invalid",
        K::InvalidIssuer => "it was issued by another issuer",
        K::InvalidAudience => "it is for another client (aud)",
        K::MissingRequiredClaim(_) => "a required claim (iss, aud, iat) is missing",
        K::InvalidAlgorithm => "its algorithm does not match the key",
        _ => "it is malformed",
    }
}

fn allowed_algs(m: &Metadata) -> Vec<CoreJwsSigningAlgorithm> {
    use CoreJwsSigningAlgorithm::*;
    let asymmetric = [
        RsaSsaPkcs1V15Sha256,
        RsaSsaPkcs1V15Sha384,
        RsaSsaPkcs1V15Sha512,
        RsaSsaPssSha256,
        RsaSsaPssSha384,
        RsaSsaPssSha512,
        EcdsaP256Sha256,
        EcdsaP384Sha384,
        EdDsa,
    ];
    let announced: Vec<_> = m
        .id_token_signing_alg_values_supported()
        .iter()
        .filter(|a| asymmetric.contains(a))
        .cloned()
        .collect();
    if announced.is_empty() {
        vec![RsaSsaPkcs1V15Sha256]
    } else {
        announced
    }
}

fn to_chrono(t: time::OffsetDateTime) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(t.unix_timestamp(), t.nanosecond()).unwrap_or_default()
}

fn chrono_skew() -> chrono::Duration {
    chrono::Duration::seconds(CLOCK_SKEW.as_secs() as i64)
}

fn id_token_error(e: ClaimsVerificationError) -> AppError {
    let reason = refusal_reason(&e);
    AppError::provider(
        "invalid_id_token",
        format!("The identity provider's ID token was refused: {reason}. Start the login again."),
        e,
    )
}

fn refusal_reason(e: &ClaimsVerificationError) -> &'static str {
    match e {
        // openidconnect reports the issue-time check as `Expired` with our message.
        ClaimsVerificationError::Expired(m) if m.starts_with("issued") => {
            "its issue time (iat) is out of range"
        }
        ClaimsVerificationError::Expired(_) => "it has expired",
        ClaimsVerificationError::InvalidAudience(_) => {
            "it was issued for another application (aud/azp)"
        }
        ClaimsVerificationError::InvalidIssuer(_) => "it was issued by another issuer",
        ClaimsVerificationError::Other(m) if m.starts_with("token_use") => {
            "it is not an ID token (token_use)"
        }
        ClaimsVerificationError::Other(m) if m.starts_with("organization") => {
            "it is for another organization (org_id)"
        }
        ClaimsVerificationError::InvalidNonce(_) => "its nonce does not match this login",
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_)
            | SignatureVerificationError::NoSignature,
        ) => "it is not signed with an accepted algorithm",
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey,
        ) => "it is signed with a key the provider does not publish",
        ClaimsVerificationError::SignatureVerification(_) => "its signature is invalid",
        ClaimsVerificationError::Other(m) if m.contains("issued") => {
            "its issue time (iat) is out of range"
        }
        _ => "its claims are invalid",
    }
}
