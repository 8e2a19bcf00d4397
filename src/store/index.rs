//! The session index and the sealed provider tokens of each session.

use sqlx::Row;
use time::OffsetDateTime;

use super::{SessionKey, Store};

/// A row of the session index.
#[derive(Debug, Clone)]
pub struct IndexedSession {
    pub handle: String,
    /// The session's key in the session store (SHA-256 of its id; the id itself is not kept).
    pub session_key: SessionKey,
    pub user_id: String,
    pub provider: String,
    pub subject: String,
    pub provider_sid: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Sealed `ProviderTokens` JSON, bound to `handle`.
    pub tokens: Option<String>,
    pub access_expires_at: Option<i64>,
}

fn from_row(r: &sqlx::any::AnyRow) -> Result<IndexedSession, sqlx::Error> {
    Ok(IndexedSession {
        handle: r.try_get("handle")?,
        session_key: SessionKey::from_stored(r.try_get("session_key")?),
        user_id: r.try_get("user_id")?,
        provider: r.try_get("provider")?,
        subject: r.try_get("subject")?,
        provider_sid: r.try_get("provider_sid")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        tokens: r.try_get("tokens")?,
        access_expires_at: r.try_get("access_expires_at")?,
    })
}

impl Store {
    pub async fn index_session(&self, s: &IndexedSession) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO session_index (handle, session_key, user_id, provider, subject, provider_sid, created_at, expires_at, tokens, access_expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&s.handle)
        .bind(s.session_key.as_str())
        .bind(&s.user_id)
        .bind(&s.provider)
        .bind(&s.subject)
        .bind(&s.provider_sid)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(&s.tokens)
        .bind(s.access_expires_at)
        .execute(self.pool())
        .await
        .map(|_| ())
    }

    pub async fn indexed_session(
        &self,
        handle: &str,
    ) -> Result<Option<IndexedSession>, sqlx::Error> {
        let row = sqlx::query("SELECT * FROM session_index WHERE handle = $1")
            .bind(handle)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every indexed session of a local user, newest first.
    pub async fn sessions_of_user(
        &self,
        user_id: &str,
    ) -> Result<Vec<IndexedSession>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT * FROM session_index WHERE user_id = $1 ORDER BY created_at DESC, handle",
        )
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Sessions of a provider identity: by the provider's `sid` when given, else by subject.
    pub async fn sessions_of(
        &self,
        provider: &str,
        sid: Option<&str>,
        subject: Option<&str>,
    ) -> Result<Vec<IndexedSession>, sqlx::Error> {
        let rows = match (sid, subject) {
            (Some(sid), _) => {
                sqlx::query("SELECT * FROM session_index WHERE provider = $1 AND provider_sid = $2")
                    .bind(provider)
                    .bind(sid)
                    .fetch_all(self.pool())
                    .await?
            }
            (None, Some(sub)) => {
                sqlx::query("SELECT * FROM session_index WHERE provider = $1 AND subject = $2")
                    .bind(provider)
                    .bind(sub)
                    .fetch_all(self.pool())
                    .await?
            }
            (None, None) => vec![],
        };
        rows.iter().map(from_row).collect()
    }

    /// Removes a session's index row and broker tokens, in one transaction (the record itself is
    /// the session store's: see `session::end_session`).
    pub async fn end_session(&self, s: &IndexedSession) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        let own = [
            "DELETE FROM session_index WHERE handle = $1",
            "DELETE FROM broker_refresh_tokens WHERE handle = $1",
            "DELETE FROM login_codes WHERE handle = $1",
        ];
        // Clients holding tokens from the session are owed a back-channel logout token.
        for sql in super::op::end_grants_sql().into_iter().chain(own) {
            sqlx::query(sql).bind(&s.handle).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    /// Replaces a session's sealed tokens after a refresh.
    pub async fn update_tokens(
        &self,
        handle: &str,
        sealed: &str,
        access_expires_at: Option<i64>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE session_index SET tokens = $1, access_expires_at = $2 WHERE handle = $3",
        )
        .bind(sealed)
        .bind(access_expires_at)
        .bind(handle)
        .execute(self.pool())
        .await
        .map(|_| ())
    }

    /// Takes the refresh lock of a session unless another holder has it until later than `now`.
    pub async fn try_lock_refresh(
        &self,
        handle: &str,
        holder: &str,
        now: i64,
        until: i64,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "INSERT INTO refresh_locks (handle, holder, until) VALUES ($1, $2, $3)
             ON CONFLICT (handle) DO UPDATE SET holder = excluded.holder, until = excluded.until WHERE refresh_locks.until <= $4",
        )
        .bind(handle)
        .bind(holder)
        .bind(until)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn unlock_refresh(&self, handle: &str, holder: &str) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM refresh_locks WHERE handle = $1 AND holder = $2")
            .bind(handle)
            .bind(holder)
            .execute(self.pool())
            .await
            .map(|_| ())
    }

    pub async fn sweep_expired_index(&self, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
        let ts = now.unix_timestamp();
        let a = sqlx::query("DELETE FROM session_index WHERE expires_at <= $1")
            .bind(ts)
            .execute(self.pool())
            .await?
            .rows_affected();
        let b = sqlx::query("DELETE FROM seen_logout_tokens WHERE expires_at <= $1")
            .bind(ts)
            .execute(self.pool())
            .await?
            .rows_affected();
        // Locks left by an instance that stopped in the middle of a refresh.
        let c = sqlx::query("DELETE FROM refresh_locks WHERE until <= $1")
            .bind(ts)
            .execute(self.pool())
            .await?
            .rows_affected();
        Ok(a + b + c)
    }

    /// Remembers a logout token's `jti`; `false` when it was seen before (a replay).
    pub async fn remember_logout_jti(
        &self,
        provider: &str,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query("INSERT INTO seen_logout_tokens (provider, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
            .bind(provider)
            .bind(jti)
            .bind(expires_at)
            .execute(self.pool())
            .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn queue_revocation(
        &self,
        provider: &str,
        sealed: &str,
        context: &str,
        next_try_at: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO pending_revocations (provider, sealed, context, attempts, next_try_at, last_error) VALUES ($1, $2, $3, 1, $4, $5)")
            .bind(provider)
            .bind(sealed)
            .bind(context)
            .bind(next_try_at)
            .bind(error)
            .execute(self.pool())
            .await
            .map(|_| ())
    }

    /// Revocations due for another try: `(id, provider, sealed, context, attempts)`.
    pub async fn due_revocations(
        &self,
        now: i64,
    ) -> Result<Vec<(i64, String, String, String, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT id, provider, sealed, context, attempts FROM pending_revocations WHERE next_try_at <= $1 ORDER BY id LIMIT 50")
            .bind(now)
            .fetch_all(self.pool())
            .await
    }

    pub async fn revocation_done(&self, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM pending_revocations WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map(|_| ())
    }

    pub async fn revocation_retry(
        &self,
        id: i64,
        next_try_at: i64,
        error: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE pending_revocations SET attempts = attempts + 1, next_try_at = $1, last_error = $2 WHERE id = $3")
            .bind(next_try_at)
            .bind(error)
            .bind(id)
            .execute(self.pool())
            .await
            .map(|_| ())
    }
}
