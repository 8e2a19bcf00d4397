//! A login with a provider as the routes see it: start it (a redirect to the provider, or the
//! broker's own sign-in form), complete it from the browser's return, or sign in on the broker's
//! form. Each kind answers for itself here, so the routes never ask which kind it is.

use std::sync::Arc;

use serde_json::{Map, Value};
use url::Url;

use super::error::{NotSupported, ProviderError, safe_code};
use super::firebase::{HANDOFF_MAX_AUTH_AGE, IdTokenError};
use super::{FirebaseClient, Flow, OidcClient, Provider, ProviderTokens};
use crate::crypto;

/// How a login starts.
pub enum LoginStart<'a> {
    /// Send the browser to the provider.
    Redirect(AuthorizationRequest),
    /// Show the broker's own sign-in form: the kind has no authorization endpoint for third
    /// parties, and no particular identity provider was asked for.
    SignInPage(HostedSignIn<'a>),
}

/// Where to send the browser, and what the login transaction keeps for its return.
pub struct AuthorizationRequest {
    /// The `state` the browser brings back: it keys the login transaction.
    pub state: String,
    pub url: String,
    /// OpenID Connect: the nonce the ID token must carry (empty for kinds without one).
    pub nonce: String,
    /// OpenID Connect: the PKCE verifier of the code exchange (empty for kinds without one).
    pub pkce_verifier: String,
    /// Firebase: the `sessionId` of `createAuthUri`, given back at `signInWithIdp`.
    pub session_id: Option<String>,
}

/// What the login transaction kept of its [`AuthorizationRequest`].
pub struct StartedLogin<'a> {
    pub nonce: &'a str,
    pub pkce_verifier: &'a str,
    pub session_id: Option<&'a str>,
}

/// The browser's return to `/auth/callback/{id}`.
pub struct CallbackResponse<'a> {
    pub code: Option<&'a str>,
    pub iss: Option<&'a str>,
    pub error: Option<&'a str>,
    /// The whole query string as the provider sent it.
    pub query: &'a str,
}

/// What an app's authorization request asks of the upstream sign-in (OpenID Connect Core §3.1.2.1):
/// passed on to OpenID Connect providers, which honour them; kinds without them ignore them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpstreamHints {
    /// `prompt=login`: sign in again even with a session at the provider.
    pub prompt_login: bool,
    pub max_age: Option<u64>,
    pub login_hint: Option<String>,
    /// Space-separated, each allowed for the app that asked.
    pub acr_values: Option<String>,
}

impl UpstreamHints {
    /// The authorization request's parameters for these hints.
    pub fn params(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.prompt_login {
            out.push(("prompt", "login".to_string()));
        }
        if let Some(age) = self.max_age {
            out.push(("max_age", age.to_string()));
        }
        if let Some(h) = &self.login_hint {
            out.push(("login_hint", h.clone()));
        }
        if let Some(a) = &self.acr_values {
            out.push(("acr_values", a.clone()));
        }
        out
    }
}

/// A sign-in the provider completed: the verified claims and the tokens it issued.
pub struct CompletedLogin {
    pub claims: Map<String, Value>,
    pub tokens: ProviderTokens,
}

/// The broker's own sign-in form, for a kind that has one (Firebase: email and password, and
/// the federated providers enabled in Firebase), and the sign-ins it offers.
pub struct HostedSignIn<'a> {
    client: &'a FirebaseClient,
}

impl HostedSignIn<'_> {
    /// The federated identity providers (`google.com`, …) the form offers.
    pub fn federated(&self) -> &[String] {
        &self.client.federated
    }

    /// Email and password, checked by the provider. A wrong password is
    /// [`super::ProviderErrorKind::Unauthorized`]; nothing else is.
    pub async fn with_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<CompletedLogin, ProviderError> {
        let tokens = self.client.sign_in_with_password(email, password).await?;
        let claims = self
            .client
            .verify_id_token(tokens.id_token.as_deref().unwrap_or_default(), None)
            .await?;
        Ok(CompletedLogin { claims, tokens })
    }

    /// An ID token the provider's own SDK obtained, handed in by the caller. Only a sign-in of
    /// the last five minutes is taken, so an old stolen ID token cannot become a fresh session.
    pub async fn verify_handoff(
        &self,
        id_token: &str,
    ) -> Result<Map<String, Value>, ProviderError> {
        self.client
            .verify_id_token(id_token, Some(HANDOFF_MAX_AUTH_AGE))
            .await
            .map_err(IdTokenError::from_caller)
    }
}

impl Provider {
    /// Starts a login: the provider's authorization request, or the broker's sign-in form.
    /// `idp` picks a federated identity provider where the kind offers several (Firebase).
    pub async fn start_login(
        &self,
        idp: Option<&str>,
        hints: &UpstreamHints,
    ) -> Result<LoginStart<'_>, ProviderError> {
        match &self.flow {
            Flow::Oidc(client) => start_oidc(client, hints).await.map(LoginStart::Redirect),
            Flow::Firebase(fb) => match idp {
                None => Ok(LoginStart::SignInPage(HostedSignIn { client: fb })),
                Some(idp) => start_firebase(fb, idp, &self.callback_url)
                    .await
                    .map(LoginStart::Redirect),
            },
        }
    }

    /// The broker's own sign-in form, if the kind has one.
    pub fn hosted_sign_in(&self) -> Result<HostedSignIn<'_>, NotSupported> {
        match &self.flow {
            Flow::Firebase(client) => Ok(HostedSignIn { client }),
            Flow::Oidc(_) => Err(NotSupported),
        }
    }

    /// Completes a login from the browser's return: the provider's verdict, then its tokens
    /// and the verified claims.
    pub async fn complete_login(
        self: &Arc<Self>,
        response: &CallbackResponse<'_>,
        started: &StartedLogin<'_>,
    ) -> Result<CompletedLogin, ProviderError> {
        match &self.flow {
            Flow::Oidc(client) => self.complete_oidc(client, response, started).await,
            Flow::Firebase(fb) => {
                provider_error(response.error)?;
                // signInWithIdp wants the whole URL the identity provider sent the browser to.
                let request_uri = format!("{}?{}", self.callback_url, response.query);
                let tokens = fb
                    .sign_in_with_idp(&request_uri, started.session_id)
                    .await?;
                let id_token = tokens.id_token.as_deref().unwrap_or_default();
                let claims = fb.verify_id_token(id_token, None).await?;
                Ok(CompletedLogin { claims, tokens })
            }
        }
    }

    /// The authorization code flow's end: RFC 9207 `iss`, the code exchange, then the ID token
    /// and userinfo. Tokens issued for a login that is then refused are revoked.
    async fn complete_oidc(
        self: &Arc<Self>,
        client: &OidcClient,
        response: &CallbackResponse<'_>,
        started: &StartedLogin<'_>,
    ) -> Result<CompletedLogin, ProviderError> {
        client.check_response_issuer(response.iss).await?;
        provider_error(response.error)?;
        let code = response.code.filter(|c| !c.is_empty()).ok_or_else(|| {
            ProviderError::bad_request(
                "invalid_request",
                "The sign-in response has no code. Start the login again.",
            )
        })?;
        let tokens = client.exchange_code(code, started.pkce_verifier).await?;
        match oidc_claims(client, &tokens, started.nonce).await {
            Ok(claims) => Ok(CompletedLogin { claims, tokens }),
            Err(e) => {
                // The code is spent, but what the provider issued for it is live: revoke it.
                self.discard_tokens(tokens);
                Err(e)
            }
        }
    }

    /// After a refused ID token the code is spent but the provider's tokens are live: revoke them
    /// (the refresh token, which takes its access tokens along, else the access token) in the
    /// background, so the error answer does not wait on the provider. Best effort: logged only.
    fn discard_tokens(self: &Arc<Self>, tokens: ProviderTokens) {
        let Flow::Oidc(_) = &self.flow else { return };
        let provider = self.clone();
        tokio::spawn(async move {
            let Flow::Oidc(client) = &provider.flow else {
                return;
            };
            let (token, hint) = match tokens.refresh_token.as_deref() {
                Some(rt) => (rt, "refresh_token"),
                None => (tokens.access_token.as_str(), "access_token"),
            };
            let outcome = tokio::time::timeout(
                std::time::Duration::from_secs(15),
                client.revoke_token(token, hint),
            )
            .await;
            match outcome {
                Ok(Ok(true)) => {
                    tracing::info!(provider = %provider.id, token = hint, "tokens of a refused sign-in revoked")
                }
                Ok(Ok(false)) => {
                    tracing::warn!(provider = %provider.id, "tokens of a refused sign-in stay live: the provider has no revocation endpoint")
                }
                Ok(Err(e)) => {
                    tracing::warn!(provider = %provider.id, reason = %e, "revoking the tokens of a refused sign-in failed")
                }
                Err(_) => {
                    tracing::warn!(provider = %provider.id, "revoking the tokens of a refused sign-in timed out")
                }
            }
        });
    }
}

/// An OpenID Connect authorization request: a fresh `state`, nonce and PKCE verifier.
async fn start_oidc(
    client: &OidcClient,
    hints: &UpstreamHints,
) -> Result<AuthorizationRequest, ProviderError> {
    let state = crypto::random_token(32);
    let nonce = crypto::random_token(32);
    let pkce_verifier = crypto::random_token(48);
    let url = client
        .authorization_url(
            &state,
            &nonce,
            &crypto::pkce_challenge(&pkce_verifier),
            &hints.params(),
        )
        .await?;
    Ok(AuthorizationRequest {
        state,
        url: url.to_string(),
        nonce,
        pkce_verifier,
        session_id: None,
    })
}

/// A federated sign-in through Firebase (`createAuthUri`) with one of its enabled providers.
async fn start_firebase(
    fb: &FirebaseClient,
    idp: &str,
    callback_url: &str,
) -> Result<AuthorizationRequest, ProviderError> {
    if !fb.federated.iter().any(|f| f == idp) {
        return Err(ProviderError::bad_request(
            "unknown_provider",
            "That sign-in method is not offered here.",
        ));
    }
    let auth = fb.create_auth_uri(idp, callback_url).await?;
    // Firebase generates the `state` the identity provider echoes back: it keys the transaction.
    let state = Url::parse(&auth.auth_uri)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.into_owned())
        })
        .filter(|s| s.len() >= 16)
        .ok_or_else(|| {
            ProviderError::upstream(
                "provider_error",
                "Firebase's sign-in address carries no state.",
                "createAuthUri: authUri without state",
            )
        })?;
    Ok(AuthorizationRequest {
        state,
        url: auth.auth_uri,
        nonce: String::new(),
        pkce_verifier: String::new(),
        session_id: auth.session_id,
    })
}

/// The ID token's verified claims, completed by userinfo where both speak.
async fn oidc_claims(
    client: &OidcClient,
    tokens: &ProviderTokens,
    nonce: &str,
) -> Result<Map<String, Value>, ProviderError> {
    let id_token = tokens.id_token.as_deref().ok_or_else(|| {
        ProviderError::upstream(
            "invalid_id_token",
            "The identity provider sent no ID token (is the openid scope allowed?).",
            "no id_token in token response",
        )
    })?;
    let mut claims = client.verify_id_token(id_token, nonce).await?;
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
    Ok(claims)
}

/// The provider's `error` on the browser's return: only its code is repeated.
fn provider_error(error: Option<&str>) -> Result<(), ProviderError> {
    let Some(error) = error else { return Ok(()) };
    let safe = safe_code(error);
    let message = if safe == "access_denied" {
        "Sign-in was cancelled or denied at the identity provider.".to_string()
    } else {
        format!("The identity provider could not sign you in ({safe}).")
    };
    Err(ProviderError::bad_request("provider_error", message))
}
