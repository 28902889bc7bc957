//! A real chain (anvil from npm) and a real `switchyard serve` process, for
//! the end-to-end tests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::repo_root;

pub const API_KEY: &str = "e2e-api-key-0123456789abcdef";

/// Fails under CI (the suite must run there), skips with a message elsewhere.
pub fn skip(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} (CI=true: this test must run)");
    }
    eprintln!("SKIPPED: {what}");
}

fn anvil_binary() -> Option<PathBuf> {
    let path = std::env::var_os("SWITCHYARD_ANVIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("tools/npm/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"));
    path.is_file().then_some(path)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// anvil on a free loopback port; killed when dropped.
pub struct Anvil {
    pub url: String,
    pub keys: Vec<String>,
    child: Child,
}

impl Anvil {
    /// `None` (after `skip`) when anvil is not installed: run
    /// `scripts/npm-tools.sh`.
    pub fn start() -> Option<Anvil> {
        Anvil::start_with(&[])
    }

    /// [`Anvil::start`] with more of anvil's arguments (`--block-time 1`).
    pub fn start_with(args: &[&str]) -> Option<Anvil> {
        let Some(binary) = anvil_binary() else {
            skip("anvil is not installed (scripts/npm-tools.sh installs it)");
            return None;
        };
        // The free port may be taken before anvil binds it (tests run in
        // parallel): a few tries, each on a new port.
        for _ in 0..3 {
            if let Some(anvil) = Anvil::try_start(&binary, args) {
                return Some(anvil);
            }
        }
        panic!("anvil did not start in three tries");
    }

    fn try_start(binary: &Path, args: &[&str]) -> Option<Anvil> {
        let dir = tempfile::tempdir().unwrap();
        let accounts = dir.path().join("accounts.json");
        let port = free_port();
        // Eleven keys: `write_config` gives up to ten relayers keys from the
        // second on.
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--silent", "--accounts", "11"])
            .args(args)
            .arg("--config-out")
            .arg(&accounts)
            .stdout(Stdio::null())
            .spawn()
            .expect("start anvil");
        let mut anvil = Anvil { url: format!("http://127.0.0.1:{port}"), keys: Vec::new(), child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = anvil.child.try_wait() {
                eprintln!("anvil on port {port} exited ({status}); trying another port");
                return None;
            }
            let keys = std::fs::read_to_string(&accounts)
                .ok()
                .and_then(|t| serde_json::from_str::<Value>(&t).ok())
                .and_then(|v| v["private_keys"].as_array().cloned());
            if let Some(keys) = keys
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                anvil.keys = keys.iter().map(|k| k.as_str().unwrap().to_string()).collect();
                return Some(anvil);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("anvil did not start on port {port} within 20 s; trying another port");
        None
    }

    pub async fn rpc(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let answer: Value = client().post(&self.url).json(&body).send().await.unwrap().json().await.unwrap();
        answer.get("result").cloned().unwrap_or_else(|| panic!("{method}: {answer}"))
    }

    pub async fn nonce(&self, address: &str) -> u64 {
        let hex = self.rpc("eth_getTransactionCount", json!([address, "latest"])).await;
        u64::from_str_radix(hex.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }

    /// Every mined transaction to `address`: a failed test's evidence.
    pub async fn transactions_to(&self, address: &str) -> Vec<Value> {
        let head = self.rpc("eth_blockNumber", json!([])).await;
        let head = u64::from_str_radix(head.as_str().unwrap().trim_start_matches("0x"), 16).unwrap();
        let mut found = Vec::new();
        for number in 0..=head {
            let block = self.rpc("eth_getBlockByNumber", json!([format!("0x{number:x}"), true])).await;
            for tx in block["transactions"].as_array().into_iter().flatten() {
                if tx["to"].as_str().is_some_and(|to| to.eq_ignore_ascii_case(address)) {
                    found.push(json!({"block": number, "from": tx["from"], "nonce": tx["nonce"], "hash": tx["hash"]}));
                }
            }
        }
        found
    }

    pub async fn balance(&self, address: &str) -> u128 {
        let hex = self.rpc("eth_getBalance", json!([address, "latest"])).await;
        u128::from_str_radix(hex.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// A config file for `serve` against `anvil`, with `relayers` of its dev
/// keys (from the second on; each in an environment variable), `workers`
/// queue workers and the example plugins.
pub fn write_config(
    dir: &Path,
    anvil: &Anvil,
    relayers: usize,
    workers: usize,
    plugins: &str,
) -> (PathBuf, Vec<(String, String)>) {
    let mut env = vec![("SWITCHYARD_MASTER_KEY".to_string(), API_KEY.to_string())];
    let mut text = format!(
        r#"
listen = "127.0.0.1:0"
data_dir = "{data}"
rpc_url = "{url}"
[network]
poll_interval_ms = 100
[queue]
lease_ms = 3000
base_delay_ms = 200
max_delay_ms = 2000
workers = {workers}
[http]
shutdown_grace_ms = 10000
[plugins]
dir = "{plugin_dir}"
watch = false
{plugins}
"#,
        data = dir.join("data").display(),
        url = anvil.url,
        plugin_dir = super::examples().display(),
    );
    for i in 1..=relayers {
        let var = format!("E2E_RELAYER_{i}_KEY");
        text.push_str(&format!("[[relayers]]\nid = \"relayer-{i}\"\nkey = {{ env = \"{var}\" }}\n"));
        env.push((var, anvil.keys[i].clone()));
    }
    let file = dir.join("switchyard.toml");
    std::fs::write(&file, text).unwrap();
    (file, env)
}

/// A watched plugins folder of the test's own under `dir`, holding the
/// standard plugins, so that a test can swap files in it: `serve` takes it
/// through the environment variables this returns.
pub fn watched_plugins(dir: &Path) -> (PathBuf, Vec<(String, String)>) {
    let plugins = dir.join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for name in ["selector_round_robin", "policy_allowlist", "fee_eip1559"] {
        std::fs::write(plugins.join(format!("{name}.wasm")), super::example(name)).unwrap();
    }
    let env =
        [("PLUGINS__DIR", plugins.to_str().unwrap()), ("PLUGINS__WATCH", "true"), ("PLUGINS__DEBOUNCE_MS", "100")]
            .map(|(key, value)| (format!("SWITCHYARD_{key}"), value.to_string()));
    (plugins, env.into())
}

pub const STANDARD_PLUGINS: &str = r#"
[plugins.selector]
file = "selector_round_robin.wasm"
timeout_ms = 50
[plugins.policy]
file = "policy_allowlist.wasm"
timeout_ms = 50
[plugins.policy.config]
contracts = "*"
[plugins.fee]
file = "fee_eip1559.wasm"
timeout_ms = 50
"#;

/// A running `switchyard serve`.
pub struct Server {
    pub url: String,
    /// What it printed on stdout so far.
    pub stdout: Arc<Mutex<Vec<String>>>,
    child: Child,
}

impl Server {
    pub fn start(config: &Path, env: &[(String, String)]) -> Server {
        Server::spawn(config, env, Stdio::inherit()).0
    }

    /// `start`, collecting what the server logs (stderr), line by line.
    pub fn start_logged(config: &Path, env: &[(String, String)]) -> (Server, Arc<Mutex<Vec<String>>>) {
        let (server, stderr) = Server::spawn(config, env, Stdio::piped());
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let stderr = stderr.expect("piped stderr");
        std::thread::spawn(move || {
            BufReader::new(stderr).lines().map_while(Result::ok).for_each(|line| {
                sink.lock().unwrap().push(line);
            })
        });
        (server, logs)
    }

    fn spawn(config: &Path, env: &[(String, String)], stderr: Stdio) -> (Server, Option<std::process::ChildStderr>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("serve")
            .arg("--config")
            .arg(config)
            // `env` may set its own.
            .env("RUST_LOG", "warn,switchyard=info")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start switchyard serve");
        let stderr = child.stderr.take();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let first = lines
            .next()
            .and_then(Result::ok)
            .unwrap_or_else(|| panic!("serve printed nothing; exit: {:?}", child.try_wait()));
        let url = first.rsplit(' ').next().unwrap().to_string();
        assert!(url.starts_with("http://127.0.0.1:"), "unexpected first line: {first}");
        // Keep draining stdout so the server never blocks on a full pipe.
        let printed = Arc::new(Mutex::new(vec![first]));
        let sink = printed.clone();
        std::thread::spawn(move || lines.map_while(Result::ok).for_each(|line| sink.lock().unwrap().push(line)));
        (Server { url, stdout: printed, child }, stderr)
    }

    /// A scrape of `/metrics` (open to anyone, like a Prometheus target).
    pub async fn metrics(&self) -> String {
        let answer = client().get(format!("{}/metrics", self.url)).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        answer.text().await.unwrap()
    }

    /// SIGTERM, then waits: the exit status of a graceful drain.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// Still running: not exited, not killed.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL: a crash, nothing drained.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut request = client().request(method, format!("{}{path}", self.url)).bearer_auth(API_KEY);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::DELETE, path, None).await
    }

    /// Polls until every transaction in `ids` is in a final status; returns
    /// them as the pool endpoint shows them.
    pub async fn wait_final(&self, ids: &[String], timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        let mut done: Vec<Option<Value>> = vec![None; ids.len()];
        loop {
            for (i, id) in ids.iter().enumerate() {
                if done[i].is_some() {
                    continue;
                }
                let (status, body) = self.get(&format!("/api/v1/transactions/{id}")).await;
                assert_eq!(status, 200, "{body}");
                let tx = &body["data"];
                if ["confirmed", "failed", "expired", "canceled"].contains(&tx["status"].as_str().unwrap()) {
                    done[i] = Some(tx.clone());
                }
            }
            let left = done.iter().filter(|d| d.is_none()).count();
            if left == 0 {
                return done.into_iter().map(Option::unwrap).collect();
            }
            if Instant::now() > deadline {
                let (_, stats) = self.get("/api/v1/queue/stats").await;
                panic!("{left} of {} transactions not final after {timeout:?}; queue: {stats}", ids.len());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Server {
    /// After a failed assertion: SIGTERM first, so a dev chain the server
    /// started is stopped with it.
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return; // stopped or killed already
        }
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The values of the series `name` in a scrape whose labels include every
/// `labels` pair.
pub fn series_values<'a>(
    metrics: &'a str,
    name: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = f64> + 'a {
    metrics.lines().filter(|line| !line.starts_with('#')).filter_map(move |line| {
        let (key, value) = line.rsplit_once(' ')?;
        let (metric, rest) = key.split_once('{').unwrap_or((key, ""));
        let matches = metric == name && labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        matches.then(|| value.parse().unwrap())
    })
}

/// The first of [`series_values`].
pub fn series(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    series_values(metrics, name, labels).next()
}

/// A recipient no one else pays: its balance proves how often its
/// transaction landed.
pub fn recipient(i: usize) -> String {
    format!("0x{:040x}", 0x5157_0000_0000u64 + i as u64)
}

/// Submits one transaction per recipient index through the pool endpoint,
/// 16 at a time; returns the ids in order.
pub async fn submit(server: &Server, range: std::ops::Range<usize>) -> Vec<String> {
    submit_in_chunks(server, range, 16, "").await
}

/// As [`submit`], `chunk` requests at a time: a whole range at once outruns
/// any worker. Non-empty `data` (hex) goes with each as calldata.
pub async fn submit_in_chunks(server: &Server, range: std::ops::Range<usize>, chunk: usize, data: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let indices: Vec<usize> = range.collect();
    for chunk in indices.chunks(chunk) {
        let sends = chunk.iter().map(|&i| async move {
            let mut body = json!({ "to": recipient(i), "value": 1, "speed": "fast" });
            if !data.is_empty() {
                body["data"] = json!(data);
            }
            let (status, answer) = server.post("/api/v1/transactions", &body).await;
            assert_eq!(status, 200, "{answer}");
            answer["data"]["id"].as_str().unwrap().to_string()
        });
        ids.extend(futures::future::join_all(sends).await);
    }
    ids
}

/// Every transaction landed exactly once: each paid its own recipient
/// exactly 1 wei, and the relayers' on-chain nonces add up to the count.
pub async fn assert_exactly_once(anvil: &Anvil, txs: &[Value]) {
    for (i, tx) in txs.iter().enumerate() {
        assert_eq!(tx["status"], "confirmed", "{tx}");
        let paid = anvil.balance(&recipient(i)).await;
        if paid != 1 {
            let landed = anvil.transactions_to(&recipient(i)).await;
            panic!("recipient {i} was paid {paid} times, not once: {tx}\non chain: {landed:#?}");
        }
    }
    let mut on_chain = 0;
    let addresses: std::collections::BTreeSet<&str> = txs.iter().map(|tx| tx["from"].as_str().unwrap()).collect();
    for address in addresses {
        on_chain += anvil.nonce(address).await;
    }
    assert_eq!(on_chain, txs.len() as u64, "one chain transaction per relayed transaction");
}

/// Reads Server-Sent Events off a live HTTP stream.
pub struct EventStream {
    response: reqwest::Response,
    text: String,
}

impl EventStream {
    pub async fn open(server: &Server, query: &str) -> EventStream {
        let response =
            client().get(format!("{}/api/v1/events{query}", server.url)).bearer_auth(API_KEY).send().await.unwrap();
        assert_eq!(response.status(), 200);
        EventStream { response, text: String::new() }
    }

    /// The next event's data.
    pub async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let message: String = self.text.drain(..end + 2).collect();
                if let Some(data) = message.lines().find_map(|l| l.strip_prefix("data:")) {
                    return serde_json::from_str(data.trim()).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.response.chunk())
                .await
                .expect("an event within 30 s")
                .unwrap()
                .expect("the stream stays open");
            self.text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

/// What one request of a [`Load`] got: the transaction's id when it was
/// accepted, else what went wrong (a refusal, or no answer at all).
#[derive(Debug)]
pub struct Outcome {
    pub index: usize,
    pub answer: Result<String, String>,
}

/// Steady submissions through the pool endpoint from `concurrency` tasks,
/// each pausing `pause` between requests, spread over `urls` in turn; each
/// request pays its own recipient (indices from `first` on).
pub struct Load {
    stop: Arc<std::sync::atomic::AtomicBool>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Vec<Outcome>>>,
}

impl Load {
    pub fn start(urls: &[&str], first: usize, concurrency: usize, pause: Duration) -> Load {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let accepted = Arc::new(AtomicUsize::new(0));
        let next = Arc::new(AtomicUsize::new(first));
        let urls: Arc<[String]> = urls.iter().map(|u| u.to_string()).collect();
        let tasks = (0..concurrency)
            .map(|_| {
                let (stop, accepted, next, urls) = (stop.clone(), accepted.clone(), next.clone(), urls.clone());
                tokio::spawn(async move {
                    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
                    let mut outcomes = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let url = &urls[index % urls.len()];
                        let body = json!({ "to": recipient(index), "value": 1, "speed": "fast" });
                        let sent = client
                            .post(format!("{url}/api/v1/transactions"))
                            .bearer_auth(API_KEY)
                            .json(&body)
                            .send()
                            .await;
                        let answer = match sent {
                            Err(e) => Err(format!("no answer: {e}")),
                            Ok(response) => {
                                let status = response.status().as_u16();
                                match response.json::<Value>().await {
                                    Ok(v) if status == 200 => Ok(v["data"]["id"].as_str().unwrap().to_string()),
                                    Ok(v) => Err(format!("{status}: {v}")),
                                    Err(e) => Err(format!("{status} without a JSON answer: {e}")),
                                }
                            }
                        };
                        if answer.is_ok() {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        outcomes.push(Outcome { index, answer });
                        tokio::time::sleep(pause).await;
                    }
                    outcomes
                })
            })
            .collect();
        Load { stop, accepted, tasks }
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until `n` more requests than now were accepted.
    pub async fn until_accepted(&self, n: usize, timeout: Duration) {
        let target = self.accepted() + n;
        let deadline = Instant::now() + timeout;
        while self.accepted() < target {
            assert!(Instant::now() < deadline, "the load got only {} of {target} accepted", self.accepted());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Every request's outcome, by index.
    pub async fn stop(self) -> Vec<Outcome> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut outcomes = Vec::new();
        for task in self.tasks {
            outcomes.extend(task.await.unwrap());
        }
        outcomes.sort_by_key(|o| o.index);
        outcomes
    }
}

/// The ids of the accepted requests of a [`Load`].
pub fn accepted(outcomes: &[Outcome]) -> Vec<String> {
    outcomes.iter().filter_map(|o| o.answer.clone().ok()).collect()
}

/// The recipient index of every request of a [`Load`], answered or not.
pub fn attempted(outcomes: &[Outcome]) -> Vec<usize> {
    outcomes.iter().map(|o| o.index).collect()
}

/// Every transaction the relayers `relayer-1..=relayers` hold, as their
/// (OpenZeppelin-shaped) lists show them.
pub async fn relayed(server: &Server, relayers: usize) -> Vec<Value> {
    let mut all = Vec::new();
    for i in 1..=relayers {
        for page in 1.. {
            let (status, body) =
                server.get(&format!("/api/v1/relayers/relayer-{i}/transactions?page={page}&per_page=100")).await;
            assert_eq!(status, 200, "{body}");
            let txs = body["data"].as_array().unwrap();
            all.extend(txs.iter().cloned());
            if txs.len() < 100 {
                break;
            }
        }
    }
    all
}

/// The books balance after a fault: every `accepted` transaction and every
/// other one the relay holds is confirmed; no relayer used a nonce twice or
/// skipped one (its nonces are 0..n, n its on-chain count); and each
/// recipient of `attempted` was paid exactly as often as the relay holds a
/// transaction to it: once, or never for a request that died with the host.
pub async fn assert_books_balance(
    anvil: &Anvil,
    server: &Server,
    relayers: usize,
    accepted: &[String],
    attempted: &[usize],
) {
    let txs = relayed(server, relayers).await;
    let ids: std::collections::HashSet<&str> = txs.iter().map(|tx| tx["id"].as_str().unwrap()).collect();
    let missing: Vec<&String> = accepted.iter().filter(|id| !ids.contains(id.as_str())).collect();
    assert!(missing.is_empty(), "accepted but not relayed: {missing:?}");
    let mut lanes: std::collections::BTreeMap<(String, String), Vec<u64>> = Default::default();
    let mut sent_to: std::collections::HashMap<String, u128> = Default::default();
    for tx in &txs {
        assert_eq!(tx["status"], "confirmed", "{tx}");
        let lane = (tx["relayer_id"].as_str().unwrap().to_string(), tx["from"].as_str().unwrap().to_string());
        lanes.entry(lane).or_default().push(tx["nonce"].as_u64().unwrap());
        *sent_to.entry(tx["to"].as_str().unwrap().to_lowercase()).or_default() += 1;
    }
    for ((relayer, address), mut nonces) in lanes {
        nonces.sort_unstable();
        let on_chain = anvil.nonce(&address).await;
        assert_eq!(nonces, (0..on_chain).collect::<Vec<_>>(), "{relayer}: each nonce once, none skipped");
    }
    for &i in attempted {
        let (paid, held) = (anvil.balance(&recipient(i)).await, sent_to.get(&recipient(i)).copied().unwrap_or(0));
        if paid != held || held > 1 {
            let landed = anvil.transactions_to(&recipient(i)).await;
            panic!("recipient {i} was paid {paid} times for {held} held transactions\non chain: {landed:#?}");
        }
    }
}
