//! The whole relay path on a real chain: anvil on a free loopback port and
//! the real `switchyard serve` process on the embedded default (SQLite +
//! embedded queue), with the example plugins built from plugins/.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use support::relay::{
    Anvil, EventStream, STANDARD_PLUGINS, Server, assert_exactly_once, recipient, submit, submit_in_chunks,
    watched_plugins, write_config,
};

const RELAYERS: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_transactions_through_the_pool_on_three_relayers() {
    let Some(anvil) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, env) = write_config(dir.path(), &anvil, RELAYERS, 8, STANDARD_PLUGINS);
    let server = Server::start(&config, &env);
    let (status, ready) = server.get("/api/v1/ready").await;
    assert_eq!((status, &ready["ready"]), (200, &json!(true)), "{ready}");

    let ids = submit(&server, 0..300).await;
    let txs = server.wait_final(&ids, Duration::from_secs(240)).await;
    assert_exactly_once(&anvil, &txs).await;

    // Round robin over three healthy relayers: an even split.
    let mut nonces: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for tx in &txs {
        nonces.entry(tx["relayer_id"].as_str().unwrap().to_string()).or_default().push(tx["nonce"].as_u64().unwrap());
    }
    assert_eq!(nonces.len(), RELAYERS);
    for (relayer, mut lane) in nonces {
        lane.sort_unstable();
        assert_eq!(lane, (0..100).collect::<Vec<u64>>(), "{relayer}: nonces 0..100, contiguous, each once");
    }

    // Each trail names the plugin builds that decided.
    let hash = |name: &str| support::sha256(&support::example(name));
    let expected = [
        ("policy", "policy_allowlist", hash("policy_allowlist")),
        ("selector", "selector_round_robin", hash("selector_round_robin")),
        ("fee", "fee_eip1559", hash("fee_eip1559")),
    ];
    for tx in &txs {
        let decisions = tx["decisions"].as_array().unwrap();
        for (kind, plugin, version_hash) in &expected {
            let decision = decisions.iter().find(|d| d["kind"] == *kind).unwrap_or_else(|| panic!("no {kind}: {tx}"));
            assert_eq!(decision["plugin"], *plugin, "{tx}");
            assert_eq!(decision["version_hash"], json!(version_hash), "{tx}");
            assert_eq!(decision["fallback_reason"], Value::Null, "{tx}");
        }
        let attempts = tx["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "{tx}");
        assert_eq!(attempts[0]["hash"], tx["hash"]);
        assert_eq!(attempts[0]["nonce"], tx["nonce"]);
    }

    let (_, stats) = server.get("/api/v1/queue/stats").await;
    assert_eq!(stats["data"], json!({"queued": 0, "in_flight": 0, "dead": 0}));
    assert!(server.stop().success(), "SIGTERM drains and exits 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_and_crashing_mid_run_loses_nothing_and_sends_nothing_twice() {
    let Some(anvil) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    // One worker, so that submissions outrun sending and work is left over.
    let (config, env) = write_config(dir.path(), &anvil, RELAYERS, 1, STANDARD_PLUGINS);

    // A graceful stop with work still queued: all at once, so that
    // submissions outrun the one worker.
    let server = Server::start(&config, &env);
    let mut ids = submit_in_chunks(&server, 0..100, 100, "").await;
    let (_, stats) = server.get("/api/v1/queue/stats").await;
    assert!(server.stop().success(), "SIGTERM drains and exits 0");
    eprintln!("stopped with queue {}", stats["data"]);
    assert!(stats["data"]["queued"].as_u64().unwrap() > 0, "the stop must leave work queued: {stats}");

    // A crash with work queued and in flight.
    let server = Server::start(&config, &env);
    ids.extend(submit_in_chunks(&server, 100..200, 100, "").await);
    let (_, stats) = server.get("/api/v1/queue/stats").await;
    server.kill();
    eprintln!("killed with queue {}", stats["data"]);
    assert!(stats["data"]["queued"].as_u64().unwrap() > 0, "the crash must leave work queued: {stats}");

    let server = Server::start(&config, &env);
    let txs = server.wait_final(&ids, Duration::from_secs(240)).await;
    assert_exactly_once(&anvil, &txs).await;
    for tx in &txs {
        let relayer = tx["relayer_id"].as_str().unwrap();
        let (status, by_nonce) =
            server.get(&format!("/api/v1/relayers/{relayer}/transactions/by-nonce/{}", tx["nonce"])).await;
        assert_eq!(
            (status, &by_nonce["data"]["id"]),
            (200, &tx["id"]),
            "nonce {} of {relayer} is this one",
            tx["nonce"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_rpc_url_serve_starts_its_own_dev_chain_and_keeps_its_state() {
    // The same check Anvil::start makes: skip (or fail under CI) without anvil.
    let Some(_) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("switchyard.toml");
    let plugins = support::examples().display().to_string();
    let text = format!("listen = \"127.0.0.1:0\"\n[plugins]\ndir = \"{plugins}\"\nwatch = false\n{STANDARD_PLUGINS}");
    std::fs::write(&config, text).unwrap();
    let env = [("SWITCHYARD_MASTER_KEY".to_string(), support::relay::API_KEY.to_string())];

    let server = Server::start(&config, &env);
    let (status, relayers) = server.get("/api/v1/relayers").await;
    assert_eq!((status, relayers["pagination"]["total_items"].as_u64()), (200, Some(3)), "{relayers}");
    let ids = submit(&server, 0..1).await;
    let tx = &server.wait_final(&ids, Duration::from_secs(60)).await[0];
    assert_eq!(tx["status"], "confirmed", "{tx}");
    let relayer = tx["relayer_id"].as_str().unwrap().to_string();
    assert!(server.stop().success());

    // The chain's state is in the data directory: after a restart the
    // relayer's nonce has moved on and the transaction is still there.
    let server = Server::start(&config, &env);
    let (_, status) = server.get(&format!("/api/v1/relayers/{relayer}/status")).await;
    assert_eq!(status["data"]["nonce"], "1", "{status}");
    let (_, again) = server.get(&format!("/api/v1/transactions/{}", ids[0])).await;
    assert_eq!(again["data"]["hash"], tx["hash"]);
    assert!(server.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_transaction_is_replaced_at_its_nonce_and_the_replacement_is_mined() {
    let Some(anvil) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, env) = write_config(dir.path(), &anvil, 1, 8, STANDARD_PLUGINS);
    let server = Server::start(&config, &env);
    // Blocks only when the test mines one: the first send waits in the mempool.
    anvil.rpc("evm_setAutomine", json!([false])).await;

    let path = "/api/v1/relayers/relayer-1/transactions";
    let (status, sent) = server.post(path, &json!({ "to": recipient(0), "value": 1 })).await;
    assert_eq!(status, 200, "{sent}");
    let id = sent["data"]["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let first = loop {
        let (_, got) = server.get(&format!("/api/v1/transactions/{id}")).await;
        if got["data"]["status"] == "submitted" {
            break got["data"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "never submitted: {got}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    let replacement = json!({ "to": recipient(1), "value": 2, "data": "0x12" });
    let (status, answer) = server.put(&format!("{path}/{id}"), &replacement).await;
    assert_eq!(status, 200, "{answer}");
    let replaced = &answer["data"];
    assert_eq!((replaced["status"].as_str(), replaced["nonce"].as_u64()), (Some("submitted"), first["nonce"].as_u64()));
    assert_ne!(replaced["hash"], first["hash"]);

    anvil.rpc("evm_mine", json!([])).await;
    let tx = &server.wait_final(std::slice::from_ref(&id), Duration::from_secs(30)).await[0];
    assert_eq!(tx["status"], "confirmed", "{tx}");
    assert_eq!(tx["to"].as_str().unwrap().to_lowercase(), recipient(1));
    assert_eq!((tx["value"].as_str(), tx["data"].as_str()), (Some("0x2"), Some("0x12")));
    assert_eq!(anvil.balance(&recipient(1)).await, 2, "the replacement was mined");
    assert_eq!(anvil.balance(&recipient(0)).await, 0, "the original was not");
    assert_eq!(anvil.nonce(tx["from"].as_str().unwrap()).await, 1, "one transaction at that nonce");

    let attempts = tx["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{tx}");
    assert_eq!(tx["hash"], attempts[1]["hash"]);
    let fee = |i: usize| attempts[i]["max_fee_per_gas"].as_str().unwrap().parse::<u128>().unwrap();
    assert!(fee(1) * 100 >= fee(0) * 110, "the replacement bumps the max fee by 10% or more: {attempts:?}");
    let kinds: Vec<&str> = tx["decisions"].as_array().unwrap().iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["policy", "selector", "fee", "send", "policy", "fee", "replace", "watcher"], "{tx}");

    let (status, late) = server.put(&format!("{path}/{id}"), &json!({ "to": recipient(2), "value": 3 })).await;
    assert_eq!(status, 409, "{late}");
    assert!(late["error"].as_str().unwrap().contains("can no longer be replaced"), "{late}");
    let (status, late) = server.delete(&format!("{path}/{id}")).await;
    assert_eq!(status, 409, "{late}");
}

/// A key limited to one relayer: the selector is offered only that one, so
/// every pool transaction the key submits is sent by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_transactions_of_a_key_limited_to_one_relayer_are_sent_by_it() {
    let Some(anvil) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, env) = write_config(dir.path(), &anvil, RELAYERS, 2, STANDARD_PLUGINS);
    let server = Server::start(&config, &env);
    let body = json!({"name": "limited", "scopes": ["submit"], "relayers": ["relayer-2"]});
    let (status, created) = server.post("/api/v1/api-keys", &body).await;
    assert_eq!(status, 201, "{created}");
    let (key_id, key) = (created["data"]["id"].clone(), created["data"]["secret"].as_str().unwrap().to_string());

    let mut ids = Vec::new();
    for i in 0..6 {
        let answer = support::relay::client()
            .post(format!("{}/api/v1/transactions", server.url))
            .bearer_auth(&key)
            .json(&json!({"to": recipient(i), "value": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
        ids.push(answer.json::<Value>().await.unwrap()["data"]["id"].as_str().unwrap().to_string());
    }
    let txs = server.wait_final(&ids, Duration::from_secs(60)).await;
    for tx in &txs {
        assert_eq!((&tx["status"], &tx["relayer_id"]), (&json!("confirmed"), &json!("relayer-2")), "{tx}");
    }
    assert_exactly_once(&anvil, &txs).await;
    // Round robin would have spread them; the key's id is on each.
    let (_, stored) = server.get(&format!("/api/v1/transactions/{}", ids[0])).await;
    assert_eq!(stored["data"]["api_key_id"], key_id, "{stored}");
    assert!(server.stop().success());
}

/// `network.max_in_flight` on a chain that mines every second: with three
/// slots, no block holds more than three of the relayer's transactions,
/// though all twelve are queued at once for eight workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayer_never_has_more_than_max_in_flight_unmined() {
    let Some(anvil) = Anvil::start_with(&["--block-time", "1"]) else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, mut env) = write_config(dir.path(), &anvil, 1, 8, STANDARD_PLUGINS);
    env.push(("SWITCHYARD_NETWORK__MAX_IN_FLIGHT".into(), "3".into()));
    let server = Server::start(&config, &env);
    let ids = submit(&server, 0..12).await;
    let txs = server.wait_final(&ids, Duration::from_secs(120)).await;
    assert_exactly_once(&anvil, &txs).await;
    let mut per_block: BTreeMap<u64, usize> = BTreeMap::new();
    for tx in &txs {
        assert_eq!(tx["status"], "confirmed", "{tx}");
        *per_block.entry(tx["block_number"].as_u64().unwrap()).or_default() += 1;
    }
    assert!(per_block.values().all(|&n| n <= 3), "blocks and how many each holds: {per_block:?}");
    let (_, stats) = server.get("/api/v1/queue/stats").await;
    assert_eq!(stats["data"], json!({"queued": 0, "in_flight": 0, "dead": 0}), "none dead-lettered");
    assert!(server.stop().success());
}

/// The event stream over a real socket: a transaction's statuses in order
/// up to confirmed, then a plugin swapped and a plugin file refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_follows_a_transaction_to_confirmed_and_tells_plugin_swaps() {
    let Some(anvil) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (plugins, watching) = watched_plugins(dir.path());
    let (config, mut env) = write_config(dir.path(), &anvil, 1, 1, STANDARD_PLUGINS);
    env.extend(watching);
    let server = Server::start(&config, &env);
    let mut stream = EventStream::open(&server, "?type=transaction.status").await;
    let ids = submit(&server, 0..1).await;
    let mut statuses = Vec::new();
    while statuses.last() != Some(&json!("confirmed")) {
        let event = stream.next().await;
        assert_eq!(event["transaction_id"], json!(ids[0]), "{event}");
        statuses.push(event["status"].clone());
    }
    assert_eq!(statuses.first(), Some(&json!("pending")), "{statuses:?}");
    assert!(statuses.contains(&json!("sent")), "{statuses:?}");
    let order = |s: &Value| ["pending", "sent", "submitted", "mined", "confirmed"].iter().position(|x| s == x);
    assert!(statuses.windows(2).all(|w| order(&w[0]) < order(&w[1])), "in order: {statuses:?}");

    let mut plugins_stream = EventStream::open(&server, "?type=plugin.swapped,plugin.rejected").await;
    std::fs::write(plugins.join("selector_round_robin.wasm"), support::example("selector_least_pending")).unwrap();
    let swapped = plugins_stream.next().await;
    assert_eq!(swapped["type"], "plugin.swapped", "{swapped}");
    assert!(swapped["detail"].as_str().unwrap().starts_with("selector: "), "{swapped}");
    std::fs::write(plugins.join("fee_eip1559.wasm"), b"not a component").unwrap();
    let rejected = plugins_stream.next().await;
    assert_eq!(rejected["type"], "plugin.rejected", "{rejected}");
    assert!(rejected["detail"].as_str().unwrap().contains("fee_eip1559.wasm"), "{rejected}");
    assert!(server.stop().success());
}
