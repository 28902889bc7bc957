//! RabbitMQ through lapin. The topology, declared on every (re)connect:
//!
//! - `<name>`: a durable quorum queue the workers consume, with a bounded
//!   prefetch. Its `x-delivery-limit` dead-letters a message whose workers
//!   keep dying before they ack it (the broker counts those returns).
//! - `<name>.retry.<ms>`: one delay queue per backoff step; a retried message
//!   waits there for its TTL, then the broker dead-letters it back onto
//!   `<name>`. One queue per delay, because a TTL only expires at the head.
//! - `<name>.dlx` (fanout) → `<name>.dead`: where poison messages end.
//!
//! Every publish waits for the broker's confirm. The message body is the
//! transaction id; the header `x-switchyard-attempt` carries the deliveries
//! spent before the last retry, and the broker's `x-delivery-count` adds the
//! ones lost to crashes. A lost connection is reopened by the next call;
//! deliveries held on the old one are returned by the broker and their tags
//! refused here, so a late ack cannot hit a newer delivery.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::acker::Acker;
use lapin::message::Delivery as AmqpDelivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Mutex, mpsc};

use super::{Broker, Delivery, Holds, Queue, QueueError, QueueStats, RetryOutcome, RetryPolicy};
use crate::config::redact_url;

/// How long connecting may take before the broker counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The least time between two reconnects, so workers polling a broker that
/// is down do not hammer it.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);
const ATTEMPT_HEADER: &str = "x-switchyard-attempt";
const ERROR_HEADER: &str = "x-switchyard-error";
/// Persistent: the message survives a broker restart.
const PERSISTENT: u8 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AmqpSettings {
    /// `amqp://user:password@host:port/vhost`.
    pub url: String,
    /// The work queue's name; the others are named after it.
    pub name: String,
    /// Deliveries the broker hands this host before it acks one.
    pub prefetch: u16,
    /// `false` on a replica that only publishes (`queue.workers = 0`): it
    /// opens no consumer, so the broker hands it nothing to hold.
    pub consume: bool,
}

pub struct AmqpQueue {
    settings: AmqpSettings,
    policy: RetryPolicy,
    session: Mutex<Option<Arc<Session>>>,
    last_connect: Mutex<Option<tokio::time::Instant>>,
    /// Deliveries handed to workers, by tag.
    held: Holds<Acker>,
    generations: AtomicU64,
    closed: AtomicBool,
}

impl std::fmt::Debug for AmqpQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpQueue")
            .field("url", &redact_url(&self.settings.url))
            .field("name", &self.settings.name)
            .finish_non_exhaustive()
    }
}

/// One connection: a consuming channel fed into `deliveries` by a pump
/// task, and a publishing channel in confirm mode.
struct Session {
    generation: u64,
    connection: Connection,
    publisher: Channel,
    deliveries: Mutex<mpsc::UnboundedReceiver<AmqpDelivery>>,
    /// Pumped but not yet taken by a worker: still waiting, so `queued`.
    buffered: Arc<AtomicUsize>,
    broken: Arc<AtomicBool>,
    /// `None` when this host does not consume.
    pump: Option<tokio::task::JoinHandle<()>>,
}

impl Session {
    fn alive(&self) -> bool {
        !self.broken.load(Ordering::Relaxed) && self.connection.status().connected()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(pump) = &self.pump {
            pump.abort();
        }
    }
}

impl AmqpQueue {
    /// Connects and declares the topology; an unreachable broker or a
    /// queue declared elsewhere with other arguments is an error here.
    pub async fn connect(settings: AmqpSettings, policy: RetryPolicy) -> Result<Self, QueueError> {
        let queue = AmqpQueue {
            settings,
            policy,
            session: Mutex::new(None),
            last_connect: Mutex::new(None),
            held: Holds::default(),
            generations: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        };
        queue.session().await?;
        Ok(queue)
    }

    fn names(&self) -> Names {
        Names::new(&self.settings.name, &self.policy)
    }

    /// The live session, reconnecting when the last one was lost.
    async fn session(&self) -> Result<Arc<Session>, QueueError> {
        let mut slot = self.session.lock().await;
        if self.closed.load(Ordering::Relaxed) {
            return Err(QueueError::Unavailable("the RabbitMQ queue is closed".into()));
        }
        if let Some(session) = slot.as_ref() {
            if session.alive() {
                return Ok(session.clone());
            }
            tracing::warn!(queue = %self.settings.name, "RabbitMQ connection lost; reconnecting");
            *slot = None;
            // Its deliveries go back to the queue with the connection.
            self.held.clear();
        }
        {
            let mut last = self.last_connect.lock().await;
            if let Some(at) = *last
                && at.elapsed() < RECONNECT_PAUSE
            {
                tokio::time::sleep(RECONNECT_PAUSE - at.elapsed()).await;
            }
            *last = Some(tokio::time::Instant::now());
        }
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        let session = Arc::new(self.open(generation).await?);
        *slot = Some(session.clone());
        Ok(session)
    }

    async fn open(&self, generation: u64) -> Result<Session, QueueError> {
        let url = redact_url(&self.settings.url);
        let properties = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio::current());
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&self.settings.url, properties))
            .await
            .map_err(|_| QueueError::Unavailable(format!("RabbitMQ at {url} did not answer in {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| QueueError::Unavailable(format!("cannot reach RabbitMQ at {url}: {e}")))?;
        let publisher = connection.create_channel().await.map_err(lost)?;
        self.declare(&publisher).await?;
        publisher.confirm_select(ConfirmSelectOptions::default()).await.map_err(lost)?;

        let (tx, rx) = mpsc::unbounded_channel();
        let buffered = Arc::new(AtomicUsize::new(0));
        let broken = Arc::new(AtomicBool::new(false));
        let pump = match self.settings.consume {
            true => Some(self.consume(&connection, tx, buffered.clone(), broken.clone()).await?),
            false => None,
        };
        tracing::info!(queue = %self.settings.name, %url, generation, "connected to RabbitMQ");
        Ok(Session { generation, connection, publisher, deliveries: Mutex::new(rx), buffered, broken, pump })
    }

    /// Opens the consuming channel and the task that pumps its deliveries
    /// into `pumped`; `broken` turns true when the consumer ends.
    async fn consume(
        &self,
        connection: &Connection,
        pumped: mpsc::UnboundedSender<AmqpDelivery>,
        buffered: Arc<AtomicUsize>,
        broken: Arc<AtomicBool>,
    ) -> Result<tokio::task::JoinHandle<()>, QueueError> {
        let channel = connection.create_channel().await.map_err(lost)?;
        channel.basic_qos(self.settings.prefetch, BasicQosOptions::default()).await.map_err(lost)?;
        let consumer_tag = format!("switchyard-{}", uuid::Uuid::new_v4().simple());
        let mut consumer = channel
            .basic_consume(
                self.settings.name.as_str(),
                consumer_tag.as_str(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(lost)?;
        Ok(tokio::spawn(async move {
            // The channel is kept alive as long as its consumer.
            let _channel = channel;
            while let Some(Ok(delivery)) = consumer.next().await {
                buffered.fetch_add(1, Ordering::Relaxed);
                if pumped.send(delivery).is_err() {
                    break;
                }
            }
            broken.store(true, Ordering::Relaxed);
        }))
    }

    async fn declare(&self, channel: &Channel) -> Result<(), QueueError> {
        let names = self.names();
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        let quorum = |extra: &[(&str, AMQPValue)]| {
            let mut args = FieldTable::default();
            args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
            for (key, value) in extra {
                args.insert((*key).into(), value.clone());
            }
            args
        };
        let declare = |queue: String, args: FieldTable| async move {
            channel.queue_declare(queue.as_str(), durable, args).await.map_err(|e| conflict(&queue, e))
        };
        channel
            .exchange_declare(
                names.dead_letter_exchange.as_str(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .map_err(|e| conflict(&names.dead_letter_exchange, e))?;
        declare(names.dead.clone(), quorum(&[])).await?;
        channel
            .queue_bind(
                names.dead.as_str(),
                names.dead_letter_exchange.as_str(),
                "",
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(lost)?;
        let limit = i64::from(self.policy.max_deliveries.saturating_sub(1));
        declare(
            names.work.clone(),
            quorum(&[
                ("x-delivery-limit", AMQPValue::LongLongInt(limit)),
                ("x-dead-letter-exchange", AMQPValue::LongString(names.dead_letter_exchange.as_str().into())),
            ]),
        )
        .await?;
        for (delay, queue) in &names.delays {
            let mut args = FieldTable::default();
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(*delay as i64));
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
            args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(names.work.as_str().into()));
            declare(queue.clone(), args).await?;
        }
        Ok(())
    }

    /// Publishes to `exchange` with `routing_key` and waits for the confirm.
    async fn publish_one(
        &self,
        session: &Session,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        headers: FieldTable,
    ) -> Result<(), QueueError> {
        let confirm = session
            .publisher
            .basic_publish(
                exchange,
                routing_key,
                BasicPublishOptions { mandatory: true, ..Default::default() },
                body,
                BasicProperties::default().with_delivery_mode(PERSISTENT).with_headers(headers),
            )
            .await
            .map_err(|e| self.broken(session, e))?;
        confirmed(confirm.await.map_err(|e| self.broken(session, e))?, routing_key)
    }

    fn broken(&self, session: &Session, error: lapin::Error) -> QueueError {
        session.broken.store(true, Ordering::Relaxed);
        lost(error)
    }

    /// Turns a broker message into a delivery, or dead-letters it when it is
    /// past the limit or not a transaction id.
    async fn accept(&self, session: &Session, message: AmqpDelivery) -> Result<Option<Delivery>, QueueError> {
        let headers = message.properties.headers().clone().unwrap_or_default();
        let spent = header_count(&headers, ATTEMPT_HEADER).unwrap_or(1);
        let returns = header_count(&headers, "x-delivery-count").unwrap_or(0);
        let attempt = u32::try_from(spent.saturating_add(returns)).unwrap_or(u32::MAX);
        let transaction_id = std::str::from_utf8(&message.data)
            .ok()
            .filter(|id| !id.is_empty() && id.len() <= 255 && !id.chars().any(char::is_control))
            .map(str::to_owned);
        let problem = match &transaction_id {
            None => Some("the message body is not a transaction id".to_string()),
            Some(_) if attempt > self.policy.max_deliveries => {
                Some(format!("abandoned by {} workers that stopped without acking", attempt - 1))
            }
            Some(_) => None,
        };
        if let Some(problem) = problem {
            tracing::warn!(queue = %self.settings.name, %problem, "dead-lettering a broker message");
            self.dead_letter(session, &message.data, attempt, &problem).await?;
            settle(message.acker.ack(BasicAckOptions::default()).await, "dead-lettered")?;
            return Ok(None);
        }
        let tag = format!("{}:{}", session.generation, message.delivery_tag);
        self.held.hold(tag.clone(), message.acker);
        Ok(transaction_id.map(|transaction_id| Delivery { transaction_id, attempt, tag }))
    }

    async fn dead_letter(&self, session: &Session, body: &[u8], attempt: u32, error: &str) -> Result<(), QueueError> {
        let mut headers = FieldTable::default();
        headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(i64::from(attempt)));
        headers.insert(ERROR_HEADER.into(), AMQPValue::LongString(truncate(error).into()));
        self.publish_one(session, &self.names().dead_letter_exchange, "", body, headers).await
    }

    /// The session a delivery came on, if it is still the live one.
    async fn session_of(&self, delivery: &Delivery) -> Result<Arc<Session>, QueueError> {
        let session = self.session().await?;
        let generation = delivery.tag.split_once(':').and_then(|(g, _)| g.parse::<u64>().ok());
        if generation != Some(session.generation) {
            return Err(QueueError::Lost(delivery.tag.clone()));
        }
        Ok(session)
    }

    async fn ready(&self, session: &Session, queue: &str) -> Result<u64, QueueError> {
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        let declared = session
            .publisher
            .queue_declare(queue, passive, FieldTable::default())
            .await
            .map_err(|e| self.broken(session, e))?;
        Ok(u64::from(declared.message_count()))
    }
}

#[async_trait]
impl Queue for AmqpQueue {
    async fn receive(&self, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        if !self.settings.consume {
            return Err(QueueError::Backend("this host opened no consumer (queue.workers = 0)".into()));
        }
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let session = self.session().await?;
            let next = tokio::time::timeout_at(deadline, async { session.deliveries.lock().await.recv().await }).await;
            let message = match next {
                Err(_) => return Ok(None),
                Ok(None) => {
                    session.broken.store(true, Ordering::Relaxed);
                    return Err(QueueError::Unavailable("the RabbitMQ connection was lost".into()));
                }
                Ok(Some(message)) => message,
            };
            session.buffered.fetch_sub(1, Ordering::Relaxed);
            if let Some(delivery) = self.accept(&session, message).await? {
                return Ok(Some(delivery));
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let acker = self.held.take(delivery)?;
        settle(acker.ack(BasicAckOptions::default()).await, &delivery.tag)
    }

    async fn retry(&self, delivery: &Delivery, error: &str) -> Result<RetryOutcome, QueueError> {
        let acker = self.held.take(delivery)?;
        let session = self.session_of(delivery).await?;
        let body = delivery.transaction_id.as_bytes();
        let outcome = if delivery.attempt >= self.policy.max_deliveries {
            self.dead_letter(&session, body, delivery.attempt, error).await?;
            RetryOutcome::DeadLettered
        } else {
            let delay = self.policy.delay(delivery.attempt);
            let mut headers = FieldTable::default();
            headers.insert(ATTEMPT_HEADER.into(), AMQPValue::LongLongInt(i64::from(delivery.attempt) + 1));
            headers.insert(ERROR_HEADER.into(), AMQPValue::LongString(truncate(error).into()));
            self.publish_one(&session, "", &Names::delay_queue(&self.settings.name, delay), body, headers).await?;
            RetryOutcome::Requeued(delay)
        };
        // Published before the original is acked: a crash in between leaves
        // a duplicate, which the worker's idempotence absorbs.
        settle(acker.ack(BasicAckOptions::default()).await, &delivery.tag)?;
        Ok(outcome)
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let session = self.session().await?;
        let names = self.names();
        let mut queued = self.ready(&session, &names.work).await?;
        for queue in names.delays.values() {
            queued += self.ready(&session, queue).await?;
        }
        queued += session.buffered.load(Ordering::Relaxed) as u64;
        let in_flight = self.held.count();
        let dead = self.ready(&session, &names.dead).await?;
        Ok(QueueStats { queued, in_flight, dead })
    }

    async fn close(&self) {
        let mut slot = self.session.lock().await;
        self.closed.store(true, Ordering::Relaxed);
        if let Some(session) = slot.take() {
            let _ = session.connection.close(200, "switchyard closing").await;
        }
        self.held.clear();
    }
}

#[async_trait]
impl Broker for AmqpQueue {
    async fn publish(&self, transaction_ids: &[String]) -> Result<(), QueueError> {
        let session = self.session().await?;
        let mut confirms = Vec::with_capacity(transaction_ids.len());
        for id in transaction_ids {
            let confirm = session
                .publisher
                .basic_publish(
                    "",
                    self.settings.name.as_str(),
                    BasicPublishOptions { mandatory: true, ..Default::default() },
                    id.as_bytes(),
                    BasicProperties::default().with_delivery_mode(PERSISTENT),
                )
                .await
                .map_err(|e| self.broken(&session, e))?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            confirmed(confirm.await.map_err(|e| self.broken(&session, e))?, &self.settings.name)?;
        }
        Ok(())
    }
}

/// The queue and exchange names derived from the work queue's.
struct Names {
    work: String,
    dead: String,
    dead_letter_exchange: String,
    /// Delay in milliseconds → its queue, one per distinct backoff step.
    delays: std::collections::BTreeMap<u128, String>,
}

impl Names {
    fn new(name: &str, policy: &RetryPolicy) -> Self {
        let delays = (1..policy.max_deliveries)
            .map(|attempt| policy.delay(attempt))
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|delay| (delay.as_millis(), Self::delay_queue(name, delay)))
            .collect();
        Names {
            work: name.to_string(),
            dead: format!("{name}.dead"),
            dead_letter_exchange: format!("{name}.dlx"),
            delays,
        }
    }

    fn delay_queue(name: &str, delay: Duration) -> String {
        format!("{name}.retry.{}", delay.as_millis())
    }
}

fn header_count(headers: &FieldTable, key: &str) -> Option<u64> {
    match headers.inner().get(key)? {
        AMQPValue::LongLongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongInt(n) => u64::try_from(*n).ok(),
        AMQPValue::LongUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortUInt(n) => Some(u64::from(*n)),
        AMQPValue::ShortShortInt(n) => u64::try_from(*n).ok(),
        AMQPValue::ShortShortUInt(n) => Some(u64::from(*n)),
        _ => None,
    }
}

/// An ack the broker refused or that found the channel gone: the delivery
/// went back to the queue.
fn settle(acked: lapin::Result<bool>, tag: &str) -> Result<(), QueueError> {
    match acked {
        Ok(true) => Ok(()),
        Ok(false) | Err(_) => Err(QueueError::Lost(tag.to_string())),
    }
}

fn confirmed(confirmation: lapin::publisher_confirm::Confirmation, routing_key: &str) -> Result<(), QueueError> {
    if confirmation.is_nack() {
        return Err(QueueError::Backend(format!("RabbitMQ refused a message for `{routing_key}`")));
    }
    if confirmation.take_message().is_some() {
        return Err(QueueError::Backend(format!("RabbitMQ has no queue `{routing_key}` to route to")));
    }
    Ok(())
}

fn lost(error: lapin::Error) -> QueueError {
    QueueError::Unavailable(format!("RabbitMQ: {error}"))
}

/// A declare the broker refused: usually the queue exists with other
/// arguments (another `max_deliveries`, or a classic queue).
fn conflict(name: &str, error: lapin::Error) -> QueueError {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => QueueError::Backend(format!(
            "RabbitMQ refused to declare `{name}`: {amqp}; if it exists with other arguments, delete it or set \
             another `queue.name`"
        )),
        _ => lost(error),
    }
}

/// Header values are bounded; an RPC error can be long.
fn truncate(text: &str) -> String {
    text.chars().take(512).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_delay_queue_per_distinct_backoff() {
        let policy = RetryPolicy {
            max_deliveries: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(2),
            lease: Duration::from_secs(1),
        };
        let names = Names::new("work", &policy);
        let delays: Vec<&str> = names.delays.values().map(String::as_str).collect();
        // 500, 1000, 2000, 2000, 2000 ms after attempts 1 to 5.
        assert_eq!(delays, ["work.retry.500", "work.retry.1000", "work.retry.2000"]);
        assert_eq!((names.dead.as_str(), names.dead_letter_exchange.as_str()), ("work.dead", "work.dlx"));
    }

    #[test]
    fn counts_read_from_any_integer_header() {
        let mut headers = FieldTable::default();
        headers.insert("a".into(), AMQPValue::LongInt(3));
        headers.insert("b".into(), AMQPValue::LongString("3".into()));
        headers.insert("c".into(), AMQPValue::LongLongInt(-1));
        assert_eq!(header_count(&headers, "a"), Some(3));
        assert_eq!(header_count(&headers, "b"), None);
        assert_eq!(header_count(&headers, "c"), None);
        assert_eq!(header_count(&headers, "missing"), None);
    }
}
