//! `kind = "auth0"`: an Auth0 application, named by its tenant's domain.

use super::urls::domain_base;
use super::{Check, KindSettings, RawProvider};

pub(super) const KEYS: &[&str] = &[
    "domain",
    "audience",
    "organization",
    "connection",
    "client_secret",
    "revocation_endpoint",
    "end_session_endpoint",
];

pub(super) fn check(c: &mut Check<'_>, raw: &RawProvider) -> KindSettings {
    let domain = c.required(
        "domain",
        raw.domain.clone(),
        "copy the Domain from the Auth0 application's settings, e.g. \"tenant.eu.auth0.com\"",
    );
    let mut base = None;
    let mut issuer = None;
    if !domain.is_empty() {
        base = domain_base(c, &domain);
        // Auth0's issuer is the domain with a trailing slash, compared byte for byte.
        issuer = base.as_ref().map(|b| format!("{b}/"));
    }
    let client_id = c.required(
        "client_id",
        raw.client_id.clone(),
        "copy the Client ID from the Auth0 application's settings",
    );
    let mut auth_params = Vec::new();
    for (name, v) in [
        ("audience", &raw.audience),
        ("organization", &raw.organization),
        ("connection", &raw.connection),
    ] {
        if let Some(v) = v {
            auth_params.push((name.to_string(), v.clone()));
        }
    }
    KindSettings {
        issuer,
        client_id,
        auth_params,
        domain_base: base,
        firebase: None,
    }
}
