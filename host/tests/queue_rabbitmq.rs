//! The queue suite on the machine's RabbitMQ (127.0.0.1:5672), fed from a
//! store's outbox by the relay, and the broker lost and found again.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::brokers::{Proxy, amqp_url, fresh_amqp_name};
use support::queue_suite::{Fixture, policy};
use support::store_suite::new_tx;
use switchyard::queue::amqp::{AmqpQueue, AmqpSettings};
use switchyard::queue::outbox::Brokered;
use switchyard::queue::{Queue, QueueError};
use switchyard::store::Store;
use switchyard::store::sql::SqlStore;

async fn store() -> Arc<SqlStore> {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    Arc::new(SqlStore::open(&dir).await.expect("open and migrate"))
}

async fn brokered(store: &SqlStore, url: String, name: String) -> Arc<dyn Queue> {
    consuming(store, url, name, true).await
}

async fn consuming(store: &SqlStore, url: String, name: String, consume: bool) -> Arc<dyn Queue> {
    let settings = AmqpSettings { url, name, prefetch: 8, consume };
    let broker = AmqpQueue::connect(settings, policy()).await.expect("connect to RabbitMQ");
    Arc::new(Brokered::start(store, Arc::new(broker)))
}

async fn fixture(case: &str) -> Option<Fixture> {
    let name = fresh_amqp_name(case, &policy()).await?;
    let store = store().await;
    let queue = brokered(&store, amqp_url(), name.clone()).await;
    let reopen = store.clone();
    Some(Fixture {
        store,
        queue,
        // The host dies: its connection closes and the broker takes back
        // what it held.
        crash: Box::new(move |old| {
            let (store, name) = (reopen.clone(), name.clone());
            Box::pin(async move {
                old.close().await;
                brokered(&store, amqp_url(), name).await
            })
        }),
        leased: false,
        policy: policy(),
    })
}

mod queue {
    use super::*;
    queue_suite!(fixture);
}

/// Receives until a delivery comes, riding out the errors of a broker that
/// is reconnecting.
async fn receive_through_outage(queue: &Arc<dyn Queue>) -> switchyard::queue::Delivery {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match queue.receive(Duration::from_millis(500)).await {
            Ok(Some(delivery)) => return delivery,
            Ok(None) | Err(QueueError::Unavailable(_)) => {}
            Err(other) => panic!("receive failed: {other}"),
        }
        assert!(tokio::time::Instant::now() < deadline, "nothing delivered after the broker came back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_outbox_fills_while_the_broker_is_gone_and_drains_in_order_after() {
    let Some(name) = fresh_amqp_name("outage", &policy()).await else { return };
    let target = amqp_url().split('@').nth(1).and_then(|rest| rest.split('/').next()).unwrap().parse().unwrap();
    let proxy = Proxy::start(target).await;
    let store = store().await;
    let queue = brokered(&store, proxy.amqp_url(), name).await;

    store.insert(&new_tx("before")).await.unwrap();
    let held = receive_through_outage(&queue).await;
    assert_eq!(held.transaction_id, "before");

    proxy.cut();
    // Submissions keep landing in the outbox.
    for i in 0..5 {
        store.insert(&new_tx(&format!("during-{i}"))).await.unwrap();
    }
    let error = queue.stats().await.expect_err("a lost broker shows in the stats readiness reads");
    assert!(matches!(error, QueueError::Unavailable(_)), "{error}");
    assert!(matches!(queue.receive(Duration::from_millis(200)).await, Err(QueueError::Unavailable(_))));
    tokio::time::sleep(Duration::from_secs(1)).await;

    proxy.restore().await;
    // What was held on the lost connection went back to the queue: the late
    // ack is refused and the delivery comes again, ahead of the new work.
    assert!(matches!(queue.ack(&held).await, Err(QueueError::Lost(_))));
    let mut order = Vec::new();
    for _ in 0..6 {
        let delivery = receive_through_outage(&queue).await;
        order.push((delivery.transaction_id.clone(), delivery.attempt));
        queue.ack(&delivery).await.unwrap();
    }
    let expected: Vec<(String, u32)> =
        std::iter::once(("before".to_string(), 2)).chain((0..5).map(|i| (format!("during-{i}"), 1))).collect();
    assert_eq!(order, expected, "redelivered first, then the outbox in order, each once");
    assert!(queue.receive(Duration::from_millis(500)).await.unwrap().is_none(), "nothing published twice");
    assert_eq!(queue.stats().await.unwrap(), Default::default());
}

/// An API-only replica (`queue.workers = 0`) publishes its outbox but holds
/// no delivery: a consumer on the same queue gets every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_without_workers_publishes_and_holds_nothing() {
    let Some(name) = fresh_amqp_name("api-only", &policy()).await else { return };
    let (api_store, worker_store) = (store().await, store().await);
    let api_only = consuming(&api_store, amqp_url(), name.clone(), false).await;
    let worker = brokered(&worker_store, amqp_url(), name).await;
    for i in 0..6 {
        api_store.insert(&new_tx(&format!("accepted-{i}"))).await.unwrap();
    }
    let mut received = Vec::new();
    for _ in 0..6 {
        let delivery = receive_through_outage(&worker).await;
        received.push(delivery.transaction_id.clone());
        worker.ack(&delivery).await.unwrap();
    }
    received.sort();
    assert_eq!(received, (0..6).map(|i| format!("accepted-{i}")).collect::<Vec<_>>());
    let refused = api_only.receive(Duration::from_millis(100)).await.expect_err("it opened no consumer");
    assert!(refused.to_string().contains("queue.workers = 0"), "{refused}");
}

#[tokio::test]
async fn an_unreachable_broker_is_a_clear_error_without_the_password() {
    let settings = AmqpSettings {
        url: "amqp://sy:hunter2@127.0.0.1:9/%2f".into(),
        name: "switchyard".into(),
        prefetch: 1,
        consume: true,
    };
    let error = AmqpQueue::connect(settings, policy()).await.unwrap_err().to_string();
    assert!(error.contains("RabbitMQ") && error.contains("127.0.0.1:9") && !error.contains("hunter2"), "{error}");
}

#[tokio::test]
async fn a_queue_declared_with_other_arguments_is_named_in_the_error() {
    let Some(name) = fresh_amqp_name("conflict", &policy()).await else { return };
    let settings = |max_deliveries| {
        let policy = switchyard::queue::RetryPolicy { max_deliveries, ..policy() };
        (AmqpSettings { url: amqp_url(), name: name.clone(), prefetch: 1, consume: true }, policy)
    };
    let (first, policy_a) = settings(3);
    let queue = AmqpQueue::connect(first, policy_a).await.unwrap();
    queue.close().await;
    let (second, policy_b) = settings(5);
    let error = AmqpQueue::connect(second, policy_b).await.unwrap_err().to_string();
    assert!(error.contains(&name) && error.contains("queue.name"), "{error}");
}
