//! The session store for the embedded SQLite default: tower-sessions-sqlx-store for the schema and
//! every write, and a synchronous read path for `load`, the session check every page load pays for.
//!
//! sqlx runs each SQLite connection on a thread of its own, so one query costs several thread
//! hand-offs — more than the point read itself. `load` instead reads the row by primary key on the
//! calling thread through a small pool of read-only connections. In WAL mode readers never wait for
//! writers; if the database is busy anyway (a checkpoint), the read falls back to the sqlx path.
//! Every read is a fresh read transaction, so a revoked session is gone at its next request.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};
use tower_sessions_sqlx_store::SqliteStore;

const MAX_IDLE_READERS: usize = 8;

#[derive(Clone, Debug)]
pub struct SqliteSessions {
    writer: SqliteStore,
    readers: Arc<ReaderPool>,
}

#[derive(Debug)]
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
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
    pub fn new(writer: SqliteStore, path: PathBuf) -> Self {
        SqliteSessions {
            writer,
            readers: Arc::new(ReaderPool {
                path,
                idle: Mutex::new(Vec::new()),
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
        self.writer.save(record).await
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        let data = match self.readers.read(id) {
            Ok(data) => data,
            Err(()) => return self.writer.load(id).await,
        };
        let Some(data) = data else { return Ok(None) };
        let record: Record = rmp_serde::from_slice(&data)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok((record.expiry_date > OffsetDateTime::now_utc()).then_some(record))
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
