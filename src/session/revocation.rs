//! Revoking a provider refresh token at logout, and the queue of revocations that failed: sealed in
//! the store and retried by the sweeper with a doubling backoff, so a provider that is down at the
//! moment of logout still hears of it.

use super::Parts;
use crate::providers::{Provider, RevokeError};

/// How long a failed revocation waits before its first retry.
const REVOKE_RETRY_SECS: i64 = 60;

/// Revokes now; if the provider cannot be reached, queues the (sealed) token for retry. Returns
/// the outcome for the audit: `revoked`, `queued`, `not_queued`, or `nothing_revoked` when the
/// provider names no revocation endpoint anywhere (the token then stays valid at the provider);
/// `None` when the provider's kind revokes no single tokens.
pub async fn revoke_or_queue(
    parts: Parts<'_>,
    provider: &Provider,
    refresh_token: &str,
    handle: &str,
) -> Option<&'static str> {
    let outcome = match provider.revoke_refresh_token(refresh_token).await {
        Ok(true) => {
            tracing::info!(provider = %provider.id, session = %handle, "refresh token revoked");
            "revoked"
        }
        Ok(false) => {
            tracing::warn!(provider = %provider.id, session = %handle, "nothing revoked: the provider has no revocation endpoint (set revocation_endpoint if it has one); its refresh token stays valid there");
            "nothing_revoked"
        }
        Err(RevokeError::NotSupported) => return None,
        Err(RevokeError::Failed { reason, .. }) => {
            tracing::warn!(provider = %provider.id, session = %handle, reason = %reason, "revocation failed; queued for retry");
            if queue_revocation(parts, &provider.id, refresh_token, handle, &reason).await {
                "queued"
            } else {
                tracing::error!(provider = %provider.id, session = %handle, "revocation could not be queued");
                "not_queued"
            }
        }
    };
    crate::metrics::revocation(&provider.id, outcome);
    Some(outcome)
}

/// Seals the token and queues it for [`retry_revocations`]; whether that worked.
async fn queue_revocation(
    parts: Parts<'_>,
    provider_id: &str,
    refresh_token: &str,
    handle: &str,
    reason: &str,
) -> bool {
    let context = format!("revoke:{handle}");
    let Ok(sealed) = parts.vault.seal_value(refresh_token, &context) else {
        return false;
    };
    let next = parts.clock.now().unix_timestamp() + REVOKE_RETRY_SECS;
    parts
        .store
        .queue_revocation(provider_id, &sealed, &context, next, reason)
        .await
        .is_ok()
}

/// Retries queued revocations whose time has come: backoff doubles from a minute up to an hour;
/// after 10 attempts the token is given up (and logged).
pub async fn retry_revocations(parts: Parts<'_>) {
    let now = parts.clock.now().unix_timestamp();
    let Ok(due) = parts.store.due_revocations(now).await else {
        return;
    };
    for (id, provider_id, sealed, context, attempts) in due {
        // A provider gone from the config: dropped.
        let Some(provider) = parts.providers.get(&provider_id) else {
            let _ = parts.store.revocation_done(id).await;
            continue;
        };
        let Ok(token) = parts.vault.open_value(&sealed, &context) else {
            let _ = parts.store.revocation_done(id).await;
            continue;
        };
        match provider.revoke_refresh_token(&token).await {
            Ok(_) => {
                tracing::info!(provider = %provider_id, attempts, "queued revocation succeeded");
                let _ = parts.store.revocation_done(id).await;
            }
            // The provider's kind (changed in the config) revokes no single tokens: dropped.
            Err(RevokeError::NotSupported) => {
                let _ = parts.store.revocation_done(id).await;
            }
            Err(e) if attempts >= 10 => {
                tracing::error!(provider = %provider_id, attempts, reason = %e, "revocation given up");
                let _ = parts.store.revocation_done(id).await;
            }
            Err(e) => {
                let wait = (REVOKE_RETRY_SECS << attempts.clamp(0, 6)).min(3600);
                let _ = parts
                    .store
                    .revocation_retry(id, now + wait, &e.to_string())
                    .await;
            }
        }
    }
}
