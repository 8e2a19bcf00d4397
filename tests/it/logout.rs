//! Local logout and its protection against cross-site requests.

use crate::helpers::*;

#[tokio::test]
async fn logout_from_an_allowed_origin_ends_the_session() {
    let app = spawn(dev_provider()).await;
    app.dev_login("alice").await;
    let res = app
        .browser
        .post(app.url("/auth/logout"))
        .header("origin", "http://app.test:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // RP-initiated logout at the dev provider, which sends the browser back to the broker.
    let logout_url = json(res).await["logout_url"].as_str().unwrap().to_string();
    assert!(
        logout_url.starts_with(&app.url("/dev/dev/logout?")),
        "{logout_url}"
    );
    assert_eq!(
        query_param(&logout_url, "post_logout_redirect_uri").unwrap(),
        app.url("/auth/logged-out")
    );
    assert!(query_param(&logout_url, "id_token_hint").is_some());
    let back = app.browser.get(&logout_url).send().await.unwrap();
    assert_eq!(location(back.headers()), app.url("/auth/logged-out"));
    assert_eq!(app.me().await.status(), 401);
}

#[tokio::test]
async fn logout_with_the_csrf_header_ends_the_session_and_kills_the_cookie_value() {
    let app = spawn(dev_provider()).await;
    let cookie = cookie_value(app.dev_login("alice").await.headers(), "broker_session").unwrap();
    let res = app.logout().await;
    assert_eq!(res.status(), 200);
    let res = browser()
        .get(app.url("/auth/me"))
        .header("cookie", format!("broker_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        401,
        "the deleted session id must not come back"
    );
}

#[tokio::test]
async fn cross_site_logout_is_refused_and_changes_nothing() {
    let app = spawn(dev_provider()).await;
    app.dev_login("alice").await;
    let res = app
        .browser
        .post(app.url("/auth/logout"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert_eq!(json(res).await["error"], "cross_site_request");
    let res = app
        .browser
        .post(app.url("/auth/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "no Origin and no X-CSRF header");
    assert_eq!(
        app.me().await.status(),
        200,
        "the session survives refused logouts"
    );
}

#[tokio::test]
async fn logout_confirmation_form_posts_and_lands_on_the_logged_out_page() {
    let app = spawn(dev_provider()).await;
    app.dev_login("alice").await;
    let page = app.get("/auth/logout").await.text().await.unwrap();
    assert!(page.contains("Alice Example"), "{page}");
    let form = Form::parse(&page, &app.url("/auth/logout"));
    assert_eq!(form.method, "post");
    // A browser's same-origin form post carries the broker's own Origin.
    let res = app
        .browser
        .post(&form.action)
        .header("origin", app.base.clone())
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let at_provider = location(res.headers());
    assert!(
        at_provider.starts_with(&app.url("/dev/dev/logout?")),
        "{at_provider}"
    );
    let back = app.browser.get(&at_provider).send().await.unwrap();
    assert_eq!(location(back.headers()), app.url("/auth/logged-out"));
    assert!(
        app.get("/auth/logged-out")
            .await
            .text()
            .await
            .unwrap()
            .contains("signed out")
    );
    assert_eq!(app.me().await.status(), 401);
}

#[tokio::test]
async fn a_browsers_own_form_post_with_a_null_origin_is_accepted_and_a_cross_site_one_refused() {
    let app = spawn(dev_provider()).await;
    app.dev_login("alice").await;
    let page = app.get("/auth/logout").await;
    assert_eq!(
        page.headers()["referrer-policy"],
        "same-origin",
        "so browsers send the Origin on the page's own posts"
    );
    let refused = app
        .browser
        .post(app.url("/auth/logout"))
        .header("origin", "null")
        .header("sec-fetch-site", "cross-site")
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert_eq!(app.me().await.status(), 200);
    let accepted = app
        .browser
        .post(app.url("/auth/logout"))
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 303);
    assert_eq!(app.me().await.status(), 401);
}
