//! Interop with the real Firebase Auth emulator: sign-up in the emulator, then password login and
//! ID-token hand-off through the broker, refresh through securetoken, and forged tokens refused.

use serde_json::{Value, json};

use crate::helpers::*;
use crate::peers::start_firebase_emulator;

const API_KEY: &str = "emulator-api-key";

/// An Identity Toolkit REST call, as the Firebase SDK in a frontend would make it.
async fn call(rest: &reqwest::Client, url: String, body: &Value) -> Value {
    rest.post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn firebase_emulator_sign_up_password_login_handoff_refresh_and_forgery() {
    let emu = start_firebase_emulator().await;
    let toolkit = |method: &str| {
        format!(
            "http://{}/identitytoolkit.googleapis.com/v1/accounts:{method}?key={API_KEY}",
            emu.host
        )
    };
    let rest = reqwest::Client::new();

    // Sign-up happens in Firebase itself (as the Firebase SDK would do it).
    let ada =
        json!({"email": "ada@example.test", "password": "secret-123", "returnSecureToken": true});
    let signup: Value = call(&rest, toolkit("signUp"), &ada).await;
    let uid = signup["localId"].as_str().unwrap().to_string();

    let app = spawn(Spawn::providers(format!(
        "[providers.fb]\nkind = \"firebase\"\nproject_id = \"{}\"\napi_key = \"{API_KEY}\"\nemulator_host = \"{}\"\n",
        emu.project, emu.host
    )))
    .await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    // Password login through the broker's own form.
    let page = app
        .get("/auth/login?provider=fb")
        .await
        .text()
        .await
        .unwrap();
    let mut form = Form::parse(&page, &app.url("/auth/login"));
    form.set("email", "ada@example.test");
    form.set("password", "wrong-password");
    let res = app
        .browser
        .post(&form.action)
        .header("origin", app.base.clone())
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "a wrong password at the emulator is a clear refusal"
    );
    form.set("password", "secret-123");
    let res = app
        .browser
        .post(&form.action)
        .header("origin", app.base.clone())
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let me = json(app.me().await).await;
    assert_eq!(me["user"]["subject"], uid.as_str());
    assert_eq!(me["user"]["email"], "ada@example.test");
    assert_eq!(me["user"]["provider_kind"], "firebase");

    // Hand-off of an ID token the Firebase SDK obtained, in a second browser.
    let signin: Value = call(&rest, toolkit("signInWithPassword"), &ada).await;
    let id_token = signin["idToken"].as_str().unwrap().to_string();
    let refresh_token = signin["refreshToken"].as_str().unwrap().to_string();
    let other = browser();
    let res = other
        .post(app.url("/auth/firebase/fb/session"))
        .header("x-csrf", "1")
        .json(&json!({"id_token": id_token}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(
        json(app.me_with(&other).await).await["user"]["id"],
        me["user"]["id"],
        "the same local user"
    );

    // Refresh through securetoken (its expires_in is a string).
    let config = oidc_broker::config::from_toml_str(
        &format!("{DEV_ENV}[providers.fb]\nkind = \"firebase\"\nproject_id = \"{}\"\napi_key = \"{API_KEY}\"\nemulator_host = \"{}\"\n", emu.project, emu.host),
        Vec::new(),
    )
    .unwrap();
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
        config.providers["fb"].firebase.as_ref().unwrap(),
        http,
        std::sync::Arc::new(oidc_broker::clock::SystemClock),
    );
    let refreshed = client.refresh(&refresh_token).await.unwrap();
    assert_eq!(refreshed.expires_in, Some(3600));
    let claims = client
        .verify_id_token(refreshed.id_token.as_deref().unwrap(), None)
        .await
        .unwrap();
    assert_eq!(claims["sub"], uid.as_str());
    assert_eq!(
        client
            .refresh("not-a-refresh-token")
            .await
            .unwrap_err()
            .code,
        "invalid_grant"
    );

    // Forgeries: the emulator would take these; the broker does not.
    let parts: Vec<&str> = id_token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&oidc_broker::crypto::b64url_decode(parts[1]).unwrap()).unwrap();
    let forge = |header: &str, claims: &Value, sig: &str| {
        format!(
            "{}.{}.{sig}",
            oidc_broker::crypto::b64url(header.as_bytes()),
            oidc_broker::crypto::b64url(claims.to_string().as_bytes())
        )
    };
    let signed_junk = forge(
        r#"{"alg":"RS256","kid":"x","typ":"JWT"}"#,
        &payload,
        "c2lnbmF0dXJl",
    );
    payload["aud"] = json!("demo-other");
    let other_project = forge(r#"{"alg":"none","typ":"JWT"}"#, &payload, "");
    payload["aud"] = json!(emu.project);
    payload["exp"] = json!(1000);
    let expired = forge(r#"{"alg":"none","typ":"JWT"}"#, &payload, "");
    for (what, token) in [
        ("RS256 with a junk signature", signed_junk),
        ("another project", other_project),
        ("expired", expired),
    ] {
        let victim = browser();
        let res = victim
            .post(app.url("/auth/firebase/fb/session"))
            .header("x-csrf", "1")
            .json(&json!({"id_token": token}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{what}");
        assert_eq!(json(res).await["error"], "invalid_id_token", "{what}");
        assert_eq!(app.me_with(&victim).await.status(), 401, "{what}");
    }

    // Logout revokes the user's Firebase sessions (validSince, with the emulator's admin access):
    // an ID token issued before it stops verifying at Firebase.
    let before: Value = call(&rest, toolkit("signInWithPassword"), &ada).await;
    let lookup = |token: String| {
        let rest = rest.clone();
        let url = toolkit("lookup");
        async move {
            rest.post(url)
                .json(&json!({"idToken": token}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(
        lookup(before["idToken"].as_str().unwrap().to_string())
            .await
            .status(),
        200
    );
    // validSince has one-second resolution: let the token's second pass first.
    let ms = time::OffsetDateTime::now_utc().millisecond();
    tokio::time::sleep(std::time::Duration::from_millis(u64::from(1000 - ms) + 50)).await;
    let res = other
        .post(app.url("/auth/logout"))
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        json(res).await["logout_url"],
        app.url("/auth/logged-out"),
        "Firebase has no logout page of its own"
    );
    let res = lookup(before["idToken"].as_str().unwrap().to_string()).await;
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains("TOKEN_EXPIRED"));
}
