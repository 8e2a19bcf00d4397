//! Who is calling: the session of the cookie, or the session named by a broker access token in
//! `Authorization: Bearer`. Both end in the same live-session check, so revoking a session stops
//! both at their next request.

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use tower_sessions::Session;

use super::{AppState, check_same_site};
use crate::error::{AppError, AppResult};
use crate::session::{self, SessionRecord};
use crate::tokens::broker_jwt::AccessClaims;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Cookie,
    Bearer,
}

/// A caller with a live session.
pub struct Caller {
    pub record: SessionRecord,
    /// The session as tower-sessions sees it: the request's own for a cookie, one opened by key for
    /// a bearer token (saved by [`Caller::finish`]).
    pub session: Session,
    pub via: Via,
}

impl Caller {
    /// Writes what this request changed in a bearer caller's session (the cookie's session is
    /// saved by the session layer).
    pub async fn finish(&self) -> AppResult<()> {
        if self.via == Via::Bearer {
            session::persist(&self.session).await?;
        }
        Ok(())
    }
}

/// The request's session as the session layer gives it (the cookie's, maybe empty).
async fn cookie_session(parts: &mut Parts, state: &AppState) -> AppResult<Session> {
    Session::from_request_parts(parts, state)
        .await
        .map_err(|(_, why)| AppError::internal(why))
}

/// A handler that takes a [`Caller`] is for signed-in callers only: without a live session the
/// answer is 401 with where to sign in.
impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        let session = cookie_session(parts, state).await?;
        require(state, &parts.headers, &session).await
    }
}

/// `Option<Caller>`: the caller's live session if there is one; a bearer token that does not
/// verify is still a 401.
impl OptionalFromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Option<Self>> {
        let session = cookie_session(parts, state).await?;
        authenticate(state, &parts.headers, &session).await
    }
}

/// A signed-in caller allowed to change state: by cookie, only from the broker's own or an allowed
/// origin (a bearer token is never sent by a browser on its own, so it needs no such check).
pub struct Writer(pub Caller);

impl FromRequestParts<AppState> for Writer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Self> {
        refuse_cross_site_cookie(state, &parts.headers)?;
        <Caller as FromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(Writer)
    }
}

/// A cookie rides along on cross-site requests, so a write by cookie must come from the broker's own
/// or an allowed origin; a bearer token is never sent by a browser on its own and needs no check.
fn refuse_cross_site_cookie(state: &AppState, headers: &HeaderMap) -> AppResult<()> {
    if bearer_token(headers).is_none() {
        check_same_site(state, headers)?;
    }
    Ok(())
}

/// `Option<Writer>`: the cross-site check still applies (a cookie request from a foreign site is
/// refused), but a caller without a live session is let through as `None` — logout is safe to
/// repeat.
impl OptionalFromRequestParts<AppState> for Writer {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> AppResult<Option<Self>> {
        refuse_cross_site_cookie(state, &parts.headers)?;
        <Caller as OptionalFromRequestParts<AppState>>::from_request_parts(parts, state)
            .await
            .map(|c| c.map(Writer))
    }
}

/// The token of `Authorization: Bearer <token>`, if that is what the request carries.
pub fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn invalid_token(state: &AppState, cause: impl std::fmt::Display) -> AppError {
    let mut e = AppError::unauthorized(state.login_url()).with_cause(cause);
    e.code = "invalid_token";
    e.message = "The access token is invalid or has expired. Refresh it, or sign in again.".into();
    e
}

/// The caller's live session, by bearer token when one is sent, else by cookie. `Ok(None)` when
/// there is none; a bearer token that does not verify is an error (401 `invalid_token`).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    cookie_session: &Session,
) -> AppResult<Option<Caller>> {
    if let Some(token) = bearer_token(headers) {
        let claims = verify_access_token(state, token).await?;
        let Some((session, record)) =
            session::open_live_by_handle(state.session_parts(), &claims.sid).await?
        else {
            return Ok(None);
        };
        if record.user.id != claims.sub {
            return Ok(None);
        }
        let caller = Caller {
            record,
            session,
            via: Via::Bearer,
        };
        caller.finish().await?;
        return Ok(Some(caller));
    }
    let record = session::live(state.session_parts(), cookie_session).await?;
    Ok(record.map(|record| Caller {
        record,
        session: cookie_session.clone(),
        via: Via::Cookie,
    }))
}

/// The caller's live session record, by bearer token when one is sent, else by cookie, read without
/// counting as activity: nothing is written, the idle deadline does not move and provider tokens are
/// not refreshed (`GET /auth/session`). `Ok(None)` when there is no live session; a bearer token that
/// does not verify is an error (401 `invalid_token`), as in [`authenticate`].
pub async fn peek(
    state: &AppState,
    headers: &HeaderMap,
    cookie_session: &Session,
) -> AppResult<Option<SessionRecord>> {
    let parts = state.session_parts();
    if let Some(token) = bearer_token(headers) {
        let claims = verify_access_token(state, token).await?;
        let record = session::peek_by_handle(parts, &claims.sid).await?;
        return Ok(record.filter(|r| r.user.id == claims.sub));
    }
    Ok(session::peek(cookie_session, parts.policy, parts.clock.now()).await?)
}

/// [`authenticate`], with no session being a 401 that says where to sign in.
pub async fn require(
    state: &AppState,
    headers: &HeaderMap,
    cookie_session: &Session,
) -> AppResult<Caller> {
    authenticate(state, headers, cookie_session)
        .await?
        .ok_or_else(|| AppError::unauthorized(state.login_url()))
}

pub async fn verify_access_token(
    state: &AppState,
    token: &str,
) -> AppResult<std::sync::Arc<AccessClaims>> {
    state
        .keys
        .verify(
            &state.store,
            &state.vault,
            &state.config.tokens,
            &state.issuer(),
            token,
            state.clock.now().unix_timestamp(),
        )
        .await
        .map_err(|e| invalid_token(state, e))
}

/// The live session with this handle, saved at once.
pub async fn live_by_handle(state: &AppState, handle: &str) -> AppResult<Option<Caller>> {
    Ok(session::live_by_handle(state.session_parts(), handle)
        .await?
        .map(|(session, record)| Caller {
            record,
            session,
            via: Via::Bearer,
        }))
}
