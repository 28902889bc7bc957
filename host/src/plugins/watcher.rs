//! Hot reload: watches the plugins folder (and the config file, for plugin
//! settings) and reloads after the folder has been quiet for the debounce
//! time. Loading happens on the watcher's thread, never on a request.
//!
//! The folders are watched, not the files, so atomic renames and
//! Kubernetes' ConfigMap symlink swaps are seen. A change is found by
//! comparing content hashes and settings, whatever the event said.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use tokio::sync::mpsc::UnboundedSender;

use super::{PluginHost, ReloadOutcome};
use crate::config::Config;

/// Stops watching when dropped (the reload thread ends with the channel).
pub struct PluginWatcher {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for PluginWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginWatcher").finish_non_exhaustive()
    }
}

impl PluginWatcher {
    /// Watches `host`'s plugins folder, and `config_file` if given: an edit
    /// there re-applies the `[plugins.*]` slots (a config that fails to parse
    /// is refused and the running settings stay).
    pub fn start(host: Arc<PluginHost>, config_file: Option<PathBuf>, debounce: Duration) -> notify::Result<Self> {
        Self::start_reporting(host, config_file, debounce, None)
    }

    /// As [`PluginWatcher::start`], sending every reload's outcomes to
    /// `report` (the event log's feed).
    pub fn start_reporting(
        host: Arc<PluginHost>,
        config_file: Option<PathBuf>,
        debounce: Duration,
        report: Option<UnboundedSender<ReloadOutcome>>,
    ) -> notify::Result<Self> {
        let plugins_dir = host.plugins_dir();
        let (changed, changes) = channel();
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            // Reads are events too (inotify's IN_OPEN): a reload reads every
            // plugin file, and must not set off the next one.
            Ok(event) if matches!(event.kind, EventKind::Access(_)) => {}
            Ok(_) => {
                let _ = changed.send(());
            }
            Err(error) => tracing::warn!(%error, "plugin watcher error"),
        })?;
        watcher.watch(&plugins_dir, RecursiveMode::NonRecursive)?;
        if let Some(dir) = config_file.as_deref().and_then(Path::parent).filter(|d| *d != plugins_dir) {
            watcher.watch(dir, RecursiveMode::NonRecursive)?;
        }
        std::thread::Builder::new()
            .name("plugin-watcher".into())
            .spawn(move || reload_when_quiet(&changes, debounce, &host, config_file.as_deref(), report.as_ref()))
            .map_err(notify::Error::io)?;
        tracing::info!(dir = %plugins_dir.display(), "watching plugins");
        Ok(PluginWatcher { _watcher: watcher })
    }
}

/// Reloads once the folders have been quiet for `debounce` after a change:
/// a copy in progress or a ConfigMap's symlink swap is one change, not many.
fn reload_when_quiet(
    changes: &Receiver<()>,
    debounce: Duration,
    host: &PluginHost,
    config_file: Option<&Path>,
    report: Option<&UnboundedSender<ReloadOutcome>>,
) {
    while changes.recv().is_ok() {
        loop {
            match changes.recv_timeout(debounce) {
                Ok(()) => continue,
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
        for outcome in reload(host, config_file) {
            if let Some(report) = report {
                let _ = report.send(outcome);
            }
        }
    }
}

fn reload(host: &PluginHost, config_file: Option<&Path>) -> Vec<ReloadOutcome> {
    match config_file.map(load_edited_config) {
        Some(Ok(config)) => host.apply(&config.plugins),
        Some(Err(error)) => {
            tracing::warn!(%error, "config change rejected; the running plugin settings stay");
            host.reload()
        }
        None => host.reload(),
    }
}

/// An empty file is a valid config (all defaults, no plugins), but at run
/// time it is almost always a write caught half-way: refuse it rather than
/// unload every plugin.
fn load_edited_config(path: &Path) -> Result<Config, crate::config::ConfigError> {
    let text = Config::read(path)?;
    if text.trim().is_empty() {
        return Err(crate::config::ConfigError::Parse {
            origin: path.display().to_string(),
            message: "the file is empty (a write in progress?)".into(),
        });
    }
    // The environment overrides the file at start; it must here too.
    Config::parse_file_with_env(path, &text)
}
