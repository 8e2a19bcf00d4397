//! A readable device label from a `User-Agent` header ("Chrome on macOS", "Safari on iPhone"), for
//! the session list. Only the common browsers and systems are told apart; anything else falls back
//! to its product name, or "Unknown device". The label is a hint for people, never a security
//! decision: user agents are whatever the client says.

/// The longest user agent kept with a session; longer ones are cut (at a character boundary).
pub const MAX_USER_AGENT: usize = 512;

/// The user agent as stored: control characters dropped, at most [`MAX_USER_AGENT`] bytes, `None`
/// when nothing is left.
pub fn clean_user_agent(raw: &str) -> Option<String> {
    let mut out = String::new();
    for c in raw.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_USER_AGENT {
            break;
        }
        out.push(c);
    }
    (!out.is_empty()).then_some(out)
}

/// "Browser on System", or the best part of it that can be told.
pub fn label(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.map(str::trim).filter(|s| !s.is_empty()) else {
        return "Unknown device".into();
    };
    match (browser(ua), system(ua)) {
        (Some(b), Some(s)) => format!("{b} on {s}"),
        (Some(b), None) => b.to_string(),
        (None, Some(s)) => format!("Unknown browser on {s}"),
        (None, None) => product(ua).unwrap_or_else(|| "Unknown device".into()),
    }
}

/// The browser, most specific first: Edge, Opera and Samsung Internet all say "Chrome" too, and
/// Chrome says "Safari".
fn browser(ua: &str) -> Option<&'static str> {
    const BROWSERS: &[(&str, &str)] = &[
        ("Edg/", "Edge"),
        ("EdgA/", "Edge"),
        ("EdgiOS/", "Edge"),
        ("Edge/", "Edge"),
        ("OPR/", "Opera"),
        ("OPiOS/", "Opera"),
        ("SamsungBrowser/", "Samsung Internet"),
        ("YaBrowser/", "Yandex Browser"),
        ("Vivaldi/", "Vivaldi"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("CriOS/", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Trident/", "Internet Explorer"),
        ("MSIE ", "Internet Explorer"),
    ];
    if let Some((_, name)) = BROWSERS.iter().find(|(token, _)| ua.contains(token)) {
        return Some(name);
    }
    // Safari has no token of its own: "Version/x Safari/y" (and "Mobile/" on iOS).
    if ua.contains("Safari/") && (ua.contains("Version/") || ua.contains("Mobile/")) {
        return Some("Safari");
    }
    None
}

fn system(ua: &str) -> Option<&'static str> {
    const SYSTEMS: &[(&str, &str)] = &[
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("iPod", "iPod"),
        ("Android", "Android"),
        ("CrOS", "ChromeOS"),
        ("Windows Phone", "Windows Phone"),
        ("Windows", "Windows"),
        ("Macintosh", "macOS"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
        ("FreeBSD", "FreeBSD"),
        ("OpenBSD", "OpenBSD"),
    ];
    SYSTEMS
        .iter()
        .find(|(token, _)| ua.contains(token))
        .map(|(_, name)| *name)
}

/// The first product token of a non-browser client ("curl/8.5.0" → "curl").
fn product(ua: &str) -> Option<String> {
    let first = ua.split([' ', '/']).next()?;
    let ok = !first.is_empty()
        && first.len() <= 40
        && first
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    ok.then(|| first.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(ua: &str) -> String {
        label(Some(ua))
    }

    #[test]
    fn desktop_browsers_are_named_with_their_system() {
        assert_eq!(
            l(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
            ),
            "Chrome on macOS"
        );
        assert_eq!(
            l("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"),
            "Firefox on Linux"
        );
        assert_eq!(
            l(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.68"
            ),
            "Edge on Windows"
        );
        assert_eq!(
            l(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
            ),
            "Safari on macOS"
        );
        assert_eq!(
            l(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 OPR/111.0.0.0"
            ),
            "Opera on Windows"
        );
        assert_eq!(
            l(
                "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
            ),
            "Chrome on ChromeOS"
        );
    }

    #[test]
    fn mobile_browsers_are_named_with_their_device() {
        assert_eq!(
            l(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
            ),
            "Safari on iPhone"
        );
        assert_eq!(
            l(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1"
            ),
            "Chrome on iPhone"
        );
        assert_eq!(
            l(
                "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/127.0 Mobile/15E148 Safari/605.1.15"
            ),
            "Firefox on iPad"
        );
        assert_eq!(
            l(
                "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36"
            ),
            "Samsung Internet on Android"
        );
        assert_eq!(
            l(
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36"
            ),
            "Chrome on Android"
        );
    }

    #[test]
    fn other_clients_fall_back_to_their_product_or_unknown() {
        assert_eq!(l("curl/8.5.0"), "curl");
        assert_eq!(l("python-requests/2.32.3"), "python-requests");
        assert_eq!(
            l("Mozilla/5.0 (X11; Linux x86_64)"),
            "Unknown browser on Linux"
        );
        assert_eq!(l("(((☃)))"), "Unknown device");
        assert_eq!(label(None), "Unknown device");
        assert_eq!(label(Some("   ")), "Unknown device");
    }

    #[test]
    fn stored_user_agents_are_cleaned_and_bounded() {
        assert_eq!(clean_user_agent(" a\u{0}b\nc "), Some("abc".to_string()));
        assert_eq!(clean_user_agent("\n"), None);
        let long = "é".repeat(600);
        let cut = clean_user_agent(&long).unwrap();
        assert!(cut.len() <= MAX_USER_AGENT && cut.chars().all(|c| c == 'é'));
    }
}
