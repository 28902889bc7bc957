//! The relayers' health cache: in-process, and on the machine's Redis
//! (127.0.0.1:6379), where two replicas share one view.

mod support;

use std::time::Duration;

use support::relay::skip;
use switchyard::relayers::cache::{CacheError, CacheSettings, HealthCache, MemoryCache, RedisCache, RelayerHealth};

const TTL: Duration = Duration::from_millis(600);

fn redis_url() -> String {
    std::env::var("SWITCHYARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn redis(prefix: &str) -> Option<RedisCache> {
    let settings = CacheSettings { ttl: TTL, ..Default::default() };
    match RedisCache::connect(&redis_url(), prefix, settings).await {
        Ok(cache) => Some(cache),
        Err(e) => {
            skip(&format!("Redis at {} is unreachable: {e}", redis_url()));
            None
        }
    }
}

fn unique_prefix() -> String {
    format!("switchyard-test-{}:", uuid::Uuid::new_v4().simple())
}

fn health(balance: &str) -> RelayerHealth {
    RelayerHealth { balance: balance.into(), chain_nonce: 7, healthy: true, checked_at_ms: 1 }
}

async fn keeps_an_entry_for_its_ttl(cache: &dyn HealthCache) {
    assert_eq!(cache.get("r1").await.unwrap(), None);
    cache.put("r1", &health("100")).await.unwrap();
    assert_eq!(cache.get("r1").await.unwrap(), Some(health("100")));
    assert_eq!(cache.get("r2").await.unwrap(), None, "one entry per relayer");
    tokio::time::sleep(TTL + Duration::from_millis(200)).await;
    assert_eq!(cache.get("r1").await.unwrap(), None, "gone after the TTL");
}

#[tokio::test]
async fn in_process_entries_last_their_ttl() {
    keeps_an_entry_for_its_ttl(&MemoryCache::new(TTL)).await;
    assert!(MemoryCache::new(TTL).ping().await.is_none(), "nothing to ping in-process");
}

#[tokio::test]
async fn redis_entries_last_their_ttl() {
    let Some(cache) = redis(&unique_prefix()).await else { return };
    keeps_an_entry_for_its_ttl(&cache).await;
    assert!(matches!(cache.ping().await, Some(Ok(()))));
}

#[tokio::test]
async fn replicas_on_one_redis_share_one_view_under_their_prefix() {
    let prefix = unique_prefix();
    let (Some(a), Some(b)) = (redis(&prefix).await, redis(&prefix).await) else { return };
    a.put("relayer-1", &health("42")).await.unwrap();
    assert_eq!(b.get("relayer-1").await.unwrap(), Some(health("42")), "b reads what a checked");
    assert_eq!(a.key("relayer-1"), format!("{prefix}relayer:relayer-1:health"));
    let Some(other) = redis(&unique_prefix()).await else { return };
    assert_eq!(other.get("relayer-1").await.unwrap(), None, "another deployment's prefix sees nothing");
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error_without_the_password() {
    let error = RedisCache::connect("redis://:hunter2@127.0.0.1:9", "p:", CacheSettings::default()).await.unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(error, CacheError::Redis(_)) && text.contains("127.0.0.1:9") && !text.contains("hunter2"),
        "{text}"
    );
}
