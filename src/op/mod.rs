//! The broker as an OpenID Provider toward apps (`[clients.ID]`): authorization requests checked,
//! codes, grants and refresh tokens, the tokens themselves (ID token, access token, userinfo),
//! discovery, and back-channel logout to clients. Routes live in `routes/op/`; the sign-in itself is
//! the broker's own session, reached through [`crate::session`].
//!
//! A grant is what one client holds from one broker session. It dies with the session — logout,
//! revocation, idle timeout, absolute lifetime, an upstream back-channel logout — and each client
//! with a `backchannel_logout_uri` is then sent a logout token.

pub mod authorize;
pub mod backchannel;
pub mod client_auth;
pub mod discovery;
pub mod error;
pub mod grant;
pub mod tokens;

use std::collections::BTreeMap;

use crate::config::{ClientConfig, TokensConfig};
use crate::session;
use crate::tokens::broker_jwt::BrokerKeys;

pub use error::OpError;

/// The parts the provider side works with.
#[derive(Clone, Copy)]
pub struct Op<'a> {
    pub clients: &'a BTreeMap<String, ClientConfig>,
    /// The public URL without a trailing slash.
    pub issuer: &'a str,
    pub keys: &'a BrokerKeys,
    pub tokens: &'a TokensConfig,
    pub session: session::Parts<'a>,
}

impl<'a> Op<'a> {
    pub fn client(&self, id: &str) -> Option<&'a ClientConfig> {
        self.clients.get(id)
    }

    pub fn now(&self) -> i64 {
        self.session.clock.now().unix_timestamp()
    }
}

/// `Some` when `scope` holds `wanted`.
pub fn has_scope(scope: &[String], wanted: &str) -> bool {
    scope.iter().any(|s| s == wanted)
}
