//! Webhook delivery: each subscription reads the event log in order from
//! where it stands and POSTs the events of its types, signed with
//! HMAC-SHA256 of the body under its secret. A failed delivery is retried
//! with exponential backoff (the subscription waits: events arrive in
//! order); after `max_attempts` it is dead-lettered and the subscription
//! moves on. One replica at a time delivers a subscription (a lease in the
//! database), and its position is saved after every event.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use tokio::sync::watch;

use crate::api::wire::EventView;
use crate::config::redact_url;
use crate::store::{Event, Progress, Store, StoreError, Webhook, now_ms};

/// The signature header: `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-switchyard-signature";
pub const EVENT_HEADER: &str = "x-switchyard-event";
/// The event's id: the same event delivered twice carries the same one.
pub const DELIVERY_HEADER: &str = "x-switchyard-delivery";

/// How long a replica holds a subscription between rounds.
const LEASE_MS: i64 = 30_000;
/// A round stops taking new events after this long, well inside the lease.
const ROUND_BUDGET: Duration = Duration::from_secs(10);
const BATCH: u32 = 100;

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WebhookSettings {
    /// Attempts at one event before it is dead-lettered.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Bounds each delivery.
    pub timeout: Duration,
    /// How often the subscriptions are looked at.
    pub poll: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            poll: Duration::from_millis(500),
        }
    }
}

impl WebhookSettings {
    /// The wait after the `failures`-th failed attempt: doubling from the
    /// base delay, capped.
    pub fn backoff(&self, failures: u32) -> Duration {
        crate::queue::backoff(self.base_delay, self.max_delay, failures)
    }
}

/// The hex HMAC-SHA256 of `body` under `secret`, as the signature header
/// carries it after `sha256=`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[derive(Debug)]
pub struct WebhookDispatcher {
    store: Arc<dyn Store>,
    client: reqwest::Client,
    /// This process, as the lease's owner.
    owner: String,
    settings: WebhookSettings,
}

impl WebhookDispatcher {
    pub fn new(store: Arc<dyn Store>, settings: WebhookSettings) -> Self {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            // A receiver's redirect is its answer, not a new target.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        WebhookDispatcher { store, client, owner: uuid::Uuid::new_v4().simple().to_string(), settings }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if *shutdown.borrow() {
                return;
            }
            if let Err(error) = self.round().await {
                tracing::warn!(%error, "webhooks: the store cannot be read; trying again");
            }
            tokio::select! {
                // A dropped sender is a shutdown too; waiting on it again would spin.
                changed = shutdown.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(self.settings.poll) => {}
            }
        }
    }

    /// Delivers what each subscription this replica can lease has pending.
    pub async fn round(&self) -> Result<(), StoreError> {
        for hook in self.store.webhooks().await? {
            let now = now_ms();
            if hook.retry_at > now || !self.store.lease_webhook(&hook.id, &self.owner, now, now + LEASE_MS).await? {
                continue;
            }
            self.deliver(hook).await?;
        }
        Ok(())
    }

    async fn deliver(&self, hook: Webhook) -> Result<(), StoreError> {
        let started = Instant::now();
        let mut through = None;
        let mut failed_before = hook.failures;
        for event in self.store.events_ready(hook.delivered_through, BATCH).await? {
            if started.elapsed() > ROUND_BUDGET {
                break;
            }
            if !hook.kinds.is_empty() && !hook.kinds.contains(&event.kind) {
                through = Some(event.id);
                continue;
            }
            if let Err(error) = self.post(&hook, &event).await {
                let failures = failed_before + 1;
                let event_id = event.id;
                tracing::warn!(webhook = %hook.id, event = event_id, failures, %error, "webhook delivery failed");
                let progress = if failures >= self.settings.max_attempts {
                    tracing::warn!(webhook = %hook.id, event = event_id, "webhook delivery dead-lettered");
                    Progress::GaveUp { event_id, attempts: failures, error }
                } else {
                    let wait = i64::try_from(self.settings.backoff(failures).as_millis()).unwrap_or(i64::MAX);
                    Progress::Failed { failures, retry_at: now_ms().saturating_add(wait), error }
                };
                if let Some(through) = through {
                    self.store.record_progress(&hook.id, &self.owner, &Progress::Through(through)).await?;
                }
                return self.store.record_progress(&hook.id, &self.owner, &progress).await;
            }
            // Saved at once: a crash re-sends at most this event.
            self.store.record_progress(&hook.id, &self.owner, &Progress::Through(event.id)).await?;
            through = None;
            failed_before = 0;
        }
        match through {
            Some(through) => self.store.record_progress(&hook.id, &self.owner, &Progress::Through(through)).await,
            None => Ok(()),
        }
    }

    async fn post(&self, hook: &Webhook, event: &Event) -> Result<(), String> {
        let body = serde_json::to_vec(&EventView::from(event.clone())).map_err(|e| e.to_string())?;
        let answer = self
            .client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, format!("sha256={}", signature(&hook.secret, &body)))
            .header(EVENT_HEADER, event.kind.as_str())
            .header(DELIVERY_HEADER, event.id.to_string())
            .body(body)
            .send()
            .await
            // reqwest's errors name the URL, which may hold credentials.
            .map_err(|e| format!("{} did not answer: {}", redact_url(&hook.url), e.without_url()))?;
        match answer.status() {
            status if status.is_success() => Ok(()),
            status => Err(format!("{} answered {status}", redact_url(&hook.url))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap() {
        let settings = WebhookSettings {
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            ..WebhookSettings::default()
        };
        let waits: Vec<u64> = (1..=6).map(|n| settings.backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
