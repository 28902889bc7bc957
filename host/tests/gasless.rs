//! Gasless meta-transactions on a real chain: OpenZeppelin's
//! `ERC2771Forwarder` (the artifact shipped in `@openzeppelin/contracts` on
//! npm) and an `ERC2771Context` recipient (compiled here with solc from npm)
//! deployed on anvil; a user with no ether signs a `ForwardRequest`, and the
//! real `switchyard serve` relays it.

mod support;

use std::process::Command;
use std::time::Duration;

use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolCall, SolStruct, SolValue};
use alloy_primitives::{Address, B256, U256};
use serde_json::{Value, json};
use support::relay::{Anvil, Server, write_config};

// The test's own copy of the forwarder's types: a mistake in the host's
// would not be mirrored here.
alloy::sol! {
    struct ForwardRequest {
        address from;
        address to;
        uint256 value;
        uint256 gas;
        uint256 nonce;
        uint48 deadline;
        bytes data;
    }
    function ping() external payable;
    function lastSender() external view returns (address);
    function calls() external view returns (uint256);
}

const FORWARDER_NAME: &str = "SwitchyardForwarder";

fn npm_modules() -> std::path::PathBuf {
    support::repo_root().join("tools/npm/node_modules")
}

/// Creation code of OpenZeppelin's ERC2771Forwarder, from its npm artifact.
fn forwarder_code() -> Option<Vec<u8>> {
    let artifact = npm_modules().join("@openzeppelin/contracts/build/contracts/ERC2771Forwarder.json");
    let artifact: Value = serde_json::from_str(&std::fs::read_to_string(artifact).ok()?).ok()?;
    hex::decode(artifact["bytecode"].as_str()?.trim_start_matches("0x")).ok()
}

/// Creation code of tests/contracts/Recipient.sol, compiled by solc.
fn recipient_code() -> Vec<u8> {
    let script = support::repo_root().join("host/tests/contracts/compile.js");
    let out = Command::new("node").arg(script).args(["Recipient.sol", "Recipient"]).output().expect("run node");
    assert!(out.status.success(), "solc: {}", String::from_utf8_lossy(&out.stderr));
    let compiled: Value = serde_json::from_slice(&out.stdout).unwrap();
    hex::decode(compiled["bytecode"].as_str().unwrap().trim_start_matches("0x")).unwrap()
}

/// Deploys `code` from anvil's unlocked account `from`; its address.
async fn deploy(anvil: &Anvil, from: Address, code: Vec<u8>) -> Address {
    let tx = json!({ "from": from, "data": format!("0x{}", hex::encode(code)), "gas": "0x500000" });
    let hash = anvil.rpc("eth_sendTransaction", json!([tx])).await;
    let mut receipt = Value::Null;
    for _ in 0..100 {
        receipt = anvil.rpc("eth_getTransactionReceipt", json!([hash])).await;
        if !receipt.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(receipt["status"], "0x1", "deployment failed: {receipt}");
    receipt["contractAddress"].as_str().unwrap().parse().unwrap()
}

async fn call(anvil: &Anvil, to: Address, data: Vec<u8>) -> Vec<u8> {
    let answer =
        anvil.rpc("eth_call", json!([{ "to": to, "data": format!("0x{}", hex::encode(data)) }, "latest"])).await;
    hex::decode(answer.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

struct Fixture {
    forwarder: Address,
    user: PrivateKeySigner,
}

impl Fixture {
    /// A signed request for the forwarder, as a client would send it.
    fn body(&self, signer: &PrivateKeySigner, to: Address, nonce: u64, deadline: u64) -> Value {
        let data = pingCall {}.abi_encode();
        let request = ForwardRequest {
            from: self.user.address(),
            to,
            value: U256::ZERO,
            gas: U256::from(100_000),
            nonce: U256::from(nonce),
            deadline: alloy_primitives::Uint::<48, 1>::from(deadline),
            data: data.clone().into(),
        };
        let domain = Eip712Domain::new(
            Some(FORWARDER_NAME.into()),
            Some("1".into()),
            Some(U256::from(31337)),
            Some(self.forwarder),
            None,
        );
        let signature = signer.sign_hash_sync(&request.eip712_signing_hash(&domain)).unwrap();
        json!({
            "forwarder": self.forwarder,
            "request": {
                "from": self.user.address(),
                "to": to,
                "value": 0,
                "gas": 100_000,
                "nonce": nonce,
                "deadline": deadline,
                "data": format!("0x{}", hex::encode(data)),
                "signature": format!("0x{}", hex::encode(signature.as_bytes())),
            },
            "speed": "fast",
        })
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_forward_request_is_relayed_and_the_recipient_sees_the_signer() {
    let Some(anvil) = Anvil::start() else { return };
    let Some(forwarder_code) = forwarder_code() else {
        support::relay::skip("@openzeppelin/contracts is not installed (scripts/npm-tools.sh installs it)");
        return;
    };
    let deployer: PrivateKeySigner = anvil.keys[9].parse().unwrap();
    let forwarder_code = [forwarder_code, (FORWARDER_NAME.to_string(),).abi_encode_params()].concat();
    let forwarder = deploy(&anvil, deployer.address(), forwarder_code).await;
    let recipient_code = [recipient_code(), forwarder.abi_encode()].concat();
    let recipient = deploy(&anvil, deployer.address(), recipient_code).await;
    let user = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap();
    let fixture = Fixture { forwarder, user };

    // The policy admits calls to the recipient only: the forwarder itself is
    // not on the list, so a pass proves it judged the inner call.
    let plugins = format!(
        r#"
[plugins.selector]
file = "selector_round_robin.wasm"
[plugins.policy]
file = "policy_allowlist.wasm"
[plugins.policy.config]
contracts = "{recipient}"
[plugins.fee]
file = "fee_eip1559.wasm"
"#
    );
    let dir = tempfile::tempdir().unwrap();
    let (config, mut env) = write_config(dir.path(), &anvil, 2, 2, &plugins);
    env.push(("SWITCHYARD_NETWORK__FORWARDERS".into(), forwarder.to_string()));
    let server = Server::start(&config, &env);

    let deadline = now() + 3600;
    let (status, accepted) =
        server.post("/api/v1/meta-transactions", &fixture.body(&fixture.user, recipient, 0, deadline)).await;
    assert_eq!(status, 200, "{accepted}");
    let id = accepted["data"]["id"].as_str().unwrap().to_string();
    let tx = server.wait_final(std::slice::from_ref(&id), Duration::from_secs(30)).await.remove(0);
    assert_eq!(tx["status"], "confirmed", "{tx:#}");
    assert!(
        tx["to"].as_str().unwrap().eq_ignore_ascii_case(&forwarder.to_string()),
        "execute() on the forwarder: {tx:#}"
    );
    let decisions = tx["decisions"].as_array().unwrap();
    assert!(decisions[0]["outcome"].as_str().unwrap().starts_with("ERC-2771 request from"), "{tx:#}");
    assert_eq!((decisions[1]["kind"].as_str(), decisions[1]["outcome"].as_str()), (Some("policy"), Some("allow")));

    let seen =
        lastSenderCall::abi_decode_returns(&call(&anvil, recipient, lastSenderCall {}.abi_encode()).await).unwrap();
    assert_eq!(seen, fixture.user.address(), "the recipient's _msgSender() is the signer");
    let calls = callsCall::abi_decode_returns(&call(&anvil, recipient, callsCall {}.abi_encode()).await).unwrap();
    assert_eq!(calls, U256::from(1));
    assert_eq!(anvil.balance(&fixture.user.address().to_string()).await, 0, "the signer paid nothing");

    // What the forwarder would refuse is refused before any gas is spent.
    let stranger = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x43)).unwrap();
    let cases = [
        ("a replay", fixture.body(&fixture.user, recipient, 0, deadline), 409, "nonce for the signer is 1, not 0"),
        ("another signer", fixture.body(&stranger, recipient, 1, deadline), 422, "recovers to"),
        ("a passed deadline", fixture.body(&fixture.user, recipient, 1, now() - 1), 422, "has passed"),
        ("a call the policy denies", fixture.body(&fixture.user, forwarder, 1, deadline), 403, "denied by policy"),
    ];
    for (case, body, expected, message) in cases {
        let (status, answer) = server.post("/api/v1/meta-transactions", &body).await;
        assert_eq!(status, expected, "{case}: {answer}");
        assert!(answer["error"].as_str().unwrap().contains(message), "{case}: {answer}");
    }
    let mut untrusted = fixture.body(&fixture.user, recipient, 1, deadline);
    untrusted["forwarder"] = json!(recipient);
    let (status, answer) = server.post("/api/v1/meta-transactions", &untrusted).await;
    assert_eq!(status, 422, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("is not trusted here"), "{answer}");
    let (_, stats) = server.get("/api/v1/queue/stats").await;
    assert_eq!(stats["data"]["queued"], 0, "nothing refused was queued: {stats}");
}
