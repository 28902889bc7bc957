//! The work queue between the API and the send worker. One trait,
//! [`Queue`]; the embedded default ([`embedded::EmbeddedQueue`]) consumes
//! the store's outbox in place, so it needs no broker and survives restarts.
//!
//! Delivery is at least once: an entry whose worker died without acking is
//! delivered again when its lease ends, so the worker must be idempotent by
//! transaction id (it is: see `pipeline`).

pub mod embedded;

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("queue unavailable: {0}")]
    Unavailable(String),
    #[error("queue error: {0}")]
    Backend(String),
    /// The delivery was already acked, retried or taken over by another
    /// worker after its lease ended.
    #[error("delivery {0} is no longer held by this worker")]
    Lost(String),
}

/// One delivery of one job: send this transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub transaction_id: String,
    /// 1 for the first delivery.
    pub attempt: u32,
    /// The backend's handle for ack and retry.
    pub(crate) tag: String,
}

/// What a retry did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryOutcome {
    /// Delivered again after this delay.
    Requeued(Duration),
    /// Past the delivery limit: parked where `stats` counts it as dead.
    DeadLettered,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QueueStats {
    pub queued: u64,
    pub in_flight: u64,
    pub dead: u64,
}

/// Retry policy shared by every backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Deliveries before an entry is dead-lettered.
    pub max_deliveries: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long a worker holds a delivery before it is handed to another.
    pub lease: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_deliveries: 8,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            lease: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Exponential backoff after the `attempt`-th delivery failed.
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

#[async_trait]
pub trait Queue: Send + Sync + std::fmt::Debug + 'static {
    /// The next ready delivery, waiting up to `wait` for one.
    async fn receive(&self, wait: Duration) -> Result<Option<Delivery>, QueueError>;

    /// Done: the entry is removed. Call only after the outcome is persisted.
    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError>;

    /// Failed: delivered again after a backoff, or dead-lettered past the
    /// limit, with `error` kept for the operator.
    async fn retry(&self, delivery: &Delivery, error: &str) -> Result<RetryOutcome, QueueError>;

    async fn stats(&self) -> Result<QueueStats, QueueError>;
}
