//! Ending a session everywhere, by its index row: revocation by users and operators, back-channel
//! logout, a failed refresh, `max_per_user`.

use super::SessionError;
use super::store::{Backends, SessionBackend};
use crate::store::{IndexedSession, Store};

/// Ends a session everywhere: its record first (from then on no instance accepts its cookie or its
/// tokens), then its index row and broker tokens. If the second step fails, the index row of a
/// session that no longer exists is swept later.
pub async fn end_session(
    store: &Store,
    sessions: &SessionBackend,
    row: &IndexedSession,
) -> Result<(), SessionError> {
    sessions
        .delete_key(&row.session_key)
        .await
        .map_err(|e| SessionError::Unavailable(e.to_string()))?;
    store.end_session(row).await?;
    Ok(())
}

impl Backends {
    pub async fn end_session(&self, row: &IndexedSession) -> Result<(), SessionError> {
        end_session(&self.store, &self.sessions, row).await
    }
}
