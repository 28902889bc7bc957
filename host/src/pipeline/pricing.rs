//! One priced, signed attempt: the first send of a transaction (worker) or
//! a replacement at its nonce (`Relay::replace`). The fee plugin prices it
//! from `eth_feeHistory` (read at most once per poll interval); a client's
//! gas limit is used as given, an estimate gets
//! `network.gas_limit_buffer_bps` and the fee plugin's factor.

use super::{Relay, fee_text, record};
use crate::chain::{ChainError, EstimateBlock, Refusal};
use crate::plugins::{AttemptFees, FeeDecision, FeeMarket, PluginKind, TxRequest};
use crate::relayers::{Relayer, SendFields, SignedTx};
use crate::store::{Attempt, DecisionRecord, Purpose, now_ms};

/// Why no attempt could be priced.
#[derive(Debug)]
pub(super) enum Unpriced {
    /// The chain or a plugin call failed: worth retrying.
    Transient(String),
    /// The fee plugin declined (a replacement it cannot bump under the cap).
    Declined(String),
    /// The call reverts in gas estimation.
    Reverted(String),
}

#[derive(Debug)]
pub(super) struct Priced {
    pub attempt: Attempt,
    /// The fee plugin's decision, for the trail.
    pub decision: DecisionRecord,
    pub signed: SignedTx,
}

impl Relay {
    /// The chain's fee market, read at most once per poll interval: the
    /// sends in between price from the same blocks, and the node answers
    /// one `eth_feeHistory` instead of one per send.
    async fn fee_market(&self, previous: Option<AttemptFees>) -> Result<FeeMarket, String> {
        let settings = &self.settings;
        let read = || {
            let (chain, blocks, cap) = (self.chain.clone(), settings.fee_history_blocks, settings.max_fee_cap);
            async move { chain.fee_market(blocks, cap, None).await.map_err(|e| e.to_string()) }
        };
        let market = self.fee_market.get(settings.poll_interval, read).await?;
        Ok(FeeMarket { previous, ..market })
    }

    /// `eth_estimateGas` from `relayer`: `Ok(Err(reason))` when it reverts.
    pub(super) async fn estimate(&self, relayer: &Relayer, request: &TxRequest) -> Result<Result<u64, String>, String> {
        match self
            .chain
            .estimate_gas(relayer.address, request, estimate_block(request, self.settings.estimate_block))
            .await
        {
            Ok(estimate) => Ok(Ok(estimate)),
            Err(error @ ChainError::Refused { refusal: Refusal::Reverted | Refusal::Other, .. }) => {
                Ok(Err(format!("gas estimation failed: {error}")))
            }
            Err(error) => Err(error.to_string()),
        }
    }

    /// Prices and signs attempt `number` of `request` at `nonce`.
    /// `previous` makes it a replacement, which the fee plugin must bump.
    pub(super) async fn price(
        &self,
        request: &TxRequest,
        relayer: &Relayer,
        (nonce, number): (u64, u32),
        estimate: Option<u64>,
        previous: Option<AttemptFees>,
    ) -> Result<Priced, Unpriced> {
        let settings = &self.settings;
        let market = self.fee_market(previous).await.map_err(Unpriced::Transient)?;
        let decision = self.plugins.price(request, &market).await;
        let quote = match &decision.outcome {
            FeeDecision::Quote(quote) => *quote,
            FeeDecision::CannotBump(reason) => return Err(Unpriced::Declined(reason.clone())),
        };
        let gas_limit = match request.gas_limit {
            Some(given) => given,
            None => {
                let estimate = match estimate {
                    Some(estimate) => estimate,
                    None => self
                        .estimate(relayer, request)
                        .await
                        .map_err(Unpriced::Transient)?
                        .map_err(Unpriced::Reverted)?,
                };
                let bps =
                    u128::from(settings.gas_limit_buffer_bps) * u128::from(quote.gas_limit_factor_bps.max(10_000));
                u64::try_from(u128::from(estimate) * bps / 100_000_000).unwrap_or(u64::MAX)
            }
        };
        let fields = SendFields {
            chain_id: self.chain.chain_id(),
            nonce,
            gas_limit,
            max_fee: quote.max_fee.min(settings.max_fee_cap),
            priority_fee: quote.priority_fee.min(quote.max_fee).min(settings.max_fee_cap),
        };
        let signed = relayer.sign_transaction(request, fields).map_err(|e| Unpriced::Transient(e.to_string()))?;
        let attempt = Attempt {
            attempt: number,
            hash: signed.hash.to_string(),
            nonce,
            max_fee: fields.max_fee,
            priority_fee: fields.priority_fee,
            gas_limit,
            sent_at: now_ms(),
            purpose: Purpose::Send,
            to: request.to,
            value: request.value,
            data: request.data.clone(),
        };
        let text = fee_text(&decision.outcome);
        Ok(Priced { attempt, decision: record(PluginKind::Fee, &decision, text), signed })
    }
}

/// A plain transfer reads nothing the relayer's unmined transactions
/// write (short of code they deploy at its recipient), so it skips the
/// pending state some nodes rebuild for every call.
fn estimate_block(request: &TxRequest, configured: EstimateBlock) -> EstimateBlock {
    if request.to.is_some() && request.data.is_empty() { EstimateBlock::Latest } else { configured }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_calls_and_deploys_are_estimated_against_the_configured_block() {
        let to = Some(alloy_primitives::Address::repeat_byte(7));
        let transfer = TxRequest { to, ..TxRequest::default() };
        let call = TxRequest { to, data: vec![1], ..TxRequest::default() };
        let deploy = TxRequest { to: None, ..TxRequest::default() };
        assert_eq!(estimate_block(&transfer, EstimateBlock::Pending), EstimateBlock::Latest);
        assert_eq!(estimate_block(&call, EstimateBlock::Pending), EstimateBlock::Pending);
        assert_eq!(estimate_block(&deploy, EstimateBlock::Pending), EstimateBlock::Pending);
        assert_eq!(estimate_block(&call, EstimateBlock::Latest), EstimateBlock::Latest);
    }
}
