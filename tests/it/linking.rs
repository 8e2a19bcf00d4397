//! Stable user ids: a returning identity keeps its user, and with `[identity] link_by =
//! "verified_email"` a new identity joins the user with the same verified email — so an operator
//! can switch a provider from one kind to another and every returning user keeps their id. An
//! unverified email, on either side, never links.

use serde_json::json;

use crate::fake_op::{FakeOp, Flavor};
use crate::helpers::*;
use crate::kinds::auth0_toml;

const LINK_BY_EMAIL: &str = "[identity]\nlink_by = \"verified_email\"\n";

/// The provider `main` as the built-in dev kind, with Ada (email verified or not).
fn dev_main(email_verified: bool) -> String {
    format!(
        "[providers.main]\nkind = \"dev\"\nusers = [{{ sub = \"ada\", email = \"Ada@Example.test\", email_verified = {email_verified}, name = \"Ada\" }}]\n"
    )
}

/// The provider `main` switched to Auth0, where Ada has another subject and the same email.
async fn auth0_main() -> (FakeOp, String) {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    // The fake's email is `{subject}@example.test`.
    fake.behave(|b| b.subject = "ada".into());
    fake.tamper(|_, c| c["sub"] = json!("auth0|5f7c8ec7c33c6c004bbafe82"));
    let toml = auth0_toml(&fake, "main", "");
    (fake, toml)
}

async fn user_id(app: &TestApp) -> String {
    let me = json(app.me().await).await;
    me["user"]["id"].as_str().unwrap().to_string()
}

async fn dev_login_main(app: &TestApp) -> String {
    assert_eq!(
        app.dev_login_query("ada", "provider=main").await.status(),
        303
    );
    user_id(app).await
}

async fn auth0_login_main(app: &TestApp) -> String {
    let res = fake_login(app, "provider=main").await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let me = json(app.me().await).await;
    assert_eq!(me["user"]["provider_kind"], "auth0");
    me["user"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn switching_a_provider_to_another_kind_keeps_every_user_id() {
    let before = spawn(Spawn::providers(format!(
        "{LINK_BY_EMAIL}{}",
        dev_main(true)
    )))
    .await;
    let id = dev_login_main(&before).await;
    assert!(id.starts_with("usr_"), "{id}");
    assert_eq!(dev_login_main(&before).await, id, "a returning identity");

    // The operator switches `main` from the dev kind to Auth0; the store stays.
    let (_fake, toml) = auth0_main().await;
    let after = spawn(Spawn::providers(format!("{LINK_BY_EMAIL}{toml}")).reuse_db(&before)).await;
    assert_eq!(auth0_login_main(&after).await, id);
    assert_eq!(auth0_login_main(&after).await, id, "and again");

    let identities = after.state.store.identities_of(&id).await.unwrap();
    let subjects: Vec<_> = identities.iter().map(|i| i.subject.as_str()).collect();
    assert_eq!(subjects, ["ada", "auth0|5f7c8ec7c33c6c004bbafe82"]);
    let events = after
        .state
        .store
        .audit_events(Some(&id), 100)
        .await
        .unwrap();
    let linked: Vec<_> = events
        .iter()
        .filter(|e| e.event == "identity.linked")
        .map(|e| e.detail.clone())
        .collect();
    assert_eq!(linked.len(), 2, "{linked:?}");
    assert!(
        linked[0].contains("\"via\":\"verified_email\""),
        "{linked:?}"
    );
    assert!(linked[1].contains("\"via\":\"new_user\""), "{linked:?}");
}

#[tokio::test]
async fn two_providers_at_once_share_the_user_with_the_verified_email() {
    let (_fake, toml) = auth0_main().await;
    let toml = toml.replace("[providers.main]", "[providers.a0]");
    let app = spawn(Spawn::providers(format!(
        "{LINK_BY_EMAIL}{}{toml}",
        dev_main(true)
    )))
    .await;
    let id = dev_login_main(&app).await;
    let res = fake_login(&app, "provider=a0").await;
    assert_eq!(res.status(), 303);
    assert_eq!(user_id(&app).await, id);
}

#[tokio::test]
async fn without_linking_a_new_identity_is_a_new_user() {
    let before = spawn(Spawn::providers(dev_main(true))).await;
    let id = dev_login_main(&before).await;
    let (_fake, toml) = auth0_main().await;
    let after = spawn(Spawn::providers(toml).reuse_db(&before)).await;
    assert_ne!(auth0_login_main(&after).await, id);
}

#[tokio::test]
async fn an_unverified_email_on_the_new_identity_never_links() {
    let before = spawn(Spawn::providers(format!(
        "{LINK_BY_EMAIL}{}",
        dev_main(true)
    )))
    .await;
    let id = dev_login_main(&before).await;
    let (fake, toml) = auth0_main().await;
    fake.tamper(|_, c| {
        c["sub"] = json!("auth0|5f7c8ec7c33c6c004bbafe82");
        c["email_verified"] = json!(false);
    });
    let after = spawn(Spawn::providers(format!("{LINK_BY_EMAIL}{toml}")).reuse_db(&before)).await;
    let other = auth0_login_main(&after).await;
    assert_ne!(other, id);
    assert_eq!(
        json(after.me().await).await["user"]["email_verified"],
        false
    );
}

#[tokio::test]
async fn an_unverified_email_on_the_existing_user_never_links() {
    let before = spawn(Spawn::providers(format!(
        "{LINK_BY_EMAIL}{}",
        dev_main(false)
    )))
    .await;
    let id = dev_login_main(&before).await;
    let (_fake, toml) = auth0_main().await;
    let after = spawn(Spawn::providers(format!("{LINK_BY_EMAIL}{toml}")).reuse_db(&before)).await;
    let other = auth0_login_main(&after).await;
    assert_ne!(other, id, "the existing user's email was never verified");
    // The new user's email is verified: the next new identity with it links there.
    assert!(
        after
            .state
            .store
            .user(&other)
            .await
            .unwrap()
            .unwrap()
            .email_verified
    );
}
