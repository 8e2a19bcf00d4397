//! Live sessions written straight into a broker's stores, in the broker's own format, fast: copies
//! of one signed-in session (its tower-sessions record and its `session_index` row), each under
//! its own id and handle. SQLite: one prepared insert per table, in transactions of 20 000 rows.
//! Redis: `SET … EXAT` pipelined in batches, the record's expiry as the key's.
//!
//! Session ids are derived from a number, so the bench and the baseline process agree on them
//! without passing a million of them around: session `i` has id [`id`]`(i)`.

use std::path::Path;

use oidc_broker::session::SessionRecord;
use oidc_broker::store::session_key::{self, SessionKey};
use rusqlite::types::Value;
use tower_sessions::session::{Id, Record};

use super::common::Redis;

/// SplitMix64: a good spread of bits from a counter.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The id of seeded session `i` (128 bits, as tower-sessions makes them).
pub fn id(i: u64) -> Id {
    let hi = mix(i.wrapping_mul(2));
    let lo = mix(i.wrapping_mul(2) + 1);
    Id(i128::from_le_bytes(
        [lo.to_le_bytes(), hi.to_le_bytes()]
            .concat()
            .try_into()
            .unwrap(),
    ))
}

/// The cookie of seeded session `i`.
pub fn cookie(i: u64) -> String {
    format!("broker_session={}", id(i))
}

/// `n` distinct numbers below `of`, spread at random (a fixed choice: the same every run).
pub fn sample(n: u64, of: u64) -> Vec<u64> {
    if n >= of {
        return (0..of).collect();
    }
    let mut chosen = std::collections::BTreeSet::new();
    let mut k = 0xC0FF_EE00_u64;
    while chosen.len() < usize::try_from(n).unwrap() {
        chosen.insert(mix(k) % of);
        k += 1;
    }
    chosen.into_iter().collect()
}

/// The session a cookie names, as a template: its stored record, decoded.
pub struct Template {
    record: Record,
    /// The broker's own record (a JSON string in the tower-sessions data), parsed with the broker's
    /// type, so that each copy is serialised exactly as the broker writes it (its render cache is
    /// keyed by those bytes).
    inner: SessionRecord,
    handle_len: usize,
    key: SessionKey,
}

impl Template {
    fn new(stored: &[u8], cookie: &str) -> Template {
        let id: Id = cookie.split_once('=').unwrap().1.parse().unwrap();
        let record = session_key::decode(stored, id).unwrap();
        let raw = record.data[oidc_broker::session::RECORD_KEY]
            .as_str()
            .expect("the broker's record is a JSON string in the session data");
        let inner: SessionRecord = serde_json::from_str(raw).unwrap();
        assert_eq!(
            serde_json::to_string(&inner).unwrap(),
            raw,
            "the record does not serialise back to the stored bytes"
        );
        let handle_len = inner.handle.len();
        Template {
            record,
            inner,
            handle_len,
            key: SessionKey::of(&id),
        }
    }

    /// From the SQLite store at `db`.
    pub fn from_sqlite(db: &Path, cookie: &str) -> Template {
        let conn = rusqlite::Connection::open(db).unwrap();
        let id: Id = cookie.split_once('=').unwrap().1.parse().unwrap();
        let data: Vec<u8> = conn
            .query_row(
                "SELECT data FROM tower_sessions WHERE id = ?1",
                [SessionKey::of(&id).as_str()],
                |r| r.get(0),
            )
            .unwrap();
        Template::new(&data, cookie)
    }

    /// From Redis, under `prefix`.
    pub fn from_redis(redis: &mut Redis, prefix: &str, cookie: &str) -> Template {
        let id: Id = cookie.split_once('=').unwrap().1.parse().unwrap();
        let key = format!("{prefix}{}", SessionKey::of(&id));
        let super::common::Reply::Bulk(Some(data)) = redis.cmd(&[b"GET", key.as_bytes()]) else {
            panic!("the signed-in session is not in Redis under {key}");
        };
        Template::new(&data, cookie)
    }

    pub fn handle(&self, i: u64) -> String {
        let digits = self.handle_len - 4;
        format!("ses_{i:0digits$}")
    }

    /// Seeded session `i`'s stored bytes: the template's record with its own handle and times.
    fn record_bytes(&self, i: u64, now: i64) -> Vec<u8> {
        let mut inner = self.inner.clone();
        inner.handle = self.handle(i);
        inner.created_at = now - 120;
        // Due for its once-a-minute slide: the first check of each session writes, at 1 000 as at
        // 1 000 000 sessions, however long the seeding took.
        inner.last_seen_at = now - 120;
        let mut record = self.record.clone();
        record.data.insert(
            oidc_broker::session::RECORD_KEY.into(),
            serde_json::to_string(&inner).unwrap().into(),
        );
        session_key::encode(&record).unwrap()
    }

    pub fn expires_at(&self) -> i64 {
        self.record.expiry_date.unix_timestamp()
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Writes sessions `from..to` into the SQLite store at `db`: their records into `tower_sessions`
/// (unless `records` is false: the records live in Redis) and their `session_index` rows, each a
/// copy of the template's row with its own handle and key.
pub fn sqlite(db: &Path, template: &Template, from: u64, to: u64, records: bool) {
    let mut conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    // The index row's columns, whatever the schema holds today.
    let columns: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('session_index')")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let row: Vec<Value> = conn
        .query_row(
            &format!(
                "SELECT {} FROM session_index WHERE session_key = ?1",
                columns.join(", ")
            ),
            [template.key.as_str()],
            |r| (0..columns.len()).map(|i| r.get::<_, Value>(i)).collect(),
        )
        .unwrap();
    let expiry: Value = conn
        .query_row(
            "SELECT expiry_date FROM tower_sessions WHERE id = ?1",
            [template.key.as_str()],
            |r| r.get(0),
        )
        .unwrap_or(Value::Null);
    let insert_index = format!(
        "INSERT INTO session_index ({}) VALUES ({})",
        columns.join(", "),
        vec!["?"; columns.len()].join(", ")
    );
    let now = now();
    const CHUNK: u64 = 20_000;
    let mut start = from;
    while start < to {
        let end = (start + CHUNK).min(to);
        let tx = conn.transaction().unwrap();
        {
            let mut index = tx.prepare_cached(&insert_index).unwrap();
            let mut record = tx
                .prepare_cached(
                    "INSERT INTO tower_sessions (id, data, expiry_date) VALUES (?1, ?2, ?3)",
                )
                .unwrap();
            for i in start..end {
                let key = SessionKey::of(&id(i));
                if records {
                    record
                        .execute(rusqlite::params![
                            key.as_str(),
                            template.record_bytes(i, now),
                            expiry
                        ])
                        .unwrap();
                }
                let mut values = row.clone();
                for (c, v) in columns.iter().zip(values.iter_mut()) {
                    match c.as_str() {
                        "handle" => *v = Value::Text(template.handle(i)),
                        "session_key" => *v = Value::Text(key.as_str().to_string()),
                        "created_at" => *v = Value::Integer(now - 120),
                        _ => {}
                    }
                }
                index
                    .execute(rusqlite::params_from_iter(values.iter()))
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        start = end;
    }
}

/// Pages in use by the SQLite store at `db` (all tables and indexes), in bytes, after moving the
/// WAL's content into the file.
pub fn sqlite_bytes(db: &Path) -> u64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    let _: (i64, i64, i64) = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let free: i64 = conn
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    let size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();
    u64::try_from((pages - free) * size).unwrap()
}

/// Writes the records of sessions `from..to` into Redis under `prefix`, with the template's expiry.
pub fn redis(redis: &mut Redis, prefix: &str, template: &Template, from: u64, to: u64) {
    let now = now();
    let exat = template.expires_at().to_string();
    const BATCH: u64 = 5_000;
    let mut start = from;
    while start < to {
        let end = (start + BATCH).min(to);
        let commands: Vec<Vec<Vec<u8>>> = (start..end)
            .map(|i| {
                let key = format!("{prefix}{}", SessionKey::of(&id(i)));
                vec![
                    b"SET".to_vec(),
                    key.into_bytes(),
                    template.record_bytes(i, now),
                    b"EXAT".to_vec(),
                    exat.as_bytes().to_vec(),
                ]
            })
            .collect();
        redis.pipeline(&commands);
        start = end;
    }
}
