//! `GET /auth/check`: forward authentication for nginx `auth_request` and Traefik `forwardAuth`.
//! 200 with the identity in `X-Auth-*` headers when the request carries a live session (cookie or
//! bearer token), 401 with the usual JSON body when it does not.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::caller::Caller;
use crate::identity::UserView;

pub fn router() -> Router<AppState> {
    Router::new().route("/auth/check", get(check))
}

/// A header value from user data: UTF-8 is sent as is (RFC 9110 obs-text); anything a header
/// cannot carry (control characters, line breaks) drops the header rather than the request.
fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_bytes(s.as_bytes()).ok()
}

/// `X-Auth-Groups`: each group name percent-encoded (every byte but RFC 3986 §2.3's unreserved
/// `A-Z a-z 0-9 - . _ ~`), joined by commas. A group named `a,b` is `a%2Cb`, never the two groups
/// `a,b`; plain names are unchanged; to read it, split on `,` and percent-decode each part.
/// Empty names are left out: they would be indistinguishable from no group at all.
pub fn encode_groups(groups: &[String]) -> String {
    let mut out = String::new();
    for group in groups.iter().filter(|g| !g.is_empty()) {
        if !out.is_empty() {
            out.push(',');
        }
        for b in group.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// `X-Auth-*` headers for `user` in session `handle`.
pub fn identity_headers(user: &UserView, handle: &str) -> Vec<(HeaderName, HeaderValue)> {
    let id = &user.identity;
    let groups = encode_groups(&id.groups);
    let fields: [(&str, Option<&str>); 7] = [
        ("x-auth-user", Some(&user.id)),
        ("x-auth-email", id.email.as_deref()),
        (
            "x-auth-email-verified",
            Some(if id.email_verified { "true" } else { "false" }),
        ),
        ("x-auth-name", id.name.as_deref()),
        ("x-auth-provider", Some(&id.provider)),
        ("x-auth-session", Some(handle)),
        ("x-auth-groups", Some(&groups)),
    ];
    fields
        .into_iter()
        .filter_map(|(name, v)| Some((HeaderName::from_static(name), value(v?)?)))
        .collect()
}

async fn check(caller: Caller) -> Response {
    let mut res = StatusCode::OK.into_response();
    for (name, v) in identity_headers(&caller.record.user, &caller.record.handle) {
        res.headers_mut().insert(name, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn decode_groups(header: &str) -> Vec<String> {
        if header.is_empty() {
            return vec![];
        }
        header
            .split(',')
            .map(|g| {
                url::form_urlencoded::parse(format!("g={}", g.replace('+', "%2B")).as_bytes())
                    .next()
                    .unwrap()
                    .1
                    .into_owned()
            })
            .collect()
    }

    #[test]
    fn a_group_holding_a_comma_is_told_apart_from_two_groups() {
        let one = encode_groups(&["a,b".into()]);
        let two = encode_groups(&["a".into(), "b".into()]);
        assert_eq!(one, "a%2Cb");
        assert_eq!(two, "a,b");
        assert_eq!(decode_groups(&one), ["a,b"]);
        assert_eq!(decode_groups(&two), ["a", "b"]);
        assert_eq!(
            encode_groups(&["admins".into(), "staff".into()]),
            "admins,staff"
        );
        assert_eq!(
            encode_groups(&["Domain Admins".into(), "%2C".into()]),
            "Domain%20Admins,%252C"
        );
        assert_eq!(encode_groups(&[]), "");
    }

    proptest! {
        #[test]
        fn groups_round_trip_through_the_header(groups in prop::collection::vec(any::<String>(), 0..6)) {
            let encoded = encode_groups(&groups);
            // Always a valid header value: visible ASCII only.
            prop_assert!(HeaderValue::from_str(&encoded).is_ok());
            prop_assert!(encoded.bytes().all(|b| b.is_ascii_graphic()));
            let kept: Vec<String> = groups.into_iter().filter(|g| !g.is_empty()).collect();
            prop_assert_eq!(decode_groups(&encoded), kept);
        }
    }
}
