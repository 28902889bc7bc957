//! The relayer pool: each relayer is an address with its own key, nonce lane
//! and live stats. The stats become the selector plugin's candidates.

pub mod cache;
pub mod health;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

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
    /// Given a nonce and not yet mined.
    pub pending: u32,
    /// Slots taken by workers that have not yet given a nonce.
    pub reserved: u32,
    /// Nonces this replica has given since start: what a recount of
    /// `pending` from the store may not have seen yet.
    pub assigned: u64,
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

    /// What counts toward `network.max_in_flight`.
    pub fn in_flight(&self) -> u32 {
        self.pending.saturating_add(self.reserved)
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
    /// `network.max_in_flight`: none until the pool is given one.
    max_in_flight: u32,
    /// Woken when a relayer that was full has room, or its health changes:
    /// shared by the pool.
    room: Arc<Notify>,
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
            max_in_flight: u32::MAX,
            room: Arc::default(),
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
        let mut stats = self.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (full, state) = (stats.in_flight() >= self.max_in_flight, stats.health.state);
        update(&mut stats);
        // Only these can end a wait: waiters wait while all they may use is full.
        if (full && stats.in_flight() < self.max_in_flight) || stats.health.state != state {
            self.room.notify_waiters();
        }
    }

    /// Not paused, offered, and under `network.max_in_flight`.
    pub fn has_room(&self) -> bool {
        !self.paused && self.read(|stats| stats.is_offered() && stats.in_flight() < self.max_in_flight)
    }

    fn read<T>(&self, read: impl FnOnce(&RelayerStats) -> T) -> T {
        read(&self.stats.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Takes one of the relayer's in-flight slots, if one is free. The slot
    /// goes back when dropped, unless [`Slot::keep`] says a transaction now
    /// holds it (the watcher frees it when that is mined).
    pub fn reserve(&self) -> Option<Slot<'_>> {
        let mut taken = false;
        self.update_stats(|stats| {
            taken = stats.in_flight() < self.max_in_flight;
            stats.reserved += u32::from(taken);
        });
        // Lazily: a Slot made and dropped would give back a slot never taken.
        taken.then(|| Slot { relayer: self, kept: false })
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
            pending_count: stats.in_flight(),
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

/// One in-flight slot of a relayer, counted in its `pending`.
#[derive(Debug)]
pub struct Slot<'a> {
    relayer: &'a Relayer,
    kept: bool,
}

impl Slot<'_> {
    /// A transaction was given a nonce on this slot.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let kept = self.kept;
        self.relayer.update_stats(|stats| {
            stats.reserved = stats.reserved.saturating_sub(1);
            if kept {
                stats.pending += 1;
                stats.assigned += 1;
            }
        });
    }
}

/// The relayers, in id order, with the cache of their chain-side health.
#[derive(Debug)]
pub struct RelayerPool {
    relayers: Vec<Relayer>,
    cache: Arc<dyn cache::HealthCache>,
    room: Arc<Notify>,
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
        let room = Arc::new(Notify::new());
        for relayer in &mut relayers {
            relayer.room = room.clone();
        }
        let ttl = cache::CacheSettings::default().ttl;
        RelayerPool { relayers, cache: Arc::new(cache::MemoryCache::new(ttl)), room }
    }

    /// The pool with at most `limit` transactions in flight per relayer.
    pub fn with_max_in_flight(mut self, limit: u32) -> Self {
        for relayer in &mut self.relayers {
            relayer.max_in_flight = limit;
        }
        self
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

    /// Every relayer that could send is full. False when none could: that
    /// is not for waiting out here.
    pub fn is_full(&self) -> bool {
        let usable = self.relayers.iter().filter(|r| !r.paused && r.read(RelayerStats::is_offered));
        usable.clone().next().is_some() && !usable.into_iter().any(Relayer::has_room)
    }

    /// Waits until `ready` holds, checking again whenever a relayer's
    /// pending count drops or its health changes, for at most `within`.
    /// Returns whether `ready` held.
    pub async fn wait_until(&self, within: Duration, ready: impl Fn() -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a wake-up between the two
            // is not missed.
            notified.as_mut().enable();
            if ready() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return ready();
            }
        }
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

    fn relayer(id: &str, max_in_flight: u32) -> Relayer {
        let config = RelayerConfig { id: id.into(), ..config(KeySource::default()) };
        Relayer { max_in_flight, ..Relayer::new(&config, DEV_KEY.parse().unwrap()) }
    }

    #[test]
    fn a_slot_counts_in_flight_until_given_back_or_kept() {
        let relayer = relayer("r1", 2);
        let (first, second) = (relayer.reserve().unwrap(), relayer.reserve().unwrap());
        assert!(relayer.reserve().is_none(), "full at the limit");
        assert_eq!(relayer.candidate().pending_count, 2, "the selector sees slots being taken");
        drop(first);
        assert_eq!((relayer.stats().reserved, relayer.stats().pending), (1, 0), "no nonce given: the slot is back");
        second.keep();
        let stats = relayer.stats();
        assert_eq!((stats.reserved, stats.pending, stats.assigned), (0, 1, 1), "kept until the watcher frees it");
        assert!(relayer.reserve().is_some());
    }

    /// Wakes by setting a flag, so a test can see a future was woken
    /// without waiting for anything.
    struct Flag(std::sync::atomic::AtomicBool);

    impl std::task::Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn waiters_for_room_wake_when_a_slot_frees_or_a_relayer_comes_back() {
        use std::task::{Context, Poll, Waker};
        let pool = RelayerPool::new(vec![relayer("a", 0), relayer("b", 0)]).with_max_in_flight(1);
        assert!(!pool.is_full(), "none is offered before its first check: nothing to wait for");
        for relayer in pool.iter() {
            relayer.update_stats(|s| s.health.state = health::HealthState::Healthy);
            relayer.reserve().unwrap().keep();
        }
        assert!(pool.is_full());
        let flag = Arc::new(Flag(Default::default()));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);

        // A deadline an hour away: only a wake-up ends these waits.
        let mut wait = std::pin::pin!(pool.wait_until(Duration::from_secs(3600), || !pool.is_full()));
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        pool.get("a").unwrap().note_send(5, true);
        assert!(!flag.0.load(std::sync::atomic::Ordering::SeqCst), "nothing freed: no wake-up");
        pool.get("a").unwrap().update_stats(|s| s.pending -= 1);
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst), "a freed slot wakes the waiter");
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(true));

        // b is disabled and a full again; b coming back is room.
        let b = pool.get("b").unwrap();
        b.update_stats(|s| (s.pending, s.health.state) = (0, health::HealthState::Disabled));
        pool.get("a").unwrap().reserve().unwrap().keep();
        assert!(pool.is_full());
        flag.0.store(false, std::sync::atomic::Ordering::SeqCst);
        let mut wait = std::pin::pin!(pool.wait_until(Duration::from_secs(3600), || !pool.is_full()));
        assert!(wait.as_mut().poll(&mut cx).is_pending());
        b.update_stats(|s| s.health.state = health::HealthState::Healthy);
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst), "an enabled relayer wakes the waiter");
        assert_eq!(wait.as_mut().poll(&mut cx), Poll::Ready(true));

        b.reserve().unwrap().keep();
        assert!(!pool.wait_until(Duration::ZERO, || !pool.is_full()).await, "still full at the deadline");
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
