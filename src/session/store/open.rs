//! Opening the stores a broker runs on: the SQL store, and the session store beside it (the same
//! database, or Redis).

use time::OffsetDateTime;

use super::{PgSessions, RedisSessions, SessionBackend, SqliteSessions, hashed_ids};
use crate::config::{Config, SessionStoreConfig};
use crate::store::{Native, Store, StoreOpenError};

/// The SQL store and the session store, opened from a configuration.
#[derive(Clone)]
pub struct Backends {
    pub store: Store,
    pub sessions: SessionBackend,
}

impl Backends {
    /// Opens both stores and brings their schemas up to date. Instances starting together on a
    /// new store race to create it (the file, the schema, the migrations table, the session
    /// table): the loser's step fails on what the winner is making or just made, so that step is
    /// tried again, and then finds the work done.
    pub async fn open(config: &Config) -> Result<Backends, StoreOpenError> {
        let mut attempt = 0;
        loop {
            match Self::open_once(config).await {
                Err(e) if attempt < 3 && lost_a_race(&e) => {
                    attempt += 1;
                    tracing::info!(attempt, reason = %e, "opening the store failed; trying again (another instance may be creating it)");
                    tokio::time::sleep(std::time::Duration::from_millis(150 * attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn open_once(config: &Config) -> Result<Backends, StoreOpenError> {
        let (store, native) = Store::open(config).await?;
        let (sql_sessions, sqlite) = match native {
            Native::Sqlite(pool, file) => {
                let s = SqliteSessions::new(pool, file);
                s.migrate()
                    .await
                    .map_err(|e| StoreOpenError::Migrate(e.to_string()))?;
                (SessionBackend::Sqlite(s), true)
            }
            Native::Postgres(pool, schema) => {
                let s = PgSessions::new(pool, &schema).map_err(StoreOpenError::Migrate)?;
                s.migrate()
                    .await
                    .map_err(|e| StoreOpenError::Migrate(e.to_string()))?;
                (SessionBackend::Postgres(s), false)
            }
        };
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let moved = hashed_ids::upgrade_sql(store.pool(), sqlite, now)
            .await
            .map_err(|e| StoreOpenError::Migrate(e.to_string()))?;
        if moved > 0 {
            tracing::info!(moved, "session rows moved from clear ids to hashed keys");
        }
        let sessions = match &config.sessions {
            Some(SessionStoreConfig {
                url,
                prefix,
                local_cache,
            }) => SessionBackend::Redis(
                RedisSessions::connect(url, prefix, *local_cache)
                    .await
                    .map_err(StoreOpenError::Sessions)?,
            ),
            None => sql_sessions,
        };
        Ok(Backends { store, sessions })
    }
}

/// What another instance creating the same store at the same moment makes fail: a migration step,
/// or SQLite's "database is locked" (`SQLITE_BUSY`) while it turns a new file to WAL, a lock
/// SQLite does not wait for.
fn lost_a_race(e: &StoreOpenError) -> bool {
    match e {
        StoreOpenError::Migrate(_) => true,
        StoreOpenError::Open(sqlx::Error::Database(d)) => d.code().as_deref() == Some("5"),
        _ => false,
    }
}
