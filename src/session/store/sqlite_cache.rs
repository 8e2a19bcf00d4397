//! Session records this instance read from the SQLite file, kept for as long as the database has
//! not changed since — which the session check can tell with one small read of the WAL index,
//! without a read transaction.
//!
//! In WAL mode every committed transaction, by any connection of any process (the operator CLI
//! included), rewrites the WAL-index header: the first 48 bytes of the `-shm` file, stored twice
//! (<https://www.sqlite.org/walformat.html>; it holds a change counter, the last valid frame and
//! checksums). A writer updates the second copy, then the first, and SQLite's own readers trust the
//! header only when both copies agree; so do we. A record read after the header said `H` is
//! still current while the header still says `H`: nothing was committed in between. A commit
//! that raced the read only makes the entry look older than it is (it is read again).
//!
//! The `-shm` file is unlinked by the last connection to close the database, so [`WalWatch`]
//! keeps a connection of its own open for as long as it lives: the file it reads is the one every
//! other connection uses.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use crate::store::session_key::SessionKey;
use bytes::Bytes;
use rusqlite::{Connection, OpenFlags};

/// The WAL-index header, as read.
pub type WalVersion = [u8; HEADER];

const HEADER: usize = 48;
/// `iVersion`, the first field of the header, for the WAL-index format SQLite has used since 3.7.0.
const WAL_INDEX_VERSION: u32 = 3_007_000;
/// Entries kept; the cache is emptied when full.
const MAX_ENTRIES: usize = 10_000;

pub struct WalWatch {
    shm: File,
    /// Keeps the `-shm` file from being unlinked while we read it.
    _keeper: Mutex<Connection>,
}

impl std::fmt::Debug for WalWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalWatch").finish_non_exhaustive()
    }
}

impl WalWatch {
    /// `None` when the database is not in WAL mode (there is no `-shm` file to watch).
    pub fn open(db: &Path) -> Option<WalWatch> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let keeper = Connection::open_with_flags(db, flags).ok()?;
        let mode: String = keeper
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        // A read maps the WAL index, so the file exists from here on.
        keeper
            .query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()?;
        let mut shm = db.as_os_str().to_owned();
        shm.push("-shm");
        let watch = WalWatch {
            shm: File::open(shm).ok()?,
            _keeper: Mutex::new(keeper),
        };
        watch.version().map(|_| watch)
    }

    /// The committed state of the database, or `None` if the header cannot be trusted right now
    /// (a writer is updating it, or it is not initialised).
    pub fn version(&self) -> Option<WalVersion> {
        let mut both = [0u8; 2 * HEADER];
        self.shm.read_exact_at(&mut both, 0).ok()?;
        let (first, second) = both.split_at(HEADER);
        let version = u32::from_ne_bytes(first[..4].try_into().ok()?);
        // `isInit` is the byte at offset 12.
        (first == second && version == WAL_INDEX_VERSION && first[12] == 1)
            .then(|| first.try_into().ok())
            .flatten()
    }
}

/// Stored bytes of records, each with the database version it was read at or after.
#[derive(Default)]
pub struct VersionedCache {
    entries: Mutex<HashMap<SessionKey, (Bytes, WalVersion)>>,
}

impl std::fmt::Debug for VersionedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VersionedCache")
            .field("entries", &self.len())
            .finish()
    }
}

impl VersionedCache {
    /// The record's bytes if they were read at `now` (nothing was committed since).
    pub fn get(&self, key: &SessionKey, now: &WalVersion) -> Option<Bytes> {
        let entries = self.entries.lock().ok()?;
        let (data, at) = entries.get(key)?;
        (at == now).then(|| data.clone())
    }

    /// `read_at` must have been taken before the read that produced `data` started.
    pub fn put(&self, key: SessionKey, data: Bytes, read_at: WalVersion) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
            entries.insert(key, (data, read_at));
        }
    }

    /// Forgets `key` (it has no row, or the row could not be read).
    pub fn remove(&self, key: &SessionKey) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(key);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_db(dir: &Path) -> (std::path::PathBuf, Connection) {
        let path = dir.join("t.db");
        let c = Connection::open(&path).unwrap();
        c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))
            .unwrap();
        c.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        (path, c)
    }

    #[test]
    fn every_commit_changes_the_version_and_reads_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let (path, writer) = wal_db(dir.path());
        let watch = WalWatch::open(&path).unwrap();
        let v1 = watch.version().unwrap();
        let reader = Connection::open(&path).unwrap();
        let _: i64 = reader
            .query_row("SELECT v FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(watch.version().unwrap(), v1, "a read is not a change");
        writer.execute("UPDATE t SET v = 2", []).unwrap();
        let v2 = watch.version().unwrap();
        assert_ne!(v2, v1);
        // Another process's connection (here: another connection, same rules).
        reader.execute("DELETE FROM t", []).unwrap();
        assert_ne!(watch.version().unwrap(), v2);
        // A checkpoint moves no data: whether it changes the header or not, nothing is missed.
        writer
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let v3 = watch.version().unwrap();
        writer.execute("INSERT INTO t VALUES (3)", []).unwrap();
        assert_ne!(watch.version().unwrap(), v3, "a commit after a WAL restart");
    }

    #[test]
    fn no_watch_without_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rollback.db");
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE t (v INTEGER);").unwrap();
        assert!(WalWatch::open(&path).is_none());
    }

    #[test]
    fn an_entry_answers_only_at_its_version() {
        let c = VersionedCache::default();
        let id = SessionKey::of(&tower_sessions::session::Id::default());
        let (v1, v2) = ([1u8; HEADER], [2u8; HEADER]);
        c.put(id.clone(), Bytes::from_static(b"r"), v1);
        assert_eq!(c.get(&id, &v1).as_deref(), Some(&b"r"[..]));
        assert_eq!(c.get(&id, &v2), None);
        c.remove(&id);
        assert_eq!(c.get(&id, &v1), None);
    }
}
