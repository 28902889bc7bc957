//! Webhook delivery against a real HTTP receiver on loopback, from the real
//! store (SQLite): signed, in order, retried with backoff, dead-lettered
//! after the limit, and delivered once when two replicas compete.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;
use switchyard::pipeline::webhooks::{SIGNATURE_HEADER, WebhookDispatcher, WebhookSettings, signature};
use switchyard::store::sql::SqlStore;
use switchyard::store::{EventKind, Store, Webhook, now_ms};

const SECRET: &str = "a-webhook-secret-0123456789";

/// What the receiver got, and how it answers the next requests.
#[derive(Default)]
struct Receiver {
    got: Vec<(HeaderMap, Bytes)>,
    /// Answers to give, first first; 200 once empty.
    answers: Vec<StatusCode>,
    /// Answer 500 to everything while set.
    down: bool,
}

async fn receiver() -> (String, Arc<Mutex<Receiver>>) {
    let state = Arc::new(Mutex::new(Receiver::default()));
    let shared = state.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = shared.clone();
            async move {
                let mut state = state.lock().unwrap();
                state.got.push((headers, body));
                if state.down {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                if state.answers.is_empty() { StatusCode::OK } else { state.answers.remove(0) }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

fn settings() -> WebhookSettings {
    WebhookSettings {
        max_attempts: 3,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        ..WebhookSettings::default()
    }
}

async fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlStore::open(dir.path()).await.unwrap();
    (dir, Arc::new(store))
}

async fn subscribe(store: &Arc<dyn Store>, url: &str, kinds: Vec<EventKind>) -> String {
    let hook = Webhook {
        id: "hook-1".into(),
        url: url.into(),
        secret: SECRET.into(),
        kinds,
        delivered_through: store.last_event_id().await.unwrap(),
        failures: 0,
        retry_at: 0,
        last_error: None,
        created_at: now_ms(),
    };
    store.insert_webhook(&hook).await.unwrap();
    hook.id
}

/// Runs delivery rounds until `done` holds (10 s at most).
async fn rounds_until(dispatchers: &[&WebhookDispatcher], mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "not done within 10 s");
        futures::future::join_all(dispatchers.iter().map(|d| d.round())).await.into_iter().for_each(|r| r.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn delivered(receiver: &Mutex<Receiver>) -> Vec<Value> {
    let receiver = receiver.lock().unwrap();
    receiver.got.iter().map(|(_, body)| serde_json::from_slice(body).unwrap()).collect()
}

#[tokio::test]
async fn deliveries_are_signed_in_order_retried_then_dead_lettered() {
    let (_dir, store) = store().await;
    let (url, receiver) = receiver().await;
    let hook = subscribe(&store, &url, vec![EventKind::TransactionStatus]).await;
    receiver.lock().unwrap().answers = vec![StatusCode::INTERNAL_SERVER_ERROR, StatusCode::BAD_GATEWAY];
    for id in ["t1", "t2"] {
        store.insert(&support::store_suite::new_tx(id)).await.unwrap();
    }
    // Not of the subscribed type: skipped.
    store.append_event(EventKind::RelayerDisabled, Some("relayer-1"), "down").await.unwrap();
    store.insert(&support::store_suite::new_tx("t3")).await.unwrap();

    let dispatcher = WebhookDispatcher::new(store.clone(), settings());
    rounds_until(&[&dispatcher], || receiver.lock().unwrap().got.len() >= 5).await;
    let got = delivered(&receiver);
    let order: Vec<_> = got.iter().map(|e| e["transaction_id"].as_str().unwrap()).collect();
    assert_eq!(order, ["t1", "t1", "t1", "t2", "t3"], "t1 retried twice, then the rest in order");
    for (headers, body) in &receiver.lock().unwrap().got {
        let expected = format!("sha256={}", signature(SECRET, body));
        assert_eq!(headers[SIGNATURE_HEADER], expected.as_str());
        assert_eq!(headers["x-switchyard-event"], "transaction.status");
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(headers["x-switchyard-delivery"], event["id"].to_string().as_str());
    }
    let state = &store.webhooks().await.unwrap()[0];
    assert_eq!((state.failures, state.last_error.as_deref()), (0, None));

    // A receiver that stays down: three attempts, then dead-lettered, and
    // the subscription moves on to what comes next.
    receiver.lock().unwrap().down = true;
    store.insert(&support::store_suite::new_tx("t4")).await.unwrap();
    rounds_until(&[&dispatcher], || receiver.lock().unwrap().got.len() >= 8).await;
    let failing = &store.webhooks().await.unwrap()[0];
    assert_eq!(failing.failures, 0, "given up, so no longer failing: {failing:?}");
    let dead = store.dead_letters(&hook).await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].attempts, 3);
    assert!(dead[0].last_error.contains("500"), "{dead:?}");
    let t4 = delivered(&receiver).into_iter().rev().find(|e| e["transaction_id"] == "t4").unwrap();
    assert_eq!(dead[0].event_id, t4["id"].as_u64().unwrap());
    receiver.lock().unwrap().down = false;
    store.insert(&support::store_suite::new_tx("t5")).await.unwrap();
    rounds_until(&[&dispatcher], || delivered(&receiver).iter().any(|e| e["transaction_id"] == "t5")).await;
    assert_eq!(receiver.lock().unwrap().got.len(), 9, "t4 was not sent again");
}

#[tokio::test]
async fn two_replicas_deliver_each_event_once() {
    let (_dir, store) = store().await;
    let (url, receiver) = receiver().await;
    subscribe(&store, &url, Vec::new()).await;
    for i in 0..20 {
        store.insert(&support::store_suite::new_tx(&format!("r{i}"))).await.unwrap();
    }
    let (a, b) = (WebhookDispatcher::new(store.clone(), settings()), WebhookDispatcher::new(store.clone(), settings()));
    rounds_until(&[&a, &b], || receiver.lock().unwrap().got.len() >= 20).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ids: Vec<u64> = delivered(&receiver).iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), 20, "{ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "once each, in order: {ids:?}");
}
