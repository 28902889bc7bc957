//! Shared by the integration tests: builds the real plugin components once
//! per test binary and sets up hosts over private copies of them.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub mod brokers;
pub mod databases;
pub mod queue_suite;
pub mod relay;
pub mod store_suite;

use switchyard::config::{PluginSlot, PluginsConfig};
use switchyard::plugins::{Candidate, EngineSettings, PluginHost, PluginKind, ReloadOutcome, TxRequest};

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ has a parent")
}

/// Builds the plugin workspace `workspace` (relative to the repository)
/// into `target/<out>`, once per test binary.
fn built(cell: &'static OnceLock<PathBuf>, workspace: &str, out: &str) -> &'static Path {
    cell.get_or_init(|| {
        let (workspace, out) = (repo_root().join(workspace), repo_root().join("target").join(out));
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/build-plugins.sh"))
            .args(["--workspace".as_ref(), workspace.as_os_str(), "--out".as_ref(), out.as_os_str()])
            .status()
            .expect("run scripts/build-plugins.sh");
        assert!(status.success(), "building the plugins in {} failed", workspace.display());
        out
    })
}

/// The example plugins of plugins/, built to components.
pub fn examples() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    built(&DIR, "plugins", "example-plugins")
}

/// The hostile plugins of host/tests/hostile, built to components.
pub fn hostile() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    built(&DIR, "host/tests/hostile", "hostile-plugins")
}

/// Runs a plugin decision to completion from a synchronous test.
pub fn decide<F: std::future::Future>(decision: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().build().expect("a test runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(decision))
}

pub fn example(name: &str) -> Vec<u8> {
    read(&examples().join(format!("{name}.wasm")))
}

pub fn hostile_plugin(name: &str) -> Vec<u8> {
    read(&hostile().join(format!("{name}.wasm")))
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn slot(file: &str, config: &[(&str, &str)]) -> PluginSlot {
    PluginSlot {
        file: file.into(),
        timeout_ms: 10,
        memory_mib: 16,
        config: config.iter().map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string()))).collect(),
    }
}

/// A host over a private plugins folder. `files` are written into it first.
pub struct TestHost {
    pub dir: tempfile::TempDir,
    pub host: std::sync::Arc<PluginHost>,
    pub loaded: Vec<ReloadOutcome>,
}

pub fn engine(cache_dir: Option<PathBuf>) -> EngineSettings {
    EngineSettings { max_instances: 64, max_memory_bytes: 64 << 20, cache_dir, ..EngineSettings::default() }
}

pub fn plugins_config(dir: &Path, slots: Vec<(PluginKind, PluginSlot)>) -> PluginsConfig {
    let mut config = PluginsConfig { dir: dir.to_path_buf(), ..PluginsConfig::default() };
    for (kind, slot) in slots {
        match kind {
            PluginKind::Selector => config.selector = Some(slot),
            PluginKind::Policy => config.policy = Some(slot),
            PluginKind::Fee => config.fee = Some(slot),
        }
    }
    config
}

pub fn test_host(files: &[(&str, Vec<u8>)], slots: Vec<(PluginKind, PluginSlot)>) -> TestHost {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).expect("write plugin");
    }
    let config = plugins_config(dir.path(), slots);
    let (host, loaded) = PluginHost::new(&config, engine(None)).expect("engine");
    TestHost { dir, host: std::sync::Arc::new(host), loaded }
}

pub fn request() -> TxRequest {
    switchyard::plugins::fixtures::request()
}

pub fn with_hint(key: &str, value: &str) -> TxRequest {
    TxRequest { hints: vec![(key.into(), value.into())], ..request() }
}

/// 16 healthy relayers `r00`..`r15` with distinct pending counts, weights
/// and latencies.
pub fn candidates(n: usize) -> Vec<Candidate> {
    (0..n)
        .map(|i| Candidate {
            id: format!("r{i:02}"),
            address: alloy_primitives::Address::with_last_byte(i as u8),
            weight: 1 + (i as u32 % 3),
            labels: vec![("region".into(), if i % 2 == 0 { "eu" } else { "us" }.into())],
            pending_count: ((i * 7) % 5) as u32,
            healthy: true,
            balance: alloy_primitives::U256::from(10u64).pow(alloy_primitives::U256::from(18)),
            success_rate_bps: 9_000 + (i as u32 * 50),
            latency_ms: 10 + i as u32,
        })
        .collect()
}

pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    done().then(|| start.elapsed())
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}
