//! Firebase kind against a stand-in of its services: password form, federated sign-in through
//! createAuthUri/signInWithIdp, ID-token hand-off, and every refusal of a bad token.

use serde_json::json;

use crate::fake_firebase::{API_KEY, FakeFirebase, PROJECT};
use crate::helpers::*;

async fn handoff(app: &TestApp, token: &str) -> reqwest::Response {
    app.browser
        .post(app.url("/auth/firebase/fb/session"))
        .header("origin", app.base.clone())
        .json(&json!({ "id_token": token }))
        .send()
        .await
        .unwrap()
}

/// A Firebase provider in production shape: no emulator, keys from the stand-in's key set.
async fn app_without_emulator(fake: &FakeFirebase) -> TestApp {
    spawn(Spawn::providers(format!(
        "[providers.fb]\nkind = \"firebase\"\nproject_id = \"{PROJECT}\"\napi_key = \"{API_KEY}\"\nkeys_url = \"{}/keys\"\n",
        fake.base
    )))
    .await
}

#[tokio::test]
async fn password_form_signs_in_through_identity_toolkit() {
    let fake = FakeFirebase::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("fb"))).await;
    let page = app.get("/auth/login?provider=fb&return_to=/done").await;
    let status = page.status();
    let html = page.text().await.unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Continue with google.com"), "{html}");
    let mut form = Form::parse(&html, &app.url("/auth/login"));
    assert_eq!(form.action, app.url("/auth/firebase/fb/password"));
    form.set("email", "ada@example.test");
    form.set("password", "right-password");
    let res = app
        .browser
        .post(&form.action)
        .header("origin", app.base.clone())
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(location(res.headers()), app.url("/done"));
    let me = json(app.me().await).await;
    assert_eq!(me["user"]["provider_kind"], "firebase");
    assert_eq!(me["user"]["subject"], "ada");
    assert_eq!(me["user"]["email"], "ada@example.test");
    assert_eq!(
        me["user"]["claims"]["firebase"]["sign_in_provider"],
        "password"
    );
}

#[tokio::test]
async fn wrong_password_shows_the_form_again_and_signs_nobody_in() {
    let fake = FakeFirebase::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("fb"))).await;
    let form = [
        ("email", "ada@example.test"),
        ("password", "wrong"),
        ("return_to", "/"),
    ];
    let res = app
        .browser
        .post(app.url("/auth/firebase/fb/password"))
        .header("origin", app.base.clone())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("The email or password is not right."),
        "{page}"
    );
    assert!(!page.contains("wrong"), "the password is never echoed");
    assert_eq!(app.me().await.status(), 401);
}

#[tokio::test]
async fn password_post_from_another_site_is_refused() {
    let fake = FakeFirebase::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("fb"))).await;
    let form = [
        ("email", "ada@example.test"),
        ("password", "right-password"),
    ];
    let res = app
        .browser
        .post(app.url("/auth/firebase/fb/password"))
        .header("origin", "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(app.me().await.status(), 401);
}

#[tokio::test]
async fn federated_sign_in_goes_through_create_auth_uri_and_sign_in_with_idp() {
    let fake = FakeFirebase::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("fb"))).await;
    let idp = app
        .start_login("provider=fb&idp=google.com&return_to=/x")
        .await;
    assert!(
        idp.starts_with(&format!("{}/idp/authorize", fake.base)),
        "{idp}"
    );
    let callback = provider_redirect(&idp).await;
    assert!(callback.starts_with(&app.url("/auth/callback/fb")));
    let res = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let me = json(app.me().await).await;
    assert_eq!(me["user"]["subject"], "grace");
    assert_eq!(
        me["user"]["claims"]["firebase"]["sign_in_provider"],
        "google.com"
    );
    // Replaying the provider's answer finds no transaction.
    assert_eq!(
        json(app.browser.get(&callback).send().await.unwrap()).await["error"],
        "invalid_state"
    );
}

#[tokio::test]
async fn federated_provider_not_configured_is_refused() {
    let fake = FakeFirebase::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("fb"))).await;
    let res = app.get("/auth/login?provider=fb&idp=facebook.com").await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn handoff_of_a_fresh_signed_token_starts_a_session_and_keys_are_cached() {
    let fake = FakeFirebase::start().await;
    let app = app_without_emulator(&fake).await;
    let res = handoff(&app, &fake.id_token("ada", |_| {})).await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["user"]["subject"], "ada");
    assert_eq!(app.me().await.status(), 200);
    assert_eq!(
        handoff(&app, &fake.id_token("ada", |_| {})).await.status(),
        200
    );
    assert_eq!(
        fake.key_fetches(),
        1,
        "keys are cached as Cache-Control allows"
    );
}

#[tokio::test]
async fn handoff_refuses_every_bad_token() {
    let fake = FakeFirebase::start().await;
    let app = app_without_emulator(&fake).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let unsigned = {
        let h = oidc_broker::crypto::b64url(br#"{"alg":"none","typ":"JWT"}"#);
        let c = oidc_broker::crypto::b64url(
            json!({"iss": format!("https://securetoken.google.com/{PROJECT}"), "aud": PROJECT, "sub": "ada", "iat": now, "exp": now + 3600, "auth_time": now})
                .to_string()
                .as_bytes(),
        );
        format!("{h}.{c}.")
    };
    let cases = [
        ("unsigned outside the emulator", unsigned),
        ("forged signature", fake.forged_token("ada")),
        (
            "another project's audience",
            fake.id_token("ada", |c| c["aud"] = json!("other-project")),
        ),
        (
            "another project's issuer",
            fake.id_token("ada", |c| {
                c["iss"] = json!("https://securetoken.google.com/other-project")
            }),
        ),
        (
            "expired",
            fake.id_token("ada", |c| c["exp"] = json!(now - 600)),
        ),
        (
            "issued in the future",
            fake.id_token("ada", |c| c["iat"] = json!(now + 3600)),
        ),
        (
            "sign-in older than five minutes",
            fake.id_token("ada", |c| c["auth_time"] = json!(now - 600)),
        ),
        (
            "empty subject",
            fake.id_token("ada", |c| c["sub"] = json!("")),
        ),
        (
            "subject over 128 characters",
            fake.id_token("ada", |c| c["sub"] = json!("x".repeat(129))),
        ),
        ("not a JWT", "garbage".to_string()),
    ];
    for (what, token) in cases {
        let res = handoff(&app, &token).await;
        // The caller's token is wrong, the provider is fine: 401, never a 502 that reads as an outage.
        assert_eq!(res.status(), 401, "{what}");
        let body = json(res).await;
        assert_eq!(body["error"], "invalid_id_token", "{what}");
        assert!(body["message"].as_str().is_some(), "{what}: {body}");
        assert!(body["correlation_id"].as_str().is_some(), "{what}: {body}");
    }
    assert_eq!(
        app.me().await.status(),
        401,
        "no refused token made a session"
    );
}

#[tokio::test]
async fn handoff_answers_502_when_firebase_fails_not_401() {
    let fake = FakeFirebase::start().await;
    let app = app_without_emulator(&fake).await;
    fake.keys_answer(500);
    let res = handoff(&app, &fake.id_token("ada", |_| {})).await;
    assert_eq!(
        res.status(),
        502,
        "Google's key service failed: an outage, not the caller"
    );
    assert_eq!(json(res).await["error"], "provider_error");
    fake.keys_answer(200);
    assert_eq!(
        handoff(&app, &fake.id_token("ada", |_| {})).await.status(),
        200,
        "the same kind of token is fine once Firebase answers"
    );
}

#[tokio::test]
async fn handoff_from_another_site_is_refused() {
    let fake = FakeFirebase::start().await;
    let app = app_without_emulator(&fake).await;
    let token = fake.id_token("ada", |_| {});
    let res = app
        .browser
        .post(app.url("/auth/firebase/fb/session"))
        .header("origin", "https://evil.example")
        .json(&json!({"id_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let res = app
        .browser
        .post(app.url("/auth/firebase/fb/session"))
        .json(&json!({"id_token": token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no Origin and no X-CSRF");
    let res = app
        .browser
        .post(app.url("/auth/firebase/fb/session"))
        .header("x-csrf", "1")
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn securetoken_refresh_reads_string_expires_in() {
    let fake = FakeFirebase::start().await;
    let config = oidc_broker::config::from_toml_str(
        &format!("{DEV_ENV}{}", fake.provider_toml("fb")),
        Vec::new(),
    )
    .unwrap();
    let settings = config.providers["fb"].firebase.clone().unwrap();
    let http = oidc_broker::http_client::HttpClient::new(
        oidc_broker::http_client::AddressPolicy {
            allow_loopback: true,
            ..Default::default()
        },
        std::time::Duration::from_secs(5),
    )
    .unwrap();
    let client = oidc_broker::providers::FirebaseClient::new(
        "fb",
        &settings,
        http,
        std::sync::Arc::new(oidc_broker::clock::SystemClock),
    );
    let tokens = client.refresh("refresh-ada").await.unwrap();
    assert_eq!(tokens.expires_in, Some(3600));
    assert_eq!(tokens.refresh_token.as_deref(), Some("refresh-ada"));
    let claims = client
        .verify_id_token(tokens.id_token.as_deref().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(claims["sub"], "ada");
    let err = client.refresh("bogus").await.unwrap_err();
    assert_eq!(err.code, "invalid_grant");
}

#[tokio::test]
async fn a_firebase_refresh_whose_id_token_names_another_user_is_not_taken() {
    let fake = FakeFirebase::start().await;
    let app = spawn(
        Spawn::providers(fake.provider_toml("fb")).session(
            "idle_timeout = \"3h\"\nabsolute_lifetime = \"1d\"\nrefresh_margin = \"60s\"\non_refresh_failure = \"end\"",
        ),
    )
    .await;
    let res = app
        .browser
        .post(app.url("/auth/firebase/fb/password"))
        .header("origin", app.base.clone())
        .form(&[
            ("email", "ada@example.test"),
            ("password", "right-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    fake.refresh_as("mallory");
    // Firebase ID tokens live an hour; the refresh is due a minute before.
    app.clock.advance(std::time::Duration::from_secs(3550));
    let res = app.me().await;
    assert_eq!(
        res.status(),
        401,
        "Firebase's access token is its ID token: nothing to keep"
    );
    let rows = app.state.store.audit_events(None, 100).await.unwrap();
    let failed = rows
        .iter()
        .find(|r| r.event == "refresh.failed")
        .expect("the refused refresh is audited");
    assert!(failed.detail.contains("subject (sub)"), "{}", failed.detail);
    assert!(
        !rows.iter().any(|r| r.event == "refresh.succeeded"),
        "mallory's token was never stored"
    );
}
