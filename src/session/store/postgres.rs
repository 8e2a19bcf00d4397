//! Session records in Postgres: tower-sessions-sqlx-store's table (its schema and expiry sweep) in
//! the broker's schema, with our own reads and writes keyed by [`SessionKey`].

use std::sync::Arc;

use bytes::Bytes;
use time::OffsetDateTime;
use tower_sessions::session_store::{self, ExpiredDeletion};

use super::backend;
use crate::store::session_key::SessionKey;

#[derive(Clone, Debug)]
pub struct PgSessions {
    /// The table's schema and expiry sweep; it never sees a record.
    table: tower_sessions_sqlx_store::PostgresStore,
    pool: sqlx::PgPool,
    sql: Arc<Queries>,
}

#[derive(Debug)]
struct Queries {
    insert: String,
    update: String,
    select: String,
    delete: String,
}

impl PgSessions {
    /// `schema` must already be a checked identifier ([`crate::config::valid_schema`]).
    pub fn new(pool: sqlx::PgPool, schema: &str) -> Result<Self, String> {
        let table = tower_sessions_sqlx_store::PostgresStore::new(pool.clone())
            .with_schema_name(schema)
            .map_err(|e| e.to_string())?
            .with_table_name("tower_sessions")
            .map_err(|e| e.to_string())?;
        let t = format!("\"{schema}\".\"tower_sessions\"");
        let sql = Queries {
            insert: format!(
                "INSERT INTO {t} (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING"
            ),
            update: format!("UPDATE {t} SET data = $2, expiry_date = $3 WHERE id = $1"),
            select: format!("SELECT data FROM {t} WHERE id = $1"),
            delete: format!("DELETE FROM {t} WHERE id = $1"),
        };
        Ok(PgSessions {
            table,
            pool,
            sql: Arc::new(sql),
        })
    }

    /// Creates the table if it is missing. Instances starting together on a new schema take turns
    /// under a Postgres advisory lock: two `CREATE TABLE IF NOT EXISTS` at once can both try to
    /// create the table's type, and the second then fails.
    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        /// "oidc-brk", the lock every broker instance takes for this step.
        const LOCK: i64 = 0x6f69_6463_2d62_726b;
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK)
            .execute(&mut *conn)
            .await?;
        let result = self.table.migrate().await;
        let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(LOCK)
            .execute(&mut *conn)
            .await;
        result.and(unlocked.map(|_| ()))
    }

    pub(super) async fn insert(
        &self,
        key: &SessionKey,
        data: Vec<u8>,
        expiry: OffsetDateTime,
    ) -> session_store::Result<bool> {
        sqlx::query(&self.sql.insert)
            .bind(key.as_str())
            .bind(data)
            .bind(expiry)
            .execute(&self.pool)
            .await
            .map(|r| r.rows_affected() == 1)
            .map_err(backend)
    }

    pub(super) async fn update(
        &self,
        key: &SessionKey,
        data: Vec<u8>,
        expiry: OffsetDateTime,
    ) -> session_store::Result<()> {
        sqlx::query(&self.sql.update)
            .bind(key.as_str())
            .bind(data)
            .bind(expiry)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    pub(super) async fn fetch(&self, key: &SessionKey) -> session_store::Result<Option<Bytes>> {
        let row: Option<(Vec<u8>,)> = sqlx::query_as(&self.sql.select)
            .bind(key.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(row.map(|(d,)| Bytes::from(d)))
    }

    pub(super) async fn remove(&self, key: &SessionKey) -> session_store::Result<()> {
        sqlx::query(&self.sql.delete)
            .bind(key.as_str())
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    pub(super) async fn delete_expired(&self) -> session_store::Result<()> {
        self.table.delete_expired().await
    }
}
