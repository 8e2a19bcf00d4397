//! Who is calling: the session of the cookie, or the session named by a broker access token in
//! `Authorization: Bearer`. Both end in the same live-session check, so revoking a session stops
//! both at their next request.

use axum::http::{HeaderMap, header};
use tower_sessions::Session;

use super::AppState;
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
            persist(&self.session).await?;
        }
        Ok(())
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
        let Some(session) = session_by_handle(state, &claims.sid).await? else {
            return Ok(None);
        };
        let Some(record) = live(state, &session).await? else {
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
    Ok(live(state, cookie_session).await?.map(|record| Caller {
        record,
        session: cookie_session.clone(),
        via: Via::Cookie,
    }))
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

pub async fn verify_access_token(state: &AppState, token: &str) -> AppResult<AccessClaims> {
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

/// The live record of `session`, touched and with provider tokens refreshed when due.
async fn live(state: &AppState, session: &Session) -> AppResult<Option<SessionRecord>> {
    let Some(record) = session::current(session, &state.config.session, state.clock.now()).await?
    else {
        return Ok(None);
    };
    crate::tokens::refresh::ensure_fresh(state, session, record).await
}

/// Opens the session with this public handle (for bearer tokens and broker refresh tokens).
pub async fn session_by_handle(state: &AppState, handle: &str) -> AppResult<Option<Session>> {
    let Some(row) = state.store.indexed_session(handle).await? else {
        return Ok(None);
    };
    Ok(Some(state.sessions.open_by_key(row.session_key)))
}

/// Saves a session opened by [`session_by_handle`] if this request changed it and it still exists
/// (an ended session has no id, and must not be written back).
pub async fn persist(session: &Session) -> AppResult<()> {
    if session.id().is_some() && session.is_modified() {
        session.save().await?;
    }
    Ok(())
}

/// [`live`] for a session opened by handle, saved at once.
pub async fn live_by_handle(state: &AppState, handle: &str) -> AppResult<Option<Caller>> {
    let Some(session) = session_by_handle(state, handle).await? else {
        return Ok(None);
    };
    let Some(record) = live(state, &session).await? else {
        return Ok(None);
    };
    persist(&session).await?;
    Ok(Some(Caller {
        record,
        session,
        via: Via::Bearer,
    }))
}
