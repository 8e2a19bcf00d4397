//! The SQL store: users, identity links and login transactions (sessions live in the
//! tower-sessions table of the same database). SQLite is the embedded default.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;

use crate::crypto;
use crate::identity::Identity;

mod frontend;
mod index;
pub mod sessions;

pub use frontend::{RefreshTokenRow, SigningKeyRow};
pub use index::IndexedSession;

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    path: std::path::PathBuf,
}

/// A login in flight, stored under a hash of its `state` until the callback takes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginTransaction {
    pub provider: String,
    pub nonce: String,
    pub pkce_verifier: String,
    pub return_to: String,
    /// SHA-256 of the browser-binding cookie value.
    pub browser_binding: String,
    pub created_at: i64,
    /// Firebase federated sign-in: the `sessionId` from `createAuthUri`.
    #[serde(default)]
    pub firebase_session_id: Option<String>,
    /// Token mode: the app gets a one-time code instead of relying on the cookie.
    #[serde(default)]
    pub token_mode: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    #[error("store.url `{0}` is not a usable SQLite URL: {1}")]
    BadUrl(String, String),
    #[error("cannot create the folder for the database {0}: {1}")]
    Folder(String, std::io::Error),
    #[error("cannot open the database: {0}")]
    Open(sqlx::Error),
    #[error("cannot migrate the database schema: {0}")]
    Migrate(String),
}

impl Store {
    pub async fn open(url: &str) -> Result<Store, StoreOpenError> {
        let opts = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreOpenError::BadUrl(url.to_string(), e.to_string()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let file = opts.get_filename().to_path_buf();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreOpenError::Folder(file.display().to_string(), e))?;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await
            .map_err(StoreOpenError::Open)?;
        sqlx::migrate!("src/store/migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StoreOpenError::Migrate(e.to_string()))?;
        Ok(Store { pool, path: file })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    pub async fn put_login(
        &self,
        state: &str,
        tx: &LoginTransaction,
        expires_at: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        let data = serde_json::to_string(tx).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        sqlx::query("INSERT INTO login_transactions (state_hash, provider, data, expires_at) VALUES (?, ?, ?, ?)")
            .bind(crypto::sha256_b64(state))
            .bind(&tx.provider)
            .bind(data)
            .bind(expires_at.unix_timestamp())
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Removes and returns the transaction for `state`, once. An expired one is removed and not returned.
    pub async fn take_login(
        &self,
        state: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LoginTransaction>, sqlx::Error> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM login_transactions WHERE state_hash = ? RETURNING data, expires_at",
        )
        .bind(crypto::sha256_b64(state))
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some((data, expires_at)) if expires_at > now.unix_timestamp() => {
                serde_json::from_str(&data).ok()
            }
            _ => None,
        })
    }

    pub async fn sweep_expired_logins(&self, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
        sqlx::query("DELETE FROM login_transactions WHERE expires_at <= ?")
            .bind(now.unix_timestamp())
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
    }

    /// The local user for a provider identity: found by `(provider, subject)`, or created with it.
    /// Concurrent first logins of one identity end with one user.
    pub async fn link_identity(
        &self,
        identity: &Identity,
        now: OffsetDateTime,
    ) -> Result<String, sqlx::Error> {
        let ts = now.unix_timestamp();
        let profile =
            serde_json::to_string(identity).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let mut tx = self.pool.begin().await?;
        let candidate = format!("usr_{}", crypto::random_token(16));
        sqlx::query(
            "INSERT INTO users (id, created_at, updated_at, email, email_verified, profile)
             SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS
               (SELECT 1 FROM identities WHERE provider = ? AND subject = ?)",
        )
        .bind(&candidate)
        .bind(ts)
        .bind(ts)
        .bind(&identity.email)
        .bind(identity.email_verified)
        .bind(&profile)
        .bind(&identity.provider)
        .bind(&identity.subject)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO identities (provider, subject, user_id, created_at, last_login_at)
             SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM users WHERE id = ?)
             ON CONFLICT (provider, subject) DO NOTHING",
        )
        .bind(&identity.provider)
        .bind(&identity.subject)
        .bind(&candidate)
        .bind(ts)
        .bind(ts)
        .bind(&candidate)
        .execute(&mut *tx)
        .await?;
        let (user_id,): (String,) =
            sqlx::query_as("SELECT user_id FROM identities WHERE provider = ? AND subject = ?")
                .bind(&identity.provider)
                .bind(&identity.subject)
                .fetch_one(&mut *tx)
                .await?;
        if user_id != candidate {
            sqlx::query("DELETE FROM users WHERE id = ?")
                .bind(&candidate)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE users SET updated_at = ?, email = ?, email_verified = ?, profile = ? WHERE id = ?")
                .bind(ts)
                .bind(&identity.email)
                .bind(identity.email_verified)
                .bind(&profile)
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE identities SET last_login_at = ? WHERE provider = ? AND subject = ?",
            )
            .bind(ts)
            .bind(&identity.provider)
            .bind(&identity.subject)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(user_id)
    }
}
