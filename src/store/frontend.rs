//! Token-mode state: one-time login codes, broker refresh tokens and the broker's signing keys.
//! Codes and refresh tokens are stored as SHA-256 only: a dump of the store cannot replay them.

use super::Store;
use crate::crypto;

/// A broker refresh token as stored.
#[derive(Debug, Clone)]
pub struct RefreshTokenRow {
    pub handle: String,
    pub expires_at: i64,
    pub superseded_at: Option<i64>,
    /// With rotation: the token that replaced this one, sealed.
    pub successor_sealed: Option<String>,
}

/// A signing key as stored: the private half sealed, the public half as a JWK.
#[derive(Debug, Clone)]
pub struct SigningKeyRow {
    pub kid: String,
    pub sealed_private: String,
    pub public_jwk: String,
    pub created_at: i64,
}

/// One rotation of a refresh token: `old` replaced by `new` for the same owner (a session handle,
/// or a grant).
pub(super) struct Rotation<'a> {
    pub old: &'a str,
    pub new: &'a str,
    pub new_sealed: &'a str,
    pub owner: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

/// Marking a broker refresh token replaced, and inserting its successor.
const BROKER_REFRESH_TOKENS: [&str; 2] = [
    "UPDATE broker_refresh_tokens SET superseded_at = $1, successor_sealed = $2 WHERE token_hash = $3 AND superseded_at IS NULL",
    "INSERT INTO broker_refresh_tokens (token_hash, handle, created_at, expires_at) VALUES ($1, $2, $3, $4)",
];

impl Store {
    pub async fn put_login_code(
        &self,
        code: &str,
        handle: &str,
        code_challenge: Option<&str>,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO login_codes (code_hash, handle, code_challenge, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(crypto::sha256_b64(code))
        .bind(handle)
        .bind(code_challenge)
        .bind(expires_at)
        .execute(self.pool())
        .await
        .map(|_| ())
    }

    /// Removes the code and returns its session handle and PKCE challenge, once; an expired code
    /// returns nothing.
    pub async fn take_login_code(
        &self,
        code: &str,
        now: i64,
    ) -> Result<Option<(String, Option<String>)>, sqlx::Error> {
        let row: Option<(String, Option<String>, i64)> = sqlx::query_as(
            "DELETE FROM login_codes WHERE code_hash = $1 RETURNING handle, code_challenge, expires_at",
        )
        .bind(crypto::sha256_b64(code))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.and_then(|(handle, challenge, exp)| (exp > now).then_some((handle, challenge))))
    }

    pub async fn put_refresh_token(
        &self,
        token: &str,
        handle: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO broker_refresh_tokens (token_hash, handle, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(crypto::sha256_b64(token))
        .bind(handle)
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await
        .map(|_| ())
    }

    pub async fn refresh_token(&self, token: &str) -> Result<Option<RefreshTokenRow>, sqlx::Error> {
        let row: Option<(String, i64, Option<i64>, Option<String>)> = sqlx::query_as(
            "SELECT handle, expires_at, superseded_at, successor_sealed FROM broker_refresh_tokens WHERE token_hash = $1",
        )
        .bind(crypto::sha256_b64(token))
        .fetch_optional(self.pool())
        .await?;
        Ok(row.map(
            |(handle, expires_at, superseded_at, successor_sealed)| RefreshTokenRow {
                handle,
                expires_at,
                superseded_at,
                successor_sealed,
            },
        ))
    }

    /// Replaces `old` by `new` in one step; `false` when `old` was already replaced (a concurrent
    /// use), in which case nothing changes.
    pub async fn rotate_refresh_token(
        &self,
        old: &str,
        new: &str,
        new_sealed: &str,
        handle: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, sqlx::Error> {
        let rotation = Rotation {
            old,
            new,
            new_sealed,
            owner: handle,
            now,
            expires_at,
        };
        self.rotate(BROKER_REFRESH_TOKENS, &rotation).await
    }

    /// Marks `old` replaced (remembering its sealed successor) and stores `new`, in one
    /// transaction; `false`, and nothing changed, when `old` was already replaced.
    pub(super) async fn rotate(
        &self,
        sql: [&'static str; 2],
        r: &Rotation<'_>,
    ) -> Result<bool, sqlx::Error> {
        let [mark, insert] = sql;
        let mut tx = self.pool().begin().await?;
        let marked = sqlx::query(mark)
            .bind(r.now)
            .bind(r.new_sealed)
            .bind(crypto::sha256_b64(r.old))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if marked != 1 {
            return Ok(false);
        }
        sqlx::query(insert)
            .bind(crypto::sha256_b64(r.new))
            .bind(r.owner)
            .bind(r.now)
            .bind(r.expires_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Every signing key, newest first.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKeyRow>, sqlx::Error> {
        let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
            "SELECT kid, sealed_private, public_jwk, created_at FROM signing_keys ORDER BY created_at DESC, kid",
        )
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .into_iter()
            .map(
                |(kid, sealed_private, public_jwk, created_at)| SigningKeyRow {
                    kid,
                    sealed_private,
                    public_jwk,
                    created_at,
                },
            )
            .collect())
    }

    pub async fn add_signing_key(&self, key: &SigningKeyRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO signing_keys (kid, sealed_private, public_jwk, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&key.kid)
        .bind(&key.sealed_private)
        .bind(&key.public_jwk)
        .bind(key.created_at)
        .execute(self.pool())
        .await
        .map(|_| ())
    }

    /// Removes what has expired: codes, refresh tokens, and signing keys created before `keys_before`.
    pub async fn sweep_token_mode(&self, now: i64, keys_before: i64) -> Result<u64, sqlx::Error> {
        let mut n = 0;
        for (sql, ts) in [
            ("DELETE FROM login_codes WHERE expires_at <= $1", now),
            (
                "DELETE FROM broker_refresh_tokens WHERE expires_at <= $1",
                now,
            ),
            (
                "DELETE FROM signing_keys WHERE created_at < $1",
                keys_before,
            ),
        ] {
            n += sqlx::query(sql)
                .bind(ts)
                .execute(self.pool())
                .await?
                .rows_affected();
        }
        Ok(n)
    }
}
