//! Provider tokens sealed at rest, logout with revocation and the provider's logout URL per kind,
//! and logout initiated by the provider (back-channel and front-channel).

use serde_json::json;

use crate::fake_op::{CLIENT_ID, FakeOp, Flavor};
use crate::helpers::*;
use crate::kinds::{auth0_toml, cognito_toml};

async fn logout(app: &TestApp) -> serde_json::Value {
    let res = app.logout().await;
    assert_eq!(res.status(), 200);
    json(res).await
}

fn db_bytes(app: &TestApp) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut p = app.db.clone().into_os_string();
        p.push(suffix);
        if let Ok(b) = std::fs::read(&p) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn a_store_dump_reveals_no_provider_token() {
    let fake = FakeOp::start().await;
    // The dump is of the SQLite file, whatever backend the suite runs on.
    let app = spawn(Spawn::providers(fake.provider_toml("corp")).sqlite_only()).await;
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    let dump = db_bytes(&app);
    logout(&app).await;
    let refresh = fake
        .revoked()
        .pop()
        .expect("the refresh token was revoked at logout");
    assert!(
        !contains(&dump, &refresh),
        "refresh token in the store dump"
    );
    assert!(
        !contains(&dump, "at-fake"),
        "access token in the store dump"
    );
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_and_answers_the_end_session_url() {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("corp"))).await;
    fake_login(&app, "provider=corp").await;
    let body = logout(&app).await;
    let url = body["logout_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{}/logout?", fake.base)), "{url}");
    assert!(query_param(url, "id_token_hint").is_some_and(|h| h.split('.').count() == 3));
    assert_eq!(
        query_param(url, "post_logout_redirect_uri").unwrap(),
        app.url("/auth/logged-out")
    );
    assert_eq!(query_param(url, "client_id").unwrap(), CLIENT_ID);
    assert_eq!(fake.revoked().len(), 1);
    assert!(fake.revoked()[0].starts_with("rt-"));
    assert_eq!(app.me().await.status(), 401);
}

#[tokio::test]
async fn auth0_logout_uses_v2_logout_and_oauth_revoke() {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let app = spawn(Spawn::providers(auth0_toml(&fake, "a0", ""))).await;
    fake_login(&app, "provider=a0").await;
    let url = logout(&app).await["logout_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.starts_with(&format!("{}/v2/logout?", fake.base)),
        "{url}"
    );
    assert_eq!(
        query_param(&url, "returnTo").unwrap(),
        app.url("/auth/logged-out")
    );
    assert_eq!(query_param(&url, "client_id").unwrap(), CLIENT_ID);
    assert_eq!(
        fake.revoked().len(),
        1,
        "revoked at /oauth/revoke with credentials in the body"
    );
}

#[tokio::test]
async fn cognito_logout_uses_logout_with_logout_uri_and_oauth2_revoke() {
    let fake = FakeOp::start_flavor(Flavor::Cognito).await;
    let app = spawn(Spawn::providers(cognito_toml(&fake, "cog", ""))).await;
    fake_login(&app, "provider=cog").await;
    let url = logout(&app).await["logout_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with(&format!("{}/logout?", fake.base)), "{url}");
    assert_eq!(
        query_param(&url, "logout_uri").unwrap(),
        app.url("/auth/logged-out")
    );
    assert_eq!(
        fake.revoked().len(),
        1,
        "revoked at /oauth2/revoke with HTTP Basic"
    );
}

#[tokio::test]
async fn a_revocation_failure_never_blocks_the_local_logout_and_is_queued() {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("corp"))).await;
    fake_login(&app, "provider=corp").await;
    fake.behave(|b| b.revoke_status = 503);
    logout(&app).await;
    assert_eq!(app.me().await.status(), 401);
    assert!(fake.revoked().is_empty());
    let due = app.state.store.due_revocations(i64::MAX).await.unwrap();
    assert_eq!(due.len(), 1);
    let last_error: Option<String> =
        sqlx::query_scalar("SELECT last_error FROM pending_revocations")
            .fetch_one(app.state.store.pool())
            .await
            .unwrap();
    let err = last_error.unwrap();
    assert!(err.contains("503"), "{err}");

    // The background retry: not before its time, then with backoff until the provider accepts.
    oidc_broker::session::revocation::retry_revocations(app.state.session_parts()).await;
    assert!(fake.revoked().is_empty(), "not due yet");
    app.clock.advance(std::time::Duration::from_secs(61));
    oidc_broker::session::revocation::retry_revocations(app.state.session_parts()).await;
    assert!(fake.revoked().is_empty(), "the provider still fails");
    let due = app.state.store.due_revocations(i64::MAX).await.unwrap();
    assert_eq!(due[0].4, 2, "attempts");
    fake.behave(|b| b.revoke_status = 200);
    app.clock.advance(std::time::Duration::from_secs(121));
    oidc_broker::session::revocation::retry_revocations(app.state.session_parts()).await;
    assert_eq!(fake.revoked().len(), 1, "revoked on the retry");
    let left = app.state.store.due_revocations(i64::MAX).await.unwrap();
    assert!(left.is_empty());
}

#[tokio::test]
async fn logged_out_page_redirects_to_the_configured_post_logout_url() {
    let app = spawn(
        Spawn::providers("[providers.dev]\nkind = \"dev\"\n".to_string())
            .server_extra("post_logout_url = \"http://app.test:3000/bye\""),
    )
    .await;
    let res = app.get("/auth/logged-out").await;
    assert_eq!(res.status(), 303);
    assert_eq!(location(res.headers()), "http://app.test:3000/bye");
}

// ---- back-channel logout -----------------------------------------------------------------

async fn backchannel(app: &TestApp, token: &str) -> reqwest::Response {
    browser()
        .post(app.url("/auth/backchannel-logout/corp"))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap()
}

async fn signed_in() -> (TestApp, FakeOp) {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("corp"))).await;
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    (app, fake)
}

#[tokio::test]
async fn backchannel_logout_ends_the_session_on_every_instance() {
    let fake = FakeOp::start().await;
    let a = spawn(Spawn::providers(fake.provider_toml("corp"))).await;
    let b = spawn(Spawn::providers(fake.provider_toml("corp")).reuse_db(&a)).await;
    let cookie = cookie_value(
        fake_login(&a, "provider=corp").await.headers(),
        "broker_session",
    )
    .unwrap();
    let on_b = || {
        browser()
            .get(b.url("/auth/me"))
            .header("cookie", format!("broker_session={cookie}"))
            .send()
    };
    assert_eq!(
        on_b().await.unwrap().status(),
        200,
        "instance B sees the session"
    );
    let res = backchannel(&b, &fake.logout_token(|_, _| {})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(a.me().await.status(), 401, "ended on instance A too");
    assert_eq!(on_b().await.unwrap().status(), 401);
}

#[tokio::test]
async fn backchannel_logout_by_subject_ends_every_session_of_that_subject() {
    let (app, fake) = signed_in().await;
    let token = fake.logout_token(|_, c| {
        c.as_object_mut().unwrap().remove("sid");
    });
    assert_eq!(backchannel(&app, &token).await.status(), 200);
    assert_eq!(app.me().await.status(), 401);
}

async fn refused(edit: impl FnOnce(&mut serde_json::Value, &mut serde_json::Value), expect: &str) {
    let (app, fake) = signed_in().await;
    let res = backchannel(&app, &fake.logout_token(edit)).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_request");
    let why = body["error_description"].as_str().unwrap();
    assert!(why.contains(expect), "{why}");
    assert_eq!(
        app.me().await.status(),
        200,
        "a refused logout token ends nothing"
    );
}

#[tokio::test]
async fn backchannel_refuses_a_forged_signature() {
    let (app, fake) = signed_in().await;
    let body = json(backchannel(&app, &fake.forged_logout_token()).await).await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{body}"
    );
    assert_eq!(app.me().await.status(), 200);
}

#[tokio::test]
async fn backchannel_refuses_another_issuer() {
    refused(
        |_, c| c["iss"] = json!("https://attacker.example"),
        "issuer",
    )
    .await;
}

#[tokio::test]
async fn backchannel_refuses_another_audience() {
    refused(|_, c| c["aud"] = json!("other-client"), "aud").await;
}

#[tokio::test]
async fn backchannel_refuses_an_extra_untrusted_audience_as_id_tokens_do() {
    refused(
        |_, c| c["aud"] = json!([CLIENT_ID, "someone-else"]),
        "audiences other than this client (aud)",
    )
    .await;
}

#[tokio::test]
async fn backchannel_refuses_a_logout_token_issued_to_another_party() {
    refused(|_, c| c["azp"] = json!("other-client"), "azp").await;
}

#[tokio::test]
async fn backchannel_refuses_an_old_iat() {
    refused(
        |_, c| c["iat"] = json!(c["iat"].as_i64().unwrap() - 3600),
        "iat",
    )
    .await;
}

#[tokio::test]
async fn backchannel_refuses_a_missing_jti() {
    refused(
        |_, c| {
            c.as_object_mut().unwrap().remove("jti");
        },
        "jti",
    )
    .await;
}

#[tokio::test]
async fn backchannel_refuses_a_replayed_jti() {
    let (app, fake) = signed_in().await;
    let token = fake.logout_token(|_, c| c["sid"] = json!("sid-of-nobody"));
    assert_eq!(backchannel(&app, &token).await.status(), 200);
    let res = backchannel(&app, &token).await;
    assert_eq!(res.status(), 400);
    assert!(
        json(res).await["error_description"]
            .as_str()
            .unwrap()
            .contains("jti")
    );
}

#[tokio::test]
async fn backchannel_refuses_missing_events() {
    refused(
        |_, c| c["events"] = json!({"http://example.com/other": {}}),
        "events",
    )
    .await;
}

#[tokio::test]
async fn backchannel_refuses_neither_sid_nor_sub() {
    refused(
        |_, c| {
            let o = c.as_object_mut().unwrap();
            o.remove("sid");
            o.remove("sub");
        },
        "sid",
    )
    .await;
}

#[tokio::test]
async fn backchannel_refuses_a_nonce() {
    refused(|_, c| c["nonce"] = json!("n"), "nonce").await;
}

#[tokio::test]
async fn backchannel_refuses_an_id_token_typ() {
    refused(|h, _| h["typ"] = json!("JWT"), "typ").await;
}

#[tokio::test]
async fn backchannel_refuses_a_missing_token_and_an_unknown_provider() {
    let (app, fake) = signed_in().await;
    let res = browser()
        .post(app.url("/auth/backchannel-logout/corp"))
        .form(&[("other", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let res = browser()
        .post(app.url("/auth/backchannel-logout/nope"))
        .form(&[("logout_token", fake.logout_token(|_, _| {}))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.me().await.status(), 200);
}

#[tokio::test]
async fn frontchannel_logout_ends_the_session_of_that_sid() {
    let (app, fake) = signed_in().await;
    let wrong = "/auth/frontchannel-logout/corp?iss=https://attacker.example&sid=sid-user-1";
    assert_eq!(app.get(wrong).await.status(), 400);
    assert_eq!(app.me().await.status(), 200);
    let q = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("iss", &fake.issuer)
        .append_pair("sid", "sid-user-1")
        .finish();
    let res = browser()
        .get(app.url(&format!("/auth/frontchannel-logout/corp?{q}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.me().await.status(), 401);
}
