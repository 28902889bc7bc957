//! The queue contract, written once against `dyn Queue`. Work enters the
//! queue the way the API puts it there: through the store's outbox.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;
use std::time::Duration;

use switchyard::queue::{Queue, QueueError, QueueStats, RetryOutcome, RetryPolicy};
use switchyard::store::Store;

use super::store_suite::new_tx;

pub type Pair = (Arc<dyn Store>, Arc<dyn Queue>);

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

async fn stats(queue: &Arc<dyn Queue>) -> QueueStats {
    queue.stats().await.unwrap()
}

pub async fn delivers_in_order_and_ack_removes((store, queue): Pair) {
    for i in 0..3 {
        store.insert(&new_tx(&format!("q{i}"))).await.unwrap();
    }
    assert_eq!(stats(&queue).await, QueueStats { queued: 3, in_flight: 0, dead: 0 });
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = queue.receive(WAIT).await.unwrap().expect("a delivery");
        assert_eq!(d.attempt, 1);
        got.push(d);
    }
    let ids: Vec<&str> = got.iter().map(|d| d.transaction_id.as_str()).collect();
    assert_eq!(ids, ["q0", "q1", "q2"]);
    assert_eq!(stats(&queue).await, QueueStats { queued: 0, in_flight: 3, dead: 0 });
    for d in &got {
        queue.ack(d).await.unwrap();
    }
    assert_eq!(stats(&queue).await, QueueStats::default());
    assert!(queue.receive(Duration::from_millis(100)).await.unwrap().is_none());
    assert!(matches!(queue.ack(&got[0]).await, Err(QueueError::Lost(_))), "a second ack is refused");
}

pub async fn retries_with_backoff_then_dead_letters((store, queue): Pair) {
    store.insert(&new_tx("r")).await.unwrap();
    for attempt in 1..=3 {
        let d = queue.receive(WAIT).await.unwrap().expect("delivered again");
        assert_eq!((d.transaction_id.as_str(), d.attempt), ("r", attempt));
        let outcome = queue.retry(&d, "rpc down").await.unwrap();
        if attempt < 3 {
            assert_eq!(outcome, RetryOutcome::Requeued(policy().delay(attempt)));
            // Not before its backoff.
            assert!(queue.receive(Duration::ZERO).await.unwrap().is_none());
        } else {
            assert_eq!(outcome, RetryOutcome::DeadLettered);
        }
    }
    assert_eq!(stats(&queue).await, QueueStats { queued: 0, in_flight: 0, dead: 1 });
    assert!(queue.receive(Duration::from_millis(500)).await.unwrap().is_none());
    assert!(store.get("r").await.unwrap().is_some(), "dead-lettering loses no transaction");
}

pub async fn redelivers_after_a_worker_dies_without_acking((store, queue): Pair) {
    store.insert(&new_tx("crash")).await.unwrap();
    let first = queue.receive(WAIT).await.unwrap().unwrap();
    // The worker dies: no ack, no retry. Its lease runs out.
    assert!(queue.receive(Duration::from_millis(100)).await.unwrap().is_none(), "held while leased");
    let second = queue.receive(WAIT).await.unwrap().expect("redelivered after the lease");
    assert_eq!((second.transaction_id.as_str(), second.attempt), ("crash", 2));
    // The dead worker's late ack cannot remove what the new one holds.
    assert!(matches!(queue.ack(&first).await, Err(QueueError::Lost(_))));
    queue.ack(&second).await.unwrap();
    assert_eq!(stats(&queue).await, QueueStats::default());
}

pub async fn dead_letters_work_that_keeps_killing_its_workers((store, queue): Pair) {
    store.insert(&new_tx("poison")).await.unwrap();
    for attempt in 1..=policy().max_deliveries {
        let d = queue.receive(WAIT).await.unwrap().expect("delivered until the limit");
        assert_eq!(d.attempt, attempt);
        // The worker dies each time.
    }
    let wait = policy().lease * 2;
    assert!(queue.receive(wait).await.unwrap().is_none(), "not delivered past the limit");
    assert_eq!(stats(&queue).await, QueueStats { queued: 0, in_flight: 0, dead: 1 });
}

/// Runs every case, each on a database and queue from `fresh`.
#[macro_export]
macro_rules! queue_suite {
    ($fresh:expr) => {
        $crate::queue_suite!(@cases $fresh;
            delivers_in_order_and_ack_removes,
            retries_with_backoff_then_dead_letters,
            redelivers_after_a_worker_dies_without_acking,
            dead_letters_work_that_keeps_killing_its_workers,
        );
    };
    (@cases $fresh:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(pair) = $fresh.await else { return };
                support::queue_suite::$case(pair).await;
            }
        )*
    };
}
