//! What the frontend and the APIs behind the broker see: CORS for allowed origins only, cross-site
//! refusals, the SameSite setting, `/auth/check` for forward auth, and the identity-forwarding
//! reverse proxy.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::body::Bytes;
use axum::extract::Request;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use serde_json::{Value, json};

use crate::helpers::*;

const APP: &str = "http://app.test:3000";

#[tokio::test]
async fn preflight_is_answered_for_allowed_origins_only() {
    let app = spawn(dev_provider()).await;
    let preflight = |origin: &'static str| {
        reqwest::Client::new()
            .request(reqwest::Method::OPTIONS, app.url("/auth/me"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization, ww-retry")
            .send()
    };
    let ok = preflight(APP).await.unwrap();
    assert!(ok.status().is_success());
    let h = ok.headers();
    assert_eq!(h["access-control-allow-origin"], APP);
    assert_eq!(h["access-control-allow-credentials"], "true");
    let allowed = h["access-control-allow-headers"].to_str().unwrap();
    assert!(
        allowed.contains("authorization") && allowed.contains("ww-retry"),
        "{allowed}"
    );

    let refused = preflight("http://evil.test").await.unwrap();
    assert!(
        refused
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn cors_answers_name_the_exact_allowed_origin_never_a_wildcard() {
    let app = spawn(dev_provider()).await;
    app.dev_login("alice").await;
    for (origin, allowed) in [
        (APP, true),
        ("http://evil.test", false),
        ("http://app.test:3001", false),
        ("https://app.test:3000", false),
    ] {
        let res = app
            .browser
            .get(app.url("/auth/me"))
            .header("origin", origin)
            .send()
            .await
            .unwrap();
        let acao = res
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap().to_string());
        assert_eq!(acao.is_some(), allowed, "{origin}");
        assert_ne!(acao.as_deref(), Some("*"));
    }
}

#[tokio::test]
async fn same_site_is_configurable_for_the_session_cookie_only() {
    let app = spawn(dev_provider().server_extra("same_site = \"strict\"\n")).await;
    let start = app.get("/auth/login?provider=dev").await;
    let login_cookie = set_cookies(start.headers()).join("\n");
    assert!(login_cookie.contains("SameSite=Lax"), "{login_cookie}");
    let res = app.dev_login("alice").await;
    let session = set_cookies(res.headers())
        .into_iter()
        .find(|c| c.starts_with("broker_session="))
        .unwrap();
    assert!(session.contains("SameSite=Strict"), "{session}");
}

#[tokio::test]
async fn forward_auth_check_answers_identity_headers_or_401() {
    let app = spawn(dev_provider()).await;
    let res = app.get("/auth/check").await;
    assert_eq!(res.status(), 401);
    assert!(json(res).await["login_url"].is_string());

    app.dev_login("alice").await;
    let me = json(app.me().await).await;
    let res = app.get("/auth/check").await;
    assert_eq!(res.status(), 200);
    let h = res.headers();
    assert_eq!(h["x-auth-user"], me["user"]["id"].as_str().unwrap());
    assert_eq!(h["x-auth-email"], "alice@example.test");
    assert_eq!(h["x-auth-email-verified"], "true");
    assert_eq!(h["x-auth-name"], "Alice Example");
    assert_eq!(h["x-auth-provider"], "dev");
    assert_eq!(h["x-auth-groups"], "admins,staff");
    assert_eq!(
        h["x-auth-session"],
        me["session"]["handle"].as_str().unwrap()
    );

    // A revoked session stops passing at once.
    app.browser
        .post(app.url("/auth/logout"))
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(app.get("/auth/check").await.status(), 401);
}

/// An upstream that answers with what it received, and counts its requests.
struct Upstream {
    base: String,
    hits: Arc<AtomicUsize>,
}

async fn upstream() -> Upstream {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let echo = move |req: Request| {
        let counter = counter.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let headers: serde_json::Map<String, Value> = parts
                .headers
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or("?"))))
                .collect();
            axum::Json(json!({
                "method": parts.method.as_str(),
                "path": parts.uri.path(),
                "query": parts.uri.query(),
                "headers": headers,
                "body_len": body.len(),
                "body_sum": body.iter().map(|b| u64::from(*b)).sum::<u64>(),
            }))
        }
    };
    let router = axum::Router::new()
        .route(
            "/up/teapot",
            get(|| async {
                let mut h = HeaderMap::new();
                h.insert("x-upstream", "yes".parse().unwrap());
                (axum::http::StatusCode::IM_A_TEAPOT, h, "short and stout").into_response()
            }),
        )
        .route(
            "/up/big",
            get(|| async { Bytes::from(vec![b'x'; 3 * 1024 * 1024]) }),
        )
        .route(
            "/up/cookies",
            get(|| async {
                let mut h = HeaderMap::new();
                h.append(
                    "set-cookie",
                    "broker_session=planted; Path=/".parse().unwrap(),
                );
                h.append("set-cookie", "theme=light; Path=/".parse().unwrap());
                (h, "ok").into_response()
            }),
        )
        .route("/up/{*rest}", any(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Upstream { base, hits }
}

async fn proxied_app(up: &Upstream) -> TestApp {
    spawn(Spawn::providers(format!(
        "[providers.dev]\nkind = \"dev\"\n[routes.\"/api/\"]\nupstream = \"{}/up/\"\njwt = true\n\
         [routes.\"/down/\"]\nupstream = \"http://127.0.0.1:{}/\"\n",
        up.base,
        crate::peers::free_port()
    )))
    .await
}

#[tokio::test]
async fn the_proxy_refuses_callers_without_a_session_before_the_upstream_sees_them() {
    let up = upstream().await;
    let app = proxied_app(&up).await;
    let res = app
        .browser
        .get(app.url("/api/items"))
        .header("x-auth-user", "usr_admin")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(json(res).await["login_url"].is_string());
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn the_proxy_strips_spoofed_identity_and_broker_cookies_and_adds_the_real_identity() {
    let up = upstream().await;
    let app = proxied_app(&up).await;
    let login = app.dev_login("alice").await;
    let session = cookie_value(login.headers(), "broker_session").unwrap();
    let me = json(app.me().await).await;
    // A Cookie header of the request's own replaces the client's cookie store.
    let res = reqwest::Client::new()
        .get(app.url("/api/items/7?sort=asc"))
        .header("x-auth-user", "usr_admin")
        .header("x-auth-groups", "admins")
        .header("x-forwarded-host", "evil.test")
        .header("cookie", format!("theme=dark; broker_session={session}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = json(res).await;
    assert_eq!(seen["path"], "/up/items/7");
    assert_eq!(seen["query"], "sort=asc");
    let h = &seen["headers"];
    assert_eq!(h["x-auth-user"], me["user"]["id"]);
    assert_eq!(h["x-auth-groups"], "admins,staff");
    assert_eq!(h["x-auth-email"], "alice@example.test");
    assert_ne!(h["x-forwarded-host"], "evil.test");
    let cookies = h["cookie"].as_str().unwrap_or_default();
    assert!(cookies.contains("theme=dark"), "{cookies}");
    assert!(
        !cookies.contains("broker_"),
        "a broker cookie reached the upstream: {cookies}"
    );

    // The upstream gets a broker JWT it can check against the JWKS, for its own audience...
    let auth = h["authorization"].as_str().unwrap();
    let token = auth.strip_prefix("Bearer ").unwrap();
    let mut for_upstream = app.state.config.tokens.clone();
    for_upstream.audience = format!("{}/up/", up.base);
    let claims = app
        .state
        .keys
        .verify(
            &app.state.store,
            &app.state.vault,
            &for_upstream,
            &app.base,
            token,
            app.state.clock.now().unix_timestamp(),
        )
        .await
        .unwrap();
    assert_eq!(claims.sub, me["user"]["id"].as_str().unwrap());
    // ...which the broker itself does not take: an upstream cannot act as the user here.
    let res = reqwest::Client::new()
        .get(app.url("/auth/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn the_proxy_streams_bodies_both_ways_and_passes_upstream_errors_through() {
    let up = upstream().await;
    let app = proxied_app(&up).await;
    app.dev_login("alice").await;

    let body: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let sum: u64 = body.iter().map(|b| u64::from(*b)).sum();
    let res = app
        .browser
        .post(app.url("/api/upload"))
        .header("x-csrf", "1")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = json(res).await;
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body_len"], body.len());
    assert_eq!(seen["body_sum"], sum);

    let res = app.get("/api/big").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), 3 * 1024 * 1024);

    let res = app.get("/api/teapot").await;
    assert_eq!(res.status(), 418);
    assert_eq!(res.headers()["x-upstream"], "yes");
    assert!(res.headers().get("content-security-policy").is_none());
    assert_eq!(res.text().await.unwrap(), "short and stout");

    let res = app.get("/down/anything").await;
    assert_eq!(res.status(), 502);
    assert_eq!(json(res).await["error"], "upstream_unavailable");
}

#[tokio::test]
async fn the_proxy_refuses_cross_site_writes_with_the_cookie_but_takes_bearer_tokens() {
    let up = upstream().await;
    let app = proxied_app(&up).await;
    app.dev_login("alice").await;
    let res = app
        .browser
        .post(app.url("/api/items"))
        .header("origin", "http://evil.test")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);

    // The caller's own bearer token is replaced by the broker's JWT for the upstream.
    let landing = location(
        app.dev_login_query(
            "bob",
            "provider=dev&mode=token&return_to=http%3A%2F%2Fapp.test%3A3000%2F",
        )
        .await
        .headers(),
    );
    let code = query_param(&landing, "code").unwrap();
    let t = json(
        reqwest::Client::new()
            .post(app.url("/auth/token"))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let access = t["access_token"].as_str().unwrap();
    let res = reqwest::Client::new()
        .post(app.url("/api/items"))
        .bearer_auth(access)
        .header("origin", "http://evil.test")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let seen = json(res).await;
    assert_eq!(seen["headers"]["x-auth-email"], "bob@example.test");
    assert_ne!(seen["headers"]["authorization"], format!("Bearer {access}"));
}

#[tokio::test]
async fn the_example_page_is_served_with_its_own_policy_in_development() {
    let app = spawn(dev_provider()).await;
    let res = app.get("/example/").await;
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    assert!(res.text().await.unwrap().contains("app.js"));
    assert_eq!(app.get("/example/app.js").await.status(), 200);

    let off = spawn(dev_provider().server_extra("example_app = false\n")).await;
    assert_eq!(off.get("/example/").await.status(), 404);
}

#[tokio::test]
async fn the_proxy_refuses_paths_that_climb_out_and_cookies_that_plant_a_broker_session() {
    let up = upstream().await;
    let app = proxied_app(&up).await;
    let login = app.dev_login("alice").await;
    let cookie = format!(
        "broker_session={}",
        cookie_value(login.headers(), "broker_session").unwrap()
    );
    // Sent raw: HTTP clients resolve dot segments before sending; attackers do not.
    assert_eq!(raw_get(&app.base, "/api/items", &cookie).await, 200);
    for path in [
        "/api/%2e%2e/secret",
        "/api/a/%2E./secret",
        "/api/%252e%252e/secret",
        "/api/../secret",
    ] {
        assert_eq!(raw_get(&app.base, path, &cookie).await, 400, "{path}");
    }
    assert_eq!(
        up.hits.load(Ordering::SeqCst),
        1,
        "only the plain path went through"
    );

    let res = app.get("/api/cookies").await;
    assert_eq!(res.status(), 200);
    let cookies = set_cookies(res.headers());
    assert!(
        cookies.iter().any(|c| c.starts_with("theme=")),
        "{cookies:?}"
    );
    assert!(
        !cookies
            .iter()
            .any(|c| c.starts_with("broker_session=planted")),
        "{cookies:?}"
    );
    assert_eq!(app.me().await.status(), 200);
}

/// `GET path` over a plain TCP connection, exactly as written; returns the status code.
async fn raw_get(base: &str, path: &str, cookie: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let head = String::from_utf8_lossy(&answer);
    head.split_whitespace().nth(1).unwrap().parse().unwrap()
}
