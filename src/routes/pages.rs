//! What every answer gets on its way out, outside routing: the error page instead of a JSON error
//! for a browser's navigation, and the headers of the broker's own pages.
//!
//! Both wrap the router once, as services, rather than through `Router::layer`, which boxes every
//! route again for each layer (and clones those boxes on every request).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::extract::MatchedPath;
use axum::http::{HeaderName, HeaderValue, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tower::{Layer, Service};

use super::{AppState, proxy, wants_html};
use crate::error::ErrorBody;

/// Turns JSON error bodies into the error page for navigations.
#[derive(Clone)]
pub struct ErrorPagesLayer {
    state: AppState,
}

impl ErrorPagesLayer {
    pub fn new(state: AppState) -> Self {
        ErrorPagesLayer { state }
    }
}

impl<S> Layer<S> for ErrorPagesLayer {
    type Service = ErrorPages<S>;
    fn layer(&self, inner: S) -> ErrorPages<S> {
        ErrorPages {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub struct ErrorPages<S> {
    inner: S,
    state: AppState,
}

impl<S, B> Service<Request<B>> for ErrorPages<S>
where
    S: Service<Request<B>, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ErrorPageFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let html = wants_html(req.headers()).then(|| self.state.clone());
        ErrorPageFuture {
            inner: self.inner.call(req),
            html,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct ErrorPageFuture<F> {
        #[pin]
        inner: F,
        // `Some` for a navigation.
        html: Option<AppState>,
    }
}

impl<F, E> Future for ErrorPageFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        Poll::Ready(Ok(match this.html.take() {
            Some(state) => error_page(&state, res),
            None => res,
        }))
    }
}

fn error_page(state: &AppState, res: Response) -> Response {
    let Some(body) = res.extensions().get::<ErrorBody>() else {
        return res;
    };
    let status = res.status();
    let title = match status {
        StatusCode::UNAUTHORIZED => "You are not signed in",
        StatusCode::FORBIDDEN => "This request was refused",
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::TOO_MANY_REQUESTS => "Too many attempts",
        s if s.is_server_error() => "Sign-in is unavailable",
        _ => "Sign-in could not be completed",
    };
    let login_url = body.login_url.clone().unwrap_or_else(|| state.login_url());
    let ctx = minijinja::context! {
        title => title, message => body.message, error => body.error,
        correlation_id => body.correlation_id, login_url => login_url,
    };
    match state.templates.render("error.html", ctx) {
        Ok(page) => {
            let mut out = (status, Html(page)).into_response();
            // The observer names the request by the route the answer came from.
            if let Some(route) = res.extensions().get::<MatchedPath>() {
                out.extensions_mut().insert(route.clone());
            }
            out.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Some(v) = res.headers().get(header::RETRY_AFTER) {
                out.headers_mut().insert(header::RETRY_AFTER, v.clone());
            }
            out
        }
        Err(_) => res,
    }
}

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'self' http: https:; frame-ancestors 'none'";

/// The headers of every answer, where the handler did not set them: `nosniff` on all; on the
/// broker's own pages (not an upstream's answer passed through) a referrer policy and a content
/// security policy. Document-only headers stay off the session check's JSON.
pub fn page_headers(mut res: Response) -> Response {
    let page = is_page(&res);
    let headers = res.headers_mut();
    headers
        .entry(header::X_CONTENT_TYPE_OPTIONS)
        .or_insert(HeaderValue::from_static("nosniff"));
    if page {
        // same-origin, not no-referrer: under no-referrer browsers send `Origin: null` even on a
        // page's own form posts, which the cross-site check then refuses.
        headers
            .entry(header::REFERRER_POLICY)
            .or_insert(HeaderValue::from_static("same-origin"));
        headers
            .entry(HeaderName::from_static("content-security-policy"))
            .or_insert(HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    }
    res
}

/// A page of the broker's own (not an upstream's answer passed through).
fn is_page(res: &Response) -> bool {
    res.extensions().get::<proxy::Proxied>().is_none()
        && res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/html"))
}
