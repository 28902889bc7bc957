//! The queue suite on SQS: moto_server from PyPI on loopback, one per test,
//! fed from a store's outbox by the relay.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::brokers::Moto;
use support::queue_suite::Fixture;
use support::store_suite::new_tx;
use switchyard::queue::outbox::Brokered;
use switchyard::queue::sqs::{SqsQueue, SqsSettings};
use switchyard::queue::{Queue, QueueError, RetryPolicy, SqsQueueRef};
use switchyard::store::Store;
use switchyard::store::sql::SqlStore;

/// SQS counts visibility in whole seconds.
fn policy() -> RetryPolicy {
    RetryPolicy {
        max_deliveries: 3,
        base_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(2),
        lease: Duration::from_secs(2),
    }
}

fn settings(moto: &Moto, queue: SqsQueueRef) -> SqsSettings {
    SqsSettings { queue, endpoint_url: Some(moto.endpoint.clone()), region: "us-east-1".into() }
}

async fn brokered(store: &SqlStore, settings: SqsSettings) -> Arc<dyn Queue> {
    let broker = SqsQueue::connect(settings, policy()).await.expect("connect to SQS");
    Arc::new(Brokered::start(store, Arc::new(broker)))
}

async fn store() -> Arc<SqlStore> {
    let dir = tempfile::tempdir().expect("temp dir").keep();
    Arc::new(SqlStore::open(&dir).await.expect("open and migrate"))
}

async fn fixture(case: &str) -> Option<Fixture> {
    let moto = Arc::new(Moto::start().await?);
    let settings = settings(&moto, SqsQueueRef::Name(case.replace('_', "-")));
    let store = store().await;
    let queue = brokered(&store, settings.clone()).await;
    let reopen = store.clone();
    Some(Fixture {
        store,
        queue,
        // The host dies: its heartbeats stop, and what it held comes back
        // when the visibility timeout runs out.
        crash: Box::new(move |old| {
            let (store, settings, moto) = (reopen.clone(), settings.clone(), moto.clone());
            Box::pin(async move {
                old.close().await;
                let _alive = moto;
                brokered(&store, settings).await
            })
        }),
        leased: true,
        policy: policy(),
    })
}

mod queue {
    use super::*;
    queue_suite!(fixture);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_message_stays_invisible_past_its_lease_while_worked() {
    let Some(moto) = Moto::start().await else { return };
    let store = store().await;
    let queue = brokered(&store, settings(&moto, SqsQueueRef::Name("heartbeat".into()))).await;
    store.insert(&new_tx("slow")).await.unwrap();
    let held = queue.receive(Duration::from_secs(5)).await.unwrap().expect("a delivery");
    // A slow send: three leases long. The heartbeat keeps it invisible.
    let again = queue.receive(policy().lease * 3).await.unwrap();
    assert!(again.is_none(), "handed to a second worker while held: {again:?}");
    queue.ack(&held).await.unwrap();
    assert!(queue.receive(policy().lease * 2).await.unwrap().is_none(), "deleted on ack");
}

#[tokio::test]
async fn a_queue_url_without_a_redrive_policy_is_refused() {
    let Some(moto) = Moto::start().await else { return };
    // Created by hand, as an operator might, without a dead-letter queue.
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(&moto.endpoint)
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build();
    let created = aws_sdk_sqs::Client::from_conf(config).create_queue().queue_name("bare").send().await.unwrap();
    let bare = created.queue_url.expect("a queue URL");
    let error = SqsQueue::connect(settings(&moto, SqsQueueRef::Url(bare)), policy()).await.unwrap_err();
    assert!(error.to_string().contains("no redrive policy"), "{error}");
}

#[tokio::test]
async fn a_queue_url_with_a_redrive_policy_finds_its_dead_letter_queue() {
    let Some(moto) = Moto::start().await else { return };
    let created = SqsQueue::connect(settings(&moto, SqsQueueRef::Name("named".into())), policy()).await.unwrap();
    let url = created.queue_url().to_string();
    let by_url = SqsQueue::connect(settings(&moto, SqsQueueRef::Url(url)), policy()).await.unwrap();
    assert_eq!(by_url.stats().await.unwrap(), Default::default());
}

#[tokio::test]
async fn an_unreachable_endpoint_is_a_clear_error() {
    let settings = SqsSettings {
        queue: SqsQueueRef::Name("work".into()),
        endpoint_url: Some("http://127.0.0.1:9".into()),
        region: "us-east-1".into(),
    };
    let error = SqsQueue::connect(settings, policy()).await.unwrap_err();
    assert!(matches!(error, QueueError::Unavailable(_)), "{error}");
    assert!(error.to_string().contains("SQS"), "{error}");
}
