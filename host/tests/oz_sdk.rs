//! OpenZeppelin Relayer compatibility: the official `@openzeppelin/relayer-sdk`
//! from npm, unmodified, sends a transaction through Switchyard and reads it
//! back confirmed (host/tests/oz_sdk/relay.cjs), against the real server on
//! a real chain.

mod support;

use std::process::Command;

use alloy_primitives::{Address, Signature};
use serde_json::Value;
use support::relay::{API_KEY, Anvil, STANDARD_PLUGINS, Server, recipient, skip, write_config};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_oz_sdk_relays_and_reads_back_a_confirmed_transaction() {
    let sdk = support::repo_root().join("tools/npm/node_modules/@openzeppelin/relayer-sdk");
    if !sdk.is_dir() || Command::new("node").arg("--version").output().is_err() {
        return skip("node or @openzeppelin/relayer-sdk is missing (scripts/npm-tools.sh installs the SDK)");
    }
    let Some(anvil) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, env) = write_config(dir.path(), &anvil, 1, 8, STANDARD_PLUGINS);
    let server = Server::start(&config, &env);

    let script = support::repo_root().join("host/tests/oz_sdk/relay.cjs");
    let url = server.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .env("NODE_PATH", support::repo_root().join("tools/npm/node_modules"))
            .env("SWITCHYARD_URL", url)
            .env("SWITCHYARD_API_KEY", API_KEY)
            .env("RECIPIENT", recipient(0))
            .output()
            .expect("run node")
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the SDK script failed: {stderr}");
    let seen: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));

    assert_eq!(seen["health"], "OK");
    let relayer = &seen["relayer"];
    assert_eq!(relayer["id"], "relayer-1");
    let address: Address = relayer["address"].as_str().unwrap().parse().unwrap();
    assert_eq!(seen["sent"]["status"], "pending");

    let tx = &seen["tx"];
    assert_eq!(tx["status"], "confirmed", "{tx}");
    assert_eq!(tx["value"], "0x1");
    assert_eq!(tx["nonce"], 0);
    assert_eq!(tx["gas_limit"], 21000);
    assert_eq!(tx["from"].as_str().unwrap().parse::<Address>().unwrap(), address);
    assert!(tx["hash"].as_str().unwrap().starts_with("0x"), "{tx}");
    assert!(tx["confirmed_at"].is_string() && tx["sent_at"].is_string(), "{tx}");
    assert!(tx["max_fee_per_gas"].as_str().unwrap().parse::<u128>().is_ok(), "fees are decimal strings: {tx}");
    assert_eq!(anvil.balance(&recipient(0)).await, 1, "the chain saw it");

    assert_eq!(seen["page"]["pagination"]["total_items"], 1);
    assert_eq!(seen["page"]["data"][0]["id"], tx["id"]);
    assert_eq!(seen["byNonce"]["id"], tx["id"]);

    let status = &seen["status"];
    assert_eq!(status["network_type"], "evm");
    assert_eq!(status["nonce"], "1");
    assert_eq!(status["pending_transactions_count"], 0);
    assert!(status["last_confirmed_transaction_timestamp"].is_string(), "{status}");
    assert_eq!(seen["balance"]["unit"], "wei");
    assert!(seen["balance"]["balance"].as_f64().unwrap() > 0.0);

    let sig = hex::decode(seen["signed"]["sig"].as_str().unwrap()).unwrap();
    let signature = Signature::try_from(sig.as_slice()).unwrap();
    assert_eq!(signature.recover_address_from_msg("hello from the OZ SDK").unwrap(), address);
    assert!(server.stop().success());
}
