//! The relayers' chain-side health (balance, chain nonce, healthy), cached
//! for a TTL. With Redis, every replica reads the check one of them made,
//! so N replicas do not probe the chain N times per relayer; without it the
//! same cache lives in the process. A cache that fails or is slow (every
//! Redis call is bounded by a timeout) only means checking the chain again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use crate::config::redact_url;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("Redis: {0}")]
    Redis(String),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// One relayer's health as a check of the chain found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelayerHealth {
    /// Wei, as a decimal string.
    pub balance: String,
    pub chain_nonce: u64,
    pub healthy: bool,
    pub checked_at_ms: i64,
}

#[async_trait]
pub trait HealthCache: Send + Sync + std::fmt::Debug {
    /// The health of `relayer_id` if one was checked within the TTL.
    async fn get(&self, relayer_id: &str) -> Result<Option<RelayerHealth>, CacheError>;
    async fn put(&self, relayer_id: &str, health: &RelayerHealth) -> Result<(), CacheError>;
    /// Whether the cache answers; `None` when it is in-process.
    async fn ping(&self) -> Option<Result<(), CacheError>>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheSettings {
    pub ttl: Duration,
    /// Bounds every Redis call.
    pub timeout: Duration,
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings { ttl: Duration::from_secs(10), timeout: Duration::from_millis(500) }
    }
}

/// The in-process cache: one replica's own view.
#[derive(Debug)]
pub struct MemoryCache {
    ttl: Duration,
    entries: std::sync::Mutex<HashMap<String, (Instant, RelayerHealth)>>,
}

impl MemoryCache {
    pub fn new(ttl: Duration) -> Self {
        MemoryCache { ttl, entries: Default::default() }
    }
}

#[async_trait]
impl HealthCache for MemoryCache {
    async fn get(&self, relayer_id: &str) -> Result<Option<RelayerHealth>, CacheError> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        Ok(entries.get(relayer_id).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, health)| health.clone()))
    }

    async fn put(&self, relayer_id: &str, health: &RelayerHealth) -> Result<(), CacheError> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.insert(relayer_id.to_string(), (Instant::now(), health.clone()));
        Ok(())
    }

    async fn ping(&self) -> Option<Result<(), CacheError>> {
        None
    }
}

/// Redis through a connection manager, which reconnects by itself. Keys:
/// `<prefix>relayer:<id>:health`, expiring after the TTL.
pub struct RedisCache {
    connection: ConnectionManager,
    prefix: String,
    settings: CacheSettings,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connects; a wrong URL or an unreachable server is an error here.
    pub async fn connect(url: &str, prefix: &str, settings: CacheSettings) -> Result<Self, CacheError> {
        Ok(RedisCache::new(redis_connection(url, settings.timeout).await?, prefix, settings))
    }

    /// Shares a connection (the rate limiter's).
    pub fn new(connection: ConnectionManager, prefix: &str, settings: CacheSettings) -> Self {
        RedisCache { connection, prefix: prefix.to_string(), settings }
    }

    pub fn key(&self, relayer_id: &str) -> String {
        format!("{}relayer:{relayer_id}:health", self.prefix)
    }

    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        tokio::time::timeout(self.settings.timeout, call)
            .await
            .map_err(|_| CacheError::Timeout(self.settings.timeout))?
            .map_err(|e| CacheError::Redis(e.to_string()))
    }
}

/// A connection manager (it reconnects by itself) whose calls time out
/// after `timeout`; a wrong URL or an unreachable server is an error here.
pub async fn redis_connection(url: &str, timeout: Duration) -> Result<ConnectionManager, CacheError> {
    let shown = redact_url(url);
    let client =
        redis::Client::open(url).map_err(|e| CacheError::Redis(format!("`{shown}` is not a Redis URL: {e}")))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1);
    tokio::time::timeout(timeout * 4, ConnectionManager::new_with_config(client, config))
        .await
        .map_err(|_| CacheError::Redis(format!("cannot reach Redis at {shown}: no answer")))?
        .map_err(|e| CacheError::Redis(format!("cannot reach Redis at {shown}: {e}")))
}

#[async_trait]
impl HealthCache for RedisCache {
    async fn get(&self, relayer_id: &str) -> Result<Option<RelayerHealth>, CacheError> {
        let mut connection = self.connection.clone();
        let text: Option<String> = self.bounded(connection.get(self.key(relayer_id))).await?;
        // An entry this build cannot read is as good as none.
        Ok(text.and_then(|text| serde_json::from_str(&text).ok()))
    }

    async fn put(&self, relayer_id: &str, health: &RelayerHealth) -> Result<(), CacheError> {
        let mut connection = self.connection.clone();
        let text = serde_json::to_string(health).map_err(|e| CacheError::Redis(e.to_string()))?;
        let ttl_ms = u64::try_from(self.settings.ttl.as_millis()).unwrap_or(u64::MAX);
        let options = redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms));
        self.bounded(connection.set_options::<_, _, ()>(self.key(relayer_id), text, options)).await
    }

    async fn ping(&self) -> Option<Result<(), CacheError>> {
        let mut connection = self.connection.clone();
        Some(self.bounded(redis::cmd("PING").query_async::<String>(&mut connection)).await.map(drop))
    }
}
