//! The SQL store: users, identity links, login transactions, the session index and everything
//! else that must outlive a process — on SQLite (the embedded default) or PostgreSQL, through one set
//! of queries (sqlx's `Any` driver; `$N` placeholders, SQL both engines speak). Session records
//! live in the session store (`session::store`): the same database, or Redis.

use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Executor};
use time::OffsetDateTime;

use crate::config::Config;
use crate::crypto;

mod audit;
pub mod devices;
mod frontend;
mod index;
mod op;
pub mod session_key;
mod users;

pub use audit::{AuditRow, NewAuditRow};
pub use frontend::{RefreshTokenRow, SigningKeyRow};
pub use index::IndexedSession;
pub use op::{CodeUse, GrantRow, LogoutDelivery, OpRefreshRow};
pub use session_key::SessionKey;
pub use users::{LinkOutcome, LinkedIdentity, UnlinkError, UserSummary};

#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
}

/// The database's own pool beside the `Any` one, for the session table kept in the same database
/// (the session store reads and writes it natively).
pub enum Native {
    Sqlite(SqlitePool, std::path::PathBuf),
    Postgres(PgPool, String),
}

impl Store {
    /// Opens the SQL store and brings its schema up to date.
    pub async fn open(config: &Config) -> Result<(Store, Native), StoreOpenError> {
        sqlx::any::install_default_drivers();
        let url = config.store.url.as_str();
        let (pool, native) = if url.starts_with("sqlite:") {
            open_sqlite(url).await?
        } else {
            open_postgres(url, config.store.schema.as_deref()).await?
        };
        Ok((Store { pool }, native))
    }
}

async fn open_sqlite(url: &str) -> Result<(AnyPool, Native), StoreOpenError> {
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
    // No ping before each use: a SQLite connection is a file handle that cannot go away, and the
    // ping is one more hop to the connection's thread for every query.
    let native: SqlitePool = SqlitePoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .connect_with(opts.clone())
        .await
        .map_err(StoreOpenError::Open)?;
    sqlx::migrate!("src/store/migrations/sqlite")
        .run(&native)
        .await
        .map_err(|e| StoreOpenError::Migrate(e.to_string()))?;
    let any = AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA busy_timeout = 5000; PRAGMA foreign_keys = ON")
                    .await
                    .map(|_| ())
            })
        })
        .connect_with(
            opts.to_url_lossy()
                .as_str()
                .parse()
                .map_err(|e: sqlx::Error| StoreOpenError::BadUrl(url.to_string(), e.to_string()))?,
        )
        .await
        .map_err(StoreOpenError::Open)?;
    Ok((any, Native::Sqlite(native, file)))
}

async fn open_postgres(
    url: &str,
    schema: Option<&str>,
) -> Result<(AnyPool, Native), StoreOpenError> {
    let bad =
        |e: sqlx::Error| StoreOpenError::BadUrl(crate::config::redact_url(url), e.to_string());
    let schema = schema.unwrap_or("public").to_string();
    if !crate::config::valid_schema(&schema) {
        return Err(StoreOpenError::BadUrl(
            crate::config::redact_url(url),
            format!("`{schema}` is not a usable schema name"),
        ));
    }
    let opts = PgConnectOptions::from_str(url).map_err(bad)?;
    // One schema per broker, so that several can share a server.
    let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
    let mut conn = opts.connect().await.map_err(StoreOpenError::Open)?;
    conn.execute(create.as_str())
        .await
        .map_err(|e| StoreOpenError::Migrate(e.to_string()))?;
    let opts = opts.options([("search_path", schema.as_str())]);
    let native: PgPool = PgPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(opts.clone())
        .await
        .map_err(StoreOpenError::Open)?;
    sqlx::migrate!("src/store/migrations/postgres")
        .run(&native)
        .await
        .map_err(|e| StoreOpenError::Migrate(e.to_string()))?;
    let set_path = format!("SET search_path TO \"{schema}\"");
    let any = AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(3))
        .after_connect(move |conn, _| {
            let set_path = set_path.clone();
            Box::pin(async move { conn.execute(set_path.as_str()).await.map(|_| ()) })
        })
        .connect(url)
        .await
        .map_err(StoreOpenError::Open)?;
    Ok((any, Native::Postgres(native, schema)))
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
    /// Token mode with PKCE: the S256 challenge the code's verifier must match.
    #[serde(default)]
    pub code_challenge: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    #[error("store.url `{0}` is not usable: {1}")]
    BadUrl(String, String),
    #[error("cannot create the folder for the database {0}: {1}")]
    Folder(String, std::io::Error),
    #[error("cannot open the database: {0}")]
    Open(sqlx::Error),
    #[error("cannot migrate the database schema: {0}")]
    Migrate(String),
    #[error("cannot use the session store: {0}")]
    Sessions(String),
}

impl Store {
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }

    /// Stores a login transaction; beyond `per_browser` of its browser's (`tx.browser_binding`),
    /// the oldest of them is removed, in the same transaction.
    pub async fn put_login(
        &self,
        state: &str,
        tx: &LoginTransaction,
        expires_at: OffsetDateTime,
        per_browser: usize,
    ) -> Result<(), sqlx::Error> {
        let data = serde_json::to_string(tx).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let state_hash = crypto::sha256_b64(state);
        let mut db = self.pool.begin().await?;
        sqlx::query("INSERT INTO login_transactions (state_hash, provider, data, expires_at, binding) VALUES ($1, $2, $3, $4, $5)")
            .bind(&state_hash)
            .bind(&tx.provider)
            .bind(data)
            .bind(expires_at.unix_timestamp())
            .bind(&tx.browser_binding)
            .execute(&mut *db)
            .await?;
        // Every transaction has the same lifetime, so the latest to expire are the newest.
        sqlx::query(
            "DELETE FROM login_transactions WHERE binding = $1 AND state_hash <> $2 AND state_hash NOT IN (
                 SELECT state_hash FROM login_transactions WHERE binding = $1 AND state_hash <> $2
                 ORDER BY expires_at DESC, state_hash LIMIT $3)",
        )
        .bind(&tx.browser_binding)
        .bind(&state_hash)
        .bind(i64::try_from(per_browser.saturating_sub(1)).unwrap_or(i64::MAX))
        .execute(&mut *db)
        .await?;
        db.commit().await
    }

    /// Removes and returns the transaction for `state`, once. An expired one is removed and not returned.
    pub async fn take_login(
        &self,
        state: &str,
        now: OffsetDateTime,
    ) -> Result<Option<LoginTransaction>, sqlx::Error> {
        let row: Option<(String, i64)> = sqlx::query_as(
            "DELETE FROM login_transactions WHERE state_hash = $1 RETURNING data, expires_at",
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
        sqlx::query("DELETE FROM login_transactions WHERE expires_at <= $1")
            .bind(now.unix_timestamp())
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected())
    }
}
