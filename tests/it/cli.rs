//! The command line: check-config on good and bad configurations.

use std::process::Command;

fn broker() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oidc-broker"));
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    c
}

#[test]
fn check_config_reports_every_mistake_with_its_key_and_a_fix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        r#"
[server]
environment = "development"
public_url = "ftp://auth.example.com"
[session]
idle_timeout = "half an hour"
[providers.corp]
kind = "oidc"
issuer = "https://idp.example.com"
client_id = "abc"
"#,
    )
    .unwrap();
    let out = broker()
        .args(["check-config", "--config"])
        .arg(&path)
        .env_remove("BROKER_PROVIDERS__CORP__CLIENT_SECRET")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("3 problem(s)"), "{err}");
    for key in [
        "server.public_url",
        "session.idle_timeout",
        "providers.corp.client_secret",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(err.contains("fix:"), "{err}");
}

#[test]
fn environment_variables_fill_in_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[server]\nenvironment = \"development\"\n[providers.corp]\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"abc\"\n").unwrap();
    let out = broker()
        .args(["check-config", "--config"])
        .arg(&path)
        .env("BROKER_PROVIDERS__CORP__CLIENT_SECRET", "from-env")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_config_that_does_not_name_its_environment_is_held_to_the_production_rules() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forgot.toml");
    // What a deployment looks like when it was copied from the quickstart and the environment
    // line was dropped: a real domain, the password-less dev provider, no sealing key.
    std::fs::write(
        &path,
        "[server]\npublic_url = \"https://auth.example.com\"\n[providers.dev]\nkind = \"dev\"\n",
    )
    .unwrap();
    let out = broker()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in ["providers.dev", "keys", "server.environment"] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(err.contains("production rules"), "{err}");
    assert!(err.contains("environment = \"development\""), "{err}");

    // Without a public_url either, production asks for one instead of guessing plain http.
    std::fs::write(&path, "[providers.dev]\nkind = \"dev\"\n").unwrap();
    let out = broker()
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("server.public_url"), "{err}");
}

#[test]
fn a_production_config_without_the_environment_line_is_accepted_and_serves_no_example() {
    let toml = format!(
        "[server]\npublic_url = \"https://auth.example.com\"\n[keys]\ncurrent = \"k1\"\n[keys.ring]\nk1 = \"{}\"\n[providers.corp]\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"abc\"\nclient_secret = \"s\"\n",
        "A".repeat(43)
    );
    let config =
        oidc_broker::config::from_toml_str(&toml, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.server.environment,
        oidc_broker::config::Environment::Production
    );
    assert!(!config.server.example_app);
}

#[test]
fn every_example_provider_config_is_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("providers");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            seen += 1;
            let out = broker()
                .args(["check-config", "--config"])
                .arg(&path)
                .envs(
                    std::fs::read_to_string(&path)
                        .unwrap()
                        .contains("[keys]")
                        .then(|| {
                            (
                                "BROKER_KEYS__RING__K1",
                                oidc_broker::tokens::seal::generate_key().unwrap(),
                            )
                        }),
                )
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    assert!(seen >= 2);
}

/// Starts the real binary, signs in through the dev provider, and reads everything it logged.
#[tokio::test]
async fn a_login_leaves_no_secret_in_the_logs() {
    use crate::helpers::*;
    let served = serve_binary(
        "[providers.dev]\nkind = \"dev\"\nclient_secret = \"dev-secret-must-not-leak\"\n[clients.app]\nredirect_uris = [\"http://app.test/cb\"]\nclient_secret = \"app-secret-must-not-leak\"\n",
        &[("BROKER_LOG", "debug")],
    )
    .await;
    let base = served.base.clone();
    let client = browser();

    // The same steps as TestApp::dev_login, collecting every secret value on the way.
    let res = client
        .get(format!("{base}/auth/login?provider=dev"))
        .send()
        .await
        .unwrap();
    let binding = cookie_value(res.headers(), "broker_login").unwrap();
    let authorize = location(res.headers());
    let page = client
        .get(&authorize)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut form = Form::parse(&page, &authorize);
    form.set("user", "alice");
    let res = client
        .post(&form.action)
        .form(&form.fields)
        .send()
        .await
        .unwrap();
    let callback = location(res.headers());
    let res = client.get(&callback).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let session = cookie_value(res.headers(), "broker_session").unwrap();
    assert_eq!(
        client
            .get(format!("{base}/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A refused replay logs too.
    assert_eq!(client.get(&callback).send().await.unwrap().status(), 400);

    // An app signing in through the broker as an OpenID Provider: code, tokens, refresh, a
    // replayed code, userinfo.
    let res = client
        .get(format!(
            "{base}/oauth2/authorize?response_type=code&client_id=app&redirect_uri=http%3A%2F%2Fapp.test%2Fcb&scope=openid%20offline_access&state=app-state-must-not-leak&nonce=app-nonce-must-not-leak"
        ))
        .send()
        .await
        .unwrap();
    let app_code = query_param(&location(res.headers()), "code").unwrap();
    let op_token = |form: Vec<(&'static str, String)>| {
        let url = format!("{base}/oauth2/token");
        async move {
            let res = reqwest::Client::new()
                .post(url)
                .basic_auth("app", Some("app-secret-must-not-leak"))
                .form(&form)
                .send()
                .await
                .unwrap();
            json(res).await
        }
    };
    let code_grant = |code: &str| {
        vec![
            ("grant_type", "authorization_code".to_string()),
            ("code", code.to_string()),
            ("redirect_uri", "http://app.test/cb".to_string()),
        ]
    };
    let tokens = op_token(code_grant(&app_code)).await;
    let app_refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let refreshed = op_token(vec![
        ("grant_type", "refresh_token".to_string()),
        ("refresh_token", app_refresh.clone()),
    ])
    .await;
    assert_eq!(
        op_token(code_grant(&app_code)).await["error"],
        "invalid_grant"
    );
    let app_access = refreshed["access_token"].as_str().unwrap().to_string();
    let info = reqwest::Client::new()
        .get(format!("{base}/oauth2/userinfo"))
        .bearer_auth(&app_access)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401, "the replay revoked the grant");

    let logs = served.logs().await;
    assert!(logs.contains("login succeeded"), "{logs}");
    let secrets = [
        (
            "authorization code",
            query_param(&callback, "code").unwrap(),
        ),
        ("state", query_param(&callback, "state").unwrap()),
        ("nonce", query_param(&authorize, "nonce").unwrap()),
        (
            "PKCE challenge",
            query_param(&authorize, "code_challenge").unwrap(),
        ),
        ("session cookie", session),
        ("login-binding cookie", binding),
        ("client secret", "dev-secret-must-not-leak".to_string()),
        ("app's authorization code", app_code),
        ("app's state", "app-state-must-not-leak".to_string()),
        ("app's nonce", "app-nonce-must-not-leak".to_string()),
        (
            "app's client secret",
            "app-secret-must-not-leak".to_string(),
        ),
        ("app's refresh token", app_refresh),
        (
            "app's rotated refresh token",
            refreshed["refresh_token"].as_str().unwrap().to_string(),
        ),
        ("app's access token", app_access),
        (
            "app's ID token",
            tokens["id_token"].as_str().unwrap().to_string(),
        ),
    ];
    for (what, value) in secrets {
        assert!(
            !logs.contains(&value),
            "the {what} appears in the logs:\n{logs}"
        );
    }
}

#[test]
fn check_config_explains_a_provider_token_it_cannot_send() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("routes.toml");
    std::fs::write(
        &path,
        r#"
[server]
environment = "development"
[providers.dev]
kind = "dev"
[routes."/graph/"]
upstream = "http://127.0.0.1:9000/"
jwt = true
provider_token = "authorization"
[routes."/files/"]
upstream = "http://127.0.0.1:9001/"
provider_token = "X-Auth-Token"
[routes."/ok/"]
upstream = "http://127.0.0.1:9002/"
jwt = true
provider_token = "X-Provider-Token"
"#,
    )
    .unwrap();
    let out = broker()
        .args(["check-config", "--offline", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 problem(s)"), "{err}");
    assert!(
        err.contains(r#"routes."/graph/".provider_token: puts the provider token in Authorization, where jwt = true puts the broker JWT (fix: set jwt = false"#),
        "{err}"
    );
    assert!(
        err.contains(
            r#"routes."/files/".provider_token: `X-Auth-Token` is a header the proxy sets"#
        ),
        "{err}"
    );
    assert!(err.contains(r#"e.g. "X-Provider-Token""#), "{err}");
}
