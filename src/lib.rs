//! oidc-broker: an OpenID Connect federation broker. It signs browsers in through any configured
//! identity provider and keeps one local session per browser, with provider tokens server side.
//!
//! [`App::build`] makes the application from a [`config::Config`]; [`App::run`] serves it on a
//! listener the caller bound (tests bind port 0).

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod audit;
pub mod client_info;
pub mod clock;
pub mod config;
pub mod cors;
pub mod crypto;
pub mod device;
pub mod error;
pub mod http_client;
pub mod identity;
pub mod jose;
pub mod limits;
pub mod listener;
pub mod log_output;
pub mod metrics;
pub mod op;
pub mod providers;
pub mod redirect;
pub mod request_id;
pub mod routes;
pub mod secret;
pub mod session;
pub mod state;
pub mod store;
pub mod templates;
pub mod tokens;
pub mod trace;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use tower_sessions::ExpiredDeletion;

use crate::clock::SharedClock;
use crate::config::{Config, Environment};
use crate::http_client::{AddressPolicy, HttpClient};
use crate::providers::ProviderRegistry;
use crate::session::CookiePolicy;
use crate::session::store::Backends;
use crate::session::store::SessionBackend;
use crate::state::{AppState, Inner};
use crate::templates::Templates;
use crate::tokens::TokenVault;
use crate::tokens::seal::KeyRing;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] store::StoreOpenError),
    #[error("cannot load the templates: {0}")]
    Templates(String),
    #[error("cannot build the outbound HTTP client: {0}")]
    Http(String),
    #[error("cannot start the dev provider: {0}")]
    Dev(String),
    #[error("the [keys] key ring is unusable: {0}")]
    Keys(String),
    #[error(transparent)]
    Trace(#[from] trace::TraceError),
}

/// The outbound client for providers: loopback only in development; a provider with
/// `allow_private_network` may reach its issuer's host and its explicit endpoints' hosts.
pub fn provider_http_client(config: &Config) -> Result<HttpClient, http_client::HttpError> {
    let mut policy = AddressPolicy {
        allow_loopback: config.server.environment == Environment::Development,
        ..Default::default()
    };
    for p in config
        .providers
        .values()
        .filter(|p| p.allow_private_network)
    {
        let issuer = p.issuer.as_deref().and_then(|u| url::Url::parse(u).ok());
        let explicit = [&p.revocation_endpoint, &p.end_session_endpoint];
        let urls = issuer.iter().chain(explicit.into_iter().flatten());
        for host in urls.filter_map(|u| u.host_str()) {
            policy.allowed_hosts.insert(host.to_string());
        }
    }
    HttpClient::new(policy, Duration::from_secs(10))
}

pub struct App {
    router: Router,
    state: AppState,
    sessions: SessionBackend,
    /// With `[trace]`: sends the spans, once [`App::run`] starts it.
    exporter: Option<trace::Exporter>,
}

impl App {
    pub async fn build(config: Config, clock: SharedClock) -> Result<App, StartupError> {
        let Backends { store, sessions } = Backends::open(&config).await?;
        let templates = Templates::load().map_err(|e| StartupError::Templates(e.to_string()))?;

        let (tracer, exporter) = match &config.trace {
            Some(t) => {
                let (tracer, exporter) = trace::Tracer::new(t)?;
                (Some(tracer), Some(exporter))
            }
            None => (None, None),
        };
        let http = provider_http_client(&config)
            .map_err(|e| StartupError::Http(e.to_string()))?
            .with_tracer(tracer.clone());
        let (dev, dev_secrets) = providers::dev::build(&config, templates.clone(), clock.clone())
            .map_err(StartupError::Dev)?;
        let providers = ProviderRegistry::new(&config, http, clock.clone(), &dev_secrets);
        let cookies = CookiePolicy::for_server(&config.server);

        let session_layer = session::layer::SessionLayer::new(sessions.clone(), &cookies);
        let ring = match &config.keys {
            Some(k) => {
                KeyRing::new(&k.current, &k.ring).map_err(|e| StartupError::Keys(e.to_string()))?
            }
            None => {
                // Config validation allows this only in development.
                tracing::warn!(
                    "no [keys]: sealing provider tokens with a key that lasts until this process stops; see `oidc-broker keys generate`"
                );
                let key =
                    tokens::seal::random_key().map_err(|e| StartupError::Keys(e.to_string()))?;
                KeyRing::new(
                    "ephemeral",
                    &[("ephemeral".to_string(), key)].into_iter().collect(),
                )
                .map_err(|e| StartupError::Keys(e.to_string()))?
            }
        };
        let vault = TokenVault::new(ring);
        let upstream = http_client::upstream::UpstreamClient::new()
            .map_err(|e| StartupError::Http(e.to_string()))?;
        let client_origins: Vec<String> =
            config.clients.values().flat_map(|c| c.origins()).collect();
        let cors = cors::CorsLayer::new(&config.server.allowed_origins, &client_origins);
        let issuer = config.server.url("");
        let limits = limits::Limits::new(&config.limits, clock.clone());
        let state = AppState(Arc::new(Inner {
            issuer,
            config,
            store,
            providers,
            templates,
            clock,
            cookies,
            vault,
            me_cache: Default::default(),
            handles: Default::default(),
            sessions: sessions.clone(),
            keys: Default::default(),
            upstream,
            limits,
        }));
        // Only what needs the matched route runs inside routing: `Router::layer` boxes every route
        // once more for each layer, and clones those boxes on every request. The rest wraps the
        // router once, outermost first.
        let routed = routes::router(state.clone())
            .merge(providers::dev::router(dev))
            .layer(routes::observe::KeepRouteLayer);
        let stack = ServiceBuilder::new()
            .layer(routes::observe::ObserveLayer::new(state.clone(), tracer))
            .map_response(routes::pages::page_headers)
            .layer(cors)
            .layer(session_layer)
            .layer(routes::pages::ErrorPagesLayer::new(state.clone()))
            .service(routed);
        let router = Router::new().fallback_service(stack);
        Ok(App {
            router,
            state,
            sessions,
            exporter,
        })
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// Serves until `shutdown` completes. Providers are discovered in the background once the
    /// listener accepts (the dev provider is served by this very listener).
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let export = self.exporter.map(trace::Exporter::spawn);
        let state = self.state.clone();
        tokio::spawn(async move {
            for p in state.providers.all() {
                let check = p.check().await;
                if let Some(reason) = &check.error {
                    tracing::warn!(provider = %p.id, %reason, "provider not usable yet; discovery is retried on the next login and by /readyz");
                }
                for warning in &check.warnings {
                    tracing::warn!(provider = %p.id, "{warning}");
                }
            }
        });
        let state = self.state.clone();
        let sessions = self.sessions.clone();
        let sweeper = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if let Err(e) = state.store.sweep_expired_logins(state.clock.now()).await {
                    tracing::warn!(error = %e, "sweeping expired logins failed");
                }
                if let Err(e) = sessions.delete_expired().await {
                    tracing::warn!(error = %e, "sweeping expired sessions failed");
                }
                if let Err(e) = state.store.sweep_expired_index(state.clock.now()).await {
                    tracing::warn!(error = %e, "sweeping the session index failed");
                }
                session::revocation::retry_revocations(state.session_parts()).await;
                audit::sweep_expired(
                    &state.store,
                    state.config.audit.retention,
                    state.clock.now().unix_timestamp(),
                )
                .await;
                state.limits.prune();
                let now = state.clock.now().unix_timestamp();
                let tokens = &state.config.tokens;
                let keys_before = tokens::broker_jwt::publish_cutoff(tokens, now);
                if let Err(e) = state.store.sweep_token_mode(now, keys_before).await {
                    tracing::warn!(error = %e, "sweeping token-mode state failed");
                }
                if let Err(e) = state.store.sweep_op(now).await {
                    tracing::warn!(error = %e, "sweeping OpenID Provider state failed");
                }
                if let Err(e) = state
                    .keys
                    .refresh(&state.store, &state.vault, tokens, now)
                    .await
                {
                    tracing::warn!(error = %e, "reloading the signing keys failed");
                }
            }
        });
        let provider_side = (!self.state.config.clients.is_empty()).then(|| {
            let state = self.state.clone();
            tokio::spawn(async move { op_maintenance(state).await })
        });
        let metrics_listener = match self.state.config.metrics.as_ref() {
            Some(m) => match m.listen {
                Some(addr) => {
                    let l = TcpListener::bind(addr).await?;
                    let router = routes::metrics::standalone(m.token.clone());
                    Some(tokio::spawn(async move {
                        if let Err(e) = axum::serve(l, router).await {
                            tracing::error!(error = %e, "the metrics listener stopped");
                        }
                    }))
                }
                None => None,
            },
            None => None,
        };
        let limits = self.state.config.server.listener;
        let result = listener::serve(self.router, listener, limits, shutdown).await;
        if let Some(task) = metrics_listener {
            task.abort();
        }
        sweeper.abort();
        if let Some(task) = provider_side {
            task.abort();
        }
        // After the last request is answered: its spans are queued by now.
        if let Some(export) = export {
            export.stop().await;
        }
        result
    }
}

/// The OpenID Provider's background work: back-channel logout tokens owed to clients, sent within
/// a second of the session's end; and every half minute, the grants of sessions that ended by idle
/// timeout.
async fn op_maintenance(state: AppState) {
    const CHECK_EVERY: Duration = Duration::from_secs(30);
    let sends = state
        .config
        .clients
        .values()
        .any(|c| c.backchannel_logout_uri.is_some());
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_check = std::time::Instant::now();
    loop {
        tick.tick().await;
        let op = state.op();
        if last_check.elapsed() >= CHECK_EVERY {
            last_check = std::time::Instant::now();
            op::backchannel::check_grants(&op, CHECK_EVERY).await;
        }
        if sends {
            op::backchannel::deliver_due(&op, &state.upstream.0).await;
        }
    }
}
