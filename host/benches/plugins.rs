//! Plugin benchmarks, printed as a Markdown table (copied to BENCHMARKS.md):
//!
//! 1. selector decision latency with 16 candidates, for each example
//!    selector: the component call as the pipeline makes it (fresh instance,
//!    lowering, the call, lifting, answer check) against the same strategy
//!    compiled natively (the plugin crate linked as a Rust library), in the
//!    same run, and their ratio;
//! 2. hot-swap latency: file written to new version serving, through the
//!    real watcher, and the reload alone (compile or cache hit, validation,
//!    swap).
//!
//! `cargo bench -p switchyard --bench plugins` (add `-- --quick` for a short
//! run that only proves the harness works; `--only NAME` benches one
//! selector and `--no-swap` skips the hot-swap part, for profiling).

// The report is the output.
#![allow(clippy::print_stdout)]

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy_primitives::{Address, U256};
use switchyard::config::{PluginSlot, PluginsConfig};
use switchyard::plugins::{Candidate, EngineSettings, PluginHost, PluginKind, PluginWatcher, ReloadOutcome, TxRequest};
use switchyard_sdk::selector::{Candidate as NativeCandidate, Selection as NativeSelection, Selector};
use switchyard_sdk::{Config as NativeConfig, Labels, Request as NativeRequest};

const CANDIDATES: usize = 16;
/// Native calls are too short to time one by one; each sample times a batch.
const NATIVE_BATCH: u32 = 64;

struct Settings {
    samples: usize,
    swaps: usize,
    only: Option<String>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1).cloned());
    let (samples, swaps) = if quick { (2_000, 3) } else { (50_000, 20) };
    let settings = Settings { samples, swaps, only };
    let plugins = build_plugins();

    println!("## Selector decision latency, {CANDIDATES} candidates ({} samples each)\n", settings.samples);
    println!("| selector | component p50 | component p99 | native p50 | native p99 | ratio p50 | ratio p99 |");
    println!("|---|---|---|---|---|---|---|");
    bench_selector::<selector_round_robin::RoundRobin>(&plugins, "selector_round_robin", &[], &settings);
    bench_selector::<selector_least_pending::LeastPending>(&plugins, "selector_least_pending", &[], &settings);
    bench_selector::<selector_weighted::Weighted>(
        &plugins,
        "selector_weighted",
        &[("weights", "r00=5, r01=3")],
        &settings,
    );
    bench_selector::<selector_health_aware::HealthAware>(
        &plugins,
        "selector_health_aware",
        &[("max_pending", "3")],
        &settings,
    );

    if args.iter().any(|a| a == "--no-swap") {
        return;
    }
    println!("\n## Hot swap ({} swaps, round-robin <-> least-pending)\n", settings.swaps);
    println!("| path | p50 | max |");
    println!("|---|---|---|");
    bench_hot_swap(&plugins, &settings);
}

fn build_plugins() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let out = root.join("target/example-plugins");
    let status = Command::new("bash")
        .arg(root.join("scripts/build-plugins.sh"))
        .arg("--out")
        .arg(&out)
        .status()
        .expect("run scripts/build-plugins.sh");
    assert!(status.success(), "plugin build failed");
    out
}

fn candidates() -> Vec<Candidate> {
    (0..CANDIDATES)
        .map(|i| Candidate {
            id: format!("r{i:02}"),
            address: Address::with_last_byte(i as u8),
            weight: 1 + (i as u32 % 3),
            labels: vec![("region".into(), if i % 2 == 0 { "eu" } else { "us" }.into())],
            pending_count: ((i * 7) % 5) as u32,
            healthy: i != 5,
            balance: U256::from(10u64).pow(U256::from(18)),
            success_rate_bps: 9_000 + i as u32 * 50,
            latency_ms: 10 + i as u32,
        })
        .collect()
}

fn native_candidates(host: &[Candidate]) -> Vec<NativeCandidate> {
    host.iter()
        .map(|c| NativeCandidate {
            id: c.id.clone(),
            address: switchyard_sdk::Address(c.address.into_array()),
            weight: c.weight,
            labels: Labels(c.labels.clone()),
            pending_count: c.pending_count,
            healthy: c.healthy,
            balance: switchyard_sdk::U256::from_limbs(c.balance.into_limbs()),
            success_rate_bps: c.success_rate_bps,
            latency_ms: c.latency_ms,
        })
        .collect()
}

fn native_request(r: &TxRequest) -> NativeRequest {
    NativeRequest {
        id: r.id.clone(),
        chain_id: r.chain_id,
        to: r.to.map(|a| switchyard_sdk::Address(a.into_array())),
        value: switchyard_sdk::U256::from_limbs(r.value.into_limbs()),
        data: r.data.clone(),
        gas_limit: r.gas_limit,
        api_key_id: r.api_key_id.clone(),
        ..Default::default()
    }
}

fn slot(file: &str, config: &[(&str, &str)]) -> PluginSlot {
    PluginSlot {
        file: file.into(),
        timeout_ms: 10,
        memory_mib: 16,
        config: config.iter().map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string()))).collect(),
    }
}

fn host(dir: &Path, file: &str, config: &[(&str, &str)], cache_dir: Option<PathBuf>) -> PluginHost {
    let settings = PluginsConfig { dir: dir.into(), selector: Some(slot(file, config)), ..Default::default() };
    let engine = EngineSettings { cache_dir, ..EngineSettings::default() };
    let (host, loaded) = PluginHost::new(&settings, engine).expect("engine");
    assert!(matches!(loaded[0], ReloadOutcome::Loaded { .. }), "{file}: {:?}", loaded[0]);
    host
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn bench_selector<S: Selector>(plugins: &Path, name: &str, config: &[(&str, &str)], settings: &Settings) {
    if settings.only.as_deref().is_some_and(|only| only != name) {
        return;
    }
    let file = format!("{name}.wasm");
    let host = host(plugins, &file, config, None);
    let request = switchyard::plugins::fixtures::request();
    let relayers = candidates();
    // The pipeline awaits a decision on its own task; so does the bench.
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");

    let native_config = NativeConfig::new(config.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
    let native_req = native_request(&request);
    let native_relayers = native_candidates(&relayers);
    // Both must agree on what they decide, or the comparison is meaningless.
    for sequence in 0..32 {
        let native = S::select(&native_config, &native_req, &native_relayers, sequence);
        let component = runtime.block_on(host.select(&request, &relayers));
        assert!(component.plugin().is_some(), "{name} fell back: {:?}", component.decided_by);
        let NativeSelection::Chosen(native) = native else { panic!("native {name} refused") };
        assert_eq!(component.outcome, switchyard::plugins::Selection::Chosen(native), "{name} at {sequence}");
    }

    let mut component = Vec::with_capacity(settings.samples);
    for _ in 0..settings.samples {
        let start = Instant::now();
        black_box(runtime.block_on(host.select(black_box(&request), black_box(&relayers))));
        component.push(start.elapsed());
    }
    let mut native = Vec::with_capacity(settings.samples);
    let mut sequence = 0u64;
    for _ in 0..settings.samples {
        let start = Instant::now();
        for _ in 0..NATIVE_BATCH {
            sequence += 1;
            black_box(S::select(
                black_box(&native_config),
                black_box(&native_req),
                black_box(&native_relayers),
                sequence,
            ));
        }
        native.push(start.elapsed() / NATIVE_BATCH);
    }
    component.sort_unstable();
    native.sort_unstable();
    let (c50, c99) = (percentile(&component, 0.50), percentile(&component, 0.99));
    let (n50, n99) = (percentile(&native, 0.50), percentile(&native, 0.99));
    println!(
        "| {name} | {c50:.2?} | {c99:.2?} | {n50:.2?} | {n99:.2?} | {:.0}x | {:.0}x |",
        c50.as_secs_f64() / n50.as_secs_f64(),
        c99.as_secs_f64() / n99.as_secs_f64()
    );
}

fn bench_hot_swap(plugins: &Path, settings: &Settings) {
    let versions = [
        std::fs::read(plugins.join("selector_round_robin.wasm")).unwrap(),
        std::fs::read(plugins.join("selector_least_pending.wasm")).unwrap(),
    ];
    let row = |label: &str, mut times: Vec<Duration>| {
        times.sort_unstable();
        println!("| {label} | {:.1?} | {:.1?} |", percentile(&times, 0.5), times[times.len() - 1]);
    };

    for (label, cached) in [("reload: compile + validate + swap", false), ("reload: cache hit + validate + swap", true)]
    {
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.wasm"), &versions[0]).unwrap();
        let host = host(dir.path(), "s.wasm", &[], cached.then(|| cache.path().to_path_buf()));
        let mut times = Vec::new();
        for i in 1..=settings.swaps {
            std::fs::write(dir.path().join("s.wasm"), &versions[i % 2]).unwrap();
            let start = Instant::now();
            let outcome = host.reload().remove(0);
            times.push(start.elapsed());
            assert!(matches!(outcome, ReloadOutcome::Loaded { .. }), "{outcome:?}");
        }
        row(label, times);
    }

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.wasm"), &versions[0]).unwrap();
    let host = Arc::new(host(dir.path(), "s.wasm", &[], None));
    let debounce = Duration::from_millis(PluginsConfig::default().debounce_ms);
    let _watcher = PluginWatcher::start(host.clone(), None, debounce).unwrap();
    let mut times = Vec::new();
    for i in 1..=settings.swaps {
        let want = switchyard_hash(&versions[i % 2]);
        let start = Instant::now();
        std::fs::write(dir.path().join("s.wasm"), &versions[i % 2]).unwrap();
        while host.active(PluginKind::Selector).is_none_or(|p| p.id.version_hash != want) {
            assert!(start.elapsed() < Duration::from_secs(10), "swap {i} never landed");
            std::thread::sleep(Duration::from_micros(200));
        }
        times.push(start.elapsed());
        std::thread::sleep(debounce * 2);
    }
    row(&format!("file write -> serving, via the watcher (debounce {debounce:?})"), times);
}

fn switchyard_hash(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
