//! Refresh of provider tokens while a session is used: when due, once across instances, rotated
//! tokens stored, and each failure policy. Time is the injected clock; nothing sleeps through a TTL.

use std::time::Duration;

use serde_json::json;

use crate::fake_op::{FakeOp, Flavor, RefreshIdToken, SignWith};
use crate::helpers::*;
use crate::kinds::{auth0_toml, cognito_toml};

/// The fake's access tokens live 300 s; with a 60 s margin a refresh is due after 240 s.
const DUE: Duration = Duration::from_secs(250);

fn session(policy: &str) -> String {
    format!(
        "idle_timeout = \"1h\"\nabsolute_lifetime = \"1d\"\nrefresh_margin = \"60s\"\non_refresh_failure = \"{policy}\""
    )
}

async fn signed_in(policy: &str) -> (TestApp, FakeOp) {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let app = spawn(Spawn::providers(auth0_toml(&fake, "a0", "")).session(&session(policy))).await;
    assert_eq!(fake_login(&app, "provider=a0").await.status(), 303);
    (app, fake)
}

#[tokio::test]
async fn no_refresh_happens_before_it_is_due() {
    let (app, fake) = signed_in("keep_until_expiry").await;
    for _ in 0..5 {
        assert_eq!(app.me().await.status(), 200);
    }
    app.clock.advance(Duration::from_secs(200));
    assert_eq!(app.me().await.status(), 200);
    assert_eq!(fake.refresh_calls(), 0);
}

#[tokio::test]
async fn a_due_refresh_stores_the_rotated_token_and_uses_it_next_time() {
    let (app, fake) = signed_in("keep_until_expiry").await;
    app.clock.advance(DUE);
    assert_eq!(app.me().await.status(), 200);
    assert_eq!(fake.refresh_calls(), 1);
    app.clock.advance(DUE);
    assert_eq!(app.me().await.status(), 200);
    assert_eq!(fake.refresh_calls(), 2);
    assert!(
        !fake.reuse_detected(),
        "the rotated token was used, never the old one"
    );
}

#[tokio::test]
async fn a_burst_across_two_instances_refreshes_once_and_never_reuses_a_token() {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let a =
        spawn(Spawn::providers(auth0_toml(&fake, "a0", "")).session(&session("keep_until_expiry")))
            .await;
    let b = spawn(
        Spawn::providers(auth0_toml(&fake, "a0", ""))
            .session(&session("keep_until_expiry"))
            .reuse_db(&a),
    )
    .await;
    let cookie = cookie_value(
        fake_login(&a, "provider=a0").await.headers(),
        "broker_session",
    )
    .unwrap();
    a.clock.advance(DUE);
    b.clock.advance(DUE);
    let client = browser();
    let mut requests = Vec::new();
    for i in 0..24 {
        let url = if i % 2 == 0 {
            a.url("/auth/me")
        } else {
            b.url("/auth/me")
        };
        let req = client
            .get(url)
            .header("cookie", format!("broker_session={cookie}"))
            .send();
        requests.push(tokio::spawn(req));
    }
    for r in requests {
        assert_eq!(r.await.unwrap().unwrap().status(), 200);
    }
    assert_eq!(fake.refresh_calls(), 1, "single-flight across instances");
    assert!(
        !fake.reuse_detected(),
        "Auth0 would have revoked the family"
    );
}

#[tokio::test]
async fn invalid_grant_ends_the_session_with_a_clean_401() {
    let (app, fake) = signed_in("keep_until_expiry").await;
    fake.behave(|b| b.refresh_error = Some("invalid_grant"));
    app.clock.advance(DUE);
    let res = app.me().await;
    assert_eq!(res.status(), 401);
    assert_eq!(json(res).await["login_url"], app.url("/auth/login"));
    fake.behave(|b| b.refresh_error = None);
    assert_eq!(app.me().await.status(), 401, "ended for good");
}

#[tokio::test]
async fn a_passing_failure_keeps_the_session_until_the_token_expires() {
    let (app, fake) = signed_in("keep_until_expiry").await;
    fake.behave(|b| b.refresh_status = 503);
    app.clock.advance(DUE);
    assert_eq!(
        app.me().await.status(),
        200,
        "kept: the provider token is still valid"
    );
    let calls = fake.refresh_calls();
    assert_eq!(app.me().await.status(), 200);
    assert_eq!(fake.refresh_calls(), calls, "no retry before the backoff");
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(app.me().await.status(), 200);
    assert!(fake.refresh_calls() > calls, "retried after the backoff");
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(
        app.me().await.status(),
        401,
        "ended once the provider token expired"
    );
}

#[tokio::test]
async fn a_passing_failure_recovers_when_the_provider_returns() {
    let (app, fake) = signed_in("keep_until_expiry").await;
    fake.behave(|b| b.refresh_status = 503);
    app.clock.advance(DUE);
    assert_eq!(app.me().await.status(), 200);
    fake.behave(|b| b.refresh_status = 200);
    app.clock.advance(Duration::from_secs(31));
    assert_eq!(app.me().await.status(), 200);
    app.clock.advance(Duration::from_secs(120));
    assert_eq!(
        app.me().await.status(),
        200,
        "the refreshed token carries the session on"
    );
}

#[tokio::test]
async fn the_end_policy_ends_the_session_on_a_passing_failure() {
    let (app, fake) = signed_in("end").await;
    fake.behave(|b| b.refresh_status = 503);
    app.clock.advance(DUE);
    assert_eq!(app.me().await.status(), 401);
}

#[tokio::test]
async fn cognito_refresh_without_a_new_refresh_token_keeps_the_old_one() {
    let fake = FakeOp::start_flavor(Flavor::Cognito).await;
    fake.behave(|b| b.rotate = false);
    let app =
        spawn(Spawn::providers(cognito_toml(&fake, "cog", "")).session(&session("end"))).await;
    assert_eq!(fake_login(&app, "provider=cog").await.status(), 303);
    app.clock.advance(DUE);
    assert_eq!(app.me().await.status(), 200);
    app.clock.advance(DUE);
    assert_eq!(
        app.me().await.status(),
        200,
        "the kept refresh token still works"
    );
    assert_eq!(fake.refresh_calls(), 2);
}

// ---- ID tokens in refresh answers (OpenID Connect Core §12.2) ------------------------------

/// Signs in at a generic provider (whose logout URL carries `id_token_hint`), lets a refresh run
/// that answers with `id_token`, and returns the claims of the ID token the logout URL then names.
async fn hint_after_refresh(id_token: RefreshIdToken) -> (serde_json::Value, TestApp) {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("corp")).session(&session("end"))).await;
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    fake.behave(|b| b.refresh_id_token = Some(id_token));
    app.clock.advance(DUE);
    assert_eq!(app.me().await.status(), 200, "the refresh itself succeeds");
    assert_eq!(fake.refresh_calls(), 1);
    let res = app
        .browser
        .post(app.url("/auth/logout"))
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    let url = json(res).await["logout_url"].as_str().unwrap().to_string();
    let hint = query_param(&url, "id_token_hint").expect("an id_token_hint");
    let payload = oidc_broker::crypto::b64url_decode(hint.split('.').nth(1).unwrap()).unwrap();
    (serde_json::from_slice(&payload).unwrap(), app)
}

/// Why the refreshed ID token was refused, as audited.
async fn refused_reason(app: &TestApp) -> String {
    let rows = app.state.store.audit_events(None, 100).await.unwrap();
    let row = rows
        .iter()
        .find(|r| r.event == "refresh.succeeded")
        .expect("the refresh is audited");
    let detail: serde_json::Value = serde_json::from_str(&row.detail).unwrap();
    detail["id_token_refused"]
        .as_str()
        .unwrap_or_else(|| panic!("no id_token_refused in {detail}"))
        .to_string()
}

fn tampered(edit: impl Fn(&mut serde_json::Value) + Send + Sync + 'static) -> RefreshIdToken {
    RefreshIdToken {
        sign_with: SignWith::Published,
        tamper: Some(std::sync::Arc::new(move |_, c| edit(c))),
    }
}

#[tokio::test]
async fn a_valid_refreshed_id_token_replaces_the_stored_one() {
    let (claims, app) = hint_after_refresh(RefreshIdToken {
        sign_with: SignWith::Published,
        tamper: None,
    })
    .await;
    assert_eq!(claims["refreshed"], true, "{claims}");
    let rows = app.state.store.audit_events(None, 100).await.unwrap();
    let row = rows
        .iter()
        .find(|r| r.event == "refresh.succeeded")
        .unwrap();
    assert!(!row.detail.contains("id_token_refused"), "{}", row.detail);
}

#[tokio::test]
async fn a_refreshed_id_token_for_another_subject_is_not_stored() {
    let (claims, app) = hint_after_refresh(tampered(|c| c["sub"] = json!("someone-else"))).await;
    assert_eq!(claims.get("refreshed"), None, "the login's ID token stays");
    assert_eq!(claims["sub"], "user-1");
    assert!(refused_reason(&app).await.contains("sub"));
}

#[tokio::test]
async fn a_refreshed_id_token_with_a_bad_signature_is_not_stored() {
    let (claims, app) = hint_after_refresh(RefreshIdToken {
        sign_with: SignWith::ForgedUnderPublishedKid,
        tamper: None,
    })
    .await;
    assert_eq!(claims.get("refreshed"), None);
    assert!(refused_reason(&app).await.contains("signature"));
}

#[tokio::test]
async fn a_refreshed_id_token_for_another_audience_is_not_stored() {
    let (claims, app) = hint_after_refresh(tampered(|c| c["aud"] = json!("other-client"))).await;
    assert_eq!(claims.get("refreshed"), None);
    assert!(refused_reason(&app).await.contains("aud"));
    let (claims, _) = hint_after_refresh(tampered(|c| {
        c["aud"] = json!([crate::fake_op::CLIENT_ID, "other-client"])
    }))
    .await;
    assert_eq!(claims.get("refreshed"), None, "an extra untrusted audience");
}

#[tokio::test]
async fn a_refreshed_id_token_from_another_issuer_or_expired_is_not_stored() {
    let (claims, _) =
        hint_after_refresh(tampered(|c| c["iss"] = json!("https://attacker.example"))).await;
    assert_eq!(claims.get("refreshed"), None);
    let (claims, app) = hint_after_refresh(tampered(|c| {
        let now = c["iat"].as_i64().unwrap();
        c["exp"] = json!(now - 3600);
    }))
    .await;
    assert_eq!(claims.get("refreshed"), None);
    assert!(refused_reason(&app).await.contains("expired"));
}
