//! The broker as an OpenID Provider: an app registered as `[clients.ID]` signs in through the
//! broker's authorization endpoint (and the dev provider behind it), trades its code with PKCE,
//! reads userinfo, refreshes with rotation, revokes, and logs out — and every refusal the
//! protocol asks for.

use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use proptest::prelude::*;
use serde_json::Value;

use oidc_broker::clock::Clock;

use crate::helpers::*;

const REDIRECT: &str = "http://app.test:3000/cb";
const AFTER_LOGOUT: &str = "http://app.test:3000/bye";

fn client(id: &str, extra: &str) -> String {
    format!(
        "[clients.{id}]\nredirect_uris = [\"{REDIRECT}\", \"http://{id}.test/cb\"]\npost_logout_redirect_uris = [\"{AFTER_LOGOUT}\"]\n{extra}\n"
    )
}

fn with_clients(clients: &str) -> Spawn {
    Spawn::providers(format!("[providers.dev]\nkind = \"dev\"\n{clients}"))
}

fn verifier() -> (String, String) {
    let v = oidc_broker::crypto::random_token(48);
    let c = oidc_broker::crypto::pkce_challenge(&v);
    (v, c)
}

fn authorize_query(client_id: &str, challenge: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id={client_id}&redirect_uri={}&scope=openid%20profile%20email%20offline_access&state=st-1&nonce=n-1&code_challenge={challenge}&code_challenge_method=S256{extra}",
        urlencode(REDIRECT)
    )
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `GET /oauth2/authorize?{query}` in the test browser, through the dev provider's page when a
/// sign-in is needed; returns where the broker finally sends the browser (the app's redirect URI).
async fn authorize(app: &TestApp, query: &str, user: &str) -> String {
    let res = app
        .browser
        .get(app.url(&format!("/oauth2/authorize?{query}")))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        303,
        "authorize: {}",
        res.text().await.unwrap()
    );
    let to = location(res.headers());
    if !to.starts_with(&app.base) {
        return to;
    }
    // The broker's sign-in, then the dev provider's page, then back to resume.
    let res = app.browser.get(&to).send().await.unwrap();
    assert_eq!(res.status(), 303, "login start");
    let dev = location(res.headers());
    let callback = dev_pick_user(&app.browser, &dev, user).await;
    assert_eq!(callback.status(), 303, "callback");
    let resume = location(callback.headers());
    let resume = if resume.starts_with('/') {
        app.url(&resume)
    } else {
        resume
    };
    let res = app.browser.get(&resume).send().await.unwrap();
    assert_eq!(res.status(), 303, "resume: {}", res.text().await.unwrap());
    location(res.headers())
}

async fn token(app: &TestApp, form: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/oauth2/token"))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn exchange(app: &TestApp, code: &str, verifier: &str) -> reqwest::Response {
    token(
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("client_id", "app"),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(app: &TestApp, rt: &str) -> reqwest::Response {
    token(
        app,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", rt),
            ("client_id", "app"),
        ],
    )
    .await
}

/// Signs in `user` for the client `app` and trades the code: the token response.
async fn sign_in_tokens(app: &TestApp, user: &str) -> Value {
    let (v, c) = verifier();
    let back = authorize(app, &authorize_query("app", &c, ""), user).await;
    let code = query_param(&back, "code").expect("a code");
    let res = exchange(app, &code, &v).await;
    assert_eq!(res.status(), 200);
    json(res).await
}

/// The claims of a token the broker signed, verified with its JWKS.
async fn verify(app: &TestApp, token: &str, aud: &str) -> Value {
    let jwks = json(app.get("/.well-known/jwks.json").await).await;
    let kid = jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the token's key is published");
    let key =
        DecodingKey::from_rsa_components(jwk["n"].as_str().unwrap(), jwk["e"].as_str().unwrap())
            .unwrap();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[aud]);
    v.set_issuer(&[app.base.as_str()]);
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .unwrap()
        .claims
}

async fn userinfo(app: &TestApp, access: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn discovery_names_every_endpoint_and_is_off_without_clients() {
    let app = spawn(with_clients(&client("app", ""))).await;
    let d = json(app.get("/.well-known/openid-configuration").await).await;
    assert_eq!(d["issuer"], app.base.as_str());
    for (k, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("end_session_endpoint", "/oauth2/logout"),
        ("revocation_endpoint", "/oauth2/revoke"),
        ("jwks_uri", "/.well-known/jwks.json"),
    ] {
        assert_eq!(d[k], app.url(path), "{k}");
    }
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(d["backchannel_logout_supported"], true);
    assert!(d.get("check_session_iframe").is_none());

    let off = spawn(dev_provider()).await;
    assert_eq!(
        off.get("/.well-known/openid-configuration").await.status(),
        404
    );
    assert_eq!(
        off.get("/oauth2/authorize?client_id=app").await.status(),
        404
    );
}

#[tokio::test]
async fn code_flow_with_pkce_gives_verified_tokens_userinfo_and_rotating_refresh() {
    let app = spawn(with_clients(&client("app", ""))).await;
    let (v, c) = verifier();
    let back = authorize(&app, &authorize_query("app", &c, ""), "alice").await;
    assert!(back.starts_with(REDIRECT), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("st-1"));
    assert_eq!(
        query_param(&back, "iss").as_deref(),
        Some(app.base.as_str())
    );
    let code = query_param(&back, "code").unwrap();

    let res = exchange(&app, &code, &v).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let t = json(res).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "openid profile email offline_access");
    let id = verify(&app, t["id_token"].as_str().unwrap(), "app").await;
    assert_eq!(id["azp"], "app");
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["email"], "alice@example.test");
    assert_eq!(id["email_verified"], true);
    assert_eq!(id["name"], "Alice Example");
    assert!(id["auth_time"].as_i64().unwrap() > 0);
    let sub = id["sub"].as_str().unwrap().to_string();
    assert_ne!(
        sub, "alice",
        "sub is the broker's own user id, not the provider's"
    );
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(
        id["at_hash"],
        oidc_broker::op::tokens::at_hash(access).as_str()
    );
    let at = verify(&app, access, "app").await;
    assert_eq!(at["client_id"], "app");
    assert_eq!(at["sid"], id["sid"]);

    let info = json(userinfo(&app, access).await).await;
    assert_eq!(info["sub"], sub.as_str());
    assert_eq!(info["email"], id["email"]);
    assert_eq!(info["name"], id["name"]);

    // Refresh rotates; a retry of the same token within the grace window gets the same successor.
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let r1 = json(refresh(&app, &rt1).await).await;
    let rt2 = r1["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2);
    let again = json(refresh(&app, &rt1).await).await;
    assert_eq!(again["refresh_token"], rt2.as_str());
    let id2 = verify(&app, r1["id_token"].as_str().unwrap(), "app").await;
    assert_eq!(id2["sub"], id["sub"]);
    assert_eq!(id2["auth_time"], id["auth_time"]);

    // After the grace window the old token is a stolen copy: the broker session ends, and every
    // token from it with it.
    app.clock.advance(std::time::Duration::from_secs(120));
    assert_eq!(app.me().await.status(), 200);
    let stolen = refresh(&app, &rt1).await;
    assert_eq!(stolen.status(), 400);
    assert_eq!(json(stolen).await["error"], "invalid_grant");
    assert_eq!(refresh(&app, &rt2).await.status(), 400);
    assert_eq!(userinfo(&app, access).await.status(), 401);
    assert_eq!(app.me().await.status(), 401);
}

#[tokio::test]
async fn a_replayed_code_is_refused_and_revokes_what_it_issued() {
    let app = spawn(with_clients(&client("app", ""))).await;
    let (v, c) = verifier();
    let back = authorize(&app, &authorize_query("app", &c, ""), "alice").await;
    let code = query_param(&back, "code").unwrap();
    let t = json(exchange(&app, &code, &v).await).await;
    let replay = exchange(&app, &code, &v).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(json(replay).await["error"], "invalid_grant");
    let rt = t["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&app, rt).await.status(), 400);
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn the_token_endpoint_refuses_a_wrong_verifier_redirect_uri_or_client_and_burns_the_code() {
    let app = spawn(with_clients(&format!(
        "{}{}",
        client("app", ""),
        client("other", "")
    )))
    .await;
    let (v, c) = verifier();
    for bad in [
        vec![("code_verifier", "x".repeat(43))],
        vec![("redirect_uri", "http://other.test/cb".to_string())],
        vec![("client_id", "other".to_string())],
        vec![("code_verifier", String::new())],
    ] {
        let back = authorize(&app, &authorize_query("app", &c, ""), "alice").await;
        let code = query_param(&back, "code").unwrap();
        let mut form: Vec<(&str, String)> = vec![
            ("grant_type", "authorization_code".into()),
            ("code", code.clone()),
            ("redirect_uri", REDIRECT.into()),
            ("client_id", "app".into()),
            ("code_verifier", v.clone()),
        ];
        for (k, val) in &bad {
            form.retain(|(f, _)| f != k);
            form.push((k, val.clone()));
        }
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = token(&app, &form).await;
        assert_eq!(res.status(), 400, "{bad:?}");
        assert_eq!(json(res).await["error"], "invalid_grant", "{bad:?}");
        // The right request afterwards finds the code spent.
        assert_eq!(exchange(&app, &code, &v).await.status(), 400, "{bad:?}");
    }
    let res = token(&app, &[("grant_type", "password"), ("client_id", "app")]).await;
    assert_eq!(json(res).await["error"], "unsupported_grant_type");
    let res = token(
        &app,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", "nobody"),
            ("refresh_token", "x"),
        ],
    )
    .await;
    assert_eq!(res.status(), 401);
    assert_eq!(json(res).await["error"], "invalid_client");
}

#[tokio::test]
async fn confidential_clients_authenticate_with_their_registered_method_only() {
    let secret = "a-long-client-secret-for-tests";
    let app = spawn(with_clients(&format!(
        "{}{}",
        client("api", &format!("client_secret = \"{secret}\"")),
        client(
            "form",
            &format!(
                "client_secret = \"{secret}\"\ntoken_endpoint_auth_method = \"client_secret_post\""
            )
        ),
    )))
    .await;
    let q = |id: &str| {
        format!(
            "response_type=code&client_id={id}&redirect_uri={}&scope=openid&state=s",
            urlencode(REDIRECT)
        )
    };
    let code = query_param(&authorize(&app, &q("api"), "alice").await, "code").unwrap();
    let http = reqwest::Client::new();
    let send = |user: &str, pass: &str, code: &str| {
        http.post(app.url("/oauth2/token"))
            .basic_auth(user, Some(pass))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
            ])
            .send()
    };
    let wrong = send("api", "wrong-secret", &code).await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    let ok = send("api", secret, &code).await.unwrap();
    assert_eq!(ok.status(), 200);
    let t = json(ok).await;
    assert!(
        t.get("refresh_token").is_none(),
        "no offline_access, no refresh token"
    );
    assert_eq!(t["scope"], "openid");

    // The form client may not use Basic, and the Basic client not the form.
    let code = query_param(&authorize(&app, &q("form"), "alice").await, "code").unwrap();
    assert_eq!(send("form", secret, &code).await.unwrap().status(), 401);
    let code = query_param(&authorize(&app, &q("api"), "alice").await, "code").unwrap();
    let res = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", "api"),
            ("client_secret", secret),
        ],
    )
    .await;
    assert_eq!(res.status(), 401);
    // Without any secret, a confidential client is not authenticated.
    let res = token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", "api"),
        ],
    )
    .await;
    assert_eq!(res.status(), 401);
}

/// Where `GET /oauth2/authorize?{query}` sends the browser without following anything.
async fn authorize_answer(app: &TestApp, query: &str) -> reqwest::Response {
    app.browser
        .get(app.url(&format!("/oauth2/authorize?{query}")))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn unknown_clients_and_unregistered_redirects_get_a_page_never_a_redirect() {
    let app = spawn(with_clients(&client("app", ""))).await;
    let (_, c) = verifier();
    for (query, says) in [
        (authorize_query("nobody", &c, ""), "not registered"),
        (
            authorize_query("app", &c, "")
                .replace(&urlencode(REDIRECT), &urlencode("https://evil.test/cb")),
            "redirect_uri",
        ),
        (
            authorize_query("app", &c, "")
                .replace(&urlencode(REDIRECT), &urlencode("http://app.test:3000/cb/")),
            "redirect_uri",
        ),
        (
            format!("{}&client_id=app", authorize_query("app", &c, "")),
            "more than once",
        ),
        (
            authorize_query("app", &c, "").replace("redirect_uri=", "x="),
            "redirect_uri",
        ),
    ] {
        let res = authorize_answer(&app, &query).await;
        assert_eq!(res.status(), 400, "{query}");
        assert!(res.headers().get("location").is_none());
        let page = res.text().await.unwrap();
        assert!(page.contains(says), "{query}: {page}");
    }
}

#[tokio::test]
async fn refusals_after_the_client_is_known_go_back_to_it_with_state_and_a_fix() {
    let app = spawn(with_clients(&client("app", ""))).await;
    let (_, c) = verifier();
    let cases = [
        (
            authorize_query("app", &c, "").replace("response_type=code", "response_type=id_token"),
            "unsupported_response_type",
            "set Response type to `code`",
        ),
        (
            authorize_query("app", &c, "")
                .replace("&code_challenge_method=S256", "")
                .replace(&format!("&code_challenge={c}"), ""),
            "invalid_request",
            "code_challenge is required",
        ),
        (
            authorize_query("app", &c, "")
                .replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
            "S256",
        ),
        (
            authorize_query("app", &c, "").replace("scope=openid%20", "scope="),
            "invalid_scope",
            "openid",
        ),
        (
            authorize_query("app", &c, "&prompt=none%20login"),
            "invalid_request",
            "prompt",
        ),
        (
            authorize_query("app", &c, "&request=eyJ"),
            "request_not_supported",
            "Request objects",
        ),
    ];
    for (query, error, fix) in cases {
        let res = authorize_answer(&app, &query).await;
        assert_eq!(res.status(), 303, "{query}");
        let to = location(res.headers());
        assert!(to.starts_with(REDIRECT), "{to}");
        assert_eq!(query_param(&to, "error").as_deref(), Some(error), "{query}");
        assert_eq!(query_param(&to, "state").as_deref(), Some("st-1"));
        assert_eq!(query_param(&to, "iss").as_deref(), Some(app.base.as_str()));
        let description = query_param(&to, "error_description").unwrap();
        assert!(description.contains(fix), "{description}");
    }
}

#[tokio::test]
async fn one_sign_in_serves_two_apps_and_prompt_and_max_age_are_honoured() {
    let app = spawn(with_clients(&format!(
        "{}{}",
        client("app", ""),
        client("two", "")
    )))
    .await;
    let (_, c) = verifier();
    // prompt=none without a session: login_required, no page.
    let res = authorize_answer(&app, &authorize_query("app", &c, "&prompt=none")).await;
    let to = location(res.headers());
    assert_eq!(query_param(&to, "error").as_deref(), Some("login_required"));

    let first = authorize(&app, &authorize_query("app", &c, ""), "bob").await;
    assert!(query_param(&first, "code").is_some());
    // The second app is answered from the same broker session, without any page.
    let q2 = authorize_query("two", &c, "");
    let res = authorize_answer(&app, &q2).await;
    let to = location(res.headers());
    assert!(
        to.starts_with(REDIRECT) && query_param(&to, "code").is_some(),
        "{to}"
    );
    let res = authorize_answer(&app, &authorize_query("two", &c, "&prompt=none")).await;
    assert!(query_param(&location(res.headers()), "code").is_some());

    // prompt=login and an exceeded max_age go through the sign-in again, and tell the provider.
    for extra in ["&prompt=login", "&max_age=0"] {
        app.clock.advance(std::time::Duration::from_secs(5));
        let res = authorize_answer(&app, &authorize_query("app", &c, extra)).await;
        let login = location(res.headers());
        assert!(
            login.starts_with(&app.url("/auth/login")),
            "{extra}: {login}"
        );
        let res = app.browser.get(&login).send().await.unwrap();
        let upstream = location(res.headers());
        assert!(upstream.contains(&extra[1..]), "{extra}: {upstream}");
    }
    // After the forced sign-in, the code reports the fresh auth_time.
    let (v, c) = verifier();
    let before = app.clock.now().unix_timestamp();
    let back = authorize(&app, &authorize_query("app", &c, "&prompt=login"), "bob").await;
    let code = query_param(&back, "code").unwrap();
    let t = json(exchange(&app, &code, &v).await).await;
    let id = verify(&app, t["id_token"].as_str().unwrap(), "app").await;
    assert!(id["auth_time"].as_i64().unwrap() >= before);
}

#[tokio::test]
async fn login_hint_and_allowed_acr_values_travel_upstream_and_posted_requests_work_too() {
    let app = spawn(with_clients(&client("app", "acr_values = [\"mfa\"]"))).await;
    let (_, c) = verifier();
    let q = authorize_query(
        "app",
        &c,
        "&login_hint=alice%40example.test&acr_values=gold%20mfa",
    );
    let res = authorize_answer(&app, &q).await;
    let login = location(res.headers());
    let res = app.browser.get(&login).send().await.unwrap();
    let upstream = location(res.headers());
    assert_eq!(
        query_param(&upstream, "login_hint").as_deref(),
        Some("alice@example.test")
    );
    assert_eq!(query_param(&upstream, "acr_values").as_deref(), Some("mfa"));
    let d = json(app.get("/.well-known/openid-configuration").await).await;
    assert_eq!(d["acr_values_supported"], serde_json::json!(["mfa"]));
    // The same request as a form post is answered the same way.
    let form: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let res = app
        .browser
        .post(app.url("/oauth2/authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert!(location(res.headers()).starts_with(&app.url("/auth/login")));
}

#[tokio::test]
async fn what_a_stranger_can_make_the_provider_side_write_is_rate_limited() {
    let app = spawn(with_clients(&format!(
        "[limits]\nlogin = \"2/min\"\ntoken = \"2/min\"\n{}",
        client("app", "")
    )))
    .await;
    let (_, c) = verifier();
    let q = authorize_query("app", &c, "");
    for _ in 0..2 {
        assert_eq!(authorize_answer(&app, &q).await.status(), 303);
    }
    assert_eq!(authorize_answer(&app, &q).await.status(), 429);
    let bogus = [
        ("grant_type", "refresh_token"),
        ("refresh_token", "x"),
        ("client_id", "app"),
    ];
    for _ in 0..2 {
        assert_eq!(token(&app, &bogus).await.status(), 400);
    }
    assert_eq!(token(&app, &bogus).await.status(), 429);
}

#[tokio::test]
async fn a_client_limited_to_a_provider_goes_straight_there_and_refuses_another() {
    let app = spawn(Spawn::providers(format!(
        "[providers.dev]\nkind = \"dev\"\n[providers.other]\nkind = \"dev\"\n{}{}",
        client("app", "providers = [\"other\"]"),
        client("any", "")
    )))
    .await;
    let (_, c) = verifier();
    let res = authorize_answer(&app, &authorize_query("app", &c, "")).await;
    let login = location(res.headers());
    assert_eq!(query_param(&login, "provider").as_deref(), Some("other"));
    // Signed in with `dev`, the limited app still needs a sign-in with `other`.
    assert_eq!(app.dev_login("alice").await.status(), 303);
    let res = authorize_answer(&app, &authorize_query("any", &c, "&prompt=none")).await;
    assert!(query_param(&location(res.headers()), "code").is_some());
    let res = authorize_answer(&app, &authorize_query("app", &c, "&prompt=none")).await;
    assert_eq!(
        query_param(&location(res.headers()), "error").as_deref(),
        Some("login_required")
    );
}

#[tokio::test]
async fn client_tokens_die_with_the_broker_session_and_revocation_ends_the_grant() {
    let app = spawn(with_clients(&client("app", ""))).await;
    let t = sign_in_tokens(&app, "alice").await;
    let rt = t["refresh_token"].as_str().unwrap();
    let access = t["access_token"].as_str().unwrap();
    // RFC 7009: revoking the refresh token ends its grant, access token included.
    let res = reqwest::Client::new()
        .post(app.url("/oauth2/revoke"))
        .form(&[("token", rt), ("client_id", "app")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(refresh(&app, rt).await.status(), 400);
    assert_eq!(userinfo(&app, access).await.status(), 401);
    // An unknown token is answered the same.
    let res = reqwest::Client::new()
        .post(app.url("/oauth2/revoke"))
        .form(&[("token", "nope"), ("client_id", "app")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // The broker session ending (here: the user's own logout) ends every grant from it.
    let t = sign_in_tokens(&app, "alice").await;
    let res = app.logout().await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        refresh(&app, t["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400
    );
    assert_eq!(
        userinfo(&app, t["access_token"].as_str().unwrap())
            .await
            .status(),
        401
    );
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_through_the_provider_and_lands_on_the_app() {
    let app = spawn(with_clients(&client("app", ""))).await;
    let t = sign_in_tokens(&app, "alice").await;
    let hint = t["id_token"].as_str().unwrap();
    // An unregistered landing page is refused on a page, and nothing ends.
    let res = app
        .browser
        .get(app.url(&format!(
            "/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri={}",
            urlencode("https://evil.test/")
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.me().await.status(), 200);
    // Without a hint, the person is asked first.
    let res = app.get("/oauth2/logout").await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Sign out?"));
    assert_eq!(app.me().await.status(), 200);

    let res = app
        .browser
        .get(app.url(&format!(
            "/oauth2/logout?id_token_hint={hint}&post_logout_redirect_uri={}&state=bye-1",
            urlencode(AFTER_LOGOUT)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(app.me().await.status(), 401);
    assert_eq!(
        refresh(&app, t["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400
    );
    // Through the dev provider's logout, back to the broker, on to the app.
    let mut to = location(res.headers());
    for _ in 0..4 {
        if to.starts_with(AFTER_LOGOUT) {
            break;
        }
        let res = app.browser.get(&to).send().await.unwrap();
        assert_eq!(res.status(), 303, "{to}");
        to = location(res.headers());
    }
    assert!(to.starts_with(AFTER_LOGOUT), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some("bye-1"));
}

type Received = Arc<Mutex<Vec<String>>>;

/// An app's back-channel logout endpoint: `(its URI, the bodies it received)`.
async fn logout_receiver() -> (String, Received) {
    let received: Received = Arc::default();
    let sink = received.clone();
    let receiver = axum::Router::new().route(
        "/bcl",
        axum::routing::post(move |body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await.unwrap() });
    (format!("http://{addr}/bcl"), received)
}

/// The claims of the first logout token `received`, waiting up to five seconds for it.
async fn first_logout_token(app: &TestApp, received: &Received) -> Value {
    let mut body = None;
    for _ in 0..50 {
        if let Some(b) = received.lock().unwrap().first().cloned() {
            body = Some(b);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let body = body.expect("a logout token within five seconds");
    let token = url::form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    verify(app, &token, "app").await
}

#[tokio::test]
async fn an_idle_timeout_ends_the_apps_tokens_and_the_app_is_told() {
    let (uri, received) = logout_receiver().await;
    let app = spawn(
        with_clients(&client(
            "app",
            &format!("backchannel_logout_uri = \"{uri}\""),
        ))
        .session("idle_timeout = \"10m\"\nabsolute_lifetime = \"1d\"\n"),
    )
    .await;
    let t = sign_in_tokens(&app, "alice").await;
    app.clock.advance(std::time::Duration::from_secs(11 * 60));
    assert_eq!(
        refresh(&app, t["refresh_token"].as_str().unwrap())
            .await
            .status(),
        400
    );
    // No request ends an idle session: the periodic check finds it.
    oidc_broker::op::backchannel::check_grants(&app.state.op(), std::time::Duration::ZERO).await;
    let claims = first_logout_token(&app, &received).await;
    assert_eq!(claims["aud"], "app");
}

#[tokio::test]
async fn a_client_with_a_backchannel_logout_uri_is_told_when_the_session_ends() {
    let (uri, received) = logout_receiver().await;
    let app = spawn(with_clients(&client(
        "app",
        &format!("backchannel_logout_uri = \"{uri}\""),
    )))
    .await;
    let t = sign_in_tokens(&app, "alice").await;
    let id = verify(&app, t["id_token"].as_str().unwrap(), "app").await;
    let res = app.logout().await;
    assert_eq!(res.status(), 200);
    let claims = first_logout_token(&app, &received).await;
    assert_eq!(claims["sub"], id["sub"]);
    assert_eq!(claims["sid"], id["sid"]);
    assert!(claims.get("nonce").is_none());
    assert!(claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    // Exactly once.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(received.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_provider_swap_behind_the_broker_keeps_the_apps_sub() {
    let first = spawn(with_clients(&client("app", "")).sqlite_only()).await;
    let t = sign_in_tokens(&first, "alice").await;
    let before = verify(&first, t["id_token"].as_str().unwrap(), "app").await;
    // The operator replaces the provider (same people, same verified emails) and links by email.
    let swapped = spawn(
        Spawn::providers(format!(
            "[providers.corp]\nkind = \"dev\"\n[identity]\nlink_by = \"verified_email\"\n{}",
            client("app", "")
        ))
        .sqlite_only()
        .reuse_db(&first),
    )
    .await;
    let (v, c) = verifier();
    let back = authorize(&swapped, &authorize_query("app", &c, ""), "alice").await;
    let code = query_param(&back, "code").unwrap();
    let t = json(exchange(&swapped, &code, &v).await).await;
    let after = verify(&swapped, t["id_token"].as_str().unwrap(), "app").await;
    assert_eq!(after["sub"], before["sub"]);
}

#[tokio::test]
async fn cors_on_the_token_endpoints_is_for_registered_app_origins_without_credentials() {
    let app = spawn(with_clients(&client("app", ""))).await;
    let http = reqwest::Client::new();
    let preflight = |origin: &'static str, path: &str| {
        http.request(reqwest::Method::OPTIONS, app.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization")
            .send()
    };
    let res = preflight("http://app.test", "/oauth2/userinfo")
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://app.test"
    );
    assert!(
        res.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
    let res = preflight("http://evil.test", "/oauth2/userinfo")
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    // A client's origin gets nothing on the cookie endpoints.
    let res = preflight("http://app.test", "/auth/me").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
    let res = http
        .get(app.url("/.well-known/openid-configuration"))
        .header("origin", "http://app.test")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "http://app.test"
    );
}

fn mutated(uri: &str) -> impl Strategy<Value = String> {
    let uri = uri.to_string();
    prop_oneof![
        // Any suffix, prefix or case change.
        "[ -~]{1,8}".prop_map({
            let u = uri.clone();
            move |s| format!("{u}{s}")
        }),
        "[ -~]{1,8}".prop_map({
            let u = uri.clone();
            move |s| format!("{s}{u}")
        }),
        Just(uri.to_uppercase()),
        Just(uri.replace("http://", "http://user@")),
        Just(uri.replace("app.test", "app.test.evil.test")),
        Just(uri.replace("/cb", "/%63b")),
        Just(uri.replace("/cb", "//cb")),
        Just(format!("{uri}#x")),
        Just(uri.replace("http:", "HTTP:")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    /// Any redirect_uri that is not exactly a registered one is refused on a page: the check
    /// compares the string the client sent, so no parsing trick can turn it into a redirect.
    #[test]
    fn only_an_exactly_registered_redirect_uri_is_ever_redirected_to(candidate in mutated(REDIRECT)) {
        prop_assume!(candidate != REDIRECT && candidate != "http://app.test/cb");
        let clients = oidc_broker::config::from_toml_str(
            &format!("[server]\nenvironment = \"development\"\n[providers.dev]\nkind = \"dev\"\n{}", client("app", "")),
            Vec::new(),
        ).unwrap().clients;
        let pairs = vec![
            ("response_type".to_string(), "code".to_string()),
            ("client_id".to_string(), "app".to_string()),
            ("redirect_uri".to_string(), candidate.clone()),
            ("scope".to_string(), "openid".to_string()),
        ];
        let refused = oidc_broker::op::authorize::client_and_redirect_of(&clients, &pairs);
        prop_assert!(refused.is_err(), "{candidate} was accepted");
    }
}

#[tokio::test]
async fn the_upstream_acr_is_reported_to_the_app() {
    let fake = crate::fake_op::FakeOp::start().await;
    fake.tamper(|_, c| c["acr"] = serde_json::json!("mfa"));
    let app = spawn(Spawn::providers(format!(
        "{}{}",
        fake.provider_toml("corp"),
        client("app", "acr_values = [\"mfa\"]")
    )))
    .await;
    let (v, c) = verifier();
    let res = authorize_answer(&app, &authorize_query("app", &c, "&acr_values=mfa")).await;
    let login = location(res.headers());
    let res = app.browser.get(&login).send().await.unwrap();
    let callback = provider_redirect(&location(res.headers())).await;
    assert_eq!(
        fake.last_authorize().get("acr_values").map(String::as_str),
        Some("mfa")
    );
    let res = app.browser.get(&callback).send().await.unwrap();
    let resume = location(res.headers());
    let res = app.browser.get(&resume).send().await.unwrap();
    let code = query_param(&location(res.headers()), "code").unwrap();
    let t = json(exchange(&app, &code, &v).await).await;
    let id = verify(&app, t["id_token"].as_str().unwrap(), "app").await;
    assert_eq!(id["acr"], "mfa");
}
