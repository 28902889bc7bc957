//! The chain, over JSON-RPC (alloy). Every answer is checked before use: a
//! node that answers nonsense is an error, not a value.

pub mod dev;

use std::time::Duration;

use alloy::eips::BlockNumberOrTag;
use alloy::network::{Ethereum, TransactionBuilder};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::TransactionRequest;
use alloy::transports::http::{Http, reqwest};
use alloy::transports::{RpcError, TransportError};
use alloy_primitives::{Address, B256, U256};

use crate::plugins::{AttemptFees, FeeMarket, TxRequest};

/// The priority-fee percentiles asked of `eth_feeHistory`: those the fee
/// plugins' tiers read.
pub const FEE_PERCENTILES: [u8; 6] = [10, 25, 50, 75, 90, 95];

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The node could not be reached, timed out or answered garbage: worth
    /// retrying.
    #[error("chain RPC unavailable: {0}")]
    Unavailable(String),
    /// The node answered with a JSON-RPC error.
    #[error("chain RPC refused: {0}")]
    Refused(String),
    #[error("chain id mismatch: configured {configured}, the node says {actual}")]
    WrongChain { configured: u64, actual: u64 },
}

impl ChainError {
    fn from_transport(error: TransportError) -> Self {
        match error {
            RpcError::ErrorResp(payload) => ChainError::Refused(payload.message.to_string()),
            other => ChainError::Unavailable(other.to_string()),
        }
    }

    /// The node's error message, lowercased, when it refused.
    pub fn refusal(&self) -> Option<String> {
        match self {
            ChainError::Refused(message) => Some(message.to_ascii_lowercase()),
            _ => None,
        }
    }
}

/// A receipt, reduced to what the watcher needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inclusion {
    pub block_number: u64,
    pub success: bool,
}

#[derive(Clone, Debug)]
pub struct Chain {
    provider: RootProvider<Ethereum>,
    chain_id: u64,
}

impl Chain {
    /// Connects and reads the chain id, checked against `expected` if given.
    pub async fn connect(url: &str, timeout: Duration, expected: Option<u64>) -> Result<Self, ChainError> {
        let mut chain = Chain::with_chain_id(url, timeout, 0)?;
        chain.chain_id = chain.provider.get_chain_id().await.map_err(ChainError::from_transport)?;
        if let Some(configured) = expected.filter(|&c| c != chain.chain_id) {
            return Err(ChainError::WrongChain { configured, actual: chain.chain_id });
        }
        Ok(chain)
    }

    /// A client for a chain whose id is already known; nothing is sent
    /// until it is used.
    pub fn with_chain_id(url: &str, timeout: Duration, chain_id: u64) -> Result<Self, ChainError> {
        let url: reqwest::Url =
            url.parse().map_err(|e| ChainError::Unavailable(format!("bad RPC URL `{url}`: {e}")))?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| ChainError::Unavailable(format!("HTTP client: {e}")))?;
        let is_local = url.host_str().is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "::1");
        let provider = RootProvider::new(RpcClient::new(Http::with_client(client, url), is_local));
        Ok(Chain { provider, chain_id })
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The next nonce the node would accept from `address`, counting its
    /// mempool.
    pub async fn pending_nonce(&self, address: Address) -> Result<u64, ChainError> {
        self.provider.get_transaction_count(address).pending().await.map_err(ChainError::from_transport)
    }

    pub async fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.provider.get_balance(address).await.map_err(ChainError::from_transport)
    }

    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(ChainError::from_transport)
    }

    /// The fee market over the last `blocks` blocks: the next block's base
    /// fee and, per percentile, the median priority fee paid.
    pub async fn fee_market(
        &self,
        blocks: u64,
        max_fee_cap: U256,
        previous: Option<AttemptFees>,
    ) -> Result<FeeMarket, ChainError> {
        let percentiles: Vec<f64> = FEE_PERCENTILES.iter().map(|&p| f64::from(p)).collect();
        let history = self
            .provider
            .get_fee_history(blocks, BlockNumberOrTag::Latest, &percentiles)
            .await
            .map_err(ChainError::from_transport)?;
        let base_fee = history
            .base_fee_per_gas
            .last()
            .copied()
            .ok_or_else(|| ChainError::Unavailable("eth_feeHistory answered no base fee".into()))?;
        let rewards = history.reward.unwrap_or_default();
        if rewards.iter().any(|row| row.len() != FEE_PERCENTILES.len()) {
            return Err(ChainError::Unavailable("eth_feeHistory answered rows of the wrong width".into()));
        }
        let priority_fees = FEE_PERCENTILES
            .iter()
            .enumerate()
            .map(|(column, &percentile)| {
                let mut paid: Vec<u128> = rewards.iter().map(|row| row[column]).collect();
                paid.sort_unstable();
                (percentile, U256::from(paid.get(paid.len() / 2).copied().unwrap_or(0)))
            })
            .collect();
        Ok(FeeMarket { base_fee: U256::from(base_fee), priority_fees, max_fee_cap, previous })
    }

    /// `eth_estimateGas` for `request` sent from `from`. A revert comes back
    /// as [`ChainError::Refused`] with the node's reason.
    pub async fn estimate_gas(&self, from: Address, request: &TxRequest) -> Result<u64, ChainError> {
        let mut call =
            TransactionRequest::default().with_from(from).with_value(request.value).with_input(request.data.clone());
        match request.to {
            Some(to) => call.set_to(to),
            None => call.set_create(),
        }
        self.provider.estimate_gas(call).await.map_err(ChainError::from_transport)
    }

    /// Broadcasts a signed transaction. A node that already has it counts as
    /// success: resending after a crash is how a send is made idempotent.
    pub async fn send_raw(&self, raw: &[u8]) -> Result<(), ChainError> {
        match self.provider.send_raw_transaction(raw).await {
            Ok(_) => Ok(()),
            Err(error) => {
                let error = ChainError::from_transport(error);
                match error.refusal() {
                    Some(m) if m.contains("already known") || m.contains("already imported") => Ok(()),
                    _ => Err(error),
                }
            }
        }
    }

    pub async fn inclusion(&self, hash: B256) -> Result<Option<Inclusion>, ChainError> {
        let receipt = self.provider.get_transaction_receipt(hash).await.map_err(ChainError::from_transport)?;
        let Some(receipt) = receipt else { return Ok(None) };
        let block_number = receipt
            .block_number
            .ok_or_else(|| ChainError::Unavailable(format!("receipt of {hash} has no block number")))?;
        Ok(Some(Inclusion { block_number, success: receipt.status() }))
    }
}
