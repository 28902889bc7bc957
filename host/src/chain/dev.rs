//! The local dev chain `serve` starts when no RPC URL is configured: anvil
//! (from npm, `@foundry-rs/anvil-linux-amd64`), on a free loopback port,
//! keeping its state in the data directory across restarts.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the project's npm tools install anvil, relative to the repository.
const NPM_ANVIL: &str = "tools/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil";

#[derive(Debug, thiserror::Error)]
pub enum DevChainError {
    #[error(
        "no RPC URL is configured and anvil was not found (looked at $SWITCHYARD_ANVIL, {NPM_ANVIL} above the \
         current directory, and PATH); run scripts/serve.sh, or `npm ci --prefix tools/npm`, or set SWITCHYARD_RPC_URL"
    )]
    NotFound,
    #[error("starting anvil ({path}): {source}")]
    Spawn { path: PathBuf, source: std::io::Error },
    #[error("anvil did not become ready: {0}")]
    NotReady(String),
}

/// A running anvil; `stop` lets it write its state, dropping kills it.
#[derive(Debug)]
pub struct DevChain {
    pub url: String,
    /// The funded dev keys anvil printed, hex.
    pub keys: Vec<String>,
    child: Child,
}

impl DevChain {
    pub async fn start(state_dir: &Path) -> Result<Self, DevChainError> {
        let path = find_anvil().ok_or(DevChainError::NotFound)?;
        let port = free_port().map_err(|source| DevChainError::Spawn { path: path.clone(), source })?;
        let config_out = state_dir.join("anvil-accounts.json");
        let _ = std::fs::remove_file(&config_out);
        let child = Command::new(&path)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--silent"])
            .arg("--state")
            .arg(state_dir.join("anvil-state.json"))
            // Also dumped every few seconds, so a crash keeps most of it.
            .args(["--state-interval", "5"])
            .arg("--config-out")
            .arg(&config_out)
            .stdout(Stdio::null())
            // Piped, not inherited: an anvil outliving a killed host must
            // not hold the host's own stderr open.
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| DevChainError::Spawn { path: path.clone(), source })?;
        let mut child = child;
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    tracing::warn!(target: "anvil", "{line}");
                }
            });
        }
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        let keys = loop {
            if let Some(keys) = read_keys(&config_out) {
                break keys;
            }
            if Instant::now() > deadline {
                return Err(DevChainError::NotReady(format!("no accounts written to {}", config_out.display())));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        Ok(DevChain { url, keys, child })
    }
}

impl DevChain {
    /// SIGTERM, so anvil dumps its state; SIGKILL after five seconds.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status().await;
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await.is_ok() {
                return;
            }
        }
        let _ = self.child.kill().await;
    }
}

fn read_keys(config_out: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(config_out).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    let keys: Vec<String> =
        json.get("private_keys")?.as_array()?.iter().filter_map(|k| k.as_str().map(String::from)).collect();
    (!keys.is_empty()).then_some(keys)
}

fn find_anvil() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("SWITCHYARD_ANVIL") {
        return Some(PathBuf::from(path));
    }
    let cwd = std::env::current_dir().ok()?;
    let exe = std::env::current_exe().ok();
    let roots = cwd.ancestors().chain(exe.iter().flat_map(|e| e.ancestors()));
    if let Some(found) = roots.map(|dir| dir.join(NPM_ANVIL)).find(|p| p.is_file()) {
        return Some(found);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).map(|dir| dir.join("anvil")).find(|p| p.is_file())
}

/// A port free right now on loopback.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}
