//! Which session a public handle names, remembered: a handle names one session key for the
//! session's whole life (the index row is written once, at sign-in), so a bearer token's request
//! need not read the index row again to find its record. The record stays the authority — it is
//! still read on every request, and an ended session's record is gone — so a remembered handle
//! never lets an ended session through; it only spares one store round trip.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::store::session_key::SessionKey;

/// Handles remembered at most; the map is emptied when full (the next request of each reads its
/// index row again). Only handles of real sessions get in: they are learned from the index.
const MAX: usize = 10_000;

#[derive(Default)]
pub struct HandleKeys {
    keys: Mutex<HashMap<Box<str>, SessionKey>>,
}

impl HandleKeys {
    pub fn get(&self, handle: &str) -> Option<SessionKey> {
        self.keys.lock().ok()?.get(handle).cloned()
    }

    pub fn put(&self, handle: &str, key: SessionKey) {
        if let Ok(mut keys) = self.keys.lock() {
            if keys.len() >= MAX {
                keys.clear();
            }
            keys.insert(handle.into(), key);
        }
    }

    /// Forgets a handle whose session is gone (or was not live when last asked).
    pub fn forget(&self, handle: &str) {
        if let Ok(mut keys) = self.keys.lock() {
            keys.remove(handle);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.lock().map(|k| k.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: usize) -> SessionKey {
        SessionKey::from_stored(format!("k{n}"))
    }

    #[test]
    fn remembers_forgets_and_stays_bounded() {
        let h = HandleKeys::default();
        h.put("a", key(1));
        assert!(h.get("a") == Some(key(1)));
        h.forget("a");
        assert!(h.get("a").is_none());
        for n in 0..MAX + 5 {
            h.put(&format!("h{n}"), key(n));
        }
        assert!(h.len() <= MAX);
        assert!(h.get(&format!("h{}", MAX + 4)) == Some(key(MAX + 4)));
    }
}
