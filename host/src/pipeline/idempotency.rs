//! `Idempotency-Key` on submissions: a retry with the same key and the same
//! request gets the original transaction back, without running the policy
//! again; the same key with another request is refused. The key is stored
//! with the transaction in one database transaction, so it holds across
//! restarts and replicas, and two racing retries store one transaction.

use sha2::{Digest as _, Sha256};

use super::{Relay, SubmitError};
use crate::plugins::TxRequest;
use crate::store::{Idempotency, NewTransaction, StoreError, Transaction};

/// What identifies a request: its fields as parsed, each length-prefixed,
/// so equal requests match however their JSON was spelled.
#[derive(Default)]
pub(super) struct Fingerprint(Sha256);

impl Fingerprint {
    pub(super) fn field(mut self, bytes: impl AsRef<[u8]>) -> Self {
        let bytes = bytes.as_ref();
        self.0.update((bytes.len() as u64).to_be_bytes());
        self.0.update(bytes);
        self
    }

    /// The fields of a request a client sets (not its generated id).
    pub(super) fn request(self, request: &TxRequest) -> Self {
        let mut print = self
            .field(request.to.map(|a| a.to_string()).unwrap_or_default())
            .field(request.value.to_string())
            .field(&request.data)
            .field(request.gas_limit.map(|g| g.to_string()).unwrap_or_default())
            .field(request.speed.as_str())
            .field(request.hints.len().to_string());
        for (key, value) in &request.hints {
            print = print.field(key).field(value);
        }
        print
    }

    pub(super) fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

impl Relay {
    /// The transaction an earlier use of the key stored, if the request is
    /// the same; a different request is refused.
    pub(super) async fn replay(
        &self,
        api_key_id: &str,
        idempotency: Option<&Idempotency>,
    ) -> Result<Option<Transaction>, SubmitError> {
        let Some(idempotency) = idempotency else { return Ok(None) };
        let Some(origin) = self.store.idempotent_origin(api_key_id, &idempotency.key).await? else {
            return Ok(None);
        };
        if origin.fingerprint != idempotency.fingerprint {
            return Err(SubmitError::IdempotencyMismatch(idempotency.key.clone()));
        }
        Ok(Some(self.stored(&origin.transaction_id).await?))
    }

    /// Stores an accepted request; when a racing retry stored its key
    /// first, answers with that one's transaction.
    pub(super) async fn persist(&self, new: NewTransaction) -> Result<Transaction, SubmitError> {
        let (api_key_id, idempotency) = (new.request.api_key_id.clone(), new.idempotency.clone());
        match self.commits.insert(new).await {
            Ok(stored) => Ok(stored.into_pending()),
            Err(StoreError::IdempotencyKeyTaken(_)) => {
                let replayed = self.replay(&api_key_id, idempotency.as_ref()).await?;
                replayed.ok_or_else(|| SubmitError::Store(StoreError::Database("an idempotency key vanished".into())))
            }
            Err(error) => Err(error.into()),
        }
    }
}
