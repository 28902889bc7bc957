//! The watcher: follows submitted transactions to their receipts and to the
//! configured confirmation depth, and keeps each relayer's stats (balance,
//! pending count, health) fresh for the selector. Before a relayer is
//! offered at all, its nonce lane is synced from the chain's pending nonce.

use std::sync::Arc;

use tokio::sync::watch;

use super::{Relay, host_record};
use crate::relayers::Relayer;
use crate::relayers::cache::RelayerHealth;
use crate::store::{Transaction, TxStatus, now_ms};

/// Transactions followed per poll.
const BATCH: u32 = 500;

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
            if let Err(error) = self.follow_receipts().await {
                tracing::warn!(%error, "watcher poll failed; retrying next tick");
            }
        }
    }

    /// Refreshes every relayer's stats; syncs the lane of any not yet synced.
    pub async fn refresh_relayers(&self) {
        for relayer in self.relay.pool.iter() {
            if let Err(error) = self.refresh(relayer).await {
                tracing::warn!(relayer = %relayer.id, %error, "relayer refresh failed; marked unhealthy");
                relayer.update_stats(|stats| stats.healthy = false);
            }
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
            live.pending = u32::try_from(counts.pending).unwrap_or(u32::MAX);
            live.healthy = health.healthy;
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

    async fn follow_receipts(&self) -> Result<(), String> {
        let in_flight = self.relay.store.in_flight(BATCH).await.map_err(|e| e.to_string())?;
        if in_flight.is_empty() {
            return Ok(());
        }
        let head = self.relay.chain.block_number().await.map_err(|e| e.to_string())?;
        for tx in in_flight {
            if let Err(error) = self.follow(&tx, head).await {
                tracing::warn!(transaction = %tx.id(), %error, "receipt check failed");
            }
        }
        Ok(())
    }

    async fn follow(&self, tx: &Transaction, head: u64) -> Result<(), String> {
        let store = &self.relay.store;
        // Newest attempt first: a replacement is the likelier to be mined.
        for attempt in tx.attempts.iter().rev() {
            let hash = attempt.hash.parse().map_err(|_| format!("stored hash `{}` is not a hash", attempt.hash))?;
            let Some(inclusion) = self.relay.chain.inclusion(hash).await.map_err(|e| e.to_string())? else {
                continue;
            };
            let depth = head.saturating_sub(inclusion.block_number) + 1;
            let (status, reason) = match (inclusion.success, depth >= self.relay.settings.confirmations) {
                (false, _) => {
                    (TxStatus::Failed, Some(format!("reverted on chain in block {}", inclusion.block_number)))
                }
                (true, true) => (TxStatus::Confirmed, None),
                (true, false) => (TxStatus::Mined, None),
            };
            if status != tx.status {
                let text = format!(
                    "{status} in block {} (attempt {}, depth {depth})",
                    inclusion.block_number, attempt.attempt
                );
                store.add_decision(tx.id(), &host_record("watcher", text)).await.map_err(|e| e.to_string())?;
                store.settle(tx.id(), status, reason.as_deref(), attempt.attempt).await.map_err(|e| e.to_string())?;
                if status.is_final()
                    && let Some(relayer) = tx.relayer_id.as_deref().and_then(|id| self.relay.pool.get(id))
                {
                    relayer.update_stats(|stats| stats.pending = stats.pending.saturating_sub(1));
                }
            }
            return Ok(());
        }
        Ok(())
    }
}
