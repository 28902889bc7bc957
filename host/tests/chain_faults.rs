//! What happens when the chain misbehaves, on a real chain: anvil with
//! automine off (blocks mined on demand), transactions dropped from its
//! mempool, its base fee moved, blocks reorganized away, its RPC cut; and
//! the real `switchyard serve` process on the embedded default.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::brokers::Proxy;
use support::relay::{Anvil, STANDARD_PLUGINS, Server, recipient, write_config};

/// A server on `anvil` with `relayers` relayers, one worker, and `env` on
/// top of the test config.
fn start(anvil: &Anvil, relayers: usize, env: &[(&str, &str)]) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let (config, mut vars) = write_config(dir.path(), anvil, relayers, 1, STANDARD_PLUGINS);
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let server = Server::start(&config, &vars);
    (dir, server)
}

async fn send(server: &Server, body: Value) -> String {
    let (status, answer) = server.post("/api/v1/transactions", &body).await;
    assert_eq!(status, 200, "{answer}");
    answer["data"]["id"].as_str().unwrap().to_string()
}

/// Polls the transaction until `done` holds; panics with it after `timeout`.
async fn wait_until(server: &Server, id: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, body) = server.get(&format!("/api/v1/transactions/{id}")).await;
        assert_eq!(status, 200, "{body}");
        if done(&body["data"]) {
            return body["data"].clone();
        }
        assert!(Instant::now() < deadline, "not reached after {timeout:?}: {:#}", body["data"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls the relayer's status until its health is `state`.
async fn relayer_reaches(server: &Server, id: &str, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = server.get(&format!("/api/v1/relayers/{id}/status")).await.1["data"].clone();
        if status["health"] == state {
            return status;
        }
        assert!(Instant::now() < deadline, "never {state}: {status:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Mines a block at a time until the transaction is confirmed.
async fn mine_until_confirmed(anvil: &Anvil, server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        mine(anvil, 1).await;
        let tx = server.get(&format!("/api/v1/transactions/{id}")).await.1["data"].clone();
        if tx["status"] == "confirmed" {
            return tx;
        }
        assert!(Instant::now() < deadline, "never confirmed: {tx:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |tx| tx["status"] == status
}

/// The trail's lines of `kind`.
fn trail<'a>(tx: &'a Value, kind: &str) -> Vec<&'a str> {
    let decisions = tx["decisions"].as_array().unwrap();
    decisions.iter().filter(|d| d["kind"] == kind).map(|d| d["outcome"].as_str().unwrap()).collect()
}

fn attempts(tx: &Value) -> &Vec<Value> {
    tx["attempts"].as_array().unwrap()
}

async fn mine(anvil: &Anvil, blocks: u64) {
    anvil.rpc("anvil_mine", json!([format!("0x{blocks:x}")])).await;
}

async fn automine_off(anvil: &Anvil) {
    anvil.rpc("evm_setAutomine", json!([false])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_transaction_is_sent_again_with_bumped_fees_and_mined() {
    let Some(anvil) = Anvil::start() else { return };
    automine_off(&anvil).await;
    let (_dir, server) = start(&anvil, 1, &[("SWITCHYARD_NETWORK__RESUBMIT_AFTER_MS", "1000")]);
    let id = send(&server, json!({ "to": recipient(0), "value": 1 })).await;

    let stuck = wait_until(&server, &id, Duration::from_secs(20), |tx| attempts(tx).len() >= 2).await;
    let first = &attempts(&stuck)[0];
    let second = &attempts(&stuck)[1];
    assert_eq!((second["nonce"].clone(), second["purpose"].clone()), (first["nonce"].clone(), json!("send")));
    let fee = |a: &Value, field: &str| a[field].as_str().unwrap().parse::<u128>().unwrap();
    for field in ["max_fee_per_gas", "max_priority_fee_per_gas"] {
        assert!(fee(second, field) * 10 >= fee(first, field) * 11, "bumped by at least 10%: {stuck:#}");
    }
    assert!(trail(&stuck, "resubmit").iter().any(|t| t.contains("not mined after")), "{stuck:#}");

    mine(&anvil, 1).await;
    let mined = wait_until(&server, &id, Duration::from_secs(20), status_is("confirmed")).await;
    assert_ne!(mined["hash"], first["hash"], "a replacement is what was mined: {mined:#}");
    assert_eq!(anvil.balance(&recipient(0)).await, 1, "paid once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_the_node_dropped_is_sent_again() {
    let Some(anvil) = Anvil::start() else { return };
    automine_off(&anvil).await;
    let (_dir, server) = start(&anvil, 1, &[]);
    let id = send(&server, json!({ "to": recipient(0), "value": 1 })).await;
    let submitted = wait_until(&server, &id, Duration::from_secs(20), status_is("submitted")).await;
    let hash = submitted["hash"].as_str().unwrap();
    anvil.rpc("anvil_dropTransaction", json!([hash])).await;
    assert_eq!(anvil.rpc("eth_getTransactionByHash", json!([hash])).await, Value::Null, "dropped");

    let resent = wait_until(&server, &id, Duration::from_secs(20), |tx| !trail(tx, "resend").is_empty()).await;
    assert!(trail(&resent, "resend")[0].contains("dropped"), "{resent:#}");
    assert_ne!(anvil.rpc("eth_getTransactionByHash", json!([hash])).await, Value::Null, "in the mempool again");
    mine(&anvil, 1).await;
    let mined = wait_until(&server, &id, Duration::from_secs(20), status_is("confirmed")).await;
    assert_eq!((mined["hash"].as_str(), attempts(&mined).len()), (Some(hash), 1), "the same bytes: {mined:#}");
    assert_eq!(anvil.balance(&recipient(0)).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_the_node_refused_is_filled_so_later_ones_are_mined() {
    let Some(anvil) = Anvil::start() else { return };
    let (_dir, server) = start(&anvil, 1, &[]);
    // More gas than a block holds: the node refuses it after it took nonce 0.
    let refused = send(&server, json!({ "to": recipient(0), "value": 1, "gas_limit": 100_000_000 })).await;
    let later = send(&server, json!({ "to": recipient(1), "value": 1 })).await;

    let refused = wait_until(&server, &refused, Duration::from_secs(20), status_is("failed")).await;
    assert!(refused["status_reason"].as_str().unwrap().contains("refused"), "{refused:#}");
    let later = wait_until(&server, &later, Duration::from_secs(30), status_is("confirmed")).await;
    assert_eq!(later["nonce"], 1, "{later:#}");
    let refused = server.get(&format!("/api/v1/transactions/{}", refused["id"].as_str().unwrap())).await.1;
    let refused = &refused["data"];
    assert!(trail(refused, "nonce").iter().any(|t| t.contains("never used on chain")), "{refused:#}");

    // The filler: a no-op at nonce 0, from the relayer to itself.
    let (_, filler) = server.get("/api/v1/relayers/relayer-1/transactions/by-nonce/0").await;
    let filler = &filler["data"];
    assert_eq!((filler["status"].as_str(), filler["to"].as_str()), (Some("confirmed"), filler["from"].as_str()));
    assert_eq!(filler["value"], json!("0x0"), "{filler:#}");
    let from = later["from"].as_str().unwrap();
    assert_eq!(anvil.nonce(from).await, 2, "nonce 0 (the filler) and 1 mined");
    assert_eq!((anvil.balance(&recipient(0)).await, anvil.balance(&recipient(1)).await), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bump_the_cap_forbids_leaves_it_pending_until_the_base_fee_falls() {
    let Some(anvil) = Anvil::start() else { return };
    automine_off(&anvil).await;
    let cap = 2_000_000_000u64; // 2 gwei: the first attempt is priced at the cap
    let env = [("SWITCHYARD_NETWORK__RESUBMIT_AFTER_MS", "500"), ("SWITCHYARD_NETWORK__MAX_FEE_CAP", "2000000000")];
    let (_dir, server) = start(&anvil, 1, &env);
    let id = send(&server, json!({ "to": recipient(0), "value": 1 })).await;
    let reason_is_cannot_bump = |tx: &Value| tx["status_reason"].as_str().is_some_and(|r| r.starts_with("cannot bump"));
    let stuck = wait_until(&server, &id, Duration::from_secs(20), reason_is_cannot_bump).await;
    assert_eq!((stuck["status"].as_str(), attempts(&stuck).len()), (Some("submitted"), 1), "{stuck:#}");
    assert_eq!(attempts(&stuck)[0]["max_fee_per_gas"], json!(cap.to_string()));

    // The base fee jumps above its max fee: a block passes without it.
    anvil.rpc("anvil_setNextBlockBaseFeePerGas", json!([format!("0x{:x}", 5 * cap)])).await;
    mine(&anvil, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let waiting = server.get(&format!("/api/v1/transactions/{id}")).await.1;
    assert_eq!(waiting["data"]["status"], "submitted", "{waiting:#}");
    assert_eq!(attempts(&waiting["data"]).len(), 1, "no resubmission loop: {waiting:#}");
    assert_eq!(trail(&waiting["data"], "resubmit").len(), 1, "the trail says it once: {waiting:#}");

    // Empty blocks bring the base fee down 12.5% each: it is mined.
    let mined = mine_until_confirmed(&anvil, &server, &id).await;
    assert_eq!((attempts(&mined).len(), mined["status_reason"].clone()), (1, Value::Null), "{mined:#}");
    assert_eq!(anvil.balance(&recipient(0)).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_transaction_is_replaced_by_a_no_op_and_marked_expired() {
    let Some(anvil) = Anvil::start() else { return };
    automine_off(&anvil).await;
    let (_dir, server) = start(&anvil, 1, &[]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let until = chrono::DateTime::from_timestamp(i64::try_from(now).unwrap() + 3, 0).unwrap();
    let body = json!({ "to": recipient(0), "value": 1, "valid_until": until.to_rfc3339() });
    let id = send(&server, body).await;
    let replaced = wait_until(&server, &id, Duration::from_secs(20), |tx| attempts(tx).len() == 2).await;
    let noop = &attempts(&replaced)[1];
    assert_eq!((noop["purpose"].as_str(), noop["nonce"].clone()), (Some("expire"), replaced["nonce"].clone()));
    assert!(replaced["status_reason"].as_str().is_some_and(|r| r.starts_with("expiring")), "{replaced:#}");

    mine(&anvil, 1).await;
    let expired = wait_until(&server, &id, Duration::from_secs(20), status_is("expired")).await;
    assert_eq!(expired["hash"], noop["hash"], "{expired:#}");
    assert_eq!(anvil.balance(&recipient(0)).await, 0, "the original never ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_sent_transaction_replaces_it_by_a_no_op() {
    let Some(anvil) = Anvil::start() else { return };
    automine_off(&anvil).await;
    let (_dir, server) = start(&anvil, 1, &[]);
    let id = send(&server, json!({ "to": recipient(0), "value": 1 })).await;
    wait_until(&server, &id, Duration::from_secs(20), status_is("submitted")).await;

    let (status, canceling) = server.delete(&format!("/api/v1/transactions/{id}")).await;
    assert_eq!(status, 200, "{canceling}");
    let canceling = &canceling["data"];
    assert_eq!(canceling["status"], "submitted");
    assert_eq!(attempts(canceling).last().unwrap()["purpose"], "cancel", "{canceling:#}");
    // Asking again changes nothing.
    let (status, again) = server.delete(&format!("/api/v1/transactions/{id}")).await;
    assert_eq!((status, attempts(&again["data"]).len()), (200, 2), "{again}");

    mine(&anvil, 1).await;
    let canceled = wait_until(&server, &id, Duration::from_secs(20), status_is("canceled")).await;
    let to = canceled["to"].as_str().unwrap();
    assert!(to.eq_ignore_ascii_case(&recipient(0)), "the client's request is kept: {canceled:#}");
    assert_eq!(anvil.balance(&recipient(0)).await, 0, "the original never ran");
    let (status, late) = server.delete(&format!("/api/v1/transactions/{id}")).await;
    assert_eq!(status, 409, "{late}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transactions_wait_while_the_rpc_is_down_and_complete_when_it_is_back() {
    let Some(anvil) = Anvil::start() else { return };
    let target = anvil.url.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(target).await;
    let dir = tempfile::tempdir().unwrap();
    let (config, mut env) = write_config(dir.path(), &anvil, 2, 2, STANDARD_PLUGINS);
    env.push(("SWITCHYARD_RPC_URL".into(), format!("http://{}", proxy.addr)));
    env.push(("SWITCHYARD_NETWORK__RPC_TIMEOUT_MS".into(), "1000".into()));
    let server = Server::start(&config, &env);
    let first = send(&server, json!({ "to": recipient(0), "value": 1 })).await;
    wait_until(&server, &first, Duration::from_secs(20), status_is("confirmed")).await;

    proxy.cut();
    let mut ids = Vec::new();
    for i in 1..4 {
        ids.push(send(&server, json!({ "to": recipient(i), "value": 1 })).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for id in &ids {
        let (_, tx) = server.get(&format!("/api/v1/transactions/{id}")).await;
        assert_eq!(tx["data"]["status"], "pending", "waits, does not fail: {tx}");
    }
    let (status, ready) = server.get("/api/v1/ready").await;
    assert_eq!((status, &ready["components"]["chain"]["status"]), (503, &json!("unhealthy")), "{ready}");
    let (_, relayer) = server.get("/api/v1/relayers/relayer-1/status").await;
    assert_eq!(relayer["data"]["health"], "disabled", "{relayer}");
    assert!(relayer["data"]["health_reasons"][0].as_str().unwrap().starts_with("check failed"), "{relayer}");

    proxy.restore().await;
    let txs = server.wait_final(&ids, Duration::from_secs(60)).await;
    for (i, tx) in txs.iter().enumerate() {
        assert_eq!(tx["status"], "confirmed", "{tx}");
        assert_eq!(anvil.balance(&recipient(i + 1)).await, 1, "paid once: {tx}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_rpc_url_fails_over_to_the_next() {
    let Some(anvil) = Anvil::start() else { return };
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let env = [("SWITCHYARD_RPC_URL", format!("http://{dead}")), ("SWITCHYARD_RPC_FALLBACK_URLS", anvil.url.clone())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (_dir, server) = start(&anvil, 1, &env);
    let ids = vec![
        send(&server, json!({ "to": recipient(0), "value": 1 })).await,
        send(&server, json!({ "to": recipient(1), "value": 1 })).await,
    ];
    let txs = server.wait_final(&ids, Duration::from_secs(30)).await;
    assert!(txs.iter().all(|tx| tx["status"] == "confirmed"), "{txs:#?}");
    let (_, ready) = server.get("/api/v1/ready").await;
    assert_eq!(ready["components"]["chain"]["endpoint"], json!(anvil.url), "{ready}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_the_watcher_resumes_from_its_checkpoint() {
    let Some(anvil) = Anvil::start() else { return };
    automine_off(&anvil).await;
    let env = [("SWITCHYARD_NETWORK__CONFIRMATIONS", "2")];
    let dir = tempfile::tempdir().unwrap();
    let (config, mut vars) = write_config(dir.path(), &anvil, 2, 1, STANDARD_PLUGINS);
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let server = Server::start(&config, &vars);
    let ids = vec![
        send(&server, json!({ "to": recipient(0), "value": 1 })).await,
        send(&server, json!({ "to": recipient(1), "value": 1 })).await,
    ];
    for id in &ids {
        wait_until(&server, id, Duration::from_secs(20), status_is("submitted")).await;
    }
    mine(&anvil, 1).await;
    for id in &ids {
        wait_until(&server, id, Duration::from_secs(20), status_is("mined")).await;
    }
    let checkpoint = |ready: &Value| ready["components"]["chain"]["checkpoint"].as_u64();
    let (_, ready) = server.get("/api/v1/ready").await;
    let before = checkpoint(&ready).expect("a checkpoint");
    assert!(server.stop().success());

    // Blocks pass while it is down.
    mine(&anvil, 3).await;
    let server = Server::start(&config, &vars);
    let txs = server.wait_final(&ids, Duration::from_secs(30)).await;
    let (_, ready) = server.get("/api/v1/ready").await;
    assert_eq!(checkpoint(&ready), Some(before + 3), "{ready}");
    assert_eq!(ready["components"]["chain"]["blocks_scanned"], 3, "only the blocks past the checkpoint: {ready}");
    for tx in &txs {
        assert_eq!(tx["status"], "confirmed", "{tx}");
        let watcher = trail(tx, "watcher");
        assert_eq!(watcher.len(), 2, "mined once, confirmed once: {watcher:?}");
        assert!(watcher[0].starts_with(&format!("mined in block {before}")), "{watcher:?}");
        assert!(watcher[1].starts_with(&format!("confirmed in block {before}")), "{watcher:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_moves_a_mined_transaction_back_to_submitted() {
    let Some(anvil) = Anvil::start() else { return };
    automine_off(&anvil).await;
    let (_dir, server) = start(&anvil, 1, &[("SWITCHYARD_NETWORK__CONFIRMATIONS", "3")]);
    let id = send(&server, json!({ "to": recipient(0), "value": 1 })).await;
    wait_until(&server, &id, Duration::from_secs(20), status_is("submitted")).await;
    let snapshot = anvil.rpc("evm_snapshot", json!([])).await;
    mine(&anvil, 1).await;
    let mined = wait_until(&server, &id, Duration::from_secs(20), status_is("mined")).await;

    // The block that held it is replaced (shallower than 3 confirmations).
    anvil.rpc("evm_revert", json!([snapshot])).await;
    let back = wait_until(&server, &id, Duration::from_secs(20), status_is("submitted")).await;
    assert!(trail(&back, "watcher").iter().any(|t| t.contains("reorganized away")), "{back:#}");
    assert_eq!((back["block_number"].clone(), back["block_hash"].clone()), (Value::Null, Value::Null));
    assert!(mined["block_number"].is_u64(), "{mined:#}");

    // Mined again (resent if the node forgot it), then confirmed.
    let confirmed = mine_until_confirmed(&anvil, &server, &id).await;
    assert_ne!(confirmed["block_hash"], mined["block_hash"], "{confirmed:#}");
    assert_eq!(anvil.balance(&recipient(0)).await, 1, "paid once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayer_below_the_minimum_balance_is_disabled_until_funded() {
    let Some(anvil) = Anvil::start() else { return };
    let (_dir, server) = start(&anvil, 2, &[("SWITCHYARD_CACHE__TTL_MS", "200")]);
    let (_, poor) = server.get("/api/v1/relayers/relayer-2").await;
    let poor_address = poor["data"]["address"].as_str().unwrap().to_string();
    anvil.rpc("anvil_setBalance", json!([poor_address, "0x1000"])).await;

    let disabled = relayer_reaches(&server, "relayer-2", "disabled").await;
    assert_eq!((disabled["system_disabled"].clone(), disabled["low_balance"].clone()), (json!(true), json!(true)));
    let reasons = disabled["health_reasons"].to_string();
    assert!(reasons.contains("below the minimum 1000000000000000 wei"), "{disabled:#}");
    let (_, listed) = server.get("/api/v1/relayers/relayer-2").await;
    assert!(listed["data"]["disabled_reason"].as_str().unwrap().contains("below the minimum"), "{listed}");
    let metrics = server.metrics().await;
    for series in [
        r#"switchyard_relayer_low_balance{relayer="relayer-2"} 1"#,
        r#"switchyard_relayer_state{relayer="relayer-2",state="disabled"} 1"#,
        r#"switchyard_relayer_state{relayer="relayer-1",state="healthy"} 1"#,
    ] {
        assert!(metrics.contains(series), "{series} in:\n{metrics}");
    }

    // Not offered: everything goes through relayer-1.
    let mut ids = Vec::new();
    for i in 0..4 {
        ids.push(send(&server, json!({ "to": recipient(i), "value": 1 })).await);
    }
    for tx in server.wait_final(&ids, Duration::from_secs(30)).await {
        assert_eq!((tx["status"].as_str(), tx["relayer_id"].as_str()), (Some("confirmed"), Some("relayer-1")), "{tx}");
    }

    // Funded again: back by itself, and offered.
    anvil.rpc("anvil_setBalance", json!([poor_address, "0x8ac7230489e80000"])).await;
    let healthy = relayer_reaches(&server, "relayer-2", "healthy").await;
    assert_eq!((healthy["low_balance"].clone(), healthy["system_disabled"].clone()), (json!(false), json!(false)));
    let mut ids = Vec::new();
    for i in 4..8 {
        ids.push(send(&server, json!({ "to": recipient(i), "value": 1 })).await);
    }
    let txs = server.wait_final(&ids, Duration::from_secs(30)).await;
    assert!(txs.iter().any(|tx| tx["relayer_id"] == "relayer-2"), "offered again: {txs:#?}");

    // The event log told it as it happened.
    let query = "?after=0&relayer_id=relayer-2&type=relayer.low_balance,relayer.disabled,relayer.enabled";
    let mut events = support::relay::EventStream::open(&server, query).await;
    let mut told = Vec::new();
    for _ in 0..3 {
        told.push(events.next().await);
    }
    let kinds: Vec<_> = told.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["relayer.low_balance", "relayer.disabled", "relayer.enabled"], "{told:#?}");
    assert!(told[1]["detail"].as_str().unwrap().contains("below the minimum"), "{told:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nonce_used_outside_the_relay_is_given_back_and_the_lane_resyncs() {
    let Some(anvil) = Anvil::start() else { return };
    let (_dir, server) = start(&anvil, 1, &[]);
    let (_, relayer) = server.get("/api/v1/relayers/relayer-1").await;
    let address = relayer["data"]["address"].as_str().unwrap().to_string();
    // Someone else sends with the relayer's key (anvil's keys are unlocked):
    // nonce 0, which the lane still thinks is free, is used.
    anvil.rpc("eth_sendTransaction", json!([{ "from": address, "to": recipient(9), "value": "0x1" }])).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while anvil.nonce(&address).await < 1 {
        assert!(Instant::now() < deadline, "the outside transaction was never mined");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let id = send(&server, json!({ "to": recipient(0), "value": 1 })).await;
    let tx = wait_until(&server, &id, Duration::from_secs(30), status_is("confirmed")).await;
    assert_eq!(tx["nonce"], 1, "a new nonce after the lane resynced: {tx:#}");
    assert!(trail(&tx, "nonce").iter().any(|t| t.contains("nonce too low")), "{tx:#}");
    assert_eq!(attempts(&tx).len(), 1, "the refused attempt is gone with its nonce: {tx:#}");
    assert_eq!((anvil.nonce(&address).await, anvil.balance(&recipient(0)).await), (2, 1));
}

/// `network.estimate_block`: against the pending state an estimate sees
/// what the sender's unmined transactions did; against the latest block it
/// does not.
#[tokio::test]
async fn only_a_pending_estimate_sees_what_unmined_transactions_did() {
    use alloy_primitives::{Address, U256};
    use switchyard::chain::{Chain, EstimateBlock};
    use switchyard::plugins::{Speed, TxRequest};

    let Some(anvil) = Anvil::start() else { return };
    anvil.rpc("evm_setAutomine", json!([false])).await;
    let from: Address = anvil.rpc("eth_accounts", json!([])).await[1].as_str().unwrap().parse().unwrap();
    let nonce = anvil.nonce(&from.to_string()).await;
    // Unmined: deploys a contract whose every call reverts (PUSH1 0 PUSH1 0
    // REVERT, returned by its init code).
    let deploy = json!({"from": from, "data": "0x6460006000fd6000526005601bf3", "gas": "0x100000"});
    anvil.rpc("eth_sendTransaction", json!([deploy])).await;

    let chain = Chain::connect(std::slice::from_ref(&anvil.url), Duration::from_secs(5), Some(31337)).await.unwrap();
    let request = TxRequest {
        id: "estimate".into(),
        chain_id: 31337,
        to: Some(from.create(nonce)),
        value: U256::ZERO,
        data: vec![1],
        gas_limit: None,
        speed: Speed::Fast,
        api_key_id: "key".into(),
        hints: vec![],
    };
    let pending = chain.estimate_gas(from, &request, EstimateBlock::Pending).await;
    assert!(pending.is_err(), "the pending state holds the contract, which reverts: {pending:?}");
    let latest = chain.estimate_gas(from, &request, EstimateBlock::Latest).await;
    assert!(latest.is_ok(), "the latest block has no code there yet: {latest:?}");
}
