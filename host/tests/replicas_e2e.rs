//! Production shape: two `switchyard serve` replicas on one PostgreSQL, one
//! RabbitMQ and one Redis, relaying to anvil. The broker is reached through a
//! proxy the test cuts for 30 s under a steady load: the API keeps accepting
//! into the outbox, and everything drains after the broker is back.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::brokers::{Proxy, amqp_url, fresh_amqp_name};
use support::databases::{Server as Database, fresh_url};
use support::relay::{Anvil, Load, STANDARD_PLUGINS, Server, accepted, assert_books_balance, attempted, write_config};
use switchyard::queue::RetryPolicy;
use switchyard::relayers::cache::{CacheSettings, HealthCache, RedisCache};

const RELAYERS: usize = 3;
const WORKERS: usize = 8;
/// How long the broker stays unreachable while the load goes on.
const OUTAGE: Duration = Duration::from_secs(30);

/// The retry policy `write_config` gives the replicas.
fn policy() -> RetryPolicy {
    RetryPolicy { base_delay: Duration::from_millis(200), max_delay: Duration::from_secs(2), ..Default::default() }
}

fn redis_url() -> String {
    std::env::var("SWITCHYARD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn redis(prefix: &str) -> Option<RedisCache> {
    match RedisCache::connect(&redis_url(), prefix, CacheSettings::default()).await {
        Ok(cache) => Some(cache),
        Err(e) => {
            support::relay::skip(&format!("Redis at {} is unreachable: {e}", redis_url()));
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_and_rabbitmq_keep_accepting_through_a_30_s_broker_outage_and_confirm_all_exactly_once()
 {
    let Some(anvil) = Anvil::start() else { return };
    let Some(database_url) = fresh_url(Database::Postgres).await else { return };
    let Some(queue_name) = fresh_amqp_name("replicas", &policy()).await else { return };
    let target = amqp_url().split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap().parse().unwrap();
    let proxy = Proxy::start(target).await;
    let prefix = format!("switchyard-test-{}:", uuid::Uuid::new_v4().simple());
    let Some(cache) = redis(&prefix).await else { return };

    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let shared = [
        ("SWITCHYARD_DATABASE_URL".to_string(), database_url),
        ("SWITCHYARD_QUEUE_URL".to_string(), proxy.amqp_url()),
        ("SWITCHYARD_QUEUE__NAME".to_string(), queue_name),
        ("SWITCHYARD_REDIS_URL".to_string(), redis_url()),
        ("SWITCHYARD_CACHE__KEY_PREFIX".to_string(), prefix.clone()),
    ];
    let configs: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let (file, mut env) = write_config(dir.path(), &anvil, RELAYERS, WORKERS, STANDARD_PLUGINS);
            env.extend(shared.iter().cloned());
            (file, env)
        })
        .collect();

    // A server database is migrated by the deploy, not by serve.
    let migrated = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["migrate", "--config"])
        .arg(&configs[0].0)
        .envs(configs[0].1.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("postgres"));

    let replicas = [Server::start(&configs[0].0, &configs[0].1), Server::start(&configs[1].0, &configs[1].1)];
    for replica in &replicas {
        let (status, ready) = replica.get("/api/v1/ready").await;
        assert_eq!((status, &ready["ready"]), (200, &json!(true)), "{ready}");
        assert_eq!(ready["components"]["redis"]["status"], "healthy", "{ready}");
    }

    // A steady load over both replicas from before the outage to after it.
    let load = Load::start(&[&replicas[0].url, &replicas[1].url], 0, 2, Duration::from_millis(100));
    load.until_accepted(60, Duration::from_secs(60)).await;

    proxy.cut();
    let cut_at = tokio::time::Instant::now();
    // The broker is gone: readiness says so, and submissions still land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, ready) = replicas[0].get("/api/v1/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["components"]["queue"]["status"], "unhealthy", "{ready}");
    let (status, stats) = replicas[1].get("/api/v1/queue/stats").await;
    assert_eq!(status, 503, "queue stats need the broker: {stats}");
    load.until_accepted(100, Duration::from_secs(25)).await;
    tokio::time::sleep_until(cut_at + OUTAGE).await;
    proxy.restore().await;
    load.until_accepted(60, Duration::from_secs(60)).await;
    let outcomes = load.stop().await;

    let failed: Vec<_> = outcomes.iter().filter(|o| o.answer.is_err()).collect();
    assert!(failed.is_empty(), "the API refused submissions around the outage: {failed:?}");
    let ids = accepted(&outcomes);
    let txs = replicas[0].wait_final(&ids, Duration::from_secs(300)).await;
    assert_books_balance(&anvil, &replicas[1], RELAYERS, &ids, &attempted(&outcomes)).await;
    let relayers: std::collections::BTreeSet<&str> = txs.iter().map(|tx| tx["relayer_id"].as_str().unwrap()).collect();
    assert_eq!(relayers.len(), RELAYERS, "every relayer took part");
    for replica in &replicas {
        let (status, ready) = replica.get("/api/v1/ready").await;
        assert_eq!((status, &ready["ready"]), (200, &json!(true)), "ready again once the broker is back: {ready}");
    }
    let (_, stats) = replicas[1].get("/api/v1/queue/stats").await;
    assert_eq!(stats["data"], json!({"queued": 0, "in_flight": 0, "dead": 0}), "{stats}");
    // The replicas keep each relayer's health in Redis, under their prefix.
    for i in 1..=RELAYERS {
        let relayer = format!("relayer-{i}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(health) = cache.get(&relayer).await.unwrap() {
                assert!(health.healthy && health.balance != "0", "{relayer}: {health:?}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "no health of {relayer} in Redis");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for replica in replicas {
        assert!(replica.stop().success(), "SIGTERM drains and exits 0");
    }
}
