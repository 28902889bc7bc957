//! What an operator sees of a running relay: `/metrics` after real traffic
//! (API, queue, transactions, relayers, plugins, hot swaps) and JSON logs
//! whose lines carry the request's and the transaction's ids. Every series
//! the shipped alert rules and dashboard use must be exported. With `[otel]`
//! set, the same spans reach an OTLP collector.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::relay::{API_KEY, Anvil, STANDARD_PLUGINS, Server, client, series, submit, write_config};

/// The standard plugins, but the selector is whatever `selector.wasm` holds.
fn plugin_slots() -> String {
    STANDARD_PLUGINS.replace("selector_round_robin.wasm", "selector.wasm") + "[log]\nformat = \"json\"\n"
}

/// The `switchyard_*` series a deploy/ file names, histogram suffixes cut.
fn series_named_in(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(support::repo_root().join(file)).unwrap();
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("switchyard_") {
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_count", "_sum"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        names.insert(base.to_string());
        rest = &tail[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_logs_show_what_the_relay_did() {
    let Some(anvil) = Anvil::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    // A private plugins folder, watched: the selector is the hostile
    // trickster, which traps when a request's `mode` hint says so.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::write(plugins.join("selector.wasm"), support::hostile_plugin("hostile_trickster")).unwrap();
    for name in ["policy_allowlist", "fee_eip1559"] {
        std::fs::write(plugins.join(format!("{name}.wasm")), support::example(name)).unwrap();
    }
    let (config, mut env) = write_config(dir.path(), &anvil, 1, 2, &plugin_slots());
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace(&format!("dir = \"{}\"", support::examples().display()), &format!("dir = \"{}\"", plugins.display()))
        .replace("watch = false", "watch = true\ndebounce_ms = 100");
    std::fs::write(&config, text).unwrap();
    env.push(("RUST_LOG".into(), "warn,switchyard=info,tower_http=debug".into()));
    let (server, logs) = Server::start_logged(&config, &env);

    let mut ids = submit(&server, 0..3).await;
    let trapping = json!({ "to": support::relay::recipient(3), "value": 1, "hints": { "mode": "panic" } });
    let (status, answer) = server.post("/api/v1/transactions", &trapping).await;
    assert_eq!(status, 200, "{answer}");
    let trapped_id = answer["data"]["id"].as_str().unwrap().to_string();
    ids.push(trapped_id.clone());
    let txs = server.wait_final(&ids, Duration::from_secs(60)).await;
    assert!(txs.iter().all(|tx| tx["status"] == "confirmed"), "{txs:?}");
    let request_id = "obs-test-request-1";
    let answer = client()
        .get(format!("{}/api/v1/no-such-route", server.url))
        .bearer_auth(API_KEY)
        .header("x-request-id", request_id)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    assert_eq!(answer.headers()["x-request-id"], request_id);

    // A broken selector file is refused; the trickster keeps serving.
    std::fs::write(plugins.join("selector.wasm"), b"not a component").unwrap();
    // The relayer's chain state refreshes once its health check (10 s
    // cache) expires.
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let metrics = server.metrics().await;
        let rejected = [("kind", "selector"), ("result", "rejected")];
        if series(&metrics, "switchyard_plugin_swaps_total", &rejected) == Some(1.0)
            && series(&metrics, "switchyard_relayer_nonce", &[("relayer", "relayer-1")]) == Some(4.0)
        {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no refused selector or no fresh relayer nonce:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let get = |name: &str, labels: &[(&str, &str)]| {
        series(&metrics, name, labels).unwrap_or_else(|| panic!("no {name} {labels:?} in\n{metrics}"))
    };

    // API: by route template, method and status.
    let submitted = [("method", "POST"), ("route", "/api/v1/transactions"), ("status", "200")];
    assert_eq!(get("switchyard_http_request_duration_seconds_count", &submitted), 4.0);
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(get("switchyard_http_request_duration_seconds_count", &unmatched), 1.0);
    // Queue: everything picked up once and done.
    assert_eq!(get("switchyard_queue_pickup_seconds_count", &[]), 4.0);
    assert_eq!(get("switchyard_queue_depth", &[]), 0.0);
    assert_eq!(get("switchyard_queue_dead_letters", &[]), 0.0);
    // Transactions, from the store.
    assert_eq!(get("switchyard_transactions", &[("status", "confirmed")]), 4.0);
    assert_eq!(get("switchyard_transactions", &[("status", "pending")]), 0.0);
    assert_eq!(get("switchyard_transactions_oldest_pending_seconds", &[]), 0.0);
    // Relayers.
    assert_eq!(get("switchyard_relayer_nonce", &[("relayer", "relayer-1")]), 4.0);
    assert_eq!(get("switchyard_relayer_state", &[("relayer", "relayer-1"), ("state", "healthy")]), 1.0);
    assert!(get("switchyard_relayer_balance_wei", &[("relayer", "relayer-1")]) > 0.0);
    // Plugins, by kind, file and version: the trap fell back to the default.
    let trickster = support::sha256(&support::hostile_plugin("hostile_trickster"));
    let selector = [("kind", "selector"), ("plugin", "selector"), ("version", &trickster[..12])];
    assert_eq!(get("switchyard_plugin_calls_total", &selector), 4.0);
    assert_eq!(get("switchyard_plugin_call_duration_seconds_count", &selector), 4.0);
    assert_eq!(get("switchyard_plugin_failures_total", &[selector.as_slice(), &[("reason", "trap")]].concat()), 1.0);
    assert_eq!(get("switchyard_plugin_fallbacks_total", &selector), 1.0);
    assert!(get("switchyard_plugin_calls_total", &[("kind", "fee"), ("plugin", "fee_eip1559")]) >= 4.0);
    assert_eq!(get("switchyard_plugin_swaps_total", &[("kind", "selector"), ("result", "loaded")]), 1.0);
    assert_eq!(get("switchyard_plugin_swaps_total", &[("kind", "selector"), ("result", "rejected")]), 1.0);

    // Every series the alert rules and the dashboard use is exported.
    for file in ["deploy/prometheus/alerts.yaml", "deploy/grafana/switchyard.json"] {
        for name in series_named_in(file) {
            assert!(
                metrics.lines().any(|l| l.starts_with(&format!("# TYPE {name} "))),
                "{file} uses {name}, which /metrics does not export"
            );
        }
    }

    // Logs: JSON lines; the request's lines carry its id, the trap's line
    // the transaction's. The configured API key is printed nowhere.
    let printed = server.stdout.clone();
    server.stop();
    let logs = logs.lock().unwrap().clone();
    let printed = printed.lock().unwrap().clone();
    assert!(printed.iter().any(|l| l.contains("$SWITCHYARD_MASTER_KEY")), "{printed:?}");
    for line in logs.iter().chain(&printed) {
        assert!(!line.contains(API_KEY), "the API key was printed: {line}");
    }
    let lines: Vec<Value> = logs.iter().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(!lines.is_empty() && lines.len() == logs.len(), "every log line is JSON:\n{}", logs.join("\n"));
    let in_span = |line: &Value, name: &str, field: &str, value: &str| {
        line["spans"].as_array().is_some_and(|spans| spans.iter().any(|s| s["name"] == name && s[field] == value))
    };
    let of_request: Vec<&Value> = lines.iter().filter(|l| in_span(l, "request", "request_id", request_id)).collect();
    assert!(!of_request.is_empty(), "no log line carries request id {request_id}:\n{}", logs.join("\n"));
    let trap = lines
        .iter()
        .find(|l| l["message"].as_str().is_some_and(|m| m.contains("plugin failed")))
        .unwrap_or_else(|| panic!("the trap was not logged:\n{}", logs.join("\n")));
    assert!(in_span(trap, "transaction", "id", &trapped_id), "the trap's line lacks the transaction id: {trap}");
}

/// A span as an OTLP collector received it.
#[derive(Debug, Clone)]
struct ExportedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    kind: i32,
    attributes: Vec<(String, String)>,
}

impl ExportedSpan {
    fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// An OTLP/HTTP collector on loopback that keeps every span it is sent.
async fn start_collector() -> (String, Arc<Mutex<Vec<ExportedSpan>>>) {
    use axum::body::Bytes;
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
    use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
    use prost::Message as _;

    fn text(value: Option<Any>) -> String {
        match value {
            Some(Any::StringValue(s)) => s,
            Some(Any::IntValue(i)) => i.to_string(),
            other => format!("{other:?}"),
        }
    }
    let spans = Arc::new(Mutex::new(Vec::new()));
    let sink = spans.clone();
    let receive = move |body: Bytes| async move {
        let request = ExportTraceServiceRequest::decode(body).expect("an OTLP protobuf export");
        for resource in request.resource_spans {
            let service = resource
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .map(|a| text(a.value.clone().and_then(|v| v.value)))
                .unwrap_or_default();
            for span in resource.scope_spans.into_iter().flat_map(|s| s.spans) {
                let attributes =
                    span.attributes.into_iter().map(|a| (a.key, text(a.value.and_then(|v| v.value)))).collect();
                sink.lock().unwrap().push(ExportedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex::encode(span.trace_id),
                    span_id: hex::encode(span.span_id),
                    parent_span_id: hex::encode(span.parent_span_id),
                    kind: span.kind,
                    attributes,
                });
            }
        }
        ([("content-type", "application/x-protobuf")], ExportTraceServiceResponse::default().encode_to_vec())
    };
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(receive));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_reach_an_otlp_collector_and_continue_the_callers_trace() {
    let Some(anvil) = Anvil::start() else { return };
    let (collector, spans) = start_collector().await;
    let dir = tempfile::tempdir().unwrap();
    let (config, mut env) = write_config(dir.path(), &anvil, 1, 1, STANDARD_PLUGINS);
    env.push(("SWITCHYARD_OTEL__ENDPOINT".into(), collector));
    env.push(("SWITCHYARD_OTEL__SERVICE_NAME".into(), "relay-under-test".into()));
    let server = Server::start(&config, &env);

    // The caller's trace: W3C trace context.
    let (trace_id, caller_span) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let body = json!({ "to": support::relay::recipient(1), "value": 1 });
    let answer = client()
        .post(format!("{}/api/v1/transactions", server.url))
        .bearer_auth(API_KEY)
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let tx_id = answer.json::<Value>().await.unwrap()["data"]["id"].as_str().unwrap().to_string();
    let txs = server.wait_final(std::slice::from_ref(&tx_id), Duration::from_secs(60)).await;
    assert_eq!(txs[0]["status"], "confirmed", "{txs:?}");
    // A graceful stop flushes the spans still batched.
    assert!(server.stop().success());

    let spans = spans.lock().unwrap().clone();
    let names = || spans.iter().map(|s| s.name.as_str()).collect::<Vec<_>>();
    assert!(spans.iter().all(|s| s.service == "relay-under-test"), "{spans:?}");
    // The request continues the caller's trace, named by its route.
    let request = spans
        .iter()
        .find(|s| s.name == "POST /api/v1/transactions")
        .unwrap_or_else(|| panic!("no request span in {:?}", names()));
    assert_eq!((request.trace_id.as_str(), request.parent_span_id.as_str()), (trace_id, caller_span));
    assert_eq!(request.kind, 2, "a server span");
    assert_eq!(request.attribute("status"), Some("200"));
    // The policy decided inside the request.
    let policy = spans
        .iter()
        .find(|s| s.name == "plugin" && s.attribute("kind") == Some("policy"))
        .unwrap_or_else(|| panic!("no policy span in {:?}", names()));
    assert_eq!(policy.parent_span_id, request.span_id);
    assert_eq!(policy.attribute("plugin"), Some("policy_allowlist"));
    // The worker's delivery is a transaction span, with the selector and fee
    // calls inside it.
    let delivery = spans
        .iter()
        .find(|s| {
            s.name == "transaction" && s.attribute("id") == Some(tx_id.as_str()) && s.attribute("delivery").is_some()
        })
        .unwrap_or_else(|| panic!("no delivery span for {tx_id} in {:?}", names()));
    for kind in ["selector", "fee"] {
        let call = spans
            .iter()
            .find(|s| s.name == "plugin" && s.attribute("kind") == Some(kind) && s.parent_span_id == delivery.span_id);
        assert!(call.is_some(), "no {kind} call inside the delivery span: {spans:?}");
    }
}
