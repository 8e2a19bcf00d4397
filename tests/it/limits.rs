//! What callers without a session can make the broker write is bounded: `[limits]` rates per client
//! address (and per account on the Firebase password form), failures counted per address and
//! window in the audit log instead of a row each, and a cap on each browser's logins in flight.

use std::time::Duration;

use oidc_broker::clock::Clock;
use reqwest::header::{CONTENT_TYPE, RETRY_AFTER};
use serde_json::{Value, json};

use crate::fake_firebase::FakeFirebase;
use crate::helpers::*;

const TOKEN: &str = "admin-token-for-tests-0123456789abcdef-0123456789";

/// A client without cookies that does not follow redirects.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn dev_with(extra: &str) -> Spawn {
    Spawn::providers(format!(
        "[providers.dev]\nkind = \"dev\"\n[admin]\ntoken = \"{TOKEN}\"\n{extra}"
    ))
}

async fn audit(app: &TestApp) -> Vec<Value> {
    let res = client()
        .get(app.url("/admin/audit?limit=1000"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    json(res).await["events"].as_array().unwrap().clone()
}

fn of_event<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// Moves the broker's clock to just after the start of an audit window, so that what a test
/// does next falls in one window whatever the time of day.
fn to_window_start(app: &TestApp) {
    let now = app.clock.now().unix_timestamp();
    let window = oidc_broker::audit::FAILURE_WINDOW_SECS;
    let into = now.rem_euclid(window);
    app.clock.advance(Duration::from_secs(
        u64::try_from(window - into + 1).unwrap(),
    ));
}

/// Asserts a 429 with a whole-seconds `Retry-After` of at most `max` and the JSON error body.
async fn assert_limited(res: reqwest::Response, max: u64, what: &str) {
    assert_eq!(res.status(), 429, "{what}");
    let retry: u64 = res.headers()[RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=max).contains(&retry), "{what}: Retry-After {retry}");
    assert!(
        res.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/json"),
        "{what}"
    );
    let body = json(res).await;
    assert_eq!(body["error"], "rate_limited", "{what}: {body}");
    assert!(
        body["message"].as_str().unwrap().contains("Try again"),
        "{body}"
    );
    assert!(
        body["correlation_id"]
            .as_str()
            .is_some_and(|c| !c.is_empty()),
        "{body}"
    );
}

/// A request that can be made again.
type Request<'a> = Box<dyn Fn() -> reqwest::RequestBuilder + 'a>;

#[tokio::test]
async fn every_limited_group_answers_429_with_retry_after_once_its_burst_is_spent() {
    let app = spawn(dev_with(
        "[limits]\nlogin = \"2/min\"\ncallback = \"2/min\"\ntoken = \"2/min\"\nfirebase = \"2/min\"\n\
         provider_logout = \"2/min\"\nadmin = \"2/min\"\n",
    ))
    .await;
    let c = client();
    let get = |path: &str| c.get(app.url(path));
    let post = |path: &str| c.post(app.url(path));
    let groups: Vec<(&str, Request<'_>)> = vec![
        ("login", Box::new(|| get("/auth/login?provider=dev"))),
        (
            "callback",
            Box::new(|| get("/auth/callback/dev?state=bogus&code=x")),
        ),
        (
            "token",
            Box::new(|| post("/auth/token").json(&json!({"code": "x"}))),
        ),
        (
            "firebase",
            Box::new(|| post("/auth/firebase/dev/session").json(&json!({"id_token": "x"}))),
        ),
        (
            "provider_logout",
            Box::new(|| post("/auth/backchannel-logout/dev").form(&[("logout_token", "x")])),
        ),
        (
            "admin",
            Box::new(|| get("/admin/audit").bearer_auth("wrong")),
        ),
    ];
    for (group, request) in &groups {
        for i in 0..2 {
            let res = request().send().await.unwrap();
            assert_ne!(res.status(), 429, "{group} request {i} is within the burst");
        }
        // 2 a minute: the next one in 30 s.
        assert_limited(request().send().await.unwrap(), 30, group).await;
    }
    // Token and refresh share their group's allowance.
    let refresh = post("/auth/token/refresh").json(&json!({"refresh_token": "rt_x"}));
    assert_limited(refresh.send().await.unwrap(), 30, "refresh").await;
    // A navigation gets the error page, with the same status and Retry-After.
    let page = get("/auth/login?provider=dev")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 429);
    assert!(page.headers().contains_key(RETRY_AFTER));
    assert!(page.text().await.unwrap().contains("Too many attempts"));
    // The allowance comes back at the rate.
    app.clock.advance(Duration::from_secs(30));
    assert_eq!(
        get("/auth/login?provider=dev")
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    assert_eq!(
        get("/auth/login?provider=dev")
            .send()
            .await
            .unwrap()
            .status(),
        429
    );
}

#[tokio::test]
async fn each_client_address_has_its_own_allowance_and_forged_forwarding_does_not_escape_it() {
    let trusted = spawn(
        dev_with("[limits]\nlogin = \"2/min\"\n")
            .server_extra("trusted_proxies = [\"127.0.0.1/32\"]"),
    )
    .await;
    let login = |app: &TestApp, xff: Option<&str>| {
        let mut r = client().get(app.url("/auth/login?provider=dev"));
        if let Some(xff) = xff {
            r = r.header("x-forwarded-for", xff);
        }
        r.send()
    };
    for _ in 0..2 {
        assert_eq!(
            login(&trusted, Some("192.0.2.1")).await.unwrap().status(),
            303
        );
    }
    assert_limited(
        login(&trusted, Some("192.0.2.1")).await.unwrap(),
        30,
        "192.0.2.1",
    )
    .await;
    assert_eq!(
        login(&trusted, Some("192.0.2.2")).await.unwrap().status(),
        303
    );
    assert_eq!(
        login(&trusted, None).await.unwrap().status(),
        303,
        "the proxy itself"
    );

    // From a peer that is not a trusted proxy, X-Forwarded-For is not believed: changing it does
    // not make a new client.
    let untrusted = spawn(dev_with("[limits]\nlogin = \"2/min\"\n")).await;
    for (i, xff) in ["192.0.2.1", "192.0.2.2"].iter().enumerate() {
        assert_eq!(
            login(&untrusted, Some(xff)).await.unwrap().status(),
            303,
            "{i}"
        );
    }
    assert_limited(
        login(&untrusted, Some("192.0.2.3")).await.unwrap(),
        30,
        "spoofed",
    )
    .await;
}

#[tokio::test]
async fn the_firebase_password_form_is_limited_per_account_from_any_address() {
    let fake = FakeFirebase::start().await;
    let app = spawn(
        Spawn::providers(format!(
            "{}[admin]\ntoken = \"{TOKEN}\"\n[limits]\nfirebase_account = \"2/min\"\n",
            fake.provider_toml("fb")
        ))
        .server_extra("trusted_proxies = [\"127.0.0.1/32\"]"),
    )
    .await;
    let attempt = |email: &str, from: &str| {
        client()
            .post(app.url("/auth/firebase/fb/password"))
            .header("origin", app.base.clone())
            .header("x-forwarded-for", from)
            .form(&[("email", email), ("password", "wrong"), ("return_to", "/")])
            .send()
    };
    assert_eq!(
        attempt("ada@example.test", "192.0.2.1")
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        attempt("ada@example.test", "192.0.2.2")
            .await
            .unwrap()
            .status(),
        401
    );
    // The same account, written otherwise, from a third address.
    assert_limited(
        attempt(" ADA@Example.TEST ", "192.0.2.3").await.unwrap(),
        30,
        "account",
    )
    .await;
    // Another account from that address is not limited.
    assert_eq!(
        attempt("bob@example.test", "192.0.2.3")
            .await
            .unwrap()
            .status(),
        401
    );
    // The refused attempt was not audited (nor sent to Firebase).
    let failed = of_event(&audit(&app).await, "login.failed")
        .iter()
        .map(|e| e["count"].as_i64().unwrap())
        .sum::<i64>();
    assert_eq!(failed, 3);
}

#[tokio::test]
async fn the_session_check_is_never_limited() {
    let app = spawn(dev_with(
        "[limits]\nlogin = \"1/min\"\ncallback = \"1/min\"\ntoken = \"1/min\"\nfirebase = \"1/min\"\n\
         provider_logout = \"1/min\"\nadmin = \"1/min\"\n",
    ))
    .await;
    assert_eq!(app.dev_login("alice").await.status(), 303);
    for _ in 0..300 {
        assert_eq!(app.me().await.status(), 200);
    }
    for _ in 0..100 {
        let check = app
            .browser
            .get(app.url("/auth/check"))
            .send()
            .await
            .unwrap();
        assert_eq!(check.status(), 200);
        assert_eq!(
            app.me_with(&client()).await.status(),
            401,
            "signed out, not limited"
        );
    }
}

#[tokio::test]
async fn failed_callbacks_from_one_client_are_one_audit_row_with_their_count() {
    let app = spawn(dev_with("")).await;
    to_window_start(&app);
    let c = client();
    for i in 0..25 {
        if i == 12 {
            app.clock.advance(Duration::from_secs(5));
        }
        let res = c
            .get(app.url(&format!("/auth/callback/dev?state=bogus-state-{i}&code=x")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400);
    }
    // Another reason is another row.
    let res = c
        .get(app.url("/auth/callback/nope?state=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let events = audit(&app).await;
    let failed = of_event(&events, "login.failed");
    assert_eq!(failed.len(), 2, "{events:#?}");
    let bogus = failed
        .iter()
        .find(|e| e["detail"]["reason"] == "invalid_state")
        .unwrap();
    assert_eq!(bogus["count"], 25);
    assert_eq!(bogus["ip"], "127.0.0.1");
    assert_eq!(bogus["provider"], "dev");
    assert!(
        bogus["last_at"].as_str().unwrap() > bogus["at"].as_str().unwrap(),
        "{bogus}"
    );
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains("bogus-state")
    );

    // The next window starts a new row.
    app.clock.advance(Duration::from_secs(
        oidc_broker::audit::FAILURE_WINDOW_SECS as u64,
    ));
    let res = c
        .get(app.url("/auth/callback/dev?state=bogus-state-x&code=x"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let events = audit(&app).await;
    let failed = of_event(&events, "login.failed");
    assert_eq!(failed.len(), 3);
    assert_eq!(failed[0]["count"], 1, "newest first: {failed:#?}");
}

#[tokio::test]
async fn failed_admin_authentication_is_audited_and_counted() {
    let app = spawn(dev_with("")).await;
    to_window_start(&app);
    for i in 0..5 {
        let res = client()
            .get(app.url("/admin/audit"))
            .bearer_auth(format!("not-the-token-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    for _ in 0..3 {
        let res = client()
            .delete(app.url("/admin/sessions/some-handle"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let events = audit(&app).await;
    let failed = of_event(&events, "admin.auth_failed");
    assert_eq!(failed.len(), 2, "{events:#?}");
    let count = |reason: &str| {
        failed
            .iter()
            .find(|e| e["detail"]["reason"] == reason)
            .map(|e| e["count"].as_i64().unwrap())
    };
    assert_eq!(count("wrong_token"), Some(5));
    assert_eq!(count("missing_token"), Some(3));
    assert_eq!(failed[0]["ip"], "127.0.0.1");
    let dump = serde_json::to_string(&events).unwrap();
    assert!(!dump.contains("not-the-token") && !dump.contains(TOKEN));
    // Authorised calls are not failures.
    assert_eq!(of_event(&audit(&app).await, "admin.auth_failed").len(), 2);
}

#[tokio::test]
async fn failures_counted_by_two_instances_sharing_the_store_add_up_in_one_row() {
    let one = spawn(dev_with("")).await;
    let two = spawn(dev_with("").reuse_db(&one)).await;
    to_window_start(&one);
    to_window_start(&two);
    for app in [&one, &two, &one, &two, &one, &two] {
        let res = client()
            .post(app.url("/auth/token/refresh"))
            .json(&json!({"refresh_token": "rt_not_a_real_one"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
    let failed = of_event(&audit(&two).await, "refresh.failed")
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert_eq!(failed[0]["count"], 6);
    assert_eq!(failed[0]["detail"]["reason"], "unknown_or_expired");
}

async fn logins_in_flight(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM login_transactions")
        .fetch_one(app.state.store.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_browser_keeps_at_most_its_cap_of_logins_in_flight_and_the_oldest_goes() {
    let app = spawn(dev_with("[limits]\nlogins_per_browser = 3\n")).await;
    let mut started = Vec::new();
    for i in 0..5 {
        started.push(app.start_login("provider=dev").await);
        assert_eq!(logins_in_flight(&app).await, (i + 1).min(3));
        app.clock.advance(Duration::from_secs(1));
    }
    // Another browser's logins are its own.
    let other = browser();
    let res = other
        .get(app.url("/auth/login?provider=dev"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(logins_in_flight(&app).await, 4);
    // The oldest of the first browser's was ended; its newest still signs in.
    let res = dev_pick_user(&app.browser, &started[0], "alice").await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_state");
    let res = dev_pick_user(&app.browser, &started[4], "alice").await;
    assert_eq!(res.status(), 303);
    assert_eq!(app.me().await.status(), 200);
}

#[tokio::test]
async fn logins_started_without_the_browser_cookie_are_bounded_by_the_rate() {
    let app = spawn(dev_with(
        "[limits]\nlogin = \"5/min\"\nlogins_per_browser = 3\n",
    ))
    .await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        // No cookie store: every start is a new browser.
        let res = client()
            .get(app.url("/auth/login?provider=dev"))
            .send()
            .await
            .unwrap();
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [303, 303, 303, 303, 303, 429, 429, 429, 429, 429]);
    assert_eq!(logins_in_flight(&app).await, 5);
}

#[test]
fn check_config_names_each_bad_limit_with_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.toml");
    std::fs::write(
        &path,
        "[server]\nenvironment = \"development\"\n[providers.dev]\nkind = \"dev\"\n[limits]\nlogin = \"600/day\"\ncallback = \"fast\"\nmax_clients = 5\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_oidc-broker"))
        .args(["check-config", "--config"])
        .arg(&path)
        .env("BROKER_LIMITS__ADMIN", "0/min")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("4 problem(s)"), "{err}");
    for key in [
        "limits.login",
        "limits.callback",
        "limits.max_clients",
        "limits.admin",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(
        err.contains("\"600/min\""),
        "the fix shows the format:\n{err}"
    );
}
