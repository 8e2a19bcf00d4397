//! The OpenAPI document: served at `/openapi.json`, committed as `docs/openapi.json` (and kept
//! equal to what the code generates), every path in it routed, and schemathesis against a live
//! broker finding no 5xx and no answer that breaks the document.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine;

use crate::helpers::*;

const ADMIN_TOKEN: &str = "openapi-test-admin-token-0123456789abcdef";
const METRICS_TOKEN: &str = "openapi-test-metrics-token-0123456789abcdef";
const CLIENT_SECRET: &str = "openapi-test-client-secret-0123456789abcdef";

fn committed_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json")
}

/// A broker with every documented surface on: OpenID Provider mode, the admin API, `/metrics`.
async fn full_broker() -> TestApp {
    spawn(Spawn::providers(format!(
        "[providers.dev]\nkind = \"dev\"\n\
         [clients.app]\nredirect_uris = [\"http://app.test:3000/cb\"]\nclient_secret = \"{CLIENT_SECRET}\"\n\
         [admin]\ntoken = \"{ADMIN_TOKEN}\"\n\
         [metrics]\ntoken = \"{METRICS_TOKEN}\"\n"
    )))
    .await
}

#[test]
fn the_committed_document_is_what_the_code_generates() {
    let generated = oidc_broker::routes::openapi::document();
    let path = committed_path();
    if std::env::var_os("BROKER_WRITE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is not the document the code generates; regenerate it with\n  \
         BROKER_WRITE_OPENAPI=1 cargo test --test it openapi::the_committed_document\n\
         and commit the change"
    );
}

#[tokio::test]
async fn the_document_is_served_and_is_openapi_3_1() {
    let app = full_broker().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let text = res.text().await.unwrap();
    assert_eq!(text, oidc_broker::routes::openapi::document());
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in [
        "/auth/me",
        "/auth/session",
        "/auth/sessions",
        "/auth/sessions/{handle}",
        "/auth/sessions/revoke-others",
        "/auth/check",
        "/auth/logout",
        "/auth/token",
        "/auth/token/refresh",
        "/auth/firebase/{provider}/session",
        "/.well-known/jwks.json",
        "/.well-known/openid-configuration",
        "/oauth2/token",
        "/oauth2/userinfo",
        "/oauth2/revoke",
        "/healthz",
        "/readyz",
        "/admin/users/{id}/sessions",
        "/admin/sessions/{handle}",
        "/admin/audit",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    for scheme in ["session_cookie", "bearer", "admin_token"] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

/// A documented operation the router does not serve would be a document that drifted: each one
/// gets an answer from a handler (the router's own 404 and 405 have no body).
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = full_broker().await;
    let doc: serde_json::Value =
        serde_json::from_str(&oidc_broker::routes::openapi::document()).unwrap();
    let client = reqwest::Client::new();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{handle}", "h")
            .replace("{id}", "u")
            .replace("{provider}", "dev");
        for method in ops.as_object().unwrap().keys() {
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = client
                .request(m, app.url(&concrete))
                .header("x-csrf", "1")
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            let body = res.bytes().await.unwrap();
            assert!(
                status != 405 && !(status == 404 && body.is_empty()),
                "{method} {path} is documented but not routed ({status})"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked}");
}

/// Routes that answer pages, redirects or form posts, not JSON: they stay out of the document.
const NOT_JSON: &[(&str, &str)] = &[
    ("/", "the home page"),
    (
        "/auth/login",
        "a redirect to the provider, or the chooser page",
    ),
    ("/auth/callback/{provider}", "a redirect back to the app"),
    (
        "/auth/firebase/{provider}/password",
        "the Firebase form's post: redirects",
    ),
    ("/auth/frontchannel-logout/{provider}", "an iframe page"),
    ("/auth/logged-out", "a page or a redirect"),
    ("/auth/sessions/manage", "a page"),
    (
        "/auth/sessions/{handle}/revoke",
        "the sessions page's form post: redirects",
    ),
    ("/oauth2/authorize", "redirects and error pages (OAuth 2.0)"),
    ("/oauth2/authorize/resume", "redirects"),
    ("/oauth2/logout", "RP-initiated logout: redirects and pages"),
    ("/example", "the example app"),
    ("/example/", "the example app"),
    ("/example/app.css", "the example app"),
    ("/example/app.js", "the example app"),
];

/// Every route literal in `src/routes` (`.route("…"`), as a reviewer would find them.
fn routes_in_source() -> Vec<String> {
    let mut out = Vec::new();
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for (at, _) in text.match_indices(".route(") {
                    let rest = text[at + ".route(".len()..].trim_start();
                    if let Some(lit) = rest.strip_prefix('"')
                        && let Some(end) = lit.find('"')
                    {
                        out.push(lit[..end].to_string());
                    }
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// A new JSON route must be added to `src/routes/openapi.rs` (or, if it answers no JSON, to
/// [`NOT_JSON`] here).
#[test]
fn every_route_is_documented_or_answers_no_json() {
    let doc: serde_json::Value =
        serde_json::from_str(&oidc_broker::routes::openapi::document()).unwrap();
    let routes = routes_in_source();
    assert!(routes.len() > 30, "{routes:?}");
    let missing: Vec<_> = routes
        .iter()
        .filter(|r| !doc["paths"][r.as_str()].is_object())
        .filter(|r| !NOT_JSON.iter().any(|(p, _)| p == r))
        .collect();
    assert!(
        missing.is_empty(),
        "routes neither in src/routes/openapi.rs nor listed as answering no JSON: {missing:?}"
    );
    for (p, why) in NOT_JSON {
        assert!(
            routes.iter().any(|r| r == p),
            "{p} ({why}) is no route any more"
        );
    }
}

/// The schemathesis of `tests/run.sh` (a venv in `tests/.venv-schemathesis`), or `$SCHEMATHESIS`.
fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/.venv-schemathesis/bin/schemathesis"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "schemathesis is not installed at {}: run tests/run.sh, or\n  \
         python3 -m venv tests/.venv-schemathesis && \
         tests/.venv-schemathesis/bin/pip install 'schemathesis==4.32.5'\n\
         (or set SCHEMATHESIS to its path)",
        path.display()
    );
    path
}

/// One schemathesis run against `app`: no 5xx, and every answer's status, content type and body as
/// the document says.
async fn run_schemathesis(app: &TestApp, name: &str, args: &[&str]) {
    run_schemathesis_with(app, name, "", args).await
}

/// [`run_schemathesis`] with a `schemathesis.toml` (values for parameters, say).
async fn run_schemathesis_with(app: &TestApp, name: &str, config: &str, args: &[&str]) {
    let bin = schemathesis();
    let work = tempfile::tempdir().unwrap();
    let config_file = work.path().join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    // Bounded and reproducible by default; a deeper or another run: BROKER_SCHEMATHESIS_EXAMPLES=200
    // BROKER_SCHEMATHESIS_SEED=7.
    let max_examples =
        std::env::var("BROKER_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "10".into());
    let seed = std::env::var("BROKER_SCHEMATHESIS_SEED").unwrap_or_else(|_| "15".into());
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.args(["--no-color", "--config-file"])
        .arg(&config_file)
        .arg("run")
        .arg(app.url("/openapi.json"))
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            "--max-examples",
            &max_examples,
            "--seed",
            &seed,
            "--workers",
            "1",
            "--phases",
            "examples,coverage,fuzzing",
            "--request-timeout",
            "10",
        ])
        .args(args)
        .current_dir(work.path())
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(240), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ({name}) ran over 240 s"))
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if std::env::var_os("BROKER_TEST_SCHEMATHESIS_OUTPUT").is_some() {
        eprintln!("{stdout}\n{stderr}");
    }
    eprintln!(
        "schemathesis ({name}) took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "schemathesis ({name}) failed:\n{stdout}\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let app = full_broker().await;
    let res = app.dev_login("alice").await;
    let cookie = cookie_value(res.headers(), "broker_session").expect("a session cookie");
    let cookie_header = format!("Cookie: broker_session={cookie}");
    // Signed in by cookie (writes carry X-CSRF). Ending the session (logout, or DELETE of its handle,
    // which schemathesis learns from /auth/sessions) would leave the other operations only 401s, so
    // those run last.
    let ends_the_session = r"^/auth/logout$|^/auth/sessions/\{handle\}$";
    run_schemathesis(
        &app,
        "signed in",
        &[
            "-H",
            &cookie_header,
            "-H",
            "X-CSRF: 1",
            "--exclude-path-regex",
            &format!("^/admin/|^/metrics$|{ends_the_session}"),
        ],
    )
    .await;
    let me = app.me().await;
    assert_eq!(me.status(), 200, "the session outlived the run");
    // By a broker access token (token mode), on the operations that read the session.
    let tokens = crate::token_mode::tokens(&app).await;
    let bearer = format!(
        "Authorization: Bearer {}",
        tokens["access_token"].as_str().unwrap()
    );
    run_schemathesis(
        &app,
        "bearer",
        &[
            "-H",
            &bearer,
            "--include-path-regex",
            "^/auth/(me|session|sessions|check)$",
        ],
    )
    .await;
    // The OpenID Provider endpoints, as the registered client.
    let basic = format!(
        "Authorization: Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("app:{CLIENT_SECRET}"))
    );
    run_schemathesis(
        &app,
        "openid provider client",
        &["-H", &basic, "--include-path-regex", "^/oauth2/"],
    )
    .await;
    let metrics = format!("Authorization: Bearer {METRICS_TOKEN}");
    run_schemathesis(
        &app,
        "metrics",
        &["-H", &metrics, "--include-path-regex", "^/metrics$"],
    )
    .await;
    run_schemathesis(
        &app,
        "ending the session",
        &[
            "-H",
            &cookie_header,
            "-H",
            "X-CSRF: 1",
            "--include-path-regex",
            ends_the_session,
        ],
    )
    .await;
    // The admin API, told alice's id (its DELETE ends her sessions, so it comes last).
    let admin = format!("Authorization: Bearer {ADMIN_TOKEN}");
    let user_id = tokens["user"]["id"].as_str().unwrap();
    run_schemathesis_with(
        &app,
        "admin",
        &format!("[parameters]\n\"path.id\" = \"{user_id}\"\n"),
        &["-H", &admin, "--include-path-regex", "^/admin/"],
    )
    .await;
}
