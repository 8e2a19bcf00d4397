//! The live session behind a request: read, touched when due, provider tokens refreshed when due.
//! A cookie's session comes from the session layer; a bearer token or a broker refresh token names
//! a session by its public handle, which is opened here from the session index.

use tower_sessions::Session;

use super::{Parts, SessionError, SessionRecord, record, refresh};

/// The live record of `session`, touched and with provider tokens refreshed when due; `None` when
/// there is no live session.
pub async fn live(
    parts: Parts<'_>,
    session: &Session,
) -> Result<Option<SessionRecord>, SessionError> {
    let Some(record) = record::current(session, parts.policy, parts.clock.now()).await? else {
        return Ok(None);
    };
    refresh::ensure_fresh(parts, session, record).await
}

/// Opens the session with this public handle (for bearer tokens and broker refresh tokens). The
/// key a handle names is remembered ([`super::handles`]); a caller that then finds no live record
/// calls [`forget`].
pub async fn open_by_handle(
    parts: Parts<'_>,
    handle: &str,
) -> Result<Option<Session>, SessionError> {
    if let Some(key) = parts.handles.get(handle) {
        return Ok(Some(parts.sessions.open_by_key(key)));
    }
    let Some(row) = parts.store.indexed_session(handle).await? else {
        return Ok(None);
    };
    parts.handles.put(handle, row.session_key.clone());
    Ok(Some(parts.sessions.open_by_key(row.session_key)))
}

/// The session with this handle is gone or no longer live: its key need not be remembered.
pub fn forget(parts: Parts<'_>, handle: &str) {
    parts.handles.forget(handle);
}

/// [`live`] for the session with this handle, not saved yet (see [`persist`]). A record that does
/// not carry the handle is no session of the handle's.
pub async fn open_live_by_handle(
    parts: Parts<'_>,
    handle: &str,
) -> Result<Option<(Session, SessionRecord)>, SessionError> {
    let Some(session) = open_by_handle(parts, handle).await? else {
        return Ok(None);
    };
    match live(parts, &session).await? {
        Some(record) if record.handle == handle => Ok(Some((session, record))),
        _ => {
            forget(parts, handle);
            Ok(None)
        }
    }
}

/// Saves a session opened by [`open_by_handle`] if this request changed it and it still exists
/// (an ended session has no id, and must not be written back).
pub async fn persist(session: &Session) -> Result<(), SessionError> {
    if session.id().is_some() && session.is_modified() {
        session.save().await?;
    }
    Ok(())
}

/// [`live`] for the session with this handle, saved at once.
pub async fn live_by_handle(
    parts: Parts<'_>,
    handle: &str,
) -> Result<Option<(Session, SessionRecord)>, SessionError> {
    let Some((session, record)) = open_live_by_handle(parts, handle).await? else {
        return Ok(None);
    };
    persist(&session).await?;
    Ok(Some((session, record)))
}

/// The live record of the session with this handle, read without counting as activity (see
/// [`record::peek`]): for `GET /auth/session`, and for the sweeper, which asks this of sessions that
/// clients hold tokens from.
pub async fn peek_by_handle(
    parts: Parts<'_>,
    handle: &str,
) -> Result<Option<SessionRecord>, SessionError> {
    let Some(session) = open_by_handle(parts, handle).await? else {
        return Ok(None);
    };
    let record = record::peek(&session, parts.policy, parts.clock.now())
        .await?
        .filter(|r| r.handle == handle);
    if record.is_none() {
        forget(parts, handle);
    }
    Ok(record)
}

/// Whether the session with this handle is still live, read without counting as activity.
pub async fn is_live_by_handle(parts: Parts<'_>, handle: &str) -> Result<bool, SessionError> {
    Ok(peek_by_handle(parts, handle).await?.is_some())
}
