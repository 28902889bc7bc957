use std::path::PathBuf;

use super::types::PluginKind;

/// Why a plugin call gave no usable answer. The pipeline then falls back to
/// the kind's built-in default and records this reason on the decision.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PluginError {
    #[error("no {0} plugin is loaded")]
    NotLoaded(PluginKind),
    #[error("exceeded its CPU deadline of {timeout_ms} ms")]
    Timeout { timeout_ms: u64 },
    #[error("exceeded its memory cap of {cap} bytes (asked for {requested})")]
    MemoryLimit { cap: usize, requested: usize },
    #[error("trapped: {0}")]
    Trap(String),
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
    #[error("gave a malformed answer: {0}")]
    MalformedAnswer(String),
}

impl PluginError {
    /// The `reason` label of `switchyard_plugin_failures_total`.
    pub fn metric_reason(&self) -> &'static str {
        match self {
            PluginError::NotLoaded(_) => "not_loaded",
            PluginError::Timeout { .. } => "timeout",
            PluginError::MemoryLimit { .. } => "memory",
            PluginError::Trap(_) => "trap",
            PluginError::Instantiate(_) => "instantiate",
            PluginError::MalformedAnswer(_) => "malformed_answer",
        }
    }
}

/// Why a plugin file was refused. The slot keeps its previous plugin.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("not a WebAssembly file (no `\\0asm` header)")]
    NotWasm,
    #[error("a core WebAssembly module, not a component: build it for the wasm32-wasip2 target")]
    CoreModule,
    #[error("not a valid component: {0}")]
    Compile(String),
    #[error(
        "exports no switchyard:plugin interface; a plugin exports exactly one of \
         switchyard:plugin/selector, policy or fee (found: {found})"
    )]
    NotAPlugin { found: String },
    #[error("is a {found} plugin, but this slot takes a {expected} plugin")]
    WrongKind { expected: PluginKind, found: PluginKind },
    #[error("exports several plugin interfaces ({0}); a plugin exports exactly one")]
    SeveralKinds(String),
    #[error("was built against switchyard:plugin@{found}; this host loads {supported}")]
    UnsupportedVersion { found: String, supported: String },
    #[error("imports `{import}`, which plugins are never granted ({why})")]
    ForbiddenImport { import: String, why: &'static str },
    #[error("does not link against the host: {0}")]
    Link(String),
    #[error("rejected its configuration: {0}")]
    ConfigRejected(String),
    #[error("failed the smoke call ({fixture}): {error}")]
    SmokeFailed { fixture: &'static str, error: PluginError },
}
