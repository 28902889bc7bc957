//! The host's configuration: one TOML file. Relative paths in it are
//! resolved against the file's own directory, so the host behaves the same
//! whatever directory it is started from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::access::Rate;
use crate::chain::EstimateBlock;
use crate::pipeline::webhooks::WebhookSettings;
use crate::plugins::{EngineSettings, Limits, PluginKind};
use crate::queue::{QueueBackend, RetryPolicy};
use crate::relayers::cache::CacheSettings;
use crate::relayers::health::HealthPolicy;
use crate::store::retention::Retention;
use crate::store::sql::{Backend, DatabaseOptions};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {origin} is not valid: {message}")]
    Parse { origin: String, message: String },
    #[error("config key `{key}`: {message}")]
    Invalid { key: String, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The REST API's address.
    pub listen: SocketAddr,
    /// The bearer token with every scope, which creates the other API keys.
    /// When unset, `serve` generates one and prints it.
    pub master_key: Option<String>,
    /// Where the embedded default keeps its state.
    pub data_dir: PathBuf,
    /// The chain's JSON-RPC endpoint. When unset, `serve` starts a local dev
    /// chain (anvil) and relays with its funded dev keys.
    pub rpc_url: Option<String>,
    /// More endpoints of the same chain, tried in order when the one in use
    /// times out, refuses connections or rate-limits. From the environment:
    /// comma-separated.
    pub rpc_fallback_urls: Vec<String>,
    /// The store: `sqlite:<path>`, `postgres://…` or `mysql://…`. When
    /// unset, SQLite in `data_dir`.
    pub database_url: Option<String>,
    /// The queue: `embedded` (the store's own outbox table, no broker),
    /// `amqp://user:password@host:port/vhost` (RabbitMQ), `sqs://<name>`
    /// (SQS, created with its dead-letter queue when missing) or an SQS
    /// queue URL (used as it is).
    pub queue_url: String,
    /// Redis (`redis://[:password@]host:port[/db]`), where replicas share the
    /// relayers' health. When unset, each keeps its own in-process cache.
    pub redis_url: Option<String>,
    pub cache: CacheConfig,
    pub database: DatabaseConfig,
    pub network: NetworkConfig,
    pub relayers: Vec<RelayerConfig>,
    pub queue: QueueConfig,
    pub http: HttpConfig,
    pub plugins: PluginsConfig,
    pub log: LogConfig,
    pub otel: OtelConfig,
    pub webhooks: WebhooksConfig,
    pub retention: RetentionConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            master_key: None,
            data_dir: PathBuf::from("data"),
            rpc_url: None,
            rpc_fallback_urls: Vec::new(),
            database_url: None,
            queue_url: "embedded".into(),
            redis_url: None,
            cache: CacheConfig::default(),
            database: DatabaseConfig::default(),
            network: NetworkConfig::default(),
            relayers: Vec::new(),
            queue: QueueConfig::default(),
            http: HttpConfig::default(),
            plugins: PluginsConfig::default(),
            log: LogConfig::default(),
            otel: OtelConfig::default(),
            webhooks: WebhooksConfig::default(),
            retention: RetentionConfig::default(),
        }
    }
}

/// The relayers' health cache.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// How long one health check of a relayer stands for every replica.
    pub ttl_ms: u64,
    /// The longest a Redis call may take before the chain is asked instead.
    pub timeout_ms: u64,
    /// Put before every Redis key, so that deployments can share a Redis.
    pub key_prefix: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        let settings = CacheSettings::default();
        CacheConfig {
            ttl_ms: settings.ttl.as_millis() as u64,
            timeout_ms: settings.timeout.as_millis() as u64,
            key_prefix: "switchyard:".into(),
        }
    }
}

impl CacheConfig {
    pub fn settings(&self) -> CacheSettings {
        CacheSettings { ttl: Duration::from_millis(self.ttl_ms), timeout: Duration::from_millis(self.timeout_ms) }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// Apply pending migrations when `serve` starts. Default: yes for
    /// SQLite, no for PostgreSQL and MySQL, where `switchyard migrate` runs
    /// them (a deploy step) and `serve` refuses a database that lacks one.
    pub migrate: Option<bool>,
    /// PostgreSQL and MySQL; SQLite keeps one (see `SqlStore::connect_only`).
    pub max_connections: u32,
    /// How long a statement waits for a connection before the database
    /// counts as unavailable.
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        let options = DatabaseOptions::default();
        DatabaseConfig {
            migrate: None,
            max_connections: options.max_connections,
            acquire_timeout_ms: options.acquire_timeout.as_millis() as u64,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// The name clients see as each relayer's `network`.
    pub name: String,
    /// Checked against the chain's at start when set.
    pub chain_id: Option<u64>,
    /// Blocks on top of the including one before a transaction is confirmed
    /// (1: confirmed once mined).
    pub confirmations: u64,
    /// How often the watcher polls for receipts and relayer stats refresh.
    pub poll_interval_ms: u64,
    /// Headroom added to `eth_estimateGas`, in basis points (12000 = +20%).
    pub gas_limit_buffer_bps: u32,
    /// What `eth_estimateGas` of a call or deploy runs against: `pending`
    /// (default) or `latest`. Plain transfers always use `latest`.
    pub estimate_block: EstimateBlock,
    /// Blocks of `eth_feeHistory` the fee plugin sees.
    pub fee_history_blocks: u64,
    /// The most any transaction may pay per gas, in wei (decimal string).
    pub max_fee_cap: String,
    /// Each JSON-RPC call's deadline.
    pub rpc_timeout_ms: u64,
    /// A submitted transaction not mined for this long is sent again at its
    /// nonce with fees the fee plugin bumps.
    pub resubmit_after_ms: u64,
    /// A relayer whose balance is below this (wei, decimal string) is
    /// disabled until it is funded again.
    pub min_balance: String,
    /// A relayer with more transactions in flight is degraded.
    pub max_pending: u32,
    /// The most transactions one relayer may have sent and not yet mined:
    /// the rest wait in the queue for a relayer with room.
    pub max_in_flight: u32,
    /// A relayer whose sends take longer on average is degraded.
    pub slow_send_ms: u32,
    /// ERC2771Forwarder contracts gasless meta-transactions may go through
    /// (none: gasless is off). From the environment: comma-separated.
    pub forwarders: Vec<String>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            name: "localhost".into(),
            chain_id: None,
            confirmations: 1,
            poll_interval_ms: 500,
            gas_limit_buffer_bps: 12_000,
            estimate_block: EstimateBlock::Pending,
            fee_history_blocks: 10,
            max_fee_cap: "1000000000000".into(), // 1000 gwei
            rpc_timeout_ms: 10_000,
            resubmit_after_ms: 60_000,
            min_balance: "1000000000000000".into(), // 0.001 ether
            max_pending: 64,
            max_in_flight: 128,
            slow_send_ms: 2_000,
            forwarders: Vec::new(),
        }
    }
}

/// One relayer of the pool: an address with its own key and nonce lane.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelayerConfig {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    pub key: KeySource,
    /// The selector's weight for this relayer.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Shown to the selector (e.g. `region = "eu"`).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// A paused relayer takes no new transactions.
    #[serde(default)]
    pub paused: bool,
}

fn default_weight() -> u32 {
    1
}

/// Where a relayer's private key comes from: an encrypted keystore, or (for
/// development) a raw hex key in an environment variable. Keys never sit in
/// the config file itself.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeySource {
    /// An Ethereum keystore (v3 JSON) file.
    pub keystore: Option<PathBuf>,
    /// The environment variable holding the keystore's password.
    pub password_env: Option<String>,
    /// Or a file holding it (a mounted Kubernetes or Docker secret); one
    /// trailing newline is ignored.
    pub password_file: Option<PathBuf>,
    /// The environment variable holding a raw hex private key.
    pub env: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    /// Deliveries of one transaction before it is dead-lettered.
    pub max_deliveries: u32,
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// How long a worker holds a delivery before it is handed out again.
    pub lease_ms: u64,
    /// Deliveries worked on at once. 0: this replica accepts and queues
    /// but relays nothing (an API-only replica; others' workers relay).
    pub workers: usize,
    /// The broker's work queue; its retry and dead-letter queues are named
    /// after it.
    pub name: String,
    /// Deliveries RabbitMQ hands this host before it acks one. Default:
    /// `workers`.
    pub prefetch: Option<u16>,
    pub sqs: SqsConfig,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SqsConfig {
    /// Another endpoint than AWS's (LocalStack, moto, ElasticMQ).
    pub endpoint_url: Option<String>,
    pub region: String,
}

impl Default for SqsConfig {
    fn default() -> Self {
        SqsConfig { endpoint_url: None, region: "us-east-1".into() }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        QueueConfig {
            max_deliveries: policy.max_deliveries,
            base_delay_ms: policy.base_delay.as_millis() as u64,
            max_delay_ms: policy.max_delay.as_millis() as u64,
            lease_ms: policy.lease.as_millis() as u64,
            workers: 8,
            name: "switchyard".into(),
            prefetch: None,
            sqs: SqsConfig::default(),
        }
    }
}

impl QueueConfig {
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            max_deliveries: self.max_deliveries,
            base_delay: Duration::from_millis(self.base_delay_ms),
            max_delay: Duration::from_millis(self.max_delay_ms),
            lease: Duration::from_millis(self.lease_ms),
        }
    }
}

/// Logs go to stderr; `RUST_LOG`, when set, overrides `filter`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// Which events to keep: a level (`info`) or `tracing` directives
    /// (`info,switchyard::pipeline=debug`).
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: LogFormat::Text, filter: "info".into() }
    }
}

/// OpenTelemetry trace export: OTLP over HTTP (protobuf), off unless
/// `endpoint` is set. Collector credentials come from the standard
/// `OTEL_EXPORTER_OTLP_HEADERS`, so they stay out of the file.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OtelConfig {
    /// The collector's traces URL, used as it is
    /// (`http://127.0.0.1:4318/v1/traces`).
    pub endpoint: Option<String>,
    pub service_name: String,
    /// The share of new traces kept, 0.0 to 1.0; a request that arrives
    /// with a `traceparent` follows its caller's decision.
    pub sample_ratio: f64,
    /// The longest one export may take; spans that miss it are dropped,
    /// never the relay's work.
    pub timeout_ms: u64,
}

impl Default for OtelConfig {
    fn default() -> Self {
        OtelConfig { endpoint: None, service_name: "switchyard".into(), sample_ratio: 1.0, timeout_ms: 10_000 }
    }
}

impl OtelConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.endpoint
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid(
                "otel.endpoint",
                format!("`{}` is not an http:// or https:// URL", redact_endpoint(url)),
            ));
        }
        if self.service_name.trim().is_empty() {
            return Err(invalid("otel.service_name", "must not be empty"));
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            return Err(invalid("otel.sample_ratio", format!("{} is outside 0.0..=1.0", self.sample_ratio)));
        }
        if !(1..=600_000).contains(&self.timeout_ms) {
            return Err(invalid("otel.timeout_ms", format!("{} is outside 1..=600000", self.timeout_ms)));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// For people: one coloured line per event.
    Text,
    /// For log pipelines: one JSON object per line, with the span fields
    /// (request id, transaction id) on each.
    Json,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// A request that takes longer is answered 408.
    pub timeout_ms: u64,
    /// Larger request bodies are refused with 413.
    pub body_limit_bytes: usize,
    /// How long shutdown waits for in-flight requests and deliveries.
    pub shutdown_grace_ms: u64,
    /// Requests per second each API key may make, sustained (a token
    /// bucket per key, shared by the replicas through Redis when `redis_url`
    /// is set); 0 for no limit. A key created with its own `rate_limit`
    /// keeps that one.
    pub rate_limit_per_second: f64,
    /// Requests a key may make at once after a quiet spell.
    pub rate_limit_burst: u32,
    /// Browser origins allowed to call the API (`https://app.example.com`);
    /// empty, no CORS headers are sent, so browsers refuse cross-origin calls.
    pub cors_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout_ms: 30_000,
            body_limit_bytes: 64 * 1024,
            shutdown_grace_ms: 10_000,
            rate_limit_per_second: 0.0,
            rate_limit_burst: 100,
            cors_origins: Vec::new(),
        }
    }
}

/// Webhook deliveries.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WebhooksConfig {
    /// Attempts at one event before it is dead-lettered.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each one.
    pub base_delay_ms: u64,
    pub max_delay_ms: u64,
    /// Bounds each delivery.
    pub timeout_ms: u64,
}

impl Default for WebhooksConfig {
    fn default() -> Self {
        WebhooksConfig { max_attempts: 8, base_delay_ms: 1_000, max_delay_ms: 300_000, timeout_ms: 10_000 }
    }
}

impl WebhooksConfig {
    pub fn settings(&self) -> WebhookSettings {
        WebhookSettings {
            max_attempts: self.max_attempts,
            base_delay: Duration::from_millis(self.base_delay_ms),
            max_delay: Duration::from_millis(self.max_delay_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            ..WebhookSettings::default()
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=100).contains(&self.max_attempts) {
            return Err(invalid("webhooks.max_attempts", format!("{} is outside 1..=100", self.max_attempts)));
        }
        if self.base_delay_ms == 0 || self.base_delay_ms > self.max_delay_ms {
            return Err(invalid("webhooks.base_delay_ms", "must be above 0 and at most webhooks.max_delay_ms"));
        }
        if !(1..=600_000).contains(&self.timeout_ms) {
            return Err(invalid("webhooks.timeout_ms", format!("{} is outside 1..=600000", self.timeout_ms)));
        }
        Ok(())
    }
}

/// How long the store keeps what only old requests ask for; 0 keeps it
/// forever.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// A retry with the same `Idempotency-Key` within this many hours gets
    /// the original transaction; after it, a new one.
    pub idempotency_key_hours: u64,
    /// How far back `Last-Event-ID` resumes the event stream. Events a
    /// webhook subscription has not handled yet are kept however old.
    pub event_hours: u64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig { idempotency_key_hours: 24, event_hours: 24 * 7 }
    }
}

impl RetentionConfig {
    pub fn settings(&self) -> Retention {
        let hours = |h: u64| (h > 0).then(|| Duration::from_secs(h.saturating_mul(3_600)));
        Retention { idempotency_keys: hours(self.idempotency_key_hours), events: hours(self.event_hours) }
    }
}

impl HttpConfig {
    /// The limit for keys without their own; `None` when off.
    pub fn rate_limit(&self) -> Option<Rate> {
        (self.rate_limit_per_second != 0.0)
            .then_some(Rate { per_second: self.rate_limit_per_second, burst: self.rate_limit_burst })
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// The folder watched for plugin files.
    pub dir: PathBuf,
    /// Compiled plugins; defaults to `<data_dir>/plugin-cache`.
    pub cache_dir: Option<PathBuf>,
    /// Hot-reload plugins (and their settings) when files change.
    pub watch: bool,
    /// How long the folder must be quiet before a change is loaded.
    pub debounce_ms: u64,
    /// Plugin instances that may exist at once (the pool's size).
    pub max_instances: u32,
    /// Plugin calls that run at once (default: one per CPU); calls are
    /// CPU-bound, so more only stretch each one.
    pub max_concurrent_calls: Option<usize>,
    /// The largest memory cap any plugin may be given.
    pub max_memory_mib: u32,
    pub selector: Option<PluginSlot>,
    pub policy: Option<PluginSlot>,
    pub fee: Option<PluginSlot>,
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: PathBuf::from("plugins"),
            cache_dir: None,
            watch: true,
            debounce_ms: 100,
            max_instances: 256,
            max_concurrent_calls: None,
            max_memory_mib: 64,
            selector: None,
            policy: None,
            fee: None,
        }
    }
}

/// Which plugin file serves one kind, with its limits and configuration.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PluginSlot {
    /// A `.wasm` file in `plugins.dir`.
    pub file: PathBuf,
    /// The CPU deadline of one call.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_memory_mib")]
    pub memory_mib: u32,
    /// Handed to the plugin as string pairs. Strings, integers and booleans
    /// are accepted; floats are not (amounts are exact).
    #[serde(default)]
    pub config: BTreeMap<String, toml::Value>,
}

fn default_timeout_ms() -> u64 {
    10
}

fn default_memory_mib() -> u32 {
    16
}

/// Top-level keys an environment variable may set: `SWITCHYARD_<KEY>`, with
/// `__` between nested keys (`SWITCHYARD_NETWORK__CONFIRMATIONS=3`). Other
/// `SWITCHYARD_*` variables belong to tools, not to the config.
const ENV_KEYS: [&str; 17] = [
    "listen",
    "master_key",
    "data_dir",
    "rpc_url",
    "rpc_fallback_urls",
    "database_url",
    "queue_url",
    "redis_url",
    "cache",
    "database",
    "network",
    "queue",
    "http",
    "plugins",
    "log",
    "otel",
    "webhooks",
];
/// Keys whose value is text even when it looks like a number.
const ENV_STRING_KEYS: [&str; 16] = [
    "listen",
    "master_key",
    "rpc_url",
    "database_url",
    "queue_url",
    "redis_url",
    "cache.key_prefix",
    "network.name",
    "network.max_fee_cap",
    "network.min_balance",
    "queue.name",
    "queue.sqs.endpoint_url",
    "queue.sqs.region",
    "log.filter",
    "otel.endpoint",
    "otel.service_name",
];
/// Keys holding paths: relative ones from the environment are taken from
/// the current directory, not the config file's.
const ENV_PATH_KEYS: [&str; 3] = ["data_dir", "plugins.dir", "plugins.cache_dir"];
/// Keys holding a list: comma-separated in the environment.
const ENV_LIST_KEYS: [&str; 3] = ["rpc_fallback_urls", "network.forwarders", "http.cors_origins"];

/// `SWITCHYARD_*` variables that are not config keys (a misspelling such
/// as `SWITCHYARD_LOG_FORMAT` for `SWITCHYARD_LOG__FORMAT`), leaving out
/// those that belong to tools: `SWITCHYARD_CONFIG`, `SWITCHYARD_BIN`,
/// `SWITCHYARD_TEST_*`.
pub fn unknown_env_keys(env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    env.into_iter()
        .map(|(name, _)| name)
        .filter(|name| {
            let Some(key) = name.strip_prefix("SWITCHYARD_") else { return false };
            let key = key.strip_suffix("_FILE").filter(|k| !k.ends_with('_')).unwrap_or(key);
            let first = key.split("__").next().unwrap_or_default().to_ascii_lowercase();
            !ENV_KEYS.contains(&first.as_str()) && !["CONFIG", "BIN"].contains(&key) && !key.starts_with("TEST_")
        })
        .collect()
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Config::parse_file(path, &Config::read(path)?)
    }

    /// The file (if any) with `SWITCHYARD_*` variables from `env` on top.
    pub fn load_with_env(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        match path {
            Some(path) => {
                Config::parse_with_env(&Config::read(path)?, file_dir(path), &path.display().to_string(), env)
            }
            None => Config::parse_with_env("", &std::env::current_dir().unwrap_or_default(), "defaults", env),
        }
    }

    /// Parses TOML text with `SWITCHYARD_*` variables from `env` on top,
    /// resolving relative paths from the text against `base`.
    pub fn parse_with_env(
        text: &str,
        base: &Path,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Parse { origin: origin.into(), message: e.to_string() })?;
        let mut origin = origin.to_string();
        for (name, raw) in env {
            let Some(key) = name.strip_prefix("SWITCHYARD_") else { continue };
            // `SWITCHYARD_<KEY>_FILE` names a file holding the value: how
            // secrets arrive from Kubernetes and Docker. (`…__FILE` is the
            // key `file` of a section, as in `PLUGINS__FEE__FILE`.)
            let from_file = key.strip_suffix("_FILE").filter(|k| !k.ends_with('_'));
            let path: Vec<String> = from_file.unwrap_or(key).split("__").map(str::to_ascii_lowercase).collect();
            if !ENV_KEYS.contains(&path[0].as_str()) {
                continue;
            }
            let dotted = path.join(".");
            let raw = match from_file {
                Some(_) => read_secret(Path::new(&raw))
                    .map_err(|message| invalid(format!("{dotted} (from {name})"), message))?,
                None => raw,
            };
            set_env_value(&mut table, &path, env_value(&dotted, &raw))
                .map_err(|message| invalid(format!("{dotted} (from {name})"), message))?;
            origin = format!("{origin} + {name}");
        }
        let mut config: Config = table.try_into().map_err(|e| ConfigError::Parse { origin, message: e.to_string() })?;
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
    }

    /// The text of a config file.
    pub fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })
    }

    /// Parses the text read from `path`, resolving paths against its folder.
    pub fn parse_file(path: &Path, text: &str) -> Result<Self, ConfigError> {
        Config::parse(text, file_dir(path), &path.display().to_string())
    }

    /// `parse_file` with the process's `SWITCHYARD_*` variables on top, as
    /// `serve` read it at start.
    pub fn parse_file_with_env(path: &Path, text: &str) -> Result<Self, ConfigError> {
        Config::parse_with_env(text, file_dir(path), &path.display().to_string(), std::env::vars())
    }

    /// Parses TOML text, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path, origin: &str) -> Result<Self, ConfigError> {
        Config::parse_with_env(text, base, origin, std::iter::empty())
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.data_dir);
        resolve(&mut self.plugins.dir);
        if let Some(dir) = &mut self.plugins.cache_dir {
            resolve(dir);
        }
        for relayer in &mut self.relayers {
            for path in [&mut relayer.key.keystore, &mut relayer.key.password_file].into_iter().flatten() {
                resolve(path);
            }
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_relay()?;
        if let Err(error) = tracing_subscriber::EnvFilter::try_new(&self.log.filter) {
            return Err(invalid("log.filter", format!("`{}`: {error}", self.log.filter)));
        }
        self.otel.validate()?;
        self.webhooks.validate()?;
        let p = &self.plugins;
        if !(1..=4096).contains(&p.max_memory_mib) {
            return Err(invalid("plugins.max_memory_mib", format!("{} is outside 1..=4096", p.max_memory_mib)));
        }
        if !(1..=10_000).contains(&p.max_instances) {
            return Err(invalid("plugins.max_instances", format!("{} is outside 1..=10000", p.max_instances)));
        }
        if let Some(calls) = p.max_concurrent_calls.filter(|c| !(1..=p.max_instances as usize).contains(c)) {
            return Err(invalid(
                "plugins.max_concurrent_calls",
                format!("{calls} is outside 1..={} (plugins.max_instances)", p.max_instances),
            ));
        }
        if p.debounce_ms > 10_000 {
            return Err(invalid("plugins.debounce_ms", format!("{} is above 10000", p.debounce_ms)));
        }
        for kind in PluginKind::ALL {
            if let Some(slot) = p.slot(kind) {
                slot.validate(kind, p.max_memory_mib)?;
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_relay(&self) -> Result<(), ConfigError> {
        if self.master_key.as_deref().is_some_and(|k| k.trim().len() < 16) {
            return Err(invalid("master_key", "must be at least 16 characters"));
        }
        let n = &self.network;
        if !(1..=1000).contains(&n.confirmations) {
            return Err(invalid("network.confirmations", format!("{} is outside 1..=1000", n.confirmations)));
        }
        if !(10..=60_000).contains(&n.poll_interval_ms) {
            return Err(invalid("network.poll_interval_ms", format!("{} is outside 10..=60000", n.poll_interval_ms)));
        }
        if !(10_000..=100_000).contains(&n.gas_limit_buffer_bps) {
            return Err(invalid(
                "network.gas_limit_buffer_bps",
                format!("{} is outside 10000..=100000 (1x to 10x)", n.gas_limit_buffer_bps),
            ));
        }
        if !(1..=1024).contains(&n.fee_history_blocks) {
            return Err(invalid("network.fee_history_blocks", format!("{} is outside 1..=1024", n.fee_history_blocks)));
        }
        self.max_fee_cap()?;
        self.health_policy()?;
        self.forwarders()?;
        let http = |url: &str| url.starts_with("http://") || url.starts_with("https://");
        if let Some(url) = self.rpc_url.as_deref().filter(|url| !http(url)) {
            return Err(invalid("rpc_url", format!("`{}` is not an http:// or https:// URL", redact_endpoint(url))));
        }
        if let Some(url) = self.rpc_fallback_urls.iter().find(|url| !http(url)) {
            return Err(invalid(
                "rpc_fallback_urls",
                format!("`{}` is not an http:// or https:// URL", redact_endpoint(url)),
            ));
        }
        if !self.rpc_fallback_urls.is_empty() && self.rpc_url.is_none() {
            return Err(invalid("rpc_fallback_urls", "needs rpc_url: the dev chain has a single endpoint"));
        }
        if !(100..=86_400_000).contains(&n.resubmit_after_ms) {
            return Err(invalid(
                "network.resubmit_after_ms",
                format!("{} is outside 100..=86400000", n.resubmit_after_ms),
            ));
        }
        if !(1..=100_000).contains(&n.max_in_flight) {
            return Err(invalid("network.max_in_flight", format!("{} is outside 1..=100000", n.max_in_flight)));
        }
        if let Some(url) = &self.database_url {
            Backend::of_url(url).map_err(|e| invalid("database_url", e.to_string()))?;
        }
        let d = &self.database;
        if !(1..=1000).contains(&d.max_connections) {
            return Err(invalid("database.max_connections", format!("{} is outside 1..=1000", d.max_connections)));
        }
        if !(100..=600_000).contains(&d.acquire_timeout_ms) {
            return Err(invalid(
                "database.acquire_timeout_ms",
                format!("{} is outside 100..=600000", d.acquire_timeout_ms),
            ));
        }
        QueueBackend::parse(&self.queue_url).map_err(|message| invalid("queue_url", message))?;
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://") || url.starts_with("unix://"))
        {
            return Err(invalid("redis_url", format!("`{}` is not a redis:// URL", redact_url(url))));
        }
        let c = &self.cache;
        if !(100..=3_600_000).contains(&c.ttl_ms) || !(10..=60_000).contains(&c.timeout_ms) {
            return Err(invalid("cache", "ttl_ms must be within 100..=3600000 and timeout_ms within 10..=60000"));
        }
        let q = &self.queue;
        let valid_name = !q.name.is_empty()
            && q.name.len() <= 64
            && q.name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err(invalid("queue.name", format!("`{}` must be 1-64 of [A-Za-z0-9._-]", q.name)));
        }
        if q.prefetch == Some(0) {
            return Err(invalid("queue.prefetch", "must be at least 1"));
        }
        if let Some(url) = &q.sqs.endpoint_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(invalid("queue.sqs.endpoint_url", format!("`{url}` is not an http:// or https:// URL")));
        }
        if !(1..=1000).contains(&q.max_deliveries) {
            return Err(invalid("queue.max_deliveries", format!("{} is outside 1..=1000", q.max_deliveries)));
        }
        if q.workers > 1024 {
            return Err(invalid("queue.workers", format!("{} is more than 1024", q.workers)));
        }
        if q.lease_ms < 100 || q.base_delay_ms > q.max_delay_ms {
            return Err(invalid("queue", "lease_ms must be at least 100 and base_delay_ms at most max_delay_ms"));
        }
        if self.http.body_limit_bytes < 1024 || self.http.timeout_ms == 0 {
            return Err(invalid("http", "body_limit_bytes must be at least 1024 and timeout_ms above 0"));
        }
        // An origin is scheme://host[:port]: no path, not even `/`.
        let origin_like = |o: &str| {
            (o.starts_with("http://") || o.starts_with("https://"))
                && o.matches('/').count() == 2
                && !o.ends_with('/')
                && axum::http::HeaderValue::from_str(o).is_ok()
        };
        if let Some(origin) = self.http.cors_origins.iter().find(|o| !origin_like(o)) {
            return Err(invalid(
                "http.cors_origins",
                format!("`{origin}` is not an origin like https://app.example.com"),
            ));
        }
        if let Some(Err((field, why))) = self.http.rate_limit().map(|rate| rate.check()) {
            return Err(invalid(format!("http.rate_limit_{field}"), why));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, relayer) in self.relayers.iter().enumerate() {
            let key = |field: &str| format!("relayers[{i}].{field}");
            let valid_id = !relayer.id.is_empty()
                && relayer.id.len() <= 64
                && relayer.id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid_id {
                return Err(invalid(key("id"), format!("`{}` must be 1-64 of [A-Za-z0-9_-]", relayer.id)));
            }
            if !seen.insert(relayer.id.as_str()) {
                return Err(invalid(key("id"), format!("`{}` is used twice", relayer.id)));
            }
            let k = &relayer.key;
            match (&k.keystore, &k.password_env, &k.password_file, &k.env) {
                (Some(_), Some(_), None, None) | (Some(_), None, Some(_), None) | (None, None, None, Some(_)) => {}
                _ => {
                    return Err(invalid(
                        key("key"),
                        "give either `keystore` with one of `password_env` or `password_file`, \
                         or `env` (a variable holding a hex key)",
                    ));
                }
            }
        }
        Ok(())
    }

    /// `database_url`, or the embedded default's SQLite file in `data_dir`.
    pub fn database_url(&self) -> Result<String, crate::store::StoreError> {
        match &self.database_url {
            Some(url) => Ok(url.clone()),
            None => crate::store::sql::SqlStore::embedded_url(&self.data_dir),
        }
    }

    /// How `serve` and `migrate` reach the store.
    pub fn database_options(&self, migrate_by_default: bool) -> DatabaseOptions {
        let sqlite = self.database_url.as_deref().is_none_or(|url| url.starts_with("sqlite:"));
        DatabaseOptions {
            max_connections: self.database.max_connections,
            acquire_timeout: Duration::from_millis(self.database.acquire_timeout_ms),
            migrate: self.database.migrate.unwrap_or(migrate_by_default || sqlite),
        }
    }

    /// `network.max_fee_cap` in wei.
    pub fn max_fee_cap(&self) -> Result<alloy_primitives::U256, ConfigError> {
        self.network.max_fee_cap.trim().parse().map_err(|_| {
            invalid("network.max_fee_cap", format!("`{}` is not a whole number of wei", self.network.max_fee_cap))
        })
    }

    /// The trusted ERC-2771 forwarders.
    pub fn forwarders(&self) -> Result<Vec<alloy_primitives::Address>, ConfigError> {
        let parse = |f: &String| {
            f.trim().parse().map_err(|_| invalid("network.forwarders", format!("`{f}` is not an address")))
        };
        self.network.forwarders.iter().map(parse).collect()
    }

    /// When a relayer is healthy, degraded or disabled.
    pub fn health_policy(&self) -> Result<HealthPolicy, ConfigError> {
        let n = &self.network;
        let min_balance =
            n.min_balance.trim().parse().map_err(|_| {
                invalid("network.min_balance", format!("`{}` is not a whole number of wei", n.min_balance))
            })?;
        if n.max_pending == 0 {
            return Err(invalid("network.max_pending", "must be at least 1"));
        }
        if !(1..=600_000).contains(&n.slow_send_ms) {
            return Err(invalid("network.slow_send_ms", format!("{} is outside 1..=600000", n.slow_send_ms)));
        }
        Ok(HealthPolicy { min_balance, max_pending: n.max_pending, slow_send_ms: n.slow_send_ms })
    }
}

/// The URL with its password (if any) replaced, fit for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) if userinfo.contains(':') => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        _ => url.to_string(),
    }
}

/// An RPC endpoint fit for logs, metrics and status pages: providers put
/// the API key in the path (`/v2/<key>`) or the query, so only the scheme,
/// host and port are kept.
pub fn redact_endpoint(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "<not a URL>".into() };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let hidden = if tail.is_empty() || tail == "/" { "" } else { "/***" };
    format!("{scheme}://{host}{hidden}")
}

/// A secret kept in a file (a mounted Kubernetes or Docker secret), without
/// its trailing newline. The error names the file, never its content.
pub fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read secret file {}: {e}", path.display()))?;
    Ok(text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_string())
}

fn file_dir(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

fn env_value(dotted: &str, raw: &str) -> toml::Value {
    if ENV_LIST_KEYS.contains(&dotted) {
        let items = raw.split(',').map(str::trim).filter(|item| !item.is_empty());
        return toml::Value::Array(items.map(|item| toml::Value::String(item.to_string())).collect());
    }
    if ENV_PATH_KEYS.contains(&dotted) {
        let path = std::path::absolute(raw).unwrap_or_else(|_| PathBuf::from(raw));
        return toml::Value::String(path.display().to_string());
    }
    if !ENV_STRING_KEYS.contains(&dotted) {
        if let Ok(i) = raw.trim().parse::<i64>() {
            return toml::Value::Integer(i);
        }
        if let Ok(b) = raw.trim().parse::<bool>() {
            return toml::Value::Boolean(b);
        }
    }
    toml::Value::String(raw.to_string())
}

fn set_env_value(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut table = table;
    for part in parents {
        let entry = table.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry.as_table_mut().ok_or_else(|| format!("`{part}` is not a table"))?;
    }
    table.insert(last.clone(), value);
    Ok(())
}

impl PluginsConfig {
    pub fn slot(&self, kind: PluginKind) -> Option<&PluginSlot> {
        match kind {
            PluginKind::Selector => self.selector.as_ref(),
            PluginKind::Policy => self.policy.as_ref(),
            PluginKind::Fee => self.fee.as_ref(),
        }
    }

    pub fn engine_settings(&self, data_dir: &Path) -> EngineSettings {
        EngineSettings {
            max_instances: self.max_instances,
            max_concurrent_calls: self.max_concurrent_calls.unwrap_or_else(crate::plugins::default_concurrent_calls),
            max_memory_bytes: (self.max_memory_mib as usize) << 20,
            cache_dir: Some(self.cache_dir.clone().unwrap_or_else(|| data_dir.join("plugin-cache"))),
        }
    }
}

impl PluginSlot {
    fn validate(&self, kind: PluginKind, max_memory_mib: u32) -> Result<(), ConfigError> {
        let key = |field: &str| format!("plugins.{kind}.{field}");
        if self.file.as_os_str().is_empty() {
            return Err(invalid(key("file"), "is empty"));
        }
        if !(1..=1000).contains(&self.timeout_ms) {
            return Err(invalid(key("timeout_ms"), format!("{} is outside 1..=1000", self.timeout_ms)));
        }
        if !(1..=max_memory_mib).contains(&self.memory_mib) {
            return Err(invalid(
                key("memory_mib"),
                format!("{} is outside 1..={max_memory_mib} (plugins.max_memory_mib)", self.memory_mib),
            ));
        }
        for (name, value) in &self.config {
            config_value(value).map_err(|m| invalid(format!("plugins.{kind}.config.{name}"), m))?;
        }
        Ok(())
    }

    pub fn limits(&self) -> Limits {
        Limits { timeout: Duration::from_millis(self.timeout_ms), memory_bytes: (self.memory_mib as usize) << 20 }
    }

    /// The plugin's configuration as it receives it. Valid by `validate`.
    pub fn config_pairs(&self) -> Vec<(String, String)> {
        self.config.iter().filter_map(|(k, v)| Some((k.clone(), config_value(v).ok()?))).collect()
    }

    pub fn plugin_name(&self) -> String {
        crate::plugins::plugin_name(&self.file)
    }
}

fn config_value(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Float(f) => {
            Err(format!("{f} is a float; values must be exact: write a whole number or a string such as \"30 gwei\""))
        }
        other => Err(format!("must be a string, integer or boolean, not a {}", other.type_str())),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/switchyard"), "test.toml")
    }

    #[test]
    fn defaults_and_relative_paths() {
        let c = parse("").unwrap();
        assert_eq!(c.plugins.dir, Path::new("/etc/switchyard/plugins"));
        assert_eq!(c.data_dir, Path::new("/etc/switchyard/data"));
        let settings = c.plugins.engine_settings(&c.data_dir);
        assert_eq!(settings.cache_dir.unwrap(), Path::new("/etc/switchyard/data/plugin-cache"));
    }

    #[test]
    fn slots_carry_limits_and_string_config() {
        let c = parse(
            r#"
            [plugins.selector]
            file = "weighted.wasm"
            timeout_ms = 5
            memory_mib = 8
            [plugins.selector.config]
            weights = "a=3,b=1"
            max_pending = 4
            strict = true
            "#,
        )
        .unwrap();
        let slot = c.plugins.slot(PluginKind::Selector).unwrap();
        assert_eq!(slot.limits(), Limits { timeout: Duration::from_millis(5), memory_bytes: 8 << 20 });
        assert_eq!(slot.plugin_name(), "weighted");
        assert_eq!(
            slot.config_pairs(),
            vec![
                ("max_pending".into(), "4".into()),
                ("strict".into(), "true".into()),
                ("weights".into(), "a=3,b=1".into())
            ]
        );
    }

    #[test]
    fn errors_name_the_key() {
        let err = parse("[plugins.fee]\nfile = \"f.wasm\"\nmemory_mib = 100").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config key `plugins.fee.memory_mib`: 100 is outside 1..=64 (plugins.max_memory_mib)"
        );
        let err = parse("[plugins.fee]\nfile = \"f.wasm\"\n[plugins.fee.config]\ncap = 1.5").unwrap_err();
        assert!(err.to_string().starts_with("config key `plugins.fee.config.cap`: 1.5 is a float"), "{err}");
        let err = parse("[plugins.fee]\nfile = \"f.wasm\"\ntimeout = 5").unwrap_err();
        assert!(err.to_string().contains("unknown field `timeout`"), "{err}");
        let err = parse("[plugins.selector]\nfile = \"s.wasm\"\ntimeout_ms = 0").unwrap_err();
        assert!(err.to_string().contains("plugins.selector.timeout_ms"), "{err}");
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn environment_overrides_the_file_and_nests_with_double_underscores() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("switchyard.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\n[network]\nconfirmations = 2\n").unwrap();
        let c = Config::load_with_env(
            Some(&file),
            env(&[
                ("SWITCHYARD_NETWORK__CONFIRMATIONS", "5"),
                ("SWITCHYARD_MASTER_KEY", "1234567890123456"),
                ("SWITCHYARD_RPC_URL", "http://127.0.0.1:8545"),
                ("SWITCHYARD_BIN", "/not/a/config/key"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.network.confirmations, 5);
        assert_eq!(c.master_key.as_deref(), Some("1234567890123456"), "a numeric-looking key stays text");
        assert_eq!(c.rpc_url.as_deref(), Some("http://127.0.0.1:8545"));
        assert_eq!(c.data_dir, dir.path().join("data"), "file defaults resolve against the file's folder");

        let c = Config::load_with_env(None, env(&[("SWITCHYARD_DATA_DIR", "rel/dir")])).unwrap();
        assert_eq!(c.data_dir, std::env::current_dir().unwrap().join("rel/dir"));
    }

    /// `section.key` for every key the example sets or shows commented out.
    fn documented_keys(text: &str) -> BTreeSet<String> {
        let mut keys = BTreeSet::new();
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim_start_matches(['#', ' ']);
            if let Some(header) = line.strip_prefix('[') {
                section = header.trim_matches(['[', ']']).to_string();
                keys.insert(section.clone());
                continue;
            }
            // Keys of the line and of its inline tables: `key = { a = 1, b = 2 }`.
            let mut prefix = section.clone();
            for part in line.split([',', '{']) {
                let Some((key, _)) = part.split_once(" =") else { continue };
                let key = key.trim();
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    continue;
                }
                let path = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
                keys.insert(path.clone());
                if line.contains(&format!("{key} = {{")) {
                    prefix = path;
                }
            }
        }
        keys
    }

    /// Every key path of `value`; maps of user data (`config`, `labels`)
    /// count as one key.
    fn key_paths(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
        let serde_json::Value::Object(map) = value else { return };
        for (key, child) in map {
            let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
            match child {
                serde_json::Value::Object(_) if !["config", "labels"].contains(&key.as_str()) => {
                    key_paths(child, &path, out)
                }
                serde_json::Value::Array(items) if items.first().is_some_and(|i| i.is_object()) => {
                    key_paths(&items[0], &path, out)
                }
                _ => out.push(path),
            }
        }
    }

    #[test]
    fn the_annotated_example_shows_every_key_and_its_defaults_are_the_real_ones() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../switchyard.example.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = Config::parse(&text, Path::new(""), "switchyard.example.toml").unwrap();
        assert_eq!(parsed, Config::default(), "the example's uncommented values must be the defaults");

        // A config with every optional part present, so every key shows.
        // The three slots share one type: the selector's stands for all.
        let slot = PluginSlot { file: "x.wasm".into(), timeout_ms: 10, memory_mib: 16, config: BTreeMap::new() };
        let mut full = Config::default();
        full.plugins.selector = Some(slot);
        full.relayers.push(RelayerConfig {
            id: "r".into(),
            name: Some("r".into()),
            key: KeySource {
                keystore: Some("k".into()),
                password_env: Some("P".into()),
                password_file: Some("p".into()),
                env: Some("K".into()),
            },
            weight: 1,
            labels: BTreeMap::new(),
            paused: false,
        });
        let value = serde_json::to_value(&full).unwrap();
        let mut paths = Vec::new();
        key_paths(&value, "", &mut paths);
        let documented = documented_keys(&text);
        let missing: Vec<&String> = paths.iter().filter(|p| !documented.contains(*p)).collect();
        assert!(missing.is_empty(), "switchyard.example.toml does not document {missing:?}");
        assert!(paths.len() > 60, "the walk found only {paths:?}");
    }

    #[test]
    fn secrets_come_from_files_named_by_file_variables_and_errors_never_show_them() {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("api-key");
        std::fs::write(&key_file, "s3cr3t-api-key-0123456789\n").unwrap();
        let db_file = dir.path().join("db");
        std::fs::write(&db_file, "postgres://sy:hunter2@db:5432/sy").unwrap();
        let c = Config::load_with_env(
            None,
            env(&[
                ("SWITCHYARD_MASTER_KEY_FILE", key_file.to_str().unwrap()),
                ("SWITCHYARD_DATABASE_URL_FILE", db_file.to_str().unwrap()),
                // A section's `file` key, not a secret file.
                ("SWITCHYARD_PLUGINS__FEE__FILE", "fee.wasm"),
            ]),
        )
        .unwrap();
        assert_eq!(c.master_key.as_deref(), Some("s3cr3t-api-key-0123456789"), "the trailing newline is dropped");
        assert_eq!(c.database_url.as_deref(), Some("postgres://sy:hunter2@db:5432/sy"));
        assert_eq!(c.plugins.fee.as_ref().unwrap().file, PathBuf::from("fee.wasm"));

        let missing = dir.path().join("absent");
        let err = Config::load_with_env(None, env(&[("SWITCHYARD_MASTER_KEY_FILE", missing.to_str().unwrap())]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("master_key (from SWITCHYARD_MASTER_KEY_FILE)") && err.contains("absent"), "{err}");
        std::fs::write(&key_file, "short-s3cr3t").unwrap();
        let err = Config::load_with_env(None, env(&[("SWITCHYARD_MASTER_KEY_FILE", key_file.to_str().unwrap())]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("master_key") && !err.contains("short-s3cr3t"), "{err}");
    }

    #[test]
    fn misspelt_variables_are_found_and_tool_variables_left_alone() {
        let found = unknown_env_keys(env(&[
            ("SWITCHYARD_LOG_FORMAT", "json"),
            ("SWITCHYARD_LOG__FORMAT", "json"),
            ("SWITCHYARD_MASTER_KEY_FILE", "/run/secrets/k"),
            ("SWITCHYARD_NETWROK__CONFIRMATIONS", "2"),
            ("SWITCHYARD_CONFIG", "x.toml"),
            ("SWITCHYARD_BIN", "target/debug/switchyard"),
            ("SWITCHYARD_TEST_POSTGRES", "postgres://"),
            ("HOME", "/root"),
        ]));
        assert_eq!(found, ["SWITCHYARD_LOG_FORMAT", "SWITCHYARD_NETWROK__CONFIRMATIONS"]);
    }

    #[test]
    fn log_format_and_filter_are_checked() {
        let c = Config::load_with_env(
            None,
            env(&[("SWITCHYARD_LOG__FORMAT", "json"), ("SWITCHYARD_LOG__FILTER", "warn,switchyard=debug")]),
        )
        .unwrap();
        assert_eq!(c.log, LogConfig { format: LogFormat::Json, filter: "warn,switchyard=debug".into() });
        let err = Config::load_with_env(None, env(&[("SWITCHYARD_LOG__FORMAT", "xml")])).unwrap_err().to_string();
        assert!(err.contains("xml") && err.contains("SWITCHYARD_LOG__FORMAT"), "{err}");
        let err = Config::parse("[log]\nfilter = \"info,=[\"\n", Path::new("."), "t").unwrap_err().to_string();
        assert!(err.contains("log.filter"), "{err}");
    }

    #[test]
    fn otel_export_is_off_by_default_and_its_settings_are_checked() {
        assert_eq!(Config::default().otel.endpoint, None);
        let url = "http://127.0.0.1:4318/v1/traces";
        let c = Config::load_with_env(None, env(&[("SWITCHYARD_OTEL__ENDPOINT", url)])).unwrap();
        assert_eq!(c.otel.endpoint.as_deref(), Some(url));
        for (key, value, named) in [
            ("SWITCHYARD_OTEL__ENDPOINT", "grpc://collector:4317", "otel.endpoint"),
            ("SWITCHYARD_OTEL__SAMPLE_RATIO", "1.5", "otel.sample_ratio"),
            ("SWITCHYARD_OTEL__SERVICE_NAME", " ", "otel.service_name"),
            ("SWITCHYARD_OTEL__TIMEOUT_MS", "0", "otel.timeout_ms"),
        ] {
            let err = Config::load_with_env(None, env(&[(key, value)])).unwrap_err().to_string();
            assert!(err.contains(named), "{key}={value}: {err}");
        }
    }

    #[test]
    fn rate_limits_are_off_by_default_and_checked_when_set() {
        assert_eq!(Config::default().http.rate_limit(), None);
        let c = Config::load_with_env(None, env(&[("SWITCHYARD_HTTP__RATE_LIMIT_PER_SECOND", "50")])).unwrap();
        assert_eq!(c.http.rate_limit(), Some(Rate { per_second: 50.0, burst: 100 }));
        for (vars, named) in [
            (vec![("SWITCHYARD_HTTP__RATE_LIMIT_PER_SECOND", "-1")], "http.rate_limit_per_second"),
            (
                vec![("SWITCHYARD_HTTP__RATE_LIMIT_PER_SECOND", "5"), ("SWITCHYARD_HTTP__RATE_LIMIT_BURST", "0")],
                "http.rate_limit_burst",
            ),
        ] {
            let err = Config::load_with_env(None, env(&vars)).unwrap_err().to_string();
            assert!(err.contains(named), "{vars:?}: {err}");
        }
    }

    #[test]
    fn cors_is_off_by_default_and_takes_only_origins() {
        assert!(Config::default().http.cors_origins.is_empty());
        let ok = env(&[("SWITCHYARD_HTTP__CORS_ORIGINS", "https://app.example.com,http://127.0.0.1:3000")]);
        let c = Config::load_with_env(None, ok).unwrap();
        assert_eq!(c.http.cors_origins, ["https://app.example.com", "http://127.0.0.1:3000"]);
        for bad in ["*", "https://app.example.com/", "app.example.com", "https://a.example/path"] {
            let err = Config::load_with_env(None, env(&[("SWITCHYARD_HTTP__CORS_ORIGINS", bad)])).unwrap_err();
            assert!(err.to_string().contains("http.cors_origins"), "{bad}: {err}");
        }
    }

    #[test]
    fn bad_environment_values_name_the_variable() {
        let err = Config::load_with_env(None, env(&[("SWITCHYARD_NETWORK__CONFIRMATIONS", "lots")])).unwrap_err();
        assert!(err.to_string().contains("SWITCHYARD_NETWORK__CONFIRMATIONS"), "{err}");
        let err = Config::load_with_env(None, env(&[("SWITCHYARD_QUEUE__NOPE", "1")])).unwrap_err();
        assert!(err.to_string().contains("unknown field `nope`"), "{err}");
        let err = Config::load_with_env(None, env(&[("SWITCHYARD_RPC_URL", "ftp://x")])).unwrap_err();
        assert!(err.to_string().contains("rpc_url"), "{err}");
    }

    #[test]
    fn the_estimate_block_is_pending_unless_set_to_latest() {
        assert_eq!(Config::load_with_env(None, vec![]).unwrap().network.estimate_block, EstimateBlock::Pending);
        let c = Config::load_with_env(None, env(&[("SWITCHYARD_NETWORK__ESTIMATE_BLOCK", "latest")])).unwrap();
        assert_eq!(c.network.estimate_block, EstimateBlock::Latest);
        let err = Config::load_with_env(None, env(&[("SWITCHYARD_NETWORK__ESTIMATE_BLOCK", "safe")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("SWITCHYARD_NETWORK__ESTIMATE_BLOCK") && text.contains("pending"), "{text}");
    }

    #[test]
    fn chain_keys_are_checked_and_lists_come_comma_separated_from_the_environment() {
        let forwarder = "0x5FbDB2315678afecb367f032d93F642f64180aa3";
        let c = Config::load_with_env(
            None,
            env(&[
                ("SWITCHYARD_RPC_URL", "http://127.0.0.1:8545"),
                ("SWITCHYARD_RPC_FALLBACK_URLS", "http://127.0.0.1:8546, http://127.0.0.1:8547"),
                ("SWITCHYARD_NETWORK__FORWARDERS", forwarder),
                ("SWITCHYARD_NETWORK__MIN_BALANCE", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(c.rpc_fallback_urls, ["http://127.0.0.1:8546", "http://127.0.0.1:8547"]);
        assert_eq!(c.forwarders().unwrap(), [forwarder.parse::<alloy_primitives::Address>().unwrap()]);
        assert_eq!(c.health_policy().unwrap().min_balance, alloy_primitives::U256::from(5));

        let cases = [
            ("rpc_fallback_urls = [\"http://a\"]", "`rpc_fallback_urls`: needs rpc_url"),
            ("rpc_url = \"http://a\"\nrpc_fallback_urls = [\"ws://b\"]", "`rpc_fallback_urls`: `ws://b` is not"),
            ("[network]\nmin_balance = \"lots\"", "`network.min_balance`: `lots` is not a whole number"),
            ("[network]\nforwarders = [\"0x12\"]", "`network.forwarders`: `0x12` is not an address"),
            ("[network]\nresubmit_after_ms = 5", "`network.resubmit_after_ms`: 5 is outside"),
            ("[network]\nmax_pending = 0", "`network.max_pending`: must be at least 1"),
            ("[network]\nmax_in_flight = 0", "`network.max_in_flight`: 0 is outside 1..=100000"),
        ];
        for (text, expected) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn relayers_need_one_key_source_and_unique_ids() {
        let ok = parse(
            r#"
            [[relayers]]
            id = "hot-1"
            key = { env = "HOT_1_KEY" }
            labels = { region = "eu" }
            [[relayers]]
            id = "cold-1"
            weight = 3
            key = { keystore = "keys/cold.json", password_env = "COLD_PASS" }
            [[relayers]]
            id = "cold-2"
            key = { keystore = "keys/cold2.json", password_file = "keys/cold2.pass" }
            "#,
        )
        .unwrap();
        assert_eq!(ok.relayers[1].key.keystore.as_deref(), Some(Path::new("/etc/switchyard/keys/cold.json")));
        assert_eq!(ok.relayers[2].key.password_file.as_deref(), Some(Path::new("/etc/switchyard/keys/cold2.pass")));
        let both = "[[relayers]]\nid = \"a\"\nkey = { keystore = \"k\", password_env = \"P\", password_file = \"p\" }";
        assert!(parse(both).unwrap_err().to_string().contains("relayers[0].key"));
        assert_eq!(ok.relayers[1].weight, 3);
        let err = parse("[[relayers]]\nid = \"a\"\nkey = { keystore = \"k.json\" }").unwrap_err();
        assert!(err.to_string().contains("relayers[0].key"), "{err}");
        let err =
            parse("[[relayers]]\nid = \"a\"\nkey = { env = \"A\" }\n[[relayers]]\nid = \"a\"\nkey = { env = \"B\" }")
                .unwrap_err();
        assert!(err.to_string().contains("used twice"), "{err}");
        let err = parse("[[relayers]]\nid = \"a b\"\nkey = { env = \"A\" }").unwrap_err();
        assert!(err.to_string().contains("relayers[0].id"), "{err}");
        let err = parse("[network]\nmax_fee_cap = \"30 gwei\"").unwrap_err();
        assert!(err.to_string().contains("network.max_fee_cap"), "{err}");
    }

    #[test]
    fn backends_come_from_urls_and_passwords_stay_out_of_errors() {
        let env = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let c = Config::parse_with_env(
            "",
            Path::new("/"),
            "test",
            env("SWITCHYARD_DATABASE_URL", "postgres://sy:pw@db/sy"),
        )
        .unwrap();
        assert_eq!(c.database_url.as_deref(), Some("postgres://sy:pw@db/sy"));
        assert!(!c.database_options(false).migrate, "an external database is migrated by `switchyard migrate`");
        assert!(c.database_options(true).migrate);
        assert!(parse("").unwrap().database_options(false).migrate, "the embedded default migrates itself");

        let err = parse("database_url = \"oracle://sys:hunter2@db/x\"").unwrap_err().to_string();
        assert!(err.contains("database_url") && !err.contains("hunter2"), "{err}");
        let err = parse("queue_url = \"kafka://u:hunter2@k\"").unwrap_err().to_string();
        assert!(err.contains("queue_url") && !err.contains("hunter2"), "{err}");
        let err = parse("[database]\nmax_connections = 0").unwrap_err().to_string();
        assert!(err.contains("database.max_connections"), "{err}");

        let vars = [
            ("SWITCHYARD_QUEUE_URL", "amqp://sy:pw@mq:5672/%2f"),
            ("SWITCHYARD_QUEUE__NAME", "relay.work"),
            ("SWITCHYARD_QUEUE__SQS__ENDPOINT_URL", "http://127.0.0.1:4566"),
            ("SWITCHYARD_REDIS_URL", "redis://:pw@cache:6379/0"),
            ("SWITCHYARD_CACHE__KEY_PREFIX", "eu-1:"),
            ("SWITCHYARD_CACHE__TTL_MS", "5000"),
        ];
        let c = Config::parse_with_env("", Path::new("/"), "test", vars.map(|(k, v)| (k.to_string(), v.to_string())))
            .unwrap();
        assert_eq!(QueueBackend::parse(&c.queue_url), Ok(QueueBackend::Amqp("amqp://sy:pw@mq:5672/%2f".into())));
        assert_eq!(
            (c.queue.name.as_str(), c.queue.sqs.endpoint_url.as_deref()),
            ("relay.work", Some("http://127.0.0.1:4566"))
        );
        assert_eq!(c.redis_url.as_deref(), Some("redis://:pw@cache:6379/0"));
        assert_eq!((c.cache.key_prefix.as_str(), c.cache.settings().ttl), ("eu-1:", Duration::from_secs(5)));
        assert_eq!(c.cache.settings().timeout, Duration::from_millis(500), "the seed system's health timeout");
        assert_eq!(parse("[queue]\nworkers = 0").unwrap().queue.workers, 0, "an API-only replica");

        for (text, key) in [
            ("redis_url = \"http://:hunter2@cache\"", "redis_url"),
            ("[cache]\nttl_ms = 0", "cache"),
            ("[queue]\nname = \"a b\"", "queue.name"),
            ("[queue]\nprefetch = 0", "queue.prefetch"),
            ("[queue]\nworkers = 1025", "queue.workers"),
            ("[queue.sqs]\nendpoint_url = \"localhost:4566\"", "queue.sqs.endpoint_url"),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!("`{key}`")) && !err.contains("hunter2"), "{text}: {err}");
        }
    }

    #[test]
    fn rpc_endpoints_show_only_scheme_host_and_port() {
        assert_eq!(
            redact_endpoint("https://eth-mainnet.g.alchemy.com/v2/s3cr3t"),
            "https://eth-mainnet.g.alchemy.com/***"
        );
        assert_eq!(redact_endpoint("https://rpc.example/?apikey=s3cr3t"), "https://rpc.example/***");
        assert_eq!(redact_endpoint("http://user:s3cr3t@10.0.0.1:8545"), "http://10.0.0.1:8545");
        assert_eq!(redact_endpoint("http://127.0.0.1:8545/"), "http://127.0.0.1:8545");
        assert_eq!(redact_endpoint("s3cr3t"), "<not a URL>");
    }

    #[test]
    fn redacts_only_the_password() {
        assert_eq!(
            redact_url("postgres://sy:pw@db:5432/sy?sslmode=disable"),
            "postgres://sy:***@db:5432/sy?sslmode=disable"
        );
        assert_eq!(redact_url("amqp://guest:guest@127.0.0.1:5672/%2f"), "amqp://guest:***@127.0.0.1:5672/%2f");
        assert_eq!(redact_url("mysql://root@127.0.0.1/test"), "mysql://root@127.0.0.1/test");
        assert_eq!(redact_url("sqlite::memory:"), "sqlite::memory:");
    }
}
