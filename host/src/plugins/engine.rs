//! The wasmtime engine every plugin runs on: component model, pooling
//! allocator (instantiation is a slot reset, not an mmap), epoch interruption
//! for CPU deadlines, and a linker holding exactly the host imports plugins
//! may use.
//!
//! Calls run on the async runtime's own threads, on a fiber that yields at
//! every epoch tick: a slow plugin shares its thread instead of holding it,
//! and a decision needs no hop to a blocking thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::Linker;
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::cache::ArtifactCache;
use super::gate::CallGate;
use super::sandbox::{EPOCH_TICK, PluginState};
use super::wit;

/// Engine-wide settings; per-plugin limits live in `sandbox::Limits`.
#[derive(Clone, Debug)]
pub struct EngineSettings {
    /// Plugin instances that may exist at once (pool slots).
    pub max_instances: u32,
    /// Plugin calls that run at once; more wait their turn.
    pub max_concurrent_calls: usize,
    /// No plugin's memory cap may exceed this.
    pub max_memory_bytes: usize,
    /// Where compiled components are cached; `None` compiles at every start.
    pub cache_dir: Option<PathBuf>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            max_instances: 256,
            max_concurrent_calls: default_concurrent_calls(),
            max_memory_bytes: 64 << 20,
            cache_dir: None,
        }
    }
}

/// Bytes of each memory and table slot kept resident between instances.
const KEEP_RESIDENT: usize = 2 << 20;

/// One call per core.
pub fn default_concurrent_calls() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

pub(crate) struct Runtime {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<PluginState>,
    pub(crate) cache: ArtifactCache,
    pub(crate) gate: CallGate,
    ticker_stop: Arc<AtomicBool>,
}

impl Runtime {
    pub(crate) fn new(settings: EngineSettings) -> anyhow::Result<Self> {
        let instances = settings.max_instances;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(instances)
            // A Rust component is a handful of core instances (the module
            // and the canonical ABI shims), with one memory.
            .total_core_instances(instances.saturating_mul(8))
            .total_memories(instances.saturating_mul(2))
            .total_tables(instances.saturating_mul(4))
            // One fiber stack per call in progress.
            .total_stacks(instances)
            .max_memory_size(settings.max_memory_bytes)
            // A fresh instance per decision: keep a slot's pages resident and
            // reset only the dirty ones (PAGEMAP_SCAN, Linux >= 6.7; memset of
            // the low pages elsewhere), so an instance does not page-fault its
            // stack and heap back in on every call.
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            .pagemap_scan(Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config)?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wit::add_to_linker(&mut linker)?;

        let ticker_stop = Arc::new(AtomicBool::new(false));
        spawn_epoch_ticker(engine.clone(), ticker_stop.clone())?;
        let cache = ArtifactCache::new(&engine, settings.cache_dir.clone());
        let gate = CallGate::new(settings.max_concurrent_calls);
        Ok(Runtime { engine, linker, cache, gate, ticker_stop })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

fn spawn_epoch_ticker(engine: Engine, stop: Arc<AtomicBool>) -> std::io::Result<()> {
    std::thread::Builder::new().name("plugin-epoch".into()).spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        }
    })?;
    Ok(())
}
