//! The REST API through its router, without sockets (`tower::ServiceExt::oneshot`):
//! auth, the envelope, OpenZeppelin Relayer's encodings, and bad input of
//! every kind. Behind the router are the real store and queue (SQLite in
//! memory) and the real policy plugin; the chain is never reached here.

mod support;

use std::sync::Arc;
use std::time::Duration;

use alloy_primitives::{Address, B256, Signature, keccak256};
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use switchyard::api::{self, AppState};
use switchyard::chain::Chain;
use switchyard::config::{HttpConfig, RelayerConfig};
use switchyard::pipeline::{Relay, RelaySettings};
use switchyard::plugins::PluginKind;
use switchyard::queue::embedded::EmbeddedQueue;
use switchyard::relayers::{Relayer, RelayerPool};
use switchyard::store::PruneBefore;
use switchyard::store::sql::SqlStore;

const KEY: &str = "test-api-key-0123456789";
const ALLOWED: &str = "0x00000000000000000000000000000000000000aa";
// anvil's first two public dev keys.
const DEV_KEYS: [&str; 2] = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
];

struct Api {
    app: axum::Router,
    relay: Arc<Relay>,
    _plugins: support::TestHost,
}

async fn api() -> Api {
    let plugins = support::test_host(
        &[("policy_allowlist.wasm", support::example("policy_allowlist"))],
        vec![(PluginKind::Policy, support::slot("policy_allowlist.wasm", &[("contracts", ALLOWED)]))],
    );
    let store = SqlStore::connect("sqlite::memory:", &Default::default()).await.unwrap();
    let queue = EmbeddedQueue::new(&store, Default::default());
    let relayers = DEV_KEYS
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let config = RelayerConfig {
                id: format!("relayer-{}", i + 1),
                name: None,
                key: Default::default(),
                weight: 1,
                labels: Default::default(),
                paused: false,
            };
            Relayer::new(&config, key.parse().unwrap())
        })
        .collect();
    // Nothing listens on port 9: a handler that reached the chain would fail.
    let chain = Chain::with_chain_id(&["http://127.0.0.1:9".to_string()], Duration::from_millis(200), 31337).unwrap();
    let settings = RelaySettings {
        confirmations: 1,
        poll_interval: Duration::from_millis(100),
        gas_limit_buffer_bps: 12_000,
        estimate_block: Default::default(),
        fee_history_blocks: 4,
        max_fee_cap: alloy_primitives::U256::from(10u64.pow(12)),
        resubmit_after: Duration::from_secs(60),
        health: Default::default(),
        hold_for_room: Duration::from_secs(1),
        forwarders: Vec::new(),
    };
    let relay = Arc::new(Relay::new(
        Arc::new(store),
        Arc::new(queue),
        plugins.host.clone(),
        Arc::new(RelayerPool::new(relayers)),
        chain,
        settings,
    ));
    let http = HttpConfig { body_limit_bytes: 4096, ..HttpConfig::default() };
    Api { app: api::router(AppState::new(relay.clone(), KEY, "localhost"), &http), relay, _plugins: plugins }
}

impl Api {
    /// A key with these scopes (and relayers), created through the API.
    async fn key(&self, scopes: &[&str], relayers: Option<&[&str]>) -> String {
        let body = json!({"name": format!("{scopes:?}"), "scopes": scopes, "relayers": relayers});
        let (status, created) = self.post("/api/v1/api-keys", &body.to_string()).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        created["data"]["secret"].as_str().unwrap().to_string()
    }

    async fn call(&self, method: &str, uri: &str, body: Option<&str>, key: Option<&str>) -> (StatusCode, Value) {
        self.send(method, uri, body.map(|b| b.as_bytes().to_vec()), key).await
    }

    /// `call` with a body of any bytes.
    async fn send(&self, method: &str, uri: &str, body: Option<Vec<u8>>, key: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let body = match body {
            Some(body) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(body)
            }
            None => Body::empty(),
        };
        let response = self.app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        if response.headers().get(header::CONTENT_TYPE).is_some_and(|t| t == "text/event-stream") {
            // An endless stream: its status is the answer.
            return (status, Value::Null);
        }
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20).await.unwrap();
        let value =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call("GET", uri, None, Some(KEY)).await
    }

    async fn post(&self, uri: &str, body: &str) -> (StatusCode, Value) {
        self.call("POST", uri, Some(body), Some(KEY)).await
    }

    async fn queued(&self) -> u64 {
        self.relay.queue.stats().await.unwrap().queued
    }
}

/// A failure in the envelope, with a message containing `needle`.
fn assert_failure(answer: &(StatusCode, Value), status: StatusCode, needle: &str) {
    let (got, body) = answer;
    assert_eq!(*got, status, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["data"], Value::Null, "{body}");
    let error = body["error"].as_str().unwrap_or_else(|| panic!("no error text: {body}"));
    assert!(error.contains(needle), "`{error}` should mention `{needle}`");
}

#[tokio::test]
async fn health_is_open_and_everything_else_needs_the_key() {
    let api = api().await;
    let (status, body) = api.call("GET", "/api/v1/health", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, Value::String("OK".into())));
    assert_failure(&api.call("GET", "/api/v1/relayers", None, None).await, StatusCode::UNAUTHORIZED, "missing");
    assert_failure(
        &api.call("GET", "/api/v1/relayers", None, Some("wrong")).await,
        StatusCode::UNAUTHORIZED,
        "invalid",
    );
    assert_failure(
        &api.call("POST", "/api/v1/transactions", Some("{}"), None).await,
        StatusCode::UNAUTHORIZED,
        "missing",
    );
    assert_failure(&api.get("/api/v1/nowhere").await, StatusCode::NOT_FOUND, "no such endpoint");

    // Ready needs the chain, which is unreachable here: 503 with the reason.
    let (status, ready) = api.call("GET", "/api/v1/ready", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["ready"], false);
    assert!(ready["reason"].as_str().unwrap().contains("chain RPC unavailable"), "{ready}");
    assert!(ready["components"]["system"]["fd_count"].as_u64().unwrap() > 0, "{ready}");
    assert_eq!(ready["components"]["queue"]["status"], "healthy");
}

#[tokio::test]
async fn detailed_health_lists_every_dependency_with_its_state() {
    let api = api().await;
    assert_failure(&api.call("GET", "/api/v1/health/detailed", None, None).await, StatusCode::UNAUTHORIZED, "missing");
    let (status, body) = api.get("/api/v1/health/detailed").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let health = &body["data"];
    // The chain is unreachable here, so the whole is unhealthy.
    assert_eq!(health["status"], "unhealthy", "{health}");
    assert_eq!(health["database"]["status"], "healthy", "{health}");
    assert!(health["database"]["latency_ms"].as_f64().is_some(), "{health}");
    assert_eq!(health["queue"]["status"], "healthy", "{health}");
    assert_eq!(health["redis"]["status"], "not_configured", "{health}");
    let rpc = health["rpc"].as_array().unwrap();
    assert_eq!(rpc.len(), 1, "{health}");
    assert_eq!(
        (rpc[0]["endpoint"].as_str(), rpc[0]["status"].as_str()),
        (Some("http://127.0.0.1:9"), Some("unhealthy"))
    );
    assert_eq!(rpc[0]["active"], true);
    let relayers: Vec<&str> =
        health["relayers"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(relayers, ["relayer-1", "relayer-2"]);
    assert_eq!(health["relayers"][0]["status"], "unchecked", "{health}");
    let plugins = health["plugins"].as_array().unwrap();
    let policy = plugins.iter().find(|p| p["kind"] == "policy").unwrap();
    assert_eq!(policy["status"], "loaded");
    assert_eq!(policy["plugin"], "policy_allowlist");
    assert_eq!(policy["version_hash"], json!(support::sha256(&support::example("policy_allowlist"))));
    let selector = plugins.iter().find(|p| p["kind"] == "selector").unwrap();
    assert_eq!(selector["status"], "built_in", "{health}");
}

#[tokio::test]
async fn relayers_are_listed_with_every_key_present() {
    let api = api().await;
    let (status, body) = api.get("/api/v1/relayers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["pagination"]["total_items"], 2);
    let first = &body["data"][0];
    assert_eq!(first["id"], "relayer-1");
    assert_eq!(first["address"], "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    assert_eq!(first["network_type"], "evm");
    for key in ["name", "network", "paused", "signer_id", "system_disabled", "policies", "notification_id"] {
        assert!(first.get(key).is_some(), "missing `{key}` in {first}");
    }
    assert_failure(&api.get("/api/v1/relayers/nope").await, StatusCode::NOT_FOUND, "nope");
}

#[tokio::test]
async fn a_relayer_transaction_is_stored_queued_and_read_back_in_oz_encoding() {
    let api = api().await;
    let body = format!(r#"{{"to":"{ALLOWED}","value":1e+21,"data":"0x","gas_limit":21000,"speed":"safeLow"}}"#);
    let (status, sent) = api.post("/api/v1/relayers/relayer-1/transactions", &body).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let tx = &sent["data"];
    assert_eq!(tx["status"], "pending");
    assert_eq!(tx["value"], "0x3635c9adc5dea00000", "1e+21 wei exactly, as 0x hex");
    assert_eq!(tx["gas_limit"], 21000);
    assert_eq!(tx["speed"], "safeLow");
    assert_eq!(tx["relayer_id"], "relayer-1");
    assert_eq!(tx["from"], "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266");
    for key in
        ["hash", "nonce", "sent_at", "confirmed_at", "max_fee_per_gas", "gas_price", "signature", "status_reason"]
    {
        assert_eq!(tx[key], Value::Null, "`{key}` is present and null before sending: {tx}");
    }
    assert_eq!(api.queued().await, 1, "the outbox entry committed with the row");

    let id = tx["id"].as_str().unwrap();
    let (status, got) = api.get(&format!("/api/v1/relayers/relayer-1/transactions/{id}")).await;
    assert_eq!((status, &got["data"]["id"]), (StatusCode::OK, &json!(id)));
    assert_failure(&api.get(&format!("/api/v1/relayers/relayer-2/transactions/{id}")).await, StatusCode::NOT_FOUND, id);

    let (status, listed) = api.get("/api/v1/relayers/relayer-1/transactions/?page=1&per_page=10").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["pagination"], json!({"current_page": 1, "per_page": 10, "total_items": 1}));
    assert_eq!(listed["data"][0]["id"], json!(id));

    // The literal route wins over `{transaction_id}`.
    assert_failure(
        &api.get("/api/v1/relayers/relayer-1/transactions/by-nonce/5").await,
        StatusCode::NOT_FOUND,
        "nonce 5",
    );
}

#[tokio::test]
async fn the_pool_endpoint_shows_the_policy_decision_in_the_trail() {
    let api = api().await;
    let body = format!(r#"{{"to":"{ALLOWED}","value":"7","hints":{{"region":"eu"}}}}"#);
    let (status, sent) = api.post("/api/v1/transactions", &body).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let id = sent["data"]["id"].as_str().unwrap();
    let (_, got) = api.get(&format!("/api/v1/transactions/{id}")).await;
    let tx = &got["data"];
    assert_eq!(tx["relayer_id"], Value::Null, "the selector chooses later, in the worker");
    assert_eq!(tx["hints"], json!({"region": "eu"}));
    let policy = &tx["decisions"][0];
    assert_eq!(policy["kind"], "policy");
    assert_eq!(policy["plugin"], "policy_allowlist");
    assert_eq!(policy["version_hash"], json!(support::sha256(&support::example("policy_allowlist"))));
    assert_eq!(policy["outcome"], "allow");
    assert_eq!(tx["attempts"], json!([]));

    let (status, stats) = api.get("/api/v1/queue/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["data"], json!({"queued": 1, "in_flight": 0, "dead": 0}));
}

#[tokio::test]
async fn a_policy_denial_answers_403_with_the_reason_and_persists_nothing() {
    let api = api().await;
    let other = "0x00000000000000000000000000000000000000bb";
    let answer = api.post("/api/v1/transactions", &format!(r#"{{"to":"{other}","value":1}}"#)).await;
    assert_failure(&answer, StatusCode::FORBIDDEN, "denied by policy");
    assert!(answer.1["error"].as_str().unwrap().contains("is not on the allowlist"), "{}", answer.1);
    assert_eq!(api.queued().await, 0);
    let (_, listed) = api.get("/api/v1/relayers/relayer-1/transactions").await;
    assert_eq!(listed["pagination"]["total_items"], 0);
}

#[tokio::test]
async fn bad_input_of_every_kind_gets_a_clear_4xx_and_nothing_is_queued() {
    let api = api().await;
    let send = "/api/v1/relayers/relayer-1/transactions";
    // A valid body with `extra` fields appended.
    let with = |extra: &str| format!(r#"{{"to":"{ALLOWED}","value":1{extra}}}"#);
    let unprocessable = StatusCode::UNPROCESSABLE_ENTITY;
    let cases: Vec<(&str, String, StatusCode, &str)> = vec![
        ("malformed JSON", "{\"to\": ".into(), StatusCode::BAD_REQUEST, "JSON"),
        ("wrong type", with(r#","gas_limit":"lots""#), unprocessable, "gas_limit"),
        ("missing value", format!(r#"{{"to":"{ALLOWED}"}}"#), unprocessable, "value"),
        ("negative value", format!(r#"{{"to":"{ALLOWED}","value":-1}}"#), unprocessable, "non-negative"),
        ("fractional value", format!(r#"{{"to":"{ALLOWED}","value":1.5}}"#), unprocessable, "whole"),
        ("value overflow", format!(r#"{{"to":"{ALLOWED}","value":1e80}}"#), unprocessable, "overflows"),
        ("bad address", r#"{"to":"0x1234","value":1}"#.into(), unprocessable, "not an address"),
        ("bad data", with(r#","data":"0xzz""#), unprocessable, "not hex"),
        ("unknown field", with(r#","gass":1"#), unprocessable, "gass"),
        ("unknown speed", with(r#","speed":"ludicrous""#), unprocessable, "speed"),
        ("fixed fees", with(r#","gas_price":5"#), unprocessable, "fee plugin"),
        ("bad valid_until", with(r#","valid_until":"tomorrow""#), unprocessable, "RFC 3339"),
        (
            "oversized body",
            with(&format!(r#","data":"0x{}""#, "ab".repeat(4096))),
            StatusCode::PAYLOAD_TOO_LARGE,
            "too large",
        ),
    ];
    for (what, body, status, needle) in cases {
        let answer = api.post(send, &body).await;
        assert_eq!(answer.0, status, "{what}: {}", answer.1);
        assert_failure(&answer, status, needle);
    }
    assert_failure(&api.post("/api/v1/relayers/ghost/transactions", &with("")).await, StatusCode::NOT_FOUND, "ghost");
    let no_type = api.call("POST", send, None, Some(KEY)).await;
    assert_failure(&no_type, StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type");
    assert_failure(&api.get("/api/v1/relayers/relayer-1/transactions/?page=0").await, StatusCode::BAD_REQUEST, "page");
    assert_eq!(api.queued().await, 0, "nothing bad was accepted");
}

#[tokio::test]
async fn sign_and_sign_typed_data_recover_to_the_relayer() {
    let api = api().await;
    let address: Address = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse().unwrap();
    let recover = |data: &Value| -> Signature {
        for key in ["r", "s", "sig"] {
            assert!(!data[key].as_str().unwrap().starts_with("0x"), "{key} is hex without 0x");
        }
        assert!(matches!(data["v"].as_u64(), Some(27 | 28)), "{data}");
        let bytes = hex::decode(data["sig"].as_str().unwrap()).unwrap();
        Signature::try_from(bytes.as_slice()).unwrap()
    };
    let (status, signed) = api.post("/api/v1/relayers/relayer-1/sign", r#"{"message":"hello switchyard"}"#).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let signature = recover(&signed["data"]);
    assert_eq!(signature.recover_address_from_msg("hello switchyard").unwrap(), address);

    let (domain, message) = (B256::repeat_byte(1), B256::repeat_byte(2));
    let body = json!({ "domain_separator": domain.to_string(), "hash_struct_message": message.to_string() });
    let (status, signed) = api.post("/api/v1/relayers/relayer-1/sign-typed-data", &body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{signed}");
    let digest = keccak256([&[0x19u8, 0x01][..], domain.as_slice(), message.as_slice()].concat());
    assert_eq!(recover(&signed["data"]).recover_address_from_prehash(&digest).unwrap(), address);

    let bad = json!({ "domain_separator": "0x12", "hash_struct_message": message.to_string() });
    assert_failure(
        &api.post("/api/v1/relayers/relayer-1/sign-typed-data", &bad.to_string()).await,
        StatusCode::BAD_REQUEST,
        "domain_separator",
    );
}

#[tokio::test]
async fn replace_and_cancel_before_sending() {
    let api = api().await;
    let send = "/api/v1/relayers/relayer-1/transactions";
    let body = format!(r#"{{"to":"{ALLOWED}","value":1}}"#);
    let id_of = |answer: &(StatusCode, Value)| answer.1["data"]["id"].as_str().unwrap().to_string();
    let (first, second, third) =
        (id_of(&api.post(send, &body).await), id_of(&api.post(send, &body).await), id_of(&api.post(send, &body).await));
    assert_eq!(api.queued().await, 3);

    let replacement = format!(r#"{{"to":"{ALLOWED}","value":"0x10","speed":"fastest"}}"#);
    let (status, replaced) = api.call("PUT", &format!("{send}/{first}"), Some(&replacement), Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{replaced}");
    assert_eq!((&replaced["data"]["value"], &replaced["data"]["speed"]), (&json!("0x10"), &json!("fastest")));
    let denied = r#"{"to":"0x00000000000000000000000000000000000000bb","value":1}"#;
    let answer = api.call("PUT", &format!("{send}/{first}"), Some(denied), Some(KEY)).await;
    assert_failure(&answer, StatusCode::FORBIDDEN, "denied by policy");
    assert_eq!(
        api.get(&format!("{send}/{first}")).await.1["data"]["value"],
        "0x10",
        "a denied replacement changes nothing"
    );

    let (status, canceled) = api.call("DELETE", &format!("{send}/{first}"), None, Some(KEY)).await;
    assert_eq!((status, &canceled["data"]["status"]), (StatusCode::OK, &json!("canceled")), "{canceled}");
    assert_eq!(api.queued().await, 2, "its queue entry went with it");
    assert_failure(
        &api.call("DELETE", &format!("{send}/{first}"), None, Some(KEY)).await,
        StatusCode::CONFLICT,
        "is canceled: it can no longer be canceled",
    );

    // While a worker holds it between nonce and send: try again.
    let selector = switchyard::store::DecisionRecord {
        kind: "selector".into(),
        plugin: None,
        version_hash: None,
        outcome: "client chose relayer-1".into(),
        fallback_reason: None,
        at: 0,
    };
    api.relay.store.assign_nonce(&second, "relayer-1", &selector).await.unwrap();
    let answer = api.call("PUT", &format!("{send}/{second}"), Some(&replacement), Some(KEY)).await;
    assert_failure(&answer, StatusCode::CONFLICT, "is being sent right now");

    let (status, all) = api.call("DELETE", &format!("{send}/pending"), None, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{all}");
    assert_eq!(all["data"]["queued_for_cancellation_transaction_ids"], json!([third]));
    assert_eq!(all["data"]["failed_to_queue_transaction_ids"], json!([second]));
    assert_eq!(all["data"]["total_processed"], 2);
}

#[tokio::test]
async fn a_request_past_the_deadline_is_answered_408_in_the_envelope() {
    // A node that accepts connections and never answers: the readiness
    // check waits on it, past the API's deadline.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let base = api().await;
    let chain = Chain::with_chain_id(std::slice::from_ref(&url), Duration::from_secs(5), 31337).unwrap();
    let relay = Arc::new(Relay::new(
        base.relay.store.clone(),
        base.relay.queue.clone(),
        base.relay.plugins.clone(),
        base.relay.pool.clone(),
        chain,
        base.relay.settings.clone(),
    ));
    let http = HttpConfig { timeout_ms: 200, ..HttpConfig::default() };
    let app = api::router(AppState::new(relay, KEY, "localhost"), &http);
    let request = Request::builder().uri("/api/v1/ready").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let body: Value =
        serde_json::from_slice(&axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap()).unwrap();
    assert_eq!(body["success"], false);
    assert!(body["error"].as_str().unwrap().contains("took longer than"), "{body}");
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{relayer_id}", "relayer-1")
        .replace("{transaction_id}", "no-such-transaction")
        .replace("{key_id}", "no-such-key")
        .replace("{webhook_id}", "no-such-webhook")
        .replace("{nonce}", "7")
}

/// Every operation of the OpenAPI document is served by its handler (never
/// the fallbacks), asks for the API key exactly where the document says so,
/// and answers only statuses the document lists; on every documented path,
/// an undocumented method is refused.
#[tokio::test]
async fn every_route_in_the_openapi_document_is_served_as_documented() {
    let api = api().await;
    let document = serde_json::to_value(api::openapi()).unwrap();
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 20, "{} paths", paths.len());
    for (path, item) in paths {
        let uri = concrete(path);
        for method in ["get", "post", "put", "delete", "patch"] {
            let verb = method.to_uppercase();
            let body = matches!(method, "post" | "put").then_some("{}");
            let Some(operation) = item.get(method) else {
                let answer = api.call(&verb, &uri, body, Some(KEY)).await;
                assert_failure(&answer, StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                continue;
            };
            let secured = operation["security"].to_string().contains("bearer_auth");
            let (status, answer) = api.call(&verb, &uri, body, None).await;
            assert_eq!(status == StatusCode::UNAUTHORIZED, secured, "{verb} {path} without a key: {status} {answer}");

            let (status, answer) = api.call(&verb, &uri, body, Some(KEY)).await;
            let documented = operation["responses"].as_object().unwrap();
            assert!(documented.contains_key(status.as_str()), "{verb} {path}: {status} is not documented: {answer}");
            assert_ne!(answer["error"], "no such endpoint", "{verb} {path} fell through to the fallback");
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{verb} {path}");
        }
    }
}

/// The router has no way to serve a route the document lacks: the API's
/// modules register routes only through `routes!`, from `#[utoipa::path]`.
#[test]
fn no_route_is_registered_outside_the_openapi_document() {
    let api_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
    for entry in std::fs::read_dir(&api_dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        for undocumented in [".route(", ".route_service(", ".nest(", ".nest_service(", "axum::routing"] {
            assert!(!source.contains(undocumented), "{} registers a route with `{undocumented}`", path.display());
        }
    }
}

/// Every `$ref` names a schema the document defines, so tools that resolve
/// the document (generators, schemathesis) see all of it.
#[test]
fn every_reference_in_the_openapi_document_resolves() {
    fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    found.push(target);
                }
                map.values().for_each(|v| refs(v, found));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
            _ => {}
        }
    }
    let document = serde_json::to_value(api::openapi()).unwrap();
    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(found.len() > 50, "{} references", found.len());
    for target in found {
        let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("an external reference: {target}"));
        assert!(document.pointer(pointer).is_some(), "{target} does not resolve");
    }
}

#[tokio::test]
async fn the_openapi_document_and_swagger_ui_are_served_without_the_network() {
    let api = api().await;
    let (status, served) = api.call("GET", "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, serde_json::to_value(api::openapi()).unwrap());
    assert_eq!(served["openapi"], "3.1.0");
    assert_eq!(served["components"]["securitySchemes"]["bearer_auth"]["scheme"], "bearer");
    // OpenZeppelin Relayer's operation ids, so generated clients keep their names.
    let send = &served["paths"]["/api/v1/relayers/{relayer_id}/transactions"]["post"];
    assert_eq!(send["operationId"], "sendTransaction");
    assert!(
        send["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("/TransactionBody")
    );

    let (status, _) = api.call("GET", api::SWAGGER_UI_PATH, None, None).await;
    assert!(status.is_redirection(), "{status}");
    let (status, page) = api.call("GET", &format!("{}/", api::SWAGGER_UI_PATH), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.as_str().unwrap().contains("swagger-ui"), "{page}");
    // The assets are compiled in, and the page loads this document.
    let (status, script) =
        api.call("GET", &format!("{}/swagger-initializer.js", api::SWAGGER_UI_PATH), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(script.as_str().unwrap().contains("/api/v1/openapi.json"), "{script}");
    let (status, bundle) = api.call("GET", &format!("{}/swagger-ui-bundle.js", api::SWAGGER_UI_PATH), None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(bundle.as_str().unwrap().len() > 100_000);
}

#[tokio::test]
async fn api_keys_are_shown_once_stored_as_a_digest_listed_and_revoked() {
    let api = api().await;
    let body = json!({"name": "ci", "scopes": ["read", "submit", "read"], "relayers": ["relayer-1"]});
    let (status, created) = api.post("/api/v1/api-keys", &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let created = &created["data"];
    let (id, secret) = (created["id"].as_str().unwrap(), created["secret"].as_str().unwrap());
    assert!(secret.starts_with(&format!("sy_{id}_")) && secret.len() > 64, "{secret}");
    assert_eq!(created["scopes"], json!(["submit", "read"]), "sorted, without repeats");
    assert_eq!(created["relayers"], json!(["relayer-1"]));
    assert_eq!(created["revoked_at"], Value::Null);

    // Stored as a digest: neither the secret nor its random part is in the row.
    let (stored, digest) = api.relay.store.api_key(id).await.unwrap().unwrap();
    assert_eq!(stored.name, "ci");
    let random_part = secret.rsplit('_').next().unwrap();
    assert!(!digest.contains(random_part) && digest.len() == 64, "{digest}");

    // The key works for its scopes; the list never shows a secret.
    let (status, _) = api.call("GET", "/api/v1/relayers", None, Some(secret)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, listed) = api.get("/api/v1/api-keys").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed["data"][0]["id"], id);
    assert!(!listed.to_string().contains(random_part), "{listed}");
    // Managing keys takes admin.
    assert_failure(&api.call("GET", "/api/v1/api-keys", None, Some(secret)).await, StatusCode::FORBIDDEN, "`admin`");

    // Revoked: refused at once, and listed with the time.
    let (status, revoked) = api.call("DELETE", &format!("/api/v1/api-keys/{id}"), None, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let revoked_at = revoked["data"]["revoked_at"].clone();
    assert!(revoked_at.is_string(), "{revoked}");
    assert_failure(&api.call("GET", "/api/v1/relayers", None, Some(secret)).await, StatusCode::UNAUTHORIZED, "revoked");
    let (_, again) = api.call("DELETE", &format!("/api/v1/api-keys/{id}"), None, Some(KEY)).await;
    assert_eq!(again["data"]["revoked_at"], revoked_at, "the first revocation's time stays");
    assert_failure(
        &api.call("DELETE", "/api/v1/api-keys/0000000000000000", None, Some(KEY)).await,
        StatusCode::NOT_FOUND,
        "no API key",
    );
    // A forged key with a real id but another secret is refused.
    let forged = format!("sy_{id}_{}", "0".repeat(64));
    assert_failure(
        &api.call("GET", "/api/v1/relayers", None, Some(&forged)).await,
        StatusCode::UNAUTHORIZED,
        "invalid",
    );
}

#[tokio::test]
async fn a_new_key_is_checked_before_it_is_created() {
    let api = api().await;
    for (body, needle) in [
        (json!({"name": "x", "scopes": []}), "at least one scope"),
        (json!({"name": "x", "scopes": ["root"]}), "unknown variant `root`"),
        (json!({"name": " ", "scopes": ["read"]}), "`name`"),
        (json!({"name": "x".repeat(101), "scopes": ["read"]}), "`name`"),
        (json!({"name": "x", "scopes": ["read"], "relayers": ["relayer-9"]}), "no relayer `relayer-9`"),
        (json!({"name": "x", "scopes": ["read"], "relayers": []}), "at least one relayer"),
        (json!({"name": "x", "scopes": ["read"], "secret": "mine"}), "unknown field `secret`"),
    ] {
        assert_failure(
            &api.post("/api/v1/api-keys", &body.to_string()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needle,
        );
    }
    let (_, listed) = api.get("/api/v1/api-keys").await;
    assert_eq!(listed["data"], json!([]), "nothing was created");
}

/// Every operation behind a key answers 403 to a key without its scope and
/// lets a key with exactly that scope through.
#[tokio::test]
async fn every_operation_checks_the_scope_its_document_names() {
    let api = api().await;
    let mut keys = std::collections::HashMap::new();
    for scope in ["submit", "read", "relayers", "plugins", "admin"] {
        keys.insert(scope, api.key(&[scope], None).await);
    }
    let document = serde_json::to_value(api::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        let uri = concrete(path);
        for (method, operation) in item.as_object().unwrap() {
            let Some(scope) = operation["security"][0]["bearer_auth"][0].as_str() else { continue };
            let verb = method.to_uppercase();
            let body = matches!(method.as_str(), "post" | "put").then_some("{}");
            let other = if scope == "read" { "plugins" } else { "read" };
            let answer = api.call(&verb, &uri, body, Some(&keys[other])).await;
            assert_failure(&answer, StatusCode::FORBIDDEN, &format!("lacks the `{scope}` scope"));
            let (status, answer) = api.call(&verb, &uri, body, Some(&keys[scope])).await;
            assert!(
                status != StatusCode::UNAUTHORIZED && !answer["error"].to_string().contains("lacks the"),
                "{verb} {path} with a `{scope}` key: {status} {answer}"
            );
            let (status, answer) = api.call(&verb, &uri, body, Some(&keys["admin"])).await;
            assert!(!answer["error"].to_string().contains("lacks the"), "{verb} {path} as admin: {status} {answer}");
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} operations");
}

#[tokio::test]
async fn a_key_limited_to_relayers_uses_only_those_and_its_id_reaches_the_policy() {
    let api = api().await;
    let key = api.key(&["submit", "read"], Some(&["relayer-1"])).await;
    let body = json!({"to": ALLOWED, "value": 1}).to_string();
    let send = |relayer: &str| format!("/api/v1/relayers/{relayer}/transactions");
    assert_failure(
        &api.call("POST", &send("relayer-2"), Some(&body), Some(&key)).await,
        StatusCode::FORBIDDEN,
        "may not use relayer `relayer-2`",
    );
    assert_failure(
        &api.call("GET", "/api/v1/relayers/relayer-2", None, Some(&key)).await,
        StatusCode::FORBIDDEN,
        "relayer-2",
    );
    let (_, relayers) = api.call("GET", "/api/v1/relayers", None, Some(&key)).await;
    let listed: Vec<_> = relayers["data"].as_array().unwrap().iter().map(|r| r["id"].clone()).collect();
    assert_eq!(listed, vec![json!("relayer-1")]);

    let (status, sent) = api.call("POST", &send("relayer-1"), Some(&body), Some(&key)).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let key_id = key.split('_').nth(1).unwrap();
    let stored = api.relay.store.get(sent["data"]["id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(stored.request.api_key_id, key_id, "the policy and the trail see the key's id");

    // Another relayer's transaction is out of reach, even by its pool id.
    let (_, other) = api.post(&send("relayer-2"), &body).await;
    let other_id = other["data"]["id"].as_str().unwrap();
    assert_failure(
        &api.call("GET", &format!("/api/v1/transactions/{other_id}"), None, Some(&key)).await,
        StatusCode::FORBIDDEN,
        "relayer-2",
    );
    assert_failure(
        &api.call("DELETE", &format!("/api/v1/transactions/{other_id}"), None, Some(&key)).await,
        StatusCode::FORBIDDEN,
        "relayer-2",
    );
    assert_eq!(api.relay.keys.allowed_relayers(key_id).await.unwrap(), Some(vec!["relayer-1".to_string()]));
}

#[tokio::test]
async fn a_key_past_its_rate_limit_is_answered_429_with_retry_after() {
    let api = api().await;
    let body = json!({"name": "slow", "scopes": ["read"], "rate_limit": {"per_second": 0.5, "burst": 2}});
    let (status, created) = api.post("/api/v1/api-keys", &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["data"]["rate_limit"], json!({"per_second": 0.5, "burst": 2}));
    let slow = created["data"]["secret"].as_str().unwrap().to_string();
    let other = api.key(&["read"], None).await;

    for _ in 0..2 {
        assert_eq!(api.call("GET", "/api/v1/relayers", None, Some(&slow)).await.0, StatusCode::OK);
    }
    let request = Request::get("/api/v1/relayers").header(header::AUTHORIZATION, format!("Bearer {slow}"));
    let response = api.app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "2", "one token every 2 s");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(answer["error"].as_str().unwrap().contains("rate limit"), "{answer}");
    // Each key has its own bucket; the master key has no limit configured.
    for _ in 0..5 {
        assert_eq!(api.call("GET", "/api/v1/relayers", None, Some(&other)).await.0, StatusCode::OK);
        assert_eq!(api.get("/api/v1/relayers").await.0, StatusCode::OK);
    }
    for (rate, needle) in [
        (json!({"per_second": 0, "burst": 1}), "`rate_limit.per_second`"),
        (json!({"per_second": 1, "burst": 0}), "`rate_limit.burst`"),
        (json!({"per_second": 1}), "missing field `burst`"),
    ] {
        let body = json!({"name": "x", "scopes": ["read"], "rate_limit": rate});
        assert_failure(
            &api.post("/api/v1/api-keys", &body.to_string()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needle,
        );
    }
}

#[tokio::test]
async fn the_plugins_scope_lists_each_slots_plugin() {
    let api = api().await;
    let key = api.key(&["plugins"], None).await;
    let (status, plugins) = api.call("GET", "/api/v1/plugins", None, Some(&key)).await;
    assert_eq!(status, StatusCode::OK, "{plugins}");
    let policy = plugins["data"].as_array().unwrap().iter().find(|p| p["kind"] == "policy").unwrap().clone();
    assert_eq!((&policy["status"], &policy["plugin"]), (&json!("loaded"), &json!("policy_allowlist")), "{plugins}");
    let selector = plugins["data"].as_array().unwrap().iter().find(|p| p["kind"] == "selector").unwrap().clone();
    assert_eq!(selector["status"], "built_in", "{plugins}");
}

impl Api {
    async fn submit_with(&self, uri: &str, key: &str, idempotency: &str, body: &str) -> (StatusCode, Value) {
        let request = Request::post(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .header(header::CONTENT_TYPE, "application/json")
            .header("idempotency-key", idempotency);
        let response = self.app.clone().oneshot(request.body(Body::from(body.to_string())).unwrap()).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }
}

#[tokio::test]
async fn an_idempotency_key_replays_the_same_request_and_refuses_another() {
    let api = api().await;
    let pool = "/api/v1/transactions";
    let body = json!({"to": ALLOWED, "value": 7, "speed": "fast"}).to_string();
    let (status, first) = api.submit_with(pool, KEY, "order-1", &body).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let id = first["data"]["id"].clone();

    // The same request, spelled differently: the same transaction, once.
    let respelled = r#"{ "speed": "fast", "value": "0x7", "to": "0x00000000000000000000000000000000000000AA" }"#;
    let (status, again) = api.submit_with(pool, KEY, "order-1", respelled).await;
    assert_eq!((status, &again["data"]["id"]), (StatusCode::OK, &id), "{again}");
    assert_eq!(api.queued().await, 1, "stored and queued once");
    assert_eq!(again["data"]["decisions"], first["data"]["decisions"], "the policy did not run again");

    // Another request with the key: 409, nothing stored.
    let other = json!({"to": ALLOWED, "value": 8, "speed": "fast"}).to_string();
    assert_failure(&api.submit_with(pool, KEY, "order-1", &other).await, StatusCode::CONFLICT, "`order-1`");
    // The same body to a chosen relayer is another request.
    let send = "/api/v1/relayers/relayer-1/transactions";
    assert_failure(&api.submit_with(send, KEY, "order-1", &body).await, StatusCode::CONFLICT, "different request");
    assert_eq!(api.queued().await, 1);

    // Keys are per API key: another key's `order-1` is its own.
    let team = api.key(&["submit"], None).await;
    let (status, theirs) = api.submit_with(pool, &team, "order-1", &body).await;
    assert_eq!(status, StatusCode::OK, "{theirs}");
    assert_ne!(theirs["data"]["id"], id);
    // A fresh key on the relayer endpoint works the same way.
    let (_, sent) = api.submit_with(send, KEY, "order-2", &body).await;
    let (_, resent) = api.submit_with(send, KEY, "order-2", &body).await;
    assert_eq!(sent["data"]["id"], resent["data"]["id"]);
    assert_eq!(api.queued().await, 3);

    for bad in ["", "x".repeat(256).as_str(), "spaces inside"] {
        assert_failure(&api.submit_with(pool, KEY, bad, &body).await, StatusCode::BAD_REQUEST, "Idempotency-Key");
    }
    assert_eq!(api.queued().await, 3, "a refused key stores nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_retries_with_one_idempotency_key_store_one_transaction_and_spoil_no_other() {
    let api = api().await;
    let body = json!({"to": ALLOWED, "value": 1}).to_string();
    // Stored in groups: the retries spoil the group they land in, whose
    // other requests must still be stored, each once.
    let keys: Vec<String> = (0..24).map(|i| if i % 3 == 0 { "burst".into() } else { format!("other-{i}") }).collect();
    let answers =
        futures::future::join_all(keys.iter().map(|key| api.submit_with("/api/v1/transactions", KEY, key, &body)))
            .await;
    let mut ids = std::collections::BTreeMap::<&str, std::collections::BTreeSet<String>>::new();
    for (key, (status, answer)) in keys.iter().zip(&answers) {
        assert_eq!(*status, StatusCode::OK, "{answer}");
        ids.entry(key).or_default().insert(answer["data"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 17, "{ids:?}");
    assert!(ids.values().all(|ids| ids.len() == 1), "one transaction per key: {ids:?}");
    assert_eq!(api.queued().await, 17);
}

impl Api {
    /// The first `n` events of a stream opened with `uri` (and headers).
    async fn events(&self, uri: &str, key: &str, last_event_id: Option<&str>, n: usize) -> Vec<Value> {
        let messages = self.messages(uri, key, last_event_id, n).await;
        messages
            .into_iter()
            .map(|message| {
                let event: Value = serde_json::from_str(&field(&message, "data").unwrap()).unwrap();
                assert_eq!(field(&message, "id").unwrap(), event["id"].to_string());
                assert_eq!(field(&message, "event").unwrap(), event["type"].as_str().unwrap());
                event
            })
            .collect()
    }

    /// The first `n` messages with data of a stream opened with `uri`.
    async fn messages(&self, uri: &str, key: &str, last_event_id: Option<&str>, n: usize) -> Vec<String> {
        use futures::StreamExt as _;
        let mut request = Request::get(uri).header(header::AUTHORIZATION, format!("Bearer {key}"));
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = self.app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
        let mut body = response.into_body().into_data_stream();
        let mut text = String::new();
        let mut messages = Vec::new();
        while messages.len() < n {
            let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
                .await
                .unwrap_or_else(|_| panic!("no message within 10 s after {messages:?}"))
                .unwrap()
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = text.find("\n\n") {
                let message: String = text.drain(..end + 2).collect();
                if field(&message, "data").is_some() {
                    messages.push(message);
                }
            }
        }
        messages
    }
}

/// A field of a Server-Sent Events message.
fn field(message: &str, name: &str) -> Option<String> {
    message.lines().find_map(|l| l.strip_prefix(&format!("{name}:"))).map(|v| v.trim().to_string())
}

#[tokio::test]
async fn resuming_after_pruned_events_starts_with_a_gap_message() {
    let api = api().await;
    let body = json!({"to": ALLOWED, "value": 1}).to_string();
    api.post("/api/v1/relayers/relayer-1/transactions", &body).await;
    api.post("/api/v1/relayers/relayer-1/transactions", &body).await;
    let old = api.events("/api/v1/events?after=0", KEY, None, 2).await;
    let first = old[0]["id"].to_string();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = PruneBefore { idempotency_keys: None, events: Some(switchyard::store::now_ms()) };
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(api.relay.store.prune(cutoff).await.unwrap().events, 2);
    let (_, kept) = api.post("/api/v1/relayers/relayer-1/transactions", &body).await;

    // After the first pruned one: told what is gone, then the oldest kept.
    let messages = api.messages("/api/v1/events", KEY, Some(&first), 2).await;
    assert_eq!(field(&messages[0], "event").as_deref(), Some("gap"), "{messages:?}");
    assert_eq!(field(&messages[0], "id"), None, "a reconnect resumes where the client was");
    let gap: Value = serde_json::from_str(&field(&messages[0], "data").unwrap()).unwrap();
    let next: Value = serde_json::from_str(&field(&messages[1], "data").unwrap()).unwrap();
    assert_eq!(gap, json!({"after": old[0]["id"], "next": next["id"]}));
    assert_eq!(next["transaction_id"], kept["data"]["id"]);
    // The whole log, or after the last pruned one: nothing is missing.
    let last = old[1]["id"].to_string();
    for (uri, resume) in [("/api/v1/events?after=0", None), ("/api/v1/events", Some(last.as_str()))] {
        let messages = api.messages(uri, KEY, resume, 1).await;
        assert_eq!(field(&messages[0], "event").as_deref(), Some("transaction.status"), "{uri} {resume:?}");
    }
}

#[tokio::test]
async fn the_event_stream_tells_status_changes_filters_them_and_resumes_after_last_event_id() {
    let api = api().await;
    let body = json!({"to": ALLOWED, "value": 1}).to_string();
    let (_, first) = api.post("/api/v1/relayers/relayer-1/transactions", &body).await;
    let (_, second) = api.post("/api/v1/relayers/relayer-2/transactions", &body).await;
    let (first, second) = (first["data"]["id"].clone(), second["data"]["id"].clone());
    let uri = format!("/api/v1/transactions/{}", first.as_str().unwrap());
    let (status, _) = api.call("DELETE", &uri, None, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK);

    let all = api.events("/api/v1/events?after=0", KEY, None, 3).await;
    let seen: Vec<_> = all.iter().map(|e| (e["transaction_id"].clone(), e["status"].clone())).collect();
    assert_eq!(
        seen,
        [(first.clone(), json!("pending")), (second.clone(), json!("pending")), (first.clone(), json!("canceled"))]
    );
    assert!(all.iter().all(|e| e["type"] == "transaction.status"), "{all:?}");
    assert_eq!(all[0]["relayer_id"], "relayer-1");
    assert!(all[2]["detail"].as_str().is_some_and(|d| !d.is_empty()), "the cancel's reason: {all:?}");

    // Resumed after the first event: the second comes first.
    let last = all[0]["id"].to_string();
    let resumed = api.events("/api/v1/events", KEY, Some(&last), 1).await;
    assert_eq!(resumed[0]["id"], all[1]["id"]);
    // Filtered by transaction, and by relayer.
    let of_first =
        api.events(&format!("/api/v1/events?after=0&transaction_id={}", first.as_str().unwrap()), KEY, None, 2).await;
    assert_eq!(of_first.iter().map(|e| e["status"].clone()).collect::<Vec<_>>(), [json!("pending"), json!("canceled")]);
    let of_relayer = api.events("/api/v1/events?after=0&relayer_id=relayer-2", KEY, None, 1).await;
    assert_eq!(of_relayer[0]["transaction_id"], second);
    // A key limited to relayer-2 sees only its events.
    let limited = api.key(&["read"], Some(&["relayer-2"])).await;
    let visible = api.events("/api/v1/events?after=0", &limited, None, 1).await;
    assert_eq!(visible[0]["transaction_id"], second);

    // A new event reaches a stream already open.
    let stream = api.events("/api/v1/events?type=transaction.status", KEY, None, 1);
    let submit = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.post("/api/v1/relayers/relayer-1/transactions", &body).await
    };
    let (live, (_, third)) = tokio::join!(stream, submit);
    assert_eq!(live[0]["transaction_id"], third["data"]["id"]);

    for (uri, needle) in [
        ("/api/v1/events?type=transaction.nope", "unknown event type"),
        ("/api/v1/events?after=x", "after"),
        ("/api/v1/events?after=18446744073709551615", "no event id is above"),
        ("/api/v1/events?bogus=1", "unknown field"),
    ] {
        assert_failure(&api.get(uri).await, StatusCode::BAD_REQUEST, needle);
    }
    let request = Request::get("/api/v1/events").header(header::AUTHORIZATION, format!("Bearer {KEY}"));
    let response =
        api.app.clone().oneshot(request.header("last-event-id", "abc").body(Body::empty()).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn webhooks_are_created_listed_without_secrets_and_deleted_by_admins() {
    let api = api().await;
    let body = json!({"url": "http://user:pw@127.0.0.1:9/hook", "events": ["relayer.disabled", "transaction.status"]});
    let (status, created) = api.post("/api/v1/webhooks", &body.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["data"]["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_") && secret.len() > 40, "a generated secret, shown once: {secret}");
    let id = created["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["data"]["events"], json!(["relayer.disabled", "transaction.status"]));
    assert!(!created.to_string().contains("pw@"), "credentials in the URL are not shown: {created}");

    let given = json!({"url": "https://example.invalid/in", "secret": "my-own-secret-0123456789"});
    let (status, mine) = api.post("/api/v1/webhooks", &given.to_string()).await;
    assert_eq!(status, StatusCode::CREATED, "{mine}");
    assert_eq!(mine["data"]["secret"], Value::Null, "a secret you gave is not echoed");
    let (_, listed) = api.get("/api/v1/webhooks").await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 2);
    for hidden in [secret.as_str(), "my-own-secret-0123456789", "pw@"] {
        assert!(!listed.to_string().contains(hidden), "{hidden} in {listed}");
    }
    let (status, dead) = api.get(&format!("/api/v1/webhooks/{id}/dead-letters")).await;
    assert_eq!((status, &dead["data"]), (StatusCode::OK, &json!([])));

    let reader = api.key(&["read"], None).await;
    assert_failure(&api.call("GET", "/api/v1/webhooks", None, Some(&reader)).await, StatusCode::FORBIDDEN, "admin");
    for (body, needle) in [
        (json!({"url": "ftp://x/y"}), "http or https"),
        (json!({"url": "not a url"}), "`url`"),
        (json!({"url": "http://127.0.0.1/h", "secret": "short"}), "at least 16"),
        (json!({"url": "http://127.0.0.1/h", "events": ["nope"]}), "unknown variant"),
    ] {
        assert_failure(
            &api.post("/api/v1/webhooks", &body.to_string()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            needle,
        );
    }
    let (status, _) = api.call("DELETE", &format!("/api/v1/webhooks/{id}"), None, Some(KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert_failure(
        &api.call("DELETE", &format!("/api/v1/webhooks/{id}"), None, Some(KEY)).await,
        StatusCode::NOT_FOUND,
        "no webhook",
    );
    assert_failure(&api.get(&format!("/api/v1/webhooks/{id}/dead-letters")).await, StatusCode::NOT_FOUND, "no webhook");
}

#[tokio::test]
async fn cors_answers_only_the_configured_origins() {
    let preflight = |app: axum::Router, origin: &'static str| async move {
        let request = Request::builder()
            .method("OPTIONS")
            .uri("/api/v1/transactions")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization,idempotency-key");
        let response = app.oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        response.headers().get(header::ACCESS_CONTROL_ALLOW_ORIGIN).map(|v| v.to_str().unwrap().to_string())
    };
    let api = api().await;
    assert_eq!(preflight(api.app.clone(), "https://app.example.com").await, None, "off by default");

    let http = HttpConfig { cors_origins: vec!["https://app.example.com".into()], ..HttpConfig::default() };
    let app = api::router(AppState::new(api.relay.clone(), KEY, "localhost"), &http);
    assert_eq!(preflight(app.clone(), "https://app.example.com").await.as_deref(), Some("https://app.example.com"));
    assert_eq!(preflight(app, "https://evil.example").await, None);
}

/// Request decoding under arbitrary input: bodies built field by field from
/// valid, near-valid and wrong-typed values (and sometimes plain bytes),
/// posted to both submission endpoints. Every answer is the envelope with a
/// 2xx or a 4xx that says why; an accepted body is stored as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arbitrary_submission_bodies_get_a_clear_answer_and_never_a_server_error() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    fn wrong_type() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,40}".prop_map(Value::from),
            Just(json!([1, "x"])),
            Just(json!({"nested": {}})),
        ]
    }
    fn field(valid: BoxedStrategy<Value>) -> impl Strategy<Value = Option<Value>> {
        prop::option::weighted(0.8, prop_oneof![12 => valid, 1 => wrong_type()])
    }
    let address = prop_oneof![
        4 => Just(Value::from(ALLOWED)),
        1 => "0x[0-9a-fA-F]{40}".prop_map(Value::from),
        1 => "0x[0-9a-fA-F]{0,45}".prop_map(Value::from),
        1 => "\\PC{0,50}".prop_map(Value::from),
    ]
    .boxed();
    // With the amount a correct decoder must store, where the form makes it plain.
    let amount = |v: &str, radix| alloy_primitives::U256::from_str_radix(v, radix).ok();
    let value = prop_oneof![
        "[0-9]{1,80}".prop_map(move |s| (Value::from(s.clone()), amount(&s, 10))),
        any::<u64>().prop_map(|n| (Value::from(n), Some(alloy_primitives::U256::from(n)))),
        (1u32..1000, 0u32..30).prop_map(move |(n, e)| {
            (Value::from(format!("{n}.0e{e}")), amount(&format!("{n}{}", "0".repeat(e as usize)), 10))
        }),
        "[0-9a-f]{1,70}".prop_map(move |s| (Value::from(format!("0x{s}")), amount(&s, 16))),
        "-?[0-9]{0,30}\\.?[0-9]{0,5}(e[+-]?[0-9]{1,3})?".prop_map(|s| (Value::from(s), None)),
        any::<i64>().prop_map(|n| (Value::from(n), u64::try_from(n).ok().map(alloy_primitives::U256::from))),
    ];
    let data =
        prop_oneof!["(0x)?([0-9a-f]{2}){0,40}".prop_map(Value::from), "0x[0-9a-gA-G]{0,33}".prop_map(Value::from)];
    let speed = prop_oneof![
        4 => prop::sample::select(vec!["safeLow", "average", "fast", "fastest"]).prop_map(Value::from),
        1 => prop::sample::select(vec!["FAST", "slow", ""]).prop_map(Value::from),
    ];
    let time = prop_oneof![
        3 => Just(Value::from("2099-01-01T00:00:00Z")),
        1 => "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
            .prop_map(Value::from),
    ];
    let hints = prop::collection::btree_map("\\PC{0,66}", "\\PC{0,258}", 0..6).prop_map(|m| json!(m));
    let fields = (
        field(address),
        prop::option::weighted(0.9, value),
        field(data.boxed()),
        field(any::<u64>().prop_map(Value::from).boxed()),
        field(speed.boxed()),
        field(time.boxed()),
        prop::option::weighted(0.3, prop_oneof![12 => hints.boxed(), 1 => wrong_type().boxed()]),
        prop::option::weighted(0.1, prop_oneof![Just("gas_price"), Just("max_fee_per_gas"), Just("surprise")]),
    )
        .prop_map(|(to, value, data, gas_limit, speed, valid_until, hints, extra)| {
            let mut body = serde_json::Map::new();
            let (value, expected) = value.map_or((None, None), |(v, e)| (Some(v), e));
            let named = [
                ("to", to),
                ("value", value),
                ("data", data),
                ("gas_limit", gas_limit),
                ("speed", speed),
                ("valid_until", valid_until),
                ("hints", hints),
            ];
            for (name, v) in named {
                if let Some(v) = v {
                    body.insert(name.into(), v);
                }
            }
            if let Some(extra) = extra {
                body.insert(extra.into(), json!("1"));
            }
            (serde_json::to_vec(&Value::Object(body)).unwrap(), expected)
        });
    let bodies = prop_oneof![
        9 => fields,
        1 => prop::collection::vec(any::<u8>(), 0..300).prop_map(|bytes| (bytes, None)),
    ];

    let api = api().await;
    let handle = tokio::runtime::Handle::current();
    let config = Config { cases: 400, failure_persistence: None, ..Config::default() };
    let accepted = std::sync::atomic::AtomicU32::new(0);
    let result = TestRunner::new(config).run(&(bodies, any::<bool>()), |((body, expected), pool)| {
        let uri = if pool { "/api/v1/transactions" } else { "/api/v1/relayers/relayer-1/transactions" };
        let (status, answer) =
            tokio::task::block_in_place(|| handle.block_on(api.send("POST", uri, Some(body.clone()), Some(KEY))));
        let shown = String::from_utf8_lossy(&body);
        prop_assert!(!status.is_server_error(), "{status} for {shown}: {answer}");
        prop_assert_eq!(&answer["success"], &json!(status.is_success()), "{} for {}: {}", status, shown, answer);
        if status.is_success() {
            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let stored = answer["data"]["value"].as_str().and_then(|v| v.parse::<alloy_primitives::U256>().ok());
            prop_assert!(stored.is_some(), "no value in the answer for {shown}: {answer}");
            if expected.is_some() {
                prop_assert_eq!(stored, expected, "stored value for {}: {}", shown, answer);
            }
        } else {
            let error = answer["error"].as_str().unwrap_or_default();
            prop_assert!(!error.trim().is_empty(), "{status} without a reason for {shown}: {answer}");
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // Half-valid input that is never accepted would leave the accepting path untested.
    let accepted = accepted.into_inner();
    eprintln!("{accepted} of 400 bodies accepted");
    assert!(accepted > 5, "too few bodies were accepted to exercise the accepting path");
}
