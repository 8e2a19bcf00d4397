//! `provider_token` on a proxied route: the upstream gets the session's current provider access
//! token (the one the provider issued last, refreshed when due), in `Authorization: Bearer` or in a
//! header of its own; a route that did not ask never gets it, and no caller can make one up. The
//! upstream is Python's WSGI server, which joins two spellings of one header with a comma, so a
//! smuggled value would show.

use std::time::Duration;

use serde_json::{Value, json};

use crate::fake_op::{FakeOp, Flavor};
use crate::helpers::*;
use crate::kinds::auth0_toml;
use crate::proxy_edges::{WsgiUpstream, wsgi_upstream};

/// The fake's access tokens live 300 s; with a 60 s margin a refresh is due after 240 s.
const DUE: Duration = Duration::from_secs(250);

/// `/tok/`: the provider token as `Authorization: Bearer`; `/side/`: the broker JWT there and the
/// provider token in `X-Provider-Token`; `/plain/` and `/bare/`: no provider token.
fn routes(up: &WsgiUpstream) -> String {
    format!(
        "[routes.\"/tok/\"]\nupstream = \"{0}/\"\nprovider_token = \"authorization\"\n\
         [routes.\"/side/\"]\nupstream = \"{0}/\"\njwt = true\nprovider_token = \"X-Provider-Token\"\n\
         [routes.\"/plain/\"]\nupstream = \"{0}/\"\njwt = true\n\
         [routes.\"/bare/\"]\nupstream = \"{0}/\"\nidentity_headers = false\n",
        up.base
    )
}

async fn broker(fake: &FakeOp, up: &WsgiUpstream) -> TestApp {
    spawn(
        Spawn::providers(format!("{}{}", auth0_toml(fake, "a0", ""), routes(up))).session(
            "idle_timeout = \"1h\"\nabsolute_lifetime = \"1d\"\nrefresh_margin = \"60s\"\n",
        ),
    )
    .await
}

/// What the upstream saw of `GET path`, sent with `headers`.
async fn seen(
    app: &TestApp,
    client: &reqwest::Client,
    path: &str,
    headers: &[(&str, &str)],
) -> Value {
    let mut req = client.get(app.url(path));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200, "{path}");
    json(res).await
}

/// Every value the upstream saw, to look for a token anywhere.
fn values(seen: &Value) -> Vec<String> {
    seen.as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .collect()
}

#[tokio::test]
async fn the_upstream_gets_the_providers_current_token_also_after_a_refresh() {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let up = wsgi_upstream().await;
    let app = broker(&fake, &up).await;
    assert_eq!(fake_login(&app, "provider=a0").await.status(), 303);
    let first = fake.last_access_token();

    let tok = seen(&app, &app.browser, "/tok/a", &[]).await;
    assert_eq!(tok["HTTP_AUTHORIZATION"], format!("Bearer {first}"));
    assert!(tok.get("HTTP_X_PROVIDER_TOKEN").is_none(), "{tok}");
    assert!(tok["HTTP_X_AUTH_USER"].is_string(), "identity still sent");
    let side = seen(&app, &app.browser, "/side/a", &[]).await;
    assert_eq!(side["HTTP_X_PROVIDER_TOKEN"], first);
    let jwt = side["HTTP_AUTHORIZATION"].as_str().unwrap();
    assert!(
        jwt.starts_with("Bearer ey") && !jwt.contains(&first),
        "the broker JWT stays beside it: {jwt}"
    );
    assert_eq!(fake.refresh_calls(), 0);

    // Due: the proxied request refreshes first (as any session check would) and sends the new one.
    app.clock.advance(DUE);
    let tok = seen(&app, &app.browser, "/tok/b", &[]).await;
    assert_eq!(fake.refresh_calls(), 1);
    let second = fake.last_access_token();
    assert_ne!(second, first);
    assert_eq!(tok["HTTP_AUTHORIZATION"], format!("Bearer {second}"));
    let side = seen(&app, &app.browser, "/side/b", &[]).await;
    assert_eq!(side["HTTP_X_PROVIDER_TOKEN"], second);
    assert_eq!(fake.refresh_calls(), 1, "refreshed once, not per request");

    // And again, with the refresh token the provider rotated.
    app.clock.advance(DUE);
    let side = seen(&app, &app.browser, "/side/c", &[]).await;
    assert_eq!(fake.refresh_calls(), 2);
    assert_eq!(side["HTTP_X_PROVIDER_TOKEN"], fake.last_access_token());
    assert!(!fake.reuse_detected());
}

#[tokio::test]
async fn a_burst_of_proxied_requests_when_due_refreshes_once_and_all_carry_the_new_token() {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let up = wsgi_upstream().await;
    let app = broker(&fake, &up).await;
    assert_eq!(fake_login(&app, "provider=a0").await.status(), 303);
    app.clock.advance(DUE);
    let mut requests = Vec::new();
    for i in 0..12 {
        let req = app.browser.get(app.url(&format!("/side/{i}"))).send();
        requests.push(tokio::spawn(req));
    }
    let mut tokens = Vec::new();
    for r in requests {
        let res = r.await.unwrap().unwrap();
        assert_eq!(res.status(), 200);
        tokens.push(json(res).await["HTTP_X_PROVIDER_TOKEN"].clone());
    }
    assert_eq!(fake.refresh_calls(), 1, "single-flight");
    assert!(!fake.reuse_detected());
    let current = json!(fake.last_access_token());
    assert!(tokens.iter().all(|t| *t == current), "{tokens:?}");
}

#[tokio::test]
async fn a_bearer_caller_gets_the_provider_token_sent_in_place_of_its_own() {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let up = wsgi_upstream().await;
    let app = broker(&fake, &up).await;
    let back = fake_login(
        &app,
        "provider=a0&mode=token&return_to=http%3A%2F%2Fapp.test%3A3000%2F",
    )
    .await;
    assert_eq!(back.status(), 303);
    let code = query_param(&location(back.headers()), "code").unwrap();
    let tokens = json(
        reqwest::Client::new()
            .post(app.url("/auth/token"))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {access}");
    let client = reqwest::Client::new();

    let tok = seen(&app, &client, "/tok/a", &[("authorization", &bearer)]).await;
    assert_eq!(
        tok["HTTP_AUTHORIZATION"],
        format!("Bearer {}", fake.last_access_token())
    );
    app.clock.advance(DUE);
    let side = seen(&app, &client, "/side/a", &[("authorization", &bearer)]).await;
    assert_eq!(fake.refresh_calls(), 1);
    assert_eq!(side["HTTP_X_PROVIDER_TOKEN"], fake.last_access_token());
    let jwt = side["HTTP_AUTHORIZATION"].as_str().unwrap();
    assert_ne!(jwt, bearer, "the caller's own token is never passed on");
    for seen in [&tok, &side] {
        assert!(
            values(seen).iter().all(|v| !v.contains(&access)),
            "the caller's token reached the upstream: {seen}"
        );
    }
}

#[tokio::test]
async fn a_route_that_did_not_ask_never_gets_a_provider_token_nor_a_callers_made_up_one() {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let up = wsgi_upstream().await;
    let app = broker(&fake, &up).await;
    assert_eq!(fake_login(&app, "provider=a0").await.status(), 303);
    let forged = [
        ("X-Provider-Token", "forged-1"),
        ("X_Provider_Token", "forged-2"),
        ("x-PROVIDER_token", "forged-3"),
    ];
    for path in ["/plain/a", "/bare/a"] {
        let seen = seen(&app, &app.browser, path, &forged).await;
        assert!(
            seen.get("HTTP_X_PROVIDER_TOKEN").is_none(),
            "{path}: {seen}"
        );
        for v in values(&seen) {
            assert!(
                !v.contains("at-fake") && !v.contains("forged"),
                "{path}: {v} in {seen}"
            );
        }
    }
    // A route that asks gets the broker's value alone (the WSGI server would join a second one).
    let side = seen(&app, &app.browser, "/side/a", &forged).await;
    assert_eq!(side["HTTP_X_PROVIDER_TOKEN"], fake.last_access_token());
    let tok = seen(&app, &app.browser, "/tok/a", &forged).await;
    assert!(tok.get("HTTP_X_PROVIDER_TOKEN").is_none(), "{tok}");

    // Still none after a refresh.
    app.clock.advance(DUE);
    let plain = seen(&app, &app.browser, "/plain/b", &[]).await;
    assert_eq!(fake.refresh_calls(), 1);
    let current = fake.last_access_token();
    assert!(
        values(&plain).iter().all(|v| !v.contains(&current)),
        "{plain}"
    );
}

#[tokio::test]
async fn without_a_valid_provider_token_the_caller_is_told_to_sign_in_and_the_upstream_is_not_called()
 {
    // The dev provider issues no refresh token: its access token (an hour) just expires.
    let up = wsgi_upstream().await;
    let app = spawn(
        Spawn::providers(format!("[providers.dev]\nkind = \"dev\"\n{}", routes(&up)))
            .session("idle_timeout = \"2h\"\nabsolute_lifetime = \"1d\"\n"),
    )
    .await;
    app.dev_login("alice").await;
    let before = seen(&app, &app.browser, "/side/a", &[]).await;
    let token = before["HTTP_X_PROVIDER_TOKEN"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!token.is_empty());
    assert_eq!(before["HITS"], 1);

    app.clock.advance(Duration::from_secs(3601));
    assert_eq!(app.me().await.status(), 200, "the broker session lives on");
    for path in ["/side/b", "/tok/b"] {
        let res = app.get(path).await;
        assert_eq!(res.status(), 401, "{path}");
        let body = json(res).await;
        assert_eq!(body["error"], "provider_token_unavailable", "{body}");
        assert_eq!(body["login_url"], app.url("/auth/login"));
        assert!(!body.to_string().contains(&token), "{body}");
    }
    // Routes that did not ask go on working; nothing else reached the upstream.
    let plain = seen(&app, &app.browser, "/plain/c", &[]).await;
    assert_eq!(plain["HITS"], 2, "a refused request reached the upstream");
}
