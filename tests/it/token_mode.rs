//! Token mode: the one-time code, broker access tokens (verified by a third party from the JWKS
//! alone), broker refresh tokens bound to the session, rotation with grace and reuse detection,
//! and signing-key rotation.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::helpers::*;

const APP_PAGE: &str = "http://app.test:3000/after-login?tab=2";

/// Logs alice in with `mode=token` and returns the one-time code from the landing URL.
async fn token_login(app: &TestApp) -> String {
    let res = app
        .dev_login_query(
            "alice",
            &format!("provider=dev&mode=token&return_to={}", urlencode(APP_PAGE)),
        )
        .await;
    assert_eq!(res.status(), 303);
    let landing = location(res.headers());
    assert!(
        landing.starts_with("http://app.test:3000/after-login?tab=2&code="),
        "{landing}"
    );
    assert_eq!(
        res.headers()
            .get("referrer-policy")
            .and_then(|v| v.to_str().ok()),
        Some("no-referrer")
    );
    query_param(&landing, "code").unwrap()
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn trade(app: &TestApp, code: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/auth/token"))
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
}

/// Alice's tokens from a token-mode login (`POST /auth/token`), checked never to be cached.
pub async fn tokens(app: &TestApp) -> Value {
    let code = token_login(app).await;
    let res = trade(app, &code).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    json(res).await
}

async fn refresh(app: &TestApp, refresh_token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/auth/token/refresh"))
        .json(&json!({ "refresh_token": refresh_token }))
        .send()
        .await
        .unwrap()
}

async fn me_bearer(app: &TestApp, access_token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/auth/me"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
}

fn token_app(tokens: &str) -> Spawn {
    Spawn::providers(format!(
        "[providers.dev]\nkind = \"dev\"\n[tokens]\n{tokens}"
    ))
    .session("idle_timeout = \"2h\"\nabsolute_lifetime = \"7d\"\n")
}

#[tokio::test]
async fn token_mode_login_lands_with_a_code_that_trades_once_for_tokens() {
    let app = spawn(dev_provider()).await;
    let code = token_login(&app).await;
    let res = trade(&app, &code).await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert!(body["refresh_token"].as_str().unwrap().len() >= 40);
    assert_eq!(body["user"]["email"], "alice@example.test");
    assert!(body["user"]["id"].as_str().unwrap().starts_with("usr_"));

    // Single use.
    let again = trade(&app, &code).await;
    assert_eq!(again.status(), 400);
    let err = json(again).await;
    assert_eq!(err["error"], "invalid_grant");
    assert!(err["login_url"].is_string());
    assert!(
        !err.to_string().contains(&code),
        "the code is echoed: {err}"
    );
}

#[tokio::test]
async fn a_login_code_expires_after_its_ttl() {
    let app = spawn(dev_provider()).await;
    let code = token_login(&app).await;
    app.clock.advance(Duration::from_secs(61));
    let res = trade(&app, &code).await;
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_grant");
}

#[tokio::test]
async fn unknown_codes_bad_bodies_and_modes_are_clear_errors() {
    let app = spawn(dev_provider()).await;
    let res = trade(&app, "not-a-code").await;
    assert_eq!(res.status(), 400);
    let res = reqwest::Client::new()
        .post(app.url("/auth/token"))
        .body("{\"code\":")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(json(res).await["error"], "invalid_request");
    let res = app.get("/auth/login?provider=dev&mode=implicit").await;
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn a_form_encoded_code_is_accepted_too() {
    let app = spawn(dev_provider()).await;
    let code = token_login(&app).await;
    let res = reqwest::Client::new()
        .post(app.url("/auth/token"))
        .form(&[("code", code.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn a_bearer_token_reads_me_and_logs_out_without_a_cookie() {
    let app = spawn(dev_provider()).await;
    let t = tokens(&app).await;
    let access = t["access_token"].as_str().unwrap();
    let res = me_bearer(&app, access).await;
    assert_eq!(res.status(), 200);
    let me = json(res).await;
    assert_eq!(me["user"]["email"], "alice@example.test");
    assert_eq!(me["user"]["id"], t["user"]["id"]);

    // No cookie, no Origin, no X-CSRF: a bearer token is not something a cross-site form can send.
    let res = reqwest::Client::new()
        .post(app.url("/auth/logout"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(json(res).await["logout_url"].is_string());

    assert_eq!(me_bearer(&app, access).await.status(), 401);
    let res = refresh(&app, t["refresh_token"].as_str().unwrap()).await;
    assert_eq!(res.status(), 401);
    assert_eq!(json(res).await["error"], "invalid_grant");
}

#[tokio::test]
async fn the_access_token_verifies_with_the_jwks_alone() {
    let app = spawn(dev_provider()).await;
    let t = tokens(&app).await;
    let access = t["access_token"].as_str().unwrap();
    let me = json(me_bearer(&app, access).await).await;

    let res = reqwest::get(app.url("/.well-known/jwks.json"))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let jwks = json(res).await;
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.alg, Algorithm::RS256);
    let kid = header.kid.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the token's kid is published");
    assert!(jwk.get("d").is_none(), "a private part is published");
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_issuer(&[&app.base]);
    v.set_audience(&[&app.base]);
    // The test clock runs at real time here, so the library's own exp check applies.
    let claims = jsonwebtoken::decode::<Value>(access, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(claims["sub"], me["user"]["id"]);
    assert_eq!(claims["sid"], me["session"]["handle"]);
    assert_eq!(claims["email"], "alice@example.test");
    assert_eq!(claims["provider"], "dev");
    assert_eq!(claims["groups"], json!(["admins", "staff"]));
    let ttl = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(ttl, 300);
}

#[tokio::test]
async fn forged_expired_and_foreign_access_tokens_are_refused() {
    let app = spawn(dev_provider()).await;
    let t = tokens(&app).await;
    let access = t["access_token"].as_str().unwrap().to_string();
    let header = jsonwebtoken::decode_header(&access).unwrap();
    let parts: Vec<&str> = access.split('.').collect();
    let claims: Value =
        serde_json::from_slice(&oidc_broker::crypto::b64url_decode(parts[1]).unwrap()).unwrap();

    // Same kid, another key.
    let other = oidc_broker::jose::RsaSigner::generate(header.kid.clone().unwrap()).unwrap();
    let forged = other.sign(&claims).unwrap();
    // alg none.
    let none = format!(
        "{}.{}.",
        oidc_broker::crypto::b64url(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    // Claims changed under the real signature.
    let mut tampered_claims = claims.clone();
    tampered_claims["sub"] = json!("usr_someone_else");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        oidc_broker::crypto::b64url(tampered_claims.to_string().as_bytes()),
        parts[2]
    );
    // Signed by the broker's own key, with the wrong audience or issuer.
    let state = &app.state;
    let sign = |mut c: Value, key: &str, value: &str| {
        c[key] = json!(value);
        let c: oidc_broker::tokens::broker_jwt::AccessClaims = serde_json::from_value(c).unwrap();
        async move {
            state
                .keys
                .sign(&state.store, &state.vault, &state.config.tokens, &c)
                .await
                .unwrap()
        }
    };
    let wrong_aud = sign(claims.clone(), "aud", "https://other-api.example").await;
    let wrong_iss = sign(claims.clone(), "iss", "https://evil.example").await;

    for (what, token) in [
        ("another key", forged),
        ("alg none", none),
        ("tampered claims", tampered),
        ("wrong audience", wrong_aud),
        ("wrong issuer", wrong_iss),
        ("garbage", "abc.def.ghi".to_string()),
    ] {
        let res = me_bearer(&app, &token).await;
        assert_eq!(res.status(), 401, "{what} was accepted");
        assert_eq!(
            res.headers()["www-authenticate"],
            "Bearer error=\"invalid_token\"",
            "{what}"
        );
        assert_eq!(json(res).await["error"], "invalid_token", "{what}");
    }
    assert_eq!(me_bearer(&app, &access).await.status(), 200);

    // Expired: past exp by the broker's clock.
    app.clock.advance(Duration::from_secs(301));
    let res = me_bearer(&app, &access).await;
    assert_eq!(res.status(), 401);
    assert_eq!(json(res).await["error"], "invalid_token");
}

#[tokio::test]
async fn without_rotation_the_first_refresh_token_keeps_working_as_weweb_resends_it() {
    let app = spawn(dev_provider()).await;
    let t = tokens(&app).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let mut seen = vec![t["access_token"].as_str().unwrap().to_string()];
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(2));
        let res = refresh(&app, rt).await;
        assert_eq!(res.status(), 200);
        let body = json(res).await;
        assert_eq!(body["refresh_token"], rt);
        let access = body["access_token"].as_str().unwrap().to_string();
        assert!(!seen.contains(&access));
        assert_eq!(me_bearer(&app, &access).await.status(), 200);
        seen.push(access);
    }
}

#[tokio::test]
async fn a_refresh_token_never_outlives_the_sessions_idle_timeout() {
    let app =
        spawn(dev_provider().session("idle_timeout = \"2m\"\nabsolute_lifetime = \"1h\"\n")).await;
    let t = tokens(&app).await;
    // The access token does not outlive the idle deadline either.
    assert!(t["expires_in"].as_i64().unwrap() <= 120, "{t}");
    let rt = t["refresh_token"].as_str().unwrap();
    app.clock.advance(Duration::from_secs(90));
    assert_eq!(refresh(&app, rt).await.status(), 200, "use keeps it alive");
    app.clock.advance(Duration::from_secs(90));
    assert_eq!(refresh(&app, rt).await.status(), 200);
    app.clock.advance(Duration::from_secs(180));
    assert_eq!(refresh(&app, rt).await.status(), 401, "idle timeout");
}

#[tokio::test]
async fn a_refresh_token_never_outlives_the_absolute_lifetime() {
    let app =
        spawn(dev_provider().session("idle_timeout = \"20m\"\nabsolute_lifetime = \"30m\"\n"))
            .await;
    let t = tokens(&app).await;
    let rt = t["refresh_token"].as_str().unwrap();
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(9 * 60));
        assert_eq!(refresh(&app, rt).await.status(), 200);
    }
    app.clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(refresh(&app, rt).await.status(), 401);
}

#[tokio::test]
async fn a_cookie_logout_kills_the_refresh_token_of_the_same_session() {
    let app = spawn(dev_provider()).await;
    let t = tokens(&app).await;
    let res = app
        .browser
        .post(app.url("/auth/logout"))
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        refresh(&app, t["refresh_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn rotation_accepts_the_previous_token_within_the_grace_and_ends_the_session_on_reuse() {
    let app = spawn(token_app(
        "rotate_refresh_tokens = true\nrotation_grace = \"30s\"\n",
    ))
    .await;
    let t = tokens(&app).await;
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let res = refresh(&app, &rt1).await;
    assert_eq!(res.status(), 200);
    let rt2 = json(res).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rt1, rt2);

    // A retry with the previous token, within the grace window, is fine: it gets the same
    // successor, not a second chain.
    app.clock.advance(Duration::from_secs(10));
    let res = refresh(&app, &rt1).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["refresh_token"], rt2.as_str());

    // After it, the previous token is a copy: the session ends, and every token with it.
    app.clock.advance(Duration::from_secs(60));
    let res = refresh(&app, &rt1).await;
    assert_eq!(res.status(), 401);
    assert_eq!(refresh(&app, &rt2).await.status(), 401);
    assert_eq!(app.me().await.status(), 401, "the cookie session ended too");
}

#[tokio::test]
async fn signing_keys_rotate_without_breaking_tokens_in_flight() {
    let app = spawn(token_app("signing_key_lifetime = \"1h\"\n")).await;
    let t = tokens(&app).await;
    let rt = t["refresh_token"].as_str().unwrap().to_string();
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let first_kid = kid(t["access_token"].as_str().unwrap());
    let published = |jwks: &Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect()
    };
    let jwks = || async {
        json(
            reqwest::get(app.url("/.well-known/jwks.json"))
                .await
                .unwrap(),
        )
        .await
    };
    assert_eq!(published(&jwks().await), vec![first_kid.clone()]);

    // Shortly before the key's end, its successor is published but does not sign yet.
    app.clock.advance(Duration::from_secs(57 * 60));
    let res = json(refresh(&app, &rt).await).await;
    let in_flight = res["access_token"].as_str().unwrap().to_string();
    assert_eq!(kid(&in_flight), first_kid);
    let keys = published(&jwks().await);
    assert_eq!(keys.len(), 2, "{keys:?}");

    // Past the key's end: the successor signs, and the old key's tokens still verify until they expire.
    app.clock.advance(Duration::from_secs(4 * 60));
    let res = json(refresh(&app, &rt).await).await;
    let fresh = res["access_token"].as_str().unwrap().to_string();
    assert_ne!(kid(&fresh), first_kid);
    assert_eq!(me_bearer(&app, &in_flight).await.status(), 200);
    assert_eq!(me_bearer(&app, &fresh).await.status(), 200);
    assert!(published(&jwks().await).contains(&first_kid));

    // Once nothing it signed can be alive, the old key is no longer published.
    app.clock.advance(Duration::from_secs(10 * 60));
    let _ = json(refresh(&app, &rt).await).await;
    assert!(!published(&jwks().await).contains(&first_kid));
}

#[tokio::test]
async fn every_instance_verifies_tokens_another_instance_signed() {
    // Behind one load balancer both instances have one audience (and one public URL).
    let a = spawn(token_app("audience = \"https://api.test\"\n")).await;
    let b = spawn(token_app("audience = \"https://api.test\"\n").reuse_db(&a)).await;
    let t = tokens(&a).await;
    let access = t["access_token"].as_str().unwrap();
    let s = &b.state;
    let claims = s
        .keys
        .verify(
            &s.store,
            &s.vault,
            &s.config.tokens,
            &a.base,
            access,
            // A moment later than B last read the keys (at its start, before A made its key).
            s.clock.now().unix_timestamp() + 2,
        )
        .await
        .expect("instance B learns instance A's key from the shared store");
    assert_eq!(claims.sub, t["user"]["id"].as_str().unwrap());
}

#[tokio::test]
async fn a_code_from_a_login_with_a_pkce_challenge_is_traded_only_with_its_verifier() {
    let app = spawn(dev_provider()).await;
    let verifier = oidc_broker::crypto::random_token(40);
    let challenge = oidc_broker::crypto::pkce_challenge(&verifier);
    let query = format!(
        "provider=dev&mode=token&code_challenge={challenge}&code_challenge_method=S256&return_to={}",
        urlencode(APP_PAGE)
    );
    let login = async || {
        let res = app.dev_login_query("alice", &query).await;
        query_param(&location(res.headers()), "code").unwrap()
    };
    let post = |body: Value| {
        let url = app.url("/auth/token");
        async move {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    // Without the verifier (a code planted in someone else's browser): refused, and burnt.
    let code = login().await;
    assert_eq!(post(json!({ "code": code })).await, 400);
    assert_eq!(
        post(json!({ "code": code, "code_verifier": verifier })).await,
        400
    );
    // With a wrong one: refused.
    let code = login().await;
    let wrong = oidc_broker::crypto::random_token(40);
    assert_eq!(
        post(json!({ "code": code, "code_verifier": wrong })).await,
        400
    );
    // With its own: tokens.
    let code = login().await;
    assert_eq!(
        post(json!({ "code": code, "code_verifier": verifier })).await,
        200
    );

    // A challenge outside token mode, or of another method, is a clear error.
    let res = app
        .get(&format!(
            "/auth/login?provider=dev&code_challenge={challenge}"
        ))
        .await;
    assert_eq!(res.status(), 400);
    let res = app
        .get(&format!(
            "/auth/login?provider=dev&mode=token&code_challenge={challenge}&code_challenge_method=plain"
        ))
        .await;
    assert_eq!(res.status(), 400);
}
