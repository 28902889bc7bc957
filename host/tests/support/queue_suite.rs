//! The queue contract, written once against `dyn Queue`. Work enters the
//! queue the way the API puts it there: through the store's outbox.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use switchyard::queue::{Queue, QueueError, QueueStats, RetryOutcome, RetryPolicy};
use switchyard::store::Store;

use super::store_suite::new_tx;

/// Takes the queue of a worker process that died; gives its successor's.
pub type Crash = Box<dyn Fn(Arc<dyn Queue>) -> BoxFuture<'static, Arc<dyn Queue>> + Send + Sync>;

/// A queue on a fresh store, and what a crashed worker process looks like
/// to it.
pub struct Fixture {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    /// The worker process dies holding what it received: the queue its
    /// restarted successor uses.
    pub crash: Crash,
    /// Redelivery waits for the dead worker's lease to run out (the
    /// embedded queue), rather than following the crash at once.
    pub leased: bool,
    /// The queue's retry policy.
    pub policy: RetryPolicy,
}

impl Fixture {
    /// The embedded queue: a crash leaves the lease to run out.
    pub fn leased(store: Arc<dyn Store>, queue: Arc<dyn Queue>) -> Self {
        Fixture {
            store,
            queue,
            crash: Box::new(|queue| Box::pin(async move { queue })),
            leased: true,
            policy: policy(),
        }
    }
}

/// Delays short enough for a suite that runs in seconds, long enough that a
/// loaded machine does not outrun them between two statements.
pub fn policy() -> RetryPolicy {
    RetryPolicy {
        max_deliveries: 3,
        base_delay: Duration::from_millis(400),
        max_delay: Duration::from_secs(1),
        lease: Duration::from_millis(1500),
    }
}

const WAIT: Duration = Duration::from_secs(5);

/// Waits for the stats to read `expected`: a broker counts messages a
/// moment after it confirms them.
async fn settles_at(queue: &Arc<dyn Queue>, expected: QueueStats) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let stats = queue.stats().await.unwrap();
        if stats == expected {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "stats stay at {stats:?}, expected {expected:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn delivers_in_order_and_ack_removes(Fixture { store, queue, .. }: Fixture) {
    for i in 0..3 {
        store.insert(&new_tx(&format!("q{i}"))).await.unwrap();
    }
    settles_at(&queue, QueueStats { queued: 3, in_flight: 0, dead: 0 }).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = queue.receive(WAIT).await.unwrap().expect("a delivery");
        assert_eq!(d.attempt, 1);
        got.push(d);
    }
    let ids: Vec<&str> = got.iter().map(|d| d.transaction_id.as_str()).collect();
    assert_eq!(ids, ["q0", "q1", "q2"]);
    settles_at(&queue, QueueStats { queued: 0, in_flight: 3, dead: 0 }).await;
    for d in &got {
        queue.ack(d).await.unwrap();
    }
    settles_at(&queue, QueueStats::default()).await;
    assert!(queue.receive(Duration::from_millis(100)).await.unwrap().is_none());
    assert!(matches!(queue.ack(&got[0]).await, Err(QueueError::Lost(_))), "a second ack is refused");
}

pub async fn queues_each_of_a_stored_group_once(Fixture { store, queue, .. }: Fixture) {
    let group: Vec<_> = (0..80).map(|i| new_tx(&format!("b{i}"))).collect();
    store.insert_many(&group).await.unwrap();
    settles_at(&queue, QueueStats { queued: 80, in_flight: 0, dead: 0 }).await;
    let mut delivered = std::collections::BTreeSet::new();
    for _ in &group {
        let d = queue.receive(WAIT).await.unwrap().expect("a delivery");
        queue.ack(&d).await.unwrap();
        assert!(delivered.insert(d.transaction_id.clone()), "{} delivered twice", d.transaction_id);
    }
    assert_eq!(delivered, group.iter().map(|tx| tx.request.id.clone()).collect());
    settles_at(&queue, QueueStats::default()).await;
}

pub async fn retries_with_backoff_then_dead_letters(Fixture { store, queue, policy, .. }: Fixture) {
    store.insert(&new_tx("r")).await.unwrap();
    for attempt in 1..=3 {
        let d = queue.receive(WAIT).await.unwrap().expect("delivered again");
        assert_eq!((d.transaction_id.as_str(), d.attempt), ("r", attempt));
        let outcome = queue.retry(&d, "rpc down").await.unwrap();
        if attempt < 3 {
            assert_eq!(outcome, RetryOutcome::Requeued(policy.delay(attempt)));
            // Not before its backoff.
            assert!(queue.receive(Duration::ZERO).await.unwrap().is_none());
        } else {
            assert_eq!(outcome, RetryOutcome::DeadLettered);
        }
    }
    settles_at(&queue, QueueStats { queued: 0, in_flight: 0, dead: 1 }).await;
    assert!(queue.receive(Duration::from_millis(500)).await.unwrap().is_none());
    assert!(store.get("r").await.unwrap().is_some(), "dead-lettering loses no transaction");
}

pub async fn redelivers_after_a_worker_dies_without_acking(fixture: Fixture) {
    let Fixture { store, queue, crash, leased, .. } = fixture;
    store.insert(&new_tx("crash")).await.unwrap();
    let first = queue.receive(WAIT).await.unwrap().unwrap();
    // The worker dies: no ack, no retry.
    let restarted = crash(queue.clone()).await;
    if leased {
        let held = restarted.receive(Duration::from_millis(100)).await.unwrap();
        assert!(held.is_none(), "held until the lease runs out");
    }
    let second = restarted.receive(WAIT).await.unwrap().expect("redelivered");
    assert_eq!((second.transaction_id.as_str(), second.attempt), ("crash", 2));
    // The dead worker's late ack cannot remove what the new one holds.
    assert!(matches!(queue.ack(&first).await, Err(QueueError::Lost(_))));
    restarted.ack(&second).await.unwrap();
    settles_at(&restarted, QueueStats::default()).await;
}

/// An expired lease is taken before due work, so a dead worker's entry is
/// not starved by a backlog.
pub async fn takes_an_expired_lease_before_newer_work(fixture: Fixture) {
    let Fixture { store, queue, policy, .. } = fixture;
    store.insert(&new_tx("abandoned")).await.unwrap();
    let first = queue.receive(WAIT).await.unwrap().expect("a delivery");
    for i in 0..3 {
        store.insert(&new_tx(&format!("newer{i}"))).await.unwrap();
    }
    tokio::time::sleep(policy.lease + Duration::from_millis(100)).await;
    let next = queue.receive(WAIT).await.unwrap().expect("a delivery");
    assert_eq!((next.transaction_id.as_str(), next.attempt), ("abandoned", 2), "first: {first:?}");
    let rest: Vec<String> = futures::future::join_all((0..3).map(|_| queue.receive(WAIT)))
        .await
        .into_iter()
        .map(|d| d.unwrap().expect("a delivery").transaction_id)
        .collect();
    assert_eq!(rest.len(), 3);
    assert!(rest.iter().all(|id| id.starts_with("newer")), "{rest:?}");
}

pub async fn dead_letters_work_that_keeps_killing_its_workers(fixture: Fixture) {
    let Fixture { store, mut queue, crash, policy, .. } = fixture;
    store.insert(&new_tx("poison")).await.unwrap();
    for attempt in 1..=policy.max_deliveries {
        let d = queue.receive(WAIT).await.unwrap().expect("delivered until the limit");
        assert_eq!(d.attempt, attempt);
        queue = crash(queue).await;
    }
    let wait = policy.lease * 2;
    let past = queue.receive(wait).await.unwrap();
    assert!(past.is_none(), "not delivered past the limit: {past:?}");
    settles_at(&queue, QueueStats { queued: 0, in_flight: 0, dead: 1 }).await;
    assert!(store.get("poison").await.unwrap().is_some(), "dead-lettering loses no transaction");
}

/// Runs every case, each on a fixture from `fresh(case name)`.
#[macro_export]
macro_rules! queue_suite {
    // The embedded queue's own cases on top (a broker redelivers on its own
    // terms).
    (leased: $fresh:expr) => {
        $crate::queue_suite!($fresh);
        $crate::queue_suite!(@cases $fresh; takes_an_expired_lease_before_newer_work);
    };
    ($fresh:expr) => {
        $crate::queue_suite!(@cases $fresh;
            delivers_in_order_and_ack_removes,
            queues_each_of_a_stored_group_once,
            retries_with_backoff_then_dead_letters,
            redelivers_after_a_worker_dies_without_acking,
            dead_letters_work_that_keeps_killing_its_workers,
        );
    };
    (@cases $fresh:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(fixture) = $fresh(stringify!($case)).await else { return };
                support::queue_suite::$case(fixture).await;
            }
        )*
    };
}
