//! What the broker learns about a provider beyond the login itself: where to revoke (OpenID
//! Connect discovery, else RFC 8414 metadata, else explicit settings), saying so when nothing can
//! be revoked, and discovery failures that name the URL and the field.

use std::process::Command;

use serde_json::{Value, json};

use crate::fake_op::{FakeOp, Flavor, Revocation};
use crate::helpers::*;

const OFFLINE: &str = "scopes = [\"openid\", \"email\", \"offline_access\"]\n";

async fn logout(app: &TestApp) -> Value {
    let res = app.logout().await;
    assert_eq!(res.status(), 200);
    json(res).await
}

/// The `detail` of the newest audit event named `event`.
async fn last_detail(app: &TestApp, event: &str) -> Value {
    let rows = app.state.store.audit_events(None, 100).await.unwrap();
    let row = rows
        .iter()
        .find(|r| r.event == event)
        .unwrap_or_else(|| panic!("no {event} event in {rows:?}"));
    serde_json::from_str(&row.detail).unwrap()
}

async fn readyz(app: &TestApp) -> (u16, Value) {
    let res = app.get("/readyz").await;
    (res.status().as_u16(), json(res).await)
}

#[tokio::test]
async fn logout_revokes_at_the_rfc8414_endpoint_when_discovery_names_none() {
    let fake = FakeOp::start().await;
    fake.behave(|b| b.revocation = Revocation::Rfc8414Only);
    let app = spawn(Spawn::providers(fake.provider_toml("corp") + OFFLINE)).await;
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    logout(&app).await;
    let revoked = fake.revocations();
    assert_eq!(revoked.len(), 1, "revoked at the RFC 8414 endpoint");
    assert!(revoked[0].0.starts_with("rt-"));
    assert_eq!(revoked[0].1, "refresh_token");
    assert!(
        fake.metadata_requests()
            .contains(&"/.well-known/oauth-authorization-server".to_string())
    );
    assert_eq!(last_detail(&app, "logout").await["revocation"], "revoked");
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["warnings"], json!({}), "it can revoke: no warning");
}

#[tokio::test]
async fn rfc8414_metadata_of_an_issuer_with_a_path_is_read_where_section_3_1_puts_it() {
    // Cognito's fake has the issuer `{base}/{pool}`; as a generic oidc provider it gets no
    // kind-specific revocation endpoint, and its discovery names none.
    let fake = FakeOp::start_flavor(Flavor::Cognito).await;
    fake.behave(|b| b.revocation = Revocation::Rfc8414Only);
    let app = spawn(Spawn::providers(fake.provider_toml("corp") + OFFLINE)).await;
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    logout(&app).await;
    assert_eq!(
        fake.metadata_requests()[0],
        format!(
            "/.well-known/oauth-authorization-server/{}",
            crate::fake_op::COGNITO_POOL
        ),
        "the well-known segment goes between the host and the issuer's path"
    );
    assert_eq!(fake.revocations().len(), 1);
    assert_eq!(last_detail(&app, "logout").await["revocation"], "revoked");
}

#[tokio::test]
async fn rfc8414_metadata_naming_another_issuer_is_ignored() {
    let fake = FakeOp::start().await;
    fake.behave(|b| b.revocation = Revocation::Rfc8414ForAnotherIssuer);
    let app = spawn(Spawn::providers(fake.provider_toml("corp") + OFFLINE)).await;
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    logout(&app).await;
    assert!(!fake.metadata_requests().is_empty());
    assert!(fake.revocations().is_empty(), "RFC 8414 §3.3: not ours");
    assert_eq!(
        last_detail(&app, "logout").await["revocation"],
        "nothing_revoked"
    );
}

#[tokio::test]
async fn without_any_revocation_endpoint_logout_audits_nothing_revoked_and_readyz_warns() {
    let fake = FakeOp::start().await;
    fake.behave(|b| b.revocation = Revocation::Nowhere);
    let quiet = FakeOp::start().await;
    quiet.behave(|b| b.revocation = Revocation::Nowhere);
    let app = spawn(Spawn::providers(
        // `plain` asks for no offline_access: no refresh tokens expected, nothing to warn about.
        fake.provider_toml("corp") + OFFLINE + &quiet.provider_toml("plain"),
    ))
    .await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200, "a warning is not an outage: {body}");
    assert_eq!(body["status"], "ready");
    let warnings = body["warnings"]["corp"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{body}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("issues refresh tokens but has no revocation endpoint"),
        "{body}"
    );
    assert!(body["warnings"].get("plain").is_none(), "{body}");

    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    let body = logout(&app).await;
    assert!(body["logout_url"].as_str().is_some());
    assert_eq!(app.me().await.status(), 401, "the local logout happened");
    assert!(fake.revocations().is_empty());
    assert_eq!(
        last_detail(&app, "logout").await["revocation"],
        "nothing_revoked"
    );
}

#[tokio::test]
async fn explicit_revocation_and_end_session_endpoints_are_used_when_metadata_has_none() {
    let fake = FakeOp::start().await;
    fake.behave(|b| {
        b.revocation = Revocation::Nowhere;
        b.discovery_edit = Some(std::sync::Arc::new(|d: &mut Value| {
            d.as_object_mut().unwrap().remove("end_session_endpoint");
        }));
    });
    let toml = format!(
        "{}{OFFLINE}revocation_endpoint = \"{b}/revoke\"\nend_session_endpoint = \"{b}/signed-out\"\n",
        fake.provider_toml("corp"),
        b = fake.base
    );
    let app = spawn(Spawn::providers(toml)).await;
    let (status, body) = readyz(&app).await;
    assert_eq!(status, 200);
    assert_eq!(body["warnings"], json!({}), "{body}");
    assert_eq!(fake_login(&app, "provider=corp").await.status(), 303);
    let url = logout(&app).await["logout_url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        url.starts_with(&format!("{}/signed-out?", fake.base)),
        "{url}"
    );
    assert!(query_param(&url, "id_token_hint").is_some());
    assert_eq!(fake.revocations().len(), 1);
    assert_eq!(last_detail(&app, "logout").await["revocation"], "revoked");
}

// ---- check-config ------------------------------------------------------------------------

fn check_config(provider_toml: &str) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\npublic_url = \"http://127.0.0.1:9\"\nenvironment = \"development\"\n[store]\nurl = \"sqlite://{}/b.db\"\n{provider_toml}",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_oidc-broker"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn check_config_warns_about_refresh_tokens_that_cannot_be_revoked() {
    let fake = FakeOp::start().await;
    fake.behave(|b| b.revocation = Revocation::Nowhere);
    let toml = fake.provider_toml("corp") + OFFLINE;
    let (ok, _, err) = tokio::task::spawn_blocking(move || check_config(&toml))
        .await
        .unwrap();
    assert!(ok, "warnings keep the exit status 0: {err}");
    assert!(
        err.contains(
            "warning: providers.corp: issues refresh tokens but has no revocation endpoint"
        ),
        "{err}"
    );

    let fake = FakeOp::start().await;
    fake.behave(|b| b.revocation = Revocation::Rfc8414Only);
    let toml = fake.provider_toml("corp") + OFFLINE;
    let (ok, out, err) = tokio::task::spawn_blocking(move || check_config(&toml))
        .await
        .unwrap();
    assert!(ok);
    assert!(out.contains("providers.corp: discovery ok"), "{out}");
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn check_config_offline_contacts_no_provider() {
    // A loopback port nobody listens on: with --offline nothing is tried, so nothing is said.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\npublic_url = \"http://127.0.0.1:9\"\nenvironment = \"development\"\n[providers.gone]\nkind = \"oidc\"\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"a\"\nclient_secret = \"b\"\n"
        ),
    )
    .unwrap();
    let run = |offline: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_oidc-broker"));
        c.args(["check-config", "--config"]).arg(&path);
        if offline {
            c.arg("--offline");
        }
        let out = c.output().unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(run(true), "");
    let online = run(false);
    assert!(
        online.contains(&format!(
            "warning: providers.gone: discovery at http://127.0.0.1:{port}/.well-known/openid-configuration: request to 127.0.0.1 failed"
        )),
        "{online}"
    );
}

// ---- discovery failures ------------------------------------------------------------------

/// A fake whose discovery document is edited by `edit`, and the broker in front of it.
async fn broken(edit: impl Fn(&mut Value) + Send + Sync + 'static) -> (FakeOp, TestApp) {
    let fake = FakeOp::start().await;
    fake.behave(|b| b.discovery_edit = Some(std::sync::Arc::new(edit)));
    let app = spawn(Spawn::providers(fake.provider_toml("corp"))).await;
    (fake, app)
}

/// What readyz says about `corp`, checking it is not ready and that login fails as a provider
/// failure (the detail stays in the log, not in the answer).
async fn discovery_error(fake: &FakeOp, app: &TestApp) -> String {
    let (status, body) = readyz(app).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["providers"]["corp"], "unreachable");
    let res = app
        .browser
        .get(app.url("/auth/login?provider=corp"))
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    let login = json(res).await;
    assert_eq!(login["error"], "provider_misconfigured");
    assert!(
        !login["message"].as_str().unwrap().contains(&fake.base),
        "{login}"
    );
    body["provider_errors"]["corp"]
        .as_str()
        .unwrap_or_else(|| panic!("no provider error: {body}"))
        .to_string()
}

#[tokio::test]
async fn a_discovery_document_without_jwks_uri_is_named_in_readyz_and_check_config() {
    let (fake, app) = broken(|d| {
        d.as_object_mut().unwrap().remove("jwks_uri");
    })
    .await;
    let expected = format!(
        "discovery at {}/.well-known/openid-configuration: missing field `jwks_uri`",
        fake.base
    );
    assert_eq!(discovery_error(&fake, &app).await, expected);
    let toml = fake.provider_toml("corp");
    let (ok, _, err) = tokio::task::spawn_blocking(move || check_config(&toml))
        .await
        .unwrap();
    assert!(ok);
    assert!(
        err.contains(&format!("warning: providers.corp: {expected}")),
        "{err}"
    );
}

#[tokio::test]
async fn a_malformed_discovery_field_is_named() {
    let (fake, app) = broken(|d| d["response_types_supported"] = json!("code")).await;
    let msg = discovery_error(&fake, &app).await;
    assert!(
        msg.starts_with(&format!(
            "discovery at {}/.well-known/openid-configuration: `response_types_supported`: invalid type",
            fake.base
        )),
        "{msg}"
    );
}

#[tokio::test]
async fn a_discovery_document_of_another_issuer_is_named() {
    let (fake, app) = broken(|d| d["issuer"] = json!("https://attacker.example")).await;
    let msg = discovery_error(&fake, &app).await;
    assert!(
        msg.contains("`issuer` is `https://attacker.example`, not the configured"),
        "{msg}"
    );
}

#[tokio::test]
async fn unusable_keys_are_named_with_their_url() {
    let (fake, app) = broken(|d| {
        let base = d["issuer"].as_str().unwrap().to_string();
        d["jwks_uri"] = json!(format!("{base}/no-keys-here"));
    })
    .await;
    let msg = discovery_error(&fake, &app).await;
    assert_eq!(
        msg,
        format!("keys at {}/no-keys-here: status 404 Not Found", fake.base)
    );
}

#[tokio::test]
async fn a_discovery_document_that_is_not_an_object_is_named() {
    let (fake, app) = broken(|d| *d = json!("<html>")).await;
    let msg = discovery_error(&fake, &app).await;
    assert!(
        msg.starts_with(&format!(
            "discovery at {}/.well-known/openid-configuration: ",
            fake.base
        )),
        "{msg}"
    );
    assert!(msg.contains("invalid type: string"), "{msg}");
}
