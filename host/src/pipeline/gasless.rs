//! Gasless meta-transactions (ERC-2771). A user signs an EIP-712
//! `ForwardRequest` for OpenZeppelin's `ERC2771Forwarder` (Contracts v5); a
//! relayer pays for `execute`, and the target, an `ERC2771Context`, sees the
//! user as `_msgSender()`. Before any gas is spent the host checks what the
//! forwarder would: the forwarder is one the operator trusts, the deadline,
//! the forwarder's nonce for the signer, and the signature. The policy
//! plugin judges the inner call (what the user asked for), not the call to
//! the forwarder.

use alloy::sol_types::{Eip712Domain, SolCall, SolStruct};
use alloy_primitives::{Address, Signature, U256};

use super::idempotency::Fingerprint;
use super::{Relay, SubmitError, host_record};
use crate::chain::ChainError;
use crate::plugins::TxRequest;
use crate::store::{Idempotency, NewTransaction, Transaction, now_ms};

alloy::sol! {
    /// What the user signs (the forwarder's EIP-712 type).
    struct ForwardRequest {
        address from;
        address to;
        uint256 value;
        uint256 gas;
        uint256 nonce;
        uint48 deadline;
        bytes data;
    }

    /// What `execute` takes: the request with its signature, the nonce
    /// being the forwarder's own.
    struct ForwardRequestData {
        address from;
        address to;
        uint256 value;
        uint256 gas;
        uint48 deadline;
        bytes data;
        bytes signature;
    }

    function execute(ForwardRequestData request) external payable;
    function nonces(address owner) external view returns (uint256);
    function eip712Domain() external view returns (
        bytes1 fields,
        string name,
        string version,
        uint256 chainId,
        address verifyingContract,
        bytes32 salt,
        uint256[] extensions
    );
}

impl MetaTransaction {
    /// What identifies it for `Idempotency-Key`.
    fn fingerprint(&self, relayer_id: Option<&str>) -> String {
        Fingerprint::default()
            .field("meta-transaction")
            .field(relayer_id.unwrap_or_default())
            .field(self.forwarder)
            .field(self.from)
            .field(self.to)
            .field(self.value.to_string())
            .field(self.gas.to_string())
            .field(self.nonce.to_string())
            .field(self.deadline.to_string())
            .field(&self.data)
            .field(&self.signature)
            .request(&self.base)
            .finish()
    }
}

/// A meta-transaction as the API accepted it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaTransaction {
    pub forwarder: Address,
    pub from: Address,
    pub to: Address,
    pub value: U256,
    pub gas: u64,
    pub nonce: U256,
    /// Unix seconds (uint48).
    pub deadline: u64,
    pub data: Vec<u8>,
    pub signature: Vec<u8>,
    /// The rest of the outer request: speed, hints, API key id.
    pub base: TxRequest,
}

/// Past `uint48`: the forwarder's deadline type.
const MAX_DEADLINE: u64 = (1 << 48) - 1;

impl Relay {
    /// Verifies `meta`, runs the policy plugin on its inner call and
    /// persists the forwarder call with its queue entry.
    pub async fn submit_gasless(
        &self,
        meta: MetaTransaction,
        relayer_id: Option<String>,
        idempotency_key: Option<String>,
    ) -> Result<Transaction, SubmitError> {
        let idempotency =
            idempotency_key.map(|key| Idempotency { fingerprint: meta.fingerprint(relayer_id.as_deref()), key });
        if let Some(original) = self.replay(&meta.base.api_key_id, idempotency.as_ref()).await? {
            return Ok(original);
        }
        self.check_relayer(relayer_id.as_deref())?;
        let verified = self.verify(&meta).await?;
        let inner = TxRequest {
            chain_id: self.chain.chain_id(),
            to: Some(meta.to),
            value: meta.value,
            data: meta.data.clone(),
            gas_limit: Some(meta.gas),
            hints: [
                meta.base.hints.clone(),
                vec![
                    ("erc2771.from".into(), meta.from.to_string()),
                    ("erc2771.forwarder".into(), meta.forwarder.to_string()),
                ],
            ]
            .concat(),
            ..meta.base.clone()
        };
        let (admitted, policy) = self.admit(inner).await?;
        if admitted.gas_limit != Some(meta.gas) {
            return Err(SubmitError::Denied(format!(
                "the policy would lower the gas limit to {:?}, below the {} the signer signed",
                admitted.gas_limit, meta.gas
            )));
        }
        let call = executeCall {
            request: ForwardRequestData {
                from: meta.from,
                to: meta.to,
                value: meta.value,
                gas: U256::from(meta.gas),
                deadline: alloy_primitives::Uint::<48, 1>::from(meta.deadline),
                data: meta.data.clone().into(),
                signature: meta.signature.clone().into(),
            },
        };
        let outer = TxRequest { to: Some(meta.forwarder), data: call.abi_encode(), gas_limit: None, ..admitted };
        let deadline_ms = i64::try_from(meta.deadline).unwrap_or(i64::MAX / 1000) * 1000;
        let new = NewTransaction {
            request: outer,
            relayer_id,
            // The forwarder refuses it after the deadline: an unmined one is
            // replaced by a no-op then.
            valid_until: Some(deadline_ms),
            decisions: vec![host_record("gasless", verified), policy],
            created_at: now_ms(),
            idempotency,
        };
        self.persist(new).await
    }

    /// The forwarder's checks, done here so a bad request costs no gas: the
    /// trail's line on success.
    async fn verify(&self, meta: &MetaTransaction) -> Result<String, SubmitError> {
        let invalid = |message: String| Err(SubmitError::Invalid(message));
        if !self.settings.forwarders.contains(&meta.forwarder) {
            return invalid(format!(
                "forwarder {} is not trusted here (network.forwarders lists those that are)",
                meta.forwarder
            ));
        }
        if meta.deadline > MAX_DEADLINE {
            return invalid(format!("deadline {} does not fit uint48", meta.deadline));
        }
        let now = u64::try_from(now_ms() / 1000).unwrap_or(0);
        if meta.deadline <= now {
            return invalid(format!("deadline {} has passed (now {now})", meta.deadline));
        }
        let domain = self.forwarder_domain(meta.forwarder).await?;
        let answer = self.chain.call(meta.forwarder, noncesCall { owner: meta.from }.abi_encode()).await;
        let expected = noncesCall::abi_decode_returns(&forwarder_answer(meta.forwarder, answer)?)
            .map_err(|e| SubmitError::Invalid(format!("forwarder {}: nonces(): {e}", meta.forwarder)))?;
        if expected != meta.nonce {
            return Err(SubmitError::NonceMismatch { given: meta.nonce, expected });
        }
        let signed = ForwardRequest {
            from: meta.from,
            to: meta.to,
            value: meta.value,
            gas: U256::from(meta.gas),
            nonce: meta.nonce,
            deadline: alloy_primitives::Uint::<48, 1>::from(meta.deadline),
            data: meta.data.clone().into(),
        };
        let digest = signed.eip712_signing_hash(&domain);
        let signature = Signature::try_from(meta.signature.as_slice())
            .map_err(|e| SubmitError::Invalid(format!("`signature` is not a 65-byte signature: {e}")))?;
        let signer = signature
            .recover_address_from_prehash(&digest)
            .map_err(|e| SubmitError::Invalid(format!("`signature` does not recover: {e}")))?;
        if signer != meta.from {
            return invalid(format!("the signature recovers to {signer}, not to `from` {}", meta.from));
        }
        Ok(format!(
            "ERC-2771 request from {} verified: forwarder {}, nonce {}, deadline {}; relaying execute()",
            meta.from, meta.forwarder, meta.nonce, meta.deadline
        ))
    }

    /// The forwarder's EIP-712 domain, read from it (ERC-5267), checked
    /// against this chain and its own address.
    async fn forwarder_domain(&self, forwarder: Address) -> Result<Eip712Domain, SubmitError> {
        let answer = self.chain.call(forwarder, eip712DomainCall {}.abi_encode()).await;
        let domain = eip712DomainCall::abi_decode_returns(&forwarder_answer(forwarder, answer)?)
            .map_err(|e| SubmitError::Invalid(format!("forwarder {forwarder}: eip712Domain(): {e}")))?;
        let chain_id = U256::from(self.chain.chain_id());
        if domain.chainId != chain_id || domain.verifyingContract != forwarder {
            return Err(SubmitError::Invalid(format!(
                "forwarder {forwarder} signs for chain {} and contract {}, not this chain ({chain_id}) and itself",
                domain.chainId, domain.verifyingContract
            )));
        }
        Ok(Eip712Domain::new(
            Some(domain.name.into()),
            Some(domain.version.into()),
            Some(chain_id),
            Some(forwarder),
            None,
        ))
    }
}

/// An `eth_call` answer of the forwarder: unavailable is retryable, a
/// revert (or no code) means it is not an `ERC2771Forwarder`.
fn forwarder_answer(forwarder: Address, answer: Result<Vec<u8>, ChainError>) -> Result<Vec<u8>, SubmitError> {
    match answer {
        Ok(bytes) if bytes.is_empty() => {
            Err(SubmitError::Invalid(format!("{forwarder} has no code: not an ERC2771Forwarder")))
        }
        Ok(bytes) => Ok(bytes),
        Err(error) if error.is_transient() => Err(SubmitError::ChainUnavailable(error.to_string())),
        Err(error) => Err(SubmitError::Invalid(format!("{forwarder} is not an ERC2771Forwarder: {error}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signed_type_is_the_forwarders() {
        assert_eq!(
            ForwardRequest::eip712_encode_type(),
            "ForwardRequest(address from,address to,uint256 value,uint256 gas,uint256 nonce,uint48 deadline,bytes data)"
        );
        assert_eq!(executeCall::SIGNATURE, "execute((address,address,uint256,uint256,uint48,bytes,bytes))");
    }
}
