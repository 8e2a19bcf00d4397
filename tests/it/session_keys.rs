//! The store keeps no session id (cookie value): records and index rows are keyed by its SHA-256,
//! on every backend (`BROKER_TEST_BACKEND`), and sessions stored by earlier versions under their
//! clear id are moved at start and keep working.

use std::time::Duration;

use fred::prelude::*;
use oidc_broker::store::SessionKey;
use oidc_broker::store::session_key::computed_on_this_thread;
use reqwest::header::COOKIE;
use tower_sessions::session::{Id, Record};

use crate::helpers::*;

/// Every form in which a dump could give the cookie away: its text, and the id's 16 bytes (the
/// cookie encodes them little-endian; tower-sessions' record format stores them big-endian), raw
/// and as hex (how Postgres prints `bytea`).
fn needles(cookie: &str) -> Vec<Vec<u8>> {
    let id: Id = cookie.parse().unwrap();
    let (le, be) = (id.0.to_le_bytes(), id.0.to_be_bytes());
    vec![
        cookie.as_bytes().to_vec(),
        le.to_vec(),
        be.to_vec(),
        hex::encode(le).into_bytes(),
        hex::encode(be).into_bytes(),
    ]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_not_in_dump(dump: &[u8], cookie: &str) {
    for (i, needle) in needles(cookie).iter().enumerate() {
        assert!(
            !contains(dump, needle),
            "the store holds the session id (form {i})"
        );
    }
    let key = SessionKey::of(&cookie.parse().unwrap());
    assert!(
        contains(dump, key.as_str().as_bytes()),
        "the dump covers the session's record and index row"
    );
}

fn redis_stores(app: &TestApp) -> Option<(String, String)> {
    let s = app.state.config.sessions.as_ref()?;
    Some((s.url.clone(), s.prefix.clone()))
}

async fn redis(url: &str) -> Client {
    let client = Client::new(Config::from_url(url).unwrap(), None, None, None);
    client.init().await.unwrap();
    client
}

/// Everything the store holds: every row of every table (and, on SQLite, the database files
/// themselves), and every key and value under the Redis prefix.
async fn dump(app: &TestApp) -> Vec<u8> {
    let mut out = Vec::new();
    if backend() == Backend::Sqlite {
        let conn = rusqlite::Connection::open(&app.db).unwrap();
        let mut tables = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table'")
            .unwrap();
        let names: Vec<String> = tables
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for name in names {
            let mut rows = conn.prepare(&format!("SELECT * FROM \"{name}\"")).unwrap();
            let columns = rows.column_count();
            let mut rows = rows.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                for i in 0..columns {
                    match row.get_ref(i).unwrap() {
                        rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                            out.extend_from_slice(b)
                        }
                        other => out.extend_from_slice(format!("{other:?}").as_bytes()),
                    }
                    out.push(0);
                }
            }
        }
        for suffix in ["", "-wal"] {
            let mut file = app.db.as_os_str().to_owned();
            file.push(suffix);
            out.extend(std::fs::read(file).unwrap_or_default());
        }
    } else {
        let pool = app.state.store.pool();
        let tables: Vec<(String,)> = sqlx::query_as(
            "SELECT CAST(table_name AS TEXT) FROM information_schema.tables WHERE table_schema = current_schema()",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(tables.iter().any(|(t,)| t == "tower_sessions"));
        for (table,) in tables {
            let rows: Vec<(String,)> =
                sqlx::query_as(&format!("SELECT CAST(t AS TEXT) FROM \"{table}\" AS t"))
                    .fetch_all(pool)
                    .await
                    .unwrap();
            for (row,) in rows {
                out.extend_from_slice(row.as_bytes());
                out.push(0);
            }
        }
    }
    if let Some((url, prefix)) = redis_stores(app) {
        let client = redis(&url).await;
        let keys: Vec<Key> = {
            use futures::TryStreamExt;
            client
                .scan_buffered(format!("{prefix}*"), Some(100), None)
                .try_collect()
                .await
                .unwrap()
        };
        assert!(!keys.is_empty());
        for key in keys {
            out.extend_from_slice(key.as_bytes());
            out.push(0);
            let value: Option<Vec<u8>> = client.get(key).await.unwrap();
            out.extend(value.unwrap_or_default());
            out.push(0);
        }
    }
    out
}

async fn me_with_cookie(app: &TestApp, cookie: &str) -> reqwest::Response {
    browser()
        .get(app.url("/auth/me"))
        .header(COOKIE, format!("broker_session={cookie}"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_store_dump_holds_no_session_cookie() {
    let app = spawn(dev_provider()).await;
    let cookie = cookie_value(app.dev_login("alice").await.headers(), "broker_session").unwrap();
    // A touch rewrites the record; a token-mode login adds a code and a refresh token.
    app.clock.advance(Duration::from_secs(120));
    assert_eq!(app.me().await.status(), 200);
    let token_mode = "provider=dev&mode=token&return_to=http%3A%2F%2Fapp.test%3A3000%2F";
    let other = browser();
    let start = other
        .get(app.url(&format!("/auth/login?{token_mode}")))
        .send()
        .await
        .unwrap();
    let landed = dev_pick_user(&other, &location(start.headers()), "bob").await;
    let token_cookie = cookie_value(landed.headers(), "broker_session");
    let landing = location(landed.headers());
    let code = query_param(&landing, "code").unwrap();
    let res = reqwest::Client::new()
        .post(app.url("/auth/token"))
        .json(&serde_json::json!({ "code": code }))
        .send()
        .await
        .unwrap();
    let tokens = json(res).await;
    let bearer = reqwest::Client::new()
        .get(app.url("/auth/me"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);

    let dump = dump(&app).await;
    assert_not_in_dump(&dump, &cookie);
    assert_not_in_dump(&dump, &token_cookie.unwrap());
    assert_eq!(me_with_cookie(&app, &cookie).await.status(), 200);
}

#[tokio::test]
async fn the_session_check_hashes_the_cookie_once() {
    let app = spawn(dev_provider()).await;
    app.dev_login("alice").await;
    assert_eq!(app.me().await.status(), 200);
    // The broker runs on this test's thread (a current-thread runtime): every key it computes
    // for these requests is counted here.
    let before = computed_on_this_thread();
    for _ in 0..20 {
        assert_eq!(app.me().await.status(), 200);
    }
    let hashes = computed_on_this_thread() - before;
    assert!(hashes >= 1, "the check goes through the key");
    assert!(hashes <= 20, "{hashes} keys computed for 20 session checks");
}

/// The store as a version before keys left it: the session of `cookie` stored under its clear
/// id (its record carrying the id, as tower-sessions writes it), the index column `session_id`
/// holding the id, and no record of the move.
async fn store_as_before_keys(app: &TestApp, cookie: &str) {
    let id: Id = cookie.parse().unwrap();
    let key = SessionKey::of(&id);
    let mut record: Record = app.state.sessions.load_key(&key).await.unwrap().unwrap();
    record.id = id;
    let old = rmp_serde::to_vec(&record).unwrap();
    let pool = app.state.store.pool();
    if let Some((url, prefix)) = redis_stores(app) {
        let client = redis(&url).await;
        let _: () = client
            .set(
                format!("{prefix}{cookie}"),
                old.as_slice(),
                Some(Expiration::EXAT(record.expiry_date.unix_timestamp())),
                None,
                false,
            )
            .await
            .unwrap();
        let _: i64 = client
            .del(vec![
                format!("{prefix}{key}"),
                format!("{prefix}upgrade:hashed_session_ids"),
            ])
            .await
            .unwrap();
    } else {
        let moved = sqlx::query("UPDATE tower_sessions SET id = $1, data = $2 WHERE id = $3")
            .bind(cookie)
            .bind(old)
            .bind(key.as_str())
            .execute(pool)
            .await
            .unwrap();
        assert_eq!(moved.rows_affected(), 1);
    }
    for sql in [
        "UPDATE session_index SET session_key = $1 WHERE session_key = $2",
        "ALTER TABLE session_index RENAME COLUMN session_key TO session_id",
        "DROP TABLE store_upgrades",
        "DELETE FROM _sqlx_migrations WHERE version = 8",
    ] {
        let q = sqlx::query(sql);
        let q = if sql.contains("$1") {
            q.bind(cookie).bind(key.as_str())
        } else {
            q
        };
        q.execute(pool).await.unwrap();
    }
}

#[tokio::test]
async fn sessions_stored_under_clear_ids_keep_working_after_the_upgrade() {
    let first = spawn(dev_provider()).await;
    let cookie = cookie_value(first.dev_login("alice").await.headers(), "broker_session").unwrap();
    store_as_before_keys(&first, &cookie).await;
    let before = dump(&first).await;
    assert!(
        contains(&before, cookie.as_bytes()),
        "the store is in the earlier form"
    );

    let upgraded = spawn(dev_provider().reuse_db(&first)).await;
    let res = me_with_cookie(&upgraded, &cookie).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["user"]["subject"], "alice");
    assert_not_in_dump(&dump(&upgraded).await, &cookie);
    // Revocation finds the session through the moved index row.
    let me = json(me_with_cookie(&upgraded, &cookie).await).await;
    let handle = me["session"]["handle"].as_str().unwrap();
    let row = upgraded.state.store.indexed_session(handle).await.unwrap();
    assert_eq!(
        row.unwrap().session_key,
        SessionKey::of(&cookie.parse().unwrap())
    );

    // Done once: a restart finds it marked and changes nothing.
    let again = spawn(dev_provider().reuse_db(&first)).await;
    assert_eq!(me_with_cookie(&again, &cookie).await.status(), 200);
    let marks: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM store_upgrades")
        .fetch_one(again.state.store.pool())
        .await
        .unwrap();
    assert_eq!(marks.0, 1);
    let row = again.state.store.indexed_session(handle).await.unwrap();
    again.state.end_session(&row.unwrap()).await.unwrap();
    assert_eq!(me_with_cookie(&again, &cookie).await.status(), 401);
}

#[tokio::test]
async fn an_interrupted_upgrade_changes_nothing_and_the_next_start_finishes_it() {
    let first = spawn(dev_provider()).await;
    let cookie = cookie_value(first.dev_login("alice").await.headers(), "broker_session").unwrap();
    store_as_before_keys(&first, &cookie).await;
    let pool = first.state.store.pool();
    // The move fails at its last step, after the records were rewritten in its transaction.
    let (fail, unfail) = if backend() == Backend::Sqlite {
        (
            "CREATE TRIGGER fail_move BEFORE UPDATE ON session_index BEGIN SELECT RAISE(ABORT, 'interrupted'); END",
            "DROP TRIGGER fail_move",
        )
    } else {
        (
            "CREATE FUNCTION fail_move() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'interrupted'; END $$ LANGUAGE plpgsql; \
             CREATE TRIGGER fail_move BEFORE UPDATE ON session_index FOR EACH ROW EXECUTE FUNCTION fail_move()",
            "DROP TRIGGER fail_move ON session_index; DROP FUNCTION fail_move()",
        )
    };
    sqlx::raw_sql(fail).execute(pool).await.unwrap();
    let failed = try_spawn(dev_provider().reuse_db(&first)).await;
    assert!(failed.is_err(), "the broker does not start on a half move");

    let marks: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM store_upgrades")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(marks.0, 0, "not marked done");
    let clear: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM session_index WHERE session_key = $1")
        .bind(&cookie)
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(clear.0, 1, "the index row is as it was");
    if redis_stores(&first).is_none() {
        let clear: (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tower_sessions WHERE id = $1")
            .bind(&cookie)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(
            clear.0, 1,
            "the record's rewrite was rolled back with the rest"
        );
    }

    sqlx::raw_sql(unfail).execute(pool).await.unwrap();
    let next = spawn(dev_provider().reuse_db(&first)).await;
    assert_eq!(me_with_cookie(&next, &cookie).await.status(), 200);
    assert_not_in_dump(&dump(&next).await, &cookie);
}

#[tokio::test]
async fn redis_records_move_once_when_brokers_start_together() {
    let first = spawn(dev_provider()).await;
    let Some((url, prefix)) = redis_stores(&first) else {
        return; // Sessions in Redis only (BROKER_TEST_BACKEND=postgres+redis).
    };
    let cookie = cookie_value(first.dev_login("alice").await.headers(), "broker_session").unwrap();
    store_as_before_keys(&first, &cookie).await;
    let client = redis(&url).await;
    let template: Vec<u8> = client.get(format!("{prefix}{cookie}")).await.unwrap();
    let template: Record = rmp_serde::from_slice(&template).unwrap();
    let expiry = Some(Expiration::EXAT(template.expiry_date.unix_timestamp()));
    // Many records in the earlier form; one left half moved by an interrupted run (its key
    // written, its clear copy not yet deleted); and a lock whose holder went away.
    let mut ids = vec![cookie.parse::<Id>().unwrap()];
    for _ in 0..1200 {
        let mut r = template.clone();
        r.id = Id::default();
        let _: () = client
            .set(
                format!("{prefix}{}", r.id),
                rmp_serde::to_vec(&r).unwrap().as_slice(),
                expiry.clone(),
                None,
                false,
            )
            .await
            .unwrap();
        ids.push(r.id);
    }
    let half = ids[1];
    let mut moved = template.clone();
    moved.id = Id(0);
    let _: () = client
        .set(
            format!("{prefix}{}", SessionKey::of(&half)),
            rmp_serde::to_vec(&moved).unwrap().as_slice(),
            expiry.clone(),
            None,
            false,
        )
        .await
        .unwrap();
    let _: () = client
        .set(
            format!("{prefix}upgrade:hashed_session_ids:lock"),
            "gone",
            Some(Expiration::PX(300)),
            None,
            false,
        )
        .await
        .unwrap();

    let (a, b) = tokio::join!(
        spawn(dev_provider().reuse_db(&first)),
        spawn(dev_provider().reuse_db(&first))
    );
    use tower_sessions::session_store::SessionStore;
    for id in &ids {
        let broker = if id.0 % 2 == 0 { &a } else { &b };
        let record = broker.state.sessions.load(id).await.unwrap();
        assert!(record.is_some(), "every session moved");
    }
    assert_eq!(me_with_cookie(&a, &cookie).await.status(), 200);
    assert_eq!(me_with_cookie(&b, &cookie).await.status(), 200);
    assert_not_in_dump(&dump(&a).await, &cookie);
    // No name of the clear form is left, and no record carries its id.
    let names: Vec<Key> = {
        use futures::TryStreamExt;
        client
            .scan_buffered(format!("{prefix}*"), Some(500), None)
            .try_collect()
            .await
            .unwrap()
    };
    let mut records = 0;
    for name in names {
        let name = name.into_string().unwrap();
        assert_ne!(name.len() - prefix.len(), 22, "{name}");
        let value: Vec<u8> = client.get(name.as_str()).await.unwrap();
        if let Ok(r) = rmp_serde::from_slice::<Record>(&value) {
            assert_eq!(r.id, Id(0));
            records += 1;
        }
    }
    assert_eq!(records, ids.len());
}

#[tokio::test]
async fn two_instances_starting_together_on_a_new_store_both_start() {
    for _ in 0..3 {
        let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
        let opts = || {
            let mut o = dev_provider();
            o.db_dir = Some(dir.clone());
            o
        };
        let (a, b) = tokio::join!(try_spawn(opts()), try_spawn(opts()));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.get("/readyz").await.status(), 200);
        assert_eq!(b.get("/readyz").await.status(), 200);
    }
}
