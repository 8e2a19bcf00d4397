//! The local session: one record per browser in the session store, with the broker's own idle
//! timeout, absolute lifetime and cookie, whatever provider signed the person in.
//!
//! - [`record`]: what a session knows and its policy, read and written through tower-sessions;
//! - [`cookie`]: cookie names and attributes;
//! - [`live`]: the live session of a cookie or of a handle, provider tokens refreshed when due
//!   ([`refresh`]), or read without counting as activity ([`peek`]);
//! - [`start`]: a new session after a login; [`end`]: ending a session everywhere;
//!   [`revocation`]: revoking provider tokens, retried until the provider answers;
//!   [`list`]: a user's live sessions;
//! - [`layer`]: the session of the request's cookie, and the cookie set or cleared after;
//! - [`me_cache`]: the rendered `/auth/me` bodies; [`handles`]: which session a handle names;
//! - [`store`]: where records live (SQLite, Postgres or Redis) and the record caches.

pub mod cookie;
pub mod end;
pub mod handles;
pub mod layer;
pub mod list;
pub mod live;
pub mod me_cache;
pub mod record;
pub mod refresh;
pub mod revocation;
pub mod start;
pub mod store;

pub use cookie::CookiePolicy;
pub use end::end_session;
pub use live::{
    forget, is_live_by_handle, live, live_by_handle, open_by_handle, open_live_by_handle,
    peek_by_handle, persist,
};
pub use record::{
    RECORD_KEY, SessionRecord, SessionStatus, SessionView, current, end, needs_touch, peek, put,
    rfc3339,
};
pub use start::Login;

use crate::clock::SharedClock;
use crate::config::SessionConfig;
use crate::providers::ProviderRegistry;
use crate::store::Store;
use crate::tokens::TokenVault;
use store::SessionBackend;

/// What session work needs from the app.
#[derive(Clone, Copy)]
pub struct Parts<'a> {
    pub store: &'a Store,
    pub sessions: &'a SessionBackend,
    pub vault: &'a TokenVault,
    pub providers: &'a ProviderRegistry,
    pub policy: &'a SessionConfig,
    pub clock: &'a SharedClock,
    pub handles: &'a handles::HandleKeys,
}

/// Why session work failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The session store failed or did not answer.
    #[error("the session store is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// A bug or a broken invariant (a record that cannot be encoded, tokens that cannot be sealed).
    #[error("{0}")]
    Internal(String),
}

impl From<tower_sessions::session::Error> for SessionError {
    fn from(e: tower_sessions::session::Error) -> Self {
        SessionError::Unavailable(e.to_string())
    }
}

impl From<tower_sessions::session_store::Error> for SessionError {
    fn from(e: tower_sessions::session_store::Error) -> Self {
        SessionError::Unavailable(e.to_string())
    }
}
