//! The session check (`GET /auth/me` with a valid cookie) against a bare axum handler, in one run.
//!
//! Both servers run in this process on a 2-worker runtime, as the broker does in production. Max
//! throughput is measured with wrk (closed loop); latency with an open-loop generator at half of
//! each server's maximum rate, timed from each request's dispatch, so slow answers are not hidden
//! by the generator waiting for them. Figures are reported as ratios to the baseline because the
//! machine is shared and noisy. Run: `bash bench/run.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use oidc_broker::App;
use oidc_broker::clock::SystemClock;
use serde_json::json;

// The allocator the broker binary uses (src/main.rs), so the figures are the binary's.
#[path = "common.rs"]
mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECONDS: u64 = 10;
/// Connections for the closed-loop maximum (wrk).
const CONNECTIONS: u32 = 32;
/// Connections for the open-loop latency run: enough that each one's send interval stays well
/// above the 1 ms resolution of the generator's timer.
const OPEN_LOOP_CONNECTIONS: u32 = 128;

fn main() {
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (bare_url, me_url, cookie) = server_rt.block_on(start_servers(dir.path()));

    let wrk = which_wrk();
    if std::env::var("BROKER_BENCH_ONLY").as_deref() == Ok("redis") {
        // A quick run for work on the Redis path: the baseline and the Redis broker only.
        let bare_max = max_rate(&wrk, &bare_url, None);
        let redis = server_rt.block_on(start_redis_broker(true));
        let redis_max = max_rate(&wrk, &redis.me_url, Some(&redis.cookie));
        drop(redis);
        let uncached = server_rt.block_on(start_redis_broker(false));
        let uncached_max = max_rate(&wrk, &uncached.me_url, Some(&uncached.cookie));
        println!(
            "bare {bare_max:.0} req/s, /auth/me on Redis (default, local_cache) {redis_max:.0} req/s: ratio {:.2}; with local_cache = false {uncached_max:.0} req/s: ratio {:.2}",
            redis_max / bare_max,
            uncached_max / bare_max
        );
        let _ = (me_url, cookie);
        drop(server_rt);
        return;
    }
    println!(
        "session check vs bare axum handler — {SECONDS}s per run; max with wrk over {CONNECTIONS} connections, latency open-loop over {OPEN_LOOP_CONNECTIONS}"
    );
    let bare_max = max_rate(&wrk, &bare_url, None);
    println!("bare handler: {bare_max:.0} req/s");
    let me_max = max_rate(&wrk, &me_url, Some(&cookie));
    println!("/auth/me: {me_max:.0} req/s");
    let bare_lat = open_loop(&bare_url, None, bare_max / 2.0);
    println!(
        "bare handler at {:.0} req/s: p50 {:.3} ms, p99 {:.3} ms",
        bare_max / 2.0,
        bare_lat.0,
        bare_lat.1
    );
    let me_lat = open_loop(&me_url, Some(&cookie), me_max / 2.0);
    println!(
        "/auth/me at {:.0} req/s: p50 {:.3} ms, p99 {:.3} ms",
        me_max / 2.0,
        me_lat.0,
        me_lat.1
    );
    // The same offered rate on both: what the session check adds, machine noise cancelled.
    let bare_same = open_loop(&bare_url, None, me_max / 2.0);
    println!(
        "bare handler at {:.0} req/s: p50 {:.3} ms, p99 {:.3} ms",
        me_max / 2.0,
        bare_same.0,
        bare_same.1
    );

    // Started only now, so that its connections and background work do not share the SQLite runs.
    let redis = server_rt.block_on(start_redis_broker(true));
    let redis_max = max_rate(&wrk, &redis.me_url, Some(&redis.cookie));
    println!("/auth/me with sessions in Redis: {redis_max:.0} req/s");
    let redis_ratio = redis_max / bare_max;
    let sqlite_bytes = sqlite_bytes_per_session(dir.path());
    let redis_bytes = redis_memory_usage(&redis);
    let memory = server_rt.block_on(memory_with_sessions(&redis, 100_000));
    let uncached = server_rt.block_on(start_redis_broker(false));
    let uncached_max = max_rate(&wrk, &uncached.me_url, Some(&uncached.cookie));
    println!("/auth/me with sessions in Redis, local_cache = false: {uncached_max:.0} req/s");

    let ratio = me_max / bare_max;
    println!();
    println!("| target | max req/s | p50 at half max | p99 at half max |");
    println!("|---|---|---|---|");
    println!(
        "| bare axum handler | {bare_max:.0} | {:.3} ms | {:.3} ms |",
        bare_lat.0, bare_lat.1
    );
    println!(
        "| GET /auth/me (SQLite) | {me_max:.0} | {:.3} ms | {:.3} ms |",
        me_lat.0, me_lat.1
    );
    println!("| GET /auth/me (Postgres + Redis sessions) | {redis_max:.0} | | |");
    println!("| GET /auth/me (Redis, local_cache = false) | {uncached_max:.0} | | |");
    println!();
    println!(
        "throughput ratio /auth/me : bare = {ratio:.2} (target >= 0.70) {}",
        verdict(ratio >= 0.7)
    );
    println!(
        "throughput ratio /auth/me on Redis : bare = {redis_ratio:.2} (target >= 0.50) {}",
        verdict(redis_ratio >= 0.5)
    );
    println!(
        "throughput ratio /auth/me on Redis with local_cache = false : bare = {:.2}",
        uncached_max / bare_max,
    );
    println!(
        "store bytes per session: SQLite {sqlite_bytes} B (session row + index row), Redis {redis_bytes} B (MEMORY USAGE) (target <= 2048) {}",
        verdict(sqlite_bytes <= 2048 && redis_bytes <= 2048)
    );
    println!(
        "broker memory (RSS): {:.1} MiB at start of the Redis run, {:.1} MiB with {} live sessions after {} distinct session checks (+{:.1} MiB)",
        memory.before_mib,
        memory.after_mib,
        memory.sessions,
        memory.checked,
        memory.after_mib - memory.before_mib
    );
    println!(
        "p99 of /auth/me at half its max rate = {:.3} ms (target < 2 ms) {}",
        me_lat.1,
        verdict(me_lat.1 < 2.0)
    );
    println!(
        "p99 at the same rate, /auth/me : bare = {:.2}",
        me_lat.1 / bare_same.1
    );
    drop(server_rt);
}

/// A broker on Postgres with its sessions in Redis (the servers of this machine), signed in once.
struct RedisBroker {
    me_url: String,
    cookie: String,
    prefix: String,
    state: oidc_broker::state::AppState,
}

/// `local_cache`: the record cache that Redis invalidates (`[sessions] local_cache`, on by default).
async fn start_redis_broker(local_cache: bool) -> RedisBroker {
    let pg = std::env::var("BROKER_BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let redis = std::env::var("BROKER_BENCH_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into());
    let run = oidc_broker::crypto::random_hex(4);
    let prefix = format!("bench{run}:");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let toml = format!(
        "[server]\nenvironment = \"development\"\npublic_url = \"{base}\"\n[session]\nidle_timeout = \"30m\"\n[store]\nurl = \"{pg}\"\nschema = \"bench_{run}\"\n\
         [sessions]\nurl = \"{redis}\"\nprefix = \"{prefix}\"\nlocal_cache = {local_cache}\n[providers.dev]\nkind = \"dev\"\n"
    );
    let config = oidc_broker::config::from_toml_str(&toml, Vec::new()).unwrap();
    let broker = App::build(config, Arc::new(SystemClock)).await.expect(
        "the Redis benchmark needs PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379",
    );
    let state = broker.state().clone();
    tokio::spawn(async move { broker.run(listener, std::future::pending()).await.unwrap() });
    let cookie = common::dev_login(&base).await;
    RedisBroker {
        me_url: format!("{base}/auth/me"),
        cookie,
        prefix,
        state,
    }
}

/// What one session costs in the SQLite store: its tower-sessions row and its index row.
fn sqlite_bytes_per_session(dir: &std::path::Path) -> u64 {
    let conn = rusqlite::Connection::open(dir.join("bench.db")).unwrap();
    let sessions: i64 = conn
        .query_row(
            "SELECT SUM(length(id) + length(data) + 8) / COUNT(*) FROM tower_sessions",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let index: i64 = conn
        .query_row(
            "SELECT SUM(length(handle) + length(session_key) + length(user_id) + length(provider) + length(subject) \
             + coalesce(length(provider_sid), 0) + coalesce(length(tokens), 0) + 32) / COUNT(*) FROM session_index",
            [],
            |r| r.get(0),
        )
        .unwrap();
    u64::try_from(sessions + index).unwrap()
}

/// Redis's own account of the signed-in session's key.
fn redis_memory_usage(b: &RedisBroker) -> u64 {
    let id: tower_sessions::session::Id = b.cookie.split_once('=').unwrap().1.parse().unwrap();
    // The store keys a session by a hash of its id, never the id itself.
    let key = oidc_broker::store::session_key::SessionKey::of(&id);
    let out = Command::new("redis-cli")
        .args(["MEMORY", "USAGE", &format!("{}{}", b.prefix, key.as_str())])
        .output()
        .expect("redis-cli is needed for the Redis figures");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

struct Memory {
    before_mib: f64,
    after_mib: f64,
    sessions: usize,
    checked: usize,
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

/// Writes `n` live sessions (copies of the signed-in one, each with its own id and handle) into
/// Redis, checks a fifth of them through `/auth/me`, and reads the process's memory before and after.
async fn memory_with_sessions(b: &RedisBroker, n: usize) -> Memory {
    use tower_sessions::session_store::SessionStore;
    let before_mib = rss_mib();
    let id: tower_sessions::session::Id = b.cookie.split_once('=').unwrap().1.parse().unwrap();
    let template = b.state.sessions.load(&id).await.unwrap().unwrap();
    let raw = template.data["broker"].as_str().unwrap().to_string();
    let mut cookies = Vec::with_capacity(n);
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..n {
        let mut record = template.clone();
        record.id = tower_sessions::session::Id::default();
        let mut inner: serde_json::Value = serde_json::from_str(&raw).unwrap();
        inner["handle"] = json!(format!("ses_bench{i:08}"));
        record
            .data
            .insert("broker".into(), json!(inner.to_string()));
        cookies.push(format!("broker_session={}", record.id));
        let store = b.state.sessions.clone();
        writes.spawn(async move { store.create(&mut record).await.unwrap() });
        if writes.len() >= 64 {
            writes.join_next().await;
        }
    }
    while writes.join_next().await.is_some() {}
    let client = reqwest::Client::new();
    let checked = n / 5;
    let mut checks = tokio::task::JoinSet::new();
    for cookie in cookies.into_iter().take(checked) {
        let (client, url) = (client.clone(), b.me_url.clone());
        checks.spawn(async move {
            let res = client
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success());
        });
        if checks.len() >= 32 {
            checks.join_next().await;
        }
    }
    while checks.join_next().await.is_some() {}
    Memory {
        before_mib,
        after_mib: rss_mib(),
        sessions: n,
        checked,
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

async fn start_servers(dir: &std::path::Path) -> (String, String, String) {
    // The baseline: a bare axum handler answering a JSON body of similar size.
    let bare = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let bare_url = format!("http://{}/me", bare.local_addr().unwrap());
    let body = json!({"user": {"id": "usr_xxxxxxxxxxxxxxxxxxxxxx", "provider": "dev", "provider_kind": "dev", "subject": "alice",
        "email": "alice@example.test", "email_verified": true, "name": "Alice Example", "given_name": null, "family_name": null,
        "picture": null, "locale": null, "groups": ["admins", "staff"], "roles": [], "claims": {}},
        "session": {"handle": "ses_xxxxxxxxxxxxxxxx", "provider": "dev", "created_at": "2026-01-01T00:00:00Z",
        "expires_at": "2026-01-08T00:00:00Z", "idle_expires_at": "2026-01-01T00:30:00Z"}});
    let app = axum::Router::new().route(
        "/me",
        get(move || {
            let b = body.clone();
            async move { Json(b) }
        }),
    );
    tokio::spawn(async move { axum::serve(bare, app).await.unwrap() });

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let toml = format!(
        "[server]\nenvironment = \"development\"\npublic_url = \"{base}\"\n[session]\nidle_timeout = \"30m\"\n[store]\nurl = \"sqlite://{}/bench.db\"\n[providers.dev]\nkind = \"dev\"\n",
        dir.display()
    );
    let config = oidc_broker::config::from_toml_str(&toml, Vec::new()).unwrap();
    let broker = App::build(config, Arc::new(SystemClock)).await.unwrap();
    tokio::spawn(async move { broker.run(listener, std::future::pending()).await.unwrap() });
    let cookie = common::dev_login(&base).await;
    (bare_url, format!("{base}/auth/me"), cookie)
}

fn which_wrk() -> String {
    let ok = Command::new("wrk").arg("--version").output().is_ok();
    assert!(
        ok,
        "wrk is not installed: apt-get install wrk (bench/run.sh does it)"
    );
    "wrk".into()
}

/// Closed-loop maximum rate with wrk.
fn max_rate(wrk: &str, url: &str, cookie: Option<&str>) -> f64 {
    let mut cmd = Command::new(wrk);
    cmd.args([
        "-t1",
        &format!("-c{CONNECTIONS}"),
        &format!("-d{SECONDS}s"),
        url,
    ]);
    if let Some(c) = cookie {
        cmd.args(["-H", &format!("Cookie: {c}")]);
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let non2xx = text.lines().any(|l| l.contains("Non-2xx"));
    assert!(!non2xx, "wrk saw error answers from {url}:\n{text}");
    text.lines()
        .find_map(|l| {
            l.strip_prefix("Requests/sec:")
                .map(|v| v.trim().parse::<f64>().unwrap())
        })
        .unwrap_or_else(|| panic!("no rate in wrk output:\n{text}"))
}

/// Open-loop load at `rate` req/s over CONNECTIONS keep-alive connections, on a client thread of
/// its own; returns (p50, p99) in ms. Each connection sends on a fixed schedule. When the server made
/// a request late (the previous answer came after the request was due), its latency counts from when
/// it was due, so queueing is not hidden; when only the generator's timer woke late, it counts from
/// the actual send.
fn open_loop(url: &str, cookie: Option<&str>, rate: f64) -> (f64, f64) {
    let url: hyper::Uri = url.parse().unwrap();
    let cookie = cookie.map(str::to_string);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let addr = format!("{}:{}", url.host().unwrap(), url.port_u16().unwrap());
            let per_conn = rate / f64::from(OPEN_LOOP_CONNECTIONS);
            let interval = Duration::from_secs_f64(1.0 / per_conn);
            let count = (per_conn * SECONDS as f64) as u32;
            let start = tokio::time::Instant::now() + Duration::from_millis(200);
            let mut tasks = Vec::new();
            for c in 0..OPEN_LOOP_CONNECTIONS {
                let (addr, url, cookie) = (addr.clone(), url.clone(), cookie.clone());
                tasks.push(tokio::spawn(async move {
                    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                            .await
                            .unwrap();
                    tokio::spawn(conn);
                    let offset = interval.mul_f64(f64::from(c) / f64::from(OPEN_LOOP_CONNECTIONS));
                    let mut lat = Vec::with_capacity(count as usize);
                    let mut prev_done = start;
                    for i in 0..count {
                        let due = start + offset + interval * i;
                        tokio::time::sleep_until(due).await;
                        let sent = tokio::time::Instant::now();
                        let from = if prev_done > due { due } else { sent };
                        let mut req = hyper::Request::get(url.path()).header("host", addr.as_str());
                        if let Some(c) = &cookie {
                            req = req.header("cookie", c.as_str());
                        }
                        let res = sender
                            .send_request(
                                req.body(http_body_util::Empty::<bytes::Bytes>::new())
                                    .unwrap(),
                            )
                            .await
                            .unwrap();
                        assert!(res.status().is_success());
                        http_body_util::BodyExt::collect(res.into_body())
                            .await
                            .unwrap();
                        prev_done = tokio::time::Instant::now();
                        lat.push(prev_done - from);
                    }
                    lat
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await.unwrap());
            }
            lat.sort();
            let pct = |p: f64| {
                lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)].as_secs_f64() * 1000.0
            };
            (pct(0.50), pct(0.99))
        })
    })
    .join()
    .unwrap()
}
