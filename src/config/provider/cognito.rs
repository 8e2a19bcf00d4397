//! `kind = "cognito"`: an Amazon Cognito user pool's app client, with the pool's hosted domain.

use url::Url;

use super::urls::domain_base;
use super::{Check, Environment, KindSettings, RawProvider, is_loopback_host};

pub(super) const KEYS: &[&str] = &[
    "region",
    "user_pool_id",
    "domain",
    "identity_provider",
    "client_secret",
    "issuer",
    "revocation_endpoint",
    "end_session_endpoint",
];

pub(super) fn check(c: &mut Check<'_>, raw: &RawProvider) -> KindSettings {
    let region = c.required(
        "region",
        raw.region.clone(),
        "the user pool's AWS region, e.g. \"eu-west-1\"",
    );
    let pool = c.required(
        "user_pool_id",
        raw.user_pool_id.clone(),
        "the User pool ID, e.g. \"eu-west-1_AbCdEfGhI\"",
    );
    let domain = c.required(
        "domain",
        raw.domain.clone(),
        "the user pool's domain (App integration → Domain), e.g. \"myapp.auth.eu-west-1.amazoncognito.com\"",
    );
    let base = if domain.is_empty() {
        None
    } else {
        domain_base(c, &domain)
    };
    check_pool(c, &region, &pool);
    let issuer = issuer(c, raw.issuer.as_deref(), &region, &pool);
    let client_id = c.required(
        "client_id",
        raw.client_id.clone(),
        "the App client id (App integration → App clients)",
    );
    let auth_params = raw
        .identity_provider
        .iter()
        .map(|idp| ("identity_provider".to_string(), idp.clone()))
        .collect();
    KindSettings {
        issuer,
        client_id,
        auth_params,
        domain_base: base,
        firebase: None,
    }
}

/// The region is an AWS region, and the pool id starts with it.
fn check_pool(c: &mut Check<'_>, region: &str, pool: &str) {
    if !region.is_empty()
        && !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        c.problem(
            "region",
            format!("`{region}` is not an AWS region"),
            "write it like \"eu-west-1\"",
        );
    }
    if !pool.is_empty() && !pool.starts_with(&format!("{region}_")) {
        c.problem(
            "user_pool_id",
            "does not start with the region",
            "copy the pool id exactly, e.g. \"eu-west-1_AbCdEfGhI\"",
        );
    }
}

/// Derived from region and pool; written only to point at a local stand-in during development.
fn issuer(c: &mut Check<'_>, custom: Option<&str>, region: &str, pool: &str) -> Option<String> {
    let Some(custom) = custom else {
        return Some(format!("https://cognito-idp.{region}.amazonaws.com/{pool}"));
    };
    match Url::parse(custom) {
        Ok(u) if c.environment == Environment::Development && is_loopback_host(&u) => {
            Some(custom.to_string())
        }
        _ => {
            c.problem(
                "issuer",
                "a Cognito issuer is derived from region and user_pool_id",
                "remove the key (it is only for a local stand-in in development)",
            );
            None
        }
    }
}
