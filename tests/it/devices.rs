//! Sessions per device: what each session records (address, user agent, device label), the
//! trusted-proxy rule for `X-Forwarded-For`, a user listing and ending their own sessions (JSON and
//! the page), and `max_per_user`.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use crate::helpers::*;

pub const FIREFOX_LINUX: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0";
pub const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1";
pub const CHROME_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36";

/// A browser of its own (cookie jar, no redirects) with this user agent and extra headers.
pub fn browser_as(user_agent: &str, headers: &[(&'static str, &str)]) -> reqwest::Client {
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.insert(*k, HeaderValue::from_str(v).unwrap());
    }
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(user_agent)
        .default_headers(h)
        .build()
        .unwrap()
}

/// Signs `user` in through the dev provider on `browser`, which is returned signed in.
pub async fn sign_in_on(
    app: &mut TestApp,
    browser: reqwest::Client,
    user: &str,
) -> reqwest::Client {
    let saved = std::mem::replace(&mut app.browser, browser.clone());
    let res = app.dev_login(user).await;
    app.browser = saved;
    assert_eq!(res.status(), 303, "login of {user}");
    browser
}

pub async fn sign_in(app: &mut TestApp, user: &str, user_agent: &str) -> reqwest::Client {
    sign_in_on(app, browser_as(user_agent, &[]), user).await
}

pub async fn sessions_of(app: &TestApp, browser: &reqwest::Client) -> Vec<Value> {
    let res = browser
        .get(app.url("/auth/sessions"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    json(res).await["sessions"].as_array().unwrap().clone()
}

pub async fn handle_of(app: &TestApp, browser: &reqwest::Client) -> String {
    let me = json(app.me_with(browser).await).await;
    me["session"]["handle"].as_str().unwrap().to_string()
}

async fn delete_session(
    app: &TestApp,
    browser: &reqwest::Client,
    handle: &str,
) -> reqwest::Response {
    browser
        .delete(app.url(&format!("/auth/sessions/{handle}")))
        .header("origin", app.base.clone())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn each_session_records_its_address_user_agent_and_device() {
    let mut app = spawn(dev_provider()).await;
    let firefox = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    app.clock.advance(Duration::from_secs(5));
    let iphone = sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    let sessions = sessions_of(&app, &firefox).await;
    assert_eq!(sessions.len(), 2, "{sessions:?}");
    // Newest first.
    let (phone, desktop) = (&sessions[0], &sessions[1]);
    assert_eq!(phone["device"], "Safari on iPhone");
    assert_eq!(phone["user_agent"], SAFARI_IPHONE);
    assert_eq!(phone["current"], false);
    assert_eq!(desktop["device"], "Firefox on Linux");
    assert_eq!(desktop["current"], true);
    for s in &sessions {
        assert_eq!(s["ip"], "127.0.0.1", "{s}");
        assert_eq!(s["provider"], "dev");
        assert!(s["handle"].as_str().unwrap().starts_with("ses_"));
        for field in ["created_at", "last_seen_at", "expires_at"] {
            assert!(
                s[field].as_str().is_some_and(|t| t.contains('T')),
                "{field}: {s}"
            );
        }
    }
    assert_eq!(
        sessions_of(&app, &iphone).await[0]["current"],
        true,
        "each browser sees its own session flagged"
    );
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    // The test connects from 127.0.0.1: trusted here …
    let mut app = spawn(dev_provider().server_extra("trusted_proxies = [\"127.0.0.1/32\"]")).await;
    let behind_proxy = browser_as(
        CHROME_MAC,
        &[("x-forwarded-for", "192.0.2.1, 198.51.100.7")],
    );
    let b = sign_in_on(&mut app, behind_proxy, "alice").await;
    assert_eq!(sessions_of(&app, &b).await[0]["ip"], "198.51.100.7");

    // … and not there: the header is whatever the client says.
    let mut app = spawn(dev_provider().server_extra("trusted_proxies = [\"10.0.0.0/8\"]")).await;
    let spoofing = browser_as(CHROME_MAC, &[("x-forwarded-for", "198.51.100.7")]);
    let b = sign_in_on(&mut app, spoofing, "alice").await;
    assert_eq!(sessions_of(&app, &b).await[0]["ip"], "127.0.0.1");
}

#[tokio::test]
async fn a_user_revokes_one_of_their_sessions_and_it_stops_at_once() {
    let mut app = spawn(dev_provider()).await;
    let laptop = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let phone = sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    let phone_handle = handle_of(&app, &phone).await;

    let res = delete_session(&app, &laptop, &phone_handle).await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        json(res).await["revoked"],
        serde_json::json!([phone_handle])
    );
    assert_eq!(app.me_with(&phone).await.status(), 401);
    assert_eq!(app.me_with(&laptop).await.status(), 200);
    let left = sessions_of(&app, &laptop).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["current"], true);
    // Gone is gone.
    assert_eq!(
        delete_session(&app, &laptop, &phone_handle).await.status(),
        404
    );
}

#[tokio::test]
async fn nobody_sees_or_ends_another_users_sessions() {
    let mut app = spawn(dev_provider()).await;
    let alice = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let bob = sign_in(&mut app, "bob", CHROME_MAC).await;
    let bobs = handle_of(&app, &bob).await;
    let alices = sessions_of(&app, &alice).await;
    assert!(alices.iter().all(|s| s["handle"] != bobs.as_str()));

    let res = delete_session(&app, &alice, &bobs).await;
    assert_eq!(res.status(), 404);
    assert_eq!(json(res).await["error"], "unknown_session");
    let res = alice
        .post(app.url(&format!("/auth/sessions/{bobs}/revoke")))
        .header("origin", app.base.clone())
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        delete_session(&app, &alice, "ses_nonexistent")
            .await
            .status(),
        404
    );
    assert_eq!(
        app.me_with(&bob).await.status(),
        200,
        "bob is still signed in"
    );

    // Not signed in: 401, not 404.
    let stranger = browser_as(CHROME_MAC, &[]);
    assert_eq!(delete_session(&app, &stranger, &bobs).await.status(), 401);
    let res = stranger
        .get(app.url("/auth/sessions"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn ending_sessions_with_the_cookie_needs_a_same_site_request() {
    let mut app = spawn(dev_provider()).await;
    let laptop = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let phone = sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    let phone_handle = handle_of(&app, &phone).await;
    let url = app.url(&format!("/auth/sessions/{phone_handle}"));
    let res = laptop.delete(&url).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(json(res).await["error"], "csrf_header_missing");
    let res = laptop
        .delete(&url)
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = laptop
        .post(app.url("/auth/sessions/revoke-others"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.me_with(&phone).await.status(), 200, "nothing ended");
    // A non-browser client says so with X-CSRF.
    let res = laptop
        .delete(&url)
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.me_with(&phone).await.status(), 401);
}

#[tokio::test]
async fn revoke_others_keeps_only_the_current_session() {
    let mut app = spawn(dev_provider()).await;
    let a = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let b = sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    let c = sign_in(&mut app, "alice", CHROME_MAC).await;
    let bob = sign_in(&mut app, "bob", CHROME_MAC).await;
    let res = a
        .post(app.url("/auth/sessions/revoke-others"))
        .header("origin", "http://app.test:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["revoked"].as_array().unwrap().len(), 2);
    assert_eq!(app.me_with(&a).await.status(), 200);
    assert_eq!(app.me_with(&b).await.status(), 401);
    assert_eq!(app.me_with(&c).await.status(), 401);
    assert_eq!(
        app.me_with(&bob).await.status(),
        200,
        "other users are untouched"
    );
    assert_eq!(sessions_of(&app, &a).await.len(), 1);
}

#[tokio::test]
async fn bearer_callers_list_and_end_sessions_without_the_cookie() {
    let mut app = spawn(dev_provider()).await;
    let phone = sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    // Token mode on another device.
    let res = app
        .dev_login_query(
            "alice",
            "provider=dev&mode=token&return_to=http%3A%2F%2Fapp.test%3A3000%2F",
        )
        .await;
    let code = query_param(&location(res.headers()), "code").unwrap();
    let tokens = json(
        reqwest::Client::new()
            .post(app.url("/auth/token"))
            .json(&serde_json::json!({ "code": code }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let access = tokens["access_token"].as_str().unwrap();
    let api = reqwest::Client::new();
    let list = json(
        api.get(app.url("/auth/sessions"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{list}");
    let phone_handle = handle_of(&app, &phone).await;
    // No Origin, no X-CSRF: a bearer token is never sent by a browser on its own.
    let res = api
        .delete(app.url(&format!("/auth/sessions/{phone_handle}")))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.me_with(&phone).await.status(), 401);
}

#[tokio::test]
async fn the_manage_page_lists_sessions_and_its_buttons_end_them() {
    let mut app = spawn(dev_provider()).await;
    let laptop = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let phone = sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    let phone_handle = handle_of(&app, &phone).await;
    let laptop_handle = handle_of(&app, &laptop).await;
    let page_url = app.url("/auth/sessions/manage");
    let res = laptop
        .get(&page_url)
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("form-action 'self'"), "{csp}");
    assert_eq!(res.headers()["cache-control"], "no-store");
    let page = decode_entities(&res.text().await.unwrap());
    assert!(
        page.contains("Firefox on Linux") && page.contains("Safari on iPhone"),
        "{page}"
    );
    assert!(page.contains("this device"), "{page}");
    assert!(page.contains("127.0.0.1"), "{page}");

    // The phone's button, as the browser posts it (same origin).
    let action = format!("/auth/sessions/{phone_handle}/revoke");
    assert!(page.contains(&action), "{page}");
    let res = laptop
        .post(app.url(&action))
        .header("origin", app.base.clone())
        .form(&Vec::<(String, String)>::new())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(res.headers()), page_url);
    assert_eq!(app.me_with(&phone).await.status(), 401);

    // A cross-site form cannot do it.
    let res = laptop
        .post(app.url(&format!("/auth/sessions/{laptop_handle}/revoke")))
        .header("origin", "https://evil.example")
        .form(&Vec::<(String, String)>::new())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.me_with(&laptop).await.status(), 200);

    // This device's own button signs it out.
    let res = laptop
        .post(app.url(&format!("/auth/sessions/{laptop_handle}/revoke")))
        .header("sec-fetch-site", "same-origin")
        .form(&Vec::<(String, String)>::new())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(res.headers()), app.url("/auth/logged-out"));
    assert_eq!(app.me_with(&laptop).await.status(), 401);

    // Signed out, the page is the 401 page.
    let res = laptop
        .get(&page_url)
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert!(res.text().await.unwrap().contains("not signed in"));
}

#[tokio::test]
async fn beyond_max_per_user_the_oldest_sessions_end() {
    let mut app = spawn(
        dev_provider()
            .session("idle_timeout = \"30m\"\nabsolute_lifetime = \"7d\"\nmax_per_user = 2\n"),
    )
    .await;
    let first = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let first_handle = handle_of(&app, &first).await;
    app.clock.advance(Duration::from_secs(2));
    let second = sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    app.clock.advance(Duration::from_secs(2));
    let bob = sign_in(&mut app, "bob", CHROME_MAC).await;
    assert_eq!(app.me_with(&first).await.status(), 200, "two are allowed");
    let third = sign_in(&mut app, "alice", CHROME_MAC).await;
    assert_eq!(app.me_with(&first).await.status(), 401, "the oldest ended");
    assert_eq!(app.me_with(&second).await.status(), 200);
    assert_eq!(app.me_with(&third).await.status(), 200);
    assert_eq!(app.me_with(&bob).await.status(), 200);
    assert_eq!(sessions_of(&app, &third).await.len(), 2);

    let user = json(app.me_with(&third).await).await["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let events = app.state.store.audit_events(Some(&user), 50).await.unwrap();
    let revoked = events
        .iter()
        .find(|e| e.event == "session.revoked")
        .expect("the revocation is audited");
    assert_eq!(revoked.session.as_deref(), Some(first_handle.as_str()));
    assert!(
        revoked.detail.contains("\"by\":\"max_per_user\""),
        "{}",
        revoked.detail
    );
}
