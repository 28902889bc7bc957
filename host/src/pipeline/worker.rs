//! The queue worker: one delivery = one transaction taken as far as the
//! node's mempool. Idempotent by transaction id: every step first reads what
//! is persisted, so a redelivery (crash, lease expiry) resumes, never
//! repeats: the nonce is assigned once, and a send is repeated with the same
//! signed bytes.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::watch;
use tracing::Instrument;

use super::pricing::Unpriced;
use super::resend::sign_attempt;
use super::{Relay, host_record, record, selection_text};
use crate::chain::Refusal;
use crate::plugins::{PluginKind, Selection};
use crate::queue::{Delivery, RetryOutcome};
use crate::relayers::health::HealthState;
use crate::relayers::{Relayer, Slot};
use crate::store::{Attempt, DecisionRecord, StoreError, Transaction, TxStatus, now_ms};

/// How long one `receive` waits before the worker checks for shutdown.
const RECEIVE_WAIT: Duration = Duration::from_millis(500);

#[derive(Debug)]
pub struct Worker {
    relay: Arc<Relay>,
}

/// What the selector (or the client) made of a transaction.
enum Pick<'a> {
    Chosen(&'a Relayer, DecisionRecord),
    /// Every relayer it could go to is full.
    Full,
    Refused(Step),
}

/// What became of one delivery.
#[derive(Debug)]
enum Step {
    /// Persisted as far as this worker takes it: ack.
    Done,
    /// A transient fault: deliver again after a backoff.
    Retry(String),
}

impl Worker {
    pub fn new(relay: Arc<Relay>) -> Self {
        Worker { relay }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            // While every relayer is full the backlog waits in the queue,
            // where waiting costs no delivery.
            let pool = &self.relay.pool;
            if !pool.wait_until(RECEIVE_WAIT, || !pool.is_full()).await {
                continue;
            }
            let delivery = tokio::select! {
                _ = shutdown.changed() => break,
                received = self.relay.queue.receive(RECEIVE_WAIT) => received,
            };
            match delivery {
                Ok(Some(delivery)) => {
                    let span =
                        tracing::info_span!("transaction", id = %delivery.transaction_id, delivery = delivery.attempt);
                    self.handle(delivery).instrument(span).await
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(%error, "queue receive failed; retrying");
                    tokio::time::sleep(RECEIVE_WAIT).await;
                }
            }
        }
    }

    async fn handle(&self, delivery: Delivery) {
        let id = delivery.transaction_id.clone();
        let step = match self.process(&id, delivery.attempt).await {
            Ok(step) => step,
            Err(error) => Step::Retry(error),
        };
        let queue = &self.relay.queue;
        let outcome = match step {
            Step::Done => queue.ack(&delivery).await.map(|()| None),
            Step::Retry(error) => {
                tracing::warn!(transaction = %id, attempt = delivery.attempt, %error, "delivery failed");
                queue.retry(&delivery, &error).await.map(|outcome| Some((outcome, error)))
            }
        };
        match outcome {
            Ok(Some((RetryOutcome::DeadLettered, error))) => {
                let reason = format!("gave up after {} deliveries: {error}", delivery.attempt);
                let record = host_record("queue", reason.clone());
                if let Err(e) = self.relay.store.transition(&id, TxStatus::Failed, Some(&reason), &record).await {
                    tracing::error!(transaction = %id, error = %e, "dead-lettered but could not mark failed");
                }
            }
            Ok(_) => {}
            // The lease ran out and the entry went to another worker, which
            // resumes from what was persisted.
            Err(error) => tracing::warn!(transaction = %id, %error, "ack or retry failed"),
        }
    }

    async fn process(&self, id: &str, delivery: u32) -> Result<Step, String> {
        let store = &self.relay.store;
        let Some(tx) = store.working(id).await.map_err(|e| e.to_string())? else {
            tracing::error!(transaction = %id, "queued transaction is not in the store; dropping the entry");
            return Ok(Step::Done);
        };
        if delivery == 1 {
            let waited = now_ms().saturating_sub(tx.created_at).max(0) as f64 / 1000.0;
            crate::telemetry::METRICS.queue_pickup.observe(waited);
        }
        if tx.status.is_final() || matches!(tx.status, TxStatus::Submitted | TxStatus::Mined) {
            return Ok(Step::Done);
        }
        if tx.nonce.is_none() && tx.valid_until.is_some_and(|until| until < now_ms()) {
            let reason = "valid_until passed before it was sent";
            store
                .transition(id, TxStatus::Expired, Some(reason), &host_record("queue", reason.into()))
                .await
                .map_err(s)?;
            return Ok(Step::Done);
        }
        let (relayer, tx, estimate) = match tx.nonce {
            Some(_) => (self.relayer_of(&tx)?, tx, None),
            None => match self.assign(tx).await? {
                Ok(assigned) => assigned,
                Err(step) => return Ok(step),
            },
        };
        let attempt = match tx.attempts.last() {
            // A redelivery after a crash, or after the node could not be
            // reached: send the same bytes again.
            Some(last) => last.clone(),
            None => match self.price_and_record(&tx, relayer, estimate).await? {
                Ok(attempt) => attempt,
                Err(step) => return Ok(step),
            },
        };
        self.send(&tx, relayer, &attempt).await
    }

    fn relayer_of(&self, tx: &Transaction) -> Result<&Relayer, String> {
        let id = tx.relayer_id.as_deref().ok_or("a transaction with a nonce has no relayer")?;
        self.relay.pool.get(id).ok_or_else(|| format!("relayer `{id}` is no longer configured"))
    }

    /// Chooses the relayer (or takes the client's), estimates gas and gives
    /// the transaction its nonce. A call that reverts in estimation fails
    /// the transaction before it takes a nonce.
    async fn assign(&self, tx: Transaction) -> Result<Result<(&Relayer, Transaction, Option<u64>), Step>, String> {
        let store = &self.relay.store;
        let id = tx.id().to_string();
        let (relayer, decision, slot) = match self.choose(&tx).await? {
            Ok(chosen) => chosen,
            Err(step) => return Ok(Err(step)),
        };
        let estimate = match tx.request.gas_limit {
            Some(_) => None,
            None => match self.relay.estimate(relayer, &tx.request).await? {
                Ok(estimate) => Some(estimate),
                Err(reverted) => {
                    store.transition(&id, TxStatus::Failed, Some(&reverted), &decision).await.map_err(s)?;
                    return Ok(Err(Step::Done));
                }
            },
        };
        let assignment = match store.assign_nonce(&id, &relayer.id, &decision).await {
            Ok(assignment) => assignment,
            // Canceled while this worker estimated: nothing to send.
            Err(StoreError::NotPending { .. }) => return Ok(Err(Step::Done)),
            Err(error) => return Err(error.to_string()),
        };
        // From here the request is frozen; it may have been replaced after
        // this worker read it, so the stored one is sent (and re-estimated
        // if it changed).
        let assigned = assignment.transaction;
        if !assignment.fresh {
            // Another worker (a duplicate delivery) assigned it first, maybe
            // on another relayer: the nonce, and the slot, are that relayer's.
            return Ok(Ok((self.relayer_of(&assigned)?, assigned, None)));
        }
        slot.keep();
        let estimate = estimate.filter(|_| assigned.request == tx.request);
        Ok(Ok((relayer, assigned, estimate)))
    }

    /// The relayer that sends `tx`, with one of its in-flight slots. When
    /// the relayers it may go to are all full, waits for room while that
    /// keeps the delivery within its lease.
    async fn choose(&self, tx: &Transaction) -> Result<Result<(&Relayer, DecisionRecord, Slot<'_>), Step>, String> {
        let pool = &self.relay.pool;
        let deadline = Instant::now() + self.relay.settings.hold_for_room;
        // A key limited to some relayers is offered only those.
        let allowed = match &tx.relayer_id {
            Some(_) => None,
            None => self.relay.keys.allowed_relayers(&tx.request.api_key_id).await.map_err(s)?,
        };
        let allowed = |id: &str| allowed.as_ref().is_none_or(|a| a.iter().any(|r| r == id));
        let open = || match &tx.relayer_id {
            Some(chosen) => pool.get(chosen).is_some_and(Relayer::has_room),
            None => pool.iter().any(|r| allowed(&r.id) && r.has_room()),
        };
        loop {
            match self.pick(tx, &allowed).await? {
                Pick::Refused(step) => return Ok(Err(step)),
                Pick::Full => {}
                Pick::Chosen(relayer, decision) => {
                    let health = relayer.stats().health;
                    if !health.state.is_offered() {
                        let why = health.reasons.join("; ");
                        return Ok(Err(Step::Retry(format!("relayer `{}` is {}: {why}", relayer.id, health.state))));
                    }
                    // None when another worker filled it since the selector saw it.
                    if let Some(slot) = relayer.reserve() {
                        return Ok(Ok((relayer, decision, slot)));
                    }
                }
            }
            if !pool.wait_until(deadline.saturating_duration_since(Instant::now()), open).await {
                let to = tx.relayer_id.as_ref().map_or("every relayer it may go to".into(), |id| format!("`{id}`"));
                return Ok(Err(Step::Retry(format!("{to} has network.max_in_flight transactions in flight"))));
            }
        }
    }

    /// The client's relayer, or the selector's choice among the allowed
    /// relayers with room.
    async fn pick(&self, tx: &Transaction, allowed: &impl Fn(&str) -> bool) -> Result<Pick<'_>, String> {
        let pool = &self.relay.pool;
        if let Some(chosen) = &tx.relayer_id {
            let relayer = pool.get(chosen).ok_or_else(|| format!("relayer `{chosen}` is gone"))?;
            return Ok(Pick::Chosen(relayer, host_record("selector", format!("client chose {chosen}"))));
        }
        let mut candidates = pool.candidates();
        candidates.retain(|c| allowed(&c.id));
        let offered = candidates.len();
        candidates.retain(|c| pool.get(&c.id).is_some_and(Relayer::has_room));
        if candidates.is_empty() && offered > 0 {
            return Ok(Pick::Full);
        }
        let decision = self.relay.plugins.select(&tx.request, &candidates).await;
        let text = selection_text(&decision.outcome);
        let chosen = match &decision.outcome {
            Selection::Chosen(chosen) => chosen.clone(),
            Selection::Refused(reason) => {
                return Ok(Pick::Refused(Step::Retry(format!("no relayer chosen: {reason}"))));
            }
        };
        let Some(relayer) = pool.get(&chosen).filter(|r| !r.paused && allowed(&r.id)) else {
            let text = format!("the selector chose `{chosen}`, which is not an active relayer");
            return Ok(Pick::Refused(Step::Retry(text)));
        };
        Ok(Pick::Chosen(relayer, record(PluginKind::Selector, &decision, text)))
    }

    /// Prices and signs the first attempt, and persists it before anything
    /// leaves the host.
    async fn price_and_record(
        &self,
        tx: &Transaction,
        relayer: &Relayer,
        estimate: Option<u64>,
    ) -> Result<Result<Attempt, Step>, String> {
        let nonce = tx.nonce.ok_or("no nonce after assignment")?;
        let priced = match self.relay.price(&tx.request, relayer, (nonce, 1), estimate, None).await {
            Ok(priced) => priced,
            Err(Unpriced::Transient(error)) => return Ok(Err(Step::Retry(error))),
            Err(Unpriced::Declined(reason)) => {
                return Ok(Err(Step::Retry(format!("the fee plugin cannot price: {reason}"))));
            }
            Err(Unpriced::Reverted(reason)) => return Ok(Err(self.fail(tx, &reason).await?)),
        };
        match self.relay.store.record_attempt(tx.id(), &priced.attempt, &priced.decision, TxStatus::Sent).await {
            Ok(()) => Ok(Ok(priced.attempt)),
            // A duplicate delivery: the worker that recorded it sends it,
            // and its own delivery covers a crash before the send.
            Err(StoreError::AttemptTaken { .. }) => {
                tracing::info!(transaction = %tx.id(), "another worker holds this send; dropping the duplicate");
                Ok(Err(Step::Done))
            }
            Err(error) => Err(error.to_string()),
        }
    }

    /// Sends a recorded attempt and acts on the node's answer, by class.
    async fn send(&self, tx: &Transaction, relayer: &Relayer, attempt: &Attempt) -> Result<Step, String> {
        let signed = sign_attempt(self.relay.chain.chain_id(), relayer, tx, attempt)?;
        let store = &self.relay.store;
        let error = match self.relay.send_signed(relayer, &signed).await {
            Ok(()) => {
                let text = format!("submitted: the node accepted attempt {} ({})", attempt.attempt, attempt.hash);
                store.submitted(tx.id(), &host_record("send", text)).await.map_err(s)?;
                return Ok(Step::Done);
            }
            Err(error) => error,
        };
        let Some(refusal) = error.refusal() else { return Ok(Step::Retry(error.to_string())) };
        // Sent before a crash and already mined: the node no longer takes
        // that nonce, but the receipt is ours.
        for sent in tx.attempts.iter().rev() {
            let hash = sent.hash.parse().map_err(|_| format!("stored hash `{}` is not a hash", sent.hash))?;
            if self.relay.chain.inclusion(hash).await.is_ok_and(|r| r.is_some()) {
                let text = format!("attempt {} was already mined (sent before a restart)", sent.attempt);
                store.submitted(tx.id(), &host_record("send", text)).await.map_err(s)?;
                return Ok(Step::Done);
            }
        }
        let note =
            |text: String| async move { store.add_decision(tx.id(), &host_record("send", text)).await.map_err(s) };
        let nonce = attempt.nonce;
        match refusal {
            Refusal::NonceTooLow => {
                note(format!("attempt {} refused: {error}", attempt.attempt)).await?;
                self.relay.nonce_taken(tx, relayer).await?;
                relayer.update_stats(|stats| stats.pending = stats.pending.saturating_sub(1));
                Ok(Step::Done)
            }
            Refusal::NonceTooHigh => {
                note(format!(
                    "nonce {nonce} refused as too high: a lower nonce is missing; the lane resyncs and a gap is filled"
                ))
                .await?;
                self.relay.resync_lane(relayer).await?;
                Ok(Step::Retry(error.to_string()))
            }
            Refusal::ReplacementUnderpriced if attempt.attempt > 1 => {
                // An earlier attempt of ours holds the nonce in the mempool.
                let text =
                    format!("attempt {} refused ({error}); the earlier attempt stays in flight", attempt.attempt);
                store.submitted(tx.id(), &host_record("send", text)).await.map_err(s)?;
                Ok(Step::Done)
            }
            Refusal::ReplacementUnderpriced | Refusal::InsufficientFunds => {
                if refusal == Refusal::InsufficientFunds {
                    // Until the next check finds it funded.
                    relayer.update_stats(|stats| {
                        stats.health.state = HealthState::Disabled;
                        stats.health.reasons = vec![format!("the node refused a send: {error}")];
                    });
                }
                note(format!("attempt {} refused, retrying later: {error}", attempt.attempt)).await?;
                Ok(Step::Retry(error.to_string()))
            }
            Refusal::AlreadyKnown | Refusal::Reverted | Refusal::Other => {
                relayer.update_stats(|stats| stats.pending = stats.pending.saturating_sub(1));
                // Its nonce is never used: the watcher fills it with a no-op.
                self.fail(tx, &format!("the node refused the transaction: {error}")).await
            }
        }
    }

    /// Fails a transaction that holds a nonce, with the reason in its trail.
    async fn fail(&self, tx: &Transaction, reason: &str) -> Result<Step, String> {
        let record = host_record("send", reason.to_string());
        self.relay.store.transition(tx.id(), TxStatus::Failed, Some(reason), &record).await.map_err(s)?;
        Ok(Step::Done)
    }
}

fn s(error: crate::store::StoreError) -> String {
    error.to_string()
}
