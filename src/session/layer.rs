//! The session layer: the request's [`Session`] from the session cookie, and the cookie set,
//! renewed or cleared from what the request did with it.
//!
//! Our own layer rather than tower-sessions' manager: every page load and API call passes through
//! it, and the manager parses every cookie into a shared jar, opens a tracing span and boxes a
//! future on each request. Here a request that only reads its session (the session check) costs a
//! scan of the `Cookie` header and one allocation; only a request that changed its session waits
//! for a save, in a boxed future of its own.
//!
//! What is decided, as tower-sessions decides it:
//! - a cookie naming no live session (unknown, expired, ended, malformed) is cleared;
//! - a changed session that still holds data is saved, and its cookie (re)set with the session's
//!   expiry, unless the answer is a server error;
//! - a session emptied by the request (sign-out) is cleared.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use time::OffsetDateTime;
use tower::{Layer, Service};
use tower_sessions::cookie::{Cookie, SameSite};
use tower_sessions::session::Id;
use tower_sessions::{Expiry, Session};

use super::CookiePolicy;
use super::store::SessionBackend;

#[derive(Clone)]
pub struct SessionLayer {
    shared: Arc<Shared>,
}

struct Shared {
    store: Arc<SessionBackend>,
    cookie: CookieShape,
}

/// The session cookie's name and attributes.
struct CookieShape {
    name: &'static str,
    secure: bool,
    same_site: SameSite,
}

impl SessionLayer {
    pub fn new(store: SessionBackend, cookies: &CookiePolicy) -> Self {
        SessionLayer {
            shared: Arc::new(Shared {
                store: Arc::new(store),
                cookie: CookieShape {
                    name: cookies.session_name,
                    secure: cookies.secure,
                    same_site: cookies.same_site,
                },
            }),
        }
    }
}

impl<S> Layer<S> for SessionLayer {
    type Service = Sessions<S>;
    fn layer(&self, inner: S) -> Sessions<S> {
        Sessions {
            inner,
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Sessions<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// The session cookie's value: of several cookies of that name, the last (as a cookie jar keeps
/// them; browsers send the cookie of the longest path first, and the broker's is at `/`).
fn cookie_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (n, v) = pair.split_once('=')?;
            (n.trim() == name).then(|| v.trim())
        })
        .next_back()
}

impl<S, B> Service<Request<B>> for Sessions<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
    S::Error: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = SessionFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let sent = cookie_value(req.headers(), self.shared.cookie.name);
        let had_cookie = sent.is_some();
        // A malformed value names no session: it is cleared like an unknown one.
        let id = sent.and_then(|v| v.parse::<Id>().ok());
        let session = Session::new(id, self.shared.store.clone(), None);
        req.extensions_mut().insert(session.clone());
        SessionFuture {
            inner: self.inner.call(req),
            after: Some(After {
                session,
                had_cookie,
                shared: self.shared.clone(),
            }),
            saving: None,
        }
    }
}

/// What the layer needs once the answer is ready.
struct After {
    session: Session,
    had_cookie: bool,
    shared: Arc<Shared>,
}

type Saving<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

pin_project_lite::pin_project! {
    pub struct SessionFuture<F, E> {
        #[pin]
        inner: F,
        after: Option<After>,
        saving: Option<Saving<E>>,
    }
}

impl<F, E> Future for SessionFuture<F, E>
where
    F: Future<Output = Result<Response<Body>, E>>,
    E: Send + 'static,
{
    type Output = Result<Response<Body>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(saving) = this.saving {
            return saving.as_mut().poll(cx);
        }
        let mut res = ready!(this.inner.poll(cx))?;
        let Some(after) = this.after.take() else {
            return Poll::Ready(Ok(res));
        };
        if !after.session.is_modified() {
            // Unchanged, it is empty exactly when it has no id: none was sent, or the one sent
            // names no live session.
            if after.had_cookie && after.session.id().is_none() {
                after.shared.cookie.clear(res.headers_mut());
            }
            return Poll::Ready(Ok(res));
        }
        let mut saving: Saving<E> = Box::pin(async move {
            after.finish_changed(&mut res).await;
            Ok(res)
        });
        let polled = saving.as_mut().poll(cx);
        if polled.is_pending() {
            *this.saving = Some(saving);
        }
        polled
    }
}

impl After {
    /// A session the request changed: cleared when emptied, else saved and its cookie set.
    async fn finish_changed(self, res: &mut Response<Body>) {
        let session = &self.session;
        if session.is_empty().await {
            if self.had_cookie {
                self.shared.cookie.clear(res.headers_mut());
            }
            return;
        }
        if res.status().is_server_error() {
            return;
        }
        if let Err(e) = session.save().await {
            tracing::error!(error = %e, "saving the session failed");
            server_error(res);
            return;
        }
        let Some(id) = session.id() else {
            tracing::error!("a saved session has no id");
            server_error(res);
            return;
        };
        self.shared
            .cookie
            .set(res.headers_mut(), id, session.expiry());
    }
}

/// The answer becomes a bare 500; its extensions (the route it answers for) stay.
fn server_error(res: &mut Response<Body>) {
    let mut out = Response::new(Body::empty());
    *out.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    *out.extensions_mut() = std::mem::take(res.extensions_mut());
    *res = out;
}

impl CookieShape {
    fn cookie(&self, value: String) -> Cookie<'static> {
        Cookie::build((self.name, value))
            .http_only(true)
            .same_site(self.same_site)
            .secure(self.secure)
            .path("/")
            .build()
    }

    fn set(&self, headers: &mut HeaderMap, id: Id, expiry: Option<Expiry>) {
        let mut cookie = self.cookie(id.to_string());
        match expiry {
            Some(Expiry::OnInactivity(d)) => cookie.set_max_age(d),
            Some(Expiry::AtDateTime(at)) => cookie.set_max_age(at - OffsetDateTime::now_utc()),
            Some(Expiry::OnSessionEnd) | None => {}
        }
        append(headers, &cookie);
    }

    /// Clears the cookie, with the attributes it was set with: a browser ignores a `__Host-`
    /// cookie without `Secure`, its removal included.
    fn clear(&self, headers: &mut HeaderMap) {
        let mut cookie = self.cookie(String::new());
        cookie.make_removal();
        append(headers, &cookie);
    }
}

fn append(headers: &mut HeaderMap, cookie: &Cookie<'_>) {
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        headers.append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::COOKIE, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn a_host_prefixed_cookie_is_cleared_with_the_attributes_it_was_set_with() {
        let shape = CookieShape {
            name: "__Host-broker_session",
            secure: true,
            same_site: SameSite::Lax,
        };
        let mut h = HeaderMap::new();
        shape.clear(&mut h);
        let cleared = h[header::SET_COOKIE].to_str().unwrap();
        for part in [
            "__Host-broker_session=;",
            "Secure",
            "Path=/",
            "HttpOnly",
            "Max-Age=0",
        ] {
            assert!(cleared.contains(part), "{part} missing: {cleared}");
        }
        assert!(!cleared.contains("Domain"), "{cleared}");
    }

    #[test]
    fn the_session_cookie_is_found_among_others_and_the_last_one_wins() {
        let name = "broker_session";
        assert_eq!(cookie_value(&headers(&[]), name), None);
        assert_eq!(
            cookie_value(&headers(&["a=1; broker_session=abc ; b=2"]), name),
            Some("abc")
        );
        assert_eq!(
            cookie_value(
                &headers(&["broker_session=x", "c=3; broker_session=y"]),
                name
            ),
            Some("y")
        );
        assert_eq!(
            cookie_value(&headers(&["xbroker_session=1; broker_sessionx=2"]), name),
            None
        );
        assert_eq!(
            cookie_value(&headers(&["broker_session=a=b"]), name),
            Some("a=b")
        );
    }

    proptest::proptest! {
        #[test]
        fn any_cookie_header_gives_the_last_pair_of_the_name(
            pairs in proptest::collection::vec(
                (
                    proptest::prop_oneof!["broker_session", "other", "broker_sessio", " broker_session ", "[a-z_ ]{0,6}"],
                    "[ -:<-~]{0,12}",
                ),
                0..6,
            )
        ) {
            let header = pairs
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join(";");
            let Ok(value) = HeaderValue::from_str(&header) else {
                return Ok(());
            };
            let mut h = HeaderMap::new();
            h.insert(header::COOKIE, value);
            // Names hold no `=` or `;` and values no `;`: the pairs themselves are the answer.
            let expected = pairs
                .iter()
                .rev()
                .find(|(n, _)| n.trim() == "broker_session")
                .map(|(_, v)| v.trim());
            proptest::prop_assert_eq!(cookie_value(&h, "broker_session"), expected);
        }
    }
}
