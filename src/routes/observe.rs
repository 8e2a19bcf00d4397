//! Every request, observed: its id (`X-Request-Id`, taken from the caller when well-formed and
//! always returned), its metrics (with `[metrics]`: nobody could read them otherwise), one
//! access-log line (method, route, status, duration, client address, id) and, with `[trace]`, its
//! server span (method, route, status) — never a query string, a cookie or a token.
//!
//! Two small layers of our own rather than `from_fn` middleware: the session check is the hot path,
//! and `from_fn` clones the wrapped service and boxes a future on every request, which cost the
//! check about a fifth of its rate. [`Observe`] sits outermost; [`KeepRoute`] sits on each route,
//! where the matched pattern is known, and hands it out on the response.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::{Method, Request, Response};
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use super::AppState;
use crate::client_info::client_ip;
use crate::request_id::Serving;
use crate::trace::{self, Ended, Kind, StartedSpan, Tracer};
use crate::{log_output, metrics, request_id};

/// The outermost layer: id, metrics, access log, span.
#[derive(Clone)]
pub struct ObserveLayer {
    state: AppState,
    tracer: Option<Tracer>,
}

impl ObserveLayer {
    /// `tracer`: `Some` with `[trace]`.
    pub fn new(state: AppState, tracer: Option<Tracer>) -> Self {
        ObserveLayer { state, tracer }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;
    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            state: self.state.clone(),
            tracer: self.tracer.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    state: AppState,
    tracer: Option<Tracer>,
}

impl<S, B, R> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = Observed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let started = Instant::now();
        let id = request_id::from_header(req.headers().get(&request_id::HEADER));
        let method = req.method().clone();
        let client = self.state.config.log.access.then(|| {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip());
            client_ip(
                peer,
                req.headers(),
                &self.state.config.server.trusted_proxies,
            )
        });
        let span = self
            .tracer
            .as_ref()
            .map(|tracer| (tracer.clone(), tracer.start_server(req.headers())));
        let context = span.as_ref().map(|(_, s)| s.context());
        let inner = request_id::scope(id, context, self.inner.call(req));
        Observed {
            inner,
            seen: Some(Seen {
                started,
                method,
                counted: self.state.config.metrics.is_some(),
                client,
                span,
            }),
        }
    }
}

/// What [`Observe`] keeps about a request until its answer is ready.
struct Seen {
    started: Instant,
    method: Method,
    /// Whether the request is counted in the metrics: only when `[metrics]` serves them.
    counted: bool,
    /// `Some` when access logging is on: the client's address, if known.
    client: Option<Option<IpAddr>>,
    /// `Some` with `[trace]`: the request's span, ended with the answer.
    span: Option<(Tracer, StartedSpan)>,
}

pin_project_lite::pin_project! {
    pub struct Observed<F: Future> {
        #[pin]
        inner: TaskLocalFuture<Serving, F>,
        seen: Option<Seen>,
    }
}

impl<F, R, E> Future for Observed<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let mut res = match ready!(this.inner.as_mut().poll(cx)) {
            Ok(res) => res,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let Some(seen) = this.seen.take() else {
            return Poll::Ready(Ok(res));
        };
        // The request's id, out of the finished task-local scope.
        let id = this.inner.take_value().map(Serving::into_id);
        let took = seen.started.elapsed();
        let status = res.status().as_u16();
        let matched = res
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let route = matched.unwrap_or("unmatched");
        if seen.counted {
            metrics::request(route, seen.method.as_str(), status, took);
        }
        if let Some((tracer, span)) = seen.span {
            tracer.end(span, || server_span(&seen.method, matched, status));
        }
        if let Some(client) = seen.client {
            let id = id.as_ref().map_or(&b""[..], |id| id.as_bytes());
            let line = log_output::AccessLine {
                method: seen.method.as_str(),
                route,
                status,
                micros: u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                client,
                request_id: id,
            };
            // Through `tracing` where the process did not set up the broker's own output.
            if !log_output::access(&line) {
                // Whole microseconds: `14.946`, not `14.946050000000001`.
                let duration_ms = line.micros as f64 / 1000.0;
                tracing::info!(
                    target: "access",
                    method = %seen.method,
                    route,
                    status,
                    duration_ms,
                    client = %client.map(|ip| ip.to_string()).unwrap_or_default(),
                    request_id = %String::from_utf8_lossy(id),
                    "request"
                );
            }
        }
        if let Some(id) = id {
            res.headers_mut().insert(request_id::HEADER, id);
        }
        Poll::Ready(Ok(res))
    }
}

/// A request's span as the HTTP semantic conventions describe a server span: named after the
/// method and route pattern (the method alone when no route matched: a path is unbounded and may
/// name a user), failed on a 5xx only (a 4xx is the caller's error, not the server's).
fn server_span(method: &Method, route: Option<&str>, status: u16) -> Ended {
    let method = trace::method_name(method);
    let shown = if method == "_OTHER" { "HTTP" } else { method };
    let mut attributes = vec![
        ("http.request.method", method.into()),
        ("http.response.status_code", status.into()),
    ];
    if let Some(route) = route {
        attributes.push(("http.route", route.into()));
    }
    let error = status >= 500;
    if error {
        attributes.push(("error.type", status.to_string().into()));
    }
    Ended {
        name: match route {
            Some(route) => format!("{shown} {route}"),
            None => shown.to_string(),
        },
        kind: Kind::Server,
        attributes,
        error,
    }
}

/// On each route: keeps the matched route pattern on the response, for [`Observe`] (which runs
/// outside routing and cannot see it).
#[derive(Clone, Copy, Default)]
pub struct KeepRouteLayer;

impl<S> Layer<S> for KeepRouteLayer {
    type Service = KeepRoute<S>;
    fn layer(&self, inner: S) -> KeepRoute<S> {
        KeepRoute { inner }
    }
}

#[derive(Clone)]
pub struct KeepRoute<S> {
    inner: S,
}

impl<S, B, R> Service<Request<B>> for KeepRoute<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = RouteKept<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let route = req.extensions().get::<MatchedPath>().cloned();
        RouteKept {
            inner: self.inner.call(req),
            route,
        }
    }
}

pin_project_lite::pin_project! {
    pub struct RouteKept<F> {
        #[pin]
        inner: F,
        route: Option<MatchedPath>,
    }
}

impl<F, R, E> Future for RouteKept<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.inner.poll(cx))?;
        if let Some(route) = this.route.take() {
            res.extensions_mut().insert(route);
        }
        Poll::Ready(Ok(res))
    }
}
