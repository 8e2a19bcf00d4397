//! OpenID Connect Back-Channel Logout 1.0, the provider's side: when a broker session ends, every
//! client that held tokens from it and registered a `backchannel_logout_uri` is sent a signed
//! logout token. The store queues one delivery per client and session (see
//! `Store::end_session`); any instance delivers it, retried with backoff, each outcome audited.
//! A session that ends by idle timeout sends no request of its own: [`check_grants`] finds it.

use std::time::Duration;

use serde_json::{Value, json};

use super::Op;
use crate::audit::{self, AuditEvent, Event};
use crate::crypto;
use crate::store::LogoutDelivery;

/// Attempts before a delivery is given up (with backoff, about an hour in all).
const MAX_ATTEMPTS: i64 = 8;
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn backoff(attempt: i64) -> i64 {
    5 * (1_i64 << attempt.clamp(0, 10))
}

/// The logout token of a delivery (§2.4): no `nonce`, the `events` claim, `sub` and `sid`.
pub fn logout_claims(op: &Op<'_>, d: &LogoutDelivery, now: i64) -> Value {
    json!({
        "iss": op.issuer,
        "aud": d.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": crypto::random_token(16),
        "sub": d.user_id,
        "sid": d.handle,
        "events": { EVENT: {} },
    })
}

/// Sends the deliveries that are due; returns how many were sent.
pub async fn deliver_due(op: &Op<'_>, http: &reqwest::Client) -> usize {
    let store = op.session.store;
    let now = op.now();
    let due = match store.due_logout_deliveries(now, 50).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "reading back-channel logout deliveries failed");
            return 0;
        }
    };
    let mut sent = 0;
    for d in due {
        let Some(uri) = op
            .client(&d.client_id)
            .and_then(|c| c.backchannel_logout_uri.as_deref())
        else {
            // The client has no back-channel endpoint (or is gone from the config).
            let _ = store.delete_logout_delivery(d.id).await;
            continue;
        };
        // Claimed by moving its next attempt ahead: another instance then skips it.
        match store
            .claim_logout_delivery(d.id, d.attempts, now + backoff(d.attempts))
            .await
        {
            Ok(true) => {}
            _ => continue,
        }
        let outcome = deliver(op, http, uri, &d, now).await;
        let event = AuditEvent::new(Event::ClientLogout)
            .user(&d.user_id)
            .session(&d.handle)
            .detail("client", d.client_id.as_str())
            .detail("attempt", d.attempts + 1);
        match outcome {
            Ok(()) => {
                sent += 1;
                let _ = store.delete_logout_delivery(d.id).await;
                audit::record(store, now, event.detail("outcome", "delivered")).await;
            }
            Err(why) => {
                tracing::warn!(client = %d.client_id, session = %d.handle, reason = %why, "back-channel logout to a client failed");
                let last = d.attempts + 1 >= MAX_ATTEMPTS;
                if last {
                    let _ = store.delete_logout_delivery(d.id).await;
                }
                let outcome = if last { "given_up" } else { "retrying" };
                let event = event.detail("outcome", outcome).detail("reason", why);
                audit::record(store, now, event).await;
            }
        }
    }
    sent
}

async fn deliver(
    op: &Op<'_>,
    http: &reqwest::Client,
    uri: &str,
    d: &LogoutDelivery,
    now: i64,
) -> Result<(), String> {
    let token = op
        .keys
        .sign_claims(
            op.session.store,
            op.session.vault,
            op.tokens,
            now,
            &logout_claims(op, d, now),
        )
        .await
        .map_err(|e| e.to_string())?;
    let res = http
        .post(uri)
        .form(&[("logout_token", token.as_str())])
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .map_err(|e| format!("the request failed: {}", e.without_url()))?;
    if res.status().is_success() {
        Ok(())
    } else {
        Err(format!("the client answered {}", res.status().as_u16()))
    }
}

/// Sessions that clients hold tokens from and that ended without a request — an idle timeout —
/// are found here (a bounded batch per run), and their grants end.
pub async fn check_grants(op: &Op<'_>, every: Duration) {
    let store = op.session.store;
    let now = op.now();
    let before = now - i64::try_from(every.as_secs()).unwrap_or(60);
    let handles = match store.op_grants_to_check(before, 500).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "reading client grants failed");
            return;
        }
    };
    for (handle, _) in handles {
        let result = match crate::session::is_live_by_handle(op.session, &handle).await {
            Ok(true) => store.mark_op_grants_checked(&handle, now).await,
            Ok(false) => store.end_op_grants(&handle).await,
            Err(e) => {
                tracing::warn!(error = %e, "checking a session for its client grants failed");
                continue;
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "updating client grants failed");
        }
    }
}
