//! The tokens an app gets: the ID token (OpenID Connect Core §2, §3.1.3.6), the access token (a
//! broker JWT for the client's audience), the claims its scopes allow (ID token and userinfo
//! alike), and the token response (RFC 6749 §5.1).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Op, OpError, has_scope};
use crate::config::ClientConfig;
use crate::crypto;
use crate::identity::UserView;
use crate::session::SessionRecord;
use crate::tokens::broker_jwt::AccessClaims;

/// What one client was granted from one broker session: kept with the code, then with the grant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrantData {
    pub client_id: String,
    /// The broker session's public handle (`sid`).
    pub handle: String,
    pub user_id: String,
    pub scope: Vec<String>,
    pub redirect_uri: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub acr: Option<String>,
}

/// The answer of the token endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = OpTokenResponse)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub id_token: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// The identity claims `scope` allows (`profile`, `email`), beside `sub`.
pub fn user_claims(user: &UserView, scope: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    out.insert("sub".into(), json!(user.id));
    let id = &user.identity;
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            out.insert(k.into(), json!(v));
        }
    };
    if has_scope(scope, "profile") {
        put("name", &id.name);
        put("given_name", &id.given_name);
        put("family_name", &id.family_name);
        put("picture", &id.picture);
        put("locale", &id.locale);
    }
    if has_scope(scope, "email") {
        put("email", &id.email);
        if id.email.is_some() {
            out.insert("email_verified".into(), json!(id.email_verified));
        }
    }
    out
}

/// `at_hash`: the left half of the access token's SHA-256, base64url (Core §3.1.3.6).
pub fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    crypto::b64url(&digest[..16])
}

/// Signs the access and ID tokens of a grant for `record`'s current identity.
pub async fn issue(
    op: &Op<'_>,
    client: &ClientConfig,
    grant: &GrantData,
    grant_id: &str,
    record: &SessionRecord,
    refresh_token: Option<String>,
) -> Result<TokenResponse, OpError> {
    let now = op.now();
    let scope = grant.scope.join(" ");
    let mut access = AccessClaims::new(
        op.issuer,
        op.tokens,
        &record.user,
        &record.handle,
        now,
        record.idle_expires_at(op.session.policy),
    );
    let ttl = i64::try_from(client.access_token_ttl.as_secs()).unwrap_or(300);
    access.aud = client.audience.clone();
    access.exp = (now + ttl)
        .min(record.idle_expires_at(op.session.policy))
        .max(now + 1);
    if !has_scope(&grant.scope, "email") {
        access.email = None;
        access.email_verified = false;
    }
    if !has_scope(&grant.scope, "profile") {
        access.name = None;
        access.groups.clear();
    }
    access.client_id = Some(client.id.clone());
    access.scope = Some(scope.clone());
    access.gid = Some(grant_id.to_string());
    let access_token = op
        .keys
        .sign(op.session.store, op.session.vault, op.tokens, &access)
        .await?;
    let mut claims = user_claims(&record.user, &grant.scope);
    let id_ttl = i64::try_from(client.id_token_ttl.as_secs()).unwrap_or(3600);
    for (k, v) in [
        ("iss", json!(op.issuer)),
        ("aud", json!(client.id)),
        ("azp", json!(client.id)),
        ("iat", json!(now)),
        ("exp", json!(now + id_ttl)),
        ("auth_time", json!(grant.auth_time)),
        ("sid", json!(grant.handle)),
        ("at_hash", json!(at_hash(&access_token))),
    ] {
        claims.insert(k.into(), v);
    }
    if let Some(n) = &grant.nonce {
        claims.insert("nonce".into(), json!(n));
    }
    if let Some(a) = &grant.acr {
        claims.insert("acr".into(), json!(a));
    }
    let id_token = op
        .keys
        .sign_claims(
            op.session.store,
            op.session.vault,
            op.tokens,
            now,
            &Value::Object(claims),
        )
        .await?;
    Ok(TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: access.exp - now,
        id_token,
        scope,
        refresh_token,
    })
}
