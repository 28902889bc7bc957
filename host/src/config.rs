//! The host's configuration: one TOML file. Relative paths in it are
//! resolved against the file's own directory, so the host behaves the same
//! whatever directory it is started from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::plugins::{EngineSettings, Limits, PluginKind};

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

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the embedded default keeps its state.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub plugins: PluginsConfig,
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}

impl Default for Config {
    fn default() -> Self {
        Config { data_dir: default_data_dir(), plugins: PluginsConfig::default() }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
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
#[derive(Debug, Clone, Deserialize, PartialEq)]
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

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Config::parse_file(path, &Config::read(path)?)
    }

    /// The text of a config file.
    pub fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })
    }

    /// Parses the text read from `path`, resolving paths against its folder.
    pub fn parse_file(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Config::parse(text, base, &path.display().to_string())
    }

    /// Parses TOML text, resolving relative paths against `base`.
    pub fn parse(text: &str, base: &Path, origin: &str) -> Result<Self, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse { origin: origin.into(), message: e.to_string() })?;
        config.resolve_paths(base);
        config.validate()?;
        Ok(config)
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
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
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
}
