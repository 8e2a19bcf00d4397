//! `[routes."/prefix/"]`: a reverse proxy that lets only signed-in callers through to an upstream
//! and tells it who they are. Incoming `X-Auth-*` headers are always dropped (a caller cannot claim
//! an identity), the broker's own cookies and the caller's `Authorization` never reach the upstream,
//! bodies stream both ways, and the upstream's answer — errors included — comes back unchanged.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use axum::routing::any;
use tower_sessions::Session;

use super::caller::{self, Via};
use super::check::identity_headers;
use super::{AppState, check_same_site};
use crate::config::RouteConfig;
use crate::error::{AppError, AppResult, ErrorKind};
use crate::session::CookiePolicy;

/// The client for upstreams. Upstreams come from the operator's config and are usually on a
/// private network, so unlike the provider client it has no private-address guard; it follows no
/// redirect (the caller's browser should see them) and uses no system proxy.
#[derive(Clone)]
pub struct UpstreamClient(reqwest::Client);

impl UpstreamClient {
    pub fn new() -> Result<Self, reqwest::Error> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map(UpstreamClient)
    }
}

/// Marks a response that came from an upstream: the broker's page headers are not added to it.
#[derive(Clone, Copy, Debug)]
pub struct Proxied;

pub fn router(routes: &[RouteConfig]) -> Router<AppState> {
    let mut router = Router::new();
    for route in routes {
        let route = Arc::new(route.clone());
        let handler = {
            let route = route.clone();
            move |State(state): State<AppState>, session: Session, req: Request| {
                let route = route.clone();
                async move { forward(state, route, session, req).await }
            }
        };
        router = router
            .route(&route.prefix, any(handler.clone()))
            .route(&format!("{}{{*rest}}", route.prefix), any(handler));
    }
    router
}

/// RFC 9110 §7.6.1: connection-specific fields are not forwarded, nor any the `Connection`
/// header names.
fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = [
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
    .into_iter()
    .map(HeaderName::from_static)
    .collect();
    for v in headers.get_all(header::CONNECTION) {
        if let Ok(v) = v.to_str() {
            names.extend(
                v.split(',')
                    .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
            );
        }
    }
    names
}

/// The request's cookies less the broker's own.
fn foreign_cookies(headers: &HeaderMap, cookies: &CookiePolicy) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty() && name != cookies.session_name && name != cookies.login_name
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join("; ")).ok()
}

/// The upstream URL for a request path: the path after the prefix, appended to the upstream's
/// path. A segment that is `.` or `..`, or hides a `/` or `\\`, in any encoding, is refused: it
/// could climb out of the upstream path the operator configured.
fn upstream_url(route: &RouteConfig, path: &str, query: Option<&str>) -> Option<url::Url> {
    let rest = path.strip_prefix(route.prefix.as_str()).unwrap_or("");
    for segment in rest.split('/') {
        let decoded = percent_decode(segment)?;
        if decoded == "." || decoded == ".." || decoded.contains(['/', '\\']) {
            return None;
        }
    }
    let mut url = route.upstream.clone();
    let base = url.path().trim_end_matches('/').to_string();
    url.set_path(&format!("{base}/{rest}"));
    url.set_query(query);
    url.path().starts_with(&format!("{base}/")).then_some(url)
}

/// `%XX` decoding, repeated until stable (a double-encoded `%252e` is a `.` to some servers).
fn percent_decode(s: &str) -> Option<String> {
    let mut current = s.to_string();
    for _ in 0..4 {
        let next =
            url::form_urlencoded::parse(format!("x={}", current.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())?;
        if next == current {
            return Some(current);
        }
        current = next;
    }
    None
}

async fn forward(
    state: AppState,
    route: Arc<RouteConfig>,
    session: Session,
    req: Request,
) -> AppResult<Response> {
    let (parts, body) = req.into_parts();
    let caller = caller::require(&state, &parts.headers, &session).await?;
    // A cookie rides along on cross-site requests; a bearer token does not.
    if caller.via == Via::Cookie
        && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
    {
        check_same_site(&state, &parts.headers)?;
    }
    let url = upstream_url(&route, parts.uri.path(), parts.uri.query()).ok_or_else(|| {
        AppError::bad_request(
            "invalid_path",
            "This address has path segments that cannot be forwarded (such as `..`).",
        )
    })?;

    let dropped = hop_by_hop(&parts.headers);
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        let stripped = dropped.contains(name)
            || name == header::HOST
            || name == header::AUTHORIZATION
            || name == header::COOKIE
            || name.as_str().starts_with("x-auth-")
            || name.as_str().starts_with("x-forwarded-")
            || name.as_str().starts_with("x-original-")
            || name == "forwarded"
            || name == "x-real-ip";
        if !stripped {
            headers.append(name.clone(), value.clone());
        }
    }
    if let Some(c) = foreign_cookies(&parts.headers, &state.cookies) {
        headers.insert(header::COOKIE, c);
    }
    let public = &state.config.server.public_url;
    if let Some(host) = public.host_str() {
        let host = match public.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&host) {
            headers.insert(HeaderName::from_static("x-forwarded-host"), v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(public.scheme()) {
        headers.insert(HeaderName::from_static("x-forwarded-proto"), v);
    }
    if route.identity_headers {
        for (name, value) in identity_headers(&caller.record.user, &caller.record.handle) {
            headers.insert(name, value);
        }
    }
    if route.jwt {
        let (token, _) = super::token::access_token_for(&state, &caller, &route.audience).await?;
        let v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(AppError::internal)?;
        headers.insert(header::AUTHORIZATION, v);
    }

    let request = state
        .upstream
        .0
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(reqwest::Body::wrap_stream(body.into_data_stream()));
    let unavailable = |cause: String| {
        AppError::new(
            ErrorKind::Provider,
            "upstream_unavailable",
            "The service behind this address is not answering. Try again shortly.",
        )
        .with_cause(cause)
    };
    // The timeout covers the wait for the answer's head, not the streaming of its body.
    let upstream = tokio::time::timeout(route.timeout, request.send())
        .await
        .map_err(|_| unavailable(format!("{}: no answer in time", route.prefix)))?
        .map_err(|e| unavailable(format!("{}: {}", route.prefix, e.without_url())))?;

    let mut res = Response::builder().status(upstream.status());
    let dropped = hop_by_hop(upstream.headers());
    if let Some(out) = res.headers_mut() {
        for (name, value) in upstream.headers() {
            // An upstream may not set (and so fix) the broker's own cookies.
            let broker_cookie = name == header::SET_COOKIE
                && value.to_str().is_ok_and(|v| {
                    let cookie = v.split_once('=').map_or(v, |(k, _)| k).trim();
                    cookie == state.cookies.session_name || cookie == state.cookies.login_name
                });
            if !dropped.contains(name) && !broker_cookie {
                out.append(name.clone(), value.clone());
            }
        }
    }
    let mut res = res
        .body(Body::from_stream(upstream.bytes_stream()))
        .map_err(AppError::internal)?;
    res.extensions_mut().insert(Proxied);
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(upstream: &str) -> RouteConfig {
        RouteConfig {
            prefix: "/api/".into(),
            upstream: url::Url::parse(upstream).unwrap(),
            identity_headers: true,
            jwt: false,
            audience: "http://127.0.0.1:9000/".into(),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn the_path_after_the_prefix_joins_the_upstream_path() {
        let r = route("http://127.0.0.1:9000/v1/");
        assert_eq!(
            upstream_url(&r, "/api/items/7", Some("a=1"))
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9000/v1/items/7?a=1"
        );
        let r = route("http://127.0.0.1:9000");
        assert_eq!(
            upstream_url(&r, "/api/", None).unwrap().as_str(),
            "http://127.0.0.1:9000/"
        );
    }

    #[test]
    fn paths_that_climb_out_of_the_upstream_path_are_refused() {
        let r = route("http://127.0.0.1:9000/v1/");
        for path in [
            "/api/../admin",
            "/api/%2e%2e/admin",
            "/api/%2E%2e/admin",
            "/api/.%2e/admin",
            "/api/%252e%252e/admin",
            "/api/a/%2f/b",
            "/api/a%2Fb",
            "/api/a%5c..%5cb",
            "/api/./x",
        ] {
            assert!(upstream_url(&r, path, None).is_none(), "{path}");
        }
        assert!(upstream_url(&r, "/api/a.b/..c/%20", None).is_some());
    }

    #[test]
    fn broker_cookies_are_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("broker_session=secret; theme=dark; broker_login=x"),
        );
        let policy = CookiePolicy {
            session_name: "broker_session",
            login_name: "broker_login",
            secure: false,
            same_site: tower_sessions::cookie::SameSite::Lax,
        };
        assert_eq!(foreign_cookies(&h, &policy).unwrap(), "theme=dark");
    }
}
