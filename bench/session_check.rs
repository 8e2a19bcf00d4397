//! The session check measured as a user compares two servers: the release broker binary and a
//! baseline server, each a process of its own, loaded in turn by wrk (`-t1 -c32`) in interleaved
//! rounds of one run, figures as medians over the rounds and as ratios (the machine is shared and
//! noisy; ratios taken in one run cancel most of it).
//!
//! The baseline (`bench/baseline.rs`, this executable started again with `--serve-baseline`) is an
//! in-memory session lookup: cookie parsed, id looked up in a map, pre-serialised bytes of the
//! broker's `/auth/me` body answered. A bare 2-byte handler is reported beside it.
//!
//! Brokers, each `oidc-broker serve` with a configuration written into a temporary folder:
//! - `sqlite`: the embedded default (SQLite store and sessions), a proxy route `/x/` to the
//!   baseline process, the `dev` provider, and `up`: a generic OpenID Connect provider that is
//! - `provider`: another broker process, the OpenID Provider `up` signs in at (its own upstream is
//!   its `dev` provider), so a login's provider work is not in `sqlite`'s CPU time;
//! - `redis`: as `sqlite`, with `[sessions]` in Redis (127.0.0.1:6379, the default local cache on).
//!
//! Phases (each can be chosen with `BROKER_BENCH_ONLY=main,observe,instructions,tail,cpu,scale`):
//! 1. `main`: rounds of the baseline lookup, the bare handler, the cookie session check on SQLite and
//!    on Redis, and `/auth/me`, `/auth/check` and the proxy by cookie and by bearer token.
//! 2. `observe`: what the access log and metrics cost the session check: the `sqlite` broker's
//!    store served by a second broker with `[log] access = true` (its lines written to a file, as an
//!    operator's would be) and `[metrics]` on a listener of its own, in interleaved rounds with
//!    `sqlite`, which has neither (request ids are on in both: docs/performance.md counts theirs).
//!    `instructions`: the same brokers' instructions per check under callgrind (valgrind), where
//!    the differences of a few percent that rates on two shared cores blur stay the same run to run.
//! 3. `tail`: p99 at half the SQLite broker's maximum rate, the broker and the baseline lookup at the
//!    same offered rate (open loop).
//! 4. `cpu`: the broker's CPU time per login (through `provider`, and through its own `dev`
//!    provider) and per token refresh, from `/proc/PID/stat`.
//! 5. `scale`: 1 000 and then 1 000 000 live sessions seeded into the stores; wrk rotates over a
//!    sample of 1 000 of them on the brokers and on the baseline; store bytes and RSS.
//!
//! Settings: `BROKER_BENCH_SECONDS` (per wrk run, default 5), `BROKER_BENCH_ROUNDS` (default 5),
//! `BROKER_BENCH_SESSIONS` (the large population, default 1 000 000), `BROKER_BENCH_LOGINS`
//! (default 300), `BROKER_BENCH_CHECKS` (checks counted under callgrind, default 5 000), `BROKER_BIN`
//! (another broker binary), `BROKER_BENCH_REDIS` (`host:port`).
//! Run: `bash bench/run.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "baseline.rs"]
mod baseline;
#[path = "common.rs"]
mod common;
#[path = "open_loop.rs"]
mod open_loop;
#[path = "seed.rs"]
mod seed;

use common::{Broker, Browser, Redis, WrkRun, median, verdict};

// The allocator the broker binary uses (src/main.rs): the baseline process runs on it too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// wrk's connections (one thread).
const CONNECTIONS: u32 = 32;
/// Seeded sessions in the small population, and cookies wrk rotates over in either.
const SMALL: u64 = 1_000;
const CLIENT_SECRET: &str = "bench-client-secret-0123456789abcdef";
const KEY_PREFIX: &str = "oidc-broker-bench:";

struct Settings {
    seconds: f64,
    rounds: usize,
    sessions: u64,
    logins: usize,
    /// Session checks counted under callgrind per broker (`instructions`).
    checks: usize,
    phases: Vec<String>,
    redis: String,
}

impl Settings {
    fn from_env() -> Settings {
        let phases = std::env::var("BROKER_BENCH_ONLY")
            .unwrap_or_else(|_| "main,observe,instructions,tail,cpu,scale".into())
            .split(',')
            .map(|s| s.trim().to_string())
            .collect();
        Settings {
            seconds: common::env_or("BROKER_BENCH_SECONDS", 5.0),
            rounds: common::env_or("BROKER_BENCH_ROUNDS", 5),
            sessions: common::env_or("BROKER_BENCH_SESSIONS", 1_000_000),
            logins: common::env_or("BROKER_BENCH_LOGINS", 300),
            checks: common::env_or("BROKER_BENCH_CHECKS", 5000),
            phases,
            redis: std::env::var("BROKER_BENCH_REDIS").unwrap_or_else(|_| "127.0.0.1:6379".into()),
        }
    }

    fn runs(&self, phase: &str) -> bool {
        self.phases.iter().any(|p| p == phase)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--serve-baseline") {
        baseline::serve(&args[at + 1..]);
    }
    let settings = Settings::from_env();
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("{KEY_PREFIX}{}:", oidc_broker::crypto::random_hex(4));
    // Dropped last: removes this run's Redis keys, also when a phase panics.
    let _cleanup = RedisCleanup {
        addr: settings.redis.clone(),
        prefix: prefix.clone(),
    };
    // Keys of a run that was interrupted before it could clean up.
    let left = Redis::connect(&settings.redis).delete_prefix(KEY_PREFIX);
    if left > 0 {
        println!("removed {left} Redis keys left by an earlier run");
    }
    let env = rt.block_on(Setup::start(&settings, dir.path(), &prefix));
    println!(
        "broker {} (release), baseline pid {}, brokers: sqlite pid {}, redis pid {}, provider pid {}",
        common::broker_bin(),
        env.baseline.pid(),
        env.sqlite.pid(),
        env.redis.pid(),
        env.provider.pid()
    );
    println!(
        "wrk -t1 -c{CONNECTIONS} -d{}s per run, {} interleaved rounds; /auth/me body {} bytes",
        settings.seconds, settings.rounds, env.body_len
    );

    let mut summary = Summary::default();
    let mut main = None;
    if settings.runs("main") {
        main = Some(main_rounds(&settings, &env, &rt, &mut summary));
    }
    if settings.runs("observe") {
        rt.block_on(observe(&settings, &env, &mut summary));
    }
    if settings.runs("instructions") {
        rt.block_on(instructions(&settings, &env, &mut summary));
    }
    if settings.runs("tail") {
        tail(&settings, &env, main.as_ref(), &mut summary);
    }
    if settings.runs("cpu") {
        cpu(&settings, &env, &rt, &mut summary);
    }
    if settings.runs("scale") {
        scale(&settings, &env, &rt, &mut summary);
    }
    summary.print();
    println!(
        "\n(whole run {:.0} s; wrk -t1 -c{CONNECTIONS}, {} s per run, {} rounds)",
        started.elapsed().as_secs_f64(),
        settings.seconds,
        settings.rounds
    );
}

/// Removes this run's Redis keys when dropped.
struct RedisCleanup {
    addr: String,
    prefix: String,
}

impl Drop for RedisCleanup {
    fn drop(&mut self) {
        let n = Redis::connect(&self.addr).delete_prefix(&self.prefix);
        println!("removed this run's {n} Redis keys ({}*)", self.prefix);
    }
}

/// The baseline server process; killed when dropped.
struct Baseline {
    child: Child,
    base: String,
}

impl Baseline {
    fn start(port: u16, cookies: &Path, body: &Path) -> Baseline {
        let child = Command::new(std::env::current_exe().unwrap())
            .arg("--serve-baseline")
            .arg(port.to_string())
            .arg(cookies)
            .arg(body)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "the baseline did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Baseline { child, base }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The processes of a run and what they were signed in with.
struct Setup {
    // Fields drop in order: servers first.
    baseline: Baseline,
    sqlite: Broker,
    redis: Broker,
    provider: Broker,
    dir: PathBuf,
    prefix: String,
    sqlite_cookie: String,
    redis_cookie: String,
    /// Token mode on `sqlite`: a broker refresh token (access tokens are renewed from it).
    refresh_token: String,
    body_len: usize,
}

/// A broker's configuration: development on loopback, no access log, `[limits]` off for the
/// groups the bench drives (login, callback, token), a proxy route to the baseline process.
fn broker_config(
    port: u16,
    dir: &Path,
    name: &str,
    baseline_port: u16,
    provider_port: u16,
    // Sessions in Redis: its `host:port` and the key prefix.
    redis: Option<(&str, &str)>,
) -> String {
    let mut c = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\nenvironment = \"development\"\n\
         [session]\nidle_timeout = \"2h\"\n\
         [store]\nurl = \"sqlite://{db}\"\n\
         [log]\naccess = false\n\
         [limits]\nlogin = \"off\"\ncallback = \"off\"\ntoken = \"off\"\n\
         [routes.\"/x/\"]\nupstream = \"http://127.0.0.1:{baseline_port}/up/\"\n\
         [providers.dev]\nkind = \"dev\"\n\
         [providers.up]\nkind = \"oidc\"\nissuer = \"http://127.0.0.1:{provider_port}\"\nclient_id = \"bench\"\nclient_secret = \"{CLIENT_SECRET}\"\n",
        db = dir.join(format!("{name}.db")).display()
    );
    if let Some((addr, prefix)) = redis {
        c.push_str(&format!(
            "[sessions]\nurl = \"redis://{addr}/0\"\nprefix = \"{prefix}\"\n"
        ));
    }
    c
}

/// The OpenID Provider the `up` provider of both brokers signs in at: a broker of its own with the
/// `dev` provider upstream and a client `bench` registered for their callbacks.
fn provider_config(port: u16, dir: &Path, callbacks: &[u16]) -> String {
    let uris: Vec<String> = callbacks
        .iter()
        .map(|p| format!("\"http://127.0.0.1:{p}/auth/callback/up\""))
        .collect();
    format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\nenvironment = \"development\"\n\
         [store]\nurl = \"sqlite://{db}\"\n\
         [log]\naccess = false\n\
         [limits]\nlogin = \"off\"\ncallback = \"off\"\ntoken = \"off\"\n\
         [providers.dev]\nkind = \"dev\"\n\
         [clients.bench]\nredirect_uris = [{uris}]\nclient_secret = \"{CLIENT_SECRET}\"\n",
        db = dir.join("provider.db").display(),
        uris = uris.join(", ")
    )
}

impl Setup {
    /// The `sqlite` broker's configuration (its store, upstream and providers), listening on `port`.
    fn sqlite_config(&self, port: u16) -> String {
        let baseline_port: u16 = self
            .baseline
            .base
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        broker_config(
            port,
            &self.dir,
            "sqlite",
            baseline_port,
            self.provider.port,
            None,
        )
    }

    async fn start(settings: &Settings, dir: &Path, prefix: &str) -> Setup {
        let (b, s, r, p) = (
            common::free_port(),
            common::free_port(),
            common::free_port(),
            common::free_port(),
        );
        let provider = Broker::start("provider", dir, p, &provider_config(p, dir, &[s, r])).await;
        let sqlite = Broker::start(
            "sqlite",
            dir,
            s,
            &broker_config(s, dir, "sqlite", b, p, None),
        )
        .await;
        let redis = Broker::start(
            "redis",
            dir,
            r,
            &broker_config(r, dir, "redis", b, p, Some((&settings.redis, prefix))),
        )
        .await;
        let sqlite_cookie = common::dev_login(&sqlite.base).await;
        let redis_cookie = common::dev_login(&redis.base).await;
        let res = reqwest::Client::new()
            .get(format!("{}/auth/me", sqlite.base))
            .header("cookie", &sqlite_cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.bytes().await.unwrap();
        let tokens = common::token_login(&sqlite.base).await;

        // The baseline knows every cookie the bench will send it.
        let mut cookies = vec![sqlite_cookie.clone(), redis_cookie.clone()];
        cookies.extend(scale_sample(SMALL).into_iter().map(seed::cookie));
        cookies.extend(
            scale_sample(settings.sessions)
                .into_iter()
                .map(seed::cookie),
        );
        let cookie_file = dir.join("baseline-cookies.txt");
        std::fs::write(&cookie_file, cookies.join("\n")).unwrap();
        let body_file = dir.join("baseline-body.json");
        std::fs::write(&body_file, &body).unwrap();
        let baseline = Baseline::start(b, &cookie_file, &body_file);
        Setup {
            baseline,
            sqlite,
            redis,
            provider,
            dir: dir.to_path_buf(),
            prefix: prefix.to_string(),
            sqlite_cookie,
            redis_cookie,
            refresh_token: tokens["refresh_token"].as_str().unwrap().to_string(),
            body_len: body.len(),
        }
    }

    fn db(&self, broker: &Broker) -> PathBuf {
        self.dir.join(format!("{}.db", broker.name))
    }
}

/// The seeded sessions wrk rotates over when `population` are live: all of a small population, a
/// fixed random sample of a large one.
fn scale_sample(population: u64) -> Vec<u64> {
    seed::sample(SMALL, population)
}

// ---------------------------------------------------------------------------------------------
// Results.

struct Line {
    figure: String,
    value: String,
    target: String,
    verdict: String,
}

#[derive(Default)]
struct Summary {
    lines: Vec<Line>,
}

impl Summary {
    fn target(&mut self, figure: &str, value: String, target: &str, ok: bool) {
        println!("{figure}: {value} (target {target}) {}", verdict(ok));
        self.lines.push(Line {
            figure: figure.into(),
            value,
            target: target.into(),
            verdict: verdict(ok).into(),
        });
    }

    fn report(&mut self, figure: &str, value: String) {
        println!("{figure}: {value}");
        self.lines.push(Line {
            figure: figure.into(),
            value,
            target: "—".into(),
            verdict: "—".into(),
        });
    }

    fn print(&self) {
        println!("\n## Summary\n");
        println!("| figure | value | target | |");
        println!("|---|---|---|---|");
        for l in &self.lines {
            println!(
                "| {} | {} | {} | {} |",
                l.figure, l.value, l.target, l.verdict
            );
        }
    }
}

/// Rates of named runs over rounds, and the server's CPU seconds per request in each.
#[derive(Default)]
struct Rates(BTreeMap<String, Vec<f64>>, BTreeMap<String, Vec<f64>>);

impl Rates {
    fn add(&mut self, name: &str, run: &WrkRun) {
        self.0.entry(name.into()).or_default().push(run.rate);
    }
    fn add_cpu(&mut self, name: &str, seconds_per_request: f64) {
        self.1
            .entry(name.into())
            .or_default()
            .push(seconds_per_request);
    }
    /// The server's median CPU time per request, in µs.
    fn cpu_us(&self, name: &str) -> f64 {
        median(&self.1[name]) * 1e6
    }
    fn median(&self, name: &str) -> f64 {
        median(&self.0[name])
    }
    /// Per-round ratios of `a` to `b`: their spread says how noisy the run was.
    fn ratios(&self, a: &str, b: &str) -> Vec<f64> {
        self.0[a]
            .iter()
            .zip(&self.0[b])
            .map(|(x, y)| x / y)
            .collect()
    }
    /// `median(a) / median(b)`, with the range of the per-round ratios.
    fn ratio(&self, a: &str, b: &str) -> (f64, String) {
        let r = self.median(a) / self.median(b);
        let per_round = self.ratios(a, b);
        let lo = per_round.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = per_round.iter().copied().fold(0.0, f64::max);
        (r, format!("{r:.2} (rounds {lo:.2}–{hi:.2})"))
    }
}

/// One wrk run, checked to have had no error answer.
fn measure(what: &str, seconds: f64, args: &[&str]) -> WrkRun {
    let run = common::wrk(CONNECTIONS, seconds, args);
    assert_eq!(
        run.errors, 0,
        "{what}: {} of {} answers were errors",
        run.errors, run.requests
    );
    println!("  {what:<42} {:>8.0} req/s", run.rate);
    run
}

// ---------------------------------------------------------------------------------------------
// Phase 1: maximum rates, interleaved.

fn main_rounds(
    s: &Settings,
    env: &Setup,
    rt: &tokio::runtime::Runtime,
    summary: &mut Summary,
) -> Rates {
    let mut rates = Rates::default();
    let (b, sq, rd) = (&env.baseline.base, &env.sqlite.base, &env.redis.base);
    let sc = format!("Cookie: {}", env.sqlite_cookie);
    let rc = format!("Cookie: {}", env.redis_cookie);
    for round in 1..=s.rounds {
        println!("round {round}/{}", s.rounds);
        // A fresh access token each round (they live 5 minutes).
        let access = rt.block_on(common::refresh_access_token(sq, &env.refresh_token));
        let bearer = format!("Authorization: Bearer {access}");
        let (bp, sp, rp) = (env.baseline.pid(), env.sqlite.pid(), env.redis.pid());
        // (name, what, URL, header, the server process whose CPU time is counted)
        let runs: [(&str, &str, String, &String, u32); 9] = [
            (
                "lookup",
                "baseline: in-memory session lookup",
                format!("{b}/me"),
                &sc,
                bp,
            ),
            (
                "sqlite",
                "broker, SQLite: /auth/me by cookie",
                format!("{sq}/auth/me"),
                &sc,
                sp,
            ),
            (
                "bare",
                "baseline: bare 2-byte handler",
                format!("{b}/bare"),
                &sc,
                bp,
            ),
            (
                "redis",
                "broker, Redis: /auth/me by cookie",
                format!("{rd}/auth/me"),
                &rc,
                rp,
            ),
            (
                "me_bearer",
                "broker, SQLite: /auth/me by bearer",
                format!("{sq}/auth/me"),
                &bearer,
                sp,
            ),
            (
                "check",
                "broker, SQLite: /auth/check by cookie",
                format!("{sq}/auth/check"),
                &sc,
                sp,
            ),
            (
                "check_bearer",
                "broker, SQLite: /auth/check by bearer",
                format!("{sq}/auth/check"),
                &bearer,
                sp,
            ),
            (
                "proxy",
                "broker, SQLite: proxy by cookie",
                format!("{sq}/x/ping"),
                &sc,
                sp,
            ),
            (
                "proxy_bearer",
                "broker, SQLite: proxy by bearer",
                format!("{sq}/x/ping"),
                &bearer,
                sp,
            ),
        ];
        for (name, what, url, header, pid) in &runs {
            let cpu = common::cpu_seconds(*pid);
            let run = measure(what, s.seconds, &["-H", header, url]);
            rates.add(name, &run);
            rates.add_cpu(
                name,
                (common::cpu_seconds(*pid) - cpu) / run.requests as f64,
            );
        }
    }
    println!();
    for (name, what) in [
        ("bare", "baseline: bare handler"),
        ("lookup", "baseline: in-memory session lookup"),
        ("sqlite", "SQLite /auth/me by cookie"),
        ("redis", "Redis /auth/me by cookie"),
        ("me_bearer", "SQLite /auth/me by bearer"),
        ("check", "SQLite /auth/check by cookie"),
        ("check_bearer", "SQLite /auth/check by bearer"),
        (
            "proxy",
            "SQLite proxy by cookie (upstream: the baseline process)",
        ),
        ("proxy_bearer", "SQLite proxy by bearer"),
    ] {
        summary.report(
            &format!("max rate, {what}: median req/s · server CPU per request"),
            format!("{:.0} · {:.1} µs", rates.median(name), rates.cpu_us(name)),
        );
    }
    let (_, text) = rates.ratio("lookup", "bare");
    summary.report("in-memory lookup : bare handler", text);
    // CPU time per request is less at the mercy of wrk sharing the cores than the rate is.
    summary.report(
        "server CPU per request, SQLite /auth/me by cookie : lookup",
        format!("{:.2}", rates.cpu_us("sqlite") / rates.cpu_us("lookup")),
    );
    summary.report(
        "server CPU per request, Redis /auth/me by cookie : lookup (the broker's, not Redis's)",
        format!("{:.2}", rates.cpu_us("redis") / rates.cpu_us("lookup")),
    );
    let (r, text) = rates.ratio("sqlite", "lookup");
    summary.target(
        "cookie session check, SQLite : lookup",
        text,
        ">= 0.80",
        r >= 0.80,
    );
    let (r, text) = rates.ratio("redis", "lookup");
    summary.target(
        "cookie session check, Redis : lookup",
        text,
        ">= 0.60",
        r >= 0.60,
    );
    for (bearer, cookie, what) in [
        ("me_bearer", "sqlite", "/auth/me"),
        ("check_bearer", "check", "/auth/check"),
        ("proxy_bearer", "proxy", "proxy"),
    ] {
        let (r, text) = rates.ratio(bearer, cookie);
        summary.target(
            &format!("bearer : cookie, {what} (SQLite)"),
            text,
            ">= 0.50",
            r >= 0.50,
        );
    }
    rates
}

// ---------------------------------------------------------------------------------------------
// Phase 2: what observing costs.

/// The session check on the `sqlite` broker (access log off, no `[metrics]`: nothing observed but
/// the request id) and on a second broker on the same store with the access log on and `[metrics]`
/// counting every request, interleaved: the rate ratio and the CPU per request of each.
async fn observe(s: &Settings, env: &Setup, summary: &mut Summary) {
    let port = common::free_port();
    let metrics_port = common::free_port();
    let config = env
        .sqlite_config(port)
        .replace("[log]\naccess = false\n", "[log]\naccess = true\n")
        + &format!("[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n");
    assert!(config.contains("access = true"));
    let observed = Broker::start("sqlite_observed", &env.dir, port, &config).await;
    let header = format!("Cookie: {}", env.sqlite_cookie);
    let mut rates = Rates::default();
    for round in 1..=s.rounds {
        println!("observe round {round}/{}", s.rounds);
        for (name, what, broker) in [
            (
                "off",
                "broker, SQLite: /auth/me, access log off, no [metrics]",
                &env.sqlite,
            ),
            (
                "on",
                "broker, SQLite: /auth/me, access log and [metrics] on",
                &observed,
            ),
        ] {
            let cpu = broker.cpu_seconds();
            let run = measure(
                what,
                s.seconds,
                &["-H", &header, &format!("{}/auth/me", broker.base)],
            );
            rates.add(name, &run);
            rates.add_cpu(name, (broker.cpu_seconds() - cpu) / run.requests as f64);
        }
    }
    // Both were on: a line per request written, and the requests counted.
    let lines = std::fs::read_to_string(&observed.log)
        .map(|l| l.lines().filter(|l| l.contains("/auth/me")).count())
        .unwrap_or(0);
    assert!(lines > 0, "the observed broker wrote no access-log line");
    let scraped = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        scraped.contains("oidc_broker_http_requests_total{route=\"/auth/me\""),
        "the observed broker counted no /auth/me request"
    );
    summary.report(
        "CPU per request, /auth/me unobserved · access log and metrics on",
        format!(
            "{:.1} µs · {:.1} µs",
            rates.cpu_us("off"),
            rates.cpu_us("on")
        ),
    );
    let cpu = rates.cpu_us("off") / rates.cpu_us("on");
    summary.target(
        "CPU per session check, unobserved : access log and metrics on",
        format!("{cpu:.3}"),
        ">= 0.97",
        cpu >= 0.97,
    );
    let (r, text) = rates.ratio("on", "off");
    summary.target(
        "session check with access log and metrics on : unobserved (SQLite)",
        text,
        ">= 0.97",
        r >= 0.97,
    );
}

// ---------------------------------------------------------------------------------------------
// Phase 2b: what observing costs, in instructions.

/// The broker's instructions per session check under callgrind (every thread; counters zeroed after
/// a warm-up, dumped after the measured requests), unobserved and with the access log, `[metrics]`,
/// or both on. Instruction counts are the same from run to run on a noisy machine, so this sees the
/// differences of a few percent that rates on two shared cores cannot; they leave out the kernel's
/// share of a check (the socket's system calls), which observing does not add to.
async fn instructions(s: &Settings, env: &Setup, summary: &mut Summary) {
    let mut per_check = BTreeMap::new();
    for (name, access, metrics) in [
        ("unobserved", false, false),
        ("access log", true, false),
        ("metrics", false, true),
        ("access log and metrics", true, true),
    ] {
        let port = common::free_port();
        let mut config = env.sqlite_config(port);
        if access {
            config = config.replace("[log]\naccess = false\n", "[log]\naccess = true\n");
        }
        if metrics {
            config += &format!(
                "[metrics]\nlisten = \"127.0.0.1:{}\"\n",
                common::free_port()
            );
        }
        let file = name.replace(' ', "_");
        let out = env.dir.join(format!("callgrind.{file}"));
        let out_arg = format!("--callgrind-out-file={}", out.display());
        println!("instructions: {name} (callgrind, {} checks)", s.checks);
        let broker = Broker::start_under(
            &["valgrind", "--tool=callgrind", &out_arg],
            &format!("sqlite_callgrind_{file}"),
            &env.dir,
            port,
            &config,
        )
        .await;
        let client = reqwest::Client::new();
        let check = || async {
            let res = client
                .get(format!("{}/auth/me", broker.base))
                .header("cookie", &env.sqlite_cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{name}: /auth/me");
            res.bytes().await.unwrap();
        };
        for _ in 0..300 {
            check().await;
        }
        callgrind_control("-z", broker.pid());
        for _ in 0..s.checks {
            check().await;
        }
        callgrind_control("-d", broker.pid());
        let dumped = std::fs::read_to_string(format!("{}.1", out.display())).unwrap();
        let total: f64 = dumped
            .lines()
            .find_map(|l| {
                l.strip_prefix("totals:")
                    .or_else(|| l.strip_prefix("summary:"))
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no total in the callgrind dump of {name}"));
        per_check.insert(name, total / s.checks as f64);
        drop(broker);
    }
    let base = per_check["unobserved"];
    summary.report(
        "instructions per session check, unobserved",
        format!("{base:.0}"),
    );
    for name in ["access log", "metrics", "access log and metrics"] {
        let more = per_check[name] - base;
        let share = more / base * 100.0;
        let figure = format!("+{more:.0} (+{share:.1} %)");
        if name == "access log and metrics" {
            summary.target(
                &format!("instructions per session check, {name} on"),
                figure,
                "<= +3 %",
                share <= 3.0,
            );
        } else {
            summary.report(
                &format!("instructions per session check, {name} on"),
                figure,
            );
        }
    }
}

/// `callgrind_control {command} {pid}`, which returns once the broker carried the command out.
fn callgrind_control(command: &str, pid: u32) {
    let status = Command::new("callgrind_control")
        .args([command, &pid.to_string()])
        .stdout(Stdio::null())
        .status()
        .expect("callgrind_control (Debian's valgrind package)");
    assert!(status.success(), "callgrind_control {command} {pid} failed");
}

// ---------------------------------------------------------------------------------------------
// Phase 3: the tail at half the broker's maximum rate.

fn tail(s: &Settings, env: &Setup, main: Option<&Rates>, summary: &mut Summary) {
    let max = match main {
        Some(r) => r.median("sqlite"),
        None => {
            let sc = format!("Cookie: {}", env.sqlite_cookie);
            measure(
                "broker, SQLite: /auth/me by cookie",
                s.seconds,
                &["-H", &sc, &format!("{}/auth/me", env.sqlite.base)],
            )
            .rate
        }
    };
    let rate = max / 2.0;
    println!(
        "tail: open loop at {rate:.0} req/s (half the broker's maximum) over {} connections",
        open_loop::CONNECTIONS
    );
    let (mut base_p99, mut broker_p99) = (Vec::new(), Vec::new());
    for round in 1..=s.rounds.min(3) {
        let b = open_loop::run(
            &format!("{}/me", env.baseline.base),
            Some(&env.sqlite_cookie),
            rate,
            s.seconds,
        );
        let k = open_loop::run(
            &format!("{}/auth/me", env.sqlite.base),
            Some(&env.sqlite_cookie),
            rate,
            s.seconds,
        );
        println!(
            "  round {round}: baseline lookup p50 {:.3} ms p99 {:.3} ms; broker p50 {:.3} ms p99 {:.3} ms",
            b.p50, b.p99, k.p50, k.p99
        );
        base_p99.push(b.p99);
        broker_p99.push(k.p99);
    }
    let (b, k) = (median(&base_p99), median(&broker_p99));
    summary.report(
        &format!("p99 at {rate:.0} req/s: broker (SQLite) · baseline lookup"),
        format!("{k:.2} ms · {b:.2} ms"),
    );
    summary.target(
        "p99 at half the broker's max, broker : baseline",
        format!("{:.2}", k / b),
        "<= 1.5",
        k / b <= 1.5,
    );
}

// ---------------------------------------------------------------------------------------------
// Phase 4: the broker's CPU time per login and per token refresh.

fn cpu(s: &Settings, env: &Setup, rt: &tokio::runtime::Runtime, summary: &mut Summary) {
    let broker = &env.sqlite;
    let n = s.logins;
    println!(
        "cpu: utime + stime of the SQLite broker (/proc/{}/stat) before and after {n} logins, each a new browser \
         at the broker: through `up`, a generic OpenID Connect provider served by another broker process \
         (its authorize, token and key endpoints run there, so the provider's time is excluded), and \
         through the broker's own dev provider (in the same process: included); then wrk on \
         POST /auth/token/refresh",
        broker.pid()
    );
    // Through `provider`: its pages, codes and tokens are another process's CPU.
    let per_login = rt.block_on(async {
        let mut browser = Browser::new();
        // The first signs in at the provider and lets the broker fetch its keys.
        for _ in 0..3 {
            login_through_provider(&mut browser, &broker.base).await;
        }
        let before = broker.cpu_seconds();
        for _ in 0..n {
            login_through_provider(&mut browser, &broker.base).await;
        }
        (broker.cpu_seconds() - before) / n as f64
    });
    summary.report(
        "broker CPU per login, provider excluded (generic OIDC to another process)",
        format!("{:.0} µs", per_login * 1e6),
    );
    // Through the broker's own `dev` provider: its page and token endpoint are in the same process.
    let per_dev_login = rt.block_on(async {
        common::dev_login(&broker.base).await;
        let before = broker.cpu_seconds();
        for _ in 0..n {
            common::dev_login(&broker.base).await;
        }
        (broker.cpu_seconds() - before) / n as f64
    });
    summary.report(
        "broker CPU per login through its own dev provider (provider included)",
        format!("{:.0} µs", per_dev_login * 1e6),
    );
    let script = common::post_json_script(
        &env.dir,
        "refresh",
        &format!("{{\"refresh_token\":\"{}\"}}", env.refresh_token),
    );
    let before = broker.cpu_seconds();
    let run = measure(
        "broker, SQLite: POST /auth/token/refresh",
        s.seconds,
        &[
            "-s",
            script.to_str().unwrap(),
            &format!("{}/auth/token/refresh", broker.base),
        ],
    );
    let per_refresh = (broker.cpu_seconds() - before) / run.requests as f64;
    summary.report(
        "broker CPU per token refresh (POST /auth/token/refresh)",
        format!("{:.0} µs ({:.0} refreshes/s)", per_refresh * 1e6, run.rate),
    );
}

/// A login at the broker through its `up` provider, as a new browser at the broker that is already
/// signed in at the provider (after the first time).
async fn login_through_provider(browser: &mut Browser, base: &str) {
    browser.forget(base);
    let origin = url::Url::parse(base).unwrap();
    let (_, res) = browser
        .navigate(&format!("{base}/auth/login?provider=up"), |u| {
            // The provider has a callback of its own (from its dev provider) on the way.
            u.port() == origin.port() && u.path().starts_with("/auth/callback/")
        })
        .await;
    assert_eq!(res.status(), 303, "login through the provider failed");
    assert!(browser.cookie(base, "broker_session").is_some());
}

// ---------------------------------------------------------------------------------------------
// Phase 5: scale.

/// A store's size in bytes: the SQLite file's pages in use, or Redis's `used_memory`.
struct Sizes {
    sqlite: u64,
    redis_index: u64,
    redis: u64,
}

impl Sizes {
    fn of(env: &Setup, redis: &mut Redis) -> Sizes {
        Sizes {
            sqlite: seed::sqlite_bytes(&env.db(&env.sqlite)),
            redis_index: seed::sqlite_bytes(&env.db(&env.redis)),
            redis: redis.used_memory(),
        }
    }
}

fn scale(s: &Settings, env: &Setup, rt: &tokio::runtime::Runtime, summary: &mut Summary) {
    let mut redis = Redis::connect(&s.redis);
    let sqlite_template = seed::Template::from_sqlite(&env.db(&env.sqlite), &env.sqlite_cookie);
    let redis_template = seed::Template::from_redis(&mut redis, &env.prefix, &env.redis_cookie);
    // The three stores are written at once, each by a thread of its own.
    let seed_range = |redis: &mut Redis, from: u64, to: u64| {
        let t = Instant::now();
        let took = |t: Instant| t.elapsed().as_secs_f64();
        let (a, b, c) = std::thread::scope(|scope| {
            let a = scope.spawn(|| {
                seed::sqlite(&env.db(&env.sqlite), &sqlite_template, from, to, true);
                took(t)
            });
            let b = scope.spawn(|| {
                seed::sqlite(&env.db(&env.redis), &redis_template, from, to, false);
                took(t)
            });
            seed::redis(redis, &env.prefix, &redis_template, from, to);
            let c = took(t);
            (a.join().unwrap(), b.join().unwrap(), c)
        });
        println!(
            "  seeded sessions {from}..{to} in {:.1} s: SQLite {a:.1} s, the Redis broker's index rows {b:.1} s, Redis {c:.1} s",
            took(t)
        );
    };

    let mut figures = Vec::new();
    let mut seeded = 0;
    for population in [SMALL, s.sessions] {
        println!("scale: {population} live sessions");
        seed_range(&mut redis, seeded, population);
        seeded = population;
        // Let the Redis broker take in the invalidations the writes caused.
        std::thread::sleep(Duration::from_secs(2));
        let sizes = Sizes::of(env, &mut redis);
        let sample: Vec<String> = scale_sample(population)
            .into_iter()
            .map(seed::cookie)
            .collect();
        rt.block_on(check_seeded(env, &sample));
        let scripts = [
            ("lookup", &env.baseline.base, "/me"),
            ("sqlite", &env.sqlite.base, "/auth/me"),
            ("redis", &env.redis.base, "/auth/me"),
        ]
        .map(|(name, base, path)| {
            let script = common::rotating_cookies_script(
                &env.dir,
                &format!("{name}-{population}"),
                path,
                &sample,
            );
            (name, format!("{base}{path}"), script)
        });
        let mut rates = Rates::default();
        for round in 1..=s.rounds.min(3) {
            println!("  round {round}");
            for (name, url, script) in &scripts {
                let run = measure(
                    &format!("{name}, rotating over {} cookies", sample.len()),
                    s.seconds,
                    &["-s", script.to_str().unwrap(), url],
                );
                rates.add(name, &run);
            }
        }
        figures.push((
            population,
            rates,
            sizes,
            env.sqlite.rss_mib(),
            env.redis.rss_mib(),
        ));
    }

    let (small, large) = (&figures[0], &figures[1]);
    let added = (large.0 - small.0) as f64;
    for (name, what) in [("sqlite", "SQLite"), ("redis", "Redis")] {
        let (r_small, t_small) = small.1.ratio(name, "lookup");
        let (r_large, t_large) = large.1.ratio(name, "lookup");
        summary.report(
            &format!(
                "cookie session check, {what} : lookup, {} live sessions",
                small.0
            ),
            t_small,
        );
        // Within noise: not more than 10 % below the small population's figure (runs here vary by
        // about that much).
        summary.target(
            &format!(
                "cookie session check, {what} : lookup, {} live sessions",
                large.0
            ),
            format!(
                "{t_large}; {:.2} of the figure at {}",
                r_large / r_small,
                small.0
            ),
            ">= 0.90 of the figure at 1 000",
            r_large >= 0.9 * r_small,
        );
    }
    let per = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / added;
    summary.report(
        "store bytes per session, SQLite (session row + index row, with their indexes)",
        format!("{:.0} B", per(large.2.sqlite, small.2.sqlite)),
    );
    summary.report(
        "store bytes per session, Redis (used_memory) + index row in the SQL store",
        format!(
            "{:.0} B + {:.0} B",
            per(large.2.redis, small.2.redis),
            per(large.2.redis_index, small.2.redis_index)
        ),
    );
    let key = format!(
        "{}{}",
        env.prefix,
        oidc_broker::store::session_key::SessionKey::of(&seed::id(0))
    );
    let usage = redis.cmd(&[b"MEMORY", b"USAGE", key.as_bytes()]).int();
    summary.report(
        "Redis MEMORY USAGE of one session key",
        format!("{usage} B"),
    );
    for f in [small, large] {
        summary.report(
            &format!("broker RSS with {} live sessions: SQLite · Redis", f.0),
            format!("{:.1} MiB · {:.1} MiB", f.3, f.4),
        );
    }
}

/// Every seeded session in `sample` is answered 200 by both brokers, with its own handle.
async fn check_seeded(env: &Setup, sample: &[String]) {
    let client = reqwest::Client::new();
    for cookie in sample.iter().take(200) {
        for broker in [&env.sqlite, &env.redis] {
            let res = client
                .get(format!("{}/auth/me", broker.base))
                .header("cookie", cookie)
                .send()
                .await
                .unwrap();
            assert_eq!(
                res.status(),
                200,
                "broker {}: a seeded session was not found",
                broker.name
            );
            let body: serde_json::Value = res.json().await.unwrap();
            assert!(
                body["session"]["handle"]
                    .as_str()
                    .unwrap()
                    .starts_with("ses_0")
            );
        }
    }
}
