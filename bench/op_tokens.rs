//! The OpenID Provider's token endpoint and userinfo, measured with wrk against the broker in this
//! process (SQLite, the embedded default): the refresh grant (each connection renews with the
//! refresh token the last answer rotated to), the authorization-code grant (codes issued
//! beforehand, each traded once), and userinfo with a bearer access token.
//!
//! wrk runs in its own process, so this process's CPU time during a run is the broker's alone:
//! CPU per request, and from it the requests one core sustains, are reported beside the rate.
//! Keycloak's published sizing is about 120 refreshes per second per vCPU; the target here is ten
//! times that per core. Run: `bash bench/run.sh` (or `cargo bench --bench op_tokens`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use oidc_broker::App;
use oidc_broker::clock::SystemClock;
use serde_json::Value;

#[path = "common.rs"]
mod common;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SECONDS: u64 = 10;
const CONNECTIONS: usize = 32;
const REDIRECT: &str = "http://app.test/cb";
/// Keycloak's published sizing: refreshes per second per vCPU.
const KEYCLOAK_REFRESHES_PER_VCPU: f64 = 120.0;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = rt.block_on(start_broker(dir.path()));
    let cookie = rt.block_on(common::dev_login(&base));
    println!(
        "OpenID Provider endpoints, SQLite — wrk -t1 -c{CONNECTIONS}, {SECONDS}s per run; CPU is the broker's own"
    );

    let tokens = rt.block_on(issue_tokens(&base, &cookie, 2 * CONNECTIONS));
    let refresh_tokens: Vec<String> = tokens
        .iter()
        .map(|t| t["refresh_token"].as_str().unwrap().to_string())
        .collect();
    let refresh = run_pool(
        &format!("{base}/oauth2/token"),
        "grant_type=refresh_token&client_id=bench&refresh_token=",
        &refresh_tokens,
        SECONDS,
    );
    report("refresh grant", &refresh);

    let codes = rt.block_on(issue_codes(&base, &cookie, 6000));
    let code_run = run_pool(
        &format!("{base}/oauth2/token"),
        &format!(
            "grant_type=authorization_code&client_id=bench&redirect_uri={}&code_verifier={}&code=",
            urlencode(REDIRECT),
            VERIFIER
        ),
        &codes,
        3,
    );
    report("authorization-code grant", &code_run);

    let access = tokens[0]["access_token"].as_str().unwrap();
    let userinfo = run_wrk(
        &[
            "-H",
            &format!("Authorization: Bearer {access}"),
            &format!("{base}/oauth2/userinfo"),
        ],
        None,
        SECONDS,
    );
    report("userinfo", &userinfo);

    let per_core = refresh.per_core();
    let target = 10.0 * KEYCLOAK_REFRESHES_PER_VCPU;
    println!();
    println!(
        "refreshes per core = {per_core:.0}/s (target >= {target:.0}: ten times Keycloak's ~{KEYCLOAK_REFRESHES_PER_VCPU:.0} per vCPU) {}",
        if per_core >= target { "PASS" } else { "MISS" }
    );
    drop(rt);
}

/// A fixed verifier for every pre-issued code (its S256 challenge goes into each authorize).
const VERIFIER: &str = "bench-verifier-bench-verifier-bench-verifier-0123";

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn start_broker(dir: &std::path::Path) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let toml = format!(
        "[server]\nenvironment = \"development\"\npublic_url = \"{base}\"\n[session]\nidle_timeout = \"30m\"\n[store]\nurl = \"sqlite://{}/bench.db\"\n[providers.dev]\nkind = \"dev\"\n[limits]\nlogin = \"off\"\ntoken = \"off\"\n[clients.bench]\nredirect_uris = [\"{REDIRECT}\"]\n",
        dir.display()
    );
    let config = oidc_broker::config::from_toml_str(&toml, Vec::new()).unwrap();
    let broker = App::build(config, Arc::new(SystemClock)).await.unwrap();
    tokio::spawn(async move { broker.run(listener, std::future::pending()).await.unwrap() });
    base
}

/// `n` codes for the signed-in session (the authorization endpoint answers from it at once).
async fn issue_codes(base: &str, cookie: &str, n: usize) -> Vec<String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let challenge = oidc_broker::crypto::pkce_challenge(VERIFIER);
    let url = format!(
        "{base}/oauth2/authorize?response_type=code&client_id=bench&redirect_uri={}&scope=openid%20profile%20email%20offline_access&state=s&code_challenge={challenge}&code_challenge_method=S256",
        urlencode(REDIRECT)
    );
    let mut codes = Vec::with_capacity(n);
    for _ in 0..n {
        let res = client
            .get(&url)
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let to = res.headers()["location"].to_str().unwrap().to_string();
        let code = url::Url::parse(&to)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_else(|| panic!("no code in {to}"));
        codes.push(code);
    }
    codes
}

/// `n` token responses, each from a code of its own (one grant, one refresh-token chain each).
async fn issue_tokens(base: &str, cookie: &str, n: usize) -> Vec<Value> {
    let codes = issue_codes(base, cookie, n).await;
    let client = reqwest::Client::new();
    let mut out = Vec::with_capacity(n);
    for code in codes {
        let res = client
            .post(format!("{base}/oauth2/token"))
            .form(&[
                ("grant_type", "authorization_code"),
                ("client_id", "bench"),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("code", &code),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        out.push(res.json().await.unwrap());
    }
    out
}

struct Run {
    ok: f64,
    seconds: f64,
    cpu_seconds: f64,
    errors: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.ok / self.seconds
    }
    fn cpu_us(&self) -> f64 {
        self.cpu_seconds * 1e6 / self.ok.max(1.0)
    }
    fn per_core(&self) -> f64 {
        1e6 / self.cpu_us()
    }
}

fn report(what: &str, r: &Run) {
    println!(
        "{what}: {:.0}/s, broker CPU {:.0} µs per request ({:.0}/s per core){}",
        r.rate(),
        r.cpu_us(),
        r.per_core(),
        if r.errors > 0 {
            format!(", {} refused", r.errors)
        } else {
            String::new()
        }
    );
}

/// wrk with `args`, a Lua script if any; the answers that succeeded and the broker's CPU time (the
/// broker runs in this process).
fn run_wrk(args: &[&str], script: Option<&std::path::Path>, seconds: u64) -> Run {
    let script = script.map(|s| s.display().to_string());
    let mut all: Vec<&str> = Vec::new();
    if let Some(s) = &script {
        all.extend(["-s", s]);
    }
    all.extend(args);
    let me = std::process::id();
    let cpu_before = common::cpu_seconds(me);
    let run = common::wrk(CONNECTIONS as u32, seconds as f64, &all);
    Run {
        ok: (run.requests - run.errors) as f64,
        seconds: run.seconds.min(seconds as f64 + 0.5),
        cpu_seconds: common::cpu_seconds(me) - cpu_before,
        errors: run.errors,
    }
}

/// POSTs `prefix + value` with values from a pool: a refresh answer puts its new refresh token
/// back; an authorization code is used once. An empty pool sends a spent value (refused, counted).
fn run_pool(url: &str, prefix: &str, pool: &[String], seconds: u64) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("pool.lua");
    let values: Vec<String> = pool.iter().map(|v| format!("\"{v}\"")).collect();
    std::fs::write(
        &script,
        format!(
            r#"local pool = {{{}}}
local spent = "spent"
local recycle = {recycle}
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
request = function()
  local v = table.remove(pool) or spent
  return wrk.format(nil, nil, nil, "{prefix}" .. v)
end
response = function(status, headers, body)
  local rt = body:match('"refresh_token":"([^"]+)"')
  if recycle and rt then table.insert(pool, 1, rt) end
end
"#,
            values.join(","),
            recycle = prefix.contains("refresh_token="),
        ),
    )
    .unwrap();
    run_wrk(&[url], Some(&script), seconds)
}
