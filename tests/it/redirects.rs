//! Caller-chosen redirect targets: whatever `return_to` a caller sends, the browser is only ever
//! sent to the broker's origin or an allowed one, judged as the browser will read the URL.

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use crate::fake_firebase::FakeFirebase;
use crate::helpers::*;

/// The test broker's one allowed origin besides its own.
const APP_ORIGIN: &str = "http://app.test:3000";

/// Values that a prefix check ("starts with one slash", "starts with an allowed origin") accepts
/// but a browser reads as another host.
const HOSTILE: &[&str] = &[
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r/evil.example/x",
    "/\t\\evil.example",
    "/ /evil.example",
    "//evil.example/x",
    "/\\evil.example",
    "\\/evil.example",
    "\t//evil.example",
    "https:evil.example",
    "http:/\\evil.example",
    "http://app.test:3000\\@evil.example/",
    "http://app.test:3000@evil.example/",
    "http://evil.example#@app.test:3000/",
    "http://app.test:3000.evil.example/",
    "http://u:p@app.test:3000/",
    "javascript://app.test:3000/%0aalert(1)",
    "/a/../..//evil.example",
    "/%2e%2e//evil.example",
];

fn login_query(return_to: &str, token_mode: bool) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    q.append_pair("provider", "dev");
    if token_mode {
        q.append_pair("mode", "token");
    }
    q.append_pair("return_to", return_to).finish()
}

/// The origin the browser reaches from a `Location` header sent by the callback.
fn landing_origin(app: &TestApp, location: &str) -> String {
    let base = url::Url::parse(&app.url("/auth/callback/dev")).unwrap();
    base.join(location).unwrap().origin().ascii_serialization()
}

fn is_allowed(app: &TestApp, origin: &str) -> bool {
    origin == app.base || origin == APP_ORIGIN
}

#[tokio::test]
async fn a_return_to_that_a_browser_reads_as_another_host_is_refused() {
    let app = spawn(dev_provider()).await;
    for bad in HOSTILE {
        for token_mode in [false, true] {
            let res = app
                .get(&format!("/auth/login?{}", login_query(bad, token_mode)))
                .await;
            assert_eq!(res.status(), 400, "{bad:?}");
            assert!(
                res.headers().get("set-cookie").is_none(),
                "a refused login start stores nothing: {bad:?}"
            );
            assert_eq!(json(res).await["error"], "return_to_not_allowed", "{bad:?}");
        }
    }
}

#[tokio::test]
async fn an_overlong_return_to_is_refused_with_its_own_error() {
    let app = spawn(dev_provider()).await;
    let long = format!("/{}", "a".repeat(4096));
    let res = app
        .get(&format!("/auth/login?{}", login_query(&long, false)))
        .await;
    assert_eq!(res.status(), 400);
    let body = json(res).await;
    assert_eq!(body["error"], "return_to_too_long");
    assert!(body["message"].as_str().unwrap().contains("2048"), "{body}");
}

#[tokio::test]
async fn the_firebase_form_judges_return_to_the_same_way() {
    let fake = FakeFirebase::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("fb"))).await;
    for bad in [
        "/\t/evil.example",
        "//evil.example",
        "https://evil.example/",
    ] {
        let page = app
            .get(&format!(
                "/auth/login?provider=fb&return_to={}",
                url::form_urlencoded::byte_serialize(bad.as_bytes()).collect::<String>()
            ))
            .await;
        assert_eq!(page.status(), 400, "{bad:?}");
        let form = [
            ("email", "ada@example.test"),
            ("password", "right-password"),
            ("return_to", bad),
        ];
        let res = app
            .browser
            .post(app.url("/auth/firebase/fb/password"))
            .header("origin", app.base.clone())
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{bad:?}");
        assert_eq!(app.me().await.status(), 401, "nobody is signed in: {bad:?}");
    }
}

/// For any return_to, in token mode (where the one-time code rides on the URL): either the login
/// is refused at the start, or the browser lands on an allowed origin.
#[tokio::test]
async fn token_mode_never_lands_a_code_on_another_origin() {
    let app = spawn(dev_provider()).await;
    let piece = proptest::prop_oneof![
        proptest::strategy::Just("/".to_string()),
        proptest::strategy::Just("\\".to_string()),
        proptest::strategy::Just("\t".to_string()),
        proptest::strategy::Just("\n".to_string()),
        proptest::strategy::Just("@".to_string()),
        proptest::strategy::Just(":".to_string()),
        proptest::strategy::Just(".".to_string()),
        proptest::strategy::Just("%2F".to_string()),
        proptest::strategy::Just("http:".to_string()),
        proptest::strategy::Just("http://".to_string()),
        proptest::strategy::Just("evil.example".to_string()),
        proptest::strategy::Just("app.test:3000".to_string()),
        proptest::strategy::Just("127.0.0.1".to_string()),
        proptest::strategy::Just("#".to_string()),
        proptest::strategy::Just("?".to_string()),
        "[ -~]{0,2}",
    ];
    let strategy = proptest::collection::vec(piece, 1..8).prop_map(|v| v.concat());
    let mut runner = TestRunner::deterministic();
    let mut landed = 0;
    for _ in 0..400 {
        let raw = strategy.new_tree(&mut runner).unwrap().current();
        let res = app
            .get(&format!("/auth/login?{}", login_query(&raw, true)))
            .await;
        if res.status() == 400 {
            continue;
        }
        assert_eq!(res.status(), 303, "{raw:?}");
        let authorize = location(res.headers());
        let res = dev_pick_user(&app.browser, &authorize, "alice").await;
        assert_eq!(res.status(), 303, "{raw:?}");
        let to = location(res.headers());
        let origin = landing_origin(&app, &to);
        assert!(is_allowed(&app, &origin), "{raw:?} landed on {to}");
        landed += 1;
    }
    // The generator must reach accepted values too, or the property says nothing.
    assert!(landed > 0);
}
