use crate::fake_op::{FakeOp, IssParam};
use crate::helpers::*;

async fn app_with_fake() -> (TestApp, FakeOp) {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("corp"))).await;
    (app, fake)
}

#[tokio::test]
async fn dev_provider_login_reaches_me_with_the_user() {
    let app = spawn(dev_provider()).await;
    let res = app.dev_login("alice").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(res.headers()), app.url("/"));
    let me = json(app.me().await).await;
    let user = &me["user"];
    assert!(user["id"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(user["provider"], "dev");
    assert_eq!(user["provider_kind"], "dev");
    assert_eq!(user["subject"], "alice");
    assert_eq!(user["email"], "alice@example.test");
    assert_eq!(user["email_verified"], true);
    assert_eq!(user["name"], "Alice Example");
    assert_eq!(user["groups"], serde_json::json!(["admins", "staff"]));
    assert!(user.get("picture").is_some());
    let session = &me["session"];
    assert!(session["handle"].as_str().unwrap().starts_with("ses_"));
    for k in ["created_at", "expires_at", "idle_expires_at"] {
        assert!(
            session[k].as_str().unwrap().ends_with('Z'),
            "{k}: {session}"
        );
    }
}

#[tokio::test]
async fn same_person_keeps_the_same_user_id_across_logins() {
    let app = spawn(dev_provider()).await;
    app.dev_login("bob").await;
    let first = json(app.me().await).await["user"]["id"].clone();
    app.dev_login("bob").await;
    let second = json(app.me().await).await["user"]["id"].clone();
    assert_eq!(first, second);
    app.dev_login("alice").await;
    assert_ne!(json(app.me().await).await["user"]["id"], first);
}

#[tokio::test]
async fn generic_oidc_login_sends_pkce_state_nonce_and_returns_to_the_app() {
    let (app, _fake) = app_with_fake().await;
    let authorize = app
        .start_login("provider=corp&return_to=http://app.test:3000/after?x=1")
        .await;
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query_param(&authorize, "code_challenge").unwrap().len(), 43);
    assert!(query_param(&authorize, "state").unwrap().len() >= 22);
    assert!(query_param(&authorize, "nonce").unwrap().len() >= 22);
    assert_eq!(
        query_param(&authorize, "redirect_uri").unwrap(),
        app.url("/auth/callback/corp")
    );
    let callback = provider_redirect(&authorize).await;
    let res = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(location(res.headers()), "http://app.test:3000/after?x=1");
    assert_eq!(json(app.me().await).await["user"]["subject"], "user-1");
}

#[tokio::test]
async fn callback_rejects_replayed_state() {
    let (app, fake) = app_with_fake().await;
    let authorize = app.start_login("provider=corp").await;
    let callback = provider_redirect(&authorize).await;
    assert_eq!(
        app.browser.get(&callback).send().await.unwrap().status(),
        303
    );
    let calls = fake.token_calls();
    let replay = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(replay.status(), 400);
    assert_eq!(json(replay).await["error"], "invalid_state");
    assert_eq!(
        fake.token_calls(),
        calls,
        "a replayed state must not reach the token endpoint"
    );
}

#[tokio::test]
async fn callback_rejects_unknown_or_missing_state() {
    let (app, _fake) = app_with_fake().await;
    let authorize = app.start_login("provider=corp").await;
    let callback = provider_redirect(&authorize).await;
    let forged = with_query_param(&callback, "state", Some("forged-state-value"));
    assert_eq!(
        json(app.browser.get(&forged).send().await.unwrap()).await["error"],
        "invalid_state"
    );
    let missing = with_query_param(&callback, "state", None);
    assert_eq!(
        json(app.browser.get(&missing).send().await.unwrap()).await["error"],
        "invalid_state"
    );
}

#[tokio::test]
async fn callback_rejects_a_login_started_in_another_browser() {
    // Login CSRF: the attacker starts a login and makes the victim's browser finish it.
    let (app, _fake) = app_with_fake().await;
    let authorize = app.start_login("provider=corp").await;
    let callback = provider_redirect(&authorize).await;
    let victim = browser();
    let res = victim.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "browser_mismatch");
    assert_eq!(app.me_with(&victim).await.status(), 401);
}

#[tokio::test]
async fn callback_rejects_a_wrong_iss_parameter() {
    let (app, fake) = app_with_fake().await;
    fake.behave(|b| b.iss_param = IssParam::Wrong);
    let res = fake_login(&app, "provider=corp").await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "issuer_mismatch");
    assert_eq!(fake.token_calls(), 0);
}

#[tokio::test]
async fn callback_requires_iss_when_the_provider_advertises_it() {
    let (app, fake) = app_with_fake().await;
    fake.behave(|b| b.iss_param = IssParam::Missing);
    let res = fake_login(&app, "provider=corp").await;
    assert_eq!(json(res).await["error"], "issuer_missing");
}

#[tokio::test]
async fn callback_accepts_no_iss_from_a_provider_that_does_not_send_it() {
    let (app, fake) = app_with_fake().await;
    fake.behave(|b| {
        b.iss_param = IssParam::Missing;
        b.advertise_iss = false;
    });
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    assert_eq!(app.me().await.status(), 200);
}

#[tokio::test]
async fn two_tabs_can_log_in_at_the_same_time() {
    let (app, _fake) = app_with_fake().await;
    let tab1 = app.start_login("provider=corp&return_to=/one").await;
    let tab2 = app.start_login("provider=corp&return_to=/two").await;
    let cb2 = provider_redirect(&tab2).await;
    let cb1 = provider_redirect(&tab1).await;
    let r2 = app.browser.get(&cb2).send().await.unwrap();
    let r1 = app.browser.get(&cb1).send().await.unwrap();
    assert_eq!(location(r2.headers()), app.url("/two"));
    assert_eq!(location(r1.headers()), app.url("/one"));
}

#[tokio::test]
async fn return_to_outside_the_allow_list_is_refused() {
    let (app, _fake) = app_with_fake().await;
    for bad in [
        "https://evil.example/",
        "http://app.test:3001/",
        "https://app.test:3000/",
        "//evil.example/x",
        "/\\evil.example",
        "javascript:alert(1)",
        "http://app.test:3000@evil.example/",
    ] {
        let q = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("provider", "corp")
            .append_pair("return_to", bad)
            .finish();
        let res = app.get(&format!("/auth/login?{q}")).await;
        assert_eq!(res.status(), 400, "{bad}");
        assert_eq!(json(res).await["error"], "return_to_not_allowed", "{bad}");
    }
}

#[tokio::test]
async fn unknown_provider_is_a_clear_404() {
    let (app, _fake) = app_with_fake().await;
    let res = app.get("/auth/login?provider=nope").await;
    assert_eq!(res.status(), 404);
    assert_eq!(json(res).await["error"], "unknown_provider");
    let res = app.get("/auth/callback/nope?state=x&code=y").await;
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn several_providers_show_the_chooser() {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(format!(
        "{}[providers.dev]\nkind = \"dev\"\n",
        fake.provider_toml("corp")
    )))
    .await;
    let res = app
        .browser
        .get(app.url("/auth/login?return_to=/x"))
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(page.contains("Test users (dev)"), "{page}");
    assert!(page.contains("provider=corp"), "{page}");
}

#[tokio::test]
async fn provider_key_rotation_needs_no_restart() {
    let (app, fake) = app_with_fake().await;
    assert_eq!(app.get("/readyz").await.status(), 200); // discovery has run, with the old key
    fake.rotate_keys();
    let res = fake_login(&app, "provider=corp").await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(app.me().await.status(), 200);
}

#[tokio::test]
async fn errors_are_pages_for_navigations_and_json_for_fetch() {
    let (app, _fake) = app_with_fake().await;
    let page = app
        .browser
        .get(app.url("/auth/callback/corp?state=nope&code=x"))
        .header("sec-fetch-mode", "navigate")
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 400);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = page.text().await.unwrap();
    assert!(body.contains("expired or was already used"), "{body}");
    assert!(body.contains("invalid_state"));
    assert!(!body.contains("code=x"));
    let api = app
        .browser
        .get(app.url("/auth/callback/corp?state=nope&code=x"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    let body = json(api).await;
    assert_eq!(body["error"], "invalid_state");
    assert_eq!(body["correlation_id"].as_str().unwrap().len(), 16);
}

#[tokio::test]
async fn readiness_fails_while_a_provider_is_unreachable() {
    // A loopback port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn(Spawn::providers(format!(
        "[providers.gone]\nkind = \"oidc\"\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"a\"\nclient_secret = \"b\"\n"
    )))
    .await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(json(res).await["providers"]["gone"], "unreachable");
    let res = app
        .browser
        .get(app.url("/auth/login?provider=gone"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
}
