//! `kind = "oidc"`: any OpenID provider, found through its issuer's discovery document.

use url::Url;

use super::{Check, KindSettings, RawProvider};

pub(super) const KEYS: &[&str] = &[
    "issuer",
    "client_secret",
    "revocation_endpoint",
    "end_session_endpoint",
];

pub(super) fn check(c: &mut Check<'_>, raw: &RawProvider) -> KindSettings {
    let issuer = issuer_url(c, raw.issuer.as_deref());
    let client_id = c.required(
        "client_id",
        raw.client_id.clone(),
        "copy the client id from the provider's application settings",
    );
    KindSettings {
        issuer,
        client_id,
        ..KindSettings::default()
    }
}

fn issuer_url(c: &mut Check<'_>, issuer: Option<&str>) -> Option<String> {
    match issuer.map(|s| (s, Url::parse(s))) {
        None => {
            c.problem(
                "issuer",
                "missing",
                "set the issuer URL exactly as the provider's discovery document states it",
            );
            None
        }
        Some((_, Err(_))) => {
            c.problem(
                "issuer",
                "not a URL",
                "set the issuer URL, e.g. \"https://idp.example.com\"",
            );
            None
        }
        Some((s, Ok(u))) if c.secure_enough(&u) => Some(s.to_string()),
        Some(_) => {
            c.problem(
                "issuer",
                "issuers must use https (plain http only for a loopback issuer in development)",
                "use the provider's https issuer URL",
            );
            None
        }
    }
}
