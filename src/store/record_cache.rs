//! Session records this instance read from Redis, kept while Redis tells it when they change
//! (opt-in: `[sessions] local_cache = true`).
//!
//! Redis's server-assisted client-side caching: the read that fills an entry goes out as
//! `CLIENT CACHING yes` + `GET` on a connection in `CLIENT TRACKING ON OPTIN` mode, so Redis
//! remembers that this connection holds the key and pushes an invalidation on the same connection
//! when any instance writes, deletes or expires it. The entry is dropped when that push arrives.
//!
//! What keeps an entry from outliving the record it copies:
//! - it is filled only when `CLIENT CACHING yes` succeeded, i.e. the connection is tracking — a
//!   fresh connection that tracks nothing yet cannot fill it;
//! - it is filled only if no invalidation, write or flush happened on this instance between the
//!   start of the read and the fill (the epoch), so a push that overtook the fill is not lost;
//! - this instance's own writes and deletes drop the entry before and after the command;
//! - a connection error, a reconnection or a lagging invalidation stream empties the cache, and
//!   while the client is not connected the cache is not used at all (requests get 503 as without it);
//! - every entry is used for at most [`MAX_AGE`], whatever happens to the pushes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest an entry is used, even if an invalidation was somehow lost.
pub const MAX_AGE: Duration = Duration::from_secs(5);
/// Entries kept; the cache is emptied when full.
const MAX_ENTRIES: usize = 10_000;

/// A record's stored bytes and when they were read.
type Entry = (Arc<[u8]>, Instant);

#[derive(Default)]
pub struct RecordCache {
    entries: Mutex<HashMap<String, Entry>>,
    /// Bumped, under the lock, by every invalidation, own write and flush.
    epoch: AtomicU64,
}

impl RecordCache {
    /// The record at `key`, if it is cached and young enough.
    pub fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let entries = self.entries.lock().ok()?;
        let (value, at) = entries.get(key)?;
        (at.elapsed() < MAX_AGE).then(|| value.clone())
    }

    /// Entries held (for tests and diagnostics).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    /// Taken before the read that may fill an entry.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Fills `key` unless anything was invalidated since `epoch` was taken.
    pub fn fill(&self, epoch: u64, key: &str, value: &[u8]) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if self.epoch.load(Ordering::SeqCst) != epoch {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key.to_string(), (Arc::from(value), Instant::now()));
    }

    /// Drops `key` (it was written, deleted or invalidated).
    pub fn forget<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for key in keys {
            entries.remove(key);
        }
    }

    /// Drops everything (the connection was lost, or invalidations may have been missed).
    pub fn flush(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            self.epoch.fetch_add(1, Ordering::SeqCst);
            entries.clear();
        }
    }

    #[cfg(test)]
    fn age(&self, key: &str, by: Duration) {
        if let Ok(mut entries) = self.entries.lock()
            && let Some((_, at)) = entries.get_mut(key)
            && let Some(earlier) = at.checked_sub(by)
        {
            *at = earlier;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_and_answers() {
        let c = RecordCache::default();
        let e = c.epoch();
        c.fill(e, "k", b"v1");
        assert_eq!(c.get("k").as_deref(), Some(&b"v1"[..]));
        assert_eq!(c.get("other"), None);
    }

    #[test]
    fn an_invalidation_during_the_read_keeps_the_read_out() {
        let c = RecordCache::default();
        let e = c.epoch();
        // The push for a write on another instance overtook the answer to our read.
        c.forget(["k"]);
        c.fill(e, "k", b"old");
        assert_eq!(c.get("k"), None);
    }

    #[test]
    fn a_flush_during_the_read_keeps_the_read_out() {
        let c = RecordCache::default();
        let e = c.epoch();
        c.flush();
        c.fill(e, "k", b"old");
        assert_eq!(c.get("k"), None);
    }

    #[test]
    fn forget_and_flush_drop_entries() {
        let c = RecordCache::default();
        c.fill(c.epoch(), "a", b"1");
        c.fill(c.epoch(), "b", b"2");
        c.forget(["a"]);
        assert_eq!(c.get("a"), None);
        assert!(c.get("b").is_some());
        c.flush();
        assert_eq!(c.get("b"), None);
    }

    #[test]
    fn an_entry_is_used_for_max_age_at_most() {
        let c = RecordCache::default();
        c.fill(c.epoch(), "k", b"v");
        c.age("k", MAX_AGE);
        assert_eq!(c.get("k"), None);
    }

    #[test]
    fn is_bounded() {
        let c = RecordCache::default();
        for i in 0..=MAX_ENTRIES {
            c.fill(c.epoch(), &i.to_string(), b"v");
        }
        assert!(c.entries.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
