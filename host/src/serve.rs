//! `switchyard serve`: wires the seams together and runs until SIGINT or
//! SIGTERM, then drains: the listener stops taking connections, in-flight
//! requests finish, workers finish the delivery they hold.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;

use crate::access::{MemoryLimiter, RateLimiter, RedisLimiter};
use crate::api::{self, AppState};
use crate::chain::Chain;
use crate::chain::dev::DevChain;
use crate::config::{Config, RelayerConfig};
use crate::pipeline::webhooks::WebhookDispatcher;
use crate::pipeline::{Relay, RelaySettings, Watcher};
use crate::plugins::{PluginHost, PluginWatcher, ReloadOutcome};
use crate::queue::amqp::{AmqpQueue, AmqpSettings};
use crate::queue::embedded::EmbeddedQueue;
use crate::queue::outbox::Brokered;
use crate::queue::sqs::{SqsQueue, SqsSettings};
use crate::queue::{Broker, Queue, QueueBackend};
use crate::relayers::cache::{RedisCache, redis_connection};
use crate::relayers::{Relayer, RelayerPool};
use crate::store::sql::SqlStore;
use crate::store::{EventKind, Store};

/// How many of the dev chain's funded keys become relayers.
const DEV_RELAYERS: usize = 3;

pub async fn serve(config: Config, config_file: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;

    // The backends first: a wrong URL or a server that is down stops the
    // start before anything else is spun up.
    let store = open_store(&config).await?;
    let queue = open_queue(&config, &store).await?;
    let redis = match &config.redis_url {
        Some(url) => Some(redis_connection(url, config.cache.settings().timeout).await?),
        None => None,
    };

    let dev_chain = match &config.rpc_url {
        Some(_) => None,
        None => Some(DevChain::start(&config.data_dir).await?),
    };
    let rpc_urls: Vec<String> = match &config.rpc_url {
        Some(url) => std::iter::once(url.clone()).chain(config.rpc_fallback_urls.iter().cloned()).collect(),
        None => dev_chain.iter().map(|d| d.url.clone()).collect(),
    };
    let chain = connect(&rpc_urls, &config).await?;
    let mut relayers = relayers(&config, dev_chain.as_ref())?.with_max_in_flight(config.network.max_in_flight);
    if let Some(redis) = &redis {
        let cache = RedisCache::new(redis.clone(), &config.cache.key_prefix, config.cache.settings());
        relayers = relayers.with_cache(Arc::new(cache));
    }
    let engine = config.plugins.engine_settings(&config.data_dir);
    let plugins_config = config.plugins.clone();
    let (plugins, _) = tokio::task::spawn_blocking(move || PluginHost::new(&plugins_config, engine)).await??;
    let plugins = Arc::new(plugins);
    let (swaps, swapped) = tokio::sync::mpsc::unbounded_channel();
    let _plugin_watcher = if config.plugins.watch {
        let debounce = Duration::from_millis(config.plugins.debounce_ms);
        Some(PluginWatcher::start_reporting(plugins.clone(), config_file, debounce, Some(swaps))?)
    } else {
        None
    };

    let settings = RelaySettings {
        confirmations: config.network.confirmations,
        poll_interval: Duration::from_millis(config.network.poll_interval_ms),
        gas_limit_buffer_bps: config.network.gas_limit_buffer_bps,
        estimate_block: config.network.estimate_block,
        fee_history_blocks: config.network.fee_history_blocks,
        max_fee_cap: config.max_fee_cap()?,
        resubmit_after: Duration::from_millis(config.network.resubmit_after_ms),
        health: config.health_policy()?,
        hold_for_room: Duration::from_millis(config.queue.lease_ms / 2),
        forwarders: config.forwarders()?,
    };
    let relay = Arc::new(Relay::new(Arc::new(store), queue, plugins, Arc::new(relayers), chain, settings));
    tokio::spawn(record_plugin_events(relay.store.clone(), swapped));
    Watcher::new(relay.clone()).refresh_relayers().await;

    let (master_key, generated) = match &config.master_key {
        Some(key) => (key.clone(), false),
        None => (uuid::Uuid::new_v4().simple().to_string(), true),
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    announce(&address.to_string(), &master_key, generated, &relay);

    if config.queue.workers == 0 {
        tracing::warn!("queue.workers = 0: this replica accepts and queues but relays nothing");
    }
    let (stop, stopped) = watch::channel(false);
    let mut tasks = relay.spawn(config.queue.workers, stopped.clone());
    let webhooks = WebhookDispatcher::new(relay.store.clone(), config.webhooks.settings());
    tasks.push(tokio::spawn(webhooks.run(stopped.clone())));
    tasks.push(tokio::spawn(config.retention.settings().run(relay.store.clone(), stopped.clone())));
    // Replicas share the keys' budgets through Redis.
    let limiter: Arc<dyn RateLimiter> = match redis {
        Some(redis) => Arc::new(RedisLimiter::new(redis, &config.cache.key_prefix, config.cache.settings().timeout)),
        None => Arc::new(MemoryLimiter::default()),
    };
    let (closing, closing_seen) = watch::channel(false);
    let state = AppState::new(relay.clone(), &master_key, &config.network.name)
        .with_rate_limits(limiter, config.http.rate_limit())
        .with_closing(closing_seen);
    let app = api::router(state, &config.http);
    let shutdown = async move {
        shutdown_signal().await;
        let _ = closing.send(true);
    };
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;

    tracing::info!("draining: workers finish the deliveries they hold");
    let _ = stop.send(true);
    let grace = Duration::from_millis(config.http.shutdown_grace_ms);
    let drained = tokio::time::timeout(grace, futures_join(tasks)).await;
    if drained.is_err() {
        tracing::warn!(?grace, "workers did not drain in time; their deliveries are redelivered at next start");
    }
    relay.queue.close().await;
    if let Some(dev_chain) = dev_chain {
        dev_chain.stop().await;
    }
    Ok(())
}

/// The configured database, or SQLite in the data directory, migrated or
/// checked as `database.migrate` says.
async fn open_store(config: &Config) -> anyhow::Result<SqlStore> {
    let url = config.database_url()?;
    Ok(SqlStore::connect(&url, &config.database_options(false)).await?)
}

/// The queue `queue_url` names; a broker is fed from the store's outbox.
async fn open_queue(config: &Config, store: &SqlStore) -> anyhow::Result<Arc<dyn Queue>> {
    let policy = config.queue.retry_policy();
    let broker: Arc<dyn Broker> = match QueueBackend::parse(&config.queue_url).map_err(anyhow::Error::msg)? {
        QueueBackend::Embedded => return Ok(Arc::new(EmbeddedQueue::new(store, policy))),
        QueueBackend::Amqp(url) => {
            let prefetch = config.queue.prefetch.unwrap_or(u16::try_from(config.queue.workers).unwrap_or(u16::MAX));
            let consume = config.queue.workers > 0;
            let settings = AmqpSettings { url, name: config.queue.name.clone(), prefetch, consume };
            Arc::new(AmqpQueue::connect(settings, policy).await?)
        }
        QueueBackend::Sqs(queue) => {
            let sqs = &config.queue.sqs;
            let settings = SqsSettings { queue, endpoint_url: sqs.endpoint_url.clone(), region: sqs.region.clone() };
            Arc::new(SqsQueue::connect(settings, policy).await?)
        }
    };
    Ok(Arc::new(Brokered::start(store, broker)))
}

async fn futures_join(tasks: Vec<tokio::task::JoinHandle<()>>) {
    for task in tasks {
        let _ = task.await;
    }
}

/// Connects to the chain, waiting up to 20 s for a node that is starting.
async fn connect(urls: &[String], config: &Config) -> anyhow::Result<Chain> {
    let timeout = Duration::from_millis(config.network.rpc_timeout_ms);
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown: Vec<String> = urls.iter().map(|url| crate::config::redact_url(url)).collect();
    loop {
        match Chain::connect(urls, timeout, config.network.chain_id).await {
            Ok(chain) => return Ok(chain),
            Err(error @ crate::chain::ChainError::WrongChain { .. }) => return Err(error.into()),
            Err(error) if Instant::now() > deadline => {
                return Err(
                    anyhow::Error::new(error).context(format!("connecting to the chain at {}", shown.join(", ")))
                );
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The configured relayers or, on the dev chain with none configured, the
/// chain's first funded dev keys.
fn relayers(config: &Config, dev_chain: Option<&DevChain>) -> anyhow::Result<RelayerPool> {
    if !config.relayers.is_empty() {
        let loaded: Result<Vec<_>, _> =
            config.relayers.iter().map(|r| Relayer::load(r, |var| std::env::var(var).ok())).collect();
        return Ok(RelayerPool::new(loaded?));
    }
    let dev_chain = dev_chain.context("no relayers are configured: add [[relayers]] to the config file")?;
    let relayers = dev_chain
        .keys
        .iter()
        .take(DEV_RELAYERS)
        .enumerate()
        .map(|(i, key)| {
            let config = RelayerConfig {
                id: format!("relayer-{}", i + 1),
                name: Some(format!("dev relayer {}", i + 1)),
                key: Default::default(),
                weight: 1,
                labels: Default::default(),
                paused: false,
            };
            Ok(Relayer::new(&config, key.parse().context("anvil printed a key that does not parse")?))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(RelayerPool::new(relayers))
}

#[allow(clippy::print_stdout)]
fn announce(address: &str, master_key: &str, generated: bool, relay: &Relay) {
    let relayers: Vec<&str> = relay.pool.iter().map(|r| r.id.as_str()).collect();
    println!("Switchyard is listening on http://{address}");
    println!("  chain:    {} (chain id {})", relay.chain.active_endpoint(), relay.chain.chain_id());
    println!("  relayers: {}", relayers.join(", "));
    // A key the operator set is a secret: never printed.
    let master_key = if generated {
        println!("  master key: {master_key}   (generated for this run; set SWITCHYARD_MASTER_KEY to fix one)");
        master_key
    } else {
        "$SWITCHYARD_MASTER_KEY"
    };
    println!();
    println!("Relay a transaction through the pool (the selector plugin picks the relayer):");
    println!(
        "  curl -s -X POST http://{address}/api/v1/transactions -H 'Authorization: Bearer {master_key}' \
         -H 'Content-Type: application/json' -d '{{\"to\":\"0x000000000000000000000000000000000000dEaD\",\"value\":1}}'"
    );
    println!("Then read it, with its decision trail:");
    println!("  curl -s http://{address}/api/v1/transactions/<id> -H 'Authorization: Bearer {master_key}'");
}

/// Hot swaps and refusals into the event log.
async fn record_plugin_events(store: Arc<dyn Store>, mut outcomes: UnboundedReceiver<ReloadOutcome>) {
    while let Some(outcome) = outcomes.recv().await {
        let (kind, detail) = match outcome {
            ReloadOutcome::Loaded { kind, now, .. } => (EventKind::PluginSwapped, format!("{kind}: {now}")),
            ReloadOutcome::Rejected { kind, file, reason } => {
                (EventKind::PluginRejected, format!("{kind}: {}: {reason}", file.display()))
            }
            ReloadOutcome::Unchanged(_) | ReloadOutcome::Cleared(_) => continue,
        };
        if let Err(error) = store.append_event(kind, None, &detail).await {
            tracing::warn!(%error, event = kind.as_str(), "plugin event not recorded");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutdown requested");
}
