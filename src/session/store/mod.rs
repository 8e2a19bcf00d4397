//! Where session records live: the SQL store's own table (SQLite or Postgres), or Redis — and the
//! one type the session layer sees, whichever is configured ([`SessionBackend`]).
//!
//! Every backend stores a record under its [`SessionKey`] (SHA-256 of the id, the cookie value)
//! and with its id blanked out of the stored bytes: nothing a store holds is a working cookie. The
//! key is computed once, where tower-sessions hands the id over; sessions opened from the index
//! (bearer tokens, revocation, lists) never see an id at all, only the key the index row keeps.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use time::OffsetDateTime;
use tower_sessions::Session;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

use crate::store::session_key::{self, SessionKey};

mod hashed_ids;
mod open;
mod postgres;
mod record_cache;
mod redis;
mod sqlite;
mod sqlite_cache;

pub use open::Backends;
pub use postgres::PgSessions;
pub use redis::RedisSessions;
pub use sqlite::SqliteSessions;

fn backend(e: impl std::fmt::Display) -> session_store::Error {
    session_store::Error::Backend(e.to_string())
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
            SessionBackend::Redis(r) => r.cached_records(),
            SessionBackend::Sqlite(s) => s.cached_records(),
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

    /// Whether the session store answers (the SQL ones are pinged through the SQL store).
    pub async fn ping(&self) -> Result<(), String> {
        match self {
            SessionBackend::Redis(r) => r.ping().await,
            _ => Ok(()),
        }
    }

    /// The record stored under `key`, unless it is missing or expired; its id is `id`.
    async fn load_as(&self, key: &SessionKey, id: Id) -> session_store::Result<Option<Record>> {
        let data = match self {
            SessionBackend::Sqlite(s) => s.fetch(key).await?,
            SessionBackend::Postgres(s) => s.fetch(key).await?,
            SessionBackend::Redis(s) => s.fetch(key).await?,
        };
        data.map(|d| unexpired(&d, id))
            .transpose()
            .map(Option::flatten)
    }

    /// The record of the session with this key (its id is not known here, and left blank).
    pub async fn load_key(&self, key: &SessionKey) -> session_store::Result<Option<Record>> {
        self.load_as(key, Id(0)).await
    }

    pub async fn delete_key(&self, key: &SessionKey) -> session_store::Result<()> {
        match self {
            SessionBackend::Sqlite(s) => s.remove(key).await,
            SessionBackend::Postgres(s) => s.remove(key).await,
            SessionBackend::Redis(s) => s.remove(key).await,
        }
    }

    /// Saves an existing record under `key` and never creates one: a save whose record is gone
    /// is a request that was still using a session when it was ended, and writing it back would
    /// bring a revoked session back to life.
    async fn update(&self, key: &SessionKey, record: &Record) -> session_store::Result<()> {
        let data = encode(record)?;
        let expiry = record.expiry_date;
        match self {
            SessionBackend::Sqlite(s) => s.update(key, data, expiry).await,
            SessionBackend::Postgres(s) => s.update(key, data, expiry).await,
            SessionBackend::Redis(s) => s.update(key, data, expiry).await,
        }
    }

    /// Writes a new record under `key`; `false` if the key is taken.
    async fn insert(&self, key: &SessionKey, record: &Record) -> session_store::Result<bool> {
        let data = encode(record)?;
        let expiry = record.expiry_date;
        match self {
            SessionBackend::Sqlite(s) => s.insert(key, data, expiry).await,
            SessionBackend::Postgres(s) => s.insert(key, data, expiry).await,
            SessionBackend::Redis(s) => s.insert(key, data, expiry).await,
        }
    }

    /// A session opened by its key (from an index row) rather than by a cookie: for bearer
    /// tokens and broker refresh tokens. It can be read, saved and ended, not re-created.
    pub fn open_by_key(&self, key: SessionKey) -> Session {
        let store = KeyedSession {
            backend: self.clone(),
            key,
        };
        // The id only stands in: every operation goes to `key`, and this session sets no cookie.
        Session::new(Some(Id(0)), Arc::new(store), None)
    }
}

fn encode(record: &Record) -> session_store::Result<Vec<u8>> {
    session_key::encode(record).map_err(|e| session_store::Error::Encode(e.to_string()))
}

fn unexpired(data: &Bytes, id: Id) -> session_store::Result<Option<Record>> {
    let record =
        session_key::decode(data, id).map_err(|e| session_store::Error::Decode(e.to_string()))?;
    Ok((record.expiry_date > OffsetDateTime::now_utc()).then_some(record))
}

#[async_trait]
impl SessionStore for SessionBackend {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        while !self.insert(&SessionKey::of(&record.id), record).await? {
            record.id = Id::default();
        }
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.update(&SessionKey::of(&record.id), record).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.load_as(&SessionKey::of(id), *id).await
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.delete_key(&SessionKey::of(id)).await
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

/// The store of a session opened by key: whatever id tower-sessions passes, it is `key`.
#[derive(Clone, Debug)]
struct KeyedSession {
    backend: SessionBackend,
    key: SessionKey,
}

#[async_trait]
impl SessionStore for KeyedSession {
    async fn create(&self, _record: &mut Record) -> session_store::Result<()> {
        Err(backend("a session opened by key is never created"))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.backend.update(&self.key, record).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        self.backend.load_as(&self.key, *id).await
    }

    async fn delete(&self, _id: &Id) -> session_store::Result<()> {
        self.backend.delete_key(&self.key).await
    }
}
