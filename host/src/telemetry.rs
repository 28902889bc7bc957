//! Logging: `tracing` to stderr, filtered by `RUST_LOG` (default `info`).
//! Metrics: Prometheus series in the process-wide registry, served at
//! `/metrics`.

use std::sync::LazyLock;

use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, TextEncoder};
use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // A second init (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

/// The series the relay path keeps.
#[derive(Debug)]
pub struct Metrics {
    /// What the relay did about the chain, by event: `resubmitted`,
    /// `cannot_bump`, `expired`, `canceled`, `dropped_resent`, `gap_filled`,
    /// `nonce_released`, `reorged`.
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

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
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
    }
});

/// Counts a chain event.
pub fn chain_event(event: &str) {
    METRICS.chain_events.with_label_values(&[event]).inc();
}

/// Every registered series, in Prometheus' text format.
pub fn render() -> String {
    LazyLock::force(&METRICS);
    let mut out = Vec::new();
    let _ = TextEncoder::new().encode(&prometheus::gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}
