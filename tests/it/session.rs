//! The local session: cookie attributes, a new id at every login, idle and absolute expiry
//! enforced server side, survival across a restart.

use std::time::Duration;

use reqwest::header::COOKIE;

use crate::helpers::*;

#[tokio::test]
async fn session_cookie_is_httponly_lax_and_opaque() {
    let app = spawn(dev_provider()).await;
    let res = app.dev_login("alice").await;
    let cookie = set_cookies(res.headers())
        .into_iter()
        .find(|c| c.starts_with("broker_session="))
        .expect("session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");
    assert!(!cookie.contains("Domain="), "{cookie}");
    let value = cookie_value(res.headers(), "broker_session").unwrap();
    assert!(value.len() >= 22, "at least 128 bits: {value}");
    let me = json(app.me().await).await;
    let handle = me["session"]["handle"].as_str().unwrap();
    assert!(!handle.contains(&value) && !value.contains(handle.trim_start_matches("ses_")));
    assert!(
        !me.to_string().contains(&value),
        "the cookie value never appears in a response body"
    );
}

#[tokio::test]
async fn https_deployments_use_host_prefixed_secure_cookies() {
    let policy = oidc_broker::session::CookiePolicy::for_server(
        &oidc_broker::config::from_toml_str(
            "[server]\nenvironment = \"development\"\npublic_url = \"https://auth.example.com\"\n[providers.corp]\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
            Vec::new(),
        )
        .unwrap()
        .server,
    );
    assert_eq!(policy.session_name, "__Host-broker_session");
    assert!(policy.secure);
    let c = policy.login_cookie("v", Duration::from_secs(60));
    assert!(
        c.starts_with("__Host-broker_login=v;")
            && c.contains("; Secure")
            && c.contains("Path=/")
            && !c.contains("Domain"),
        "{c}"
    );
}

#[tokio::test]
async fn every_login_gets_a_new_session_id() {
    let app = spawn(dev_provider()).await;
    let first = cookie_value(app.dev_login("alice").await.headers(), "broker_session").unwrap();
    let second = cookie_value(app.dev_login("alice").await.headers(), "broker_session").unwrap();
    assert_ne!(first, second);
    // The old id is dead: presenting it (fixation, or a stolen pre-login cookie) gets nothing.
    let res = browser()
        .get(app.url("/auth/me"))
        .header(COOKIE, format!("broker_session={first}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = browser()
        .get(app.url("/auth/me"))
        .header(COOKIE, format!("broker_session={second}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_planted_session_id_is_not_adopted_at_login() {
    let app = spawn(dev_provider()).await;
    let planted = "AAAAAAAAAAAAAAAAAAAAAA";
    let res = app
        .browser
        .get(app.url("/"))
        .header(COOKIE, format!("broker_session={planted}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = app.dev_login("alice").await;
    assert_ne!(
        cookie_value(res.headers(), "broker_session").unwrap(),
        planted
    );
}

#[tokio::test]
async fn idle_timeout_ends_an_unused_session() {
    let app =
        spawn(dev_provider().session("idle_timeout = \"10m\"\nabsolute_lifetime = \"1d\"")).await;
    app.dev_login("alice").await;
    app.clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(
        app.me().await.status(),
        200,
        "still within the idle timeout"
    );
    app.clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(app.me().await.status(), 200, "use slid the idle deadline");
    app.clock.advance(Duration::from_secs(11 * 60));
    let res = app.me().await;
    assert_eq!(res.status(), 401);
    assert_eq!(json(res).await["error"], "not_authenticated");
}

#[tokio::test]
async fn absolute_lifetime_is_never_extended_by_use() {
    let app =
        spawn(dev_provider().session("idle_timeout = \"10m\"\nabsolute_lifetime = \"30m\"")).await;
    app.dev_login("alice").await;
    for _ in 0..5 {
        app.clock.advance(Duration::from_secs(5 * 60));
        assert_eq!(app.me().await.status(), 200);
    }
    let me = json(app.me().await).await;
    assert_eq!(
        me["session"]["idle_expires_at"], me["session"]["expires_at"],
        "idle deadline capped at the absolute one"
    );
    app.clock.advance(Duration::from_secs(6 * 60));
    assert_eq!(app.me().await.status(), 401);
}

#[tokio::test]
async fn sessions_survive_a_broker_restart() {
    let first = spawn(dev_provider()).await;
    let cookie = cookie_value(first.dev_login("bob").await.headers(), "broker_session").unwrap();
    let second = spawn(dev_provider().reuse_db(&first)).await;
    drop(first);
    let res = browser()
        .get(second.url("/auth/me"))
        .header(COOKIE, format!("broker_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["user"]["subject"], "bob");
}

#[tokio::test]
async fn me_without_a_session_is_json_401_with_login_url_never_a_redirect() {
    let app = spawn(dev_provider()).await;
    let res = app.me().await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = json(res).await;
    assert_eq!(body["error"], "not_authenticated");
    assert_eq!(body["login_url"], app.url("/auth/login"));
    let res = browser()
        .get(app.url("/auth/me"))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "a navigation gets a page, still not a redirect"
    );
    assert!(res.text().await.unwrap().contains("Sign in again"));
}

#[tokio::test]
async fn a_garbage_session_cookie_is_just_not_signed_in() {
    let app = spawn(dev_provider()).await;
    for junk in ["x", "%%%", "AAAAAAAAAAAAAAAAAAAAAA", &"z".repeat(4000)] {
        let res = browser()
            .get(app.url("/auth/me"))
            .header(COOKIE, format!("broker_session={junk}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{junk}");
        let cleared = set_cookies(res.headers());
        assert!(
            cleared.len() == 1
                && cleared[0].starts_with("broker_session=;")
                && cleared[0].contains("Max-Age=0")
                && cleared[0].contains("Path=/"),
            "a cookie naming no session is cleared: {cleared:?}"
        );
    }
}

/// The session check only reads: a live session's cookie is not set again on every request; a
/// sign-in sets it once, a sign-out clears it once.
#[tokio::test]
async fn the_cookie_is_set_at_sign_in_left_alone_while_reading_and_cleared_at_sign_out() {
    let app = spawn(dev_provider()).await;
    let res = app.dev_login("alice").await;
    let set: Vec<String> = set_cookies(res.headers())
        .into_iter()
        .filter(|c| c.starts_with("broker_session="))
        .collect();
    assert_eq!(set.len(), 1, "{set:?}");
    assert!(set[0].contains("Max-Age="), "{set:?}");
    for _ in 0..3 {
        let res = app.me().await;
        assert_eq!(res.status(), 200);
        assert!(
            set_cookies(res.headers()).is_empty(),
            "a read sets no cookie"
        );
    }
    let res = app.logout().await;
    assert_eq!(res.status(), 200);
    let cleared: Vec<String> = set_cookies(res.headers())
        .into_iter()
        .filter(|c| c.starts_with("broker_session="))
        .collect();
    assert!(
        cleared.len() == 1
            && cleared[0].starts_with("broker_session=;")
            && cleared[0].contains("Max-Age=0"),
        "{cleared:?}"
    );
    assert_eq!(app.me().await.status(), 401);
}
