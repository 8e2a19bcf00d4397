//! Auth0 and Cognito against fakes that reproduce their documented quirks.

use serde_json::json;

use crate::fake_op::{CLIENT_ID, CLIENT_SECRET, COGNITO_POOL, FakeOp, Flavor};
use crate::helpers::*;

pub fn auth0_toml(fake: &FakeOp, id: &str, extra: &str) -> String {
    format!(
        "[providers.{id}]\nkind = \"auth0\"\ndomain = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nfetch_userinfo = false\n{extra}\n",
        fake.base
    )
}

pub fn cognito_toml(fake: &FakeOp, id: &str, extra: &str) -> String {
    format!(
        "[providers.{id}]\nkind = \"cognito\"\nregion = \"us-east-1\"\nuser_pool_id = \"{COGNITO_POOL}\"\ndomain = \"{}\"\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n{extra}\n",
        fake.base, fake.issuer
    )
}

#[tokio::test]
async fn auth0_login_keeps_the_trailing_slash_issuer_and_passes_its_parameters() {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    assert!(fake.issuer.ends_with('/'));
    let app = spawn(Spawn::providers(auth0_toml(
        &fake,
        "a0",
        "audience = \"https://api.example.com\"\nconnection = \"google-oauth2\"\n[providers.a0.claims]\nroles = \"https://example.com/roles\"\n",
    )))
    .await;
    let res = fake_login(&app, "provider=a0").await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    let q = fake.last_authorize();
    assert_eq!(
        q.get("audience").map(String::as_str),
        Some("https://api.example.com")
    );
    assert_eq!(
        q.get("connection").map(String::as_str),
        Some("google-oauth2")
    );
    let me = json(app.me().await).await;
    assert_eq!(me["user"]["provider_kind"], "auth0");
    assert_eq!(
        me["user"]["roles"],
        json!(["admin"]),
        "namespaced claim mapped to roles"
    );
    assert_eq!(me["user"]["picture"], "https://cdn.example.com/ada.png");
}

#[tokio::test]
async fn auth0_token_whose_issuer_lacks_the_trailing_slash_is_refused() {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let app = spawn(Spawn::providers(auth0_toml(&fake, "a0", ""))).await;
    let without = fake.base.clone();
    fake.tamper(move |_, c| c["iss"] = json!(without));
    let res = fake_login(&app, "provider=a0").await;
    assert_eq!(json(res).await["error"], "invalid_id_token");
}

#[tokio::test]
async fn auth0_organization_must_match_the_tokens_org_id() {
    let fake = FakeOp::start_flavor(Flavor::Auth0).await;
    let app = spawn(Spawn::providers(auth0_toml(
        &fake,
        "a0",
        "organization = \"org_abc\"\n",
    )))
    .await;
    fake.tamper(|_, c| c["org_id"] = json!("org_other"));
    let res = fake_login(&app, "provider=a0").await;
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_id_token");
    assert!(
        body["message"].as_str().unwrap().contains("organization"),
        "{body}"
    );
    assert_eq!(
        fake.last_authorize()
            .get("organization")
            .map(String::as_str),
        Some("org_abc")
    );
    fake.tamper(|_, c| c["org_id"] = json!("org_abc"));
    assert_eq!(fake_login(&app, "provider=a0").await.status(), 303);
}

#[tokio::test]
async fn cognito_login_maps_groups_and_keeps_the_username() {
    let fake = FakeOp::start_flavor(Flavor::Cognito).await;
    let app = spawn(Spawn::providers(cognito_toml(
        &fake,
        "cog",
        "identity_provider = \"Google\"\n",
    )))
    .await;
    let res = fake_login(&app, "provider=cog").await;
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    assert_eq!(
        fake.last_authorize()
            .get("identity_provider")
            .map(String::as_str),
        Some("Google")
    );
    let me = json(app.me().await).await;
    let user = &me["user"];
    assert_eq!(user["provider_kind"], "cognito");
    assert_eq!(user["groups"], json!(["staff"]));
    assert_eq!(user["claims"]["cognito:username"], "user-1");
    assert_eq!(user["email_verified"], true);
}

#[tokio::test]
async fn cognito_access_token_cannot_sign_in() {
    // Cognito signs access and ID tokens with the same keys; token_use tells them apart.
    let fake = FakeOp::start_flavor(Flavor::Cognito).await;
    let app = spawn(Spawn::providers(cognito_toml(&fake, "cog", ""))).await;
    fake.tamper(|_, c| c["token_use"] = json!("access"));
    let body = json(fake_login(&app, "provider=cog").await).await;
    assert_eq!(body["error"], "invalid_id_token");
    assert!(
        body["message"].as_str().unwrap().contains("token_use"),
        "{body}"
    );
}

#[tokio::test]
async fn cognito_userinfo_string_email_verified_is_understood() {
    // Without email_verified in the ID token, the userinfo answer ("true" as a string) fills it.
    let fake = FakeOp::start_flavor(Flavor::Cognito).await;
    let app = spawn(Spawn::providers(cognito_toml(&fake, "cog", ""))).await;
    fake.tamper(|_, c| {
        c.as_object_mut().unwrap().remove("email_verified");
    });
    assert_eq!(fake_login(&app, "provider=cog").await.status(), 303);
    assert_eq!(json(app.me().await).await["user"]["email_verified"], true);
}

#[test]
fn kind_settings_are_checked_per_kind() {
    let err = oidc_broker::config::from_toml_str(
        "[providers.a0]\nkind = \"auth0\"\ndomain = \"tenant.auth0.com\"\nclient_id = \"x\"\nclient_secret = \"y\"\nissuer = \"https://other\"\nregion = \"eu-west-1\"\n\
         [providers.cog]\nkind = \"cognito\"\nregion = \"eu-west-1\"\nuser_pool_id = \"us-east-1_X\"\ndomain = \"d.auth.eu-west-1.amazoncognito.com\"\nclient_id = \"c\"\n\
         [providers.fb]\nkind = \"firebase\"\nproject_id = \"p\"\napi_key = \"k\"\nemulator_host = \"10.0.0.5:9099\"\n",
        Vec::new(),
    )
    .unwrap_err();
    let keys: Vec<_> = err.0.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "providers.a0.issuer",
        "providers.a0.region",
        "providers.cog.user_pool_id",
        "providers.fb.emulator_host",
    ] {
        assert!(keys.contains(&k), "{k} not in {keys:?}");
    }
}

#[test]
fn derived_issuers_follow_each_providers_documentation() {
    let c = oidc_broker::config::from_toml_str(
        "[server]\nenvironment = \"development\"\n[providers.a0]\nkind = \"auth0\"\ndomain = \"tenant.eu.auth0.com\"\nclient_id = \"x\"\nclient_secret = \"y\"\n\
         [providers.cog]\nkind = \"cognito\"\nregion = \"eu-west-1\"\nuser_pool_id = \"eu-west-1_AbC\"\ndomain = \"d.auth.eu-west-1.amazoncognito.com\"\nclient_id = \"c\"\n\
         [providers.fb]\nkind = \"firebase\"\nproject_id = \"my-proj\"\napi_key = \"k\"\n",
        Vec::new(),
    )
    .unwrap();
    assert_eq!(
        c.providers["a0"].issuer.as_deref(),
        Some("https://tenant.eu.auth0.com/")
    );
    assert_eq!(
        c.providers["cog"].issuer.as_deref(),
        Some("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC")
    );
    assert_eq!(c.providers["cog"].claims.groups, "cognito:groups");
    assert_eq!(
        c.providers["fb"].issuer.as_deref(),
        Some("https://securetoken.google.com/my-proj")
    );
}

#[tokio::test]
async fn the_same_person_through_every_kind_has_the_same_user_shape() {
    use crate::fake_firebase::FakeFirebase;
    let generic = FakeOp::start().await;
    let auth0 = FakeOp::start_flavor(Flavor::Auth0).await;
    let cognito = FakeOp::start_flavor(Flavor::Cognito).await;
    for f in [&generic, &auth0, &cognito] {
        f.behave(|b| b.subject = "ada".into());
    }
    let firebase = FakeFirebase::start().await;
    let toml = format!(
        "{}{}{}{}[providers.dev]\nkind = \"dev\"\nusers = [{{ sub = \"ada\", email = \"ada@example.test\", name = \"Test User\" }}]\n",
        generic.provider_toml("corp"),
        auth0_toml(&auth0, "a0", ""),
        cognito_toml(&cognito, "cog", ""),
        firebase.provider_toml("fb"),
    );
    let app = spawn(Spawn::providers(toml)).await;

    let mut users = Vec::new();
    for id in ["corp", "a0", "cog"] {
        assert_eq!(
            fake_login(&app, &format!("provider={id}")).await.status(),
            303,
            "{id}"
        );
        users.push(json(app.me().await).await["user"].clone());
    }
    assert_eq!(app.dev_login("ada").await.status(), 303);
    users.push(json(app.me().await).await["user"].clone());
    let form = [
        ("email", "ada@example.test"),
        ("password", "right-password"),
    ];
    let res = app
        .browser
        .post(app.url("/auth/firebase/fb/password"))
        .header("origin", app.base.clone())
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    users.push(json(app.me().await).await["user"].clone());

    let keys = |u: &serde_json::Value| {
        let mut k: Vec<String> = u.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let expected = [
        "claims",
        "email",
        "email_verified",
        "family_name",
        "given_name",
        "groups",
        "id",
        "locale",
        "name",
        "picture",
        "provider",
        "provider_kind",
        "roles",
        "subject",
    ];
    let kinds: Vec<_> = users
        .iter()
        .map(|u| u["provider_kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, ["oidc", "auth0", "cognito", "dev", "firebase"]);
    for u in &users {
        assert_eq!(keys(u), expected, "{u}");
        assert_eq!(u["email"], "ada@example.test", "{u}");
        assert_eq!(u["email_verified"], true, "{u}");
        assert_eq!(u["name"], "Test User", "{u}");
        assert!(
            u["groups"].is_array() && u["roles"].is_array() && u["claims"].is_object(),
            "{u}"
        );
    }
}

#[test]
fn an_unreadable_firebase_service_account_is_a_config_problem() {
    let err = oidc_broker::config::from_toml_str(
        "[providers.fb]\nkind = \"firebase\"\nproject_id = \"p\"\napi_key = \"k\"\nservice_account_file = \"/nonexistent/sa.json\"\n",
        Vec::new(),
    )
    .unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|p| p.key == "providers.fb.service_account_file"),
        "{err}"
    );
}

#[test]
fn a_bad_sealing_key_or_a_missing_one_in_production_is_a_config_problem() {
    let err = oidc_broker::config::from_toml_str(
        "[keys]\ncurrent = \"k1\"\n[keys.ring]\nk1 = \"too-short\"\n[providers.dev]\nkind = \"dev\"\n",
        Vec::new(),
    )
    .unwrap_err();
    assert!(
        err.0
            .iter()
            .any(|p| p.key == "keys" && p.message.contains("32 bytes")),
        "{err}"
    );
    let err = oidc_broker::config::from_toml_str(
        "[server]\nenvironment = \"production\"\npublic_url = \"https://auth.example.com\"\n[providers.corp]\nkind = \"oidc\"\nissuer = \"https://idp.example.com\"\nclient_id = \"a\"\nclient_secret = \"b\"\n",
        Vec::new(),
    )
    .unwrap_err();
    assert!(err.0.iter().any(|p| p.key == "keys"), "{err}");
}
