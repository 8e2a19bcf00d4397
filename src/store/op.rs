//! What the broker keeps as an OpenID Provider: authorization requests waiting for a login,
//! authorization codes, grants (what one client holds from one broker session), their refresh
//! tokens, and the back-channel logout tokens owed to clients. Codes and tokens are stored as
//! SHA-256 only. A grant ends with its session: [`Store::end_session`] turns it into a delivery.

use super::Store;
use super::frontend::Rotation;
use crate::crypto;

/// Marking a client's refresh token replaced, and inserting a refresh token.
const OP_REFRESH_TOKENS: [&str; 2] = [
    "UPDATE op_refresh_tokens SET superseded_at = $1, successor_sealed = $2 WHERE token_hash = $3 AND superseded_at IS NULL",
    "INSERT INTO op_refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
];

/// A grant as stored; `data` is the op module's own JSON.
#[derive(Debug, Clone)]
pub struct GrantRow {
    pub grant_id: String,
    pub handle: String,
    pub client_id: String,
    pub user_id: String,
    pub data: String,
    pub expires_at: i64,
}

/// A refresh token of a grant, as stored.
#[derive(Debug, Clone)]
pub struct OpRefreshRow {
    pub grant_id: String,
    pub expires_at: i64,
    pub superseded_at: Option<i64>,
    pub successor_sealed: Option<String>,
}

/// What presenting an authorization code found.
#[derive(Debug)]
pub enum CodeUse {
    /// First use: the grant data the code was issued with.
    Fresh(String),
    /// Used before: the grant it made, if it got that far.
    Replayed(Option<String>),
    /// Unknown or expired.
    Unknown,
}

/// A back-channel logout token owed to a client.
#[derive(Debug, Clone)]
pub struct LogoutDelivery {
    pub id: i64,
    pub client_id: String,
    pub user_id: String,
    pub handle: String,
    pub attempts: i64,
}

/// Grants of the sessions `$1` selects become deliveries, then go with their refresh tokens.
const END_GRANTS: [&str; 3] = [
    "INSERT INTO op_logout_deliveries (client_id, user_id, handle, attempts, next_at) SELECT DISTINCT client_id, user_id, handle, 0, 0 FROM op_grants WHERE handle = $1",
    "DELETE FROM op_refresh_tokens WHERE grant_id IN (SELECT grant_id FROM op_grants WHERE handle = $1)",
    "DELETE FROM op_grants WHERE handle = $1",
];

impl Store {
    pub async fn put_op_request(
        &self,
        id: &str,
        request: &str,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO op_requests (id_hash, request, expires_at) VALUES ($1, $2, $3)")
            .bind(crypto::sha256_b64(id))
            .bind(request)
            .bind(expires_at)
            .execute(self.pool())
            .await
            .map(|_| ())
    }

    /// The request, once; an expired one is nothing.
    pub async fn take_op_request(&self, id: &str, now: i64) -> Result<Option<String>, sqlx::Error> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM op_requests WHERE id_hash = $1 RETURNING request, expires_at",
        )
        .bind(crypto::sha256_b64(id))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(|(r, exp)| (exp > now).then_some(r)))
    }

    pub async fn put_op_code(
        &self,
        code: &str,
        data: &str,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO op_codes (code_hash, grant_data, expires_at) VALUES ($1, $2, $3)")
            .bind(crypto::sha256_b64(code))
            .bind(data)
            .bind(expires_at)
            .execute(self.pool())
            .await
            .map(|_| ())
    }

    /// Spends a code: the first use gets its data, any later one learns what it made.
    pub async fn use_op_code(&self, code: &str, now: i64) -> Result<CodeUse, sqlx::Error> {
        let hash = crypto::sha256_b64(code);
        let fresh: Option<(String,)> = sqlx::query_as(
            "UPDATE op_codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING grant_data",
        )
        .bind(&hash)
        .bind(now)
        .fetch_optional(self.pool())
        .await?;
        if let Some((data,)) = fresh {
            return Ok(CodeUse::Fresh(data));
        }
        let used: Option<(Option<i64>, Option<String>)> =
            sqlx::query_as("SELECT used_at, grant_id FROM op_codes WHERE code_hash = $1")
                .bind(&hash)
                .fetch_optional(self.pool())
                .await?;
        Ok(match used {
            Some((Some(_), grant)) => CodeUse::Replayed(grant),
            _ => CodeUse::Unknown,
        })
    }

    /// Records the grant a code made, for a replay to find.
    pub async fn set_op_code_grant(&self, code: &str, grant_id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE op_codes SET grant_id = $1 WHERE code_hash = $2")
            .bind(grant_id)
            .bind(crypto::sha256_b64(code))
            .execute(self.pool())
            .await
            .map(|_| ())
    }

    pub async fn put_op_grant(&self, g: &GrantRow, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO op_grants (grant_id, handle, client_id, user_id, grant_data, expires_at, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&g.grant_id)
        .bind(&g.handle)
        .bind(&g.client_id)
        .bind(&g.user_id)
        .bind(&g.data)
        .bind(g.expires_at)
        .bind(now)
        .execute(self.pool())
        .await
        .map(|_| ())
    }

    pub async fn op_grant(&self, grant_id: &str) -> Result<Option<GrantRow>, sqlx::Error> {
        let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT handle, client_id, user_id, grant_data, expires_at FROM op_grants WHERE grant_id = $1",
        )
        .bind(grant_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(
            row.map(|(handle, client_id, user_id, data, expires_at)| GrantRow {
                grant_id: grant_id.to_string(),
                handle,
                client_id,
                user_id,
                data,
                expires_at,
            }),
        )
    }

    /// Ends one grant and its refresh tokens; the session and the client's other grants stay.
    pub async fn revoke_op_grant(&self, grant_id: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        for sql in [
            "DELETE FROM op_refresh_tokens WHERE grant_id = $1",
            "DELETE FROM op_grants WHERE grant_id = $1",
        ] {
            sqlx::query(sql).bind(grant_id).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    pub async fn put_op_refresh_token(
        &self,
        token: &str,
        grant_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(OP_REFRESH_TOKENS[1])
            .bind(crypto::sha256_b64(token))
            .bind(grant_id)
            .bind(now)
            .bind(expires_at)
            .execute(self.pool())
            .await
            .map(|_| ())
    }

    pub async fn op_refresh_token(&self, token: &str) -> Result<Option<OpRefreshRow>, sqlx::Error> {
        let row: Option<(String, i64, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT grant_id, expires_at, superseded_at, successor_sealed FROM op_refresh_tokens WHERE token_hash = $1",
        )
        .bind(crypto::sha256_b64(token))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(
            |(grant_id, expires_at, superseded_at, successor_sealed)| OpRefreshRow {
                grant_id,
                expires_at,
                superseded_at,
                successor_sealed,
            },
        ))
    }

    /// A refresh token with its grant, in one read.
    pub async fn op_refresh_token_and_grant(
        &self,
        token: &str,
    ) -> Result<Option<(OpRefreshRow, GrantRow)>, sqlx::Error> {
        type Row = (
            String,
            i64,
            Option<i64>,
            Option<String>,
            String,
            String,
            String,
            String,
            i64,
        );
        let row: Option<Row> = sqlx::query_as(
            "SELECT t.grant_id, t.expires_at, t.superseded_at, t.successor_sealed, g.handle, g.client_id, g.user_id, g.grant_data, g.expires_at FROM op_refresh_tokens t JOIN op_grants g ON g.grant_id = t.grant_id WHERE t.token_hash = $1",
        )
        .bind(crypto::sha256_b64(token))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(
            |(
                grant_id,
                expires_at,
                superseded_at,
                successor_sealed,
                handle,
                client_id,
                user_id,
                data,
                grant_expires_at,
            )| {
                (
                    OpRefreshRow {
                        grant_id: grant_id.clone(),
                        expires_at,
                        superseded_at,
                        successor_sealed,
                    },
                    GrantRow {
                        grant_id,
                        handle,
                        client_id,
                        user_id,
                        data,
                        expires_at: grant_expires_at,
                    },
                )
            },
        ))
    }

    /// Replaces `old` by `new` in one step; `false` when `old` was already replaced.
    pub async fn rotate_op_refresh_token(
        &self,
        old: &str,
        new: &str,
        new_sealed: &str,
        grant_id: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let rotation = Rotation {
            old,
            new,
            new_sealed,
            owner: grant_id,
            now,
            expires_at,
        };
        self.rotate(OP_REFRESH_TOKENS, &rotation).await
    }

    /// Grants not checked since `before`, oldest check first: the sweeper asks whether their
    /// sessions still live (an idle timeout ends a session without any request).
    pub async fn op_grants_to_check(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<(String, String)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT DISTINCT handle, user_id FROM op_grants WHERE checked_at <= $1 ORDER BY handle LIMIT $2",
        )
        .bind(before)
        .bind(limit)
        .fetch_all(self.pool())
        .await
    }

    pub async fn mark_op_grants_checked(&self, handle: &str, now: i64) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE op_grants SET checked_at = $1 WHERE handle = $2")
            .bind(now)
            .bind(handle)
            .execute(self.pool())
            .await
            .map(|_| ())
    }

    /// The grants of a session that has ended: each client with one is owed a logout token.
    pub async fn end_op_grants(&self, handle: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool().begin().await?;
        for sql in END_GRANTS {
            sqlx::query(sql).bind(handle).execute(&mut *tx).await?;
        }
        tx.commit().await
    }

    pub async fn due_logout_deliveries(
        &self,
        now: i64,
        limit: i64,
    ) -> Result<Vec<LogoutDelivery>, sqlx::Error> {
        let rows: Vec<(i64, String, String, String, i64)> = sqlx::query_as(
            "SELECT id, client_id, user_id, handle, attempts FROM op_logout_deliveries WHERE next_at <= $1 ORDER BY next_at, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(id, client_id, user_id, handle, attempts)| LogoutDelivery {
                    id,
                    client_id,
                    user_id,
                    handle,
                    attempts,
                },
            )
            .collect())
    }

    /// Takes a due delivery for this instance: `false` when another instance took it first.
    pub async fn claim_logout_delivery(
        &self,
        id: i64,
        attempts: i64,
        next_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let r = sqlx::query(
            "UPDATE op_logout_deliveries SET attempts = $1, next_at = $2 WHERE id = $3 AND attempts = $4",
        )
        .bind(attempts + 1)
        .bind(next_at)
        .bind(id)
        .bind(attempts)
        .execute(self.pool())
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub async fn delete_logout_delivery(&self, id: i64) -> Result<(), sqlx::Error> {
        sqlx::query("DELETE FROM op_logout_deliveries WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await
            .map(|_| ())
    }

    /// Removes what has expired; grants past their session's end become deliveries first.
    pub async fn sweep_op(&self, now: i64) -> Result<u64, sqlx::Error> {
        let ended: Vec<(String,)> =
            sqlx::query_as("SELECT DISTINCT handle FROM op_grants WHERE expires_at <= $1")
                .bind(now)
                .fetch_all(self.pool())
                .await?;
        for (handle,) in &ended {
            self.end_op_grants(handle).await?;
        }
        let mut n = ended.len() as u64;
        for sql in [
            "DELETE FROM op_requests WHERE expires_at <= $1",
            "DELETE FROM op_codes WHERE expires_at <= $1",
            "DELETE FROM op_refresh_tokens WHERE expires_at <= $1",
        ] {
            n += sqlx::query(sql)
                .bind(now)
                .execute(self.pool())
                .await?
                .rows_affected();
        }
        Ok(n)
    }
}

/// The statements [`Store::end_session`] runs in its transaction for the ended session's grants.
pub(super) fn end_grants_sql() -> [&'static str; 3] {
    END_GRANTS
}
