//! The bearer path's memory: access tokens that verified, and the session each handle names, are
//! remembered between requests — and never let a token through once its session has ended, its
//! signing key is withdrawn, or it is presented for another audience or issuer.

use crate::helpers::*;
use crate::token_mode::tokens;

async fn bearer_get(app: &TestApp, path: &str, access_token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
}

async fn get_bearer(app: &TestApp, path: &str, access_token: &str) -> u16 {
    bearer_get(app, path, access_token).await.status().as_u16()
}

/// The bearer path remembers tokens that verified and the session each handle names; neither may
/// let a token through once its session has ended, or once its signing key is no longer published.
#[tokio::test]
async fn a_remembered_token_never_outlives_its_session_or_its_key() {
    let app = spawn(dev_provider()).await;
    let t = tokens(&app).await;
    let access = t["access_token"].as_str().unwrap();
    for path in ["/auth/me", "/auth/check", "/auth/session", "/auth/me"] {
        assert_eq!(get_bearer(&app, path, access).await, 200, "{path}");
    }
    // Ended from elsewhere (an operator, a back-channel logout): not through this token.
    let handle = json(bearer_get(&app, "/auth/me", access).await).await["session"]["handle"]
        .as_str()
        .unwrap()
        .to_string();
    let row = app
        .state
        .store
        .indexed_session(&handle)
        .await
        .unwrap()
        .unwrap();
    app.state.end_session(&row).await.unwrap();
    for path in ["/auth/me", "/auth/check", "/auth/session", "/auth/me"] {
        assert_eq!(get_bearer(&app, path, access).await, 401, "{path}");
    }

    // A second session's token, remembered, then its key withdrawn from the store.
    let t = tokens(&app).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(get_bearer(&app, "/auth/me", access).await, 200);
    sqlx::query("DELETE FROM signing_keys")
        .execute(app.state.store.pool())
        .await
        .unwrap();
    let s = &app.state;
    s.keys
        .refresh(
            &s.store,
            &s.vault,
            &s.config.tokens,
            s.clock.now().unix_timestamp(),
        )
        .await
        .unwrap();
    assert_eq!(get_bearer(&app, "/auth/me", access).await, 401);
    assert_eq!(get_bearer(&app, "/auth/check", access).await, 401);
}

/// A token remembered as verified for one audience is not taken for another.
#[tokio::test]
async fn a_remembered_token_holds_only_for_the_audience_it_verified_for() {
    let app = spawn(dev_provider()).await;
    let t = tokens(&app).await;
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(get_bearer(&app, "/auth/me", access).await, 200);
    let s = &app.state;
    let mut other = s.config.tokens.clone();
    other.audience = "https://other-api.example".into();
    let now = s.clock.now().unix_timestamp();
    let verify = |tokens: &oidc_broker::config::TokensConfig, issuer: &str| {
        let (tokens, issuer) = (tokens.clone(), issuer.to_string());
        async move {
            s.keys
                .verify(&s.store, &s.vault, &tokens, &issuer, access, now)
                .await
        }
    };
    assert!(verify(&s.config.tokens, &app.base).await.is_ok());
    assert!(verify(&other, &app.base).await.is_err());
    assert!(
        verify(&s.config.tokens, "https://evil.example")
            .await
            .is_err()
    );
}
