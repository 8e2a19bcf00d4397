//! The session store for the embedded SQLite default: tower-sessions-sqlx-store's table (its
//! schema and expiry sweep), our own writes keyed by [`SessionKey`], and a synchronous read path
//! for the session check every page load pays for.
//!
//! sqlx runs each SQLite connection on a thread of its own, so one query costs several thread
//! hand-offs — more than the point read itself. The check instead reads the row by primary key on
//! the calling thread through a small pool of read-only connections. In WAL mode readers never
//! wait for writers; if the database is busy anyway (a checkpoint), the read falls back to the sqlx
//! path. Before that, a record read earlier is answered from memory if the WAL-index header shows
//! that nothing was committed since ([`VersionedCache`]); otherwise the read is a fresh read
//! transaction. Either way a revoked session is gone at its next request.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use time::OffsetDateTime;
use tower_sessions::session_store::{self, ExpiredDeletion};
use tower_sessions_sqlx_store::SqliteStore;

use super::backend;
use super::sqlite_cache::{VersionedCache, WalWatch};
use crate::store::session_key::SessionKey;

const MAX_IDLE_READERS: usize = 8;

#[derive(Clone, Debug)]
pub struct SqliteSessions {
    /// The table's schema and expiry sweep; it never sees a record.
    table: SqliteStore,
    pool: sqlx::SqlitePool,
    readers: Arc<ReaderPool>,
}

#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// `None` if the database is not in WAL mode: then every check reads.
    watch: Option<WalWatch>,
    cache: VersionedCache,
}

impl ReaderPool {
    fn checkout(&self) -> Option<Connection> {
        if let Some(c) = self.idle.lock().ok().and_then(|mut idle| idle.pop()) {
            return Some(c);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI;
        Connection::open_with_flags(&self.path, flags).ok()
    }

    fn checkin(&self, c: Connection) {
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < MAX_IDLE_READERS
        {
            idle.push(c);
        }
    }

    /// `Err` when the fast path cannot answer (busy, unreadable); `Ok(None)` when there is no row.
    fn read(&self, key: &SessionKey) -> Result<Option<Vec<u8>>, ()> {
        let conn = self.checkout().ok_or(())?;
        let row = conn
            .prepare_cached("SELECT data FROM tower_sessions WHERE id = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([key.as_str()], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
            });
        self.checkin(conn);
        row.map_err(|_| ())
    }
}

impl SqliteSessions {
    pub fn new(pool: sqlx::SqlitePool, path: PathBuf) -> Self {
        SqliteSessions {
            table: SqliteStore::new(pool.clone()),
            pool,
            readers: Arc::new(ReaderPool {
                watch: WalWatch::open(&path),
                path,
                idle: Mutex::new(Vec::new()),
                cache: VersionedCache::default(),
            }),
        }
    }

    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        self.table.migrate().await
    }

    pub(super) fn cached_records(&self) -> usize {
        self.readers.cache.len()
    }

    pub(super) async fn insert(
        &self,
        key: &SessionKey,
        data: Vec<u8>,
        expiry: OffsetDateTime,
    ) -> session_store::Result<bool> {
        sqlx::query(
            "INSERT INTO tower_sessions (id, data, expiry_date) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(key.as_str())
        .bind(data)
        // As tower-sessions-sqlx-store binds it, which its expiry sweep compares.
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
        sqlx::query("UPDATE tower_sessions SET data = $2, expiry_date = $3 WHERE id = $1")
            .bind(key.as_str())
            .bind(data)
            .bind(expiry)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(backend)
    }

    pub(super) async fn fetch(&self, key: &SessionKey) -> session_store::Result<Option<Bytes>> {
        let readers = &self.readers;
        // Taken before the read: a commit racing it only makes the entry look older.
        let version = readers.watch.as_ref().and_then(WalWatch::version);
        if let Some(v) = &version
            && let Some(data) = readers.cache.get(key, v)
        {
            return Ok(Some(data));
        }
        let data = match readers.read(key) {
            Ok(data) => data,
            Err(()) => {
                readers.cache.remove(key);
                // Boxed: the pool's future is large, and would make every read's as large.
                return Box::pin(self.fetch_pooled(key)).await;
            }
        };
        let Some(data) = data else {
            readers.cache.remove(key);
            return Ok(None);
        };
        let data = Bytes::from(data);
        if let Some(v) = version {
            readers.cache.put(key.clone(), data.clone(), v);
        }
        Ok(Some(data))
    }

    /// The read through sqlx, when the fast path cannot answer.
    async fn fetch_pooled(&self, key: &SessionKey) -> session_store::Result<Option<Bytes>> {
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT data FROM tower_sessions WHERE id = $1")
                .bind(key.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        Ok(row.map(|(d,)| Bytes::from(d)))
    }

    pub(super) async fn remove(&self, key: &SessionKey) -> session_store::Result<()> {
        sqlx::query("DELETE FROM tower_sessions WHERE id = $1")
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
