//! Hostile traffic from one client at a release-built broker on loopback, and what it makes the
//! broker keep: failed callbacks (unknown `state`), unknown refresh tokens, login starts without the
//! browser cookie (each with a long `return_to`) and wrong admin tokens, in turn, over a few
//! connections of one pool, for a fixed time (10 s; `BENCH_SECONDS` up to 300) and at most a fixed
//! number of requests. Reports what the store keeps — the rows added and the growth of the SQLite
//! database, measured after a WAL checkpoint before and after the run (the broker stopped) — the
//! WAL's high-water mark during the run (a file SQLite reuses, not what is kept), and the bytes the
//! broker logged.
//!
//! `cargo bench --bench hostile_traffic` runs the broker of this checkout (built by cargo for the
//! bench, release settings); `BROKER_BIN=/path/to/oidc-broker cargo bench --bench hostile_traffic`
//! runs another build (an older commit, say) with the same configuration: the defaults, nothing in
//! `[limits]`. See docs/performance.md.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The default length of the run, in seconds.
const SECONDS: u64 = 10;
/// The run stops at this many requests even if time is left.
const MAX_REQUESTS: u64 = 1_000_000;
/// Requests in flight at once, on one connection pool.
const CONCURRENCY: usize = 16;
/// Length of the `return_to` path of each login start.
const RETURN_TO_LEN: usize = 2000;
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789abcdef-0123456789abcdef";
const KINDS: [&str; 4] = [
    "callback, unknown state",
    "refresh, unknown token",
    "login start, no cookie",
    "admin, wrong token",
];

#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    ok: AtomicU64,
    refused: AtomicU64,
    limited: AtomicU64,
    failed: AtomicU64,
}

fn main() {
    let bin = common::broker_bin();
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let db = dir.path().join("broker.db");
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\nenvironment = \"development\"\n\
         [store]\nurl = \"sqlite://{}\"\n[admin]\ntoken = \"{ADMIN_TOKEN}\"\n[providers.dev]\nkind = \"dev\"\n",
        db.display()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(CONCURRENCY)
        .build()
        .unwrap();
    let broker = rt.block_on(common::Broker::start("broker", dir.path(), port, &config));
    let log_path = broker.log.clone();
    // What a quiet start leaves, so that only the traffic's share is counted.
    std::thread::sleep(Duration::from_secs(1));
    let before = Sizes::of(&db, &log_path);

    let seconds = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(SECONDS)
        .clamp(1, 300);
    let tallies: Arc<[Tally; 4]> = Arc::new(Default::default());
    let started = Instant::now();
    rt.block_on(hostile(&client, &base, seconds, tallies.clone()));
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last writes land.
    std::thread::sleep(Duration::from_millis(1500));
    let wal_high_water = wal_size(&db);
    drop(broker);
    let after = Sizes::of(&db, &log_path);

    println!("hostile traffic from one client for {elapsed:.1} s against {bin}:");
    let mut total = 0;
    for (kind, t) in KINDS.iter().zip(tallies.iter()) {
        let sent = t.sent.load(Ordering::Relaxed);
        total += sent;
        println!(
            "  {kind:<24} {sent:>7} sent: {:>7} answered 2xx/3xx, {:>7} 4xx/5xx, {:>7} 429, {:>3} failed",
            t.ok.load(Ordering::Relaxed),
            t.refused.load(Ordering::Relaxed),
            t.limited.load(Ordering::Relaxed),
            t.failed.load(Ordering::Relaxed),
        );
    }
    println!("  {total} requests, {:.0} req/s", total as f64 / elapsed);
    let grew = |a: u64, b: u64| b.saturating_sub(a);
    let db_grew = grew(before.db, after.db);
    println!(
        "  store: database +{db_grew} bytes ({:.0} B/s) after checkpoints; WAL high-water mark {wal_high_water} bytes",
        db_grew as f64 / elapsed
    );
    println!(
        "  rows: audit_events +{}, login_transactions +{}",
        after.audit_rows - before.audit_rows,
        after.login_rows - before.login_rows
    );
    let log_grew = grew(before.log, after.log);
    println!(
        "  log: +{log_grew} bytes ({:.0} B/s)",
        log_grew as f64 / elapsed
    );
}

async fn hostile(client: &reqwest::Client, base: &str, seconds: u64, tallies: Arc<[Tally; 4]>) {
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let return_to = format!("/{}", "a".repeat(RETURN_TO_LEN));
    let tasks: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, base, tallies, next, return_to) = (
                client.clone(),
                base.to_string(),
                tallies.clone(),
                next.clone(),
                return_to.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= MAX_REQUESTS || Instant::now() >= deadline {
                        return;
                    }
                    let kind = usize::try_from(n % 4).unwrap();
                    let req = match kind {
                        0 => client.get(format!("{base}/auth/callback/dev?state=s{n}&code=c{n}")),
                        1 => client
                            .post(format!("{base}/auth/token/refresh"))
                            .json(&serde_json::json!({ "refresh_token": format!("rt_{n}") })),
                        2 => client.get(format!(
                            "{base}/auth/login?provider=dev&return_to={return_to}"
                        )),
                        _ => client
                            .get(format!("{base}/admin/audit"))
                            .bearer_auth(format!("wrong-{n}")),
                    };
                    let t = &tallies[kind];
                    t.sent.fetch_add(1, Ordering::Relaxed);
                    match req.send().await {
                        Ok(res) if res.status().as_u16() == 429 => &t.limited,
                        Ok(res) if res.status().as_u16() < 400 => &t.ok,
                        Ok(_) => &t.refused,
                        Err(_) => &t.failed,
                    }
                    .fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn wal_size(db: &Path) -> u64 {
    size(&db.with_file_name("broker.db-wal"))
}

struct Sizes {
    db: u64,
    log: u64,
    audit_rows: i64,
    login_rows: i64,
}

impl Sizes {
    /// After moving the WAL's content into the database file, so that the file holds what is kept.
    fn of(db: &Path, log: &Path) -> Sizes {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.busy_timeout(Duration::from_secs(5)).unwrap();
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 0, "the checkpoint could not complete");
        let count = |table: &str| -> i64 {
            conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        Sizes {
            db: size(db),
            log: size(log),
            audit_rows: count("audit_events"),
            login_rows: count("login_transactions"),
        }
    }
}
