//! The client for `[routes]` upstreams.

use std::time::Duration;

/// The client for upstreams. Upstreams come from the operator's config and are usually on a
/// private network, so unlike the provider client it has no private-address guard; it follows no
/// redirect (the caller's browser should see them) and uses no system proxy.
#[derive(Clone)]
pub struct UpstreamClient(pub reqwest::Client);

impl UpstreamClient {
    pub fn new() -> Result<Self, reqwest::Error> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .map(UpstreamClient)
    }
}
