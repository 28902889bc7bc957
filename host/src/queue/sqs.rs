//! Amazon SQS (or a compatible server: LocalStack, moto) through
//! aws-sdk-sqs. Receives long-poll. A received message stays invisible to
//! other consumers while a worker holds it: a heartbeat extends its
//! visibility timeout every half lease, so a slow send is not handed to a
//! second worker, while a host that dies stops the heartbeat and the message
//! comes back one lease later. Ack deletes; retry makes the message visible
//! again after the backoff (SQS counts the receive, so `attempt` is its
//! `ApproximateReceiveCount`); poison messages move to the dead-letter queue
//! through the queue's redrive policy (`maxReceiveCount`), or are moved there
//! by `retry` at the limit.
//!
//! Credentials come from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
//! `AWS_SESSION_TOKEN`; a compatible server accepts any.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName, SendMessageBatchRequestEntry};

use super::{Broker, Delivery, Holds, Queue, QueueError, QueueStats, RetryOutcome, RetryPolicy, SqsQueueRef};

/// SQS's longest long poll.
const MAX_POLL: Duration = Duration::from_secs(20);
/// A worker holding a message longer than this many leases has lost it:
/// the heartbeat stops and the message goes to another worker.
const MAX_HOLD_LEASES: u32 = 10;
/// SQS's largest batch.
const BATCH: usize = 10;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqsSettings {
    pub queue: SqsQueueRef,
    /// Another endpoint than AWS's.
    pub endpoint_url: Option<String>,
    pub region: String,
}

#[derive(Debug)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
    dead_url: String,
    policy: RetryPolicy,
    held: Holds<Held>,
    closed: AtomicBool,
}

#[derive(Debug)]
struct Held {
    receipt: String,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl SqsQueue {
    /// Resolves the queue and its dead-letter queue, creating both for
    /// `sqs://<name>`; an unreachable endpoint or a queue URL without a
    /// redrive policy is an error here.
    pub async fn connect(settings: SqsSettings, policy: RetryPolicy) -> Result<Self, QueueError> {
        let client = client(&settings)?;
        let (queue_url, dead_url) = match &settings.queue {
            SqsQueueRef::Name(name) => create(&client, name, &policy).await?,
            SqsQueueRef::Url(url) => (url.clone(), dead_letter_queue_of(&client, url).await?),
        };
        tracing::info!(queue = %queue_url, dead_letters = %dead_url, "using SQS");
        Ok(SqsQueue { client, queue_url, dead_url, policy, held: Holds::default(), closed: AtomicBool::new(false) })
    }

    pub fn queue_url(&self) -> &str {
        &self.queue_url
    }

    fn lease_seconds(&self) -> i32 {
        seconds(self.policy.lease).max(1)
    }

    fn open(&self) -> Result<(), QueueError> {
        match self.closed.load(Ordering::Relaxed) {
            true => Err(QueueError::Unavailable("the SQS queue is closed".into())),
            false => Ok(()),
        }
    }

    /// Keeps the message invisible while its worker holds it.
    fn heartbeat(&self, receipt: String) -> tokio::task::JoinHandle<()> {
        let (client, queue_url, lease) = (self.client.clone(), self.queue_url.clone(), self.policy.lease);
        let timeout = self.lease_seconds();
        tokio::spawn(async move {
            let beat = (lease / 2).max(Duration::from_millis(500));
            for _ in 0..MAX_HOLD_LEASES * 2 {
                tokio::time::sleep(beat).await;
                let extended = client
                    .change_message_visibility()
                    .queue_url(&queue_url)
                    .receipt_handle(&receipt)
                    .visibility_timeout(timeout)
                    .send()
                    .await;
                if let Err(error) = extended {
                    tracing::warn!(error = %DisplayErrorContext(&error), "could not extend an SQS message's lease");
                }
            }
        })
    }

    async fn delete(&self, receipt: &str, tag: &str) -> Result<(), QueueError> {
        self.client.delete_message().queue_url(&self.queue_url).receipt_handle(receipt).send().await.map_err(|e| {
            if e.code() == Some("ReceiptHandleIsInvalid") { QueueError::Lost(tag.to_string()) } else { sdk(e) }
        })?;
        Ok(())
    }

    async fn dead_letter(&self, body: &str, receipt: &str, reason: &str, tag: &str) -> Result<(), QueueError> {
        let reason = aws_sdk_sqs::types::MessageAttributeValue::builder()
            .data_type("String")
            .string_value(reason.chars().take(512).collect::<String>())
            .build()
            .map_err(|e| QueueError::Backend(e.to_string()))?;
        self.client
            .send_message()
            .queue_url(&self.dead_url)
            .message_body(body)
            .message_attributes("error", reason)
            .send()
            .await
            .map_err(sdk)?;
        self.delete(receipt, tag).await
    }

    async fn attributes(&self, url: &str) -> Result<HashMap<QueueAttributeName, String>, QueueError> {
        let out = self
            .client
            .get_queue_attributes()
            .queue_url(url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            .send()
            .await
            .map_err(sdk)?;
        Ok(out.attributes.unwrap_or_default())
    }
}

#[async_trait]
impl Queue for SqsQueue {
    async fn receive(&self, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            self.open()?;
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let out = self
                .client
                .receive_message()
                .queue_url(&self.queue_url)
                .max_number_of_messages(1)
                .wait_time_seconds(seconds_down(left.min(MAX_POLL)))
                .visibility_timeout(self.lease_seconds())
                .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(sdk)?;
            if let Some(message) = out.messages.unwrap_or_default().into_iter().next() {
                let receipt = message.receipt_handle.clone().unwrap_or_default();
                let tag = uuid::Uuid::new_v4().simple().to_string();
                let attempt = message
                    .attributes
                    .as_ref()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|count| count.parse::<u32>().ok())
                    .unwrap_or(1);
                let body = message.body.unwrap_or_default();
                let problem = if !valid_id(&body) {
                    Some("the message body is not a transaction id".to_string())
                } else if attempt > self.policy.max_deliveries {
                    Some(format!("received {attempt} times: past the limit (is the redrive policy missing?)"))
                } else {
                    None
                };
                if let Some(problem) = problem {
                    tracing::warn!(queue = %self.queue_url, %problem, "dead-lettering an SQS message");
                    self.dead_letter(&body, &receipt, &problem, &tag).await?;
                    continue;
                }
                let heartbeat = self.heartbeat(receipt.clone());
                self.held.hold(tag.clone(), Held { receipt, heartbeat });
                return Ok(Some(Delivery { transaction_id: body, attempt, tag }));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(None);
            }
            // A poll shorter than SQS's one-second grain: wait out the rest.
            if left < Duration::from_secs(1) {
                tokio::time::sleep(left.min(Duration::from_millis(100))).await;
            }
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let held = self.held.take(delivery)?;
        self.delete(&held.receipt, &delivery.tag).await
    }

    async fn retry(&self, delivery: &Delivery, error: &str) -> Result<RetryOutcome, QueueError> {
        let held = self.held.take(delivery)?;
        held.heartbeat.abort();
        if delivery.attempt >= self.policy.max_deliveries {
            self.dead_letter(&delivery.transaction_id, &held.receipt, error, &delivery.tag).await?;
            return Ok(RetryOutcome::DeadLettered);
        }
        // SQS counts visibility in whole seconds.
        let delay = Duration::from_secs(seconds(self.policy.delay(delivery.attempt)) as u64);
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(&held.receipt)
            .visibility_timeout(seconds(delay))
            .send()
            .await
            .map_err(|e| {
                if e.code() == Some("ReceiptHandleIsInvalid") { QueueError::Lost(delivery.tag.clone()) } else { sdk(e) }
            })?;
        Ok(RetryOutcome::Requeued(delay))
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let count = |attributes: &HashMap<QueueAttributeName, String>, name: QueueAttributeName| {
            attributes.get(&name).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0)
        };
        let work = self.attributes(&self.queue_url).await?;
        let dead = self.attributes(&self.dead_url).await?;
        let in_flight = self.held.count();
        // Invisible messages are held by a worker or waiting out a backoff;
        // this host knows only its own workers'.
        let invisible = count(&work, QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        let queued = count(&work, QueueAttributeName::ApproximateNumberOfMessages)
            + count(&work, QueueAttributeName::ApproximateNumberOfMessagesDelayed)
            + invisible.saturating_sub(in_flight);
        Ok(QueueStats { queued, in_flight, dead: count(&dead, QueueAttributeName::ApproximateNumberOfMessages) })
    }

    async fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        // Dropping a hold stops its heartbeat: the message comes back one
        // lease later.
        self.held.clear();
    }
}

#[async_trait]
impl Broker for SqsQueue {
    async fn publish(&self, transaction_ids: &[String]) -> Result<(), QueueError> {
        self.open()?;
        for chunk in transaction_ids.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, id)| SendMessageBatchRequestEntry::builder().id(i.to_string()).message_body(id).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| QueueError::Backend(e.to_string()))?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sdk)?;
            if let Some(failed) = out.failed.first() {
                return Err(QueueError::Backend(format!(
                    "SQS refused a message: {} ({})",
                    failed.message.as_deref().unwrap_or("no reason given"),
                    failed.code
                )));
            }
        }
        Ok(())
    }
}

fn client(settings: &SqsSettings) -> Result<Client, QueueError> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let credentials = Credentials::new(
        env("AWS_ACCESS_KEY_ID").unwrap_or_default(),
        env("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
        env("AWS_SESSION_TOKEN"),
        None,
        "environment",
    );
    let endpoint = settings.endpoint_url.clone().or_else(|| match &settings.queue {
        SqsQueueRef::Url(url) => url
            .split_once("://")
            .and_then(|(scheme, rest)| rest.split_once('/').map(|(host, _)| format!("{scheme}://{host}"))),
        SqsQueueRef::Name(_) => None,
    });
    let timeouts = aws_sdk_sqs::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(MAX_POLL + Duration::from_secs(10))
        .build();
    let mut config = aws_sdk_sqs::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(settings.region.clone()))
        .credentials_provider(credentials)
        .timeout_config(timeouts)
        .http_client(http_client(endpoint.as_deref())?);
    if let Some(endpoint) = endpoint {
        config = config.endpoint_url(endpoint);
    }
    Ok(Client::from_conf(config.build()))
}

/// Plain HTTP, as this build has no TLS; `--features tls` adds https.
#[cfg(not(feature = "tls"))]
fn http_client(endpoint: Option<&str>) -> Result<aws_sdk_sqs::config::SharedHttpClient, QueueError> {
    if !endpoint.is_some_and(|e| e.starts_with("http://")) {
        return Err(QueueError::Backend(
            "SQS over https needs a build with TLS (cargo build --features tls); set queue.sqs.endpoint_url to an \
             http:// endpoint otherwise"
                .into(),
        ));
    }
    Ok(aws_smithy_http_client::Builder::new().build_http())
}

#[cfg(feature = "tls")]
fn http_client(_endpoint: Option<&str>) -> Result<aws_sdk_sqs::config::SharedHttpClient, QueueError> {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    Ok(aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https())
}

/// Creates `<name>` with its redrive policy to `<name>-dead`, or finds them.
async fn create(client: &Client, name: &str, policy: &RetryPolicy) -> Result<(String, String), QueueError> {
    let dead_name = format!("{name}-dead");
    let dead_url =
        client.create_queue().queue_name(&dead_name).send().await.map_err(sdk)?.queue_url.unwrap_or_default();
    let dead_arn = client
        .get_queue_attributes()
        .queue_url(&dead_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(sdk)?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::QueueArn))
        .ok_or_else(|| QueueError::Backend(format!("SQS did not give the ARN of `{dead_name}`")))?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dead_arn,
        "maxReceiveCount": policy.max_deliveries.to_string(),
    })
    .to_string();
    let created = client
        .create_queue()
        .queue_name(name)
        .attributes(QueueAttributeName::RedrivePolicy, redrive)
        .attributes(QueueAttributeName::VisibilityTimeout, seconds(policy.lease).max(1).to_string())
        .send()
        .await
        .map_err(|e| match e.code() {
            Some("QueueAlreadyExists" | "QueueNameExists") => QueueError::Backend(format!(
                "SQS queue `{name}` exists with other attributes (another queue.max_deliveries or lease?): \
                 delete it or use another name"
            )),
            _ => sdk(e),
        })?;
    Ok((created.queue_url.unwrap_or_default(), dead_url))
}

/// The dead-letter queue a queue's redrive policy names.
async fn dead_letter_queue_of(client: &Client, url: &str) -> Result<String, QueueError> {
    let policy = client
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::RedrivePolicy)
        .send()
        .await
        .map_err(sdk)?
        .attributes
        .and_then(|mut a| a.remove(&QueueAttributeName::RedrivePolicy))
        .ok_or_else(|| {
            QueueError::Backend(format!(
                "SQS queue {url} has no redrive policy: give it a dead-letter queue and maxReceiveCount"
            ))
        })?;
    let arn = serde_json::from_str::<serde_json::Value>(&policy)
        .ok()
        .and_then(|p| p["deadLetterTargetArn"].as_str().map(str::to_owned))
        .ok_or_else(|| QueueError::Backend(format!("SQS queue {url} has a redrive policy without a target")))?;
    let name = arn.rsplit(':').next().unwrap_or_default();
    let out = client.get_queue_url().queue_name(name).send().await.map_err(sdk)?;
    Ok(out.queue_url.unwrap_or_default())
}

fn valid_id(body: &str) -> bool {
    !body.is_empty() && body.len() <= 255 && !body.chars().any(char::is_control)
}

/// Whole seconds, rounded up, as SQS counts them.
fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis().div_ceil(1000)).unwrap_or(i32::MAX)
}

fn seconds_down(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)
}

/// Transport faults mean the endpoint is unreachable; the rest are SQS's
/// answers, told by their code and message.
fn sdk<E, R>(error: SdkError<E, R>) -> QueueError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match &error {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            QueueError::Unavailable(format!("SQS is unreachable: {}", DisplayErrorContext(&error)))
        }
        SdkError::ServiceError(_) => QueueError::Backend(format!(
            "SQS refused: {} ({})",
            error.message().unwrap_or("no message"),
            error.code().unwrap_or("no code")
        )),
        _ => QueueError::Backend(format!("SQS: {}", DisplayErrorContext(&error))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqs_counts_whole_seconds() {
        assert_eq!(seconds(Duration::from_millis(400)), 1);
        assert_eq!(seconds(Duration::from_secs(2)), 2);
        assert_eq!(seconds_down(Duration::from_millis(1900)), 1);
    }

    #[test]
    fn transaction_ids_are_short_printable_text() {
        assert!(valid_id("0b8f3c1e-4f5a-4d4e-9a59-5c8e6a0f1d2c"));
        assert!(!valid_id(""));
        assert!(!valid_id("a\nb"));
        assert!(!valid_id(&"x".repeat(256)));
    }
}
