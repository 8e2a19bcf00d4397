//! `[routes."/prefix/"]`: a reverse proxy that lets only signed-in callers through to an upstream
//! and tells it who they are. Incoming `X-Auth-*` headers are always dropped, in any spelling a
//! CGI-style upstream folds together (`X_Auth_User`), so a caller cannot claim an identity; the
//! broker's own cookies and the caller's `Authorization` never reach the upstream; paths that any
//! upstream could read as climbing out are refused (`upstream_path`); bodies stream both ways, and
//! the upstream's answer — errors included — comes back unchanged. A route with `provider_token`
//! also gets the session's current provider access token (refreshed when due, like every session
//! check); no other route ever does, and a caller's header of any route's `provider_token` name is
//! dropped everywhere.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::response::Response;
use axum::routing::any;

use super::caller::{Caller, Via};
use super::check::identity_headers;
use super::{AppState, check_same_site};
use crate::config::{HOP_BY_HOP, ProviderTokenTo, RouteConfig, reserved_header};
use crate::error::{AppError, AppResult, ErrorKind};
use crate::session::{CookiePolicy, refresh};

mod upstream_path;
use upstream_path::upstream_url;

/// Marks a response that came from an upstream: the broker's page headers are not added to it.
#[derive(Clone, Copy, Debug)]
pub struct Proxied;

pub fn router(routes: &[RouteConfig]) -> Router<AppState> {
    let mut router = Router::new();
    let token_headers = provider_token_headers(routes);
    for route in routes {
        let route = Arc::new(route.clone());
        let handler = {
            let route = route.clone();
            let token_headers = token_headers.clone();
            move |State(state): State<AppState>, caller: Caller, req: Request| {
                let route = route.clone();
                let token_headers = token_headers.clone();
                async move { forward(state, route, &token_headers, caller, req).await }
            }
        };
        router = router
            .route(&route.prefix, any(handler.clone()))
            .route(&format!("{}{{*rest}}", route.prefix), any(handler));
    }
    router
}

/// The headers (folded) that any route sends a provider token in. A caller's header of such a
/// name is dropped on every route: one that asks gets the broker's value alone, and one that does
/// not (or no longer does) never sees a token a caller made up.
fn provider_token_headers(routes: &[RouteConfig]) -> Arc<[String]> {
    routes
        .iter()
        .filter_map(|r| match &r.provider_token {
            Some(ProviderTokenTo::Header(name)) => Some(name.replace('_', "-")),
            _ => None,
        })
        .collect()
}

/// RFC 9110 §7.6.1: connection-specific fields are not forwarded, nor any the `Connection`
/// header names.
fn hop_by_hop(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = HOP_BY_HOP
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

/// A header name as CGI and WSGI upstreams see it (RFC 3875 §4.1.18: `-` becomes `_`, so `_` and
/// `-` are one character to them, as are upper and lower case). `HeaderName` is already lower case.
fn folded(name: &HeaderName) -> String {
    name.as_str().replace('_', "-")
}

/// The request headers an upstream may see as they are: neither hop-by-hop, reserved
/// ([`reserved_header`]: the broker's own, the client's address, the caller's credentials) nor a
/// provider-token header, compared folded. `X_Auth_User` is stripped like `X-Auth-User`: otherwise
/// a folding upstream would see the caller's value beside, or instead of, the broker's. Cookies are added back separately, less the broker's own.
fn passed_on(incoming: &HeaderMap, token_headers: &[String]) -> HeaderMap {
    let dropped: Vec<String> = hop_by_hop(incoming).iter().map(folded).collect();
    let mut headers = HeaderMap::new();
    for (name, value) in incoming {
        let name_folded = folded(name);
        if !dropped.contains(&name_folded)
            && !reserved_header(&name_folded)
            && !token_headers.contains(&name_folded)
        {
            headers.append(name.clone(), value.clone());
        }
    }
    headers
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
            !pair.is_empty()
                && name != cookies.session_name
                && name != cookies.login_name
                && name != cookies.logout_name
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join("; ")).ok()
}

async fn forward(
    state: AppState,
    route: Arc<RouteConfig>,
    token_headers: &[String],
    caller: Caller,
    req: Request,
) -> AppResult<Response> {
    let (parts, body) = req.into_parts();
    // A cookie rides along on cross-site requests; a bearer token does not.
    if caller.via == Via::Cookie
        && !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS)
    {
        check_same_site(&state, &parts.headers)?;
    }
    let url = upstream_url(&route, parts.uri.path(), parts.uri.query()).ok_or_else(|| {
        AppError::bad_request(
            "invalid_path",
            "This address has path segments that cannot be forwarded (such as `..`, `..;`, an \
             empty segment, a control character or invalid UTF-8).",
        )
    })?;

    let mut headers = passed_on(&parts.headers, token_headers);
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
    if let Some(to) = &route.provider_token {
        let (name, value) = provider_token_header(&state, &route, to, &caller).await?;
        headers.insert(name, value);
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

    let mut res = answer(upstream, &state.cookies)?;
    res.extensions_mut().insert(Proxied);
    Ok(res)
}

/// The header that carries the session's current provider access token to a route that asked for
/// it. Without a valid token (expired and nothing to refresh it with) the caller is told to sign
/// in again, and the upstream is not called.
async fn provider_token_header(
    state: &AppState,
    route: &RouteConfig,
    to: &ProviderTokenTo,
    caller: &Caller,
) -> AppResult<(HeaderName, HeaderValue)> {
    let token = refresh::current_access_token(state.session_parts(), &caller.record.handle)
        .await?
        .ok_or_else(|| {
            let mut e = AppError::unauthorized(state.login_url()).with_cause(format!(
                "{}: the session {} has no valid provider access token",
                route.prefix, caller.record.handle
            ));
            e.code = "provider_token_unavailable";
            e.message = "This service needs a current access token from your sign-in provider, \
                         and this session no longer has one. Sign in again."
                .into();
            e
        })?;
    let (name, value) = match to {
        ProviderTokenTo::Authorization => (header::AUTHORIZATION, format!("Bearer {token}")),
        ProviderTokenTo::Header(name) => (
            HeaderName::from_bytes(name.as_bytes()).map_err(AppError::internal)?,
            token,
        ),
    };
    // The token's own text stays out of the error: a header value refuses only control bytes.
    let mut value = HeaderValue::from_str(&value)
        .map_err(|_| AppError::internal("the provider access token is not a valid header value"))?;
    value.set_sensitive(true);
    Ok((name, value))
}

/// The upstream's answer as the caller gets it: status, headers less hop-by-hop ones and any
/// `Set-Cookie` of the broker's own cookies (an upstream may not set, and so fix, them), and the
/// body streamed.
fn answer(upstream: reqwest::Response, cookies: &CookiePolicy) -> AppResult<Response> {
    let mut res = Response::builder().status(upstream.status());
    let dropped = hop_by_hop(upstream.headers());
    if let Some(out) = res.headers_mut() {
        for (name, value) in upstream.headers() {
            let broker_cookie = name == header::SET_COOKIE
                && value.to_str().is_ok_and(|v| {
                    let cookie = v.split_once('=').map_or(v, |(k, _)| k).trim();
                    cookie == cookies.session_name || cookie == cookies.login_name
                });
            if !dropped.contains(name) && !broker_cookie {
                out.append(name.clone(), value.clone());
            }
        }
    }
    res.body(Body::from_stream(upstream.bytes_stream()))
        .map_err(AppError::internal)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{Strategy, prop, prop_assert, prop_oneof, proptest};

    use super::*;

    fn headers(names: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for name in names {
            h.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("v"),
            );
        }
        h
    }

    #[test]
    fn reserved_headers_are_dropped_whether_written_with_dashes_or_underscores() {
        let incoming = headers(&[
            "X-Auth-User",
            "X_Auth_User",
            "x_auth-groups",
            "X_FORWARDED_HOST",
            "X-Forwarded_For",
            "X_Real_IP",
            "True_Client_IP",
            "CF_Connecting_IP",
            "X_Original_URI",
            "Forwarded",
            "Authorization",
            "Host",
            "Cookie",
            "Transfer_Encoding",
            "Proxy_Authorization",
            "Keep_Alive",
            "Connection",
            "X_Custom_Hop",
            "Accept",
            "X_Request_ID",
            "X-Authority",
        ]);
        let mut incoming = incoming;
        incoming.insert(header::CONNECTION, HeaderValue::from_static("x-custom-hop"));
        let kept = passed_on(&incoming, &[]);
        let mut names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(names, ["accept", "x-authority", "x_request_id"]);
    }

    /// Every spelling of `name` a folding upstream reads as the same header.
    fn respelled(name: &'static str) -> impl Strategy<Value = String> {
        prop::collection::vec((proptest::bool::ANY, proptest::bool::ANY), name.len()).prop_map(
            move |flips| {
                name.chars()
                    .zip(flips)
                    .map(|(c, (upper, underscore))| match c {
                        '-' if underscore => '_',
                        c if upper => c.to_ascii_uppercase(),
                        c => c,
                    })
                    .collect()
            },
        )
    }

    proptest! {
        #[test]
        fn no_spelling_of_a_reserved_header_reaches_the_upstream(
            spelled in prop_oneof![
                respelled("x-auth-user"),
                respelled("x-auth-groups"),
                respelled("x-forwarded-for"),
                respelled("x-forwarded-host"),
                respelled("x-real-ip"),
                respelled("true-client-ip"),
                respelled("x-original-url"),
                respelled("proxy-authorization"),
                respelled("transfer-encoding"),
            ],
        ) {
            prop_assert!(passed_on(&headers(&[&spelled]), &[]).is_empty(), "{}", spelled);
        }
    }

    #[test]
    fn a_callers_provider_token_header_is_dropped_in_any_spelling() {
        let routes: Vec<RouteConfig> = crate::config::from_toml_str(
            "[server]\nenvironment = \"development\"\n[providers.dev]\nkind = \"dev\"\n\
             [routes.\"/a/\"]\nupstream = \"http://127.0.0.1:9000/\"\nprovider_token = \"X-Provider-Token\"\n\
             [routes.\"/b/\"]\nupstream = \"http://127.0.0.1:9000/\"\nprovider_token = true\n\
             [routes.\"/c/\"]\nupstream = \"http://127.0.0.1:9000/\"\n",
            Vec::new(),
        )
        .unwrap()
        .routes;
        let token_headers = provider_token_headers(&routes);
        assert_eq!(&*token_headers, ["x-provider-token".to_string()]);
        let incoming = headers(&[
            "X-Provider-Token",
            "x_provider_token",
            "X_Provider-TOKEN",
            "Authorization",
            "X-Provider-Tokens",
        ]);
        let kept = passed_on(&incoming, &token_headers);
        let names: Vec<&str> = kept.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["x-provider-tokens"]);
    }

    #[test]
    fn broker_cookies_are_not_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static(
                "broker_session=secret; theme=dark; broker_login=x; broker_logout=y",
            ),
        );
        let policy = CookiePolicy {
            session_name: "broker_session",
            login_name: "broker_login",
            logout_name: "broker_logout",
            secure: false,
            same_site: tower_sessions::cookie::SameSite::Lax,
        };
        assert_eq!(foreign_cookies(&h, &policy).unwrap(), "theme=dark");
    }
}
