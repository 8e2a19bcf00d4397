//! The one-time move of sessions stored by earlier versions under their clear id (the cookie
//! value) to their [`SessionKey`], with the id blanked out of the stored record — so that sessions
//! signed in before the upgrade keep working and the store no longer holds a working cookie.
//!
//! Both moves are idempotent, resumable and marked done once complete:
//! - SQL (SQLite has no SHA-256 function, so both engines do it here): one transaction whose
//!   first statement claims the `store_upgrades` row. A second instance starting at once waits on
//!   that row (or on SQLite's write lock) and then finds it claimed; an interruption rolls
//!   everything back, marker included, and the next start does it again.
//! - Redis: the clear keys under the prefix are scanned in batches while a lock key is held, each
//!   record written under its key (`SET … NX`, same expiry) before the clear key is deleted; a
//!   marker key records the end. An interruption leaves keys either moved or not (a key written
//!   but whose clear copy remains is finished by the next run), and the next start resumes.
//!
//! Sessions that an instance of the previous version creates after the move has run are not
//! moved: upgrade every instance sharing a store together.

use std::time::Duration;

use bytes::Bytes;
use fred::prelude::*;
use fred::types::SetOptions;
use fred::types::scan::Scanner;
use futures::StreamExt;
use sqlx::AnyPool;
use time::OffsetDateTime;

use crate::crypto;
use crate::store::session_key::{self, SessionKey};

/// The name of this move in `store_upgrades`, and of its marker key in Redis.
const NAME: &str = "hashed_session_ids";
/// Rows or keys handled per round trip.
const BATCH: i64 = 500;
/// How long the Redis lock outlives its holder (renewed after every batch).
const LOCK_TTL_MS: i64 = 60_000;

/// Moves the SQL store's session records and index rows to keys; returns how many rows moved.
pub async fn upgrade_sql(pool: &AnyPool, sqlite: bool, now: i64) -> Result<u64, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    if sqlite {
        // Freed cells are zeroed, so the clear ids do not linger in the file's free space.
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut *conn)
            .await?;
    }
    let moved = move_rows(&mut conn, now).await;
    if sqlite {
        let _ = sqlx::query("PRAGMA secure_delete = OFF")
            .execute(&mut *conn)
            .await;
        if matches!(moved, Ok(n) if n > 0) {
            // The pre-upgrade pages leave the write-ahead log too.
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut *conn)
                .await;
        }
    }
    moved
}

async fn move_rows(conn: &mut sqlx::AnyConnection, now: i64) -> Result<u64, sqlx::Error> {
    use sqlx::Connection;
    let mut tx = conn.begin().await?;
    // A write first: from here on this transaction holds the marker row (and SQLite's write lock).
    let claimed = sqlx::query(
        "INSERT INTO store_upgrades (name, done_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(NAME)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(0);
    }
    let mut moved = 0;
    let mut after = String::new();
    loop {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT id, data FROM tower_sessions WHERE length(id) = 22 AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(&after)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some((last, _)) = rows.last() else { break };
        after = last.clone();
        for (stored, data) in rows {
            let Some(id) = session_key::clear_id(&stored) else {
                continue;
            };
            match rekeyed(&data, id) {
                Some(data) => {
                    sqlx::query("UPDATE tower_sessions SET id = $1, data = $2 WHERE id = $3")
                        .bind(SessionKey::of(&id).as_str())
                        .bind(data)
                        .bind(&stored)
                        .execute(&mut *tx)
                        .await?;
                    moved += 1;
                }
                None => {
                    // Unreadable: no cookie could use it, and it holds a clear id.
                    sqlx::query("DELETE FROM tower_sessions WHERE id = $1")
                        .bind(&stored)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
    }
    let mut after = String::new();
    loop {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT handle, session_key FROM session_index WHERE length(session_key) = 22 AND handle > $1 ORDER BY handle LIMIT $2",
        )
        .bind(&after)
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some((last, _)) = rows.last() else { break };
        after = last.clone();
        for (handle, stored) in rows {
            let Some(id) = session_key::clear_id(&stored) else {
                continue;
            };
            sqlx::query("UPDATE session_index SET session_key = $1 WHERE handle = $2")
                .bind(SessionKey::of(&id).as_str())
                .bind(&handle)
                .execute(&mut *tx)
                .await?;
            moved += 1;
        }
    }
    tx.commit().await?;
    Ok(moved)
}

/// A record stored in the earlier form, re-encoded without its id; `None` if it does not decode.
fn rekeyed(data: &[u8], id: tower_sessions::session::Id) -> Option<Vec<u8>> {
    let record = session_key::decode(data, id).ok()?;
    session_key::encode(&record).ok()
}

/// Moves Redis session records under `prefix` from clear ids to keys; returns how many moved.
pub async fn upgrade_redis(client: &Client, prefix: &str) -> Result<u64, fred::error::Error> {
    let marker = format!("{prefix}upgrade:{NAME}");
    let lock = format!("{prefix}upgrade:{NAME}:lock");
    loop {
        let done: i64 = client.exists(marker.as_str()).await?;
        if done > 0 {
            return Ok(0);
        }
        let token = crypto::random_token(16);
        let taken: Option<String> = client
            .set(
                lock.as_str(),
                token.as_str(),
                Some(Expiration::PX(LOCK_TTL_MS)),
                Some(SetOptions::NX),
                false,
            )
            .await?;
        if taken.is_none() {
            // Another instance is moving them: wait for its marker (or its lock to lapse).
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let moved = move_keys(client, prefix, &lock, &token).await;
        let marked = match moved {
            Ok(_) => {
                let now = OffsetDateTime::now_utc().unix_timestamp();
                client
                    .set::<(), _, _>(marker.as_str(), now, None, None, false)
                    .await
            }
            Err(_) => Ok(()),
        };
        let _ = client
            .eval::<i64, _, _, _>(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
                vec![lock.as_str()],
                vec![token.as_str()],
            )
            .await;
        marked?;
        return moved;
    }
}

async fn move_keys(
    client: &Client,
    prefix: &str,
    lock: &str,
    token: &str,
) -> Result<u64, fred::error::Error> {
    // Only names of the clear form: the prefix, then 22 characters (a key has 43).
    let pattern = format!("{}{}", glob_escape(prefix), "?".repeat(22));
    let count = u32::try_from(BATCH).ok();
    let mut pages = if client.is_clustered() {
        client.scan_cluster(pattern, count, None).boxed()
    } else {
        client.scan(pattern, count, None).boxed()
    };
    let mut moved = 0;
    while let Some(page) = pages.next().await {
        let mut page = page?;
        let names = page.take_results().unwrap_or_default();
        // Dropping the page asks for the next one while this batch is moved.
        drop(page);
        for name in names {
            if let Some(name) = name.as_str() {
                moved += move_key(client, prefix, name).await?;
            }
        }
        let renewed: i64 = client
            .eval(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
                vec![lock],
                vec![token.to_string(), LOCK_TTL_MS.to_string()],
            )
            .await?;
        if renewed != 1 {
            return Err(fred::error::Error::new(
                fred::error::ErrorKind::Unknown,
                "lost the lock for moving session records to hashed keys",
            ));
        }
    }
    Ok(moved)
}

/// Moves one record; 1 if this call moved it.
async fn move_key(client: &Client, prefix: &str, name: &str) -> Result<u64, fred::error::Error> {
    let Some(id) = name.strip_prefix(prefix).and_then(session_key::clear_id) else {
        return Ok(0);
    };
    let Some(data): Option<Bytes> = client.get(name).await? else {
        return Ok(0);
    };
    let now = OffsetDateTime::now_utc();
    let record = session_key::decode(&data, id)
        .ok()
        .filter(|r| r.expiry_date > now);
    let stored = record
        .as_ref()
        .and_then(|r| session_key::encode(r).ok().map(|d| (d, r.expiry_date)));
    let Some((stored, expiry)) = stored else {
        // Unreadable or expired: no cookie could use it, and its name is a clear id.
        client.del::<i64, _>(name).await?;
        return Ok(0);
    };
    let key = format!("{prefix}{}", SessionKey::of(&id));
    let written: Option<String> = client
        .set(
            key.as_str(),
            stored.as_slice(),
            Some(Expiration::EXAT(expiry.unix_timestamp())),
            Some(SetOptions::NX),
            false,
        )
        .await?;
    let deleted: i64 = client.del(name).await?;
    if written.is_some() && deleted == 0 {
        // The clear key went between the read and the write: the session was ended (by an
        // instance of the previous version) or expired. Its copy must not outlive it. (Other
        // movers cannot be the cause: they hold the lock.)
        client.del::<i64, _>(key.as_str()).await?;
        return Ok(0);
    }
    Ok(u64::from(written.is_some()))
}

/// `s` as a literal in a Redis glob pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_matched_literally() {
        assert_eq!(glob_escape("app:sess:"), "app:sess:");
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
