//! The session store for the embedded SQLite default: tower-sessions-sqlx-store for the schema and
//! every write, and a synchronous read path for `load`, the session check every page load pays for.
//!
//! sqlx runs each SQLite connection on a thread of its own, so one query costs several thread
//! hand-offs — more than the point read itself. `load` instead reads the row by primary key on the
//! calling thread through a small pool of read-only connections. In WAL mode readers never wait for
//! writers; if the database is busy anyway (a checkpoint), the read falls back to the sqlx path.
//! Before that, a record read earlier is answered from memory if the WAL-index header shows that
//! nothing was committed since ([`VersionedCache`]); otherwise the read is a fresh read
//! transaction. Either way a revoked session is gone at its next request.
//!
//! [`RedisSessions`] keeps the records in Redis instead, and [`SessionBackend`] is the one type
//! the session layer sees, whichever store is configured.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fred::types::SetOptions;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::SqliteStore;

use bytes::Bytes;

use super::record_cache::{Fence, Tracker};
use super::sqlite_cache::{VersionedCache, WalWatch};

/// How long a request waits for Redis before it answers 503.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

const MAX_IDLE_READERS: usize = 8;

#[derive(Clone, Debug)]
pub struct SqliteSessions {
    writer: SqliteStore,
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
    fn read(&self, id: &Id) -> Result<Option<Vec<u8>>, ()> {
        let conn = self.checkout().ok_or(())?;
        let row = conn
            .prepare_cached("SELECT data FROM tower_sessions WHERE id = ?1")
            .and_then(|mut stmt| {
                stmt.query_row([id.to_string()], |r| r.get::<_, Vec<u8>>(0))
                    .optional()
            });
        self.checkin(conn);
        row.map_err(|_| ())
    }
}

impl SqliteSessions {
    pub fn new(pool: sqlx::SqlitePool, path: PathBuf) -> Self {
        SqliteSessions {
            writer: SqliteStore::new(pool.clone()),
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
        self.writer.migrate().await
    }
}

#[async_trait]
impl SessionStore for SqliteSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.writer.create(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        update_only(
            &self.pool,
            "UPDATE tower_sessions SET data = $2, expiry_date = $3 WHERE id = $1",
            record,
        )
        .await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let readers = &self.readers;
        // Taken before the read: a commit racing it only makes the entry look older.
        let version = readers.watch.as_ref().and_then(WalWatch::version);
        if let Some(v) = &version
            && let Some(data) = readers.cache.get(id, v)
        {
            return unexpired(&data);
        }
        let data = match readers.read(id) {
            Ok(data) => data,
            Err(()) => {
                readers.cache.remove(id);
                return self.writer.load(id).await;
            }
        };
        let Some(data) = data else {
            readers.cache.remove(id);
            return Ok(None);
        };
        let data = Bytes::from(data);
        if let Some(v) = version {
            readers.cache.put(*id, data.clone(), v);
        }
        unexpired(&data)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.writer.delete(id).await
    }
}

#[async_trait]
impl ExpiredDeletion for SqliteSessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.writer.delete_expired().await
    }
}

fn unexpired(data: &[u8]) -> session_store::Result<Option<Record>> {
    let record: Record =
        rmp_serde::from_slice(data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
    Ok((record.expiry_date > OffsetDateTime::now_utc()).then_some(record))
}

/// Saves an existing record and never creates one. tower-sessions creates new records through
/// `create`; a `save` whose record is gone is a request that was still using a session when it
/// was ended, and writing it back would bring a revoked session back to life.
async fn update_only<DB>(
    pool: &sqlx::Pool<DB>,
    sql: &str,
    record: &Record,
) -> session_store::Result<()>
where
    DB: sqlx::Database,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'c> &'c mut <DB as sqlx::Database>::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> OffsetDateTime: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let data =
        rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
    sqlx::query::<DB>(sql)
        .bind(record.id.to_string())
        .bind(data)
        .bind(record.expiry_date)
        .execute(pool)
        .await
        .map(|_| ())
        .map_err(backend)
}

/// Session records in Postgres: tower-sessions-sqlx-store's table, saved with [`update_only`].
#[derive(Clone, Debug)]
pub struct PgSessions {
    store: tower_sessions_sqlx_store::PostgresStore,
    pool: sqlx::PgPool,
    update: Arc<str>,
}

impl PgSessions {
    /// `schema` must already be a checked identifier ([`super::valid_schema`]).
    pub fn new(pool: sqlx::PgPool, schema: &str) -> Result<Self, String> {
        let store = tower_sessions_sqlx_store::PostgresStore::new(pool.clone())
            .with_schema_name(schema)
            .map_err(|e| e.to_string())?
            .with_table_name("tower_sessions")
            .map_err(|e| e.to_string())?;
        let update = Arc::from(format!(
            "UPDATE \"{schema}\".\"tower_sessions\" SET data = $2, expiry_date = $3 WHERE id = $1"
        ));
        Ok(PgSessions {
            store,
            pool,
            update,
        })
    }

    pub async fn migrate(&self) -> Result<(), sqlx::Error> {
        self.store.migrate().await
    }
}

#[async_trait]
impl SessionStore for PgSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.store.create(record).await
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        update_only(&self.pool, &self.update, record).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.store.load(id).await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.store.delete(id).await
    }
}

#[async_trait]
impl ExpiredDeletion for PgSessions {
    async fn delete_expired(&self) -> session_store::Result<()> {
        self.store.delete_expired().await
    }
}

/// Session records in Redis (or a Redis Cluster or Sentinel set, by URL), each under
/// `{prefix}{id}` with the record's expiry as the key's `EXAT`, so Redis removes what has expired.
/// A save never recreates a deleted record (`SET … XX`): a session revoked on another instance
/// stays revoked even if a request that was using it finishes afterwards.
///
/// One connection, on which concurrent commands are pipelined: fewer, fuller round trips cost
/// Redis and the broker less than a pool of connections each carrying a few. Unless turned off
/// (`[sessions] local_cache = false`) and not on a Cluster, records read for the session check are
/// kept in a cache that Redis invalidates and that is used only after a fence shows every earlier
/// change has arrived (see [`Tracker`]), so a revocation holds at the next request either way.
#[derive(Clone)]
pub struct RedisSessions {
    client: fred::clients::Client,
    tracker: Option<Arc<Tracker>>,
    prefix: Arc<str>,
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessions")
            .field("prefix", &self.prefix)
            .field("local_cache", &self.tracker.is_some())
            .finish_non_exhaustive()
    }
}

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
}

impl RedisSessions {
    /// Connects in the background: a Redis that is down at start makes `/readyz` red and requests
    /// answer 503 until it is back, like a Redis that goes away later.
    pub async fn connect(url: &str, prefix: &str, local_cache: bool) -> Result<Self, String> {
        use fred::prelude::*;
        use fred::types::config::ServerConfig;
        let mut config = Config::from_url(url).map_err(|e| e.to_string())?;
        // Invalidations arrive on the connection that reads, which takes RESP3 (Redis 6+). On a
        // Cluster the fence and the keys would be on different nodes.
        let cached = local_cache && !matches!(config.server, ServerConfig::Clustered { .. });
        if cached {
            config.version = fred::types::RespVersion::RESP3;
        }
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
                p.broadcast_channel_capacity = 1024;
            })
            .set_policy(ReconnectPolicy::new_constant(0, 500))
            .build()
            .map_err(|e| e.to_string())?;
        let tracker = cached.then(|| Tracker::start(&client, prefix));
        client.connect();
        if tokio::time::timeout(Duration::from_secs(3), client.wait_for_connect())
            .await
            .is_err()
        {
            tracing::warn!("Redis is not reachable yet; retrying in the background");
        }
        Ok(RedisSessions {
            client,
            tracker,
            prefix: Arc::from(prefix),
        })
    }

    fn key(&self, id: &Id) -> String {
        format!("{}{}", self.prefix, id)
    }

    fn forget(&self, key: &str) {
        if let Some(t) = &self.tracker {
            t.cache.forget([key]);
        }
    }

    async fn write(&self, record: &Record, opt: SetOptions) -> session_store::Result<bool> {
        use fred::prelude::*;
        let data =
            rmp_serde::to_vec(record).map_err(|e| session_store::Error::Encode(e.to_string()))?;
        let key = self.key(&record.id);
        self.forget(&key);
        let set: Result<Option<String>, _> = self
            .client
            .set(
                key.as_str(),
                data.as_slice(),
                Some(Expiration::EXAT(record.expiry_date.unix_timestamp())),
                Some(opt),
                false,
            )
            .await;
        self.forget(&key);
        Ok(set.map_err(backend)?.is_some())
    }

    /// The stored bytes at `key`: from the cache when it holds them and a fence says they are
    /// current, from Redis otherwise.
    async fn read(&self, key: &str) -> session_store::Result<Option<Bytes>> {
        use fred::prelude::*;
        let Some(tracker) = &self.tracker else {
            return self.client.get(key).await.map_err(backend);
        };
        if tracker.cache.get(key).is_some() {
            match tracker.fence().await {
                Fence::Fresh => {
                    if let Some(hit) = tracker.cache.get(key) {
                        return Ok(Some(hit));
                    }
                }
                Fence::Untracked => {}
                Fence::Failed => return Err(backend("Redis did not answer")),
            }
        } else {
            tracker.nudge();
        }
        let epoch = tracker.cache.epoch();
        let data: Option<Bytes> = self.client.get(key).await.map_err(backend)?;
        if let Some(d) = &data {
            tracker.cache.fill(epoch, key, d.clone());
        }
        Ok(data)
    }

    pub async fn ping(&self) -> Result<(), String> {
        use fred::prelude::*;
        self.client
            .ping::<String>(None)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// The id Redis gives this instance's connection (`CLIENT ID`), for diagnostics and tests.
    pub async fn connection_id(&self) -> Result<i64, String> {
        use fred::prelude::*;
        self.client
            .custom(fred::cmd!("CLIENT"), vec!["ID"])
            .await
            .map_err(|e: fred::error::Error| e.to_string())
    }
}

#[async_trait]
impl SessionStore for RedisSessions {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while !self.write(record, SetOptions::NX).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.write(record, SetOptions::XX).await.map(|_| ())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let data = self.read(&self.key(id)).await?;
        data.map(|d| {
            rmp_serde::from_slice(&d).map_err(|e| session_store::Error::Decode(e.to_string()))
        })
        .transpose()
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        use fred::prelude::*;
        let key = self.key(id);
        self.forget(&key);
        let deleted: Result<i64, _> = self.client.del(key.as_str()).await;
        self.forget(&key);
        deleted.map_err(backend)?;
        Ok(())
    }
}

/// Where session records live: the SQL store's own table (SQLite or Postgres), or Redis.
#[derive(Clone, Debug)]
pub enum SessionBackend {
    Sqlite(SqliteSessions),
    Postgres(PgSessions),
    Redis(RedisSessions),
}

impl SessionBackend {
    pub fn name(&self) -> &'static str {
        match self {
            SessionBackend::Sqlite(_) => "sqlite",
            SessionBackend::Postgres(_) => "postgres",
            SessionBackend::Redis(_) => "redis",
        }
    }

    /// Session records held in this instance's local cache (Postgres has none).
    pub fn cached_records(&self) -> usize {
        match self {
            SessionBackend::Redis(r) => r.tracker.as_ref().map_or(0, |t| t.cache.len()),
            SessionBackend::Sqlite(s) => s.readers.cache.len(),
            SessionBackend::Postgres(_) => 0,
        }
    }

    /// Redis's id for the connection (`CLIENT ID`); `None` for the SQL stores.
    pub async fn redis_connection_id(&self) -> Option<Result<i64, String>> {
        match self {
            SessionBackend::Redis(r) => Some(r.connection_id().await),
            _ => None,
        }
    }

    /// Whether the session store answers (the SQL ones are pinged through [`super::Store`]).
    pub async fn ping(&self) -> Result<(), String> {
        match self {
            SessionBackend::Redis(r) => r.ping().await,
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.create(record).await,
            SessionBackend::Postgres(s) => s.create(record).await,
            SessionBackend::Redis(s) => s.create(record).await,
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.save(record).await,
            SessionBackend::Postgres(s) => s.save(record).await,
            SessionBackend::Redis(s) => s.save(record).await,
        }
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            SessionBackend::Sqlite(s) => s.load(id).await,
            SessionBackend::Postgres(s) => s.load(id).await,
            SessionBackend::Redis(s) => s.load(id).await,
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.delete(id).await,
            SessionBackend::Postgres(s) => s.delete(id).await,
            SessionBackend::Redis(s) => s.delete(id).await,
        }
    }
}

#[async_trait]
impl ExpiredDeletion for SessionBackend {
    async fn delete_expired(&self) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.delete_expired().await,
            SessionBackend::Postgres(s) => s.delete_expired().await,
            // Redis expires its keys itself.
            SessionBackend::Redis(_) => Ok(()),
        }
    }
}
