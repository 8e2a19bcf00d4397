//! Interop with panva's oidc-provider, a certified OpenID Provider, through its own pages: login,
//! refresh with rotation, revocation, RP-initiated logout and back-channel logout sent by the OP.

use serde_json::Value;

use crate::helpers::*;
use crate::peers::{NodePeer, free_port, start_node};

const CLIENT_ID: &str = "broker-interop";
const CLIENT_SECRET: &str = "interop-client-secret";

struct Interop {
    app: TestApp,
    issuer: String,
    key: String,
    _op: NodePeer,
}

async fn start(session: &str) -> Interop {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let port = free_port();
    let op = start_node(
        "oidc-provider.mjs",
        &[
            ("PORT", port.to_string()),
            ("CLIENT_ID", CLIENT_ID.into()),
            ("CLIENT_SECRET", CLIENT_SECRET.into()),
            ("REDIRECT_URI", format!("{base}/auth/callback/op")),
            (
                "POST_LOGOUT_REDIRECT_URI",
                format!("{base}/auth/logged-out"),
            ),
            (
                "BACKCHANNEL_LOGOUT_URI",
                format!("{base}/auth/backchannel-logout/op"),
            ),
        ],
    )
    .await;
    let issuer = format!("http://127.0.0.1:{port}");
    let key = oidc_broker::tokens::seal::generate_key().unwrap();
    let app = spawn_on(
        listener,
        Spawn::providers(format!(
            "[providers.op]\nkind = \"oidc\"\nissuer = \"{issuer}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n\
             [keys]\ncurrent = \"t1\"\n[keys.ring]\nt1 = \"{key}\"\n"
        ))
        .session(session),
    )
    .await;
    Interop {
        app,
        issuer,
        key,
        _op: op,
    }
}

/// Walks the OP's pages from `url` (its login form, then consent, or its logout confirmation)
/// until it sends the browser back to the broker; returns that URL.
async fn through_op_pages(app: &TestApp, mut url: String) -> String {
    for _ in 0..10 {
        let res = app.browser.get(&url).send().await.unwrap();
        if res.status().is_redirection() {
            let next = url::Url::parse(&url)
                .unwrap()
                .join(&location(res.headers()))
                .unwrap()
                .to_string();
            if next.starts_with(&app.base) {
                return next;
            }
            url = next;
            continue;
        }
        let page = res.text().await.unwrap();
        let mut form = Form::parse(&page, &url);
        if form
            .fields
            .iter()
            .any(|(k, v)| k == "prompt" && v == "login")
        {
            form.set("login", "ada");
            form.set("password", "any");
        }
        if form.action.contains("/session/end") {
            form.set("logout", "yes");
        }
        let res = app
            .browser
            .post(&form.action)
            .form(&form.fields)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_redirection(),
            "{}: {}",
            res.status(),
            res.text().await.unwrap()
        );
        let next = url::Url::parse(&form.action)
            .unwrap()
            .join(&location(res.headers()))
            .unwrap()
            .to_string();
        if next.starts_with(&app.base) {
            return next;
        }
        url = next;
    }
    panic!("the OP never sent the browser back to the broker");
}

async fn login(app: &TestApp) {
    let authorize = app
        .start_login("provider=op&return_to=http://app.test:3000/home")
        .await;
    let callback = through_op_pages(app, authorize).await;
    assert!(
        query_param(&callback, "iss").is_some(),
        "oidc-provider sends the RFC 9207 iss parameter"
    );
    let res = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(location(res.headers()), "http://app.test:3000/home");
}

/// The tokens the broker keeps for a session, opened with the test's key.
async fn stored_tokens(i: &Interop, handle: &str) -> Value {
    let row = i
        .app
        .state
        .store
        .indexed_session(handle)
        .await
        .unwrap()
        .unwrap();
    let sealed = row.tokens.unwrap();
    let ring = oidc_broker::tokens::seal::KeyRing::new(
        "t1",
        &[(
            "t1".to_string(),
            oidc_broker::config::decode_key(&i.key).unwrap(),
        )]
        .into_iter()
        .collect(),
    )
    .unwrap();
    serde_json::from_slice(&ring.open(&sealed, handle).unwrap()).unwrap()
}

async fn refresh_at_op(i: &Interop, refresh_token: &str) -> reqwest::StatusCode {
    browser()
        .post(format!("{}/token", i.issuer))
        .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn login_through_oidc_provider_pages_reaches_me() {
    let i = start("idle_timeout = \"30m\"").await;
    login(&i.app).await;
    let me = json(i.app.me().await).await;
    assert_eq!(me["user"]["provider"], "op");
    assert_eq!(me["user"]["subject"], "ada");
    // From the userinfo endpoint: oidc-provider keeps scope claims out of the ID token in the code flow.
    assert_eq!(me["user"]["email"], "ada@example.test");
    assert_eq!(me["user"]["email_verified"], true);
    assert_eq!(me["user"]["name"], "User ada");
    assert_eq!(me["user"]["family_name"], "ada");
}

#[tokio::test]
async fn refresh_rotation_revocation_rp_logout_and_backchannel_logout_with_oidc_provider() {
    let i =
        start("idle_timeout = \"3h\"\nabsolute_lifetime = \"1d\"\nrefresh_margin = \"60s\"").await;
    let app = &i.app;

    // Back-channel logout sent by the OP itself (before the broker's clock is moved: the OP keeps
    // real time and the broker checks the logout token's iat): end the OP session in this browser.
    login(app).await;
    let end = format!(
        "{}/session/end?client_id={CLIENT_ID}&post_logout_redirect_uri={}",
        i.issuer,
        app.url("/auth/logged-out")
    );
    let back = through_op_pages(app, end).await;
    assert_eq!(back, app.url("/auth/logged-out"));
    assert_eq!(
        app.me().await.status(),
        401,
        "the OP's back-channel logout ended the broker session"
    );

    login(app).await;
    // Refresh with rotation: the broker refreshes when due and stores the rotated token.
    let handle = json(app.me().await).await["session"]["handle"]
        .as_str()
        .unwrap()
        .to_string();
    let first = stored_tokens(&i, &handle).await;
    let r1 = first["refresh_token"].as_str().unwrap().to_string();
    let lifetime =
        first["expires_at"].as_i64().unwrap() - time::OffsetDateTime::now_utc().unix_timestamp();
    app.clock.advance(std::time::Duration::from_secs(
        u64::try_from(lifetime - 30).unwrap(),
    ));
    assert_eq!(app.me().await.status(), 200);
    let r2 = stored_tokens(&i, &handle).await["refresh_token"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(
        r1, r2,
        "oidc-provider rotated the refresh token and the broker kept the new one"
    );

    // Broker logout: revocation of the rotated token at the OP, then the RP-initiated logout round trip.
    let rt = r2;
    let res = app
        .browser
        .post(app.url("/auth/logout"))
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    let logout_url = json(res).await["logout_url"].as_str().unwrap().to_string();
    assert!(
        logout_url.starts_with(&format!("{}/session/end?", i.issuer)),
        "{logout_url}"
    );
    assert!(query_param(&logout_url, "id_token_hint").is_some());
    assert_eq!(
        refresh_at_op(&i, &rt).await,
        400,
        "the revoked refresh token fails at the OP"
    );
    let back = through_op_pages(app, logout_url).await;
    assert_eq!(back, app.url("/auth/logged-out"));
    assert!(
        app.browser
            .get(&back)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .contains("signed out")
    );
    assert_eq!(app.me().await.status(), 401);
}
