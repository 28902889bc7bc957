//! The `switchyard` command line.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::plugins::{self, EngineSettings, Limits, PluginKind};

#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about = "A transaction relay whose routing brain is WebAssembly")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay: the REST API, the queue workers and the watcher. With
    /// no RPC URL configured, starts a local dev chain (anvil) and relays
    /// with its funded dev keys.
    Serve {
        /// The TOML config file; `SWITCHYARD_*` environment variables
        /// override it (`SWITCHYARD_NETWORK__CONFIRMATIONS=3`).
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        /// The API's address (overrides `listen`).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Apply the store's pending migrations (PostgreSQL, MySQL or SQLite, as
    /// `database_url` says) and exit. Safe to run from several replicas at
    /// once: the database serialises them.
    Migrate {
        /// The TOML config file; `SWITCHYARD_DATABASE_URL` overrides it.
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Build, check and test routing plugins (selector, policy, fee).
    #[command(subcommand)]
    Plugin(PluginCommand),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Load a plugin file exactly as a hot swap would: compile it, check its
    /// world, WIT version and imports, run its config check and the smoke
    /// call. Prints its kind, WIT version and sha256 and exits 0 when the host
    /// would accept it; otherwise prints why not and exits 1.
    Check {
        path: PathBuf,
        /// Require this kind (selector, policy or fee).
        #[arg(long)]
        kind: Option<PluginKind>,
        /// A plugin config entry, as the host would pass it (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_pair)]
        config: Vec<(String, String)>,
        #[arg(long, default_value_t = 10)]
        timeout_ms: u64,
        #[arg(long, default_value_t = 16)]
        memory_mib: u32,
    },
    /// Build every plugin crate in plugins/ to a wasm32-wasip2 component and
    /// copy it to plugins/<crate_name>.wasm. Installs the wasm32-wasip2
    /// toolchain first if it is missing.
    Build {
        /// The repository root; found from the current directory by default.
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Run a wasm32-wasip2 test binary inside the plugin sandbox, with the
    /// host's `log` import. This is the cargo runner of plugins/, so
    /// `cargo test --target wasm32-wasip2` there needs no wasmtime CLI.
    TestRunner {
        wasm: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    Ok((k.trim().to_string(), v.to_string()))
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve { config: file, listen } => {
            let mut config = Config::load_with_env(file.as_deref(), std::env::vars())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(crate::serve::serve(config, file))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate { config: file } => {
            let config = Config::load_with_env(file.as_deref(), std::env::vars())?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(migrate(&config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Check { path, kind, config, timeout_ms, memory_mib }) => {
            let limits =
                Limits { timeout: Duration::from_millis(timeout_ms), memory_bytes: (memory_mib as usize) << 20 };
            let engine =
                EngineSettings { max_instances: 4, max_memory_bytes: limits.memory_bytes, ..EngineSettings::default() };
            check(&path, kind, config, limits, engine)
        }
        Command::Plugin(PluginCommand::Build { root }) => build(root),
        Command::Plugin(PluginCommand::TestRunner { wasm, args }) => {
            let code = plugins::run_test_binary(&wasm, &args)?;
            Ok(ExitCode::from(code))
        }
    }
}

#[allow(clippy::print_stdout)]
fn check(
    path: &Path,
    kind: Option<PluginKind>,
    config: Vec<(String, String)>,
    limits: Limits,
    engine: EngineSettings,
) -> anyhow::Result<ExitCode> {
    match plugins::check_file(path, kind, config, limits, engine)? {
        Ok(info) => {
            println!("plugin:      {}", info.id.name);
            println!("kind:        {}", info.kind);
            println!("wit:         switchyard:plugin@{}", info.id.wit_version);
            println!("sha256:      {}", info.id.version_hash);
            println!("imports:     {}", info.imports.join(", "));
            println!("smoke test:  passed");
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!("refused: {}: {reason}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
}

fn build(root: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let root = match root {
        Some(root) => root,
        None => find_root(&std::env::current_dir()?)
            .ok_or_else(|| anyhow::anyhow!("no scripts/build-plugins.sh above the current directory; pass --root"))?,
    };
    let status = std::process::Command::new("bash").arg(root.join("scripts/build-plugins.sh")).status()?;
    Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn find_root(start: &Path) -> Option<PathBuf> {
    start.ancestors().find(|dir| dir.join("scripts/build-plugins.sh").is_file()).map(Path::to_path_buf)
}

#[allow(clippy::print_stdout)]
async fn migrate(config: &Config) -> anyhow::Result<()> {
    let url = config.database_url()?;
    let store = crate::store::sql::SqlStore::connect_only(&url, &config.database_options(true)).await?;
    let name = store.backend().name();
    println!("migrating the {name} database at {}", crate::config::redact_url(&url));
    for migration in store.migrate().await? {
        println!("  applied {migration}");
    }
    store.check_migrated().await?;
    println!("the {name} schema is up to date");
    Ok(())
}
