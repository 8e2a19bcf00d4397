//! Session records in Redis (or a Redis Cluster or Sentinel set, by URL).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fred::types::SetOptions;
use time::OffsetDateTime;
use tower_sessions::session_store;

use super::backend;
use super::hashed_ids;
use super::record_cache::{Fence, Tracker};
use crate::store::session_key::SessionKey;

/// How long a request waits for Redis before it answers 503.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Session records in Redis, each under `{prefix}{key}` (the key: [`SessionKey`]) with the
/// record's expiry as the key's `EXAT`, so Redis removes what has expired. A save never recreates
/// a deleted record (`SET … XX`): a session revoked on another instance stays revoked even if a
/// request that was using it finishes afterwards.
///
/// One connection, on which concurrent commands are pipelined: fewer, fuller round trips cost
/// Redis and the broker less than a pool of connections each carrying a few. Unless turned off
/// (`[sessions] local_cache = false`) and not on a Cluster, records read for the session check are
/// kept in a cache that Redis invalidates and that is used only after a fence shows every earlier
/// change has arrived (see [`Tracker`]), so a revocation holds at the next request either way.
///
/// Records an earlier version stored under their clear id are moved to their keys before the
/// first command ([`hashed_ids::upgrade_redis`]); until that has succeeded every command fails,
/// as when Redis is down, so an old cookie is never taken for a missing session.
#[derive(Clone)]
pub struct RedisSessions {
    client: fred::clients::Client,
    tracker: Option<Arc<Tracker>>,
    prefix: Arc<str>,
    upgrade: Arc<Upgrade>,
}

#[derive(Default)]
struct Upgrade {
    done: AtomicBool,
    /// One upgrade at a time on this instance (others across instances: a lock in Redis).
    running: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for RedisSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSessions")
            .field("prefix", &self.prefix)
            .field("local_cache", &self.tracker.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisSessions {
    /// Connects in the background: a Redis that is down at start makes `/readyz` red and requests
    /// answer 503 until it is back, like a Redis that goes away later.
    pub async fn connect(url: &str, prefix: &str, local_cache: bool) -> Result<Self, String> {
        use fred::prelude::*;
        use fred::types::config::ServerConfig;
        let mut config = Config::from_url(url).map_err(|e| e.to_string())?;
        // Invalidations arrive on the connection that reads, which takes RESP3 (Redis 6+). On a
        // Cluster the fence and the keys would be on different nodes.
        let cached = local_cache && !matches!(config.server, ServerConfig::Clustered { .. });
        if cached {
            config.version = fred::types::RespVersion::RESP3;
        }
        let client = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = COMMAND_TIMEOUT;
                c.internal_command_timeout = COMMAND_TIMEOUT;
                c.max_command_attempts = 1;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = COMMAND_TIMEOUT;
                p.broadcast_channel_capacity = 1024;
            })
            .set_policy(ReconnectPolicy::new_constant(0, 500))
            .build()
            .map_err(|e| e.to_string())?;
        let tracker = cached.then(|| Tracker::start(&client, prefix));
        client.connect();
        let sessions = RedisSessions {
            client,
            tracker,
            prefix: Arc::from(prefix),
            upgrade: Arc::default(),
        };
        if tokio::time::timeout(Duration::from_secs(3), sessions.client.wait_for_connect())
            .await
            .is_err()
        {
            tracing::warn!("Redis is not reachable yet; retrying in the background");
        } else if let Err(e) = sessions.ready().await {
            tracing::warn!(error = %e, "moving session records to hashed keys failed; retried at the next request");
        }
        Ok(sessions)
    }

    /// Ok once records stored under clear ids have been moved to their keys.
    async fn ready(&self) -> session_store::Result<()> {
        if self.upgrade.done.load(Ordering::Acquire) {
            return Ok(());
        }
        let _one = self.upgrade.running.lock().await;
        if self.upgrade.done.load(Ordering::Acquire) {
            return Ok(());
        }
        let moved = hashed_ids::upgrade_redis(&self.client, &self.prefix)
            .await
            .map_err(backend)?;
        if moved > 0 {
            tracing::info!(moved, "session records moved from clear ids to hashed keys");
        }
        self.upgrade.done.store(true, Ordering::Release);
        Ok(())
    }

    pub(super) fn cached_records(&self) -> usize {
        self.tracker.as_ref().map_or(0, |t| t.cache.len())
    }

    fn key(&self, key: &SessionKey) -> String {
        format!("{}{}", self.prefix, key)
    }

    fn forget(&self, key: &str) {
        if let Some(t) = &self.tracker {
            t.cache.forget([key]);
        }
    }

    async fn write(
        &self,
        key: &SessionKey,
        data: Vec<u8>,
        expiry: OffsetDateTime,
        opt: SetOptions,
    ) -> session_store::Result<bool> {
        use fred::prelude::*;
        self.ready().await?;
        let key = self.key(key);
        self.forget(&key);
        let set: Result<Option<String>, _> = self
            .client
            .set(
                key.as_str(),
                data.as_slice(),
                Some(Expiration::EXAT(expiry.unix_timestamp())),
                Some(opt),
                false,
            )
            .await;
        self.forget(&key);
        Ok(set.map_err(backend)?.is_some())
    }

    pub(super) async fn insert(
        &self,
        key: &SessionKey,
        data: Vec<u8>,
        expiry: OffsetDateTime,
    ) -> session_store::Result<bool> {
        self.write(key, data, expiry, SetOptions::NX).await
    }

    pub(super) async fn update(
        &self,
        key: &SessionKey,
        data: Vec<u8>,
        expiry: OffsetDateTime,
    ) -> session_store::Result<()> {
        self.write(key, data, expiry, SetOptions::XX)
            .await
            .map(|_| ())
    }

    /// The stored bytes under `key`: from the cache when it holds them and a fence says they are
    /// current, from Redis otherwise.
    pub(super) async fn fetch(&self, key: &SessionKey) -> session_store::Result<Option<Bytes>> {
        use fred::prelude::*;
        self.ready().await?;
        let key = self.key(key);
        let Some(tracker) = &self.tracker else {
            return self.client.get(key).await.map_err(backend);
        };
        if tracker.cache.get(&key).is_some() {
            match tracker.fence().await {
                Fence::Fresh => {
                    if let Some(hit) = tracker.cache.get(&key) {
                        return Ok(Some(hit));
                    }
                }
                Fence::Untracked => {}
                Fence::Failed => return Err(backend("Redis did not answer")),
            }
        } else {
            tracker.nudge();
        }
        let epoch = tracker.cache.epoch();
        let data: Option<Bytes> = self.client.get(key.as_str()).await.map_err(backend)?;
        if let Some(d) = &data {
            tracker.cache.fill(epoch, &key, d.clone());
        }
        Ok(data)
    }

    pub(super) async fn remove(&self, key: &SessionKey) -> session_store::Result<()> {
        use fred::prelude::*;
        self.ready().await?;
        let key = self.key(key);
        self.forget(&key);
        let deleted: Result<i64, _> = self.client.del(key.as_str()).await;
        self.forget(&key);
        deleted.map_err(backend)?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), String> {
        use fred::prelude::*;
        self.client
            .ping::<String>(None)
            .await
            .map_err(|e| e.to_string())?;
        self.ready().await.map_err(|e| e.to_string())
    }

    /// The id Redis gives this instance's connection (`CLIENT ID`), for diagnostics and tests.
    pub async fn connection_id(&self) -> Result<i64, String> {
        use fred::prelude::*;
        self.client
            .custom(fred::cmd!("CLIENT"), vec!["ID"])
            .await
            .map_err(|e: fred::error::Error| e.to_string())
    }
}
