//! Identity providers: one [`Provider`] per configured `[providers.ID]`, all driven through the same
//! OpenID Connect code path; kinds differ only where a provider departs from the standard.

pub mod dev;
mod oidc;

use std::collections::BTreeMap;
use std::sync::Arc;

pub use oidc::{Discovered, Provider, ProviderTokens};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::http_client::HttpClient;

pub struct ProviderRegistry {
    providers: BTreeMap<String, Arc<Provider>>,
}

impl ProviderRegistry {
    /// `dev_secrets` holds the client secret of each built-in dev provider.
    pub fn new(
        config: &Config,
        http: HttpClient,
        clock: SharedClock,
        dev_secrets: &BTreeMap<String, String>,
    ) -> Self {
        let providers = config
            .providers
            .iter()
            .map(|(id, pc)| {
                let p = Provider::new(
                    id,
                    pc,
                    config,
                    http.clone(),
                    clock.clone(),
                    dev_secrets.get(id).cloned(),
                );
                (id.clone(), Arc::new(p))
            })
            .collect();
        ProviderRegistry { providers }
    }

    pub fn get(&self, id: &str) -> Option<&Arc<Provider>> {
        self.providers.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Provider>> {
        self.providers.values()
    }

    pub fn len(&self) -> usize {
        self.providers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }
}
