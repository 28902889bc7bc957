//! The relayer pool: each relayer is an address with its own key, nonce lane
//! and live stats. The stats become the selector plugin's candidates.

pub mod cache;
pub mod health;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy_primitives::{Address, B256, Signature, TxKind, U256};

use crate::config::{KeySource, RelayerConfig};
use crate::plugins::{Candidate, TxRequest};

#[derive(Debug, thiserror::Error)]
pub enum RelayerError {
    #[error("relayer `{id}`: cannot load its key: {reason}")]
    Key { id: String, reason: String },
    #[error("relayer `{id}`: signing failed: {reason}")]
    Signing { id: String, reason: String },
}

/// What the pool knows of a relayer right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayerStats {
    /// Sent and not yet mined.
    pub pending: u32,
    pub balance: U256,
    /// The last check's verdict.
    pub health: health::Assessment,
    /// When it was last checked (ms since the epoch).
    pub checked_at_ms: Option<i64>,
    /// Smoothed time the node took to answer a send.
    pub latency_ms: u32,
    pub sends: u64,
    /// The last [`health::RECENT_SENDS`] sends, oldest first: accepted or not.
    pub recent: VecDeque<bool>,
    /// The chain's pending nonce at the last refresh.
    pub nonce: u64,
    /// The nonce lane has been synced from the chain since start.
    pub lane_synced: bool,
}

impl RelayerStats {
    /// Offered to the selector: checked, and not disabled.
    pub fn is_offered(&self) -> bool {
        self.health.state.is_offered()
    }

    /// Recent success rate; 100% until enough sends were seen.
    pub fn success_rate_bps(&self) -> u32 {
        let recent: Vec<bool> = self.recent.iter().copied().collect();
        health::success_rate_bps(&recent).unwrap_or(10_000)
    }
}

/// The fields of one send: what the signature covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendFields {
    pub chain_id: u64,
    pub nonce: u64,
    pub gas_limit: u64,
    pub max_fee: U256,
    pub priority_fee: U256,
}

/// A signed transaction, ready to broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedTx {
    pub hash: B256,
    pub raw: Vec<u8>,
}

#[derive(Debug)]
pub struct Relayer {
    pub id: String,
    pub name: String,
    pub address: Address,
    pub weight: u32,
    pub labels: BTreeMap<String, String>,
    pub paused: bool,
    signer: PrivateKeySigner,
    stats: Mutex<RelayerStats>,
}

impl Relayer {
    pub fn new(config: &RelayerConfig, signer: PrivateKeySigner) -> Self {
        Relayer {
            id: config.id.clone(),
            name: config.name.clone().unwrap_or_else(|| config.id.clone()),
            address: signer.address(),
            weight: config.weight,
            labels: config.labels.clone(),
            paused: config.paused,
            signer,
            stats: Mutex::new(RelayerStats::default()),
        }
    }

    /// Loads the relayer's key from where its config says, reading secrets
    /// through `env`.
    pub fn load(config: &RelayerConfig, env: impl Fn(&str) -> Option<String>) -> Result<Self, RelayerError> {
        let error = |reason: String| RelayerError::Key { id: config.id.clone(), reason };
        let signer = match &config.key {
            KeySource { keystore: Some(path), password_env, password_file, .. } => {
                let password = match (password_env, password_file) {
                    (Some(var), _) => {
                        env(var).ok_or_else(|| error(format!("environment variable {var} is not set")))?
                    }
                    (None, Some(file)) => crate::config::read_secret(file).map_err(error)?,
                    (None, None) => return Err(error("a keystore needs password_env or password_file".into())),
                };
                PrivateKeySigner::decrypt_keystore(path, password)
                    .map_err(|e| error(format!("keystore {}: {e}", path.display())))?
            }
            KeySource { env: Some(var), .. } => {
                let hex = env(var).ok_or_else(|| error(format!("environment variable {var} is not set")))?;
                hex.trim().parse().map_err(|_| error(format!("{var} does not hold a hex private key")))?
            }
            _ => return Err(error("no key source".into())),
        };
        Ok(Relayer::new(config, signer))
    }

    pub fn stats(&self) -> RelayerStats {
        self.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn update_stats(&self, update: impl FnOnce(&mut RelayerStats)) {
        update(&mut self.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    /// Records how a send went, for the selector's latency and success rate.
    pub fn note_send(&self, latency_ms: u32, accepted: bool) {
        self.update_stats(|s| {
            s.latency_ms = if s.sends == 0 { latency_ms } else { (s.latency_ms * 7 + latency_ms) / 8 };
            s.sends += 1;
            if s.recent.len() == health::RECENT_SENDS {
                s.recent.pop_front();
            }
            s.recent.push_back(accepted);
        });
    }

    pub fn candidate(&self) -> Candidate {
        let stats = self.stats();
        Candidate {
            id: self.id.clone(),
            address: self.address,
            weight: self.weight,
            labels: self.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            pending_count: stats.pending,
            // Degraded ones are offered too, as healthy: the selector sees
            // their latency, success rate and pending count.
            healthy: stats.is_offered(),
            balance: stats.balance,
            success_rate_bps: stats.success_rate_bps(),
            latency_ms: stats.latency_ms,
        }
    }

    /// Signs `request` as an EIP-1559 transaction. Signatures are
    /// deterministic (RFC 6979): the same fields give the same bytes, so a
    /// send can be repeated after a crash.
    pub fn sign_transaction(&self, request: &TxRequest, fields: SendFields) -> Result<SignedTx, RelayerError> {
        let error = |reason: String| RelayerError::Signing { id: self.id.clone(), reason };
        let narrow = |fee: U256, what: &str| u128::try_from(fee).map_err(|_| error(format!("{what} {fee} overflows")));
        let mut tx = TxEip1559 {
            chain_id: fields.chain_id,
            nonce: fields.nonce,
            gas_limit: fields.gas_limit,
            max_fee_per_gas: narrow(fields.max_fee, "max fee")?,
            max_priority_fee_per_gas: narrow(fields.priority_fee, "priority fee")?,
            to: request.to.map_or(TxKind::Create, TxKind::Call),
            value: request.value,
            access_list: Default::default(),
            input: request.data.clone().into(),
        };
        let signature = self.signer.sign_transaction_sync(&mut tx).map_err(|e| error(e.to_string()))?;
        let envelope = TxEnvelope::Eip1559(tx.into_signed(signature));
        Ok(SignedTx { hash: *envelope.tx_hash(), raw: envelope.encoded_2718() })
    }

    /// EIP-191 personal-message signature.
    pub fn sign_message(&self, message: &[u8]) -> Result<Signature, RelayerError> {
        self.signer
            .sign_message_sync(message)
            .map_err(|e| RelayerError::Signing { id: self.id.clone(), reason: e.to_string() })
    }

    /// Signs a 32-byte digest as is (EIP-712's final hash).
    pub fn sign_hash(&self, hash: &B256) -> Result<Signature, RelayerError> {
        self.signer
            .sign_hash_sync(hash)
            .map_err(|e| RelayerError::Signing { id: self.id.clone(), reason: e.to_string() })
    }
}

/// The relayers, in id order, with the cache of their chain-side health.
#[derive(Debug)]
pub struct RelayerPool {
    relayers: Vec<Relayer>,
    cache: Arc<dyn cache::HealthCache>,
}

impl Default for RelayerPool {
    fn default() -> Self {
        RelayerPool::new(Vec::new())
    }
}

impl RelayerPool {
    /// A pool with an in-process health cache.
    pub fn new(mut relayers: Vec<Relayer>) -> Self {
        relayers.sort_by(|a, b| a.id.cmp(&b.id));
        let ttl = cache::CacheSettings::default().ttl;
        RelayerPool { relayers, cache: Arc::new(cache::MemoryCache::new(ttl)) }
    }

    /// The pool with `cache` (Redis, shared by replicas) instead.
    pub fn with_cache(self, cache: Arc<dyn cache::HealthCache>) -> Self {
        RelayerPool { cache, ..self }
    }

    pub fn cache(&self) -> &dyn cache::HealthCache {
        self.cache.as_ref()
    }

    pub fn get(&self, id: &str) -> Option<&Relayer> {
        self.relayers.binary_search_by(|r| r.id.as_str().cmp(id)).ok().map(|i| &self.relayers[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Relayer> {
        self.relayers.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.relayers.is_empty()
    }

    /// The selector's choices: every relayer neither paused nor disabled.
    pub fn candidates(&self) -> Vec<Candidate> {
        self.relayers.iter().filter(|r| !r.paused && r.stats().is_offered()).map(Relayer::candidate).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // anvil's first public dev key.
    const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

    fn config(key: KeySource) -> RelayerConfig {
        RelayerConfig { id: "r1".into(), name: None, key, weight: 1, labels: BTreeMap::new(), paused: false }
    }

    #[test]
    fn loads_a_raw_key_from_the_environment_and_a_keystore() {
        let env = |var: &str| match var {
            "KEY" => Some(DEV_KEY.to_string()),
            "PASS" => Some("correct horse".to_string()),
            _ => None,
        };
        let raw = Relayer::load(&config(KeySource { env: Some("KEY".into()), ..Default::default() }), env).unwrap();
        assert_eq!(raw.address, "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse::<Address>().unwrap());

        let dir = tempfile::tempdir().unwrap();
        let secret = hex::decode(&DEV_KEY[2..]).unwrap();
        let (_, file) =
            PrivateKeySigner::encrypt_keystore(dir.path(), &mut rand::thread_rng(), &secret, "correct horse", None)
                .unwrap();
        let keystore = KeySource {
            keystore: Some(dir.path().join(file)),
            password_env: Some("PASS".into()),
            ..Default::default()
        };
        assert_eq!(Relayer::load(&config(keystore.clone()), env).unwrap().address, raw.address);
        let password_file = dir.path().join("password");
        std::fs::write(&password_file, "correct horse\n").unwrap();
        let from_file =
            KeySource { password_env: None, password_file: Some(password_file.clone()), ..keystore.clone() };
        assert_eq!(Relayer::load(&config(from_file), env).unwrap().address, raw.address);

        let wrong = |var: &str| (var == "PASS").then(|| "wrong".to_string());
        let err = Relayer::load(&config(keystore), wrong).unwrap_err();
        assert!(err.to_string().starts_with("relayer `r1`: cannot load its key: keystore"), "{err}");
        let err =
            Relayer::load(&config(KeySource { env: Some("NOPE".into()), ..Default::default() }), env).unwrap_err();
        assert!(err.to_string().contains("NOPE is not set"), "{err}");
    }

    #[test]
    fn signing_is_deterministic_and_recovers_to_the_relayer() {
        let relayer = Relayer::new(&config(KeySource::default()), DEV_KEY.parse().unwrap());
        let request = TxRequest { to: Some(Address::repeat_byte(7)), value: U256::from(5), ..Default::default() };
        let fields = SendFields {
            chain_id: 31337,
            nonce: 3,
            gas_limit: 21_000,
            max_fee: U256::from(10),
            priority_fee: U256::from(1),
        };
        let once = relayer.sign_transaction(&request, fields).unwrap();
        assert_eq!(once, relayer.sign_transaction(&request, fields).unwrap());
        let other = relayer.sign_transaction(&request, SendFields { nonce: 4, ..fields }).unwrap();
        assert_ne!(once.hash, other.hash);

        let signature = relayer.sign_message(b"hello").unwrap();
        assert_eq!(signature.recover_address_from_msg(b"hello").unwrap(), relayer.address);
    }
}
