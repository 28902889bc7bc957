//! The plugin runtime: three slots (selector, policy, fee), each served by a
//! sandboxed WebAssembly component, hot-swapped without dropping a call.
//!
//! Every decision returns a [`Decision`] saying which plugin build decided, or
//! why the kind's built-in default (see `fallback`) decided instead. The
//! decision methods are async and run the plugin on the calling task (see
//! `engine`); loading and reloading block, so they run off the async
//! runtime's worker threads.

mod answers;
mod cache;
mod engine;
mod error;
mod fallback;
pub mod fixtures;
mod gate;
mod loader;
mod sandbox;
mod test_runner;
mod types;
mod watcher;
mod wit;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwapOption;
use tracing::Instrument;

pub use cache::CacheOutcome;
pub use engine::{EngineSettings, default_concurrent_calls};
pub use error::{LoadError, PluginError};
pub use loader::Inspection;
pub use sandbox::Limits;
pub use test_runner::run_test_binary;
pub use types::*;
pub use watcher::PluginWatcher;

use crate::config::{PluginSlot, PluginsConfig};
use engine::Runtime;
use loader::{LoadedPlugin, PluginSource};

/// A decision and who made it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<T> {
    pub outcome: T,
    pub decided_by: DecidedBy,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    Plugin(PluginId),
    /// The built-in default decided, because the plugin (if any) failed.
    Fallback {
        plugin: Option<PluginId>,
        reason: PluginError,
    },
}

impl<T> Decision<T> {
    pub fn plugin(&self) -> Option<&PluginId> {
        match &self.decided_by {
            DecidedBy::Plugin(id) => Some(id),
            DecidedBy::Fallback { .. } => None,
        }
    }
}

/// What a loaded plugin is, for status pages and `plugin check`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginInfo {
    pub id: PluginId,
    pub kind: PluginKind,
    pub imports: Vec<String>,
    pub cache: CacheOutcome,
    pub limits: Limits,
}

/// What a reload did to one slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    Unchanged(PluginKind),
    Loaded {
        kind: PluginKind,
        previous: Option<PluginId>,
        now: PluginId,
    },
    /// The file was refused; the previous plugin (if any) keeps serving.
    Rejected {
        kind: PluginKind,
        file: PathBuf,
        reason: String,
    },
    /// The slot was removed from the configuration.
    Cleared(PluginKind),
}

pub struct PluginHost {
    runtime: Runtime,
    slots: [ArcSwapOption<LoadedPlugin>; 3],
    /// The slot settings in force; the lock also serialises reloads.
    settings: Mutex<PluginsConfig>,
    sequence: AtomicU64,
    rejections: AtomicU64,
    /// Per slot, what was last refused (file, content, settings): the same
    /// refusal is not repeated on every reload.
    refused: Mutex<[Option<String>; 3]>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost").field("dir", &self.settings().dir).finish_non_exhaustive()
    }
}

impl PluginHost {
    /// Builds the engine and loads every configured slot. A plugin that
    /// fails to load leaves its slot to the built-in default (logged, and
    /// returned in the outcomes) rather than stopping the host.
    pub fn new(config: &PluginsConfig, engine: EngineSettings) -> anyhow::Result<(Self, Vec<ReloadOutcome>)> {
        let host = PluginHost {
            runtime: Runtime::new(engine)?,
            slots: Default::default(),
            settings: Mutex::new(config.clone()),
            sequence: AtomicU64::new(0),
            rejections: AtomicU64::new(0),
            refused: Mutex::default(),
        };
        let outcomes = host.reload();
        Ok((host, outcomes))
    }

    /// A reload that panicked midway left nothing half-applied (slots swap
    /// atomically), so a poisoned lock is still good to use.
    fn settings(&self) -> MutexGuard<'_, PluginsConfig> {
        self.settings.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn plugins_dir(&self) -> PathBuf {
        self.settings().dir.clone()
    }

    /// Chooses the relayer for `request` among `candidates`.
    pub async fn select(&self, request: &TxRequest, candidates: &[Candidate]) -> Decision<Selection> {
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        self.decide(
            PluginKind::Selector,
            async |plugin| plugin.select(&self.runtime, request, candidates, sequence).await,
            || fallback::select(candidates, sequence),
        )
        .await
    }

    /// Admits, denies or amends `request` at submission.
    pub async fn evaluate(&self, request: &TxRequest, usage: Usage) -> Decision<Verdict> {
        self.decide(
            PluginKind::Policy,
            async |plugin| plugin.evaluate(&self.runtime, request, usage).await,
            fallback::verdict,
        )
        .await
    }

    /// Prices `request` (a replacement when `market.previous` is set).
    pub async fn price(&self, request: &TxRequest, market: &FeeMarket) -> Decision<FeeDecision> {
        self.decide(
            PluginKind::Fee,
            async |plugin| plugin.price(&self.runtime, request, market).await,
            || fallback::price(market),
        )
        .await
    }

    async fn decide<T>(
        &self,
        kind: PluginKind,
        call: impl AsyncFnOnce(&LoadedPlugin) -> Result<T, PluginError>,
        fallback: impl FnOnce() -> T,
    ) -> Decision<T> {
        let metrics = &crate::telemetry::METRICS;
        // The guard keeps this version alive even if a swap lands mid-call.
        let plugin = self.slots[kind.index()].load_full();
        let (plugin, reason) = match plugin {
            None => (None, PluginError::NotLoaded(kind)),
            Some(plugin) => {
                let labels = [kind.interface(), plugin.id.name.as_str(), plugin.id.short_hash()];
                let [interface, name, version] = labels;
                let span = tracing::info_span!("plugin", kind = interface, plugin = name, version);
                let started = std::time::Instant::now();
                let answer = call(&plugin).instrument(span).await;
                metrics.plugin_calls.with_label_values(&labels).inc();
                metrics.plugin_duration.with_label_values(&labels).observe(started.elapsed().as_secs_f64());
                match answer {
                    Ok(outcome) => return Decision { outcome, decided_by: DecidedBy::Plugin(plugin.id.clone()) },
                    Err(reason) => {
                        tracing::warn!(%kind, plugin = %plugin.id, %reason, "plugin failed; the built-in default decides");
                        metrics
                            .plugin_failures
                            .with_label_values(&[interface, name, version, reason.metric_reason()])
                            .inc();
                        (Some(plugin.id.clone()), reason)
                    }
                }
            }
        };
        let (name, version) = plugin.as_ref().map_or(("none", ""), |id| (id.name.as_str(), id.short_hash()));
        metrics.plugin_fallbacks.with_label_values(&[kind.interface(), name, version]).inc();
        Decision { outcome: fallback(), decided_by: DecidedBy::Fallback { plugin, reason } }
    }

    pub fn active(&self, kind: PluginKind) -> Option<PluginInfo> {
        self.slots[kind.index()].load().as_deref().map(LoadedPlugin::info)
    }

    /// How many plugin files or settings have been refused since start.
    pub fn rejections(&self) -> u64 {
        self.rejections.load(Ordering::Relaxed)
    }

    /// Re-reads every slot's file and loads what changed.
    pub fn reload(&self) -> Vec<ReloadOutcome> {
        let settings = self.settings();
        PluginKind::ALL.into_iter().map(|kind| self.reload_slot(kind, &settings)).collect()
    }

    /// Applies new slot settings (files, limits, plugin configs), for a
    /// config file edited at run time. Engine-wide settings need a restart.
    pub fn apply(&self, config: &PluginsConfig) -> Vec<ReloadOutcome> {
        let mut settings = self.settings();
        let engine_wide = |c: &PluginsConfig| {
            (c.dir.clone(), c.cache_dir.clone(), c.max_instances, c.max_concurrent_calls, c.max_memory_mib)
        };
        if engine_wide(&settings) != engine_wide(config) {
            tracing::warn!(
                "plugins.dir, cache_dir, max_instances, max_concurrent_calls and max_memory_mib change only at restart"
            );
        }
        settings.selector = config.selector.clone();
        settings.policy = config.policy.clone();
        settings.fee = config.fee.clone();
        PluginKind::ALL.into_iter().map(|kind| self.reload_slot(kind, &settings)).collect()
    }

    fn reload_slot(&self, kind: PluginKind, settings: &PluginsConfig) -> ReloadOutcome {
        let slot = &self.slots[kind.index()];
        let Some(wanted) = settings.slot(kind) else {
            return match slot.swap(None) {
                Some(_) => ReloadOutcome::Cleared(kind),
                None => ReloadOutcome::Unchanged(kind),
            };
        };
        let file = settings.dir.join(&wanted.file);
        let current = slot.load_full();
        let bytes = std::fs::read(&file);
        let attempt = match &bytes {
            Ok(bytes) => format!("{}|{}|{wanted:?}", file.display(), cache::sha256_hex(bytes)),
            Err(error) => format!("{}|{error}|{wanted:?}", file.display()),
        };
        let mut refused = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if refused[kind.index()].as_ref() == Some(&attempt) {
            return ReloadOutcome::Unchanged(kind);
        }
        let loaded = bytes
            .map_err(|source| LoadError::Read { path: file.clone(), source })
            .and_then(|bytes| self.load_slot(kind, &bytes, wanted, current.as_deref()));
        refused[kind.index()] = loaded.is_err().then_some(attempt);
        drop(refused);
        match loaded {
            Ok(None) => ReloadOutcome::Unchanged(kind),
            Ok(Some(plugin)) => {
                let now = plugin.id.clone();
                tracing::info!(%kind, file = %file.display(), plugin = %now, cache = ?plugin.cache, "plugin loaded");
                slot.store(Some(Arc::new(plugin)));
                crate::telemetry::METRICS.plugin_swaps.with_label_values(&[kind.interface(), "loaded"]).inc();
                ReloadOutcome::Loaded { kind, previous: current.map(|p| p.id.clone()), now }
            }
            Err(error) => {
                self.rejections.fetch_add(1, Ordering::Relaxed);
                crate::telemetry::METRICS.plugin_swaps.with_label_values(&[kind.interface(), "rejected"]).inc();
                let serving = current.as_ref().map_or("the built-in default".to_string(), |p| p.id.to_string());
                tracing::warn!(%kind, file = %file.display(), reason = %error, %serving, "plugin rejected; {serving} keeps serving");
                ReloadOutcome::Rejected { kind, file, reason: error.to_string() }
            }
        }
    }

    /// `Ok(None)` when the file and settings are those already serving.
    fn load_slot(
        &self,
        kind: PluginKind,
        bytes: &[u8],
        wanted: &PluginSlot,
        current: Option<&LoadedPlugin>,
    ) -> Result<Option<LoadedPlugin>, LoadError> {
        let name = wanted.plugin_name();
        let source = PluginSource::new(&name, bytes, Some(kind), wanted.config_pairs(), wanted.limits());
        let unchanged = current.is_some_and(|p| {
            p.id.version_hash == source.digest
                && p.id.name == name
                && p.config == source.config
                && p.limits == source.limits
        });
        if unchanged {
            return Ok(None);
        }
        loader::load(&self.runtime, source).map(Some)
    }
}

/// Loads a plugin file outside any host, as `switchyard plugin check` does:
/// the same validation a hot swap runs. `kind` checks the plugin is of that
/// kind; `None` accepts any.
pub fn check_file(
    path: &Path,
    kind: Option<PluginKind>,
    config: Vec<(String, String)>,
    limits: Limits,
    engine: EngineSettings,
) -> anyhow::Result<Result<PluginInfo, LoadError>> {
    let runtime = Runtime::new(engine)?;
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(source) => return Ok(Err(LoadError::Read { path: path.into(), source })),
    };
    let name = plugin_name(path);
    Ok(loader::load(&runtime, PluginSource::new(&name, &bytes, kind, config, limits)).map(|p| p.info()))
}

/// Reads a component's interface without running it, as `switchyard plugin
/// inspect` does.
pub fn inspect_file(path: &Path, engine: EngineSettings) -> anyhow::Result<Result<Inspection, LoadError>> {
    let runtime = Runtime::new(engine)?;
    Ok(match std::fs::read(path) {
        Ok(bytes) => loader::inspect(&runtime, &bytes),
        Err(source) => Err(LoadError::Read { path: path.into(), source }),
    })
}

/// A plugin's name: its file name without `.wasm`.
pub fn plugin_name(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// `s` cut to at most `max` bytes, on a character boundary: plugin text
/// goes into logs and API errors.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
