//! `GET /auth/session`: the session's deadlines, read without counting as activity. Polling it lets
//! an idle session end; polling `/auth/me` keeps one alive. Time is the injected clock.

use std::time::Duration;

use oidc_broker::clock::Clock;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fake_op::{FakeOp, Flavor};
use crate::helpers::*;
use crate::kinds::auth0_toml;

const TEN_MINUTES: &str = "idle_timeout = \"10m\"\nabsolute_lifetime = \"1d\"\n";

/// Signs `user` in through the dev provider on a browser of its own.
async fn signed_in(app: &TestApp, user: &str) -> reqwest::Client {
    let client = browser();
    let res = client
        .get(app.url("/auth/login?provider=dev"))
        .send()
        .await
        .unwrap();
    let done = dev_pick_user(&client, &location(res.headers()), user).await;
    assert_eq!(done.status(), 303);
    client
}

async fn status_with(app: &TestApp, client: &reqwest::Client) -> reqwest::Response {
    client
        .get(app.url("/auth/session"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap()
}

async fn bearer_status(app: &TestApp, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/auth/session"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// A 200 answer's body, after checking it is never cached.
async fn live(res: reqwest::Response) -> Value {
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(res.headers()["content-type"], "application/json");
    json(res).await
}

async fn assert_ended(res: reqwest::Response, app: &TestApp) {
    assert_eq!(res.status(), 401);
    let body = json(res).await;
    assert_eq!(body["error"], "not_authenticated", "{body}");
    assert_eq!(body["login_url"], app.url("/auth/login"));
}

fn at(v: &Value) -> i64 {
    OffsetDateTime::parse(v.as_str().unwrap(), &Rfc3339)
        .unwrap()
        .unix_timestamp()
}

fn now(app: &TestApp) -> i64 {
    app.clock.now().unix_timestamp()
}

/// Real time moves on while a test runs (a slow store can take a second between a login and the
/// next call): `v` is `expected`, or up to `slack` seconds away in the direction time moves it.
fn near(v: i64, expected: i64, slack: i64) {
    let (lo, hi) = if slack < 0 {
        (expected + slack, expected)
    } else {
        (expected, expected + slack)
    };
    assert!((lo..=hi).contains(&v), "{v} is not within {lo}..={hi}");
}

/// Seconds left: `expected`, or up to two fewer.
fn left(v: &Value, expected: i64) {
    near(v.as_i64().unwrap(), expected, -2);
}

#[tokio::test]
async fn polling_the_status_lets_an_idle_session_end_while_polling_me_keeps_one_alive() {
    let app = spawn(dev_provider().session(TEN_MINUTES)).await;
    let watcher = signed_in(&app, "alice").await;
    let pinger = signed_in(&app, "alice").await;
    let first = live(status_with(&app, &watcher).await).await;
    let idle_end = at(&first["idle_expires_at"]);
    near(idle_end, now(&app) + 600, -2);
    left(&first["idle_expires_in"], 600);
    assert_eq!(first["idle_timeout"], 600);
    near(at(&first["expires_at"]), now(&app) + 86_400, -2);
    left(&first["expires_in"], 86_400);

    // Every two minutes, for fourteen: one session polls the status, the other /auth/me.
    for minute in (2..=14).step_by(2) {
        app.clock.advance(Duration::from_secs(120));
        assert_eq!(app.me_with(&pinger).await.status(), 200, "minute {minute}");
        let res = status_with(&app, &watcher).await;
        if minute < 10 {
            let seen = live(res).await;
            assert_eq!(at(&seen["idle_expires_at"]), idle_end, "minute {minute}");
            left(&seen["idle_expires_in"], 600 - minute * 60);
            left(&seen["expires_in"], 86_400 - minute * 60);
        } else {
            assert_ended(res, &app).await;
        }
    }
    assert_ended(app.me_with(&watcher).await, &app).await;
    let kept = json(app.me_with(&pinger).await).await;
    near(at(&kept["session"]["idle_expires_at"]), now(&app) + 600, -2);
    let kept = live(status_with(&app, &pinger).await).await;
    left(&kept["idle_expires_in"], 600);
}

#[tokio::test]
async fn the_deadline_moves_when_the_session_is_really_used() {
    let app = spawn(dev_provider().session(TEN_MINUTES)).await;
    app.dev_login("alice").await;
    let first = live(status_with(&app, &app.browser).await).await;
    app.clock.advance(Duration::from_secs(180));
    let polled = live(status_with(&app, &app.browser).await).await;
    assert_eq!(polled["idle_expires_at"], first["idle_expires_at"]);
    left(&polled["idle_expires_in"], 420);

    // A real call (past the touch interval of a minute) is activity: the idle deadline slides.
    assert_eq!(app.me().await.status(), 200);
    let used = live(status_with(&app, &app.browser).await).await;
    near(
        at(&used["idle_expires_at"]),
        at(&first["idle_expires_at"]) + 180,
        2,
    );
    left(&used["idle_expires_in"], 600);
    assert_eq!(
        used["expires_at"], first["expires_at"],
        "nothing extends it"
    );
    left(&used["expires_in"], 86_400 - 180);
    // /auth/me reports the same deadlines.
    let me = json(app.me().await).await;
    assert_eq!(me["session"]["idle_expires_at"], used["idle_expires_at"]);
    assert_eq!(me["session"]["expires_at"], used["expires_at"]);
}

#[tokio::test]
async fn the_status_near_the_absolute_end_counts_down_to_it() {
    let app =
        spawn(dev_provider().session("idle_timeout = \"10m\"\nabsolute_lifetime = \"15m\"\n"))
            .await;
    app.dev_login("alice").await;
    app.clock.advance(Duration::from_secs(540));
    assert_eq!(app.me().await.status(), 200);
    let seen = live(status_with(&app, &app.browser).await).await;
    // The idle deadline never passes the absolute one.
    assert_eq!(seen["idle_expires_at"], seen["expires_at"]);
    left(&seen["idle_expires_in"], 360);
    assert_eq!(seen["expires_in"], seen["idle_expires_in"]);
}

#[tokio::test]
async fn reading_the_status_does_not_refresh_provider_tokens() {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let app = spawn(
        Spawn::providers(auth0_toml(&fake, "a0", ""))
            .session("idle_timeout = \"1h\"\nabsolute_lifetime = \"1d\"\nrefresh_margin = \"60s\""),
    )
    .await;
    assert_eq!(fake_login(&app, "provider=a0").await.status(), 303);
    // The fake's access tokens live 300 s: a refresh is due after 240 s.
    app.clock.advance(Duration::from_secs(250));
    for _ in 0..3 {
        live(status_with(&app, &app.browser).await).await;
    }
    assert_eq!(
        fake.refresh_calls(),
        0,
        "the status refreshed a provider token"
    );
    assert_eq!(app.me().await.status(), 200);
    assert_eq!(fake.refresh_calls(), 1, "a real call does");
}

#[tokio::test]
async fn a_broker_access_token_reads_the_status_without_extending_the_session() {
    let app = spawn(dev_provider().session(TEN_MINUTES)).await;
    let tokens = crate::token_mode::tokens(&app).await;
    let access = tokens["access_token"].as_str().unwrap();
    let first = live(bearer_status(&app, access).await).await;
    left(&first["idle_expires_in"], 600);
    app.clock.advance(Duration::from_secs(120));
    let polled = live(bearer_status(&app, access).await).await;
    assert_eq!(polled["idle_expires_at"], first["idle_expires_at"]);
    left(&polled["idle_expires_in"], 480);

    let me = reqwest::Client::new()
        .get(app.url("/auth/me"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let used = live(bearer_status(&app, access).await).await;
    near(
        at(&used["idle_expires_at"]),
        at(&first["idle_expires_at"]) + 120,
        2,
    );

    // A token that does not verify is refused as everywhere else.
    let forged = format!("{access}x");
    let res = bearer_status(&app, &forged).await;
    assert_eq!(res.status(), 401);
    assert_eq!(json(res).await["error"], "invalid_token");

    // After logout the same (unexpired) token reads nothing.
    let out = reqwest::Client::new()
        .post(app.url("/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_ended(bearer_status(&app, access).await, &app).await;
}

#[tokio::test]
async fn an_ended_or_missing_session_is_a_401_like_me() {
    let app = spawn(dev_provider().session(TEN_MINUTES)).await;
    assert_ended(status_with(&app, &app.browser).await, &app).await;
    app.dev_login("alice").await;
    live(status_with(&app, &app.browser).await).await;
    let out = app
        .browser
        .post(app.url("/auth/logout"))
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 200);
    assert_ended(status_with(&app, &app.browser).await, &app).await;

    // A session that went idle is as ended.
    let client = signed_in(&app, "alice").await;
    app.clock.advance(Duration::from_secs(590));
    live(status_with(&app, &client).await).await;
    app.clock.advance(Duration::from_secs(10));
    assert_ended(status_with(&app, &client).await, &app).await;
    assert_ended(app.me_with(&client).await, &app).await;
}
