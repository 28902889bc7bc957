//! Where transactions, their decision trail, send attempts, nonce lanes and
//! the queue's outbox live. One trait, [`Store`], implemented by
//! [`sql::SqlStore`] on SQLite (the embedded default), PostgreSQL and
//! MySQL/MariaDB; every backend passes the same suite
//! (`host/tests/support/store_suite.rs`).

pub mod retention;
pub mod sql;

use std::fmt;
use std::str::FromStr;

use alloy_primitives::{Address, U256};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::plugins::TxRequest;

#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(String),
    /// Lost a deadlock or serialization race with another writer, again
    /// after the store's own retries.
    #[error("database contention: {0}")]
    Contended(String),
    #[error("migrating the database failed: {0}")]
    Migration(String),
    #[error("transaction {0} not found")]
    NotFound(String),
    #[error("transaction {0} already exists")]
    Duplicate(String),
    /// Another request with this idempotency key was stored first.
    #[error("idempotency key `{0}` is already used")]
    IdempotencyKeyTaken(String),
    /// Another worker recorded this attempt first: it owns the send.
    #[error("attempt {attempt} of transaction {id} is already recorded")]
    AttemptTaken { id: String, attempt: u32 },
    /// The transaction has moved on (canceled, or given a nonce) and can no
    /// longer take this change.
    #[error("transaction {id} is {status}")]
    NotPending { id: String, status: TxStatus },
    /// A row the store cannot read back: written by another version, or
    /// edited by hand.
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// The lifecycle, with OpenZeppelin Relayer's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// Accepted and queued; no nonce yet.
    Pending,
    /// Signed with a nonce; not yet accepted by the node.
    Sent,
    /// Accepted by the node, in its mempool.
    Submitted,
    /// In a block, not yet deep enough.
    Mined,
    Confirmed,
    Failed,
    Expired,
    Canceled,
}

impl TxStatus {
    pub const ALL: [TxStatus; 8] = [
        TxStatus::Pending,
        TxStatus::Sent,
        TxStatus::Submitted,
        TxStatus::Mined,
        TxStatus::Confirmed,
        TxStatus::Failed,
        TxStatus::Expired,
        TxStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TxStatus::Pending => "pending",
            TxStatus::Sent => "sent",
            TxStatus::Submitted => "submitted",
            TxStatus::Mined => "mined",
            TxStatus::Confirmed => "confirmed",
            TxStatus::Failed => "failed",
            TxStatus::Expired => "expired",
            TxStatus::Canceled => "canceled",
        }
    }

    /// Nothing more will happen to it.
    pub fn is_final(self) -> bool {
        matches!(self, TxStatus::Confirmed | TxStatus::Failed | TxStatus::Expired | TxStatus::Canceled)
    }
}

impl fmt::Display for TxStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TxStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        TxStatus::ALL.into_iter().find(|t| t.as_str() == s).ok_or_else(|| format!("unknown status `{s}`"))
    }
}

/// One decision of the trail: which plugin build (or built-in default)
/// decided what.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionRecord {
    /// `policy`, `selector` or `fee`.
    pub kind: String,
    /// The plugin's name, or `None` when the built-in default decided.
    pub plugin: Option<String>,
    /// sha256 of the plugin's component.
    pub version_hash: Option<String>,
    /// What was decided, in words: `allow`, `chosen relayer-1`, `max_fee=… priority_fee=…`.
    pub outcome: String,
    /// Why the built-in default decided instead of the plugin.
    pub fallback_reason: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub at: i64,
}

/// Why an attempt was sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// The transaction itself (first send, fee bump or replacement).
    #[default]
    Send,
    /// A no-op at its nonce, because the client canceled it.
    Cancel,
    /// A no-op at its nonce, because `valid_until` passed.
    Expire,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Send => "send",
            Purpose::Cancel => "cancel",
            Purpose::Expire => "expire",
        }
    }

    /// The status once this attempt is mined deep enough.
    pub fn final_status(self) -> TxStatus {
        match self {
            Purpose::Send => TxStatus::Confirmed,
            Purpose::Cancel => TxStatus::Canceled,
            Purpose::Expire => TxStatus::Expired,
        }
    }
}

impl FromStr for Purpose {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        [Purpose::Send, Purpose::Cancel, Purpose::Expire]
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown attempt purpose `{s}`"))
    }
}

/// The block a transaction was mined in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MinedIn {
    pub number: u64,
    /// Its hash when it was seen: another hash at that height later means
    /// the block was reorganized away.
    pub hash: String,
}

/// The watcher's progress on one chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub block: MinedIn,
}

/// Who holds a nonce of a relayer's lane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub nonce: u64,
    pub id: String,
    pub status: TxStatus,
    /// When its latest attempt was signed, if it has one.
    pub last_sent_at: Option<i64>,
    pub updated_at: i64,
}

/// A relayer's nonce lane from some nonce on: the next nonce it will hand
/// out and the transactions holding the nonces below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lane {
    pub next: u64,
    /// Ascending by nonce.
    pub holders: Vec<Holder>,
}

/// A send of the transaction: the first, or a replacement at the same nonce
/// (which may carry other content: see [`Store::replace_sent`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    #[serde(default)]
    pub purpose: Purpose,
    pub hash: String,
    pub nonce: u64,
    pub max_fee: U256,
    pub priority_fee: U256,
    pub gas_limit: u64,
    pub sent_at: i64,
    /// What it sent.
    pub to: Option<Address>,
    pub value: U256,
    pub data: Vec<u8>,
}

/// What is persisted when a request is accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTransaction {
    /// The request as plugins see it; `request.id` is the transaction's id.
    pub request: TxRequest,
    /// Set when the client chose the relayer; `None` lets the selector choose.
    pub relayer_id: Option<String>,
    pub valid_until: Option<i64>,
    /// The policy decision made at submission.
    pub decisions: Vec<DecisionRecord>,
    pub created_at: i64,
    /// The client's `Idempotency-Key`, kept with the transaction in one
    /// database transaction.
    pub idempotency: Option<Idempotency>,
}

impl NewTransaction {
    /// The transaction as [`Store::insert`] keeps it: pending, nothing sent.
    /// What a submission answers, without reading it back.
    pub fn into_pending(self) -> Transaction {
        Transaction {
            request: self.request,
            relayer_id: self.relayer_id,
            status: TxStatus::Pending,
            status_reason: None,
            valid_until: self.valid_until,
            nonce: None,
            hash: None,
            max_fee: None,
            priority_fee: None,
            decisions: self.decisions,
            attempts: Vec::new(),
            created_at: self.created_at,
            updated_at: self.created_at,
            sent_at: None,
            confirmed_at: None,
            mined_in: None,
        }
    }
}

/// An `Idempotency-Key` (per API key, the request's `api_key_id`) and what
/// identifies the request it came with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    /// SHA-256 (hex) of the request as parsed.
    pub fingerprint: String,
}

/// What an idempotency key was first used for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotentOrigin {
    pub fingerprint: String,
    pub transaction_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    /// The request as plugins see it; its gas limit is the estimate once the
    /// transaction has been sent.
    pub request: TxRequest,
    pub relayer_id: Option<String>,
    pub status: TxStatus,
    pub status_reason: Option<String>,
    pub valid_until: Option<i64>,
    pub nonce: Option<u64>,
    pub hash: Option<String>,
    pub max_fee: Option<U256>,
    pub priority_fee: Option<U256>,
    pub decisions: Vec<DecisionRecord>,
    pub attempts: Vec<Attempt>,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
    pub confirmed_at: Option<i64>,
    /// Set while mined (or final after being mined).
    pub mined_in: Option<MinedIn>,
}

impl Transaction {
    pub fn id(&self) -> &str {
        &self.request.id
    }
}

/// A page of a relayer's transactions, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<Transaction>,
    pub total: u64,
}

/// The nonce a transaction was given, and whether this call gave it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NonceAssignment {
    pub nonce: u64,
    /// `false` when the transaction already had its nonce (a redelivery).
    pub fresh: bool,
    /// The transaction as stored after the call, with its attempts and
    /// without its trail (as [`Store::working`] reads it).
    pub transaction: Transaction,
}

/// Counts per status for one relayer, for its status endpoint and the
/// selector's candidates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelayerCounts {
    /// Given a nonce and not yet mined.
    pub pending: u64,
    pub last_confirmed_at: Option<i64>,
}

/// How many transactions the store holds in each status, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Census {
    pub by_status: Vec<(TxStatus, u64)>,
    /// When the oldest transaction not yet final was accepted (ms).
    pub oldest_unfinished_at: Option<i64>,
}

/// What an API key may do. `Admin` may do everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Submit, replace and cancel transactions.
    Submit,
    /// Read transactions, relayers and the queue.
    Read,
    /// Sign with relayer keys and cancel a relayer's pending transactions.
    Relayers,
    /// Read the loaded plugins.
    Plugins,
    /// Manage API keys and webhooks; implies every other scope.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [Scope::Submit, Scope::Read, Scope::Relayers, Scope::Plugins, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Submit => "submit",
            Scope::Read => "read",
            Scope::Relayers => "relayers",
            Scope::Plugins => "plugins",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Scope::ALL.into_iter().find(|scope| scope.as_str() == s).ok_or_else(|| {
            let known = Scope::ALL.map(Scope::as_str).join(", ");
            format!("unknown scope `{s}` (known: {known})")
        })
    }
}

/// An API key as stored: its secret is kept only as a SHA-256 digest.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<Scope>,
    /// The relayers it may use; `None` for every relayer.
    pub relayers: Option<Vec<String>>,
    /// Its own rate limit; `None` for the configured one.
    pub rate_limit: Option<crate::access::Rate>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// API keys, created by an admin and revoked, never deleted: the id stays
/// on the transactions the key submitted.
#[async_trait]
pub trait KeyStore: Send + Sync + fmt::Debug + 'static {
    async fn insert_api_key(&self, key: &ApiKey, secret_sha256: &str) -> Result<(), StoreError>;

    /// The key with its secret's digest.
    async fn api_key(&self, id: &str) -> Result<Option<(ApiKey, String)>, StoreError>;

    /// Every key, revoked ones included, oldest first.
    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;

    /// Marks the key revoked (once: a second revocation keeps the first
    /// time); `None` for an unknown id.
    async fn revoke_api_key(&self, id: &str, at: i64) -> Result<Option<ApiKey>, StoreError>;
}

/// What happened, as the event stream and webhooks tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub enum EventKind {
    /// A transaction's status changed (or it was accepted: `pending`).
    #[serde(rename = "transaction.status")]
    TransactionStatus,
    /// A relayer stopped being offered to the selector.
    #[serde(rename = "relayer.disabled")]
    RelayerDisabled,
    #[serde(rename = "relayer.enabled")]
    RelayerEnabled,
    /// A relayer's balance fell below `network.min_balance`.
    #[serde(rename = "relayer.low_balance")]
    RelayerLowBalance,
    /// A plugin slot took a new build.
    #[serde(rename = "plugin.swapped")]
    PluginSwapped,
    /// A plugin file failed validation; the old build keeps serving.
    #[serde(rename = "plugin.rejected")]
    PluginRejected,
}

impl EventKind {
    pub const ALL: [EventKind; 6] = [
        EventKind::TransactionStatus,
        EventKind::RelayerDisabled,
        EventKind::RelayerEnabled,
        EventKind::RelayerLowBalance,
        EventKind::PluginSwapped,
        EventKind::PluginRejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::TransactionStatus => "transaction.status",
            EventKind::RelayerDisabled => "relayer.disabled",
            EventKind::RelayerEnabled => "relayer.enabled",
            EventKind::RelayerLowBalance => "relayer.low_balance",
            EventKind::PluginSwapped => "plugin.swapped",
            EventKind::PluginRejected => "plugin.rejected",
        }
    }
}

impl FromStr for EventKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        EventKind::ALL.into_iter().find(|kind| kind.as_str() == s).ok_or_else(|| {
            let known = EventKind::ALL.map(EventKind::as_str).join(", ");
            format!("unknown event type `{s}` (known: {known})")
        })
    }
}

/// One entry of the event log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Increasing; the stream's `id:`, so `Last-Event-ID` resumes after it.
    pub id: u64,
    pub kind: EventKind,
    pub transaction_id: Option<String>,
    pub relayer_id: Option<String>,
    /// For `transaction.status`: the status it changed to.
    pub status: Option<TxStatus>,
    /// The status reason, or what happened to the relayer or plugin.
    pub detail: Option<String>,
    pub created_at: i64,
}

/// An id missing from the log may be a database transaction still
/// committing (ids are drawn before commit): readers wait this long for it
/// before passing over it (a rolled-back one never comes).
pub const EVENT_GAP_GRACE_MS: i64 = 2_000;

/// The events a reader that has handled every id up to `after` can take
/// now: in order, stopping at a missing id unless the event after it is
/// older than the grace.
fn deliverable(events: Vec<Event>, after: u64, now: i64) -> Vec<Event> {
    let mut next = after + 1;
    let mut ready = Vec::with_capacity(events.len());
    for event in events {
        if event.id != next && now - event.created_at < EVENT_GAP_GRACE_MS {
            break;
        }
        next = event.id + 1;
        ready.push(event);
    }
    ready
}

/// The event log. Transaction status events are written by the [`Store`]
/// methods that change a status, in the same database transaction.
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug + 'static {
    /// An event no transaction change carries: a relayer's or a plugin's.
    async fn append_event(&self, kind: EventKind, relayer_id: Option<&str>, detail: &str) -> Result<(), StoreError>;

    /// Up to `limit` events after id `after`, oldest first.
    async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<Event>, StoreError>;

    /// The newest event's id; 0 when there is none.
    async fn last_event_id(&self) -> Result<u64, StoreError>;

    /// Up to `limit` events after `after` that a reader can take now,
    /// without passing over an id that may still commit.
    async fn events_ready(&self, after: u64, limit: u32) -> Result<Vec<Event>, StoreError> {
        Ok(deliverable(self.events_after(after, limit).await?, after, now_ms()))
    }
}

/// A webhook subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    pub secret: String,
    /// Empty for every type.
    pub kinds: Vec<EventKind>,
    /// The last event id handled.
    pub delivered_through: u64,
    /// Failed attempts at the next event.
    pub failures: u32,
    pub retry_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
}

/// A delivery given up on after the retry limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub webhook_id: String,
    pub event_id: u64,
    pub attempts: u32,
    pub last_error: String,
    pub created_at: i64,
}

/// Where a subscription stands after an attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Through this event id (delivered, or not of a wanted type).
    Through(u64),
    /// This attempt failed; try again at `retry_at`.
    Failed { failures: u32, retry_at: i64, error: String },
    /// The event is given up on: dead-lettered, and the subscription moves
    /// past it.
    GaveUp { event_id: u64, attempts: u32, error: String },
}

/// Webhook subscriptions, leased to one replica at a time for delivery.
#[async_trait]
pub trait WebhookStore: Send + Sync + fmt::Debug + 'static {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError>;

    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError>;

    /// `false` for an unknown id.
    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError>;

    /// Takes (or renews) the right to deliver `id` until `until`; `false`
    /// while another owner holds it.
    async fn lease_webhook(&self, id: &str, owner: &str, now: i64, until: i64) -> Result<bool, StoreError>;

    /// Records an attempt's outcome, if `owner` still holds the lease.
    async fn record_progress(&self, id: &str, owner: &str, progress: &Progress) -> Result<(), StoreError>;

    async fn dead_letters(&self, webhook_id: &str) -> Result<Vec<DeadLetter>, StoreError>;
}

#[async_trait]
pub trait Store: KeyStore + EventStore + WebhookStore + Send + Sync + fmt::Debug + 'static {
    /// Persists an accepted request together with its queue entry, in one
    /// database transaction (the outbox): both or neither.
    async fn insert(&self, tx: &NewTransaction) -> Result<(), StoreError> {
        self.insert_many(std::slice::from_ref(tx)).await
    }

    /// Persists accepted requests as [`Store::insert`] does, all in one
    /// database transaction: all or none. Which request failed is not told
    /// apart: insert them one by one for that.
    async fn insert_many(&self, txs: &[NewTransaction]) -> Result<(), StoreError>;

    async fn get(&self, id: &str) -> Result<Option<Transaction>, StoreError>;

    /// [`Store::get`] without the decision trail, which grows with every
    /// step: what a worker, a resend or a fee bump acts on.
    async fn working(&self, id: &str) -> Result<Option<Transaction>, StoreError>;

    /// What `api_key_id`'s idempotency key `key` was first used for.
    async fn idempotent_origin(&self, api_key_id: &str, key: &str) -> Result<Option<IdempotentOrigin>, StoreError>;

    /// A relayer's transactions, newest first; `page` counts from 1.
    async fn list(&self, relayer_id: &str, page: u32, per_page: u32) -> Result<Page, StoreError>;

    async fn by_nonce(&self, relayer_id: &str, nonce: u64) -> Result<Option<Transaction>, StoreError>;

    /// Gives the transaction `relayer_id` and that relayer's next nonce, and
    /// appends `decision` to its trail, in one database transaction. A
    /// transaction that already has a nonce keeps it (and its relayer): the
    /// call is idempotent under redelivery. One canceled meanwhile is
    /// [`StoreError::NotPending`].
    async fn assign_nonce(
        &self,
        id: &str,
        relayer_id: &str,
        decision: &DecisionRecord,
    ) -> Result<NonceAssignment, StoreError>;

    /// Cancels a transaction that has no nonce yet, with `decision` in its
    /// trail, and drops its queue entry if no worker holds it. `false` when
    /// it already has a nonce or is finished.
    async fn cancel_pending(&self, id: &str, reason: &str, decision: &DecisionRecord) -> Result<bool, StoreError>;

    /// Replaces the request (`to`, value, data, gas limit, speed) and
    /// `valid_until` of a transaction that has no nonce yet, with `decision`
    /// (the policy's verdict on the new request) in its trail. `false` when
    /// it already has a nonce or is finished.
    async fn replace_pending(
        &self,
        request: &TxRequest,
        valid_until: Option<i64>,
        decision: &DecisionRecord,
    ) -> Result<bool, StoreError>;

    /// Records a replacement of a sent or submitted transaction at its
    /// nonce: `attempt` carries the new content and fees, which become the
    /// transaction's, with `decisions` (the policy's and the fee plugin's) in
    /// its trail. `false` when the transaction is no longer sent or submitted
    /// at that nonce.
    async fn replace_sent(
        &self,
        request: &TxRequest,
        attempt: &Attempt,
        decisions: &[DecisionRecord],
    ) -> Result<bool, StoreError>;

    /// Moves the transaction to `status` because `attempt` was included in
    /// `block` (or, with `None`, back to submitted after a reorg): the
    /// transaction shows that attempt's hash and fees and, for a
    /// [`Purpose::Send`], its content, whichever attempt was sent last;
    /// `decision` joins its trail in the same database transaction.
    /// [`StoreError::NotFound`] unless the attempt is still stored as it is
    /// given (a released nonce takes its attempts with it).
    async fn settle(
        &self,
        id: &str,
        status: TxStatus,
        reason: Option<&str>,
        attempt: &Attempt,
        block: Option<&MinedIn>,
        decision: &DecisionRecord,
    ) -> Result<(), StoreError>;

    /// Records a fee bump, cancel or expiry no-op of a sent or submitted
    /// transaction at its nonce, keeping its content: the transaction shows
    /// the new attempt's hash and fees and `reason`. `false` when it is no
    /// longer sent or submitted at that nonce.
    async fn bump(
        &self,
        id: &str,
        attempt: &Attempt,
        decisions: &[DecisionRecord],
        reason: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// Gives back the nonce of a transaction the chain says was used by
    /// someone else ("nonce too low" and none of its attempts mined): it
    /// drops its attempts, returns to pending and is queued again, to be
    /// given a new nonce. `false` when it holds no nonce or is past
    /// submitted.
    async fn release_nonce(&self, id: &str, decision: &DecisionRecord) -> Result<bool, StoreError>;

    /// Inserts `filler`, a no-op at `attempt.nonce` of its relayer, already
    /// priced, with its queue entry, to fill a gap in the lane. A finished
    /// transaction whose nonce was never used gives it up; `false` (and
    /// nothing changes) when an unfinished one holds it.
    async fn fill_gap(
        &self,
        filler: &NewTransaction,
        attempt: &Attempt,
        decisions: &[DecisionRecord],
    ) -> Result<bool, StoreError>;

    /// Queues again a transaction that holds a nonce but has no attempt
    /// (its queue entry was lost: dead-lettered by a broker, or abandoned),
    /// with `decision` in its trail. `false` when it is not in that state.
    async fn requeue(&self, id: &str, decision: &DecisionRecord) -> Result<bool, StoreError>;

    /// The relayer's lane from nonce `from` on (at most `limit` holders).
    async fn lane(&self, relayer_id: &str, from: u64, limit: u32) -> Result<Lane, StoreError>;

    /// The watcher's last processed block on `chain_id`.
    async fn checkpoint(&self, chain_id: u64) -> Result<Option<Checkpoint>, StoreError>;

    async fn save_checkpoint(&self, chain_id: u64, checkpoint: &Checkpoint) -> Result<(), StoreError>;

    /// Sets the relayer's next nonce from the chain's pending nonce, or past
    /// the highest nonce already assigned to an unfinished transaction, so
    /// nothing assigned is handed out twice. Returns the lane's next nonce.
    async fn sync_lane(&self, relayer_id: &str, chain_pending_nonce: u64) -> Result<u64, StoreError>;

    /// Records a send (first or replacement) with its fee decision, and
    /// moves the transaction to `status`.
    async fn record_attempt(
        &self,
        id: &str,
        attempt: &Attempt,
        decision: &DecisionRecord,
        status: TxStatus,
    ) -> Result<(), StoreError>;

    /// Moves the transaction to `status`, with a reason shown to clients.
    async fn set_status(&self, id: &str, status: TxStatus, reason: Option<&str>) -> Result<(), StoreError>;

    /// Moves the transaction to `status` with `decision` (the step that
    /// moved it) in its trail, in one database transaction.
    async fn transition(
        &self,
        id: &str,
        status: TxStatus,
        reason: Option<&str>,
        decision: &DecisionRecord,
    ) -> Result<(), StoreError>;

    /// Moves a sent transaction to submitted (the node has it), with
    /// `decision` in its trail. `false`, and nothing changes, when it has
    /// already moved on: a send that finishes late must not undo what the
    /// watcher did meanwhile.
    async fn submitted(&self, id: &str, decision: &DecisionRecord) -> Result<bool, StoreError>;

    /// Appends a decision to the trail without changing anything else.
    async fn add_decision(&self, id: &str, decision: &DecisionRecord) -> Result<(), StoreError>;

    /// Transactions the watcher follows: sent, submitted or mined, with
    /// their attempts but not their decision trail (it reads none).
    async fn in_flight(&self, limit: u32) -> Result<Vec<Transaction>, StoreError>;

    /// Unfinished transactions of a relayer (for cancel-all-pending).
    async fn unfinished(&self, relayer_id: &str) -> Result<Vec<Transaction>, StoreError>;

    async fn relayer_counts(&self, relayer_id: &str) -> Result<RelayerCounts, StoreError>;

    /// Counts by status over every transaction (the status index serves it).
    async fn census(&self) -> Result<Census, StoreError>;

    /// Whether the database answers.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Deletes what retention no longer keeps; see [`PruneBefore`].
    async fn prune(&self, before: PruneBefore) -> Result<Pruned, StoreError>;
}

/// What retention deletes: rows created before these times (ms since the
/// epoch); `None` keeps them all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneBefore {
    /// Idempotency keys: a retry after this long stores a new transaction.
    pub idempotency_keys: Option<i64>,
    /// Events, except those a webhook subscription has yet to handle.
    pub events: Option<i64>,
}

/// How many rows a prune deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub idempotency_keys: u64,
    pub events: u64,
}

/// A new transaction's id: a UUID that starts with its creation time
/// (v7), so the indexes keyed by it grow at their right edge. With random
/// ids each stored row dirtied a page of its own in every such index, and
/// every commit wrote all of them to the WAL.
pub fn new_transaction_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64, created_at: i64) -> Event {
        Event {
            id,
            kind: EventKind::TransactionStatus,
            transaction_id: None,
            relayer_id: None,
            status: None,
            detail: None,
            created_at,
        }
    }

    #[test]
    fn a_missing_event_id_holds_readers_until_its_grace_has_passed() {
        let ids = |events: Vec<Event>| events.into_iter().map(|e| e.id).collect::<Vec<_>>();
        let now = 10_000;
        let fresh = vec![event(5, now), event(6, now), event(8, now), event(9, now)];
        assert_eq!(ids(deliverable(fresh, 4, now)), [5, 6], "7 may still commit");
        let old = vec![event(5, 1), event(6, 1), event(8, 1), event(9, now)];
        assert_eq!(ids(deliverable(old, 4, now)), [5, 6, 8, 9], "7 never came");
        assert_eq!(ids(deliverable(vec![event(7, now)], 4, now)), Vec::<u64>::new());
    }
}
