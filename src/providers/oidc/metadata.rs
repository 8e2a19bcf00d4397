//! Discovery of a provider's metadata and keys, kept and refreshed (at most once per interval when
//! a token names an unknown key), and where its revocation and logout endpoints are.

use std::sync::Arc;
use std::time::Instant;

use url::Url;

use super::{OidcClient, REDISCOVERY_INTERVAL};
use crate::config::ProviderKind;
use crate::providers::discovery::{self, Metadata};
use crate::providers::error::ProviderError;

pub struct Discovered {
    pub metadata: Metadata,
    pub fetched_at: Instant,
    /// Where tokens are revoked (RFC 7009), when the provider says so anywhere.
    pub revocation: Option<Endpoint>,
    /// Where RP-initiated logout goes.
    pub end_session_endpoint: Option<Url>,
}

/// An endpoint and where the broker learnt it (for logs and readiness).
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub url: Url,
    /// `config`, the provider's `kind`, `discovery`, or `rfc8414`.
    pub source: &'static str,
}

impl OidcClient {
    /// The provider's metadata and keys, discovering them on first use.
    pub async fn metadata(&self) -> Result<Arc<Discovered>, ProviderError> {
        if let Some(d) = self.discovered.read().await.clone() {
            return Ok(d);
        }
        let _gate = self.discovery_gate.lock().await;
        if let Some(d) = self.discovered.read().await.clone() {
            return Ok(d);
        }
        self.discover().await
    }

    async fn discover(&self) -> Result<Arc<Discovered>, ProviderError> {
        let metadata = discovery::discover(&self.http, self.issuer.as_str())
            .await
            .map_err(|e| {
                tracing::warn!(provider = %self.id, reason = %e, "discovery failed");
                if e.transient {
                    ProviderError::unavailable(&self.id, e)
                } else {
                    ProviderError::upstream(
                        "provider_misconfigured",
                        format!(
                            "The identity provider `{}` cannot be used: its discovery document or keys are unusable.",
                            self.id
                        ),
                        e,
                    )
                }
            })?;
        let extra = metadata.additional_metadata();
        let mut revocation = self.fixed_revocation_endpoint().or_else(|| {
            extra
                .revocation_endpoint
                .clone()
                .filter(|u| self.acceptable_endpoint(u))
                .map(|url| Endpoint {
                    url,
                    source: "discovery",
                })
        });
        let mut end_session = self.end_session_endpoint.clone().or_else(|| {
            extra
                .end_session_endpoint
                .clone()
                .filter(|u| self.acceptable_endpoint(u))
        });
        // RFC 8414 metadata, when OpenID Connect discovery does not say where to revoke (the
        // built-in dev provider issues no refresh tokens: nothing to look for).
        if revocation.is_none()
            && self.kind != ProviderKind::Dev
            && let Some(m) =
                discovery::authorization_server_metadata(&self.http, &self.id, self.issuer.as_str())
                    .await
        {
            revocation = m
                .revocation_endpoint
                .filter(|u| self.acceptable_endpoint(u))
                .map(|url| Endpoint {
                    url,
                    source: "rfc8414",
                });
            if end_session.is_none() {
                end_session = m
                    .end_session_endpoint
                    .filter(|u| self.acceptable_endpoint(u));
            }
        }
        let d = Arc::new(Discovered {
            metadata,
            fetched_at: Instant::now(),
            revocation,
            end_session_endpoint: end_session,
        });
        *self.discovered.write().await = Some(d.clone());
        tracing::info!(
            provider = %self.id,
            issuer = %self.issuer.as_str(),
            revocation = d.revocation.as_ref().map_or("none", |e| e.source),
            "provider discovered"
        );
        Ok(d)
    }

    /// A revocation endpoint known without metadata: the explicit setting, or the kind's own.
    pub(super) fn fixed_revocation_endpoint(&self) -> Option<Endpoint> {
        if let Some(url) = &self.revocation_endpoint {
            return Some(Endpoint {
                url: url.clone(),
                source: "config",
            });
        }
        let path = match self.kind {
            ProviderKind::Auth0 => "/oauth/revoke",
            ProviderKind::Cognito => "/oauth2/revoke",
            _ => return None,
        };
        let url = Url::parse(&format!("{}{path}", self.domain_base.as_deref()?)).ok()?;
        Some(Endpoint {
            url,
            source: "kind",
        })
    }

    /// Metadata endpoints get the client secret or tokens: https, or the issuer's own scheme
    /// (plain http only ever for a loopback issuer in development, as config validation allows).
    fn acceptable_endpoint(&self, u: &Url) -> bool {
        u.scheme() == "https"
            || self
                .issuer
                .as_str()
                .starts_with(&format!("{}:", u.scheme()))
    }

    /// Re-discovers after an unknown signing key, at most once per [`REDISCOVERY_INTERVAL`].
    /// Returns `None` when the interval has not passed.
    pub(crate) async fn rediscover_for_unknown_key(
        &self,
        seen: &Arc<Discovered>,
    ) -> Result<Option<Arc<Discovered>>, ProviderError> {
        let mut gate = self.discovery_gate.lock().await;
        if let Some(current) = self.discovered.read().await.clone()
            && !Arc::ptr_eq(&current, seen)
        {
            return Ok(Some(current)); // someone else refreshed meanwhile
        }
        if gate.is_some_and(|last| last.elapsed() < REDISCOVERY_INTERVAL) {
            return Ok(None);
        }
        *gate = Some(Instant::now());
        tracing::info!(provider = %self.id, "unknown signing key: fetching the provider's keys again");
        self.discover().await.map(Some)
    }
}
