//! Several instances on shared Postgres and Redis, and stores that go away mid-traffic.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

use crate::helpers::*;
use crate::peers::free_port;

/// A TCP proxy the test can cut: while down it drops every connection through it and refuses
/// new ones, as a server that went away would. While held, the server's bytes wait in the proxy.
struct Cuttable {
    addr: String,
    up: Arc<AtomicBool>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    held: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Copies `from` to `to`, each chunk waiting while `held` is true.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut held: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if held.wait_for(|h| !*h).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl Cuttable {
    async fn start(target: String) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let (tx, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(tx);
        let held = Arc::new(tokio::sync::watch::Sender::new(false));
        let (up2, gen2, held2) = (up.clone(), generation.clone(), held.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let target = target.clone();
                let mut cut = gen2.subscribe();
                let (never, server_held) =
                    (tokio::sync::watch::channel(false).1, held2.subscribe());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let ((in_r, in_w), (out_r, out_w)) =
                        (inbound.into_split(), outbound.into_split());
                    tokio::select! {
                        _ = pump(in_r, out_w, never) => {}
                        _ = pump(out_r, in_w, server_held) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Cuttable {
            addr,
            up,
            generation,
            held,
        }
    }

    fn hold(&self, held: bool) {
        self.held.send_replace(held);
    }

    fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

fn host_port(url: &str) -> String {
    let u = url::Url::parse(url).unwrap();
    format!(
        "{}:{}",
        u.host_str().unwrap(),
        u.port()
            .unwrap_or(if u.scheme() == "redis" { 6379 } else { 5432 })
    )
}

fn with_host_port(url: &str, addr: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let (host, port) = addr.rsplit_once(':').unwrap();
    u.set_host(Some(host)).unwrap();
    u.set_port(Some(port.parse().unwrap())).unwrap();
    u.to_string()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}{}", oidc_broker::crypto::random_hex(6))
}

async fn wait_for(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn status(client: &reqwest::Client, url: &str) -> u16 {
    match client
        .get(url)
        .header("sec-fetch-mode", "cors")
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn redis_going_away_answers_503_and_service_resumes_with_every_session() {
    let redis = Cuttable::start(host_port(&redis_url())).await;
    let app = spawn(
        Spawn::providers(format!(
            "[providers.dev]\nkind = \"dev\"\n[sessions]\nurl = \"{}\"\nprefix = \"{}\"\n",
            with_host_port(&redis_url(), &redis.addr),
            unique("outage:")
        ))
        .own_sessions(),
    )
    .await;
    app.dev_login("alice").await;
    assert_eq!(app.me().await.status(), 200);

    redis.down();
    // The proxy closes the broker's connection asynchronously.
    wait_for("the session check answers 503", async || {
        status(&app.browser, &app.url("/auth/me")).await == 503
    })
    .await;
    let res = app.me().await;
    assert_eq!(res.status(), 503);
    let body = json(res).await;
    assert_eq!(body["error"], "unavailable");
    assert!(body["message"].as_str().unwrap().contains("unavailable"));
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(json(ready).await["sessions"], "unreachable");

    redis.up();
    wait_for("the session check recovers", async || {
        status(&app.browser, &app.url("/auth/me")).await == 200
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);
    assert_eq!(
        json(app.me().await).await["user"]["email"],
        "alice@example.test"
    );
}

#[tokio::test]
async fn postgres_going_away_answers_503_and_service_resumes() {
    let pg = Cuttable::start(host_port(&postgres_url())).await;
    let app = spawn(
        Spawn::providers(format!(
            "[providers.dev]\nkind = \"dev\"\n[store]\nurl = \"{}\"\nschema = \"{}\"\n",
            with_host_port(&postgres_url(), &pg.addr),
            unique("outage_")
        ))
        .external_store(),
    )
    .await;
    app.dev_login("alice").await;
    assert_eq!(app.me().await.status(), 200);

    pg.down();
    // Sessions are in Postgres here: the check cannot answer, and says so.
    let res = app.me().await;
    assert_eq!(res.status(), 503, "{}", res.text().await.unwrap());
    assert_eq!(app.get("/readyz").await.status(), 503);
    // A login cannot start either, and nothing is half-written.
    let res = app
        .browser
        .get(app.url("/auth/login?provider=dev"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);

    pg.up();
    wait_for("the session check recovers", async || {
        status(&app.browser, &app.url("/auth/me")).await == 200
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);
}

/// A broker process of its own, on a free port, with the given store lines.
struct BrokerProcess {
    base: String,
    child: Child,
}

async fn start_process(dir: &std::path::Path, name: &str, stores: &str) -> BrokerProcess {
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\nenvironment = \"development\"\n\
             [providers.dev]\nkind = \"dev\"\n{stores}"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_oidc-broker"))
        .args(["serve", "--config"])
        .arg(&path)
        .env("BROKER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[broker] {line}");
        }
    });
    let client = reqwest::Client::new();
    wait_for("the broker process answers", async || {
        status(&client, &format!("{base}/healthz")).await == 200
    })
    .await;
    BrokerProcess { base, child }
}

#[tokio::test]
async fn two_processes_share_sessions_and_a_revocation_on_one_holds_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let key = oidc_broker::tokens::seal::generate_key().unwrap();
    let stores = format!(
        "[store]\nurl = \"{}\"\nschema = \"{}\"\n[sessions]\nurl = \"{}\"\nprefix = \"{}\"\n\
         [keys]\ncurrent = \"k1\"\n[keys.ring]\nk1 = \"{key}\"\n",
        postgres_url(),
        unique("two_"),
        redis_url(),
        unique("two:")
    );
    let a = start_process(dir.path(), "a", &stores).await;
    let b = start_process(dir.path(), "b", &stores).await;

    // Two people sign in on A (cookies are per host, not per port: one browser reaches both).
    let alice = browser();
    let bob = browser();
    for (client, user) in [(&alice, "alice"), (&bob, "bob")] {
        let res = dev_login_at(client, &a.base, user).await;
        assert_eq!(res.status(), 303);
    }
    let me_a = format!("{}/auth/me", a.base);
    let me_b = format!("{}/auth/me", b.base);
    assert_eq!(status(&alice, &me_a).await, 200);
    assert_eq!(status(&alice, &me_b).await, 200, "B reads A's session");

    // Revoked on B: A refuses it at the next request.
    let res = alice
        .post(format!("{}/auth/logout", b.base))
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(status(&alice, &me_a).await, 401);

    // A restarts: bob's session survives.
    let BrokerProcess { mut child, .. } = a;
    child.kill().await.unwrap();
    let a = start_process(dir.path(), "a", &stores).await;
    let me_a = format!("{}/auth/me", a.base);
    assert_eq!(status(&bob, &me_a).await, 200);
    assert_eq!(status(&bob, &me_b).await, 200);
    assert_eq!(status(&alice, &me_b).await, 401);
}

/// The dev provider's login on a broker at `base`, driven with `client`.
async fn dev_login_at(client: &reqwest::Client, base: &str, user: &str) -> reqwest::Response {
    let res = client
        .get(format!("{base}/auth/login?provider=dev"))
        .send()
        .await
        .unwrap();
    dev_pick_user(client, &location(res.headers()), user).await
}

#[tokio::test]
async fn a_request_still_running_when_its_session_is_revoked_cannot_write_it_back() {
    let app = spawn(dev_provider()).await;
    app.dev_login("alice").await;
    let me = json(app.me().await).await;
    let handle = me["session"]["handle"].as_str().unwrap();
    let state = &app.state;

    // A request that loaded the session and changed it...
    let in_flight = oidc_broker::session::open_by_handle(state.session_parts(), handle)
        .await
        .unwrap()
        .unwrap();
    assert!(in_flight.get_value("broker").await.unwrap().is_some());
    in_flight.insert("touched", 1).await.unwrap();

    // ...while the session is revoked elsewhere...
    let row = state.store.indexed_session(handle).await.unwrap().unwrap();
    state.end_session(&row).await.unwrap();

    // ...finishes, and its save finds nothing to save.
    in_flight.save().await.unwrap();
    let key = &row.session_key;
    assert!(state.sessions.load_key(key).await.unwrap().is_none());
    assert_eq!(app.me().await.status(), 401);
}

#[tokio::test]
async fn concurrent_logins_of_one_person_all_succeed_with_one_user() {
    let app = spawn(dev_provider()).await;
    let login = || async {
        let client = browser();
        let res = client
            .get(app.url("/auth/login?provider=dev"))
            .send()
            .await
            .unwrap();
        let res = dev_pick_user(&client, &location(res.headers()), "bob").await;
        assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
        let me = client
            .get(app.url("/auth/me"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap();
        me["user"]["id"].as_str().unwrap().to_string()
    };
    // First logins of a new identity, then returning ones, eight at a time.
    for _ in 0..2 {
        let ids = futures::future::join_all((0..8).map(|_| login())).await;
        assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    }
}

/// A broker with its sessions in Redis at `url` under `prefix`.
async fn redis_broker(url: &str, prefix: &str, local_cache: bool) -> TestApp {
    spawn(
        Spawn::providers(format!(
            "[providers.dev]\nkind = \"dev\"\n[sessions]\nurl = \"{url}\"\nprefix = \"{prefix}\"\nlocal_cache = {local_cache}\n"
        ))
        .own_sessions(),
    )
    .await
}

/// Deletes every key under `prefix`, as another instance ending those sessions would.
async fn delete_in_redis(prefix: &str) -> usize {
    use fred::prelude::*;
    let client = Builder::from_config(Config::from_url(&redis_url()).unwrap())
        .build()
        .unwrap();
    client.init().await.unwrap();
    let keys: Vec<String> = client
        .custom(fred::cmd!("KEYS"), vec![format!("{prefix}*")])
        .await
        .unwrap();
    for k in &keys {
        let _: i64 = client.del(k.as_str()).await.unwrap();
    }
    let _ = client.quit().await;
    keys.len()
}

/// A record another instance deletes is refused at the very next request, with the record cache
/// (the default) as without it (`local_cache = false`): a cached record is used only after a fence shows Redis's
/// invalidations up to that request have arrived.
#[tokio::test]
async fn a_session_ended_in_redis_by_another_instance_is_refused_at_the_next_request() {
    for local_cache in [true, false] {
        let prefix = unique("ended:");
        let app = redis_broker(&redis_url(), &prefix, local_cache).await;
        for round in 0..20 {
            app.dev_login("alice").await;
            for _ in 0..3 {
                assert_eq!(app.me().await.status(), 200, "round {round}");
            }
            let cached = app.state.sessions.cached_records();
            assert_eq!(cached >= 1, local_cache, "round {round}: {cached} cached");
            assert!(delete_in_redis(&prefix).await >= 1);
            assert_eq!(
                app.me().await.status(),
                401,
                "round {round} (local_cache = {local_cache}): a deleted record was answered at the next request"
            );
        }
    }
}

/// The fence, shown directly: while Redis's answers to the broker are held back, another client
/// deletes a cached record. The broker must not answer from its cache before what Redis sent after
/// the deletion — the push, then the fence's answer — has arrived.
#[tokio::test]
async fn a_cached_record_is_answered_only_after_the_fence() {
    let redis = Cuttable::start(host_port(&redis_url())).await;
    let prefix = unique("fence:");
    let app = redis_broker(&with_host_port(&redis_url(), &redis.addr), &prefix, true).await;
    for round in 0..3 {
        app.dev_login("alice").await;
        wait_for("the record to be cached", async || {
            app.me().await.status() == 200 && app.state.sessions.cached_records() >= 1
        })
        .await;
        redis.hold(true);
        assert!(delete_in_redis(&prefix).await >= 1);
        let me = app.me();
        tokio::pin!(me);
        tokio::select! {
            res = &mut me => panic!("round {round}: answered {} before Redis's answers arrived", res.status()),
            () = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        redis.hold(false);
        assert_eq!(me.await.status(), 401, "round {round}");
    }
}

/// Redis drops the broker's connection and, in the same transaction, deletes a cached record: the
/// push for it is lost with the connection. The cache must not answer it: the next fence finds the
/// connection no longer tracked (or no connection at all), and the record is read from Redis.
#[tokio::test]
async fn a_record_deleted_as_the_connection_drops_is_never_answered_from_the_cache() {
    use fred::prelude::*;
    let prefix = unique("drop:");
    let app = redis_broker(&redis_url(), &prefix, true).await;
    let admin = Builder::from_config(Config::from_url(&redis_url()).unwrap())
        .build()
        .unwrap();
    admin.init().await.unwrap();
    for round in 0..3 {
        app.dev_login("alice").await;
        wait_for("the record to be cached", async || {
            app.me().await.status() == 200 && app.state.sessions.cached_records() >= 1
        })
        .await;
        let id = app
            .state
            .sessions
            .redis_connection_id()
            .await
            .unwrap()
            .unwrap();
        let keys: Vec<String> = admin
            .custom(fred::cmd!("KEYS"), vec![format!("{prefix}*")])
            .await
            .unwrap();
        assert!(!keys.is_empty());
        let trx = admin.multi();
        let _: () = trx
            .custom(
                fred::cmd!("CLIENT"),
                vec!["KILL".to_string(), "ID".into(), id.to_string()],
            )
            .await
            .unwrap();
        for k in &keys {
            let _: () = trx.del(k.as_str()).await.unwrap();
        }
        let _: Value = trx.exec(true).await.unwrap();
        // Every answer until the broker has reconnected is a refusal or a 503, never the record.
        let mut statuses = Vec::new();
        loop {
            let status = app.me().await.status().as_u16();
            statuses.push(status);
            assert_ne!(
                status, 200,
                "round {round}: a deleted record was answered: {statuses:?}"
            );
            if status == 401 {
                break;
            }
            assert!(
                statuses.len() < 200,
                "round {round}: never recovered: {statuses:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let _ = admin.quit().await;
}

/// `rediss://` means TLS: against a Redis that speaks plain text the broker must not fall back to
/// it (session records would cross the network in clear); it stays unready instead.
#[tokio::test]
async fn rediss_never_falls_back_to_plain_text() {
    let url = redis_url().replacen("redis://", "rediss://", 1);
    let app = spawn(
        Spawn::providers(format!(
            "[providers.dev]\nkind = \"dev\"\n[sessions]\nurl = \"{url}\"\nprefix = \"{}\"\n",
            unique("tls:")
        ))
        .own_sessions(),
    )
    .await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    assert_eq!(json(ready).await["sessions"], "unreachable");
}

/// On SQLite the session check keeps the records it read while the database is unchanged. A
/// session another process ends in the file (the operator CLI does exactly this) is refused at
/// the very next request, and so is one the broker's own writes end.
#[tokio::test]
async fn a_session_ended_in_the_sqlite_file_by_another_process_is_refused_at_the_next_request() {
    let app = spawn(dev_provider().sqlite_only()).await;
    let other = rusqlite::Connection::open(&app.db).unwrap();
    for round in 0..20 {
        app.dev_login("alice").await;
        for _ in 0..3 {
            assert_eq!(app.me().await.status(), 200, "round {round}");
        }
        assert!(
            app.state.sessions.cached_records() >= 1,
            "round {round}: the record was not cached"
        );
        // Another process's connection, as `oidc-broker sessions revoke` would use.
        let ended = other.execute("DELETE FROM tower_sessions", []).unwrap();
        assert!(ended >= 1);
        assert_eq!(
            app.me().await.status(),
            401,
            "round {round}: a deleted record was answered at the next request"
        );
    }
    // Any commit counts, not only one to the sessions table: the record is read again and answers.
    app.dev_login("alice").await;
    assert_eq!(app.me().await.status(), 200);
    other
        .execute_batch("CREATE TABLE unrelated (x INTEGER); DROP TABLE unrelated;")
        .unwrap();
    assert_eq!(app.me().await.status(), 200);
}
