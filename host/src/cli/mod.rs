//! The `switchyard` command line.

mod keys;
mod scaffold;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{Config, LogConfig, OtelConfig, redact_url};
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
    /// Check the configuration without starting anything.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Manage the relayers' keys.
    #[command(subcommand)]
    Relayer(RelayerCommand),
    /// Probe a running Switchyard's liveness endpoint: exits 0 when it
    /// answers 2xx in time, 1 otherwise. The container image's health check
    /// (it has no curl).
    Health {
        #[arg(long, default_value = "http://127.0.0.1:8080/api/v1/health")]
        url: String,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Print the API's OpenAPI 3.1 document (what `GET /api/v1/openapi.json`
    /// serves), for client generators and API test tools.
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Read the config file with the `SWITCHYARD_*` environment on top and
    /// validate it as `serve` would at start: exits 0 and prints a summary
    /// (secrets redacted), or names the key that is wrong and exits 1.
    Check {
        #[arg(long, env = "SWITCHYARD_CONFIG")]
        config: Option<PathBuf>,
        /// Fail, not just warn, on `SWITCHYARD_*` variables that set no key
        /// (a misspelling is otherwise silently ignored).
        #[arg(long)]
        strict: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RelayerCommand {
    /// Encrypted keystores: create, import, list.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Scaffold a plugin crate of KIND in DIR/NAME from a template that
    /// builds and passes its tests as it is: `plugin build` and `plugin
    /// test` work on it at once.
    New {
        name: String,
        #[arg(long)]
        kind: PluginKind,
        /// Where the crate folder goes.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The plugin SDK (the repository's sdk-guest/); found from the
        /// current directory by default.
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
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
    /// Build plugin crates to wasm32-wasip2 components: every crate of a
    /// workspace, or one crate. Each lands in OUT as <crate_name>.wasm, where
    /// a host watching OUT hot-swaps it. Installs the wasm32-wasip2 toolchain
    /// first if it is missing.
    Build {
        /// A plugin crate or workspace (default: the repository's plugins/).
        path: Option<PathBuf>,
        /// Where the components go (default: PATH).
        #[arg(long)]
        out: Option<PathBuf>,
        /// The repository root; found from the current directory by default.
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Run a plugin crate's tests twice: natively, then compiled to
    /// wasm32-wasip2 inside the real plugin sandbox.
    Test {
        /// A plugin crate or workspace (default: the repository's plugins/).
        path: Option<PathBuf>,
        #[arg(long)]
        root: Option<PathBuf>,
    },
    /// Describe a component without running it: its size and sha256, the
    /// plugin world and WIT version it implements, what it imports (and
    /// whether the host grants it) and what it exports.
    Inspect { path: PathBuf },
    /// Run a wasm32-wasip2 test binary inside the plugin sandbox, with the
    /// host's `log` import. This is the cargo runner of plugins/, so
    /// `cargo test --target wasm32-wasip2` there needs no wasmtime CLI.
    #[command(hide = true)]
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
    if !matches!(cli.command, Command::Serve { .. }) {
        // Logs only: nothing here exports traces.
        let _logs = crate::telemetry::init(&LogConfig::default(), &OtelConfig::default())?;
    }
    match cli.command {
        Command::Serve { config: file, listen } => {
            let mut config = Config::load_with_env(file.as_deref(), std::env::vars())?;
            if let Some(listen) = listen {
                config.listen = listen;
            }
            // Dropped after the runtime, so the last spans are flushed.
            let _telemetry = crate::telemetry::init(&config.log, &config.otel)?;
            for name in crate::config::unknown_env_keys(std::env::vars()) {
                tracing::warn!("{name} sets no config key (see switchyard.example.toml)");
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
        Command::Plugin(PluginCommand::Build { path, out, root }) => {
            let root = repo_root(root)?;
            let workspace = path.unwrap_or_else(|| root.join("plugins"));
            let out = out.unwrap_or_else(|| workspace.clone());
            let status = std::process::Command::new("bash")
                .arg(root.join("scripts/build-plugins.sh"))
                .arg("--workspace")
                .arg(&workspace)
                .arg("--out")
                .arg(&out)
                .status()?;
            Ok(if status.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Plugin(PluginCommand::Test { path, root }) => {
            let root = repo_root(root)?;
            test_plugins(&root, &path.unwrap_or_else(|| root.join("plugins")))
        }
        Command::Plugin(PluginCommand::New { name, kind, dir, sdk }) => {
            let sdk = match sdk {
                Some(sdk) => sdk,
                None => repo_root(None)?.join("sdk-guest"),
            };
            let crate_dir = scaffold::new_plugin(&name, kind, &dir, &sdk)?;
            print_next_steps(&crate_dir);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin(PluginCommand::Inspect { path }) => inspect(&path),
        Command::Relayer(RelayerCommand::Keys(command)) => {
            keys::run(command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { config: file, strict }) => {
            let config = Config::load_with_env(file.as_deref(), std::env::vars())?;
            let unknown = crate::config::unknown_env_keys(std::env::vars());
            for name in &unknown {
                eprintln!("warning: {name} sets no config key (see switchyard.example.toml)");
            }
            if strict && !unknown.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
            print_summary(file.as_deref(), &config);
            Ok(ExitCode::SUCCESS)
        }
        Command::Health { url, timeout_ms } => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            Ok(runtime.block_on(probe(&url, Duration::from_millis(timeout_ms))))
        }
        Command::Openapi => print_openapi(),
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

/// The repository (the folder with scripts/build-plugins.sh): `given`, or
/// the first above the current directory, or above this executable.
fn repo_root(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(root) = given {
        return Ok(root);
    }
    let exe = std::env::current_exe().ok();
    [std::env::current_dir().ok(), exe]
        .into_iter()
        .flatten()
        .find_map(|start| find_root(&start))
        .ok_or_else(|| anyhow::anyhow!("no Switchyard repository (scripts/build-plugins.sh) found; pass --root"))
}

/// The plugin tests natively, then inside the sandbox: this executable is
/// the wasm32-wasip2 runner.
fn test_plugins(root: &Path, workspace: &Path) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let toolchain =
        std::process::Command::new("bash").arg(root.join("scripts/wasm-toolchain.sh")).arg("--print-env").output()?;
    if !toolchain.status.success() {
        anyhow::bail!("no wasm32-wasip2 toolchain: run scripts/wasm-toolchain.sh");
    }
    let wasm_toolchain = String::from_utf8_lossy(&toolchain.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("WASM_RUST_TOOLCHAIN=").map(|v| v.trim_matches(['"', '\'']).to_string()))
        .filter(|name| !name.is_empty());
    let runs: [(&str, Vec<String>); 2] = [
        ("native", vec!["test".into()]),
        (
            "wasm32-wasip2, in the sandbox",
            wasm_toolchain
                .iter()
                .map(|t| format!("+{t}"))
                .chain(["test".into(), "--target".into(), "wasm32-wasip2".into()])
                .collect(),
        ),
    ];
    for (step, (what, args)) in runs.iter().enumerate() {
        eprintln!("==> [{}/{}] plugin tests, {what}", step + 1, runs.len());
        let status = std::process::Command::new("cargo")
            .args(args)
            .current_dir(workspace)
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("CARGO_TARGET_DIR")
            .env("CARGO_TARGET_WASM32_WASIP2_RUNNER", format!("{} plugin test-runner", exe.display()))
            .status()?;
        if !status.success() {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
fn print_next_steps(crate_dir: &Path) {
    println!("created {}", crate_dir.display());
    println!("  switchyard plugin test {}    # its tests, native and in the sandbox", crate_dir.display());
    println!("  switchyard plugin build {}   # the component, as <name>.wasm", crate_dir.display());
}

#[allow(clippy::print_stdout)]
fn inspect(path: &Path) -> anyhow::Result<ExitCode> {
    let engine = EngineSettings { max_instances: 1, ..EngineSettings::default() };
    match plugins::inspect_file(path, engine)? {
        Ok(found) => {
            println!("file:      {}", path.display());
            println!("size:      {} bytes", found.size);
            println!("sha256:    {}", found.sha256);
            match &found.plugin {
                Some((kind, version)) => println!("world:     switchyard:plugin/{kind}-plugin@{version}"),
                None => println!("world:     none (exports no switchyard:plugin interface)"),
            }
            for (import, refusal) in &found.imports {
                match refusal {
                    None => println!("import:    {import}"),
                    Some(why) => println!("import:    {import}  (refused: {why})"),
                }
            }
            for export in &found.exports {
                println!("export:    {export}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(reason) => {
            eprintln!("cannot inspect {}: {reason}", path.display());
            Ok(ExitCode::FAILURE)
        }
    }
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
    let pending = store.pending_migrations().await?;
    println!("  {} to apply{}", pending.len(), if pending.is_empty() { "" } else { ":" });
    for migration in &pending {
        println!("    {migration}");
    }
    for migration in store.migrate().await? {
        println!("  applied {migration}");
    }
    store.check_migrated().await?;
    println!("the {name} schema is up to date");
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_openapi() -> anyhow::Result<ExitCode> {
    println!("{}", crate::api::openapi().to_pretty_json()?);
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::print_stdout)]
fn print_summary(file: Option<&Path>, config: &Config) {
    let shown = |url: &Option<String>, unset: &str| url.as_deref().map_or(unset.to_string(), redact_url);
    println!("config:    {} is valid", file.map_or("the defaults".into(), |f| f.display().to_string()));
    println!("listen:    {}", config.listen);
    println!("database:  {}", shown(&config.database_url, "embedded (SQLite in data_dir)"));
    println!("queue:     {}", redact_url(&config.queue_url));
    println!("redis:     {}", shown(&config.redis_url, "none (in-process health cache)"));
    let chain = config.rpc_url.as_deref().map_or("a local dev chain (anvil)".into(), crate::config::redact_endpoint);
    println!("chain:     {chain} (+{} fallback)", config.rpc_fallback_urls.len());
    println!("relayers:  {}", config.relayers.len());
    for kind in crate::plugins::PluginKind::ALL {
        let slot = config.plugins.slot(kind).map_or("built-in default".into(), |s| s.file.display().to_string());
        println!("{:<10} {slot}", format!("{kind}:"));
    }
}

async fn probe(url: &str, timeout: Duration) -> ExitCode {
    let client = match reqwest::Client::builder().timeout(timeout).build() {
        Ok(client) => client,
        Err(error) => {
            eprintln!("unhealthy: {error}");
            return ExitCode::FAILURE;
        }
    };
    match client.get(url).send().await {
        Ok(answer) if answer.status().is_success() => ExitCode::SUCCESS,
        Ok(answer) => {
            eprintln!("unhealthy: {url} answered {}", answer.status());
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("unhealthy: {url}: {error}");
            ExitCode::FAILURE
        }
    }
}
