//! CORS for the configured app origins only: exact match, with credentials, never `*`.
//!
//! A request without an `Origin` header — every same-origin `GET`, including most session checks —
//! passes straight through with no extra work: the session check is the hot path and a general
//! CORS layer that runs on every request cost it a quarter of its throughput in the benchmark.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use futures::future::{BoxFuture, Either};
use tower::{Layer, Service};

const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";
/// `ww-retry`: WeWeb's Token Based Auth plugin marks its retry after a refresh with it.
const ALLOW_HEADERS: &str = "authorization, content-type, accept, x-csrf, ww-retry";
const MAX_AGE: &str = "600";

/// The OpenID Provider endpoints an app's browser code calls with tokens, never with cookies.
const TOKEN_PATHS: &[&str] = &[
    "/.well-known/openid-configuration",
    "/.well-known/jwks.json",
    "/oauth2/token",
    "/oauth2/userinfo",
    "/oauth2/revoke",
];

#[derive(Clone)]
pub struct CorsLayer {
    origins: Arc<[HeaderValue]>,
    /// The registered OpenID clients' origins: allowed on [`TOKEN_PATHS`] only, without credentials.
    client_origins: Arc<[HeaderValue]>,
}

fn header_values(origins: &[String]) -> Arc<[HeaderValue]> {
    origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect()
}

impl CorsLayer {
    pub fn new(allowed_origins: &[String], client_origins: &[String]) -> Self {
        CorsLayer {
            origins: header_values(allowed_origins),
            client_origins: header_values(client_origins),
        }
    }
}

impl<S> Layer<S> for CorsLayer {
    type Service = Cors<S>;
    fn layer(&self, inner: S) -> Cors<S> {
        Cors {
            inner,
            origins: self.origins.clone(),
            client_origins: self.client_origins.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Cors<S> {
    inner: S,
    origins: Arc<[HeaderValue]>,
    client_origins: Arc<[HeaderValue]>,
}

/// Who may read the answer: an allowed origin with its cookies, an OpenID client's origin on the
/// token endpoints without them, or nobody.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Allowed {
    No,
    WithCredentials,
    WithoutCredentials,
}

fn allow(res: &mut Response<Body>, origin: HeaderValue, allowed: Allowed) {
    if allowed == Allowed::No {
        return;
    }
    let h = res.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    if allowed == Allowed::WithCredentials {
        h.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

impl<S> Service<Request<Body>> for Cors<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let Some(origin) = req.headers().get(header::ORIGIN).cloned() else {
            return Either::Left(self.inner.call(req));
        };
        let allowed = if self.origins.contains(&origin) {
            Allowed::WithCredentials
        } else if !self.client_origins.is_empty()
            && self.client_origins.contains(&origin)
            && TOKEN_PATHS.contains(&req.uri().path())
        {
            Allowed::WithoutCredentials
        } else {
            Allowed::No
        };
        let preflight = req.method() == Method::OPTIONS
            && req
                .headers()
                .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        if preflight {
            // Answered here: a refused origin gets no CORS headers, so the browser stops.
            let mut res = Response::new(Body::empty());
            *res.status_mut() = StatusCode::NO_CONTENT;
            res.headers_mut()
                .insert(header::VARY, HeaderValue::from_static("origin"));
            if allowed != Allowed::No {
                allow(&mut res, origin, allowed);
                let h = res.headers_mut();
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(ALLOW_METHODS),
                );
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(ALLOW_HEADERS),
                );
                h.insert(
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static(MAX_AGE),
                );
            }
            return Either::Right(Box::pin(async move { Ok(res) }));
        }
        let fut = self.inner.call(req);
        Either::Right(Box::pin(async move {
            let mut res = fut.await?;
            res.headers_mut()
                .append(header::VARY, HeaderValue::from_static("origin"));
            allow(&mut res, origin, allowed);
            Ok(res)
        }))
    }
}
