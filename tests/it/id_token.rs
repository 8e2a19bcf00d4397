//! Every way an ID token can be wrong is refused, and no session results.

use serde_json::json;

use crate::fake_op::{FakeOp, SignWith};
use crate::helpers::*;

async fn refused_with(setup: impl FnOnce(&FakeOp)) -> String {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("corp"))).await;
    setup(&fake);
    let res = fake_login(&app, "provider=corp").await;
    assert_eq!(res.status(), 502);
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_id_token", "{body}");
    assert_eq!(app.me().await.status(), 401, "no session may result");
    body["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn id_token_with_a_forged_signature_is_refused() {
    let msg = refused_with(|f| f.behave(|b| b.sign_with = SignWith::ForgedUnderPublishedKid)).await;
    assert!(msg.contains("signature"), "{msg}");
}

#[tokio::test]
async fn id_token_signed_by_an_unknown_key_is_refused() {
    let msg = refused_with(|f| f.behave(|b| b.sign_with = SignWith::UnknownKey)).await;
    assert!(msg.contains("key"), "{msg}");
}

#[tokio::test]
async fn id_token_with_alg_none_is_refused() {
    let msg = refused_with(|f| f.behave(|b| b.sign_with = SignWith::None)).await;
    assert!(msg.contains("algorithm"), "{msg}");
}

#[tokio::test]
async fn id_token_with_hs256_header_is_refused() {
    // Algorithm confusion: an HMAC header over an RSA signature.
    refused_with(|f| f.tamper(|h, _| h["alg"] = json!("HS256"))).await;
}

#[tokio::test]
async fn id_token_for_another_audience_is_refused() {
    let msg = refused_with(|f| f.tamper(|_, c| c["aud"] = json!("someone-else"))).await;
    assert!(msg.contains("another application"), "{msg}");
}

#[tokio::test]
async fn id_token_with_an_extra_untrusted_audience_is_refused() {
    refused_with(|f| {
        f.tamper(|_, c| {
            c["aud"] = json!([crate::fake_op::CLIENT_ID, "other-client"]);
            c["azp"] = json!(crate::fake_op::CLIENT_ID);
        })
    })
    .await;
}

#[tokio::test]
async fn id_token_whose_azp_is_another_client_is_refused() {
    refused_with(|f| f.tamper(|_, c| c["azp"] = json!("other-client"))).await;
}

#[tokio::test]
async fn id_token_from_another_issuer_is_refused() {
    let msg = refused_with(|f| f.tamper(|_, c| c["iss"] = json!("https://attacker.example"))).await;
    assert!(msg.contains("issuer"), "{msg}");
}

#[tokio::test]
async fn id_token_issuer_with_a_trailing_slash_is_not_the_same_issuer() {
    refused_with(|f| {
        let iss = format!("{}/", f.issuer);
        f.tamper(move |_, c| c["iss"] = json!(iss));
    })
    .await;
}

#[tokio::test]
async fn expired_id_token_is_refused() {
    let msg = refused_with(|f| {
        f.tamper(|_, c| {
            let now = c["iat"].as_i64().unwrap();
            c["iat"] = json!(now - 7200);
            c["exp"] = json!(now - 3600);
        })
    })
    .await;
    assert!(msg.contains("expired"), "{msg}");
}

#[tokio::test]
async fn id_token_issued_in_the_future_is_refused() {
    let msg = refused_with(|f| {
        f.tamper(|_, c| {
            let now = c["iat"].as_i64().unwrap();
            c["iat"] = json!(now + 3600);
            c["exp"] = json!(now + 7200);
        })
    })
    .await;
    assert!(msg.contains("iat"), "{msg}");
}

#[tokio::test]
async fn id_token_with_a_wrong_nonce_is_refused() {
    let msg = refused_with(|f| f.tamper(|_, c| c["nonce"] = json!("not-the-nonce"))).await;
    assert!(msg.contains("nonce"), "{msg}");
}

#[tokio::test]
async fn id_token_without_a_nonce_is_refused() {
    refused_with(|f| {
        f.tamper(|_, c| {
            c.as_object_mut().unwrap().remove("nonce");
        })
    })
    .await;
}

#[tokio::test]
async fn id_token_with_a_malformed_claim_names_the_claim() {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("corp"))).await;
    fake.tamper(|_, c| c["groups"] = json!(5));
    let res = fake_login(&app, "provider=corp").await;
    let body = json(res).await;
    assert_eq!(body["error"], "invalid_claims", "{body}");
    assert!(body["message"].as_str().unwrap().contains("groups"));
}

/// The tokens the provider issued for a spent code, once it was revoked (polled: the broker
/// revokes in the background so the error answer does not wait).
async fn revoked_after_refusal(setup: impl FnOnce(&FakeOp)) -> Vec<(String, String)> {
    let fake = FakeOp::start().await;
    let app = spawn(Spawn::providers(fake.provider_toml("corp"))).await;
    setup(&fake);
    let res = fake_login(&app, "provider=corp").await;
    assert_eq!(res.status(), 502);
    assert_eq!(json(res).await["error"], "invalid_id_token");
    for _ in 0..100 {
        if !fake.revocations().is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(app.me().await.status(), 401, "no session may result");
    fake.revocations()
}

#[tokio::test]
async fn a_refused_id_token_gets_the_refresh_token_issued_with_it_revoked() {
    for setup in [
        Box::new(|f: &FakeOp| f.tamper(|_, c| c["nonce"] = json!("not-the-nonce")))
            as Box<dyn FnOnce(&FakeOp)>,
        Box::new(|f: &FakeOp| f.behave(|b| b.sign_with = SignWith::ForgedUnderPublishedKid)),
    ] {
        let revoked = revoked_after_refusal(setup).await;
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        assert!(revoked[0].0.starts_with("rt-"), "the refresh token");
        assert_eq!(revoked[0].1, "refresh_token");
    }
}
