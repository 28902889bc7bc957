//! Who is calling and what they may do: the master key from the
//! configuration, and API keys an admin creates with scopes and, optionally,
//! the relayers they may use.
//!
//! A key reads `sy_<id>_<secret>`. Only the secret's SHA-256 is stored, so
//! the key is shown once, at creation. The secret is 256 random bits, which
//! is why a fast digest is enough (a password would need a slow one).

mod limits;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

pub use limits::{MemoryLimiter, Rate, RateLimiter, RedisLimiter};

use crate::store::{ApiKey, KeyStore, Scope, StoreError, now_ms};

/// The id of the master key, as policy plugins see it.
pub const MASTER_KEY_ID: &str = "master";
const KEY_PREFIX: &str = "sy_";

/// How long a replica trusts its copy of a key: a key revoked on another
/// replica stops working here within this time (on the replica that revoked
/// it, at once).
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);
/// Keys remembered at most; the cache starts over beyond (so a flood of
/// invented keys cannot grow it).
const KEY_CACHE_LIMIT: usize = 10_000;

/// The caller of a request, as the API key's check found it.
#[derive(Clone, Debug)]
pub struct Caller {
    pub key_id: Arc<str>,
    scopes: Arc<[Scope]>,
    relayers: Option<Arc<[String]>>,
    /// The key's own rate limit, if it has one.
    pub rate_limit: Option<Rate>,
}

impl Caller {
    pub fn master() -> Self {
        Caller { key_id: MASTER_KEY_ID.into(), scopes: [Scope::Admin].into(), relayers: None, rate_limit: None }
    }

    fn of(key: &ApiKey) -> Self {
        Caller {
            key_id: key.id.as_str().into(),
            scopes: key.scopes.as_slice().into(),
            relayers: key.relayers.as_deref().map(Into::into),
            rate_limit: key.rate_limit,
        }
    }

    pub fn may(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|&s| s == scope || s == Scope::Admin)
    }

    pub fn may_use(&self, relayer_id: &str) -> bool {
        self.relayers.as_ref().is_none_or(|allowed| allowed.iter().any(|r| r == relayer_id))
    }

    /// The relayers it is limited to, if any.
    pub fn relayers(&self) -> Option<&[String]> {
        self.relayers.as_deref()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid API key")]
    Invalid,
    #[error("this API key was revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new key: its record, and the key itself, to be shown once.
#[derive(Debug)]
pub struct IssuedKey {
    pub key: ApiKey,
    pub secret: String,
}

/// API keys with a short-lived cache in front of the store, so checking a
/// key costs no database round trip on most requests.
#[derive(Debug)]
pub struct Keys {
    store: Arc<dyn KeyStore>,
    cache: Mutex<HashMap<String, Cached>>,
}

#[derive(Clone, Debug)]
struct Cached {
    /// `None`: no such key.
    key: Option<Arc<(ApiKey, String)>>,
    fetched: Instant,
}

impl Keys {
    pub fn new(store: Arc<dyn KeyStore>) -> Self {
        Keys { store, cache: Mutex::new(HashMap::new()) }
    }

    pub async fn issue(
        &self,
        name: &str,
        scopes: Vec<Scope>,
        relayers: Option<Vec<String>>,
        rate_limit: Option<Rate>,
    ) -> Result<IssuedKey, StoreError> {
        let key = ApiKey {
            id: random_hex(8),
            name: name.to_string(),
            scopes,
            relayers,
            rate_limit,
            created_at: now_ms(),
            revoked_at: None,
        };
        let secret = random_hex(32);
        self.store.insert_api_key(&key, &digest(&secret)).await?;
        let secret = format!("{KEY_PREFIX}{}_{secret}", key.id);
        Ok(IssuedKey { key, secret })
    }

    pub async fn list(&self) -> Result<Vec<ApiKey>, StoreError> {
        self.store.api_keys().await
    }

    pub async fn revoke(&self, id: &str) -> Result<Option<ApiKey>, StoreError> {
        let revoked = self.store.revoke_api_key(id, now_ms()).await?;
        self.forget(id);
        Ok(revoked)
    }

    /// The caller a presented key (without the master key) stands for.
    pub async fn authenticate(&self, presented: &str) -> Result<Caller, AuthError> {
        let (id, secret) =
            presented.strip_prefix(KEY_PREFIX).and_then(|rest| rest.split_once('_')).ok_or(AuthError::Invalid)?;
        let entry = self.lookup(id).await?.ok_or(AuthError::Invalid)?;
        let (key, stored_digest) = &*entry;
        if !constant_time_eq(digest(secret).as_bytes(), stored_digest.as_bytes()) {
            return Err(AuthError::Invalid);
        }
        if key.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        Ok(Caller::of(key))
    }

    /// The relayers key `id` may use; `None` for every relayer (also for
    /// the master key and the host's own ids, which are not stored keys).
    pub async fn allowed_relayers(&self, id: &str) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self.lookup(id).await?.and_then(|entry| entry.0.relayers.clone()))
    }

    async fn lookup(&self, id: &str) -> Result<Option<Arc<(ApiKey, String)>>, StoreError> {
        if let Some(cached) = self.cache().get(id).filter(|c| c.fetched.elapsed() < KEY_CACHE_TTL) {
            return Ok(cached.key.clone());
        }
        let key = self.store.api_key(id).await?.map(Arc::new);
        let mut cache = self.cache();
        if cache.len() >= KEY_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(id.to_string(), Cached { key: key.clone(), fetched: Instant::now() });
        Ok(key)
    }

    fn forget(&self, id: &str) {
        self.cache().remove(id);
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        // The map holds no invariant a panic could break.
        self.cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `bytes` random bytes from the OS, as hex: ids and secrets.
pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    hex::encode(buffer)
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Comparison whose time does not depend on where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(scopes: &[Scope], relayers: Option<&[&str]>) -> ApiKey {
        ApiKey {
            id: "k".into(),
            name: "n".into(),
            scopes: scopes.to_vec(),
            relayers: relayers.map(|r| r.iter().map(|s| s.to_string()).collect()),
            rate_limit: None,
            created_at: 0,
            revoked_at: None,
        }
    }

    #[test]
    fn admin_implies_every_scope_and_others_only_their_own() {
        let admin = Caller::of(&key(&[Scope::Admin], None));
        assert!(Scope::ALL.iter().all(|&s| admin.may(s)));
        let reader = Caller::of(&key(&[Scope::Read, Scope::Submit], None));
        assert!(reader.may(Scope::Read) && reader.may(Scope::Submit));
        assert!(!reader.may(Scope::Relayers) && !reader.may(Scope::Plugins) && !reader.may(Scope::Admin));
    }

    #[test]
    fn a_key_limited_to_relayers_may_use_only_those() {
        let limited = Caller::of(&key(&[Scope::Submit], Some(&["relayer-1"])));
        assert!(limited.may_use("relayer-1") && !limited.may_use("relayer-2"));
        assert!(Caller::master().may_use("relayer-2"));
    }
}
