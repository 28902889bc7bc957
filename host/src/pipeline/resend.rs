//! Sends at a nonce a transaction already holds: a fee bump of a stuck
//! transaction, a no-op in its place (cancel, expiry), a resend of what the
//! node dropped, and a no-op filling a gap in a relayer's lane. Each is
//! persisted before it leaves the host and lands in the trail with why.

use std::time::Instant;

use alloy_primitives::U256;

use super::pricing::Unpriced;
use super::{Relay, host_record};
use crate::chain::{ChainError, Refusal};
use crate::plugins::{AttemptFees, Speed, TxRequest};
use crate::relayers::{Relayer, SendFields, SignedTx};
use crate::store::{Attempt, NewTransaction, Purpose, StoreError, Transaction, TxStatus, now_ms};

/// Gas of a plain transfer: all a no-op needs.
const NOOP_GAS: u64 = 21_000;

/// The API key id the host's own transactions (gap fillers) carry.
pub const HOST_KEY_ID: &str = "switchyard";

/// What became of a replacement at a held nonce.
#[derive(Debug)]
pub(super) enum Replaced {
    /// Recorded as attempt `attempt` and handed to the node, which said
    /// `accepted`. An unreachable node is retried by the dropped check.
    Sent { attempt: u32, accepted: Result<(), ChainError> },
    /// The fee plugin cannot bump under the cap.
    CannotBump(String),
    /// It moved on meanwhile: mined, finished, or replaced by another
    /// replica first.
    Moved,
}

/// Re-signs `attempt` of `tx` from what it recorded; the bytes match its
/// hash (RFC 6979), which is checked.
pub(super) fn sign_attempt(
    chain_id: u64,
    relayer: &Relayer,
    tx: &Transaction,
    attempt: &Attempt,
) -> Result<SignedTx, String> {
    let fields = SendFields {
        chain_id,
        nonce: attempt.nonce,
        gas_limit: attempt.gas_limit,
        max_fee: attempt.max_fee,
        priority_fee: attempt.priority_fee,
    };
    let request = TxRequest { to: attempt.to, value: attempt.value, data: attempt.data.clone(), ..tx.request.clone() };
    let signed = relayer.sign_transaction(&request, fields).map_err(|e| e.to_string())?;
    if signed.hash.to_string() != attempt.hash {
        return Err(format!("re-signing attempt {} gave a different hash; refusing to send", attempt.attempt));
    }
    Ok(signed)
}

/// A 0-value transfer from the relayer to itself: what takes a nonce when
/// the transaction it was meant for must not run.
fn noop_request(base: &TxRequest, relayer: &Relayer) -> TxRequest {
    TxRequest {
        to: Some(relayer.address),
        value: U256::ZERO,
        data: Vec::new(),
        gas_limit: Some(NOOP_GAS),
        ..base.clone()
    }
}

impl Relay {
    /// Broadcasts signed bytes from `relayer`, noting the outcome for its
    /// success rate and latency.
    pub(super) async fn send_signed(&self, relayer: &Relayer, signed: &SignedTx) -> Result<(), ChainError> {
        let started = Instant::now();
        let sent = self.chain.send_raw(&signed.raw).await;
        let elapsed = u32::try_from(started.elapsed().as_millis()).unwrap_or(u32::MAX);
        relayer.note_send(elapsed, sent.is_ok());
        sent
    }

    /// Replaces the latest attempt of `tx` at its nonce: the same content
    /// with bumped fees (`Purpose::Send`), or a no-op (cancel, expiry).
    /// `why` opens the trail's line.
    pub(super) async fn replace_at_nonce(
        &self,
        tx: &Transaction,
        purpose: Purpose,
        why: &str,
    ) -> Result<Replaced, String> {
        let (Some(last), Some(relayer)) = (tx.attempts.last(), tx.relayer_id.as_deref().and_then(|r| self.pool.get(r)))
        else {
            return Ok(Replaced::Moved);
        };
        let request = match purpose {
            Purpose::Send => TxRequest {
                to: last.to,
                value: last.value,
                data: last.data.clone(),
                gas_limit: Some(last.gas_limit),
                ..tx.request.clone()
            },
            Purpose::Cancel | Purpose::Expire => noop_request(&tx.request, relayer),
        };
        let previous = AttemptFees { max_fee: last.max_fee, priority_fee: last.priority_fee };
        let number = last.attempt + 1;
        let mut priced = match self.price(&request, relayer, (last.nonce, number), None, Some(previous)).await {
            Ok(priced) => priced,
            Err(Unpriced::Declined(reason)) => return Ok(Replaced::CannotBump(reason)),
            Err(Unpriced::Transient(error) | Unpriced::Reverted(error)) => return Err(error),
        };
        priced.attempt.purpose = purpose;
        let nonce = last.nonce;
        let reason = match purpose {
            Purpose::Send => None,
            Purpose::Cancel => Some(format!("canceling: a no-op replaces it at nonce {nonce}")),
            Purpose::Expire => Some(format!("expiring (valid_until passed): a no-op replaces it at nonce {nonce}")),
        };
        let text = format!(
            "{why}: attempt {number} ({}) at nonce {nonce}, max_fee={} priority_fee={}",
            purpose.as_str(),
            priced.attempt.max_fee,
            priced.attempt.priority_fee
        );
        let decisions = [host_record(kind(purpose), text), priced.decision];
        match self.store.bump(tx.id(), &priced.attempt, &decisions, reason.as_deref()).await {
            Ok(true) => {}
            Ok(false) | Err(StoreError::AttemptTaken { .. }) => return Ok(Replaced::Moved),
            Err(error) => return Err(error.to_string()),
        }
        let accepted = self.send_signed(relayer, &priced.signed).await;
        if let Err(error) = &accepted {
            let text = format!("attempt {number} not accepted: {error}");
            self.store.add_decision(tx.id(), &host_record(kind(purpose), text)).await.map_err(|e| e.to_string())?;
        }
        Ok(Replaced::Sent { attempt: number, accepted })
    }

    /// Sends the latest attempt of a sent or submitted transaction again if
    /// the node knows none of its attempts (dropped from its mempool).
    /// Whether it was sent again.
    pub(super) async fn resend_if_dropped(&self, id: &str) -> Result<bool, String> {
        let Some(tx) = self.store.working(id).await.map_err(|e| e.to_string())? else { return Ok(false) };
        let (Some(last), Some(relayer)) = (tx.attempts.last(), tx.relayer_id.as_deref().and_then(|r| self.pool.get(r)))
        else {
            return Ok(false);
        };
        if !matches!(tx.status, TxStatus::Sent | TxStatus::Submitted) {
            return Ok(false);
        }
        for attempt in tx.attempts.iter().rev() {
            let hash = attempt.hash.parse().map_err(|_| format!("stored hash `{}` is not a hash", attempt.hash))?;
            if self.chain.knows(hash).await.map_err(|e| e.to_string())? {
                return Ok(false);
            }
        }
        let signed = sign_attempt(self.chain.chain_id(), relayer, &tx, last)?;
        let sent = self.send_signed(relayer, &signed).await;
        let text = match &sent {
            Ok(()) => format!("the node no longer had attempt {} (dropped): sent it again", last.attempt),
            Err(error) => {
                format!("the node no longer had attempt {} (dropped); sending it again failed: {error}", last.attempt)
            }
        };
        let record = host_record("resend", text);
        let moved = match (&sent, tx.status) {
            (Ok(()), TxStatus::Sent) => self.store.submitted(id, &record).await.map_err(|e| e.to_string())?,
            _ => false,
        };
        if !moved {
            self.store.add_decision(id, &record).await.map_err(|e| e.to_string())?;
        }
        match sent {
            Ok(()) => Ok(true),
            Err(error) if error.refusal() == Some(Refusal::NonceTooLow) => {
                self.nonce_taken(&tx, relayer).await?;
                Ok(false)
            }
            Err(_) => Ok(false),
        }
    }

    /// The chain says the nonce of `tx` is used. If none of its attempts was
    /// mined, someone else used it: the transaction gives the nonce back and
    /// is queued again for a new one, and the lane resyncs from the chain.
    /// Whether it was released.
    pub(super) async fn nonce_taken(&self, tx: &Transaction, relayer: &Relayer) -> Result<bool, String> {
        for attempt in &tx.attempts {
            let hash = attempt.hash.parse().map_err(|_| format!("stored hash `{}` is not a hash", attempt.hash))?;
            if self.chain.inclusion(hash).await.map_err(|e| e.to_string())?.is_some() {
                return Ok(false); // ours: the watcher settles it
            }
        }
        let nonce = tx.nonce.map_or_else(|| "?".into(), |n| n.to_string());
        let text = format!(
            "nonce {nonce} was used on chain by another transaction (nonce too low): released, to be sent again with a new nonce"
        );
        let released =
            self.store.release_nonce(tx.id(), &host_record("nonce", text)).await.map_err(|e| e.to_string())?;
        if released {
            crate::telemetry::chain_event("nonce_released");
        }
        self.resync_lane(relayer).await?;
        Ok(released)
    }

    /// Moves the relayer's lane to the chain's pending nonce, or past every
    /// nonce an unfinished transaction holds.
    pub(super) async fn resync_lane(&self, relayer: &Relayer) -> Result<u64, String> {
        let on_chain = self.chain.pending_nonce(relayer.address).await.map_err(|e| e.to_string())?;
        let next = self.store.sync_lane(&relayer.id, on_chain).await.map_err(|e| e.to_string())?;
        tracing::info!(relayer = %relayer.id, on_chain, next, "nonce lane resynced");
        Ok(next)
    }

    /// Fills nonce `nonce` of `relayer`, which no transaction will use, with
    /// a no-op so that the transactions above it can be mined. Whether it
    /// was filled (`false`: a transaction took it meanwhile).
    pub(super) async fn fill_gap(&self, relayer: &Relayer, nonce: u64) -> Result<bool, String> {
        let base = TxRequest {
            id: crate::store::new_transaction_id(),
            chain_id: self.chain.chain_id(),
            speed: Speed::Fast,
            api_key_id: HOST_KEY_ID.into(),
            hints: vec![("switchyard.purpose".into(), "fill-nonce-gap".into())],
            ..TxRequest::default()
        };
        let request = noop_request(&base, relayer);
        let priced = match self.price(&request, relayer, (nonce, 1), None, None).await {
            Ok(priced) => priced,
            Err(Unpriced::Transient(e) | Unpriced::Declined(e) | Unpriced::Reverted(e)) => return Err(e),
        };
        let text = format!("nonce {nonce} of {} is a gap no transaction will use: this no-op fills it", relayer.id);
        let filler = NewTransaction {
            request,
            relayer_id: Some(relayer.id.clone()),
            valid_until: None,
            decisions: vec![host_record("nonce", text)],
            created_at: now_ms(),
            idempotency: None,
        };
        self.store.fill_gap(&filler, &priced.attempt, &[priced.decision]).await.map_err(|e| e.to_string())
    }
}

fn kind(purpose: Purpose) -> &'static str {
    match purpose {
        Purpose::Send => "resubmit",
        Purpose::Cancel => "cancel",
        Purpose::Expire => "expire",
    }
}
