//! The proxy against an upstream that reads requests the way CGI and WSGI servers do (Python's
//! `wsgiref`): header names with `_` for `-`, hostile paths, and group names holding a comma.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use crate::helpers::*;

/// `tests/upstreams/wsgi_echo.py`, running until this value is dropped.
pub struct WsgiUpstream {
    pub base: String,
    _process: tokio::process::Child,
}

pub async fn wsgi_upstream() -> WsgiUpstream {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/upstreams/wsgi_echo.py");
    let mut process = tokio::process::Command::new("python3")
        .arg(script)
        // It stops when this pipe closes, so it cannot outlive the test.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs the WSGI test upstream");
    let stdout = process.stdout.take().unwrap();
    let mut port = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        BufReader::new(stdout).read_line(&mut port),
    )
    .await
    .expect("the WSGI upstream printed its port")
    .unwrap();
    WsgiUpstream {
        base: format!("http://127.0.0.1:{}", port.trim()),
        _process: process,
    }
}

/// `[routes."/api/"]` sends identity headers, `[routes."/plain/"]` does not; both to `up`.
async fn broker_before(up: &WsgiUpstream, users: &str) -> TestApp {
    spawn(Spawn::providers(format!(
        "[providers.dev]\nkind = \"dev\"\n{users}\
         [routes.\"/api/\"]\nupstream = \"{0}/\"\n\
         [routes.\"/plain/\"]\nupstream = \"{0}/\"\nidentity_headers = false\n",
        up.base
    )))
    .await
}

/// Signs `user` in on a browser of its own.
async fn signed_in(app: &TestApp, user: &str) -> reqwest::Client {
    let client = browser();
    let res = client
        .get(app.url("/auth/login?provider=dev"))
        .send()
        .await
        .unwrap();
    let authorize = location(res.headers());
    let done = dev_pick_user(&client, &authorize, user).await;
    assert_eq!(done.status(), 303);
    client
}

#[tokio::test]
async fn a_folding_upstream_never_sees_identity_headers_spelled_with_underscores() {
    let up = wsgi_upstream().await;
    let app = broker_before(&up, "").await;
    let alice = signed_in(&app, "alice").await;
    let me = json(app.me_with(&alice).await).await;
    let user_id = me["user"]["id"].as_str().unwrap();

    let spoofed = |path: &str| {
        alice
            .get(app.url(path))
            .header("X_Auth_User", "admin")
            .header("X_Auth_Groups", "root")
            .header("X-Auth_Email", "admin@evil.test")
            .header("X_Forwarded_Host", "evil.test")
            .header("X_Forwarded_For", "10.0.0.1")
            .header("X_Real_IP", "10.0.0.1")
            .header("True_Client_IP", "10.0.0.1")
            .header("X_Original_URL", "/admin")
            .header("X_Custom", "kept")
            .send()
    };

    let seen: Value = spoofed("/api/whoami").await.unwrap().json().await.unwrap();
    // The broker's value alone: a smuggled one would be joined to it ("usr_…,admin").
    assert_eq!(seen["HTTP_X_AUTH_USER"], user_id, "{seen}");
    assert_eq!(seen["HTTP_X_AUTH_GROUPS"], "admins,staff");
    assert_eq!(seen["HTTP_X_AUTH_EMAIL"], "alice@example.test");
    assert_eq!(
        seen["HTTP_X_FORWARDED_HOST"],
        app.base.trim_start_matches("http://")
    );
    for forged in [
        "HTTP_X_FORWARDED_FOR",
        "HTTP_X_REAL_IP",
        "HTTP_TRUE_CLIENT_IP",
        "HTTP_X_ORIGINAL_URL",
    ] {
        assert!(seen.get(forged).is_none(), "{forged}: {seen}");
    }
    assert_eq!(seen["HTTP_X_CUSTOM"], "kept");
    assert_eq!(seen["PATH_INFO"], "/whoami");

    // Without identity headers the caller's value would be the only one the upstream sees.
    let seen: Value = spoofed("/plain/whoami")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for forged in [
        "HTTP_X_AUTH_USER",
        "HTTP_X_AUTH_GROUPS",
        "HTTP_X_AUTH_EMAIL",
    ] {
        assert!(seen.get(forged).is_none(), "{forged}: {seen}");
    }
}

#[tokio::test]
async fn a_group_named_with_a_comma_is_told_apart_from_two_groups() {
    let up = wsgi_upstream().await;
    let users = "users = [\
        { sub = \"ada\", email = \"ada@example.test\", name = \"Ada\", groups = [\"a,b\"] },\
        { sub = \"ben\", email = \"ben@example.test\", name = \"Ben\", groups = [\"a\", \"b\"] },\
        { sub = \"cy\", email = \"cy@example.test\", name = \"Cy\", groups = [\"Domain Admins\", \"é\"] }]\n";
    let app = broker_before(&up, users).await;
    for (user, header) in [
        ("ada", "a%2Cb"),
        ("ben", "a,b"),
        ("cy", "Domain%20Admins,%C3%A9"),
    ] {
        let client = signed_in(&app, user).await;
        let check = client.get(app.url("/auth/check")).send().await.unwrap();
        assert_eq!(check.status(), 200);
        assert_eq!(check.headers()["x-auth-groups"], header, "{user}");
        let seen: Value = client
            .get(app.url("/api/groups"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(seen["HTTP_X_AUTH_GROUPS"], header, "{user}");
    }
}

/// `GET path` over a plain TCP connection, exactly as written; the status code and the body.
async fn raw_get(base: &str, path: &str, cookie: &str) -> (u16, String) {
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn hostile_paths_are_refused_before_the_upstream_sees_them() {
    let up = wsgi_upstream().await;
    let app = broker_before(&up, "").await;
    let login = app.dev_login("alice").await;
    let cookie = format!(
        "broker_session={}",
        cookie_value(login.headers(), "broker_session").unwrap()
    );
    assert_eq!(raw_get(&app.base, "/api/items/7", &cookie).await.0, 200);
    assert_eq!(
        raw_get(&app.base, "/api/item;v=2/%20x", &cookie).await.0,
        200
    );
    for path in [
        "/api/..;/admin",
        "/api/%2e%2e;/admin",
        "/api/..%3b/admin",
        "/api/.;/admin",
        "/api/%252e%252e/admin",
        "/api/%c0%ae%c0%ae/admin",
        "/api/%e0%80%ae/admin",
        "/api/a%00.jpg",
        "/api/a%0d%0aX-Injected:%201",
        "/api/a%ff",
        "/api//admin",
        "/api/a//b",
        "/api/%u002e%u002e/admin",
        "/api/.../admin",
        "/api/a%2fb",
        "/api/a%5cb",
    ] {
        // Refused by the broker's own check, not by the HTTP parser.
        let (status, body) = raw_get(&app.base, path, &cookie).await;
        assert_eq!(status, 400, "{path}");
        assert!(body.contains("invalid_path"), "{path}: {body}");
    }
    // The two plain requests went through; nothing else reached the upstream.
    let seen: Value = app
        .browser
        .get(app.url("/api/last"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["PATH_INFO"], "/last");
    assert_eq!(seen["HITS"], 3, "a refused path reached the upstream");
}
