//! The load proof behind BENCHMARKS.md: a release `switchyard serve` relaying
//! to anvil, loaded from another process on loopback.
//!
//! - `accept`: API accept throughput and p50/p99 latency (wrk) on the
//!   embedded default and on PostgreSQL + RabbitMQ, while the workers relay
//!   the backlog; every answered 200 is checked against the store's count.
//! - `api-only`: the same on an API-only replica (`queue.workers = 0`):
//!   what the accept path alone takes, with nothing relayed.
//! - `confirmed`: end-to-end confirmed transactions per second with 1, 3 and
//!   10 relayers, first of plain transfers, then of calls (a byte of
//!   calldata each), then the books checked (each paid once, each nonce once).
//! - `swap`: the selector swapped back and forth under accept load and
//!   relaying; how long each swap takes to serve, and what the load saw.
//!
//! Run: `scripts/bench-load.sh [accept|api-only|confirmed|swap]...` (installs wrk,
//! then `cargo bench -p switchyard --bench load -- <parts>`). Settings:
//! `SWITCHYARD_LOAD_SECONDS` (each wrk run, default 10),
//! `SWITCHYARD_LOAD_TRANSACTIONS` (each confirmed run, default 6000) and
//! `SWITCHYARD_LOAD_BLOCK_TIME` (anvil's seconds per block, default 1; 0
//! mines each transaction as it arrives, which stalls after a burst: a block
//! holds at most 1 428 transfers, and what is left waits for the next
//! arrival).
//!
//! It prints Markdown tables (copied to BENCHMARKS.md).
#![allow(clippy::print_stdout)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use support::brokers::{amqp_url, fresh_amqp_name};
use support::databases::{Server as Database, fresh_url};
use support::relay::{
    API_KEY, Anvil, STANDARD_PLUGINS, Server, assert_books_balance, series, series_values, submit_in_chunks,
    watched_plugins, write_config,
};
use switchyard::queue::RetryPolicy;

const WORKERS: usize = 8;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// anvil's seconds per block; 0 mines each transaction as it arrives.
fn block_time() -> u64 {
    setting("SWITCHYARD_LOAD_BLOCK_TIME", 1)
}

/// How anvil mines in this run, for the tables' headings.
fn mining() -> String {
    match block_time() {
        0 => "anvil mining on arrival".into(),
        seconds => format!("anvil mining every {seconds} s"),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; the rest are the parts to run.
    let parts: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    if Command::new("wrk").arg("--version").output().is_err() {
        eprintln!("wrk is not installed: scripts/bench-load.sh installs it (apt-get install wrk)");
        std::process::exit(2);
    }
    let seconds = setting("SWITCHYARD_LOAD_SECONDS", 10);
    for (part, workers) in [("accept", WORKERS), ("api-only", 0)] {
        if wanted(part) {
            accept(Backend::Embedded, workers, seconds).await;
            accept(Backend::PostgresRabbitMq, workers, seconds).await;
        }
    }
    if wanted("confirmed") {
        let transactions = setting("SWITCHYARD_LOAD_TRANSACTIONS", 6000) as usize;
        println!(
            "\n## Confirmed transactions per second ({transactions} transactions, {} workers, {})\n",
            4 * WORKERS,
            mining()
        );
        println!(
            "| transactions | relayers | accepted in | all confirmed in | confirmed tx/s |\n|---|---|---|---|---|"
        );
        // Transfers are estimated against the latest block; a byte of
        // calldata makes each a call, estimated against `network.estimate_block`.
        for (kind, data) in [("transfers", ""), ("calls", "0x01")] {
            for relayers in [1, 3, 10] {
                confirmed(kind, data, relayers, transactions).await;
            }
        }
    }
    if wanted("swap") {
        swap(seconds.max(10)).await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Embedded,
    PostgresRabbitMq,
}

impl Backend {
    /// The environment that points `serve` at the backend; `None` when a
    /// service is unreachable (the reason is printed).
    async fn env(self) -> Option<Vec<(String, String)>> {
        match self {
            Backend::Embedded => Some(Vec::new()),
            Backend::PostgresRabbitMq => {
                let database = fresh_url(Database::Postgres).await?;
                let queue = fresh_amqp_name("load", &RetryPolicy::default()).await?;
                Some(
                    [
                        ("DATABASE_URL", database),
                        ("DATABASE__MIGRATE", "true".into()),
                        ("QUEUE_URL", amqp_url()),
                        ("QUEUE__NAME", queue),
                    ]
                    .map(|(key, value)| (format!("SWITCHYARD_{key}"), value))
                    .into(),
                )
            }
        }
    }
}

/// A fresh chain and a fresh `serve` with `relayers` relayers.
async fn relay(
    dir: &Path,
    backend: Backend,
    relayers: usize,
    workers: usize,
    extra: &[(String, String)],
) -> Option<(Anvil, Server)> {
    let anvil = match block_time() {
        0 => Anvil::start()?,
        seconds => Anvil::start_with(&["--block-time", &seconds.to_string()])?,
    };
    let (config, mut env) = write_config(dir, &anvil, relayers, workers, STANDARD_PLUGINS);
    // The tests poll the chain every 100 ms; the load runs at the default.
    env.push(("SWITCHYARD_NETWORK__POLL_INTERVAL_MS".into(), "500".into()));
    env.extend(backend.env().await?);
    env.extend(extra.iter().cloned());
    let server = Server::start(&config, &env);
    Some((anvil, server))
}

async fn accept(backend: Backend, workers: usize, seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let Some((_anvil, server)) = relay(dir.path(), backend, 3, workers, &[]).await else { return };
    let script = post_script(dir.path());
    // Warm-up: connections, the plugins' instance pool, the page cache.
    wrk(&server.url, &script, 32, 3);
    let relaying = match workers {
        0 => "API only: queue.workers = 0, nothing relayed".to_string(),
        workers => format!("3 relayers, {workers} workers relaying, {}", mining()),
    };
    println!("\n## API accept, {backend:?} ({seconds} s per row, wrk -t1, {relaying})\n");
    println!("| connections | requests/s | p50 | p99 | max | failed | stored/answered 200 |");
    println!("|---|---|---|---|---|---|---|");
    for connections in [8, 32, 64, 128] {
        let before = settled(&server).await;
        let run = wrk(&server.url, &script, connections, seconds);
        let after = settled(&server).await;
        let answered = run.requests.saturating_sub(run.failed);
        // Requests in flight when wrk stopped may still have been stored.
        assert!(
            (answered..=answered + connections as u64).contains(&(after - before)),
            "{answered} answered 200 but the store holds {} more",
            after - before
        );
        println!(
            "| {connections} | {:.0} | {:?} | {:?} | {:?} | {} | {}/{answered} |",
            run.rate,
            run.p50,
            run.p99,
            run.max,
            run.failed,
            after - before
        );
    }
    server.stop();
}

/// A wrk script that submits one transaction per request.
fn post_script(dir: &Path) -> std::path::PathBuf {
    let body = json!({ "to": support::relay::recipient(1), "value": 1, "speed": "fast" });
    let script = format!(
        "wrk.method = \"POST\"\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Authorization\"] = \"Bearer {API_KEY}\"\nwrk.body = '{body}'\n"
    );
    let path = dir.join("submit.lua");
    std::fs::write(&path, script).unwrap();
    path
}

/// What one wrk run measured.
#[derive(Debug)]
struct WrkRun {
    requests: u64,
    /// Answers other than 2xx/3xx, and socket errors.
    failed: u64,
    rate: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn wrk(url: &str, script: &Path, connections: usize, seconds: u64) -> WrkRun {
    let output = Command::new("wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "--timeout", "10s", "-s"])
        .arg(script)
        .arg(format!("{url}/api/v1/transactions"))
        .output()
        .expect("run wrk");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {text}{}", String::from_utf8_lossy(&output.stderr));
    parse_wrk(&text).unwrap_or_else(|| panic!("cannot read wrk's report:\n{text}"))
}

fn parse_wrk(text: &str) -> Option<WrkRun> {
    let words = |prefix: &str| {
        text.lines().map(str::trim).find(|l| l.starts_with(prefix)).map(|l| l.split_whitespace().collect::<Vec<_>>())
    };
    let duration = |s: &str| -> Option<Duration> {
        let split = s.find(|c: char| c.is_ascii_alphabetic())?;
        let (value, unit) = (s[..split].parse::<f64>().ok()?, &s[split..]);
        let seconds = match unit {
            "us" => value / 1e6,
            "ms" => value / 1e3,
            "s" => value,
            "m" => value * 60.0,
            _ => return None,
        };
        Some(Duration::from_secs_f64(seconds))
    };
    let requests = text.lines().find(|l| l.contains(" requests in "))?.split_whitespace().next()?.parse().ok()?;
    let socket_errors: u64 = words("Socket errors:")
        .map_or(0, |w| w.iter().filter_map(|word| word.trim_end_matches(',').parse::<u64>().ok()).sum());
    let non_2xx: u64 = words("Non-2xx or 3xx responses:").map_or(Some(0), |w| w.last()?.parse().ok())?;
    Some(WrkRun {
        requests,
        failed: non_2xx + socket_errors,
        rate: words("Requests/sec:")?.get(1)?.parse().ok()?,
        p50: duration(words("50%")?.get(1)?)?,
        p99: duration(words("99%")?.get(1)?)?,
        max: duration(words("Latency")?.get(3)?)?,
    })
}

/// `switchyard_transactions` summed over `statuses` in a scrape of
/// `/metrics` (each scrape counts the store).
fn census(metrics: &str, statuses: &[&str]) -> u64 {
    let count = |status: &str| series(metrics, "switchyard_transactions", &[("status", status)]).unwrap_or(0.0);
    statuses.iter().map(|status| count(status)).sum::<f64>() as u64
}

/// Every transaction the store holds.
async fn stored(server: &Server) -> u64 {
    let metrics = server.metrics().await;
    series_values(&metrics, "switchyard_transactions", &[]).sum::<f64>() as u64
}

/// [`stored`], once requests wrk left in flight have landed: the count held
/// still for 200 ms.
async fn settled(server: &Server) -> u64 {
    let mut last = stored(server).await;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = stored(server).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

async fn confirmed(kind: &str, data: &str, relayers: usize, transactions: usize) {
    let dir = tempfile::tempdir().unwrap();
    let Some((anvil, server)) = relay(dir.path(), Backend::Embedded, relayers, 4 * WORKERS, &[]).await else {
        return;
    };
    let start = Instant::now();
    let ids = submit_in_chunks(&server, 0..transactions, 64, data).await;
    let accepted_in = start.elapsed();
    loop {
        // One scrape for both counts: with two, the last confirmations could
        // land between them and look like transactions gone missing.
        let metrics = server.metrics().await;
        if census(&metrics, &["confirmed"]) >= transactions as u64 {
            break;
        }
        let unfinished = census(&metrics, &["pending", "sent", "submitted", "mined"]);
        assert!(
            unfinished > 0 || start.elapsed() < Duration::from_secs(1),
            "nothing is left to confirm, yet not all confirmed:\n{metrics}"
        );
        assert!(start.elapsed() < Duration::from_secs(900), "not all confirmed within 15 minutes");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = start.elapsed();
    let rate = transactions as f64 / elapsed.as_secs_f64();
    println!("| {kind} | {relayers} | {accepted_in:.1?} | {elapsed:.1?} | {rate:.0} |");
    let attempted: Vec<usize> = (0..transactions).collect();
    assert_books_balance(&anvil, &server, relayers, &ids, &attempted).await;
    server.stop();
}

/// The selector's file swapped between two plugins every second while wrk
/// submits and the workers select for the backlog.
async fn swap(seconds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (plugins, watching) = watched_plugins(dir.path());
    let Some((_anvil, server)) = relay(dir.path(), Backend::Embedded, 3, WORKERS, &watching).await else { return };
    let script = post_script(dir.path());
    wrk(&server.url, &script, 32, 3);
    let failures_before = plugin_failures(&server).await;
    let (url, wrk_script) = (server.url.clone(), script.clone());
    let load = std::thread::spawn(move || wrk(&url, &wrk_script, 32, seconds));
    let mut serving = active_selector(&server).await;
    let mut took = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(seconds) - Duration::from_secs(2);
    for file in ["selector_least_pending", "selector_round_robin"].iter().cycle() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if Instant::now() > deadline {
            break;
        }
        let written = Instant::now();
        std::fs::write(plugins.join("selector_round_robin.wasm"), support::example(file)).unwrap();
        loop {
            let now = active_selector(&server).await;
            if now != serving {
                serving = now;
                break;
            }
            assert!(written.elapsed() < Duration::from_secs(10), "{file} did not serve within 10 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        took.push(written.elapsed());
    }
    let run = load.join().unwrap();
    let failures = plugin_failures(&server).await - failures_before;
    took.sort();
    println!("\n## Hot swap under load ({seconds} s of wrk -t1 -c32, {WORKERS} workers relaying)\n");
    println!("| swaps | write → serving p50 | max | requests/s | p99 | failed | plugin failures |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {} | {:.1?} | {:.1?} | {:.0} | {:?} | {} | {failures} |",
        took.len(),
        took[took.len() / 2],
        took[took.len() - 1],
        run.rate,
        run.p99,
        run.failed
    );
    assert_eq!(run.failed, 0, "requests failed during the swaps");
    server.stop();
}

/// The serving selector's version hash.
async fn active_selector(server: &Server) -> String {
    let (status, body) = server.get("/api/v1/plugins").await;
    assert_eq!(status, 200, "{body}");
    let selector = body["data"].as_array().unwrap().iter().find(|p| p["kind"] == "selector").cloned();
    selector.and_then(|s| s["version_hash"].as_str().map(String::from)).unwrap_or_default()
}

/// Plugin calls that failed or fell back to the built-in default.
async fn plugin_failures(server: &Server) -> u64 {
    let metrics = server.metrics().await;
    let names = ["switchyard_plugin_failures_total", "switchyard_plugin_fallbacks_total"];
    names.iter().flat_map(|name| series_values(&metrics, name, &[])).sum::<f64>() as u64
}
