//! Faults under load, each against a real `switchyard serve` relaying to
//! anvil while a steady load submits: the host killed with SIGKILL, the
//! database restarted, a hostile plugin swapped in. After each, the books
//! balance: every accepted transaction confirmed, no nonce used twice or
//! skipped, nothing paid twice. (The broker's outage under load is in
//! replicas_e2e, with two replicas on PostgreSQL and RabbitMQ.)

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::databases::OwnPostgres;
use support::relay::{
    Anvil, EventStream, Load, Outcome, STANDARD_PLUGINS, Server, accepted, assert_books_balance, attempted, relayed,
    watched_plugins, write_config,
};

const RELAYERS: usize = 3;
const WORKERS: usize = 4;

/// Sum of the relayers' on-chain nonces: how many transactions landed.
async fn landed(anvil: &Anvil, server: &Server) -> u64 {
    let (_, relayers) = server.get("/api/v1/relayers").await;
    let mut sum = 0;
    for relayer in relayers["data"].as_array().unwrap() {
        sum += anvil.nonce(relayer["address"].as_str().unwrap()).await;
    }
    sum
}

/// Waits until the queue is empty and every transaction the relayers hold
/// is final, including those whose acceptance no client heard of.
async fn settle(server: &Server) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    loop {
        let (status, stats) = server.get("/api/v1/queue/stats").await;
        if status == 200 && stats["data"]["queued"] == 0 && stats["data"]["in_flight"] == 0 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the queue did not drain: {stats}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ids: Vec<String> =
        relayed(server, RELAYERS).await.iter().map(|tx| tx["id"].as_str().unwrap().to_string()).collect();
    server.wait_final(&ids, Duration::from_secs(240)).await;
}

/// Once every accepted transaction and every other one the relay holds is
/// final, the books balance; then a graceful stop.
async fn books_balance_after(anvil: &Anvil, server: Server, outcomes: &[Outcome]) {
    let accepted = accepted(outcomes);
    server.wait_final(&accepted, Duration::from_secs(240)).await;
    settle(&server).await;
    assert_books_balance(anvil, &server, RELAYERS, &accepted, &attempted(outcomes)).await;
    assert!(server.stop().success(), "SIGTERM drains and exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_accepted_transaction_and_sends_nothing_twice() {
    let Some(anvil) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, env) = write_config(dir.path(), &anvil, RELAYERS, WORKERS, STANDARD_PLUGINS);
    let server = Server::start(&config, &env);
    let load = Load::start(&[&server.url], 0, 8, Duration::from_millis(5));
    load.until_accepted(150, Duration::from_secs(120)).await;
    // Sending is under way as well: some landed, more are queued or in flight.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while landed(&anvil, &server).await < 20 {
        assert!(tokio::time::Instant::now() < deadline, "nothing was sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.kill();
    let outcomes = load.stop().await;
    let unanswered = outcomes.iter().filter(|o| o.answer.as_ref().is_err_and(|e| e.starts_with("no answer"))).count();
    let refused: Vec<&Outcome> =
        outcomes.iter().filter(|o| o.answer.as_ref().is_err_and(|e| !e.starts_with("no answer"))).collect();
    assert!(refused.is_empty(), "the host refused requests before the kill: {refused:?}");
    eprintln!("killed with {} accepted, {unanswered} unanswered", accepted(&outcomes).len());

    books_balance_after(&anvil, Server::start(&config, &env), &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_under_load_fails_requests_cleanly_then_serves_them() {
    let Some(anvil) = Anvil::start() else { return };
    let Some(database) = OwnPostgres::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, mut env) = write_config(dir.path(), &anvil, RELAYERS, WORKERS, STANDARD_PLUGINS);
    env.push(("SWITCHYARD_DATABASE_URL".into(), database.url.clone()));
    env.push(("SWITCHYARD_DATABASE__ACQUIRE_TIMEOUT_MS".into(), "1000".into()));
    let migrated = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["migrate", "--config"])
        .arg(&config)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let server = Server::start(&config, &env);

    let load = Load::start(&[&server.url], 0, 4, Duration::from_millis(10));
    load.until_accepted(60, Duration::from_secs(120)).await;
    database.down();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, ready) = server.get("/api/v1/ready").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["components"]["database"]["status"], "unhealthy", "{ready}");
    let before_restart = load.accepted();
    database.up();
    load.until_accepted(60, Duration::from_secs(120)).await;
    let outcomes = load.stop().await;

    // While the database was down, requests were refused with a 503 that
    // says why; none went unanswered, none got another error.
    let failed: Vec<&String> = outcomes.iter().filter_map(|o| o.answer.as_ref().err()).collect();
    assert!(!failed.is_empty(), "no request met the outage");
    for failure in &failed {
        let (status, body) = failure.split_once(": ").unwrap_or((failure, ""));
        assert_eq!(status, "503", "{failure}");
        let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{failure}"));
        assert!(body["error"].as_str().is_some_and(|e| e.contains("database")), "{failure}");
    }
    eprintln!("{} requests refused during the restart; {before_restart} accepted before it", failed.len());
    let (status, ready) = server.get("/api/v1/ready").await;
    assert_eq!((status, &ready["ready"]), (200, &Value::Bool(true)), "{ready}");

    books_balance_after(&anvil, server, &outcomes).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_plugin_swapped_in_under_load_is_rejected_and_no_request_fails() {
    let Some(anvil) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (plugins, watching) = watched_plugins(dir.path());
    let (config, mut env) = write_config(dir.path(), &anvil, RELAYERS, WORKERS, STANDARD_PLUGINS);
    env.extend(watching);
    let server = Server::start(&config, &env);
    let round_robin = support::sha256(&support::example("selector_round_robin"));
    // A selector that imports sockets: it wants the network. Built before
    // the stream opens, whose client times out after 30 s.
    let hostile = support::hostile_plugin("hostile_sockets");
    let mut rejections = EventStream::open(&server, "?type=plugin.rejected").await;

    let load = Load::start(&[&server.url], 0, 4, Duration::from_millis(5));
    load.until_accepted(40, Duration::from_secs(60)).await;
    std::fs::write(plugins.join("selector_round_robin.wasm"), hostile).unwrap();
    loop {
        let event = rejections.next().await;
        let detail = event["detail"].as_str().unwrap_or_default();
        assert!(detail.starts_with("selector: "), "{event}");
        if detail.contains("wasi:sockets") {
            break;
        }
    }
    load.until_accepted(40, Duration::from_secs(60)).await;
    let outcomes = load.stop().await;

    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.answer.is_err()).collect();
    assert!(failed.is_empty(), "requests failed around the swap: {failed:?}");
    let (_, active) = server.get("/api/v1/plugins").await;
    let selector = active["data"].as_array().unwrap().iter().find(|p| p["kind"] == "selector").unwrap().clone();
    assert_eq!(selector["version_hash"], Value::from(round_robin.clone()), "round-robin keeps serving: {active}");

    let accepted = accepted(&outcomes);
    let txs = server.wait_final(&accepted, Duration::from_secs(240)).await;
    for tx in &txs {
        let decided: Vec<&Value> =
            tx["decisions"].as_array().unwrap().iter().filter(|d| d["kind"] == "selector").collect();
        assert!(
            !decided.is_empty()
                && decided.iter().all(|d| d["version_hash"] == round_robin.as_str() && d["fallback_reason"].is_null()),
            "every selection was round-robin's: {tx}"
        );
    }
    books_balance_after(&anvil, server, &outcomes).await;
}
