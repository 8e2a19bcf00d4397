//! Which request paths the proxy forwards, and the upstream URL they become.
//!
//! Upstreams disagree on what a path means: some decode `%2e` to `.` (once, or again after a
//! front server already did), Tomcat and Jetty drop `;` parameters before they resolve dot
//! segments (so `..;/` climbs), Windows servers trim trailing dots and spaces, and some stop at a
//! NUL. So the proxy forwards only paths whose every reading is plain: each segment, at every
//! stage of percent-decoding and with its `;` parameters dropped, must be valid UTF-8 without
//! control characters, hidden `/` or `\`, and not be empty or made only of dots. Empty segments
//! (`//`) are refused rather than collapsed, since collapsing would change what the caller asked
//! for. The same check runs again on the URL as it will be sent, after the `url` crate has
//! normalised it, since that is what the upstream finally sees.

use crate::config::RouteConfig;

/// Decoding stops being plausible after this many rounds (`%25252e` is three).
const MAX_DECODINGS: usize = 3;

/// The upstream URL for a request path (the raw, still percent-encoded path of the request
/// target): the path after the prefix appended to the upstream's path. `None` when the path
/// must be refused.
pub(super) fn upstream_url(
    route: &RouteConfig,
    path: &str,
    query: Option<&str>,
) -> Option<url::Url> {
    let rest = path.strip_prefix(route.prefix.as_str())?;
    if !forwardable(rest) {
        return None;
    }
    let mut url = route.upstream.clone();
    let base = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{base}/{rest}"));
    url.set_query(query);
    let sent = url.path().strip_prefix(base.as_str())?.strip_prefix('/')?;
    forwardable(sent).then_some(url)
}

/// `rest` is the part of a path after a `/`: its segments are checked one by one. A trailing
/// empty segment (`items/`) is fine; any other empty one (`a//b`, a leading `/`) is refused.
fn forwardable(rest: &str) -> bool {
    let segments: Vec<&str> = rest.split('/').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(i, segment)| {
        if segment.is_empty() {
            i == last
        } else {
            segment_ok(segment)
        }
    })
}

fn segment_ok(raw: &str) -> bool {
    // RFC 3986 §2.1: a `%` always starts a triplet of two hex digits. IIS's `%u002e` and a lone
    // `%` are read differently by different servers.
    if !well_formed_escapes(raw.as_bytes()) {
        return false;
    }
    let mut layer = raw.as_bytes().to_vec();
    for _ in 0..=MAX_DECODINGS {
        let Ok(text) = std::str::from_utf8(&layer) else {
            // Includes overlong forms such as `%c0%ae`, which old decoders read as `.`.
            return false;
        };
        if !plain(text) {
            return false;
        }
        let next = percent_decode(&layer);
        if next == layer {
            return true;
        }
        layer = next;
    }
    false
}

/// One stage of a segment's decoding, as text.
fn plain(text: &str) -> bool {
    if text
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return false;
    }
    // RFC 3986 §3.3 path parameters: servlet containers compare only what comes before the
    // first `;` when they resolve `.` and `..`.
    let name = text.split(';').next().unwrap_or_default();
    !name.is_empty() && !only_dots(name)
}

/// `.`, `..`, and what some servers read as them: `...`, `.. ` (Windows trims trailing dots and
/// spaces) and the compatibility forms of `.` that NFKC normalisation turns into it.
fn only_dots(name: &str) -> bool {
    let dot = |c: char| matches!(c, '.' | '\u{2024}' | '\u{fe52}' | '\u{ff0e}');
    name.chars().any(dot) && name.chars().all(|c| dot(c) || c.is_whitespace())
}

fn well_formed_escapes(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// One round of `%XX` decoding; a `%` that starts no triplet stays as it is.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let triplet = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)),
            _ => None,
        };
        match triplet {
            Some((h, l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    fn route(upstream: &str) -> RouteConfig {
        RouteConfig {
            prefix: "/api/".into(),
            upstream: url::Url::parse(upstream).unwrap(),
            identity_headers: true,
            jwt: false,
            audience: "http://127.0.0.1:9000/".into(),
            timeout: Duration::from_secs(5),
            provider_token: None,
        }
    }

    #[test]
    fn the_path_after_the_prefix_joins_the_upstream_path() {
        let r = route("http://127.0.0.1:9000/v1/");
        let url = |path, query| upstream_url(&r, path, query).map(|u| u.to_string());
        assert_eq!(
            url("/api/items/7", Some("a=1")).as_deref(),
            Some("http://127.0.0.1:9000/v1/items/7?a=1")
        );
        assert_eq!(
            url("/api/", None).as_deref(),
            Some("http://127.0.0.1:9000/v1/")
        );
        assert_eq!(
            url("/api/items/", None).as_deref(),
            Some("http://127.0.0.1:9000/v1/items/")
        );
        let root = route("http://127.0.0.1:9000");
        assert_eq!(
            upstream_url(&root, "/api/", None).unwrap().as_str(),
            "http://127.0.0.1:9000/"
        );
    }

    #[test]
    fn ordinary_paths_with_escapes_dots_and_parameters_pass_unchanged() {
        let r = route("http://127.0.0.1:9000/v1/");
        for (path, sent) in [
            ("/api/a.b/..c/%20", "/v1/a.b/..c/%20"),
            ("/api/report.v2.pdf", "/v1/report.v2.pdf"),
            ("/api/100%25", "/v1/100%25"),
            ("/api/caf%C3%A9", "/v1/caf%C3%A9"),
            ("/api/item;v=2", "/v1/item;v=2"),
            ("/api/.well-known/x", "/v1/.well-known/x"),
            ("/api/a+b", "/v1/a+b"),
        ] {
            let url = upstream_url(&r, path, None);
            assert_eq!(url.as_ref().map(url::Url::path), Some(sent), "{path}");
        }
    }

    #[test]
    fn hostile_paths_are_refused() {
        let r = route("http://127.0.0.1:9000/v1/");
        for path in [
            // Dot segments, in every encoding and at every depth.
            "/api/../admin",
            "/api/./x",
            "/api/.",
            "/api/..",
            "/api/%2e%2e/admin",
            "/api/%2E%2e/admin",
            "/api/.%2e/admin",
            "/api/%2e./admin",
            "/api/%252e%252e/admin",
            "/api/%25252e%25252e/admin",
            "/api/a/%2e",
            // Too many layers of encoding to be anything but an attack.
            "/api/%2525252e",
            // `;` path parameters, which servlet containers drop before resolving dots.
            "/api/..;/admin",
            "/api/..;jsessionid=x/admin",
            "/api/.;/admin",
            "/api/%2e%2e;/admin",
            "/api/..%3b/admin",
            "/api/..%253b/admin",
            "/api/;x/admin",
            // Dots that some servers trim or normalise into `..`.
            "/api/.../admin",
            "/api/..%20/admin",
            "/api/.. /admin",
            "/api/%ef%bc%8e%ef%bc%8e/admin",
            // Hidden separators.
            "/api/a/%2f/b",
            "/api/a%2Fb",
            "/api/a%5c..%5cb",
            "/api/a\\..\\b",
            "/api/a%252fb",
            // Control bytes.
            "/api/a%00b",
            "/api/a%00.jpg",
            "/api/a%0d%0aX-Injected:1",
            "/api/a%09",
            "/api/a%7f",
            "/api/a%c2%85",
            "/api/a%2500",
            // Overlong and otherwise invalid UTF-8.
            "/api/%c0%ae%c0%ae/admin",
            "/api/%e0%80%ae%e0%80%ae/admin",
            "/api/%c0%af",
            "/api/%ff",
            "/api/%ed%a0%80",
            "/api/%25c0%25ae%25c0%25ae/admin",
            // Malformed escapes.
            "/api/%u002e%u002e/admin",
            "/api/a%",
            "/api/a%2",
            "/api/a%zz",
            // Empty segments.
            "/api//admin",
            "/api/a//b",
            "/api/a/b//",
            // Not under the prefix at all.
            "/other/x",
            "/api",
        ] {
            assert!(upstream_url(&r, path, None).is_none(), "{path}");
        }
    }

    /// Everything a decoding upstream could read as a dot segment: the segment's name (before any
    /// `;`) at any stage of decoding, with invalid UTF-8 read leniently.
    fn has_dot_segment(path: &str) -> bool {
        path.split('/').any(|segment| {
            let mut layer = segment.as_bytes().to_vec();
            for _ in 0..8 {
                let text = String::from_utf8_lossy(&layer).into_owned();
                for part in text.split(['/', '\\']) {
                    let name = part.split(';').next().unwrap_or_default().trim();
                    if name == "." || name == ".." {
                        return true;
                    }
                }
                let next = percent_decode(&layer);
                if next == layer {
                    break;
                }
                layer = next;
            }
            false
        })
    }

    fn hostile_path() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just(".".to_string()),
            Just("..".to_string()),
            Just("/".to_string()),
            Just(";".to_string()),
            Just("\\".to_string()),
            Just("%".to_string()),
            Just("%2e".to_string()),
            Just("%2E".to_string()),
            Just("%25".to_string()),
            Just("%2f".to_string()),
            Just("%5c".to_string()),
            Just("%3b".to_string()),
            Just("%00".to_string()),
            Just("%c0%ae".to_string()),
            Just("2e".to_string()),
            Just("a".to_string()),
            "[a-z0-9%.;/_~-]{1,3}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..12).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn a_forwarded_path_stays_under_the_upstream_path_without_dot_segments(
            rest in hostile_path(),
            base in prop_oneof![Just("/"), Just("/v1/"), Just("/v1/inner/")],
        ) {
            let r = route(&format!("http://127.0.0.1:9000{base}"));
            if let Some(url) = upstream_url(&r, &format!("/api/{rest}"), Some("q=1")) {
                prop_assert_eq!(url.host_str(), Some("127.0.0.1"));
                prop_assert_eq!(url.port(), Some(9000));
                prop_assert_eq!(url.query(), Some("q=1"));
                prop_assert!(url.path().starts_with(base), "{} left {}", url, base);
                prop_assert!(!has_dot_segment(url.path()), "{} from {:?}", url, rest);
            }
        }
    }
}
