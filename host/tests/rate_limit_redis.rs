//! Per-key rate limits on the machine's Redis (127.0.0.1:6379): replicas
//! spend one budget per key.

mod support;

use std::time::Duration;

use support::relay::skip;
use switchyard::access::{Rate, RateLimiter, RedisLimiter};
use switchyard::relayers::cache::redis_connection;

async fn replica(prefix: &str) -> Option<RedisLimiter> {
    let url = std::env::var("SWITCHYARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    match redis_connection(&url, Duration::from_millis(500)).await {
        Ok(connection) => Some(RedisLimiter::new(connection, prefix, Duration::from_millis(500))),
        Err(e) => {
            skip(&format!("Redis at {url} is unreachable: {e}"));
            None
        }
    }
}

#[tokio::test]
async fn replicas_on_one_redis_share_each_keys_budget() {
    let prefix = format!("switchyard-test-{}:", uuid::Uuid::new_v4().simple());
    let (Some(a), Some(b)) = (replica(&prefix).await, replica(&prefix).await) else { return };
    let rate = Rate { per_second: 1.0, burst: 4 };
    for replica in [&a, &b, &a, &b] {
        assert_eq!(replica.take("key-1", rate).await, Ok(()));
    }
    // The burst is spent across both: each refuses now, with the wait.
    for replica in [&a, &b] {
        let wait = replica.take("key-1", rate).await.unwrap_err();
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_secs(1), "{wait:?}");
    }
    // Another key, and the same key under another prefix, have their own.
    assert_eq!(a.take("key-2", rate).await, Ok(()));
    let Some(elsewhere) = replica(&format!("{prefix}other:")).await else { return };
    assert_eq!(elsewhere.take("key-1", rate).await, Ok(()));
    // A token comes back after 1 / per_second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(b.take("key-1", rate).await, Ok(()));
    assert!(a.take("key-1", rate).await.is_err());
}
