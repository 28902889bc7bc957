//! Logging: `tracing` to stderr, as text or JSON (`[log]`), filtered by
//! `RUST_LOG` or `log.filter`.
//! Traces: the same spans, exported over OTLP when `[otel]` names a
//! collector.
//! Metrics: Prometheus series in the process-wide registry, served at
//! `/metrics`.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, TextEncoder,
};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, fmt};

use crate::chain::{Outage, Refusal};
use crate::config::{LogConfig, LogFormat, OtelConfig};
use crate::plugins::PluginKind;

/// Whether spans leave the process: the API reads the caller's
/// `traceparent` only then.
static EXPORTING: AtomicBool = AtomicBool::new(false);

pub fn exporting_traces() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Flushes the spans not yet exported when dropped (at the end of `serve`).
#[derive(Debug)]
#[must_use = "dropping it stops the trace export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(error) = provider.shutdown()
        {
            tracing::warn!(%error, "the last spans could not be exported");
        }
    }
}

/// Logs to stderr, plus the OTLP trace export when `otel.endpoint` is set.
pub fn init(log: &LogConfig, otel: &OtelConfig) -> anyhow::Result<Telemetry> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let logs = fmt::layer().with_writer(std::io::stderr);
    let logs = match log.format {
        LogFormat::Text => logs.boxed(),
        // Every enclosing span's fields on each line: the request id, the
        // transaction id.
        LogFormat::Json => logs.json().flatten_event(true).with_span_list(true).with_current_span(false).boxed(),
    };
    let provider = otel.endpoint.as_deref().map(|endpoint| tracer_provider(endpoint, otel)).transpose()?;
    // The relay's own spans only, whatever the log filter keeps.
    let export = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("switchyard"))
            .with_filter(Targets::new().with_target("switchyard", LevelFilter::INFO))
    });
    // A second init (tests) keeps the first subscriber.
    if tracing_subscriber::registry().with(logs.with_filter(filter)).with(export).try_init().is_ok()
        && provider.is_some()
    {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        EXPORTING.store(true, Ordering::Relaxed);
    }
    Ok(Telemetry { provider })
}

fn tracer_provider(endpoint: &str, otel: &OtelConfig) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_millis(otel.timeout_ms))
        .build()
        .map_err(|error| anyhow::anyhow!("otel.endpoint: cannot export to it: {error}"))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(otel.service_name.clone())
        .with_attribute(opentelemetry::KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(otel.sample_ratio))))
        .with_resource(resource)
        .build())
}

/// The series the relay path keeps.
#[derive(Debug)]
pub struct Metrics {
    /// What the relay did about the chain, by event (see [`CHAIN_EVENTS`]).
    pub chain_events: IntCounterVec,
    /// RPC failures by class (`timeout`, `nonce too low`, …).
    pub rpc_errors: IntCounterVec,
    pub rpc_failovers: IntCounterVec,
    pub relayer_balance: GaugeVec,
    /// 1 while the balance is below `network.min_balance`.
    pub relayer_low_balance: IntGaugeVec,
    /// 1 for the relayer's current state, 0 for the others.
    pub relayer_state: IntGaugeVec,
    pub relayer_pending: IntGaugeVec,
    pub relayer_nonce: IntGaugeVec,
    /// The last block the watcher processed, per chain.
    pub watcher_checkpoint: IntGaugeVec,
    /// By `method`, matched `route` (the template, never the raw path: ids
    /// would make the series unbounded) and `status`.
    pub http_duration: HistogramVec,
    pub queue_depth: IntGauge,
    pub queue_in_flight: IntGauge,
    pub queue_dead_letters: IntGauge,
    /// From a transaction's acceptance to a worker's first pickup.
    pub queue_pickup: Histogram,
    /// Transactions in the store, by status.
    pub transactions: IntGaugeVec,
    /// The age of the oldest transaction not yet final, 0 when there is none.
    pub oldest_pending: IntGauge,
    /// By `kind`, `plugin` (its file name) and `version` (its hash, 12 hex).
    pub plugin_calls: IntCounterVec,
    pub plugin_duration: HistogramVec,
    /// Calls that failed, by `reason`: `trap`, `timeout`, `memory`,
    /// `instantiate`, `malformed_answer`.
    pub plugin_failures: IntCounterVec,
    /// Decisions the built-in default made because the plugin failed or
    /// none was loaded.
    pub plugin_fallbacks: IntCounterVec,
    /// Plugin loads by `kind` and `result`: `loaded` or `rejected`.
    pub plugin_swaps: IntCounterVec,
}

fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric");
    let _ = prometheus::register(Box::new(vec.clone()));
    vec
}

fn gauge(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let vec = IntGaugeVec::new(Opts::new(name, help), labels).expect("a valid metric");
    let _ = prometheus::register(Box::new(vec.clone()));
    vec
}

fn histogram(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    let vec =
        HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets.to_vec()), labels).expect("a valid metric");
    let _ = prometheus::register(Box::new(vec.clone()));
    vec
}

fn single<M: prometheus::core::Collector + Clone + 'static>(metric: prometheus::Result<M>) -> M {
    let metric = metric.expect("a valid metric");
    let _ = prometheus::register(Box::new(metric.clone()));
    metric
}

/// From 100 µs (a plugin call, a cached read) to 10 s (an RPC-bound request).
const LATENCY_BUCKETS: [f64; 14] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5, 10.0];
/// Queue waits run from milliseconds to minutes (a backlog, a retry).
const WAIT_BUCKETS: [f64; 12] = [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0, 300.0];

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let metrics = metrics();
    start_at_zero(&metrics);
    metrics
});

fn metrics() -> Metrics {
    let balance = GaugeVec::new(Opts::new("switchyard_relayer_balance_wei", "Relayer balance, wei"), &["relayer"])
        .expect("a valid metric");
    let _ = prometheus::register(Box::new(balance.clone()));
    Metrics {
        chain_events: counter("switchyard_chain_events_total", "What the relay did about the chain", &["event"]),
        rpc_errors: counter("switchyard_rpc_errors_total", "RPC failures by class", &["class"]),
        rpc_failovers: counter("switchyard_rpc_failovers_total", "Switches to another RPC endpoint", &["endpoint"]),
        relayer_balance: balance,
        relayer_low_balance: gauge("switchyard_relayer_low_balance", "1 while below the minimum", &["relayer"]),
        relayer_state: gauge("switchyard_relayer_state", "1 for the relayer's health state", &["relayer", "state"]),
        relayer_pending: gauge("switchyard_relayer_pending", "Transactions in flight", &["relayer"]),
        relayer_nonce: gauge("switchyard_relayer_nonce", "The chain's pending nonce", &["relayer"]),
        watcher_checkpoint: gauge("switchyard_watcher_checkpoint_block", "Last block processed", &["chain_id"]),
        http_duration: histogram(
            "switchyard_http_request_duration_seconds",
            "API request latency",
            &["method", "route", "status"],
            &LATENCY_BUCKETS,
        ),
        queue_depth: single(IntGauge::new("switchyard_queue_depth", "Deliveries waiting for a worker")),
        queue_in_flight: single(IntGauge::new("switchyard_queue_in_flight", "Deliveries a worker holds")),
        queue_dead_letters: single(IntGauge::new("switchyard_queue_dead_letters", "Dead-lettered deliveries")),
        queue_pickup: single(Histogram::with_opts(
            HistogramOpts::new("switchyard_queue_pickup_seconds", "From acceptance to a worker's first pickup")
                .buckets(WAIT_BUCKETS.to_vec()),
        )),
        transactions: gauge("switchyard_transactions", "Transactions in the store by status", &["status"]),
        oldest_pending: single(IntGauge::new(
            "switchyard_transactions_oldest_pending_seconds",
            "Age of the oldest transaction not yet final",
        )),
        plugin_calls: counter("switchyard_plugin_calls_total", "Plugin calls", &["kind", "plugin", "version"]),
        plugin_duration: histogram(
            "switchyard_plugin_call_duration_seconds",
            "Plugin call latency, sandbox included",
            &["kind", "plugin", "version"],
            &LATENCY_BUCKETS,
        ),
        plugin_failures: counter(
            "switchyard_plugin_failures_total",
            "Plugin calls that failed",
            &["kind", "plugin", "version", "reason"],
        ),
        plugin_fallbacks: counter(
            "switchyard_plugin_fallbacks_total",
            "Decisions made by the built-in default",
            &["kind", "plugin", "version"],
        ),
        plugin_swaps: counter("switchyard_plugin_swaps_total", "Plugin loads by result", &["kind", "result"]),
    }
}

/// The `event` values of `switchyard_chain_events_total`.
pub const CHAIN_EVENTS: [&str; 9] = [
    "resubmitted",
    "cannot_bump",
    "expired",
    "canceled",
    "dropped_resent",
    "requeued",
    "gap_filled",
    "nonce_released",
    "reorged",
];

/// Series of closed label sets start at 0, so that `rate()` and
/// `increase()` see their first event and alert rules always find them.
fn start_at_zero(metrics: &Metrics) {
    for event in CHAIN_EVENTS {
        metrics.chain_events.with_label_values(&[event]);
    }
    let classes = Outage::ALL.map(|o| o.to_string()).into_iter().chain(Refusal::ALL.map(|r| r.to_string()));
    for class in classes.chain(["wrong chain".to_string()]) {
        metrics.rpc_errors.with_label_values(&[&class]);
    }
    for kind in PluginKind::ALL {
        for result in ["loaded", "rejected"] {
            metrics.plugin_swaps.with_label_values(&[kind.interface(), result]);
        }
    }
}

/// Counts a chain event.
pub fn chain_event(event: &str) {
    debug_assert!(CHAIN_EVENTS.contains(&event), "undeclared chain event {event}");
    METRICS.chain_events.with_label_values(&[event]).inc();
}

/// Every registered series, in Prometheus' text format.
pub fn render() -> String {
    LazyLock::force(&METRICS);
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
