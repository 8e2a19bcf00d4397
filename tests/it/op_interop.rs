//! Real client libraries against the broker as an OpenID Provider, signing in through the dev
//! provider's "pick a test user" page:
//! - panva's openid-client (`tests/peers/op-openid-client.mjs`): discovery, code + PKCE, the ID
//!   token validated by the library, userinfo, refresh with rotation, RFC 7009 revocation and
//!   RP-initiated logout;
//! - oidc-client 1.11.5, the library WeWeb's OpenID plugin bundles, set up as the plugin sets it
//!   up, in a real headless Chromium (`tests/peers/op-browser.mjs` + `op-browser.html`): sign-in
//!   with userinfo, renewal with the refresh token, the user kept in one cookie, sign-out; and,
//!   for an app without offline_access, renewal in a hidden iframe with prompt=none.
//!
//! A missing runtime, package or browser is a failure that says how to install it, never a skip.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::helpers::*;
use crate::peers::{free_port, peers_dir};

/// Each script takes a few seconds; this bounds a hung browser or a redirect loop.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(120);

const SCOPES: &str = r#"["openid", "profile", "email", "offline_access"]"#;

/// A public client (PKCE, no secret) registered for `redirect_uri` and `post_logout_redirect_uri`.
fn public_client(client_id: &str, redirect_uri: &str, post_logout_redirect_uri: &str) -> String {
    format!(
        "[clients.{client_id}]\n\
         redirect_uris = [\"{redirect_uri}\"]\n\
         post_logout_redirect_uris = [\"{post_logout_redirect_uri}\"]\n\
         scopes = {SCOPES}\n"
    )
}

/// The broker with the dev provider and the given `[clients.*]` tables.
async fn broker_with_clients(clients: &[String]) -> TestApp {
    spawn(Spawn::providers(format!(
        "[providers.dev]\nkind = \"dev\"\n\n{}",
        clients.join("\n")
    )))
    .await
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "Chromium is not installed at {}: run `apt-get install chromium` (tests/run.sh does it), \
         or set CHROMIUM to its path",
        path.display()
    );
    path
}

fn require_package(name: &str) {
    assert!(
        peers_dir().join("node_modules").join(name).exists(),
        "{name} is not installed: run `npm ci --prefix tests/peers --ignore-scripts` (tests/run.sh does it)"
    );
}

/// Runs a peer script to its end and returns its JSON result line; fails with its output when it
/// fails, hangs or prints no result.
async fn run_script(script: &str, env: &[(&str, String)]) -> Value {
    let peers = peers_dir();
    let mut cmd = Command::new("node");
    cmd.arg(peers.join(script))
        .current_dir(&peers)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run node ({e}): install Node.js 20+ to run the OpenID Provider interop tests"
        )
    });
    let output = tokio::time::timeout(SCRIPT_TIMEOUT, child.wait_with_output())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "tests/peers/{script} did not finish within {} s",
                SCRIPT_TIMEOUT.as_secs()
            )
        })
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    eprintln!("{stderr}");
    let result: Option<Value> = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .and_then(|l| serde_json::from_str(l).ok());
    assert!(
        output.status.success() && result.as_ref().is_some_and(|r| r["ok"] == true),
        "tests/peers/{script} failed ({}):\n{stderr}\n{stdout}",
        output.status
    );
    let result = result.unwrap();
    println!("{result}");
    result
}

fn steps(result: &Value) -> Vec<&str> {
    result["steps"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn openid_client_signs_in_refreshes_revokes_and_logs_out() {
    require_package("openid-client");
    let rp = format!("http://127.0.0.1:{}", free_port());
    let redirect_uri = format!("{rp}/callback");
    let post_logout = format!("{rp}/signed-out");
    let app = broker_with_clients(&[public_client("node-rp", &redirect_uri, &post_logout)]).await;

    let result = run_script(
        "op-openid-client.mjs",
        &[
            ("BROKER_URL", app.base.clone()),
            ("CLIENT_ID", "node-rp".into()),
            ("REDIRECT_URI", redirect_uri),
            ("POST_LOGOUT_REDIRECT_URI", post_logout),
        ],
    )
    .await;
    let done = steps(&result);
    for step in [
        "discovery",
        "cors",
        "authorize",
        "code exchange",
        "userinfo",
        "refresh",
        "concurrent refresh",
        "revocation",
        "code reuse",
        "logout",
        "after logout",
    ] {
        assert!(
            done.contains(&step),
            "openid-client did not report {step}: {result}"
        );
    }
    assert!(
        result["sub"].as_str().is_some_and(|s| !s.is_empty()),
        "{result}"
    );
}

#[tokio::test]
async fn oidc_client_1_11_5_in_chromium_signs_in_renews_and_signs_out() {
    let chromium = chromium();
    require_package("playwright-core");
    require_package("oidc-client");
    // The app's page is served on this port by the script; the broker must know it first.
    let origin = format!("http://127.0.0.1:{}", free_port());
    let redirect_uri = format!("{origin}/callback");
    let post_logout = format!("{origin}/signed-out");
    // The second app asks for no offline_access (the plugin's default scope has none), so it
    // renews in a hidden iframe.
    let iframe_redirect_uri = format!("{origin}/silent/callback");
    let iframe_post_logout = format!("{origin}/silent/signed-out");
    let app = broker_with_clients(&[
        public_client("weweb", &redirect_uri, &post_logout),
        public_client("weweb-iframe", &iframe_redirect_uri, &iframe_post_logout),
    ])
    .await;
    let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("op-browser-screenshots");

    let result = run_script(
        "op-browser.mjs",
        &[
            ("BROKER_URL", app.base.clone()),
            ("CLIENT_ID", "weweb".into()),
            ("REDIRECT_URI", redirect_uri),
            ("POST_LOGOUT_REDIRECT_URI", post_logout),
            ("IFRAME_CLIENT_ID", "weweb-iframe".into()),
            ("IFRAME_REDIRECT_URI", iframe_redirect_uri),
            ("IFRAME_POST_LOGOUT_REDIRECT_URI", iframe_post_logout),
            ("CHROMIUM", chromium.display().to_string()),
            ("SCREENSHOT_DIR", screenshots.display().to_string()),
        ],
    )
    .await;
    let done = steps(&result);
    for step in [
        "open",
        "sign in",
        "callback",
        "stored user",
        "silent renew",
        "sign out",
        "after sign out",
        "iframe: open",
        "iframe: sign in",
        "iframe: callback",
        "iframe: silent renew",
        "iframe: sign out",
    ] {
        assert!(
            done.contains(&step),
            "the oidc-client page did not report {step}: {result}"
        );
    }
    assert_eq!(
        result["refresh"]["grant_type"], "refresh_token",
        "signinSilent() must renew with the refresh token: {result}"
    );
    let size = result["stored_user_chars_after_renew"].as_u64().unwrap();
    assert!(
        size < 3000,
        "the stored user grew to {size} characters: {result}"
    );
}
