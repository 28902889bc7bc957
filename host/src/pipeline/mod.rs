//! The relay path after the HTTP layer, one way: submission (policy, then
//! store and outbox), queue, worker (selector, nonce, fee, signer, chain),
//! watcher (receipts, status).

mod commit;
mod fresh;
mod gasless;
mod idempotency;
mod pricing;
mod resend;
mod watcher;
pub mod webhooks;
mod worker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use alloy_primitives::U256;
use tokio::sync::watch;

use crate::access::Keys;
use crate::chain::Chain;
use crate::plugins::{
    AttemptFees, DecidedBy, Decision, FeeDecision, PluginHost, PluginKind, Selection, TxRequest, Usage, Verdict,
};
use crate::queue::Queue;
use crate::relayers::RelayerPool;
use crate::store::{
    DecisionRecord, Idempotency, NewTransaction, Purpose, Store, StoreError, Transaction, TxStatus, now_ms,
};
use idempotency::Fingerprint;
use pricing::Unpriced;
pub use resend::HOST_KEY_ID;
use resend::Replaced;

pub use gasless::MetaTransaction;
pub use watcher::Watcher;
pub use worker::Worker;

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("denied by policy: {0}")]
    Denied(String),
    #[error("relayer `{0}` not found")]
    UnknownRelayer(String),
    #[error("relayer `{0}` is paused")]
    RelayerPaused(String),
    #[error("no relayers are configured")]
    NoRelayers,
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Mined or finished: nothing left to replace or cancel.
    #[error("transaction {id} is {status}{}: it can no longer be {action}", .nonce.map(|n| format!(" with nonce {n}")).unwrap_or_default())]
    TooLate { id: String, status: TxStatus, nonce: Option<u64>, action: &'static str },
    /// The fee plugin cannot price a replacement (e.g. no bump under the cap).
    #[error("the replacement cannot be priced: {0}")]
    CannotReplace(String),
    #[error("the replacement reverts: {0}")]
    Reverts(String),
    /// The node refused the replacement; the earlier attempt stays in flight.
    #[error("the node refused the replacement (the earlier attempt stays in flight): {0}")]
    ReplacementRefused(String),
    #[error("chain unavailable: {0}")]
    ChainUnavailable(String),
    /// A worker holds it between nonce and first send.
    #[error("transaction {0} is being sent right now; try again in a moment")]
    Busy(String),
    /// A meta-transaction the forwarder would refuse.
    #[error("{0}")]
    Invalid(String),
    #[error("the forwarder's nonce for the signer is {expected}, not {given}")]
    NonceMismatch { given: U256, expected: U256 },
    #[error("Idempotency-Key `{0}` was used with a different request")]
    IdempotencyMismatch(String),
}

/// Settings of the relay path, from the `[network]` config.
#[derive(Clone, Debug)]
pub struct RelaySettings {
    pub confirmations: u64,
    pub poll_interval: Duration,
    pub gas_limit_buffer_bps: u32,
    pub estimate_block: crate::chain::EstimateBlock,
    pub fee_history_blocks: u64,
    pub max_fee_cap: U256,
    /// A submitted transaction not mined for this long is sent again with
    /// bumped fees.
    pub resubmit_after: Duration,
    /// When a relayer is healthy, degraded or disabled.
    pub health: crate::relayers::health::HealthPolicy,
    /// How long a worker holds a delivery waiting for a full relayer:
    /// less than the queue's lease, so that it is not handed to another.
    pub hold_for_room: Duration,
    /// The ERC-2771 forwarders meta-transactions may go through.
    pub forwarders: Vec<alloy_primitives::Address>,
}

/// Everything a request passes through after the HTTP layer.
#[derive(Debug)]
pub struct Relay {
    pub store: Arc<dyn Store>,
    pub keys: Keys,
    pub queue: Arc<dyn Queue>,
    pub plugins: Arc<PluginHost>,
    pub pool: Arc<RelayerPool>,
    pub chain: Chain,
    pub settings: RelaySettings,
    usage: DailyCount,
    commits: commit::GroupCommit,
    /// The last fee market read.
    fee_market: fresh::Fresh<crate::plugins::FeeMarket>,
    /// Blocks the watcher has read since start.
    blocks_scanned: AtomicU64,
}

/// A request accepted by the API, before the policy has seen it.
#[derive(Clone, Debug)]
pub struct Submission {
    pub request: TxRequest,
    /// The relayer the client chose; `None` lets the selector choose.
    pub relayer_id: Option<String>,
    pub valid_until: Option<i64>,
    /// The client's `Idempotency-Key`.
    pub idempotency_key: Option<String>,
}

impl Relay {
    /// Starts the writers that store submissions, so it needs a Tokio
    /// runtime.
    pub fn new(
        store: Arc<dyn Store>,
        queue: Arc<dyn Queue>,
        plugins: Arc<PluginHost>,
        pool: Arc<RelayerPool>,
        chain: Chain,
        settings: RelaySettings,
    ) -> Self {
        Relay {
            keys: Keys::new(store.clone()),
            commits: commit::GroupCommit::start(store.clone()),
            store,
            queue,
            plugins,
            pool,
            chain,
            settings,
            usage: DailyCount::default(),
            fee_market: Default::default(),
            blocks_scanned: AtomicU64::new(0),
        }
    }

    /// Runs the policy plugin and persists the accepted request with its
    /// queue entry. A denial persists nothing.
    pub async fn submit(&self, submission: Submission) -> Result<Transaction, SubmitError> {
        let Submission { mut request, relayer_id, valid_until, idempotency_key } = submission;
        let idempotency = idempotency_key.map(|key| Idempotency {
            fingerprint: Fingerprint::default()
                .field("transaction")
                .field(relayer_id.as_deref().unwrap_or_default())
                .field(valid_until.map(|v| v.to_string()).unwrap_or_default())
                .request(&request)
                .finish(),
            key,
        });
        if let Some(original) = self.replay(&request.api_key_id, idempotency.as_ref()).await? {
            return Ok(original);
        }
        self.check_relayer(relayer_id.as_deref())?;
        request.chain_id = self.chain.chain_id();
        let (request, record) = self.admit(request).await?;
        let decisions = vec![record];
        self.persist(NewTransaction { request, relayer_id, valid_until, decisions, created_at: now_ms(), idempotency })
            .await
    }

    /// The client's relayer exists and is not paused; or, with none, the
    /// pool has relayers for the selector.
    fn check_relayer(&self, relayer_id: Option<&str>) -> Result<(), SubmitError> {
        match relayer_id {
            Some(id) => match self.pool.get(id) {
                None => Err(SubmitError::UnknownRelayer(id.to_string())),
                Some(relayer) if relayer.paused => Err(SubmitError::RelayerPaused(id.to_string())),
                Some(_) => Ok(()),
            },
            None if self.pool.is_empty() => Err(SubmitError::NoRelayers),
            None => Ok(()),
        }
    }

    /// Replaces a transaction not yet sent: the policy plugin judges the new
    /// request, and a denial changes nothing.
    pub async fn replace(&self, id: &str, submission: Submission) -> Result<Transaction, SubmitError> {
        let Submission { mut request, valid_until, .. } = submission;
        let current = self.stored(id).await?;
        request.id = id.to_string();
        request.chain_id = current.request.chain_id;
        request.api_key_id = current.request.api_key_id.clone();
        request.hints = current.request.hints.clone();
        let (request, record) = self.admit(request).await?;
        if current.nonce.is_none() && self.store.replace_pending(&request, valid_until, &record).await? {
            return self.stored(id).await;
        }
        // It has its nonce (or just got it): a replacement send at that nonce.
        let current = self.stored(id).await?;
        self.replace_sent(current, request, record).await
    }

    /// Sends `request` at the nonce of `current`, a sent or submitted
    /// transaction, with fees the fee plugin bumps over its last attempt. The
    /// attempt is persisted before it is sent; whichever attempt is mined is
    /// what the transaction then shows.
    async fn replace_sent(
        &self,
        current: Transaction,
        request: TxRequest,
        policy: DecisionRecord,
    ) -> Result<Transaction, SubmitError> {
        let id = current.id().to_string();
        let (Some(nonce), Some(last), Some(relayer)) =
            (current.nonce, current.attempts.last(), current.relayer_id.as_deref().and_then(|r| self.pool.get(r)))
        else {
            return Err(match (current.status, current.nonce) {
                (TxStatus::Pending, Some(_)) => SubmitError::Busy(id),
                _ => self.too_late(&id, "replaced").await,
            });
        };
        if !matches!(current.status, TxStatus::Sent | TxStatus::Submitted) {
            return Err(self.too_late(&id, "replaced").await);
        }
        let previous = AttemptFees { max_fee: last.max_fee, priority_fee: last.priority_fee };
        let priced = match self.price(&request, relayer, (nonce, last.attempt + 1), None, Some(previous)).await {
            Ok(priced) => priced,
            Err(Unpriced::Transient(error)) => return Err(SubmitError::ChainUnavailable(error)),
            Err(Unpriced::Declined(reason)) => return Err(SubmitError::CannotReplace(reason)),
            Err(Unpriced::Reverted(reason)) => return Err(SubmitError::Reverts(reason)),
        };
        if !self.store.replace_sent(&request, &priced.attempt, &[policy, priced.decision]).await? {
            return Err(self.too_late(&id, "replaced").await);
        }
        match self.chain.send_raw(&priced.signed.raw).await {
            Ok(()) => {
                let text = format!("submitted: the node accepted replacement attempt {}", priced.attempt.attempt);
                self.store.transition(&id, TxStatus::Submitted, None, &host_record("replace", text)).await?
            }
            Err(error) => {
                let refused = error.refusal().is_some();
                let text = format!("replacement attempt {} not accepted: {error}", priced.attempt.attempt);
                self.store.add_decision(&id, &host_record("replace", text)).await?;
                return Err(match refused {
                    true => SubmitError::ReplacementRefused(error.to_string()),
                    false => SubmitError::ChainUnavailable(error.to_string()),
                });
            }
        }
        self.stored(&id).await
    }

    /// Cancels a transaction: one not yet sent at once; a sent one by a
    /// no-op at its nonce, which (once mined) makes it canceled.
    pub async fn cancel(&self, id: &str) -> Result<Transaction, SubmitError> {
        let record = host_record("api", "canceled by the client".into());
        if self.store.cancel_pending(id, "canceled by the client", &record).await? {
            return self.stored(id).await;
        }
        let current = self.stored(id).await?;
        match current.status {
            TxStatus::Pending => return Err(SubmitError::Busy(id.to_string())),
            TxStatus::Sent | TxStatus::Submitted => {}
            _ => return Err(self.too_late(id, "canceled").await),
        }
        let last_purpose = current.attempts.last().map(|a| a.purpose);
        if last_purpose == Some(Purpose::Cancel) {
            return Ok(current); // already being canceled
        }
        match self.replace_at_nonce(&current, Purpose::Cancel, "canceled by the client").await {
            Ok(Replaced::Sent { accepted: Err(error), .. }) if error.refusal().is_some() => {
                Err(SubmitError::ReplacementRefused(error.to_string()))
            }
            // Recorded: an unreachable node gets it from the dropped check.
            Ok(Replaced::Sent { .. }) => {
                crate::telemetry::chain_event("canceled");
                self.stored(id).await
            }
            Ok(Replaced::CannotBump(reason)) => Err(SubmitError::CannotReplace(reason)),
            Ok(Replaced::Moved) => Err(self.too_late(id, "canceled").await),
            Err(error) => Err(SubmitError::ChainUnavailable(error)),
        }
    }

    /// Blocks the watcher has read since this process started: after a
    /// restart, only those past the checkpoint.
    pub fn blocks_scanned(&self) -> u64 {
        self.blocks_scanned.load(Ordering::Relaxed)
    }

    /// Sets the gauges read from the queue and the store. `/metrics` calls
    /// it on each scrape, so they are as fresh as the scrape and cost
    /// nothing between scrapes. A backend that does not answer leaves its
    /// gauges as they were (readiness reports the outage).
    pub async fn export_gauges(&self) {
        let metrics = &crate::telemetry::METRICS;
        if let Ok(stats) = self.queue.stats().await {
            metrics.queue_depth.set(gauge_value(stats.queued));
            metrics.queue_in_flight.set(gauge_value(stats.in_flight));
            metrics.queue_dead_letters.set(gauge_value(stats.dead));
        }
        if let Ok(census) = self.store.census().await {
            for status in TxStatus::ALL {
                let count = census.by_status.iter().find(|(s, _)| *s == status).map_or(0, |(_, n)| *n);
                metrics.transactions.with_label_values(&[status.as_str()]).set(gauge_value(count));
            }
            let age_ms = census.oldest_unfinished_at.map_or(0, |at| now_ms().saturating_sub(at).max(0));
            metrics.oldest_pending.set(age_ms / 1000);
        }
    }

    async fn stored(&self, id: &str) -> Result<Transaction, SubmitError> {
        Ok(self.store.get(id).await?.ok_or_else(|| StoreError::NotFound(id.to_string()))?)
    }

    async fn too_late(&self, id: &str, action: &'static str) -> SubmitError {
        match self.store.get(id).await {
            Ok(Some(tx)) => SubmitError::TooLate { id: id.to_string(), status: tx.status, nonce: tx.nonce, action },
            Ok(None) => StoreError::NotFound(id.to_string()).into(),
            Err(error) => error.into(),
        }
    }

    /// Runs the policy plugin: the admitted (possibly amended) request and
    /// the decision for the trail, or the denial.
    async fn admit(&self, mut request: TxRequest) -> Result<(TxRequest, DecisionRecord), SubmitError> {
        let usage = Usage { requests_today: self.usage.next() };
        let verdict = self.plugins.evaluate(&request, usage).await;
        let record = record(PluginKind::Policy, &verdict, verdict_text(&verdict.outcome));
        match verdict.outcome {
            Verdict::Deny(reason) => return Err(SubmitError::Denied(reason)),
            Verdict::Allow => {}
            Verdict::AllowWithChanges(changes) => {
                request.gas_limit = changes.gas_limit.or(request.gas_limit);
                request.speed = changes.speed.unwrap_or(request.speed);
            }
        }
        Ok((request, record))
    }

    /// Starts `workers` queue workers and the watcher; they stop, after
    /// finishing what they hold, when `shutdown` turns true.
    pub fn spawn(
        self: &Arc<Self>,
        workers: usize,
        shutdown: watch::Receiver<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut tasks: Vec<_> =
            (0..workers).map(|_| tokio::spawn(Worker::new(self.clone()).run(shutdown.clone()))).collect();
        tasks.push(tokio::spawn(Watcher::new(self.clone()).run(shutdown)));
        tasks
    }
}

/// Requests accepted today (UTC), counted in this process: what the policy
/// plugin sees as `requests_today`.
#[derive(Debug, Default)]
struct DailyCount {
    /// `day << 32 | count`, so the day rolls over atomically with the count.
    packed: AtomicU64,
}

impl DailyCount {
    fn next(&self) -> u64 {
        let today = (now_ms() / 86_400_000) as u64;
        let mut current = self.packed.load(Ordering::Relaxed);
        loop {
            let count = if current >> 32 == today { (current & 0xffff_ffff) + 1 } else { 1 };
            match self.packed.compare_exchange_weak(current, today << 32 | count, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return count - 1,
                Err(seen) => current = seen,
            }
        }
    }
}

/// A plugin decision as the trail keeps it.
fn record<T>(kind: PluginKind, decision: &Decision<T>, outcome: String) -> DecisionRecord {
    let (plugin, fallback_reason) = match &decision.decided_by {
        DecidedBy::Plugin(id) => (Some(id), None),
        DecidedBy::Fallback { plugin, reason } => (plugin.as_ref(), Some(reason.to_string())),
    };
    DecisionRecord {
        kind: kind.to_string(),
        plugin: plugin.map(|p| p.name.clone()),
        version_hash: plugin.map(|p| p.version_hash.clone()),
        outcome,
        fallback_reason,
        at: now_ms(),
    }
}

/// A step the host took itself (a client's choice, a failure, a status).
fn host_record(kind: &str, outcome: String) -> DecisionRecord {
    DecisionRecord { kind: kind.into(), plugin: None, version_hash: None, outcome, fallback_reason: None, at: now_ms() }
}

fn verdict_text(verdict: &Verdict) -> String {
    match verdict {
        Verdict::Allow => "allow".into(),
        Verdict::Deny(reason) => format!("deny: {reason}"),
        Verdict::AllowWithChanges(c) => format!("allow with changes: gas_limit={:?} speed={:?}", c.gas_limit, c.speed),
    }
}

fn selection_text(selection: &Selection) -> String {
    match selection {
        Selection::Chosen(id) => format!("chosen {id}"),
        Selection::Refused(reason) => format!("refused: {reason}"),
    }
}

fn fee_text(fee: &FeeDecision) -> String {
    match fee {
        FeeDecision::Quote(q) => format!(
            "max_fee={} priority_fee={} gas_limit_factor_bps={}",
            q.max_fee, q.priority_fee, q.gas_limit_factor_bps
        ),
        FeeDecision::CannotBump(reason) => format!("cannot bump: {reason}"),
    }
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_count_starts_at_zero_and_counts() {
        let count = DailyCount::default();
        assert_eq!((count.next(), count.next(), count.next()), (0, 1, 2));
        // Yesterday's count does not carry over.
        let today = (now_ms() / 86_400_000) as u64;
        count.packed.store((today - 1) << 32 | 500, Ordering::Relaxed);
        assert_eq!(count.next(), 0);
    }
}
