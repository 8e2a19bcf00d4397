//! The one judge of caller-chosen redirect targets (`return_to`, `post_logout_url`, the dev
//! provider's `post_logout_redirect_uri`, and anything added later).
//!
//! A target is judged as the browser will read it: browsers parse `Location` with the WHATWG URL
//! parser (which the `url` crate implements), and that parser drops tabs and newlines and reads `\`
//! as `/`, so a string that "starts with one slash" may still name another host (`/\t/evil.example`
//! is `//evil.example`). So the value is parsed — a path is joined onto the broker's public URL —
//! and then accepted only if the result is on an allowed origin *and* serialises back to exactly
//! what was given: anything the parser would have rewritten is refused rather than guessed at.

use url::{Position, Url};

/// Longer `return_to` values are refused: no real page needs more, and each is stored with a
/// login transaction until it expires.
pub const MAX_LEN: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("the address is longer than {MAX_LEN} bytes")]
    TooLong,
    #[error("the address is not a page on an allowed origin")]
    NotAllowed,
}

/// Where a redirect may go: the broker's own origin and the configured exact origins.
#[derive(Debug, Clone, Copy)]
pub struct RedirectPolicy<'a> {
    pub public_url: &'a Url,
    pub allowed_origins: &'a [String],
}

impl RedirectPolicy<'_> {
    /// The absolute URL to send the browser to, or why not.
    ///
    /// Accepted: an absolute `http(s)` URL on an allowed origin, or a path starting with a single
    /// `/` (taken on the broker's origin). Refused: control characters and spaces, backslashes,
    /// non-ASCII, userinfo, other schemes, relative references that are not absolute paths, dot
    /// segments and any other spelling the URL parser would normalise.
    pub fn judge(&self, raw: &str) -> Result<Url, RedirectError> {
        if raw.len() > MAX_LEN {
            return Err(RedirectError::TooLong);
        }
        // Printable ASCII only: the parser strips tabs and newlines, reads `\` as `/`, and
        // percent-encodes or IDNA-maps the rest, each a way to say one thing and mean another.
        if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_graphic()) || raw.contains('\\') {
            return Err(RedirectError::NotAllowed);
        }
        let url = if raw.starts_with('/') {
            if raw.starts_with("//") {
                return Err(RedirectError::NotAllowed);
            }
            let url = self
                .public_url
                .join(raw)
                .map_err(|_| RedirectError::NotAllowed)?;
            if &url[Position::BeforePath..] != raw {
                return Err(RedirectError::NotAllowed);
            }
            url
        } else {
            let url = Url::parse(raw).map_err(|_| RedirectError::NotAllowed)?;
            // The parser adds the `/` of an empty path; nothing else may differ.
            let same = url.as_str() == raw
                || (url.path() == "/"
                    && url.query().is_none()
                    && url.fragment().is_none()
                    && url.as_str().strip_suffix('/') == Some(raw));
            if !same {
                return Err(RedirectError::NotAllowed);
            }
            url
        };
        if !matches!(url.scheme(), "http" | "https")
            || !url.username().is_empty()
            || url.password().is_some()
            || url.cannot_be_a_base()
        {
            return Err(RedirectError::NotAllowed);
        }
        if self.allows_origin(&url) {
            Ok(url)
        } else {
            Err(RedirectError::NotAllowed)
        }
    }

    /// Whether `url`'s exact origin is the broker's or an allowed one.
    pub fn allows_origin(&self, url: &Url) -> bool {
        let origin = url.origin();
        if !origin.is_tuple() {
            return false;
        }
        let origin = origin.ascii_serialization();
        origin == self.public_url.origin().ascii_serialization()
            || self.allowed_origins.contains(&origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn policy_parts() -> (Url, Vec<String>) {
        (
            Url::parse("https://auth.example.com/").unwrap(),
            vec![
                "https://app.example.com".to_string(),
                "http://127.0.0.1:3000".to_string(),
            ],
        )
    }

    fn judge(raw: &str) -> Result<String, RedirectError> {
        let (public_url, allowed) = policy_parts();
        let policy = RedirectPolicy {
            public_url: &public_url,
            allowed_origins: &allowed,
        };
        policy.judge(raw).map(|u| u.to_string())
    }

    #[test]
    fn pages_on_allowed_origins_and_broker_paths_are_accepted() {
        for (raw, expect) in [
            ("/", "https://auth.example.com/"),
            (
                "/auth/me?x=1#top",
                "https://auth.example.com/auth/me?x=1#top",
            ),
            ("https://app.example.com", "https://app.example.com/"),
            ("https://app.example.com/", "https://app.example.com/"),
            (
                "https://app.example.com/page?a=1&b=%20#frag",
                "https://app.example.com/page?a=1&b=%20#frag",
            ),
            ("http://127.0.0.1:3000/cb", "http://127.0.0.1:3000/cb"),
            ("https://auth.example.com/x", "https://auth.example.com/x"),
            // Encoded bytes stay in the path on our own origin; the browser does not decode them
            // into a host.
            (
                "/%09/evil.example",
                "https://auth.example.com/%09/evil.example",
            ),
            (
                "/%2F/evil.example",
                "https://auth.example.com/%2F/evil.example",
            ),
        ] {
            assert_eq!(judge(raw).as_deref(), Ok(expect), "{raw:?}");
        }
    }

    #[test]
    fn hostile_targets_are_refused() {
        let long = format!("/{}", "a".repeat(MAX_LEN));
        let hostile = [
            // Another host, spelled so that a prefix check sees a path.
            "//evil.example",
            "//evil.example/",
            "/\\evil.example",
            "\\\\evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "/\r\n/evil.example",
            "\t//evil.example",
            " //evil.example",
            "/.//evil.example",
            "/./\\evil.example",
            "https:evil.example",
            "https:/evil.example",
            "https:\\\\evil.example",
            "https://evil.example",
            "https://app.example.com.evil.example/",
            "https://app.example.com@evil.example/",
            "https://evil.example@app.example.com/",
            "https://user:pw@app.example.com/",
            "https://app.example.com:443/",
            "https://APP.example.com/",
            "https://app.example.com\\@evil.example/",
            "https://app.example.com\t/",
            "https://app.example.com/\u{0}",
            "https://app.еxample.com/",
            "https://xn--app-example.com/",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "file:///etc/passwd",
            "ftp://app.example.com/",
            "blob:https://app.example.com/x",
            // Relative forms other than an absolute path, and dot segments.
            "evil.example",
            "?x=1",
            "#top",
            "../x",
            "/a/../x",
            "/a/./x",
            "/%2e%2e/x",
            "/a b",
            "/é",
            "",
            long.as_str(),
        ];
        for raw in hostile {
            assert!(
                judge(raw).is_err(),
                "{raw:?} must be refused, got {:?}",
                judge(raw)
            );
        }
        assert_eq!(judge(&long), Err(RedirectError::TooLong));
    }

    /// The origin a browser reaches from the `Location` header we send, parsed afresh.
    fn browser_origin(location: &str) -> String {
        let base = Url::parse("https://auth.example.com/auth/callback/dev").unwrap();
        base.join(location).unwrap().origin().ascii_serialization()
    }

    fn hostile_chars() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_string()),
            Just("\\".to_string()),
            Just("//".to_string()),
            Just("\t".to_string()),
            Just("\n".to_string()),
            Just(":".to_string()),
            Just("@".to_string()),
            Just(".".to_string()),
            Just("%2f".to_string()),
            Just("%5c".to_string()),
            Just("%09".to_string()),
            Just("https:".to_string()),
            Just("http://".to_string()),
            Just("evil.example".to_string()),
            Just("app.example.com".to_string()),
            Just("auth.example.com".to_string()),
            Just("127.0.0.1:3000".to_string()),
            Just("?".to_string()),
            Just("#".to_string()),
            "[ -~]{0,3}",
            any::<char>().prop_map(|c| c.to_string()),
        ];
        proptest::collection::vec(piece, 0..10).prop_map(|v| v.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        /// For any input, either it is refused or the browser lands on an allowed origin.
        #[test]
        fn whatever_is_accepted_lands_on_an_allowed_origin(raw in hostile_chars()) {
            if let Ok(location) = judge(&raw) {
                let origin = browser_origin(&location);
                prop_assert!(
                    origin == "https://auth.example.com"
                        || origin == "https://app.example.com"
                        || origin == "http://127.0.0.1:3000",
                    "{raw:?} → {location} → {origin}"
                );
                // What we send is what the browser will read: parsing it again changes nothing.
                let reparsed = Url::parse(&location).unwrap();
                prop_assert_eq!(reparsed.as_str(), location.as_str());
            }
        }

        #[test]
        fn arbitrary_strings_never_escape(raw in "\\PC{0,40}") {
            if let Ok(location) = judge(&raw) {
                let origin = browser_origin(&location);
                prop_assert!(
                    origin == "https://auth.example.com"
                        || origin == "https://app.example.com"
                        || origin == "http://127.0.0.1:3000",
                    "{raw:?} → {location}"
                );
            }
        }
    }
}
