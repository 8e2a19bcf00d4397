//! The `/auth/me` render cache: the body of the session check, kept beside the record it was
//! rendered from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::SessionRecord;

/// Rendered `/auth/me` bodies keyed by the exact session record string they were rendered from.
/// The session store stays the authority on every request — the record is still read, so a revoked
/// or expired session is never answered from here — the cache only spares parsing and rendering
/// the same record again. Bounded: it is emptied when full.
#[derive(Default)]
pub struct MeCache {
    entries: Mutex<HashMap<Arc<str>, CachedMe>>,
}

/// A parsed record and the `/auth/me` body rendered from it.
type CachedMe = (Arc<SessionRecord>, Bytes);

const ME_CACHE_MAX: usize = 10_000;

impl MeCache {
    pub fn get(&self, raw: &str) -> Option<(Arc<SessionRecord>, Bytes)> {
        self.entries.lock().ok()?.get(raw).cloned()
    }

    pub fn put(&self, raw: Arc<str>, record: Arc<SessionRecord>, body: Bytes) {
        if let Ok(mut e) = self.entries.lock() {
            if e.len() >= ME_CACHE_MAX {
                e.clear();
            }
            e.insert(raw, (record, body));
        }
    }
}
