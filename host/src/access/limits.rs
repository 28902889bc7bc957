//! Per-key rate limits: a token bucket per API key. With Redis the buckets
//! live there, so every replica spends the same budget; without it, in the
//! process. A Redis that fails or is slow never blocks a request: the
//! replica falls back to its own buckets until Redis answers again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::ConnectionManager;

/// A bucket of `burst` requests, refilled at `per_second`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests per second, sustained; more than 0.
    pub per_second: f64,
    /// Requests at once after a quiet spell; at least 1.
    pub burst: u32,
}

impl Rate {
    /// The field that is out of range, and why.
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(self.per_second.is_finite() && self.per_second > 0.0 && self.per_second <= 1e6) {
            return Err(("per_second", "must be more than 0 and at most 1000000"));
        }
        if self.burst == 0 || self.burst > 1_000_000 {
            return Err(("burst", "must be 1 to 1000000"));
        }
        Ok(())
    }
}

#[async_trait]
pub trait RateLimiter: Send + Sync + std::fmt::Debug {
    /// Takes one request from `key_id`'s bucket; when it is empty, how long
    /// until it holds one.
    async fn take(&self, key_id: &str, rate: Rate) -> Result<(), Duration>;
}

/// One replica's buckets.
#[derive(Debug, Default)]
pub struct MemoryLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Buckets kept at most; beyond, the full ones (idle keys) are dropped.
const BUCKET_LIMIT: usize = 100_000;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl MemoryLimiter {
    fn take_now(&self, key_id: &str, rate: Rate, now: Instant) -> Result<(), Duration> {
        let burst = f64::from(rate.burst);
        // Holds no invariant a panic could break.
        let mut buckets = self.buckets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= BUCKET_LIMIT && !buckets.contains_key(key_id) {
            buckets.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate.per_second < burst);
        }
        let bucket = buckets.entry(key_id.to_string()).or_insert(Bucket { tokens: burst, at: now });
        let refilled = now.saturating_duration_since(bucket.at).as_secs_f64() * rate.per_second;
        bucket.tokens = (bucket.tokens + refilled).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / rate.per_second))
        }
    }
}

#[async_trait]
impl RateLimiter for MemoryLimiter {
    async fn take(&self, key_id: &str, rate: Rate) -> Result<(), Duration> {
        self.take_now(key_id, rate, Instant::now())
    }
}

/// Takes a token atomically on Redis' clock, so replicas with skewed clocks
/// agree. Returns 0, or the milliseconds until a token is free.
const TAKE: &str = r"
local rate = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = math.ceil((1 - tokens) / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate) + 1000)
return wait
";

/// Buckets in Redis under `<prefix>ratelimit:<key id>`.
pub struct RedisLimiter {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    script: redis::Script,
    fallback: MemoryLimiter,
}

impl std::fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimiter").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisLimiter {
    pub fn new(connection: ConnectionManager, prefix: &str, timeout: Duration) -> Self {
        RedisLimiter {
            connection,
            prefix: prefix.to_string(),
            timeout,
            script: redis::Script::new(TAKE),
            fallback: MemoryLimiter::default(),
        }
    }
}

#[async_trait]
impl RateLimiter for RedisLimiter {
    async fn take(&self, key_id: &str, rate: Rate) -> Result<(), Duration> {
        let mut connection = self.connection.clone();
        let mut call = self.script.key(format!("{}ratelimit:{key_id}", self.prefix));
        call.arg(rate.per_second).arg(rate.burst);
        match tokio::time::timeout(self.timeout, call.invoke_async::<u64>(&mut connection)).await {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(wait_ms)) => Err(Duration::from_millis(wait_ms)),
            Ok(Err(error)) => {
                tracing::warn!(%error, "rate limit: Redis failed; this replica counts on its own");
                self.fallback.take(key_id, rate).await
            }
            Err(_) => {
                tracing::warn!(timeout = ?self.timeout, "rate limit: Redis is slow; this replica counts on its own");
                self.fallback.take(key_id, rate).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_lets_its_burst_through_then_refills_at_the_rate() {
        let limiter = MemoryLimiter::default();
        let rate = Rate { per_second: 10.0, burst: 3 };
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.take_now("k", rate, start), Ok(()));
        }
        let wait = limiter.take_now("k", rate, start).unwrap_err();
        assert!((Duration::from_millis(99)..=Duration::from_millis(101)).contains(&wait), "{wait:?}");
        // Another key has its own bucket.
        assert_eq!(limiter.take_now("other", rate, start), Ok(()));
        // 100 ms later, one token.
        let later = start + Duration::from_millis(100);
        assert_eq!(limiter.take_now("k", rate, later), Ok(()));
        assert!(limiter.take_now("k", rate, later).is_err());
        // A long pause refills only up to the burst.
        let much_later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.take_now("k", rate, much_later), Ok(()));
        }
        assert!(limiter.take_now("k", rate, much_later).is_err());
    }

    #[test]
    fn rates_outside_the_sane_range_are_refused() {
        assert!(Rate { per_second: 0.0, burst: 1 }.check().is_err());
        assert!(Rate { per_second: f64::NAN, burst: 1 }.check().is_err());
        assert!(Rate { per_second: 1.0, burst: 0 }.check().is_err());
        assert!(Rate { per_second: 0.5, burst: 1 }.check().is_ok());
    }
}
