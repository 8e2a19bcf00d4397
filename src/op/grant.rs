//! Codes, grants and refresh tokens: a code is issued for a live broker session, traded once for a
//! grant's tokens (a replay revokes the grant it made), and refresh tokens rotate with reuse
//! detection. Every answer first checks that the broker session still lives.

use serde_json::{Map, Value};

use super::authorize::{AuthRequest, response_url};
use super::tokens::{self, GrantData, TokenResponse};
use super::{Op, OpError, has_scope};
use crate::audit::{self, AuditEvent, RevokedBy};
use crate::config::ClientConfig;
use crate::crypto;
use crate::session::{self, SessionRecord};
use crate::store::{CodeUse, GrantRow};
use crate::tokens::broker_jwt::Expect;

/// How long a code can be traded (RFC 6749 §4.1.2 recommends at most ten minutes).
const CODE_TTL_SECS: i64 = 60;

/// A replaced refresh token used again within this many seconds gets the same successor (a lost
/// answer, two tabs renewing at once); later, it is a stolen copy.
fn grace(op: &Op<'_>) -> i64 {
    i64::try_from(op.tokens.rotation_grace.as_secs()).unwrap_or(30)
}

/// A code for `record`'s session: the redirect that carries it to the client.
pub async fn issue_code(
    op: &Op<'_>,
    req: &AuthRequest,
    record: &SessionRecord,
) -> Result<String, OpError> {
    let data = GrantData {
        client_id: req.client_id.clone(),
        handle: record.handle.clone(),
        user_id: record.user.id.clone(),
        scope: req.scope.clone(),
        redirect_uri: req.redirect_uri.clone(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        auth_time: record.created_at,
        acr: record.acr.clone(),
    };
    let json = serde_json::to_string(&data).map_err(OpError::internal)?;
    let code = crypto::random_token(32);
    op.session
        .store
        .put_op_code(&code, &json, op.now() + CODE_TTL_SECS)
        .await?;
    let mut pairs = vec![("code", code.as_str())];
    if let Some(s) = &req.state {
        pairs.push(("state", s));
    }
    Ok(response_url(&req.redirect_uri, &pairs, op.issuer))
}

/// The live session of a grant, touched: a token request counts as activity.
async fn live_record(op: &Op<'_>, handle: &str) -> Result<Option<SessionRecord>, OpError> {
    Ok(session::live_by_handle(op.session, handle)
        .await?
        .map(|(_, r)| r))
}

/// `grant_type=authorization_code`.
pub async fn exchange_code(
    op: &Op<'_>,
    client: &ClientConfig,
    code: &str,
    redirect_uri: Option<&str>,
    verifier: Option<&str>,
) -> Result<TokenResponse, OpError> {
    let now = op.now();
    let data = match op.session.store.use_op_code(code, now).await? {
        CodeUse::Fresh(json) => {
            serde_json::from_str::<GrantData>(&json).map_err(OpError::internal)?
        }
        CodeUse::Replayed(grant) => {
            // RFC 6749 §4.1.2: a code used twice revokes what it issued.
            if let Some(g) = grant {
                op.session.store.revoke_op_grant(&g).await?;
            }
            tracing::warn!(client = %client.id, "authorization code used twice; its grant is revoked");
            return Err(OpError::invalid_grant());
        }
        CodeUse::Unknown => return Err(OpError::invalid_grant()),
    };
    // The code is spent whatever follows: a wrong client, redirect URI or verifier burns it.
    if data.client_id != client.id || redirect_uri != Some(data.redirect_uri.as_str()) {
        return Err(OpError::invalid_grant());
    }
    if let Some(challenge) = &data.code_challenge {
        let ok = verifier.is_some_and(|v| {
            (43..=128).contains(&v.len())
                && crypto::constant_time_eq(&crypto::pkce_challenge(v), challenge)
        });
        if !ok {
            return Err(OpError::invalid_grant());
        }
    } else if verifier.is_some() {
        return Err(OpError::oauth(
            "invalid_request",
            "code_verifier was sent, but the authorization request had no code_challenge.",
        ));
    }
    let Some(record) = live_record(op, &data.handle).await? else {
        return Err(OpError::invalid_grant());
    };
    let grant_id = format!("gr_{}", crypto::random_token(16));
    let row = GrantRow {
        grant_id: grant_id.clone(),
        handle: data.handle.clone(),
        client_id: client.id.clone(),
        user_id: data.user_id.clone(),
        data: serde_json::to_string(&data).map_err(OpError::internal)?,
        expires_at: record.absolute_expires_at,
    };
    op.session.store.put_op_grant(&row, now).await?;
    op.session.store.set_op_code_grant(code, &grant_id).await?;
    let refresh = if has_scope(&data.scope, "offline_access") {
        let rt = format!("ort_{}", crypto::random_token(32));
        op.session
            .store
            .put_op_refresh_token(&rt, &grant_id, now, record.absolute_expires_at)
            .await?;
        Some(rt)
    } else {
        None
    };
    tracing::info!(client = %client.id, session = %data.handle, "authorization code traded");
    tokens::issue(op, client, &data, &grant_id, &record, refresh).await
}

/// `grant_type=refresh_token`: rotated at every use.
pub async fn refresh(
    op: &Op<'_>,
    client: &ClientConfig,
    presented: &str,
) -> Result<TokenResponse, OpError> {
    let now = op.now();
    let store = op.session.store;
    let Some((row, grant)) = store
        .op_refresh_token_and_grant(presented)
        .await?
        .filter(|(r, _)| r.expires_at > now)
    else {
        return Err(OpError::invalid_grant());
    };
    if grant.client_id != client.id {
        return Err(OpError::invalid_grant());
    }
    if let Some(at) = row.superseded_at
        && now - at > grace(op)
    {
        // A replaced token came back after the grace window: one of two holders stole it. The
        // broker session ends (as in token mode), and with it every token any app holds from it.
        store.revoke_op_grant(&grant.grant_id).await?;
        if let Some(indexed) = store.indexed_session(&grant.handle).await? {
            session::end_session(store, op.session.sessions, &indexed).await?;
            let event = AuditEvent::revoked(&indexed, RevokedBy::RefreshTokenReuse)
                .detail("client", client.id.as_str());
            audit::record(store, now, event).await;
        }
        tracing::warn!(client = %client.id, session = %grant.handle, "replaced refresh token used again; session ended");
        return Err(OpError::invalid_grant());
    }
    let data: GrantData = serde_json::from_str(&grant.data).map_err(OpError::internal)?;
    let Some(record) = live_record(op, &grant.handle).await? else {
        return Err(OpError::invalid_grant());
    };
    let next = successor(op, &grant, &row, presented, now).await?;
    tokens::issue(op, client, &data, &grant.grant_id, &record, Some(next)).await
}

/// The token that replaces `presented`; a retry within the grace window gets the same one.
async fn successor(
    op: &Op<'_>,
    grant: &GrantRow,
    row: &crate::store::OpRefreshRow,
    presented: &str,
    now: i64,
) -> Result<String, OpError> {
    let store = op.session.store;
    let vault = op.session.vault;
    let context = format!("op-refresh-successor:{}", grant.grant_id);
    let open = |sealed: &str| {
        vault
            .open_value(sealed, &context)
            .map_err(|_| OpError::invalid_grant())
    };
    if let Some(sealed) = &row.successor_sealed {
        return open(sealed);
    }
    let next = format!("ort_{}", crypto::random_token(32));
    let sealed = vault
        .seal_value(&next, &context)
        .map_err(OpError::internal)?;
    if store
        .rotate_op_refresh_token(
            presented,
            &next,
            &sealed,
            &grant.grant_id,
            now,
            grant.expires_at,
        )
        .await?
    {
        return Ok(next);
    }
    // Another request rotated it a moment ago: its successor is the one.
    let sealed = store
        .op_refresh_token(presented)
        .await?
        .and_then(|r| r.successor_sealed)
        .ok_or_else(OpError::invalid_grant)?;
    open(&sealed)
}

/// RFC 7009: a refresh token ends its grant; an access token ends the grant it names. A token
/// that is unknown, expired or another client's changes nothing, and the answer is the same.
pub async fn revoke(op: &Op<'_>, client: &ClientConfig, token: &str) -> Result<(), OpError> {
    let store = op.session.store;
    let grant_id = match store.op_refresh_token(token).await? {
        Some(row) => Some(row.grant_id),
        None => access_token_grant(op, token).await,
    };
    let Some(grant_id) = grant_id else {
        return Ok(());
    };
    if let Some(grant) = store.op_grant(&grant_id).await?
        && grant.client_id == client.id
    {
        store.revoke_op_grant(&grant_id).await?;
        tracing::info!(client = %client.id, session = %grant.handle, "client grant revoked");
    }
    Ok(())
}

/// The grant an access token of this broker names, if it verifies (expired ones too).
async fn access_token_grant(op: &Op<'_>, token: &str) -> Option<String> {
    let claims = verify_access_token(op, token, true).await.ok()?;
    claims.get("gid")?.as_str().map(str::to_string)
}

/// The claims of an access token this broker issued to one of its clients.
async fn verify_access_token(
    op: &Op<'_>,
    token: &str,
    allow_expired: bool,
) -> Result<Value, crate::tokens::broker_jwt::JwtError> {
    let audiences: Vec<&str> = op.clients.values().map(|c| c.audience.as_str()).collect();
    let expect = Expect {
        issuer: op.issuer,
        audiences: &audiences,
        allow_expired,
    };
    op.keys
        .verify_claims(
            op.session.store,
            op.session.vault,
            op.tokens,
            &expect,
            token,
            op.now(),
        )
        .await
}

/// The userinfo claims for a bearer access token: its grant and session must still live.
pub async fn userinfo(op: &Op<'_>, token: &str) -> Result<Map<String, Value>, OpError> {
    let refused = || OpError::invalid_token("The access token is invalid, expired or revoked.");
    let claims = verify_access_token(op, token, false)
        .await
        .map_err(|_| refused())?;
    let gid = claims
        .get("gid")
        .and_then(Value::as_str)
        .ok_or_else(refused)?;
    let grant = op.session.store.op_grant(gid).await?.ok_or_else(refused)?;
    if claims.get("client_id").and_then(Value::as_str) != Some(grant.client_id.as_str()) {
        return Err(refused());
    }
    let data: GrantData = serde_json::from_str(&grant.data).map_err(|_| refused())?;
    let record = live_record(op, &grant.handle).await?.ok_or_else(refused)?;
    Ok(tokens::user_claims(&record.user, &data.scope))
}
