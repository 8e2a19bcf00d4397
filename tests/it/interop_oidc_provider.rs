//! Interop with panva's oidc-provider, a certified OpenID Provider, through its own pages.

use crate::helpers::*;
use crate::peers::{free_port, start_node};

const CLIENT_ID: &str = "broker-interop";
const CLIENT_SECRET: &str = "interop-client-secret";

#[tokio::test]
async fn login_through_oidc_provider_pages_reaches_me() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let port = free_port();
    let _op = start_node(
        "oidc-provider.mjs",
        &[
            ("PORT", port.to_string()),
            ("CLIENT_ID", CLIENT_ID.into()),
            ("CLIENT_SECRET", CLIENT_SECRET.into()),
            ("REDIRECT_URI", format!("{base}/auth/callback/op")),
        ],
    )
    .await;
    let app = spawn_on(
        listener,
        Spawn::providers(format!(
            "[providers.op]\nkind = \"oidc\"\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n"
        )),
    )
    .await;

    let authorize = app
        .start_login("provider=op&return_to=http://app.test:3000/home")
        .await;
    // The provider's own pages: its login form, then its consent form.
    let mut url = authorize;
    let callback = loop {
        let res = app.browser.get(&url).send().await.unwrap();
        if res.status().is_redirection() {
            let next = url::Url::parse(&url)
                .unwrap()
                .join(&location(res.headers()))
                .unwrap()
                .to_string();
            if next.starts_with(&app.url("/auth/callback/op")) {
                break next;
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
        url = url::Url::parse(&form.action)
            .unwrap()
            .join(&location(res.headers()))
            .unwrap()
            .to_string();
    };
    assert!(
        query_param(&callback, "iss").is_some(),
        "oidc-provider sends the RFC 9207 iss parameter"
    );
    let res = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(location(res.headers()), "http://app.test:3000/home");

    let me = json(app.me().await).await;
    assert_eq!(me["user"]["provider"], "op");
    assert_eq!(me["user"]["subject"], "ada");
    // From the userinfo endpoint: oidc-provider keeps scope claims out of the ID token in the code flow.
    assert_eq!(me["user"]["email"], "ada@example.test");
    assert_eq!(me["user"]["email_verified"], true);
    assert_eq!(me["user"]["name"], "User ada");
    assert_eq!(me["user"]["family_name"], "ada");
}
