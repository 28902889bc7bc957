//! The chain, over JSON-RPC (alloy). Every answer is checked before use: a
//! node that answers nonsense is an error, not a value.

pub mod dev;
pub mod fault;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::network::{Ethereum, TransactionBuilder};
use alloy::providers::{Provider, RootProvider};
use alloy::rpc::client::RpcClient;
use alloy::rpc::types::TransactionRequest;
use alloy::transports::http::{Http, reqwest};
use alloy::transports::{RpcError, TransportError};
use alloy_primitives::{Address, B256, U256};

pub use fault::{Outage, Refusal};
use fault::{classify_refusal, classify_transport};

use crate::plugins::{AttemptFees, FeeMarket, TxRequest};
use crate::telemetry::METRICS;

/// The priority-fee percentiles asked of `eth_feeHistory`: those the fee
/// plugins' tiers read.
pub const FEE_PERCENTILES: [u8; 6] = [10, 25, 50, 75, 90, 95];

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// No endpoint could be asked: worth retrying.
    #[error("chain RPC unavailable ({outage}): {message}")]
    Unavailable { outage: Outage, message: String },
    /// The node answered with a JSON-RPC error.
    #[error("chain RPC refused ({refusal}): {message}")]
    Refused { refusal: Refusal, message: String },
    #[error("chain id mismatch: configured {configured}, the node at {url} says {actual}")]
    WrongChain { configured: u64, actual: u64, url: String },
}

impl ChainError {
    fn from_transport(error: TransportError) -> Self {
        match error {
            RpcError::ErrorResp(payload) => match classify_refusal(payload.code, &payload.message) {
                Ok(refusal) => ChainError::Refused { refusal, message: payload.message.to_string() },
                Err(outage) => ChainError::Unavailable { outage, message: payload.message.to_string() },
            },
            other => ChainError::Unavailable { outage: classify_transport(&other), message: other.to_string() },
        }
    }

    /// The error with `endpoint`'s URL (whose path or query may hold a
    /// provider's API key) replaced by its shown form.
    fn scrubbed(self, endpoint: &Endpoint) -> Self {
        let scrub = |message: String| {
            endpoint.secret_forms.iter().fold(message, |message, form| message.replace(form.as_str(), &endpoint.shown))
        };
        match self {
            ChainError::Unavailable { outage, message } => ChainError::Unavailable { outage, message: scrub(message) },
            ChainError::Refused { refusal, message } => ChainError::Refused { refusal, message: scrub(message) },
            wrong @ ChainError::WrongChain { .. } => wrong,
        }
    }

    fn bad_answer(message: String) -> Self {
        ChainError::Unavailable { outage: Outage::BadAnswer, message }
    }

    /// Why the node refused, when it did.
    pub fn refusal(&self) -> Option<Refusal> {
        match self {
            ChainError::Refused { refusal, .. } => Some(*refusal),
            _ => None,
        }
    }

    /// Counts it in `switchyard_rpc_errors_total` by class.
    fn count(&self) {
        let class = match self {
            ChainError::Unavailable { outage, .. } => outage.to_string(),
            ChainError::Refused { refusal, .. } => refusal.to_string(),
            ChainError::WrongChain { .. } => "wrong chain".into(),
        };
        METRICS.rpc_errors.with_label_values(&[&class]).inc();
    }

    /// Worth retrying later or elsewhere.
    pub fn is_transient(&self) -> bool {
        matches!(self, ChainError::Unavailable { .. })
    }
}

/// A receipt, reduced to what the watcher needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inclusion {
    pub block_number: u64,
    pub block_hash: B256,
    pub success: bool,
}

/// One endpoint's answer to a health probe.
#[derive(Clone, Debug)]
pub struct EndpointProbe {
    /// Scheme, host and port only.
    pub endpoint: String,
    /// The one calls go to first.
    pub active: bool,
    pub head: Result<u64, String>,
    pub latency: Duration,
}

/// One configured RPC endpoint.
#[derive(Debug)]
struct Endpoint {
    /// With any password, path and query left out: for logs, metrics and
    /// status pages.
    shown: String,
    /// The URL as configured and as the HTTP client prints it, to scrub
    /// from error messages.
    secret_forms: Vec<String>,
    provider: RootProvider<Ethereum>,
}

/// The endpoints of one network, tried in order from the one that last
/// answered: an outage of one fails over to the next.
#[derive(Debug)]
struct Endpoints {
    list: Vec<Endpoint>,
    active: AtomicUsize,
}

/// The state `eth_estimateGas` runs against (`network.estimate_block` for
/// calls and deploys; the pipeline estimates plain transfers at `Latest`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EstimateBlock {
    /// The node's pending state: a call sees what the relayer's own unmined
    /// transactions did (an approve sent just before the call spending it).
    #[default]
    Pending,
    /// The latest block: misses unmined transactions' effects, but costs
    /// less on a node that builds its pending state for every call (anvil
    /// replays its whole mempool each time).
    Latest,
}

#[derive(Clone, Debug)]
pub struct Chain {
    endpoints: Arc<Endpoints>,
    chain_id: u64,
}

impl Chain {
    /// Connects and reads the chain id from the first endpoint that answers;
    /// every endpoint that answers must agree with it and with `expected`.
    pub async fn connect(urls: &[String], timeout: Duration, expected: Option<u64>) -> Result<Self, ChainError> {
        let mut chain = Chain::with_chain_id(urls, timeout, 0)?;
        let mut last = None;
        for endpoint in &chain.endpoints.list {
            match endpoint.provider.get_chain_id().await.map_err(|e| ChainError::from_transport(e).scrubbed(endpoint)) {
                Ok(actual) => {
                    let configured = expected.unwrap_or(if chain.chain_id == 0 { actual } else { chain.chain_id });
                    if actual != configured {
                        return Err(ChainError::WrongChain { configured, actual, url: endpoint.shown.clone() });
                    }
                    chain.chain_id = actual;
                }
                Err(error) if error.is_transient() => last = Some(error),
                Err(error) => return Err(error),
            }
        }
        match (chain.chain_id, last) {
            (0, Some(error)) => Err(error),
            _ => Ok(chain),
        }
    }

    /// A client for a chain whose id is already known; nothing is sent
    /// until it is used.
    pub fn with_chain_id(urls: &[String], timeout: Duration, chain_id: u64) -> Result<Self, ChainError> {
        if urls.is_empty() {
            return Err(ChainError::bad_answer("no RPC URL configured".into()));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| ChainError::bad_answer(format!("HTTP client: {e}")))?;
        let list = urls
            .iter()
            .map(|url| {
                let shown = crate::config::redact_endpoint(url);
                let parsed: reqwest::Url =
                    url.parse().map_err(|e| ChainError::bad_answer(format!("bad RPC URL `{shown}`: {e}")))?;
                let is_local = parsed.host_str().is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]");
                let secret_forms = vec![parsed.to_string(), url.clone()];
                let provider = RootProvider::new(RpcClient::new(Http::with_client(client.clone(), parsed), is_local));
                METRICS.rpc_failovers.with_label_values(&[&shown]);
                Ok(Endpoint { shown, secret_forms, provider })
            })
            .collect::<Result<Vec<_>, ChainError>>()?;
        Ok(Chain { endpoints: Arc::new(Endpoints { list, active: AtomicUsize::new(0) }), chain_id })
    }

    /// Runs `call` on the active endpoint, failing over to the others in
    /// turn while the failure is an outage. A refusal is the node's answer
    /// and is returned at once.
    async fn rpc<T, F, Fut>(&self, call: F) -> Result<T, ChainError>
    where
        F: Fn(RootProvider<Ethereum>) -> Fut,
        Fut: Future<Output = Result<T, TransportError>>,
    {
        let endpoints = &self.endpoints;
        let start = endpoints.active.load(Ordering::Relaxed);
        let count = endpoints.list.len();
        let mut last = None;
        for step in 0..count {
            let index = (start + step) % count;
            let endpoint = &endpoints.list[index];
            match call(endpoint.provider.clone()).await.map_err(|e| ChainError::from_transport(e).scrubbed(endpoint)) {
                Ok(value) => {
                    if index != start
                        && endpoints.active.compare_exchange(start, index, Ordering::Relaxed, Ordering::Relaxed).is_ok()
                    {
                        tracing::warn!(endpoint = %endpoint.shown, "RPC failover: this endpoint answers now");
                        METRICS.rpc_failovers.with_label_values(&[&endpoint.shown]).inc();
                    }
                    return Ok(value);
                }
                Err(error) if error.is_transient() => {
                    tracing::debug!(endpoint = %endpoint.shown, %error, "RPC endpoint unavailable");
                    error.count();
                    last = Some(error);
                }
                Err(error) => {
                    error.count();
                    return Err(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| ChainError::bad_answer("no RPC endpoint".into())))
    }

    /// Asks every endpoint for its head, each on its own (no failover), for
    /// the detailed health page.
    pub async fn probe_endpoints(&self) -> Vec<EndpointProbe> {
        let active = self.endpoints.active.load(Ordering::Relaxed) % self.endpoints.list.len();
        let probes = self.endpoints.list.iter().enumerate().map(|(index, endpoint)| async move {
            let started = std::time::Instant::now();
            let head = endpoint
                .provider
                .get_block_number()
                .await
                .map_err(|e| ChainError::from_transport(e).scrubbed(endpoint).to_string());
            EndpointProbe {
                endpoint: endpoint.shown.clone(),
                active: index == active,
                head,
                latency: started.elapsed(),
            }
        });
        futures::future::join_all(probes).await
    }

    /// The endpoint calls go to first, for status pages.
    pub fn active_endpoint(&self) -> &str {
        let endpoints = &self.endpoints;
        &endpoints.list[endpoints.active.load(Ordering::Relaxed) % endpoints.list.len()].shown
    }

    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The next nonce the node would accept from `address`, counting its
    /// mempool.
    pub async fn pending_nonce(&self, address: Address) -> Result<u64, ChainError> {
        self.rpc(|p| async move { p.get_transaction_count(address).pending().await }).await
    }

    /// How many transactions of `address` are mined: its next nonce on chain.
    pub async fn mined_nonce(&self, address: Address) -> Result<u64, ChainError> {
        self.rpc(|p| async move { p.get_transaction_count(address).latest().await }).await
    }

    pub async fn balance(&self, address: Address) -> Result<U256, ChainError> {
        self.rpc(|p| async move { p.get_balance(address).await }).await
    }

    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.rpc(|p| async move { p.get_block_number().await }).await
    }

    /// The canonical block hash at `number`; `None` past the head.
    pub async fn block_hash(&self, number: u64) -> Result<Option<B256>, ChainError> {
        let block = self.rpc(|p| async move { p.get_block_by_number(number.into()).await }).await?;
        Ok(block.map(|b| b.header.hash))
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
            .rpc(|p| {
                let percentiles = percentiles.clone();
                async move { p.get_fee_history(blocks, BlockNumberOrTag::Latest, &percentiles).await }
            })
            .await?;
        let base_fee = history
            .base_fee_per_gas
            .last()
            .copied()
            .ok_or_else(|| ChainError::bad_answer("eth_feeHistory answered no base fee".into()))?;
        let rewards = history.reward.unwrap_or_default();
        if rewards.iter().any(|row| row.len() != FEE_PERCENTILES.len()) {
            return Err(ChainError::bad_answer("eth_feeHistory answered rows of the wrong width".into()));
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

    /// `eth_estimateGas` for `request` sent from `from`, against `block`. A
    /// revert comes back as [`Refusal::Reverted`] with the node's reason.
    pub async fn estimate_gas(
        &self,
        from: Address,
        request: &TxRequest,
        block: EstimateBlock,
    ) -> Result<u64, ChainError> {
        let mut call =
            TransactionRequest::default().with_from(from).with_value(request.value).with_input(request.data.clone());
        match request.to {
            Some(to) => call.set_to(to),
            None => call.set_create(),
        }
        self.rpc(|p| {
            let call = call.clone();
            let block = match block {
                EstimateBlock::Pending => BlockId::pending(),
                EstimateBlock::Latest => BlockId::latest(),
            };
            async move { p.estimate_gas(call).block(block).await }
        })
        .await
    }

    /// `eth_call` of `data` on `to`, at the latest block.
    pub async fn call(&self, to: Address, data: Vec<u8>) -> Result<Vec<u8>, ChainError> {
        let call = TransactionRequest::default().with_to(to).with_input(data);
        let answer = self
            .rpc(|p| {
                let call = call.clone();
                async move { p.call(call).await }
            })
            .await?;
        Ok(answer.to_vec())
    }

    /// Broadcasts a signed transaction. A node that already has it counts as
    /// success: resending after a crash is how a send is made idempotent.
    pub async fn send_raw(&self, raw: &[u8]) -> Result<(), ChainError> {
        let sent = self.rpc(|p| async move { p.send_raw_transaction(raw).await.map(|_| ()) }).await;
        match sent {
            Err(error) if error.refusal() == Some(Refusal::AlreadyKnown) => Ok(()),
            other => other,
        }
    }

    /// Whether the node knows the transaction at all (mempool or chain): a
    /// sent transaction it no longer knows was dropped.
    pub async fn knows(&self, hash: B256) -> Result<bool, ChainError> {
        let tx = self.rpc(|p| async move { p.get_transaction_by_hash(hash).await }).await?;
        Ok(tx.is_some())
    }

    pub async fn inclusion(&self, hash: B256) -> Result<Option<Inclusion>, ChainError> {
        let receipt = self.rpc(|p| async move { p.get_transaction_receipt(hash).await }).await?;
        receipt.map(|r| included(&r)).transpose()
    }

    /// Every receipt of block `number`, keyed by transaction hash, with the
    /// block's hash (`None` past the head).
    pub async fn block_receipts(&self, number: u64) -> Result<Option<BlockReceipts>, ChainError> {
        let receipts = self.rpc(|p| async move { p.get_block_receipts(number.into()).await }).await?;
        let Some(receipts) = receipts else { return Ok(None) };
        let block_hash = match receipts.first() {
            Some(first) => first.block_hash,
            None => None,
        };
        let block_hash = match block_hash {
            Some(hash) => hash,
            None => match self.block_hash(number).await? {
                Some(hash) => hash,
                None => return Ok(None),
            },
        };
        let mut included_here = Vec::with_capacity(receipts.len());
        for receipt in &receipts {
            let inclusion = included(receipt)?;
            if inclusion.block_number != number || inclusion.block_hash != block_hash {
                return Err(ChainError::bad_answer(format!(
                    "eth_getBlockReceipts({number}) answered a receipt of block {} ({})",
                    inclusion.block_number, inclusion.block_hash
                )));
            }
            included_here.push((receipt.transaction_hash, inclusion.success));
        }
        Ok(Some(BlockReceipts { number, hash: block_hash, receipts: included_here }))
    }
}

/// A block's receipts: (transaction hash, succeeded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockReceipts {
    pub number: u64,
    pub hash: B256,
    pub receipts: Vec<(B256, bool)>,
}

fn included(receipt: &alloy::rpc::types::TransactionReceipt) -> Result<Inclusion, ChainError> {
    let hash = receipt.transaction_hash;
    let block_number =
        receipt.block_number.ok_or_else(|| ChainError::bad_answer(format!("receipt of {hash} has no block number")))?;
    let block_hash =
        receipt.block_hash.ok_or_else(|| ChainError::bad_answer(format!("receipt of {hash} has no block hash")))?;
    Ok(Inclusion { block_number, block_hash, success: receipt.status() })
}
