//! What every request handler shares: the configuration and the parts built from it. Handlers
//! take [`AppState`]; nothing below `routes/` does — functions there take the parts they use.

use std::ops::Deref;
use std::sync::Arc;

use axum::response::{Html, IntoResponse, Response};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::error::{AppError, AppResult};
use crate::providers::ProviderRegistry;
use crate::session::CookiePolicy;
use crate::store::Store;
use crate::templates::Templates;

pub struct Inner {
    /// The public URL without a trailing slash: `iss` of every token the broker signs.
    pub issuer: String,
    pub config: Config,
    pub store: Store,
    pub providers: ProviderRegistry,
    pub templates: Templates,
    pub clock: SharedClock,
    pub cookies: CookiePolicy,
    pub vault: crate::tokens::TokenVault,
    pub me_cache: crate::session::me_cache::MeCache,
    /// Which session key each public handle names (bearer tokens' sessions).
    pub handles: crate::session::handles::HandleKeys,
    /// The session store, for sessions opened by handle (bearer tokens, refresh tokens).
    pub sessions: crate::session::store::SessionBackend,
    /// The keys that sign broker access tokens.
    pub keys: crate::tokens::broker_jwt::BrokerKeys,
    /// The client that talks to `[routes]` upstreams.
    pub upstream: crate::http_client::upstream::UpstreamClient,
    /// `[limits]`: request rates per client.
    pub limits: crate::limits::Limits,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn login_url(&self) -> String {
        self.config.server.url("/auth/login")
    }

    /// Ends a session everywhere: its record in the session store (so no instance accepts its
    /// cookie or tokens again), then its index row and broker tokens.
    pub async fn end_session(&self, row: &crate::store::IndexedSession) -> AppResult<()> {
        Ok(crate::session::end_session(&self.store, &self.sessions, row).await?)
    }

    /// The parts session work needs.
    pub fn session_parts(&self) -> crate::session::Parts<'_> {
        crate::session::Parts {
            store: &self.store,
            sessions: &self.sessions,
            vault: &self.vault,
            providers: &self.providers,
            policy: &self.config.session,
            clock: &self.clock,
            handles: &self.handles,
        }
    }

    /// The `iss` of broker access tokens: the public URL without a trailing slash.
    pub fn issuer(&self) -> String {
        self.issuer.clone()
    }

    /// The parts the OpenID Provider side works with.
    pub fn op(&self) -> crate::op::Op<'_> {
        crate::op::Op {
            clients: &self.config.clients,
            issuer: &self.issuer,
            keys: &self.keys,
            tokens: &self.config.tokens,
            session: self.session_parts(),
        }
    }

    pub fn render(&self, name: &str, ctx: minijinja::Value) -> AppResult<Response> {
        self.templates
            .render(name, ctx)
            .map(|html| Html(html).into_response())
            .map_err(AppError::internal)
    }
}

impl crate::client_info::TrustedProxies for AppState {
    fn trusted_proxies(&self) -> &[crate::client_info::Cidr] {
        &self.config.server.trusted_proxies
    }
}
