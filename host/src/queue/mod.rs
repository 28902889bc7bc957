//! The work queue between the API and the send worker. One trait,
//! [`Queue`]; the embedded default ([`embedded::EmbeddedQueue`]) consumes
//! the store's outbox in place, so it needs no broker and survives restarts.
//! A [`Broker`] (RabbitMQ, SQS) is fed from the same outbox by
//! [`outbox::Brokered`]'s relay.
//!
//! Delivery is at least once: an entry whose worker died without acking is
//! delivered again when its lease ends, so the worker must be idempotent by
//! transaction id (it is: see `pipeline`).

pub mod amqp;
pub mod embedded;
pub mod outbox;
pub mod sqs;

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

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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
        backoff(self.base_delay, self.max_delay, attempt)
    }
}

/// `base` after the first failed attempt, doubling with each one, at most
/// `max` (the queue's redeliveries and webhook retries).
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.saturating_sub(1)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

/// Which queue `queue_url` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueBackend {
    /// The store's own outbox.
    Embedded,
    /// RabbitMQ at this `amqp://` URL.
    Amqp(String),
    /// SQS: a queue name (`sqs://<name>`) or a queue URL.
    Sqs(SqsQueueRef),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqsQueueRef {
    /// Created, with its dead-letter queue, when missing.
    Name(String),
    /// Used as it is: its redrive policy is the operator's.
    Url(String),
}

impl QueueBackend {
    /// Reads `queue_url`; the error names what is wrong without the
    /// password.
    pub fn parse(url: &str) -> Result<Self, String> {
        let shown = crate::config::redact_url(url);
        if url == "embedded" {
            return Ok(QueueBackend::Embedded);
        }
        if url.starts_with("amqp://") {
            return Ok(QueueBackend::Amqp(url.to_string()));
        }
        if url.starts_with("amqps://") {
            return Err(format!("`{shown}`: this build speaks amqp:// only (TLS to RabbitMQ is not compiled in)"));
        }
        if let Some(name) = url.strip_prefix("sqs://") {
            let valid = !name.is_empty()
                && name.len() <= 75
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !valid {
                return Err(format!("`{shown}`: an SQS queue name is 1-75 of [A-Za-z0-9_-]"));
            }
            return Ok(QueueBackend::Sqs(SqsQueueRef::Name(name.to_string())));
        }
        if url.starts_with("http://") || url.starts_with("https://") {
            // https://sqs.<region>.amazonaws.com/<account>/<name>
            let path = url.split_once("://").map_or("", |(_, rest)| rest).split_once('/').map_or("", |(_, p)| p);
            if path.split('/').filter(|part| !part.is_empty()).count() != 2 {
                return Err(format!("`{shown}` is not an SQS queue URL (…/<account>/<queue name>)"));
            }
            return Ok(QueueBackend::Sqs(SqsQueueRef::Url(url.to_string())));
        }
        Err(format!("`{shown}` is not a queue: use `embedded`, `amqp://…`, `sqs://<name>` or an SQS queue URL"))
    }
}

/// What a broker's workers hold, by delivery tag: a tag not here was acked,
/// retried or lost with its connection, and is refused as `Lost`.
#[derive(Debug)]
struct Holds<T>(std::sync::Mutex<std::collections::HashMap<String, T>>);

impl<T> Default for Holds<T> {
    fn default() -> Self {
        Holds(Default::default())
    }
}

impl<T> Holds<T> {
    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, T>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn hold(&self, tag: String, held: T) {
        self.map().insert(tag, held);
    }

    fn take(&self, delivery: &Delivery) -> Result<T, QueueError> {
        self.map().remove(&delivery.tag).ok_or_else(|| QueueError::Lost(delivery.tag.clone()))
    }

    fn count(&self) -> u64 {
        self.map().len() as u64
    }

    fn clear(&self) {
        self.map().clear();
    }
}

/// A database error as the queue reports it.
fn database(e: sqlx::Error) -> QueueError {
    if crate::store::sql::unreachable(&e) {
        QueueError::Unavailable(e.to_string())
    } else {
        QueueError::Backend(e.to_string())
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

    /// Lets go of the backend at shutdown. A broker returns the deliveries
    /// this host still holds to its queue at once, as it does when the host
    /// dies; the embedded queue has nothing to let go (leases run out).
    async fn close(&self) {}
}

/// A queue on a message broker, fed from the outbox.
#[async_trait]
pub trait Broker: Queue {
    /// One message per transaction, in order, each confirmed by the broker
    /// before this returns.
    async fn publish(&self, transaction_ids: &[String]) -> Result<(), QueueError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_name_their_backend() {
        assert_eq!(QueueBackend::parse("embedded"), Ok(QueueBackend::Embedded));
        let amqp = "amqp://guest:guest@127.0.0.1:5672/%2f";
        assert_eq!(QueueBackend::parse(amqp), Ok(QueueBackend::Amqp(amqp.into())));
        assert_eq!(QueueBackend::parse("sqs://work-1"), Ok(QueueBackend::Sqs(SqsQueueRef::Name("work-1".into()))));
        let url = "http://127.0.0.1:4566/000000000000/work";
        assert_eq!(QueueBackend::parse(url), Ok(QueueBackend::Sqs(SqsQueueRef::Url(url.into()))));
        for bad in ["", "kafka://k", "sqs://", "sqs://a b", "http://127.0.0.1:4566/work", "amqps://u:hunter2@h"] {
            let error = QueueBackend::parse(bad).unwrap_err();
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
