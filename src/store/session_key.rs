//! The key a session is stored under: SHA-256 of its id (the cookie value), never the id itself.
//! A dump of the store — its tables, its Redis keys and values — is then no list of working
//! cookies: the key opens nothing, and the cookie cannot be worked back from it.
//!
//! No salt and no slow hash: a tower-sessions id is 128 random bits, so there is no dictionary to
//! try and no brute force that could reach it; what a password needs does not apply. A plain
//! SHA-256 costs the session check about 100 ns, once per request (the key is computed where the
//! cookie's id enters the store and passed on from there).

use std::cell::Cell;

use tower_sessions::session::{Id, Record};

use crate::crypto;

/// SHA-256 of a session id, base64url: how the store names a session.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionKey(String);

thread_local! {
    /// Keys computed on this thread, so a test can check the session check hashes once.
    static COMPUTED: Cell<u64> = const { Cell::new(0) };
}

impl SessionKey {
    pub fn of(id: &Id) -> SessionKey {
        COMPUTED.with(|c| c.set(c.get().wrapping_add(1)));
        SessionKey(crypto::sha256_b64(&id.to_string()))
    }

    /// A key as read back from the store (an index row).
    pub fn from_stored(key: String) -> SessionKey {
        SessionKey(key)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionKey({})", self.0.get(..8).unwrap_or_default())
    }
}

/// How many keys this thread has computed so far (for tests: the session check computes one).
pub fn computed_on_this_thread() -> u64 {
    COMPUTED.with(Cell::get)
}

/// The id a stored name holds in clear, if it is one: how versions before keys named sessions
/// (tower-sessions' 22-character form). A key is 43 characters, so the two never mix.
pub fn clear_id(stored: &str) -> Option<Id> {
    if stored.len() != 22 {
        return None;
    }
    stored.parse().ok()
}

/// The id a stored record carries in place of the real one. tower-sessions' record format has an
/// id field; the store writes this one and the loader puts back the id it was asked for.
const STORED_ID: Id = Id(0);

/// The record's stored bytes, without its id.
pub fn encode(record: &Record) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    // The fields of `Record`, in its order, with the id replaced: the same bytes as a `Record`
    // whose id is `STORED_ID`, without cloning its data.
    #[derive(serde::Serialize)]
    struct Stored<'a> {
        id: Id,
        data: &'a std::collections::HashMap<String, serde_json::Value>,
        expiry_date: time::OffsetDateTime,
    }
    rmp_serde::to_vec(&Stored {
        id: STORED_ID,
        data: &record.data,
        expiry_date: record.expiry_date,
    })
}

/// A stored record, given back the id it was loaded by.
pub fn decode(data: &[u8], id: Id) -> Result<Record, rmp_serde::decode::Error> {
    let mut record: Record = rmp_serde::from_slice(data)?;
    record.id = id;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Record {
        let mut data = std::collections::HashMap::new();
        data.insert("broker".into(), serde_json::json!("{\"handle\":\"ses_x\"}"));
        Record {
            id: Id::default(),
            data,
            expiry_date: time::OffsetDateTime::from_unix_timestamp(2_000_000_000).unwrap(),
        }
    }

    #[test]
    fn a_key_is_the_sha256_of_the_cookie_value() {
        let id = Id::default();
        let key = SessionKey::of(&id);
        assert_eq!(key.as_str(), crypto::sha256_b64(&id.to_string()));
        assert_eq!(key.as_str().len(), 43);
        assert_ne!(key.as_str(), id.to_string());
        assert!(!format!("{key:?}").contains(&id.to_string()));
    }

    #[test]
    fn only_the_clear_form_of_an_id_is_taken_for_one() {
        let id = Id::default();
        assert_eq!(clear_id(&id.to_string()), Some(id));
        assert_eq!(clear_id(SessionKey::of(&id).as_str()), None);
        assert_eq!(clear_id("not an id at all, no!"), None);
        assert_eq!(clear_id(""), None);
    }

    #[test]
    fn stored_bytes_hold_the_data_but_not_the_id() {
        let r = record();
        let bytes = encode(&r).unwrap();
        let le = r.id.0.to_le_bytes();
        let be = r.id.0.to_be_bytes();
        assert!(!bytes.windows(16).any(|w| w == le || w == be));
        let other = Id::default();
        let back = decode(&bytes, other).unwrap();
        assert_eq!(back.id, other);
        assert_eq!(back.data, r.data);
        assert_eq!(back.expiry_date, r.expiry_date);
        // Byte for byte what tower-sessions writes for the same record with the stand-in id.
        let plain = Record {
            id: STORED_ID,
            ..r.clone()
        };
        assert_eq!(bytes, rmp_serde::to_vec(&plain).unwrap());
    }

    #[test]
    fn a_record_written_in_the_earlier_form_still_decodes() {
        let r = record();
        let old = rmp_serde::to_vec(&r).unwrap();
        assert_eq!(decode(&old, r.id).unwrap(), r);
    }
}
