//! Operators: the admin API (bearer token from config, off without one), the audit log it reads,
//! and the command line that works on the store directly (`sessions …`, `users …`).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::devices::{CHROME_MAC, FIREFOX_LINUX, SAFARI_IPHONE, handle_of, sign_in};
use crate::fake_op::{FakeOp, Flavor};
use crate::helpers::*;

const TOKEN: &str = "admin-token-for-tests-0123456789abcdef-0123456789";

fn admin_app(extra: &str) -> Spawn {
    Spawn::providers(format!(
        "[providers.dev]\nkind = \"dev\"\n[admin]\ntoken = \"{TOKEN}\"\n{extra}"
    ))
}

fn admin() -> reqwest::Client {
    reqwest::Client::new()
}

async fn admin_get(app: &TestApp, path: &str) -> reqwest::Response {
    admin()
        .get(app.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

async fn admin_delete(app: &TestApp, path: &str) -> reqwest::Response {
    admin()
        .delete(app.url(path))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

async fn user_of(app: &TestApp, browser: &reqwest::Client) -> String {
    let me = json(app.me_with(browser).await).await;
    me["user"]["id"].as_str().unwrap().to_string()
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let res = admin_get(app, &format!("/admin/audit?{query}")).await;
    assert_eq!(res.status(), 200);
    json(res).await["events"].as_array().unwrap().clone()
}

fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_admin_api_does_not_exist_without_a_token_in_the_config() {
    let mut app = spawn(dev_provider()).await;
    let b = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let user = user_of(&app, &b).await;
    for res in [
        admin_get(&app, "/admin/audit").await,
        admin_get(&app, &format!("/admin/users/{user}/sessions")).await,
        admin_delete(&app, &format!("/admin/users/{user}/sessions")).await,
    ] {
        assert_eq!(res.status(), 404);
    }
    assert_eq!(app.me_with(&b).await.status(), 200);
}

#[tokio::test]
async fn admin_calls_need_exactly_the_admin_token() {
    let mut app = spawn(admin_app("")).await;
    let b = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let url = app.url("/admin/audit");
    let res = admin().get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(
        res.headers()["www-authenticate"],
        "Bearer realm=\"admin\"",
        "RFC 6750"
    );
    assert_eq!(json(res).await["error"], "admin_token_required");
    for wrong in [
        &TOKEN[..TOKEN.len() - 1],
        &format!("{TOKEN}x"),
        "admin-token-for-tests-0123456789abcdef-0123456780",
    ] {
        let res = admin().get(&url).bearer_auth(wrong).send().await.unwrap();
        assert_eq!(res.status(), 401, "{wrong}");
    }
    // A signed-in user's cookie is not an admin credential.
    assert_eq!(b.get(&url).send().await.unwrap().status(), 401);
    let res = admin()
        .get(&url)
        .header("authorization", format!("Basic {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(admin_get(&app, "/admin/audit").await.status(), 200);
}

#[tokio::test]
async fn operators_list_and_revoke_any_users_sessions() {
    let mut app = spawn(admin_app("")).await;
    let laptop = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    app.clock.advance(Duration::from_secs(2));
    let phone = sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    let bob = sign_in(&mut app, "bob", CHROME_MAC).await;
    let alice = user_of(&app, &laptop).await;

    let res = admin_get(&app, &format!("/admin/users/{alice}/sessions")).await;
    assert_eq!(res.status(), 200);
    let body = json(res).await;
    assert_eq!(body["user"]["id"], alice.as_str());
    assert_eq!(body["user"]["email"], "alice@example.test");
    let devices: Vec<_> = body["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["device"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(devices, ["Safari on iPhone", "Firefox on Linux"]);

    // One session by handle.
    let phone_handle = handle_of(&app, &phone).await;
    let res = admin_delete(&app, &format!("/admin/sessions/{phone_handle}")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["revoked"], json!([phone_handle]));
    assert_eq!(app.me_with(&phone).await.status(), 401);
    assert_eq!(app.me_with(&laptop).await.status(), 200);
    let res = admin_delete(&app, &format!("/admin/sessions/{phone_handle}")).await;
    assert_eq!(res.status(), 404);
    assert_eq!(json(res).await["error"], "unknown_session");

    // Every session of a user.
    let res = admin_delete(&app, &format!("/admin/users/{alice}/sessions")).await;
    assert_eq!(res.status(), 200);
    assert_eq!(json(res).await["revoked"].as_array().unwrap().len(), 1);
    assert_eq!(app.me_with(&laptop).await.status(), 401);
    assert_eq!(app.me_with(&bob).await.status(), 200, "bob is untouched");
    let body = json(admin_get(&app, &format!("/admin/users/{alice}/sessions")).await).await;
    assert_eq!(body["sessions"], json!([]));

    for res in [
        admin_get(&app, "/admin/users/usr_nobody/sessions").await,
        admin_delete(&app, "/admin/users/usr_nobody/sessions").await,
    ] {
        assert_eq!(res.status(), 404);
        assert_eq!(json(res).await["error"], "unknown_user");
    }
}

#[tokio::test]
async fn the_audit_log_tells_each_lifecycle_event_newest_first_and_holds_no_secret() {
    let mut app = spawn(admin_app("")).await;
    // A first login through a browser whose callback is then replayed (a failed login).
    let laptop_browser = crate::devices::browser_as(FIREFOX_LINUX, &[]);
    let saved = std::mem::replace(&mut app.browser, laptop_browser.clone());
    let authorize = app.start_login("provider=dev").await;
    let page = app
        .browser
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = Form::parse(&page, &authorize);
    form.set("user", "alice");
    let res = app
        .browser
        .post(&form.action)
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    let callback = location(res.headers());
    let res = app.browser.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let cookie = cookie_value(res.headers(), "broker_session").unwrap();
    assert_eq!(
        app.browser.get(&callback).send().await.unwrap().status(),
        400
    );
    app.browser = saved;
    let laptop = laptop_browser;
    let alice = user_of(&app, &laptop).await;

    // The user ends their phone's session; an operator ends the laptop's.
    app.clock.advance(Duration::from_secs(1));
    let phone = sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    let phone_handle = handle_of(&app, &phone).await;
    let laptop_handle = handle_of(&app, &laptop).await;
    app.clock.advance(Duration::from_secs(1));
    let res = laptop
        .delete(app.url(&format!("/auth/sessions/{phone_handle}")))
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    app.clock.advance(Duration::from_secs(1));
    assert_eq!(
        admin_delete(&app, &format!("/admin/sessions/{laptop_handle}"))
            .await
            .status(),
        200
    );
    // A last login and its logout.
    app.clock.advance(Duration::from_secs(1));
    let desktop = sign_in(&mut app, "alice", CHROME_MAC).await;
    let desktop_handle = handle_of(&app, &desktop).await;
    app.clock.advance(Duration::from_secs(1));
    let res = desktop
        .post(app.url("/auth/logout"))
        .header("x-csrf", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let events = audit(&app, &format!("user={alice}")).await;
    assert_eq!(
        names(&events),
        [
            "logout",
            "login.succeeded",
            "session.revoked",
            "session.revoked",
            "login.succeeded",
            "login.succeeded",
            "identity.linked",
        ],
        "{events:#?}"
    );
    let by = |e: &Value| e["detail"]["by"].as_str().unwrap_or_default().to_string();
    assert_eq!(events[0]["session"], desktop_handle.as_str());
    assert_eq!(events[2]["session"], laptop_handle.as_str());
    assert_eq!(by(&events[2]), "admin");
    assert_eq!(events[3]["session"], phone_handle.as_str());
    assert_eq!(by(&events[3]), "user");
    assert_eq!(
        events[3]["user_agent"], FIREFOX_LINUX,
        "the user who revoked"
    );
    let first = &events[5];
    assert_eq!(first["session"], laptop_handle.as_str());
    assert_eq!(first["provider"], "dev");
    assert_eq!(first["ip"], "127.0.0.1");
    assert_eq!(first["user_agent"], FIREFOX_LINUX);
    assert!(first["at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(events[6]["detail"]["via"], "new_user");
    assert_eq!(events[6]["detail"]["subject"], "alice");

    // The failed login has no user; it is in the whole log, with its reason.
    let all = audit(&app, "").await;
    let failed = all
        .iter()
        .find(|e| e["event"] == "login.failed")
        .expect("the replayed callback is audited");
    assert_eq!(failed["detail"]["reason"], "invalid_state");
    assert_eq!(failed["provider"], "dev");
    assert_eq!(failed["user_id"], Value::Null);
    assert_eq!(failed["user_agent"], FIREFOX_LINUX);

    // No secret of the login is in the log.
    let dump = serde_json::to_string(&all).unwrap();
    for secret in [
        cookie,
        query_param(&callback, "code").unwrap(),
        query_param(&callback, "state").unwrap(),
        query_param(&authorize, "nonce").unwrap(),
    ] {
        assert!(!dump.contains(&secret), "{secret} in {dump}");
    }

    // Limits.
    assert_eq!(audit(&app, &format!("user={alice}&limit=2")).await.len(), 2);
    for bad in ["limit=0", "limit=1001", "limit=ten"] {
        let res = admin_get(&app, &format!("/admin/audit?{bad}")).await;
        assert_eq!(res.status(), 400, "{bad}");
    }
    assert_eq!(audit(&app, "user=usr_nobody").await, Vec::<Value>::new());
}

#[tokio::test]
async fn provider_refreshes_are_audited_when_they_succeed_and_fail() {
    // The fake Auth0 access token lives 300 s; with a 60 s margin a refresh is due after 240 s.
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let app = spawn(
        Spawn::providers(format!(
            "{}[admin]\ntoken = \"{TOKEN}\"\n",
            crate::kinds::auth0_toml(&fake, "a0", "")
        ))
        .session("idle_timeout = \"1h\"\nabsolute_lifetime = \"1d\"\nrefresh_margin = \"60s\"\n"),
    )
    .await;
    assert_eq!(fake_login(&app, "provider=a0").await.status(), 303);
    let user = user_of(&app, &app.browser).await;
    app.clock.advance(Duration::from_secs(250));
    assert_eq!(app.me().await.status(), 200);
    fake.behave(|b| b.refresh_error = Some("invalid_grant"));
    app.clock.advance(Duration::from_secs(250));
    assert_eq!(app.me().await.status(), 401);
    let events = audit(&app, &format!("user={user}")).await;
    assert_eq!(events[0]["event"], "refresh.failed");
    assert_eq!(events[0]["detail"]["token"], "provider");
    assert_eq!(events[0]["detail"]["session_ended"], true);
    assert!(
        events[0]["detail"]["reason"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{}",
        events[0]
    );
    assert_eq!(events[1]["event"], "refresh.succeeded");
    assert_eq!(events[1]["detail"]["token"], "provider");
}

#[tokio::test]
async fn broker_refresh_and_a_reused_refresh_token_are_audited() {
    let app = spawn(admin_app(
        "[tokens]\nrotate_refresh_tokens = true\nrotation_grace = \"30s\"\n",
    ))
    .await;
    let res = app
        .dev_login_query(
            "alice",
            "provider=dev&mode=token&return_to=http%3A%2F%2Fapp.test%3A3000%2F",
        )
        .await;
    let code = query_param(&location(res.headers()), "code").unwrap();
    let api = reqwest::Client::new();
    let t = json(
        api.post(app.url("/auth/token"))
            .json(&json!({ "code": code }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let user = t["user"]["id"].as_str().unwrap().to_string();
    let rt1 = t["refresh_token"].as_str().unwrap().to_string();
    let refresh = |rt: String| {
        let api = api.clone();
        let url = app.url("/auth/token/refresh");
        async move {
            api.post(url)
                .json(&json!({ "refresh_token": rt }))
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(refresh(rt1.clone()).await.status(), 200);
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(refresh(rt1.clone()).await.status(), 401);
    assert_eq!(refresh("rt_unknown".into()).await.status(), 401);

    let events = audit(&app, &format!("user={user}")).await;
    assert_eq!(
        names(&events)[..3],
        ["session.revoked", "refresh.succeeded", "login.succeeded"]
    );
    assert_eq!(events[0]["detail"]["by"], "refresh_token_reuse");
    assert_eq!(events[1]["detail"]["token"], "broker");
    let all = audit(&app, "").await;
    assert_eq!(all[0]["event"], "refresh.failed");
    assert_eq!(all[0]["detail"]["reason"], "unknown_or_expired");
    let dump = serde_json::to_string(&all).unwrap();
    assert!(!dump.contains(&rt1) && !dump.contains(&code));
}

#[tokio::test]
async fn a_backchannel_logout_is_audited_for_each_session_it_ends() {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(format!(
        "{}[admin]\ntoken = \"{TOKEN}\"\n",
        fake.provider_toml("corp")
    )))
    .await;
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    let user = user_of(&app, &app.browser).await;
    let handle = handle_of(&app, &app.browser).await;
    let res = reqwest::Client::new()
        .post(app.url("/auth/backchannel-logout/corp"))
        .form(&[("logout_token", fake.logout_token(|_, _| {}))])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let events = audit(&app, &format!("user={user}")).await;
    assert_eq!(events[0]["event"], "backchannel_logout");
    assert_eq!(events[0]["session"], handle.as_str());
    assert_eq!(events[0]["provider"], "corp");
    assert_eq!(events[0]["detail"]["matched_by"], "sid");
}

#[tokio::test]
async fn audit_events_are_swept_after_the_retention() {
    let mut app = spawn(admin_app("[audit]\nretention = \"2h\"\n")).await;
    let b = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let user = user_of(&app, &b).await;
    assert_eq!(audit(&app, &format!("user={user}")).await.len(), 2);
    app.clock.advance(Duration::from_secs(3600));
    let s = &app.state;
    oidc_broker::audit::sweep_expired(
        &s.store,
        s.config.audit.retention,
        s.clock.now().unix_timestamp(),
    )
    .await;
    assert_eq!(
        audit(&app, &format!("user={user}")).await.len(),
        2,
        "kept within the retention"
    );
    app.clock.advance(Duration::from_secs(3 * 3600));
    sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    let s = &app.state;
    oidc_broker::audit::sweep_expired(
        &s.store,
        s.config.audit.retention,
        s.clock.now().unix_timestamp(),
    )
    .await;
    let left = audit(&app, &format!("user={user}")).await;
    assert_eq!(names(&left), ["login.succeeded"], "only the recent login");
}

// ---- the command line ---------------------------------------------------------------------

/// A configuration for the command line naming the same store as the running broker.
fn cli_config(app: &TestApp, dir: &tempfile::TempDir, providers: &str) -> PathBuf {
    let c = &app.state.config;
    let mut toml = format!(
        "[server]\nenvironment = \"development\"\n[store]\nurl = \"{}\"\n",
        c.store.url
    );
    if let Some(schema) = &c.store.schema {
        toml.push_str(&format!("schema = \"{schema}\"\n"));
    }
    if let Some(s) = &c.sessions {
        toml.push_str(&format!(
            "[sessions]\nurl = \"{}\"\nprefix = \"{}\"\n",
            s.url, s.prefix
        ));
    }
    toml.push_str(providers);
    let path = dir.path().join("cli.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

async fn cli(config: &PathBuf, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_oidc-broker"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .await
        .unwrap();
    Run {
        ok: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

const DEV: &str = "[providers.dev]\nkind = \"dev\"\n";

#[tokio::test]
async fn the_cli_lists_and_revokes_sessions_in_the_store() {
    let mut app = spawn(admin_app("")).await;
    let laptop = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let phone = sign_in(&mut app, "alice", SAFARI_IPHONE).await;
    let desktop = sign_in(&mut app, "alice", CHROME_MAC).await;
    let bob = sign_in(&mut app, "bob", CHROME_MAC).await;
    let alice = user_of(&app, &laptop).await;
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(&app, &dir, DEV);

    let run = cli(&config, &["sessions", "list", "--user", &alice, "--json"]).await;
    assert!(run.ok, "{}", run.stderr);
    let listed: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 3, "{listed}");
    let run = cli(&config, &["sessions", "list", "--user", &alice]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.starts_with("HANDLE"), "{}", run.stdout);
    for device in ["Firefox on Linux", "Safari on iPhone", "Chrome on macOS"] {
        assert!(run.stdout.contains(device), "{}", run.stdout);
    }

    let phone_handle = handle_of(&app, &phone).await;
    let run = cli(&config, &["sessions", "revoke", "--session", &phone_handle]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains(&phone_handle), "{}", run.stdout);
    assert_eq!(app.me_with(&phone).await.status(), 401, "stopped at once");
    assert_eq!(app.me_with(&laptop).await.status(), 200);

    let run = cli(&config, &["sessions", "revoke", "--user", &alice]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("Revoked 2 session(s)"),
        "{}",
        run.stdout
    );
    assert_eq!(app.me_with(&laptop).await.status(), 401);
    assert_eq!(app.me_with(&desktop).await.status(), 401);
    assert_eq!(app.me_with(&bob).await.status(), 200);
    let run = cli(&config, &["sessions", "list", "--user", &alice]).await;
    assert!(run.stdout.contains("no live sessions"), "{}", run.stdout);

    let events = audit(&app, &format!("user={alice}")).await;
    let revoked: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "session.revoked")
        .collect();
    assert_eq!(revoked.len(), 3);
    assert!(revoked.iter().all(|e| e["detail"]["by"] == "cli"));

    // Mistakes are explained and change nothing.
    let run = cli(&config, &["sessions", "revoke", "--session", "ses_nope"]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("there is no session ses_nope"),
        "{}",
        run.stderr
    );
    let run = cli(&config, &["sessions", "list", "--user", "usr_nope"]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("there is no user usr_nope"),
        "{}",
        run.stderr
    );
    let run = cli(&config, &["sessions", "revoke"]).await;
    assert!(!run.ok);
    assert!(
        run.stderr.contains("--user") && run.stderr.contains("--session"),
        "{}",
        run.stderr
    );
    assert_eq!(app.me_with(&bob).await.status(), 200);
}

#[tokio::test]
async fn the_cli_shows_users_and_unlinks_all_but_the_last_identity() {
    let fake = FakeOp::start().await;
    // corp's Alice has the same verified email as the dev provider's.
    fake.behave(|b| b.subject = "alice".into());
    let providers = format!("{DEV}{}", fake.provider_toml("corp"));
    let mut app = spawn(Spawn::providers(format!(
        "{providers}[identity]\nlink_by = \"verified_email\"\n[admin]\ntoken = \"{TOKEN}\"\n"
    )))
    .await;
    let dev_browser = sign_in(&mut app, "alice", FIREFOX_LINUX).await;
    let alice = user_of(&app, &dev_browser).await;
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    assert_eq!(user_of(&app, &app.browser).await, alice, "linked by email");
    sign_in(&mut app, "bob", CHROME_MAC).await;
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(&app, &dir, &providers);

    let run = cli(&config, &["users", "list"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.starts_with("ID"), "{}", run.stdout);
    assert!(run.stdout.contains(&alice), "{}", run.stdout);
    assert!(
        run.stdout.contains("alice@example.test (verified)"),
        "{}",
        run.stdout
    );
    assert_eq!(run.stdout.lines().count(), 3, "two users: {}", run.stdout);
    let run = cli(&config, &["users", "list", "--json"]).await;
    let users: Value = serde_json::from_str(&run.stdout).unwrap();
    let entry = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == alice.as_str())
        .unwrap()
        .clone();
    assert_eq!(entry["identities"], 2);

    let run = cli(&config, &["users", "show", &alice]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("dev") && run.stdout.contains("corp"),
        "{}",
        run.stdout
    );
    let run = cli(&config, &["users", "show", &alice, "--json"]).await;
    let shown: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(shown["identities"].as_array().unwrap().len(), 2);

    // Unlinking corp ends the session corp signed in, and keeps the dev one.
    let run = cli(
        &config,
        &[
            "users",
            "unlink",
            &alice,
            "--provider",
            "corp",
            "--subject",
            "alice",
        ],
    )
    .await;
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("1 of its session(s) ended"),
        "{}",
        run.stdout
    );
    assert_eq!(app.me().await.status(), 401);
    assert_eq!(app.me_with(&dev_browser).await.status(), 200);

    // The last identity stays.
    let run = cli(
        &config,
        &[
            "users",
            "unlink",
            &alice,
            "--provider",
            "dev",
            "--subject",
            "alice",
        ],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("refusing to unlink dev/alice: it is the last identity"),
        "{}",
        run.stderr
    );
    let run = cli(&config, &["users", "show", &alice, "--json"]).await;
    let shown: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(shown["identities"].as_array().unwrap().len(), 1);

    let run = cli(
        &config,
        &[
            "users",
            "unlink",
            &alice,
            "--provider",
            "corp",
            "--subject",
            "alice",
        ],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("is not linked to"), "{}", run.stderr);
    let run = cli(&config, &["users", "show", "usr_nope"]).await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("there is no user usr_nope"),
        "{}",
        run.stderr
    );

    let events = audit(&app, &format!("user={alice}")).await;
    assert!(names(&events).contains(&"identity.unlinked".to_string()));
    // corp's next login is a new link: with linking, back to the same user.
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    assert_eq!(user_of(&app, &app.browser).await, alice);
}

#[tokio::test]
async fn a_wrong_firebase_password_is_audited_once_and_the_password_never() {
    let fake = crate::fake_firebase::FakeFirebase::start().await;
    let app = spawn(Spawn::providers(format!(
        "{}[admin]\ntoken = \"{TOKEN}\"\n",
        fake.provider_toml("fb")
    )))
    .await;
    let res = app
        .browser
        .post(app.url("/auth/firebase/fb/password"))
        .header("origin", app.base.clone())
        .form(&[
            ("email", "ada@example.test"),
            ("password", "wrong-password-value"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let events = audit(&app, "").await;
    assert_eq!(names(&events), ["login.failed"], "{events:#?}");
    assert_eq!(events[0]["provider"], "fb");
    assert_eq!(events[0]["detail"]["reason"], "invalid_credentials");
    assert!(
        !serde_json::to_string(&events)
            .unwrap()
            .contains("wrong-password-value")
    );
}

#[tokio::test]
async fn a_frontchannel_logout_is_audited_too() {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(format!(
        "{}[admin]\ntoken = \"{TOKEN}\"\n",
        fake.provider_toml("corp")
    )))
    .await;
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    let user = user_of(&app, &app.browser).await;
    let mut url = url::Url::parse(&app.url("/auth/frontchannel-logout/corp")).unwrap();
    url.query_pairs_mut()
        .append_pair("iss", &fake.issuer)
        .append_pair("sid", "sid-user-1");
    let res = reqwest::get(url).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.me().await.status(), 401);
    let events = audit(&app, &format!("user={user}")).await;
    assert_eq!(events[0]["event"], "frontchannel_logout");
    assert_eq!(events[0]["detail"]["matched_by"], "sid");
}

#[tokio::test]
async fn the_cli_shows_provider_supplied_names_with_terminal_escapes_defused() {
    // OSC 52 writes the operator's clipboard; CSI sequences repaint the screen; U+202E reverses
    // what follows.
    let name = "Eve\\u001b]52;c;cm0gLXJmIC8=\\u0007\\u001b[2J\\u202eevil";
    let dev = format!(
        "[providers.dev]\nkind = \"dev\"\nusers = [{{ sub = \"eve\", email = \"eve\\u001b[31m@example.test\", name = \"{name}\" }}]\n"
    );
    let app = spawn(Spawn::providers(dev.clone())).await;
    assert_eq!(app.dev_login("eve").await.status(), 303);
    let dir = tempfile::tempdir().unwrap();
    let config = cli_config(&app, &dir, &dev);
    let run = cli(&config, &["users", "list"]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(!run.stdout.contains('\u{1b}'), "{:?}", run.stdout);
    assert!(!run.stdout.contains('\u{7}'), "{:?}", run.stdout);
    assert!(!run.stdout.contains('\u{202e}'), "{:?}", run.stdout);
    assert!(run.stdout.contains("Eve\\u{1b}]52;c;"), "{}", run.stdout);
    assert!(run.stdout.contains("\\u{202e}evil"), "{}", run.stdout);
    let id = run
        .stdout
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    let run = cli(&config, &["users", "show", &id]).await;
    assert!(run.ok, "{}", run.stderr);
    assert!(!run.stdout.contains('\u{1b}'), "{:?}", run.stdout);
    assert!(
        run.stdout.contains("eve\\u{1b}[31m@example.test"),
        "{}",
        run.stdout
    );
}
