//! The watcher. Each poll, checkpointed per chain:
//!
//! - reads the blocks since the last one processed (one
//!   `eth_getBlockReceipts` each) and settles the transactions included
//!   there; after a restart it resumes from the checkpoint;
//! - takes mined transactions to their confirmation depth, or back to
//!   submitted when their block was reorganized away;
//! - bumps the fees of what is not mined in time, replaces what expired with
//!   a no-op, resends what the node dropped and fills nonce gaps;
//! - keeps each relayer's stats fresh for the selector, syncing its nonce
//!   lane from the chain before it is offered at all.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use alloy_primitives::B256;
use futures::{StreamExt, stream};
use tokio::sync::watch;
use tracing::Instrument;

use super::resend::Replaced;
use super::{Relay, host_record};
use crate::chain::Refusal;
use crate::relayers::Relayer;
use crate::relayers::RelayerStats;
use crate::relayers::cache::RelayerHealth;
use crate::relayers::health::{Assessment, HealthState, Observed};
use crate::store::{Attempt, Checkpoint, EventKind, MinedIn, Purpose, Transaction, TxStatus, now_ms};
use crate::telemetry::{self, METRICS};

/// Transactions followed per poll.
const WATCHED: u32 = 5_000;
/// Blocks read per poll at most, so a long outage catches up in steps.
const BLOCKS_PER_POLL: u64 = 256;
/// Blocks read back at the very first start, when there is no checkpoint.
const FIRST_LOOKBACK: u64 = 64;
/// Nonces of a lane looked at per poll.
const LANE_SCAN: u32 = 64;
/// A block's transactions settled at once at most.
const SETTLES_AT_ONCE: usize = 64;

#[derive(Debug)]
pub struct Watcher {
    relay: Arc<Relay>,
}

impl Watcher {
    pub fn new(relay: Arc<Relay>) -> Self {
        Watcher { relay }
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(self.relay.settings.poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !*shutdown.borrow() {
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = ticker.tick() => {}
            }
            self.refresh_relayers().await;
            if let Err(error) = self.poll().await {
                tracing::warn!(%error, "watcher poll failed; retrying next tick");
            }
        }
    }

    /// One round: blocks since the checkpoint, then every watched
    /// transaction, then every relayer's lane.
    pub async fn poll(&self) -> Result<(), String> {
        let head = self.relay.chain.block_number().await.map_err(|e| e.to_string())?;
        let watched = self.relay.store.in_flight(WATCHED).await.map_err(|e| e.to_string())?;
        // What the scan settled is up to date already; the rest is checked
        // as read.
        let settled = self.scan(head, &watched).await?;
        let mut canonical = HashMap::new();
        for tx in watched.iter().filter(|tx| !settled.contains(tx.id())) {
            let span = tracing::info_span!("transaction", id = %tx.id());
            if let Err(error) = self.check(tx, head, &mut canonical).instrument(span).await {
                tracing::warn!(transaction = %tx.id(), %error, "transaction check failed; retrying next tick");
            }
        }
        for relayer in self.relay.pool.iter() {
            if let Err(error) = self.check_lane(relayer).await {
                tracing::warn!(relayer = %relayer.id, %error, "nonce lane check failed; retrying next tick");
            }
        }
        Ok(())
    }

    /// Reads the blocks after the checkpoint (from a few blocks back if the
    /// checkpoint's block was reorganized away) and settles what of
    /// `watched` they include; saves how far it got. The ids it settled.
    async fn scan<'w>(&self, head: u64, watched: &'w [Transaction]) -> Result<HashSet<&'w str>, String> {
        let (chain, store) = (&self.relay.chain, &self.relay.store);
        let from = match store.checkpoint(chain.chain_id()).await.map_err(|e| e.to_string())? {
            Some(saved) => {
                let hash = chain.block_hash(saved.block.number).await.map_err(|e| e.to_string())?;
                if hash.is_some_and(|h| h.to_string() == saved.block.hash) {
                    saved.block.number + 1
                } else {
                    let back = saved.block.number.saturating_sub(self.relay.settings.confirmations);
                    tracing::warn!(
                        checkpoint = saved.block.number,
                        back,
                        "the checkpoint's block is no longer canonical (reorg): reading again from an earlier block"
                    );
                    back
                }
            }
            None => head.saturating_sub(FIRST_LOOKBACK),
        };
        let mut settled = HashSet::new();
        if from > head {
            return Ok(settled);
        }
        let to = head.min(from + BLOCKS_PER_POLL - 1);
        let mut by_hash: HashMap<B256, (&Transaction, &Attempt)> = HashMap::new();
        for tx in watched {
            for attempt in &tx.attempts {
                if let Ok(hash) = attempt.hash.parse() {
                    by_hash.insert(hash, (tx, attempt));
                }
            }
        }
        let mut done = None;
        let mut outcome = Ok(());
        for number in from..=to {
            let block = match chain.block_receipts(number).await {
                Ok(Some(block)) => block,
                Ok(None) => break,
                Err(error) => {
                    outcome = Err(error.to_string());
                    break;
                }
            };
            let mined_in = MinedIn { number, hash: block.hash.to_string() };
            // Side by side: each settle is a write of its own, and written
            // together they share the store's commits.
            let mut settles = Vec::new();
            for (hash, success) in &block.receipts {
                if let Some(&(tx, attempt)) = by_hash.get(hash) {
                    let mined_in = &mined_in;
                    settles.push(async move { (tx.id(), self.included(tx, attempt, mined_in, *success, head).await) });
                }
            }
            let results: Vec<_> = stream::iter(settles).buffered(SETTLES_AT_ONCE).collect().await;
            let mut block_outcome = Ok(());
            for (id, result) in results {
                match result {
                    Ok(()) => {
                        settled.insert(id);
                    }
                    Err(error) => block_outcome = Err(error),
                }
            }
            if let Err(error) = block_outcome {
                outcome = Err(error);
                break;
            }
            done = Some(mined_in);
            self.relay.blocks_scanned.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(block) = done {
            METRICS
                .watcher_checkpoint
                .with_label_values(&[&chain.chain_id().to_string()])
                .set(i64::try_from(block.number).unwrap_or(i64::MAX));
            store.save_checkpoint(chain.chain_id(), &Checkpoint { block }).await.map_err(|e| e.to_string())?;
        }
        outcome.map(|()| settled)
    }

    /// Settles `tx` because `attempt` is in `block`: mined, or final once deep
    /// enough (confirmed; canceled or expired for a no-op; failed if it
    /// reverted).
    async fn included(
        &self,
        tx: &Transaction,
        attempt: &Attempt,
        block: &MinedIn,
        success: bool,
        head: u64,
    ) -> Result<(), String> {
        let depth = head.saturating_sub(block.number) + 1;
        let deep = depth >= self.relay.settings.confirmations;
        let status = match (deep, success) {
            (false, _) => TxStatus::Mined,
            (true, true) => attempt.purpose.final_status(),
            (true, false) => TxStatus::Failed,
        };
        if status == tx.status && tx.mined_in.as_ref() == Some(block) {
            return Ok(());
        }
        let reason = match (success, attempt.purpose, deep) {
            (false, _, _) => Some(format!("reverted on chain in block {}", block.number)),
            (true, Purpose::Send, _) => None,
            (true, Purpose::Cancel, false) => Some("the cancel no-op is mined; canceled once confirmed".into()),
            (true, Purpose::Expire, false) => Some("the expiry no-op is mined; expired once confirmed".into()),
            (true, Purpose::Cancel, true) => Some("canceled: a no-op took its nonce".into()),
            (true, Purpose::Expire, true) => Some("expired: valid_until passed and a no-op took its nonce".into()),
        };
        let text = format!("{status} in block {} (attempt {}, depth {depth})", block.number, attempt.attempt);
        let record = host_record("watcher", text);
        self.relay
            .store
            .settle(tx.id(), status, reason.as_deref(), attempt, Some(block), &record)
            .await
            .map_err(|e| e.to_string())?;
        // Mined frees its in-flight slot, whatever the confirmation depth.
        let in_flight = matches!(tx.status, TxStatus::Pending | TxStatus::Sent | TxStatus::Submitted);
        if in_flight && let Some(relayer) = tx.relayer_id.as_deref().and_then(|id| self.relay.pool.get(id)) {
            relayer.update_stats(|stats| stats.pending = stats.pending.saturating_sub(1));
        }
        Ok(())
    }

    /// Looks up the receipts of every attempt of `tx`, newest first, and
    /// settles it by the one included. Whether one was.
    async fn follow(&self, tx: &Transaction, head: u64) -> Result<bool, String> {
        for attempt in tx.attempts.iter().rev() {
            let hash = attempt.hash.parse().map_err(|_| format!("stored hash `{}` is not a hash", attempt.hash))?;
            let Some(inclusion) = self.relay.chain.inclusion(hash).await.map_err(|e| e.to_string())? else {
                continue;
            };
            let block = MinedIn { number: inclusion.block_number, hash: inclusion.block_hash.to_string() };
            self.included(tx, attempt, &block, inclusion.success, head).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn check(
        &self,
        tx: &Transaction,
        head: u64,
        canonical: &mut HashMap<u64, Option<B256>>,
    ) -> Result<(), String> {
        match tx.status {
            TxStatus::Mined => self.check_mined(tx, head, canonical).await,
            TxStatus::Submitted => self.check_submitted(tx, head).await,
            // Sent: a worker holds it.
            _ => Ok(()),
        }
    }

    /// A mined transaction whose block is gone goes back to submitted (or
    /// to the block that now holds it); one deep enough is final.
    async fn check_mined(
        &self,
        tx: &Transaction,
        head: u64,
        canonical: &mut HashMap<u64, Option<B256>>,
    ) -> Result<(), String> {
        let Some(mined) = &tx.mined_in else {
            // Mined before blocks were recorded: by its receipt.
            return self.follow(tx, head).await.map(drop);
        };
        let hash = match canonical.get(&mined.number) {
            Some(hash) => *hash,
            None => {
                let hash = self.relay.chain.block_hash(mined.number).await.map_err(|e| e.to_string())?;
                canonical.insert(mined.number, hash);
                hash
            }
        };
        if hash.is_some_and(|h| h.to_string() == mined.hash) {
            let deep = head.saturating_sub(mined.number) + 1 >= self.relay.settings.confirmations;
            // Deep enough: its receipt tells success, and confirms the block.
            return if deep { self.follow(tx, head).await.map(drop) } else { Ok(()) };
        }
        if self.follow(tx, head).await? {
            return Ok(()); // included again, elsewhere
        }
        let attempt = tx.attempts.iter().find(|a| Some(&a.hash) == tx.hash.as_ref()).or(tx.attempts.last());
        let Some(attempt) = attempt else { return Ok(()) };
        tracing::warn!(transaction = %tx.id(), block = mined.number, "block reorganized away: back to submitted");
        telemetry::chain_event("reorged");
        let text = format!("block {} ({}) was reorganized away: back to submitted", mined.number, mined.hash);
        let reason = "its block was reorganized away; waiting to be mined again";
        self.relay
            .store
            .settle(tx.id(), TxStatus::Submitted, Some(reason), attempt, None, &host_record("watcher", text))
            .await
            .map_err(|e| e.to_string())
    }

    /// A submitted transaction past `valid_until` is replaced by a no-op;
    /// one not mined within `resubmit_after` is sent again with bumped fees.
    async fn check_submitted(&self, tx: &Transaction, head: u64) -> Result<(), String> {
        let Some(last) = tx.attempts.last() else { return Ok(()) };
        let now = now_ms();
        let expired = last.purpose == Purpose::Send && tx.valid_until.is_some_and(|until| until < now);
        let waited = now - last.sent_at;
        let due = u128::try_from(waited).unwrap_or(0) >= self.relay.settings.resubmit_after.as_millis();
        if !expired && !due {
            return Ok(());
        }
        // A receipt the block scan has not reached (or never will: mined
        // before the first checkpoint).
        if self.follow(tx, head).await? {
            return Ok(());
        }
        let (purpose, why) = match expired {
            true => (Purpose::Expire, "valid_until passed before it was mined".to_string()),
            false => (last.purpose, format!("not mined after {} ms", waited)),
        };
        match self.relay.replace_at_nonce(tx, purpose, &why).await? {
            Replaced::CannotBump(reason) => {
                let status_reason = format!("cannot bump: {reason}");
                let store = &self.relay.store;
                let shown = tx.status_reason.as_deref();
                // The trail says it once; the status keeps the latest numbers.
                let set = if !shown.is_some_and(|r| r.starts_with("cannot bump")) {
                    tracing::warn!(transaction = %tx.id(), %reason, "stuck and cannot bump under the cap");
                    telemetry::chain_event("cannot_bump");
                    let text = format!("{why}; {status_reason}; it stays pending at its current fees");
                    let record = host_record("resubmit", text);
                    store.transition(tx.id(), TxStatus::Submitted, Some(&status_reason), &record).await
                } else if shown != Some(status_reason.as_str()) {
                    store.set_status(tx.id(), TxStatus::Submitted, Some(&status_reason)).await
                } else {
                    Ok(())
                };
                set.map_err(|e| e.to_string())?;
            }
            Replaced::Sent { attempt, accepted } => {
                tracing::info!(transaction = %tx.id(), attempt, ?purpose, accepted = accepted.is_ok(), "replaced at its nonce");
                telemetry::chain_event(if purpose == Purpose::Expire { "expired" } else { "resubmitted" });
                if let Err(error) = accepted
                    && error.refusal() == Some(Refusal::NonceTooLow)
                    && let Some(relayer) = tx.relayer_id.as_deref().and_then(|id| self.relay.pool.get(id))
                    && let Some(fresh) = self.relay.store.working(tx.id()).await.map_err(|e| e.to_string())?
                {
                    self.relay.nonce_taken(&fresh, relayer).await?;
                }
            }
            Replaced::Moved => {}
        }
        Ok(())
    }

    /// The nonces between the node's pending nonce and the lane's next: a
    /// sent transaction the node no longer has is sent again; a nonce no
    /// transaction will use is filled with a no-op.
    async fn check_lane(&self, relayer: &Relayer) -> Result<(), String> {
        if !relayer.stats().lane_synced {
            return Ok(());
        }
        let pending = self.relay.chain.pending_nonce(relayer.address).await.map_err(|e| e.to_string())?;
        let lane = self.relay.store.lane(&relayer.id, pending, LANE_SCAN).await.map_err(|e| e.to_string())?;
        if lane.next <= pending {
            return Ok(());
        }
        // A worker sends within moments of signing: leave it that long.
        let grace = i64::try_from(self.relay.settings.poll_interval.as_millis() * 4).unwrap_or(i64::MAX).max(2_000);
        let now = now_ms();
        for nonce in pending..lane.next.min(pending + u64::from(LANE_SCAN)) {
            match lane.holders.iter().find(|h| h.nonce == nonce) {
                Some(holder) if matches!(holder.status, TxStatus::Sent | TxStatus::Submitted) => {
                    if holder.last_sent_at.is_some_and(|at| now - at >= grace)
                        && self.relay.resend_if_dropped(&holder.id).await?
                    {
                        tracing::warn!(relayer = %relayer.id, nonce, transaction = %holder.id, "dropped by the node: sent again");
                        telemetry::chain_event("dropped_resent");
                    }
                }
                // Pending with its nonce: a worker prices it, unless its
                // queue entry was lost long ago.
                Some(holder) if holder.status == TxStatus::Pending => {
                    let idle = now - holder.updated_at;
                    if u128::try_from(idle).unwrap_or(0) >= self.relay.settings.resubmit_after.as_millis() {
                        let text = format!("nonce {nonce} held for {idle} ms without an attempt: queued again");
                        if self
                            .relay
                            .store
                            .requeue(&holder.id, &host_record("queue", text))
                            .await
                            .map_err(|e| e.to_string())?
                        {
                            tracing::warn!(relayer = %relayer.id, nonce, transaction = %holder.id, "stalled with a nonce: queued again");
                            telemetry::chain_event("requeued");
                        }
                    }
                }
                // Mined.
                Some(holder) if !holder.status.is_final() => {}
                _ => {
                    if self.relay.fill_gap(relayer, nonce).await? {
                        tracing::warn!(relayer = %relayer.id, nonce, "nonce gap: filled with a no-op");
                        telemetry::chain_event("gap_filled");
                    }
                }
            }
        }
        Ok(())
    }

    /// Refreshes every relayer's stats and judges its health; syncs the
    /// lane of any not yet synced. A change of state is logged as an event.
    pub async fn refresh_relayers(&self) {
        // Reachability is checked every round, whatever the health cache
        // holds; the endpoints are shared, so once for all.
        let reachable = self.relay.chain.block_number().await.map(drop).map_err(|e| e.to_string());
        for relayer in self.relay.pool.iter() {
            let checked = match &reachable {
                Ok(()) => self.refresh(relayer).await,
                Err(error) => Err(error.clone()),
            };
            let stats = relayer.stats();
            let observed = Observed {
                reachable: checked,
                balance: stats.balance,
                pending: stats.pending,
                recent: stats.recent.iter().copied().collect(),
                latency_ms: stats.latency_ms,
            };
            let verdict = self.relay.settings.health.assess(&observed);
            for (kind, detail) in announce(relayer, &stats.health, &verdict) {
                if let Err(error) = self.relay.store.append_event(kind, Some(&relayer.id), &detail).await {
                    tracing::warn!(relayer = %relayer.id, %error, event = kind.as_str(), "relayer event not recorded");
                }
            }
            export(relayer, &stats, &verdict);
            relayer.update_stats(|live| {
                live.health = verdict;
                live.checked_at_ms = Some(now_ms());
            });
        }
    }

    async fn refresh(&self, relayer: &Relayer) -> Result<(), String> {
        let chain = &self.relay.chain;
        let store = &self.relay.store;
        let mut stats = relayer.stats();
        if !stats.lane_synced {
            let on_chain = chain.pending_nonce(relayer.address).await.map_err(|e| e.to_string())?;
            let next = store.sync_lane(&relayer.id, on_chain).await.map_err(|e| e.to_string())?;
            tracing::info!(relayer = %relayer.id, address = %relayer.address, on_chain, next, "nonce lane synced");
            stats.lane_synced = true;
        }
        let health = self.health(relayer).await?;
        let balance =
            health.balance.parse().map_err(|_| format!("cached balance `{}` is not a number", health.balance))?;
        let counts = store.relayer_counts(&relayer.id).await.map_err(|e| e.to_string())?;
        relayer.update_stats(|live| {
            live.lane_synced = stats.lane_synced;
            live.balance = balance;
            live.nonce = health.chain_nonce;
            // Nonces given while the store was read may be missing from
            // its count: counted once more rather than not at all.
            let since = u32::try_from(live.assigned.saturating_sub(stats.assigned)).unwrap_or(u32::MAX);
            live.pending = u32::try_from(counts.pending).unwrap_or(u32::MAX).saturating_add(since);
        });
        Ok(())
    }

    /// The relayer's chain-side health: from the cache when a replica (this
    /// one or another) checked within its TTL, else checked and cached.
    async fn health(&self, relayer: &Relayer) -> Result<RelayerHealth, String> {
        let cache = self.relay.pool.cache();
        match cache.get(&relayer.id).await {
            Ok(Some(health)) => return Ok(health),
            Ok(None) => {}
            Err(error) => {
                tracing::debug!(relayer = %relayer.id, %error, "health cache unavailable; checking the chain")
            }
        }
        let chain = &self.relay.chain;
        let balance = chain.balance(relayer.address).await.map_err(|e| e.to_string())?;
        let chain_nonce = chain.pending_nonce(relayer.address).await.map_err(|e| e.to_string())?;
        let health = RelayerHealth {
            balance: balance.to_string(),
            chain_nonce,
            healthy: !balance.is_zero(),
            checked_at_ms: now_ms(),
        };
        if let Err(error) = cache.put(&relayer.id, &health).await {
            tracing::debug!(relayer = %relayer.id, %error, "health cache unavailable; not shared this round");
        }
        Ok(health)
    }
}

/// Logs a relayer's change of health, and returns the events it makes.
fn announce(relayer: &Relayer, before: &Assessment, after: &Assessment) -> Vec<(EventKind, String)> {
    let reasons = after.reasons.join("; ");
    let mut events = Vec::new();
    if after.low_balance && !before.low_balance {
        tracing::warn!(relayer = %relayer.id, address = %relayer.address, %reasons, "relayer balance low");
        events.push((EventKind::RelayerLowBalance, reasons.clone()));
    }
    if after.state == before.state {
        return events;
    }
    match after.state {
        HealthState::Disabled => {
            tracing::warn!(relayer = %relayer.id, %reasons, "relayer disabled: not offered to the selector");
            events.push((EventKind::RelayerDisabled, reasons));
        }
        HealthState::Degraded => tracing::warn!(relayer = %relayer.id, %reasons, "relayer degraded"),
        _ if before.state == HealthState::Disabled => {
            tracing::info!(relayer = %relayer.id, "relayer enabled again");
            events.push((EventKind::RelayerEnabled, format!("{}", after.state)));
        }
        _ => tracing::info!(relayer = %relayer.id, state = %after.state, "relayer health"),
    }
    events
}

/// The relayer's gauges.
fn export(relayer: &Relayer, stats: &RelayerStats, verdict: &Assessment) {
    let id = relayer.id.as_str();
    METRICS.relayer_balance.with_label_values(&[id]).set(f64::from(stats.balance));
    METRICS.relayer_low_balance.with_label_values(&[id]).set(i64::from(verdict.low_balance));
    METRICS.relayer_pending.with_label_values(&[id]).set(i64::from(stats.pending));
    METRICS.relayer_nonce.with_label_values(&[id]).set(i64::try_from(stats.nonce).unwrap_or(i64::MAX));
    for state in [HealthState::Unchecked, HealthState::Healthy, HealthState::Degraded, HealthState::Disabled] {
        METRICS.relayer_state.with_label_values(&[id, state.as_str()]).set(i64::from(state == verdict.state));
    }
}
