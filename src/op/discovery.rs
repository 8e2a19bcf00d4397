//! OpenID Connect Discovery 1.0: the provider metadata at `/.well-known/openid-configuration`.

use serde_json::{Value, json};

use super::Op;
use crate::config::{ClientAuth, SCOPES};

pub fn metadata(op: &Op<'_>) -> Value {
    let url = |path: &str| format!("{}{path}", op.issuer);
    let mut methods: Vec<&str> = op.clients.values().map(|c| c.auth.as_str()).collect();
    methods.sort_unstable();
    methods.dedup();
    if methods.is_empty() {
        methods.push(ClientAuth::None.as_str());
    }
    let acr: Vec<&str> = op
        .clients
        .values()
        .flat_map(|c| c.acr_values.iter().map(String::as_str))
        .collect();
    let mut m = json!({
        "issuer": op.issuer,
        "authorization_endpoint": url("/oauth2/authorize"),
        "token_endpoint": url("/oauth2/token"),
        "userinfo_endpoint": url("/oauth2/userinfo"),
        "end_session_endpoint": url("/oauth2/logout"),
        "revocation_endpoint": url("/oauth2/revoke"),
        "jwks_uri": url("/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": methods,
        "revocation_endpoint_auth_methods_supported": methods,
        "scopes_supported": SCOPES,
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "azp", "sid",
            "at_hash", "name", "given_name", "family_name", "picture", "locale", "email",
            "email_verified"
        ],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "claims_parameter_supported": false,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "frontchannel_logout_supported": false,
    });
    if !acr.is_empty()
        && let Some(obj) = m.as_object_mut()
    {
        obj.insert("acr_values_supported".into(), json!(acr));
    }
    m
}
