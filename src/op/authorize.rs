//! The authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1) checked, and what to
//! do with it given the browser's broker session: issue a code, answer `login_required`, or send
//! the person through the upstream sign-in first.
//!
//! Until the client and its exact redirect URI are known, a refusal is shown to the person and
//! never redirected (RFC 6749 §4.1.2.1): an open redirector would hand codes and errors to anyone.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use url::Url;

use super::{Op, OpError};
use crate::config::ClientConfig;
use crate::session::SessionRecord;

/// Longest `state`, `nonce` and `login_hint` kept: they are stored while the person signs in.
const MAX_STATE: usize = 1024;
const MAX_NONCE: usize = 512;
const MAX_HINT: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Prompt {
    /// Reuse a broker session, else sign in.
    Default,
    /// Never show anything: a code, or `login_required`.
    None,
    /// Sign in again, upstream too.
    Login,
}

/// A checked authorization request, as kept while the person signs in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// The granted scopes: those asked for that the client may have, `openid` first.
    pub scope: Vec<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt: Prompt,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// The requested acr values the client may ask for, space-separated.
    pub acr_values: Option<String>,
    /// A sign-in this request forced (`prompt=login`) happened after this time.
    #[serde(default)]
    pub fresh_after: Option<i64>,
}

/// A refusal once the client and redirect URI are known: sent back to the client.
#[derive(Debug)]
pub struct Redirected {
    pub url: String,
}

/// Why a request is refused: shown on a page, or redirected to the client.
#[derive(Debug)]
pub enum Refusal {
    Page(OpError),
    Redirect(Redirected),
}

/// What the request needs, given the browser's session.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    Issue,
    /// `prompt=none` and no session that will do.
    LoginRequired,
    /// Sign in upstream, then come back.
    SignIn,
}

/// The request's parameters, each at most once (RFC 6749 §3.1).
struct Params<'p>(&'p [(String, String)]);

impl<'p> Params<'p> {
    fn get(&self, name: &str) -> Result<Option<&'p str>, ()> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next().map(|(_, v)| v.as_str());
        if found.next().is_some() {
            return Err(());
        }
        Ok(first.filter(|v| !v.is_empty()))
    }
}

/// `redirect_uri` with the response parameters added (`iss` per RFC 9207).
pub fn response_url(redirect_uri: &str, pairs: &[(&str, &str)], issuer: &str) -> String {
    let Ok(mut url) = Url::parse(redirect_uri) else {
        return redirect_uri.to_string();
    };
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in pairs {
            q.append_pair(k, v);
        }
        q.append_pair("iss", issuer);
    }
    url.to_string()
}

/// An OAuth error sent back to the client's redirect URI, with its `state`.
pub fn error_redirect(
    op: &Op<'_>,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Redirected {
    error_redirect_to(op.issuer, redirect_uri, state, error, description)
}

fn error_redirect_to(
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Redirected {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(s) = state {
        pairs.push(("state", s));
    }
    Redirected {
        url: response_url(redirect_uri, &pairs, issuer),
    }
}

/// The client and its exact redirect URI among `clients`, or a page-only refusal.
pub fn client_and_redirect_of<'a>(
    clients: &'a BTreeMap<String, ClientConfig>,
    pairs: &[(String, String)],
) -> Result<(&'a ClientConfig, String), OpError> {
    let p = Params(pairs);
    let dup = |name: &str| {
        OpError::page(
            "invalid_request",
            format!("The sign-in request names {name} more than once."),
        )
    };
    let client_id = p.get("client_id").map_err(|_| dup("client_id"))?;
    let Some(client) = client_id.and_then(|id| clients.get(id)) else {
        return Err(OpError::page(
            "unknown_client",
            "The app that sent you here is not registered with this sign-in service (unknown client_id). Its operator must add it as a [clients.ID] table.",
        ));
    };
    let redirect_uri = p.get("redirect_uri").map_err(|_| dup("redirect_uri"))?;
    match redirect_uri {
        Some(r) if client.redirect_uris.iter().any(|u| u == r) => Ok((client, r.to_string())),
        Some(_) => Err(OpError::page(
            "redirect_uri_not_registered",
            format!(
                "The page this app wants to return to (redirect_uri) is not registered for it. Its operator must add the exact URL to redirect_uris of [clients.{}].",
                client.id
            ),
        )),
        None => Err(OpError::page(
            "invalid_request",
            "The sign-in request has no redirect_uri.",
        )),
    }
}

/// Checks an authorization request; `Refusal::Redirect` carries the client's error redirect.
pub fn check(op: &Op<'_>, pairs: &[(String, String)]) -> Result<AuthRequest, Refusal> {
    check_with(op.clients, op.issuer, pairs)
}

/// [`check`] against `clients`, for an issuer.
pub fn check_with(
    clients: &BTreeMap<String, ClientConfig>,
    issuer: &str,
    pairs: &[(String, String)],
) -> Result<AuthRequest, Refusal> {
    let p = Params(pairs);
    let (client, redirect_uri) = client_and_redirect_of(clients, pairs).map_err(Refusal::Page)?;
    // `state` goes back with every error, so it is read first (a repeated one goes back unsent).
    let state = p.get("state").ok().flatten();
    let refuse = |error: &str, description: &str| {
        Refusal::Redirect(error_redirect_to(
            issuer,
            &redirect_uri,
            state.filter(|s| s.len() <= MAX_STATE),
            error,
            description,
        ))
    };
    let invalid = |what: &str| refuse("invalid_request", what);
    let get = |name: &str| {
        p.get(name)
            .map_err(|_| invalid(&format!("{name} is given more than once.")))
    };
    if state.is_some_and(|s| s.len() > MAX_STATE) {
        return Err(invalid("state is too long."));
    }
    if get("request")?.is_some() {
        return Err(refuse(
            "request_not_supported",
            "Request objects are not supported: send the parameters in the URL.",
        ));
    }
    if get("request_uri")?.is_some() {
        return Err(refuse(
            "request_uri_not_supported",
            "request_uri is not supported: send the parameters in the URL.",
        ));
    }
    match get("response_type")? {
        Some("code") => {}
        None => return Err(invalid("response_type is missing: set it to code.")),
        Some(_) => {
            return Err(refuse(
                "unsupported_response_type",
                "Only the authorization code flow is supported: set Response type to `code` (response_type=code).",
            ));
        }
    }
    if get("response_mode")?.is_some_and(|m| m != "query") {
        return Err(invalid("response_mode must be query (or left out)."));
    }
    let asked: Vec<&str> = get("scope")?.unwrap_or_default().split(' ').collect();
    if !asked.contains(&"openid") {
        return Err(refuse(
            "invalid_scope",
            "The scope must include openid, e.g. \"openid profile email offline_access\".",
        ));
    }
    let scope: Vec<String> = client
        .scopes
        .iter()
        .filter(|s| asked.contains(&s.as_str()))
        .cloned()
        .collect();
    let code_challenge = pkce(
        client,
        get("code_challenge")?,
        get("code_challenge_method")?,
    )
    .map_err(&invalid)?;
    let nonce = get("nonce")?;
    if nonce.is_some_and(|n| n.len() > MAX_NONCE) {
        return Err(invalid("nonce is too long."));
    }
    let prompt = prompt(get("prompt")?).map_err(&invalid)?;
    let max_age = match get("max_age")? {
        None => None,
        Some(m) => Some(
            m.parse::<i64>()
                .ok()
                .filter(|a| *a >= 0 && m.len() <= 10)
                .ok_or_else(|| invalid("max_age must be a number of seconds."))?,
        ),
    };
    let login_hint = get("login_hint")?;
    if login_hint.is_some_and(|h| h.len() > MAX_HINT || h.chars().any(char::is_control)) {
        return Err(invalid("login_hint is too long or not printable."));
    }
    // Only the acr values the client may ask for travel upstream; others are voluntary and dropped.
    let acr: Vec<&str> = get("acr_values")?
        .unwrap_or_default()
        .split(' ')
        .filter(|a| client.acr_values.iter().any(|c| c == a))
        .collect();
    Ok(AuthRequest {
        client_id: client.id.clone(),
        redirect_uri,
        scope,
        state: state.map(str::to_string),
        nonce: nonce.map(str::to_string),
        code_challenge,
        prompt,
        max_age,
        login_hint: login_hint.map(str::to_string),
        acr_values: (!acr.is_empty()).then(|| acr.join(" ")),
        fresh_after: None,
    })
}

/// RFC 7636: S256 only; required of public clients.
fn pkce(
    client: &ClientConfig,
    challenge: Option<&str>,
    method: Option<&str>,
) -> Result<Option<String>, &'static str> {
    let Some(challenge) = challenge else {
        return match client.auth {
            crate::config::ClientAuth::None => {
                Err("code_challenge is required (PKCE with S256): this app is a public client.")
            }
            _ => Ok(None),
        };
    };
    if method != Some("S256") {
        return Err("code_challenge_method must be S256.");
    }
    let well_formed = challenge.len() == 43
        && challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Err("code_challenge must be 43 base64url characters (an S256 hash).");
    }
    Ok(Some(challenge.to_string()))
}

fn prompt(value: Option<&str>) -> Result<Prompt, &'static str> {
    let values: Vec<&str> = value
        .unwrap_or_default()
        .split(' ')
        .filter(|v| !v.is_empty())
        .collect();
    if values.contains(&"none") {
        return if values.len() == 1 {
            Ok(Prompt::None)
        } else {
            Err("prompt=none cannot be combined with other values.")
        };
    }
    // `consent` and `select_account` ask for nothing the broker shows: the apps are the
    // operator's own, and the chooser appears whenever there is a choice.
    if values
        .iter()
        .any(|v| !matches!(*v, "login" | "consent" | "select_account"))
    {
        return Err("prompt must be none, login, consent or select_account.");
    }
    Ok(if values.contains(&"login") {
        Prompt::Login
    } else {
        Prompt::Default
    })
}

/// Whether the browser's session (if any) answers this request.
pub fn decide(
    req: &AuthRequest,
    client: &ClientConfig,
    session: Option<&SessionRecord>,
    now: i64,
) -> Decision {
    let fits = session.is_some_and(|r| {
        let provider_ok = client.providers.contains(&r.user.identity.provider);
        let fresh_ok = match (req.prompt, req.fresh_after) {
            (Prompt::Login, Some(after)) => r.created_at >= after,
            (Prompt::Login, None) => false,
            _ => true,
        };
        let age_ok = req.max_age.is_none_or(|m| now - r.created_at <= m);
        provider_ok && fresh_ok && age_ok
    });
    match (fits, req.prompt) {
        (true, _) => Decision::Issue,
        (false, Prompt::None) => Decision::LoginRequired,
        (false, _) => Decision::SignIn,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn clients() -> BTreeMap<String, ClientConfig> {
        crate::config::from_toml_str(
            "[server]\nenvironment = \"development\"\n[providers.dev]\nkind = \"dev\"\n[clients.app]\nredirect_uris = [\"https://app.example/cb\"]\n",
            Vec::new(),
        )
        .map(|c| c.clients)
        .unwrap_or_default()
    }

    fn param() -> impl Strategy<Value = (String, String)> {
        let key = prop_oneof![
            Just("client_id"),
            Just("redirect_uri"),
            Just("response_type"),
            Just("scope"),
            Just("state"),
            Just("nonce"),
            Just("code_challenge"),
            Just("code_challenge_method"),
            Just("prompt"),
            Just("max_age"),
            Just("login_hint"),
            Just("acr_values"),
            Just("request"),
            Just("response_mode"),
        ];
        let value = prop_oneof![
            Just("app".to_string()),
            Just("https://app.example/cb".to_string()),
            Just("code".to_string()),
            Just("openid".to_string()),
            Just("S256".to_string()),
            Just("none".to_string()),
            Just("a".repeat(43)),
            "\\PC{0,40}",
        ];
        (key, value).prop_map(|(k, v)| (k.to_string(), v))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Whatever the request holds, the broker either shows a page, or answers the one
        /// registered redirect URI: never any other place.
        #[test]
        fn hostile_requests_never_redirect_anywhere_but_a_registered_uri(
            pairs in proptest::collection::vec(param(), 0..12)
        ) {
            let clients = clients();
            match check_with(&clients, "https://broker.example", &pairs) {
                Ok(req) => prop_assert_eq!(req.redirect_uri, "https://app.example/cb"),
                Err(Refusal::Page(_)) => {}
                Err(Refusal::Redirect(r)) => {
                    let url = url::Url::parse(&r.url).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(url.origin().ascii_serialization(), "https://app.example");
                    prop_assert_eq!(url.path(), "/cb");
                    prop_assert!(url.query_pairs().any(|(k, v)| k == "iss" && v == "https://broker.example"));
                    prop_assert!(url.query_pairs().any(|(k, _)| k == "error"));
                }
            }
        }
    }
}
