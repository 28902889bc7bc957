//! The SQL store, one implementation for three databases through sqlx's
//! `Any` driver: SQLite (the embedded default, in the data directory, WAL),
//! PostgreSQL and MySQL/MariaDB, chosen by the URL's scheme. Each has its
//! own migration folder under `migrations/`.
//!
//! The statements are written once, in the SQL the three share; the few
//! places they differ are [`Backend`]'s methods. MySQL sessions run at READ
//! COMMITTED, as PostgreSQL does by default, so locking reads behave alike.
//! Every write that must be atomic starts with a write statement: it takes
//! the row lock (SQLite: the write lock) before anything is read. On SQLite,
//! writes share one connection and reads have their own.

mod batch;
mod events;
mod group;
mod keys;
mod retention;
mod webhooks;

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use alloy_primitives::{Address, U256};
use async_trait::async_trait;
use sqlx::any::{AnyPoolOptions, AnyQueryResult, AnyRow};
use sqlx::migrate::{Migrate, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Connection, Executor, Row};

pub(crate) use self::batch::Batch;
use self::group::GroupWriter;
use super::{
    Attempt, Census, Checkpoint, DecisionRecord, EventKind, Holder, Idempotency, IdempotentOrigin, Lane, MinedIn,
    NewTransaction, NonceAssignment, Page, PruneBefore, Pruned, Purpose, RelayerCounts, Store, StoreError, Transaction,
    TxStatus, now_ms,
};
use crate::config::redact_url;
use crate::plugins::TxRequest;

/// The file inside the data directory.
pub const DATABASE_FILE: &str = "switchyard.db";

static SQLITE: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("../migrations/postgres");
static MYSQL: Migrator = sqlx::migrate!("../migrations/mysql");

/// How often a statement that lost a deadlock or serialization race is
/// tried again before the error is returned.
const CONTENTION_RETRIES: u32 = 5;

/// Bound values per statement: SQLite's lowest limit (999) fits them all.
const MAX_BINDS: usize = 999;
/// SQLite's read-only connections (each a thread of sqlx's).
const SQLITE_READERS: u32 = 3;
/// A server connection idle this long is pinged before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

type AnyQuery<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    /// The backend a database URL names: `sqlite:`, `postgres://`
    /// (`postgresql://`), `mysql://` (`mariadb://`).
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        let scheme = url.split_once(':').map(|(scheme, _)| scheme.to_ascii_lowercase()).unwrap_or_default();
        match scheme.as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            "mysql" | "mariadb" => Ok(Backend::MySql),
            _ => Err(StoreError::Unavailable(format!(
                "database URL `{}` names no supported database: use sqlite:, postgres:// or mysql://",
                redact_url(url)
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
            Backend::MySql => "MySQL",
        }
    }

    fn migrator(self) -> &'static Migrator {
        match self {
            Backend::Sqlite => &SQLITE,
            Backend::Postgres => &POSTGRES,
            Backend::MySql => &MYSQL,
        }
    }

    /// The statement with its `?` placeholders in the backend's own form.
    pub(crate) fn sql(self, text: &str) -> Cow<'_, str> {
        if self != Backend::Postgres {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 16);
        let mut n = 0;
        for c in text.chars() {
            if c == '?' {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            } else {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// Creates a relayer's nonce lane unless it exists.
    fn insert_lane(self) -> &'static str {
        match self {
            Backend::MySql => "INSERT IGNORE INTO nonce_lanes (relayer_id, next_nonce, updated_at) VALUES (?, 0, ?)",
            _ => {
                "INSERT INTO nonce_lanes (relayer_id, next_nonce, updated_at) VALUES (?, 0, ?)
                 ON CONFLICT DO NOTHING"
            }
        }
    }
}

/// How to connect to an external database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseOptions {
    pub max_connections: u32,
    /// How long a statement waits for a free connection (or for a database
    /// that is away) before failing as unavailable.
    pub acquire_timeout: Duration,
    /// Apply pending migrations at connect; otherwise a missing one is an
    /// error naming it.
    pub migrate: bool,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        DatabaseOptions { max_connections: 16, acquire_timeout: Duration::from_secs(5), migrate: true }
    }
}

#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    /// Reads outside a write: SQLite's own read-only connections, the same
    /// pool on a server.
    reads: AnyPool,
    backend: Backend,
    /// SQLite's batches, written in groups.
    group: Option<GroupWriter>,
}

/// What a pool's connections are for.
#[derive(Clone, Copy)]
enum Role {
    Writer,
    Reader,
}

impl SqlStore {
    /// Opens (creating if needed) `<data_dir>/switchyard.db` and applies any
    /// pending migration: the embedded default.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        Self::connect(&Self::embedded_url(data_dir)?, &DatabaseOptions::default()).await
    }

    /// The URL of the embedded default's database, creating its directory.
    pub fn embedded_url(data_dir: &Path) -> Result<String, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create data directory {}: {e}", data_dir.display()))
        })?;
        let options = SqliteConnectOptions::new().filename(data_dir.join(DATABASE_FILE)).create_if_missing(true);
        Ok(options.to_url_lossy().to_string())
    }

    /// Connects to the database `url` names (`sqlite::memory:` for a
    /// throwaway one), then migrates it or checks that it is migrated.
    pub async fn connect(url: &str, options: &DatabaseOptions) -> Result<Self, StoreError> {
        let store = Self::connect_only(url, options).await?;
        if options.migrate {
            store.migrate().await?;
        } else {
            store.check_migrated().await?;
        }
        Ok(store)
    }

    /// Connects without looking at the schema (`switchyard migrate`).
    pub async fn connect_only(url: &str, options: &DatabaseOptions) -> Result<Self, StoreError> {
        let backend = Backend::of_url(url)?;
        sqlx::any::install_default_drivers();
        let url = match backend {
            // sqlx knows MariaDB by MySQL's name.
            Backend::MySql if url.starts_with("mariadb:") => Cow::Owned(format!("mysql:{}", &url["mariadb:".len()..])),
            _ => Cow::Borrowed(url),
        };
        let in_memory = backend == Backend::Sqlite && url.contains(":memory:");
        let connect = |role: Role, max_connections: u32| {
            let setup = match (backend, role) {
                (Backend::Sqlite, Role::Writer) => {
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
                     PRAGMA busy_timeout = 10000;"
                }
                (Backend::Sqlite, Role::Reader) => "PRAGMA query_only = ON; PRAGMA busy_timeout = 10000;",
                (Backend::MySql, _) => "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                (Backend::Postgres, _) => "",
            };
            AnyPoolOptions::new()
                .max_connections(max_connections)
                // sqlx pings a connection on every checkout by default: a round
                // trip per statement run on the pool. SQLite's connection is in
                // this process and cannot drop; a server's is pinged only after
                // it sat idle, when a restart may have cut it (one in use that
                // breaks is closed when it comes back, by sqlx's own check).
                .test_before_acquire(false)
                .before_acquire(move |conn, meta| {
                    Box::pin(async move {
                        if backend != Backend::Sqlite && meta.idle_for >= IDLE_BEFORE_PING {
                            conn.ping().await?;
                        }
                        Ok(true)
                    })
                })
                .min_connections(u32::from(in_memory))
                .acquire_timeout(options.acquire_timeout)
                .idle_timeout(if in_memory { None } else { Some(Duration::from_secs(600)) })
                .max_lifetime(if in_memory { None } else { Some(Duration::from_secs(3600)) })
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        if !setup.is_empty() {
                            conn.execute(setup).await?;
                        }
                        Ok(())
                    })
                })
                .connect(&url)
        };
        let unreachable = |e: sqlx::Error| {
            StoreError::Unavailable(format!("cannot reach {} at {}: {e}", backend.name(), redact_url(&url)))
        };
        // An in-memory database exists per connection: keep exactly one.
        // A file has one writer at a time, and a second connection's write
        // waits in SQLite's busy handler, which sleeps in steps of up to
        // 100 ms: one connection queues the writes without sleeping. Reads
        // go to their own connections, which WAL lets run beside the writer,
        // so they never wait in its queue. The writer connects first: it
        // puts the file in WAL mode.
        let writers = if backend == Backend::Sqlite { 1 } else { options.max_connections.max(1) };
        let pool = connect(Role::Writer, writers).await.map_err(unreachable)?;
        let reads = match backend {
            Backend::Sqlite if !in_memory => connect(Role::Reader, SQLITE_READERS).await.map_err(unreachable)?,
            _ => pool.clone(),
        };
        let group = (backend == Backend::Sqlite).then(|| GroupWriter::start(pool.clone()));
        Ok(SqlStore { pool, reads, backend, group })
    }

    /// The migrations this build has that the database lacks, in order.
    pub async fn pending_migrations(&self) -> Result<Vec<String>, StoreError> {
        let applied = self.applied().await?;
        let migrator = self.backend.migrator();
        Ok(migrator
            .iter()
            .filter(|m| !applied.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect())
    }

    /// Applies every pending migration; returns those it applied.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let before = self.applied().await?;
        self.backend.migrator().run(&self.pool).await.map_err(|e| StoreError::Migration(e.to_string()))?;
        let after = self.applied().await?;
        let migrator = self.backend.migrator();
        let applied: Vec<String> = migrator
            .iter()
            .filter(|m| after.contains(&m.version) && !before.contains(&m.version))
            .map(|m| format!("{} {}", m.version, m.description))
            .collect();
        for migration in &applied {
            tracing::info!(backend = self.backend.name(), %migration, "applied migration");
        }
        Ok(applied)
    }

    /// Fails naming the first migration this build expects that the
    /// database lacks, or one it has that this build does not know.
    pub async fn check_migrated(&self) -> Result<(), StoreError> {
        let applied = self.applied().await?;
        let migrator = self.backend.migrator();
        if let Some(missing) = migrator.iter().find(|m| !applied.contains(&m.version)) {
            return Err(StoreError::Migration(format!(
                "the {} database lacks migration {} ({}): run `switchyard migrate`, or set `database.migrate = true`",
                self.backend.name(),
                missing.version,
                missing.description
            )));
        }
        if let Some(unknown) = applied.iter().find(|v| !migrator.version_exists(**v)) {
            return Err(StoreError::Migration(format!(
                "the {} database has migration {unknown}, which this build does not know: it was migrated by a \
                 newer Switchyard",
                self.backend.name()
            )));
        }
        Ok(())
    }

    /// Versions applied so far; none when the migrations table is missing.
    async fn applied(&self) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        match conn.list_applied_migrations().await {
            Ok(applied) => Ok(applied.into_iter().map(|m| m.version).collect()),
            Err(sqlx::migrate::MigrateError::Execute(e)) if unreachable(&e) => Err(db(e)),
            Err(_) => Ok(Vec::new()),
        }
    }

    /// The pool, shared with the embedded queue (same database).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The pool reads outside a write take: on SQLite, connections beside
    /// the writer.
    pub(crate) fn reads(&self) -> &AnyPool {
        &self.reads
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Transaction `id` with its attempts, and its trail if `trail`.
    async fn by_id(&self, id: &str, trail: bool) -> Result<Option<Transaction>, StoreError> {
        let sql = format!("SELECT {TX_COLUMNS} FROM transactions WHERE id = ?");
        let mut conn = self.reads.acquire().await.map_err(db)?;
        let row = sqlx::query(&self.backend.sql(&sql)).bind(id).fetch_optional(&mut *conn).await.map_err(db)?;
        let rows = row.into_iter().collect();
        let mut found = match trail {
            true => self.with_details(&mut conn, rows).await?,
            false => self.with_attempts(&mut conn, rows).await?,
        };
        Ok(found.pop())
    }

    /// Decodes transaction rows and fills in their decisions and attempts,
    /// each fetched in one query.
    async fn with_details(&self, conn: &mut AnyConnection, rows: Vec<AnyRow>) -> Result<Vec<Transaction>, StoreError> {
        let mut txs = self.with_attempts(conn, rows).await?;
        if txs.is_empty() {
            return Ok(txs);
        }
        let mut decisions: HashMap<String, Vec<DecisionRecord>> = HashMap::new();
        let sql = format!(
            "SELECT transaction_id, record FROM decisions WHERE transaction_id IN ({}) ORDER BY id",
            placeholders(txs.len())
        );
        let sql = self.backend.sql(&sql);
        let mut query = sqlx::query(&sql);
        for tx in &txs {
            query = query.bind(tx.id());
        }
        for row in query.fetch_all(&mut *conn).await.map_err(db)? {
            let record = from_json(&text(&row, "record")?, "record")?;
            decisions.entry(text(&row, "transaction_id")?).or_default().push(record);
        }
        for tx in &mut txs {
            tx.decisions = decisions.remove(tx.id()).unwrap_or_default();
        }
        Ok(txs)
    }

    /// Decodes transaction rows and fills in their attempts (one query),
    /// leaving the decision trail empty.
    async fn with_attempts(&self, conn: &mut AnyConnection, rows: Vec<AnyRow>) -> Result<Vec<Transaction>, StoreError> {
        let mut txs = rows.iter().map(tx_from_row).collect::<Result<Vec<_>, _>>()?;
        // An unfinished transaction without a nonce has none (releasing a
        // nonce deletes them): a worker's first read is one query.
        let attempted: Vec<&str> =
            txs.iter().filter(|tx| tx.nonce.is_some() || tx.status.is_final()).map(|tx| tx.id()).collect();
        if attempted.is_empty() {
            return Ok(txs);
        }
        let mut attempts: HashMap<String, Vec<Attempt>> = HashMap::new();
        let sql = format!(
            "SELECT transaction_id, {ATTEMPT_COLUMNS} FROM attempts WHERE transaction_id IN ({}) ORDER BY attempt",
            placeholders(attempted.len())
        );
        let sql = self.backend.sql(&sql);
        let mut query = sqlx::query(&sql);
        for id in attempted {
            query = query.bind(id);
        }
        for row in query.fetch_all(&mut *conn).await.map_err(db)? {
            attempts.entry(text(&row, "transaction_id")?).or_default().push(attempt_from_row(&row)?);
        }
        for tx in &mut txs {
            tx.attempts = attempts.remove(tx.id()).unwrap_or_default();
        }
        Ok(txs)
    }

    /// Inserts accepted requests with their decisions, status events and
    /// queue entries: a few multi-row statements, however many requests.
    async fn insert_in(&self, dbtx: &mut sqlx::Transaction<'_, Any>, txs: &[NewTransaction]) -> Result<(), StoreError> {
        let keyed: Vec<(&NewTransaction, &Idempotency)> =
            txs.iter().filter_map(|tx| Some((tx, tx.idempotency.as_ref()?))).collect();
        let head =
            "INSERT INTO idempotency_keys (api_key_id, idempotency_key, fingerprint, transaction_id, created_at)";
        let taken = |rows: &[(&NewTransaction, &Idempotency)]| {
            StoreError::IdempotencyKeyTaken(names(rows.iter().map(|(_, i)| i.key.as_str())))
        };
        self.insert_rows(dbtx, head, 5, &keyed, Some(taken), |query, (tx, idempotency)| {
            Ok(query
                .bind(&tx.request.api_key_id)
                .bind(&idempotency.key)
                .bind(&idempotency.fingerprint)
                .bind(&tx.request.id)
                .bind(tx.created_at))
        })
        .await?;
        let head = "INSERT INTO transactions (id, relayer_id, chain_id, status, to_address, value, data, gas_limit,
                 speed, api_key_id, hints, valid_until, created_at, updated_at)";
        let taken =
            |rows: &[NewTransaction]| StoreError::Duplicate(names(rows.iter().map(|tx| tx.request.id.as_str())));
        self.insert_rows(dbtx, head, 14, txs, Some(taken), |query, tx| {
            Ok(query
                .bind(&tx.request.id)
                .bind(&tx.relayer_id)
                .bind(to_i64(tx.request.chain_id)?)
                .bind(TxStatus::Pending.as_str())
                .bind(tx.request.to.map(|a| a.to_string()))
                .bind(tx.request.value.to_string())
                .bind(&tx.request.data)
                .bind(tx.request.gas_limit.map(to_i64).transpose()?)
                .bind(tx.request.speed.as_str())
                .bind(&tx.request.api_key_id)
                .bind(json(&tx.request.hints)?)
                .bind(tx.valid_until)
                .bind(tx.created_at)
                .bind(tx.created_at))
        })
        .await?;
        let decisions: Vec<(&str, &DecisionRecord)> =
            txs.iter().flat_map(|tx| tx.decisions.iter().map(|d| (tx.request.id.as_str(), d))).collect();
        let head = "INSERT INTO decisions (transaction_id, record)";
        self.insert_rows(dbtx, head, 2, &decisions, None, |query, (id, decision)| {
            Ok(query.bind(*id).bind(json(decision)?))
        })
        .await?;
        // What `status_event` would append for a pending transaction.
        let head = "INSERT INTO events (kind, transaction_id, relayer_id, status, created_at)";
        let at = now_ms();
        self.insert_rows(dbtx, head, 5, txs, None, |query, tx| {
            Ok(query
                .bind(EventKind::TransactionStatus.as_str())
                .bind(&tx.request.id)
                .bind(&tx.relayer_id)
                .bind(TxStatus::Pending.as_str())
                .bind(at))
        })
        .await?;
        let head = "INSERT INTO outbox (transaction_id, state, available_at, created_at)";
        self.insert_rows(dbtx, head, 4, txs, None, |query, tx| {
            Ok(query.bind(&tx.request.id).bind("queued").bind(tx.created_at).bind(tx.created_at))
        })
        .await
    }

    /// `head VALUES (…), (…)` for every row, in statements of at most
    /// [`MAX_BINDS`] values; a unique violation is `taken` of the rows,
    /// where the table has a unique key.
    async fn insert_rows<T: Sync>(
        &self,
        dbtx: &mut sqlx::Transaction<'_, Any>,
        head: &str,
        columns: usize,
        rows: &[T],
        taken: Option<fn(&[T]) -> StoreError>,
        bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> Result<AnyQuery<'q>, StoreError> + Send,
    ) -> Result<(), StoreError> {
        let tuple = format!("({})", placeholders(columns));
        for chunk in rows.chunks((MAX_BINDS / columns).max(1)) {
            let sql = format!("{head} VALUES {}", vec![tuple.as_str(); chunk.len()].join(", "));
            let sql = self.backend.sql(&sql);
            let mut query = sqlx::query(&sql);
            for row in chunk {
                query = bind(query, row)?;
            }
            match query.execute(&mut **dbtx).await {
                Err(sqlx::Error::Database(e))
                    if e.is_unique_violation()
                        && let Some(taken) = taken =>
                {
                    return Err(taken(chunk));
                }
                other => other.map_err(db)?,
            };
        }
        Ok(())
    }

    /// A batch about transaction `id` (about no transaction: a label for
    /// its errors).
    pub(crate) fn batch(&self, id: &str) -> Batch {
        Batch::new(self.backend, id)
    }

    /// Runs `batch` as a database transaction of its own (on SQLite, one
    /// shared with the batches written beside it; on a server, a lone
    /// statement runs as it is): committed when its guards changed a row;
    /// otherwise rolled back, and `None`.
    pub(crate) async fn write(&self, batch: Batch) -> Result<Option<Vec<AnyRow>>, StoreError> {
        if let Some(group) = &self.group {
            return group.write(batch).await;
        }
        if batch.is_one_statement() {
            let mut conn = self.pool.acquire().await.map_err(db)?;
            return batch.run(&mut conn).await;
        }
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        let ran = batch.run(&mut dbtx).await?;
        if ran.is_some() { dbtx.commit().await } else { dbtx.rollback().await }.map_err(db)?;
        Ok(ran)
    }

    /// Moves the transaction to `status`, with its status event and, if
    /// given, `decision`.
    async fn move_to(
        &self,
        id: &str,
        status: TxStatus,
        reason: Option<&str>,
        decision: Option<&DecisionRecord>,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut batch = self.batch(id);
        batch
            .push(
                "UPDATE transactions SET status = ?, status_reason = ?, updated_at = ?,
                     confirmed_at = COALESCE(?, confirmed_at)
                 WHERE id = ?",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .bind((status == TxStatus::Confirmed).then_some(now))
            .bind(id)
            .status_event();
        if let Some(decision) = decision {
            batch.decision(decision)?;
        }
        self.write(batch).await?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        Ok(())
    }

    async fn try_fill_gap(
        &self,
        filler: &NewTransaction,
        attempt: &Attempt,
        decisions: &[DecisionRecord],
    ) -> Result<bool, StoreError> {
        let relayer_id =
            filler.relayer_id.as_deref().ok_or_else(|| StoreError::Database("a filler has no relayer".into()))?;
        let nonce = to_i64(attempt.nonce)?;
        let now = now_ms();
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        // The lane's row lock first: assignments on this relayer wait.
        let locked = sqlx::query(&self.backend.sql("UPDATE nonce_lanes SET updated_at = ? WHERE relayer_id = ?"))
            .bind(now)
            .bind(relayer_id)
            .execute(&mut *dbtx)
            .await
            .map_err(db)?;
        let next: Option<i64> =
            sqlx::query_scalar(&self.backend.sql("SELECT next_nonce FROM nonce_lanes WHERE relayer_id = ?"))
                .bind(relayer_id)
                .fetch_optional(&mut *dbtx)
                .await
                .map_err(db)?;
        if locked.rows_affected() == 0 || next.is_none_or(|next| nonce >= next) {
            dbtx.rollback().await.map_err(db)?;
            return Ok(false);
        }
        let holder =
            sqlx::query(&self.backend.sql("SELECT id, status FROM transactions WHERE relayer_id = ? AND nonce = ?"))
                .bind(relayer_id)
                .bind(nonce)
                .fetch_optional(&mut *dbtx)
                .await
                .map_err(db)?;
        if let Some(holder) = holder {
            let (id, status) = (text(&holder, "id")?, text(&holder, "status")?);
            if !status.parse::<TxStatus>().map_err(StoreError::Corrupt)?.is_final() {
                dbtx.rollback().await.map_err(db)?;
                return Ok(false);
            }
            let outcome = format!(
                "nonce {} was never used on chain; given up to the no-op {} that fills the gap",
                attempt.nonce, filler.request.id
            );
            let record = DecisionRecord {
                kind: "nonce".into(),
                plugin: None,
                version_hash: None,
                outcome,
                fallback_reason: None,
                at: now,
            };
            let mut batch = self.batch(&id);
            batch.push("UPDATE transactions SET nonce = NULL, updated_at = ? WHERE id = ?").bind(now).bind(&id);
            batch.decision(&record)?;
            batch.run(&mut dbtx).await?;
        }
        self.insert_in(&mut dbtx, std::slice::from_ref(filler)).await?;
        let mut batch = self.batch(&filler.request.id);
        batch
            .push(
                "UPDATE transactions SET status = 'sent', nonce = ?, hash = ?, max_fee = ?, priority_fee = ?,
                     gas_limit = ?, sent_at = ?
                 WHERE id = ?",
            )
            .bind(nonce)
            .bind(&attempt.hash)
            .bind(attempt.max_fee.to_string())
            .bind(attempt.priority_fee.to_string())
            .bind(to_i64(attempt.gas_limit)?)
            .bind(attempt.sent_at)
            .bind(&filler.request.id)
            .status_event()
            .attempt(attempt)?
            .decisions(decisions)?;
        batch.run(&mut dbtx).await?.ok_or_else(|| StoreError::NotFound(filler.request.id.clone()))?;
        dbtx.commit().await.map_err(db)?;
        Ok(true)
    }

    /// Assigns the lane's next nonce to a pending transaction that has none:
    /// one batch. Anything else (a nonce already assigned, a transaction
    /// past pending or missing, a relayer without a lane yet) goes the
    /// careful way.
    async fn try_assign_nonce(
        &self,
        id: &str,
        relayer_id: &str,
        decision: &DecisionRecord,
    ) -> Result<NonceAssignment, StoreError> {
        let now = now_ms();
        let mut batch = self.batch(id);
        // The transaction's row lock, then the lane's: the order every
        // write that takes both keeps.
        batch
            .push("UPDATE transactions SET updated_at = ? WHERE id = ? AND status = 'pending' AND nonce IS NULL")
            .bind(now)
            .bind(id)
            .push("UPDATE nonce_lanes SET next_nonce = next_nonce + 1, updated_at = ? WHERE relayer_id = ?")
            .bind(now)
            .bind(relayer_id)
            // No lane yet: the careful way creates it. On a server the lane
            // may be committed by another writer before the next statement,
            // which must then not run.
            .guard()
            .push(
                "UPDATE transactions SET relayer_id = ?,
                     nonce = (SELECT next_nonce - 1 FROM nonce_lanes WHERE relayer_id = ?)
                 WHERE id = ?",
            )
            .bind(relayer_id)
            .bind(relayer_id)
            .bind(id)
            .decision(decision)?
            .push(&format!("SELECT {TX_COLUMNS} FROM transactions WHERE id = ?"))
            .bind(id);
        let Some(rows) = self.write(batch).await? else {
            return self.assign_nonce_carefully(id, relayer_id, decision).await;
        };
        let transaction = tx_from_row(rows.first().ok_or_else(|| StoreError::NotFound(id.to_string()))?)?;
        let nonce = transaction.nonce.ok_or_else(|| StoreError::Corrupt(format!("{id}: no nonce after assignment")))?;
        // A transaction without a nonce has no attempts.
        Ok(NonceAssignment { nonce, fresh: true, transaction })
    }

    /// Assigns a nonce whatever the transaction's state: the first call's
    /// fast path missed.
    async fn assign_nonce_carefully(
        &self,
        id: &str,
        relayer_id: &str,
        decision: &DecisionRecord,
    ) -> Result<NonceAssignment, StoreError> {
        let now = now_ms();
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        // A write first: the row lock is taken here, before any read.
        let touched = sqlx::query(&self.backend.sql("UPDATE transactions SET updated_at = ? WHERE id = ?"))
            .bind(now)
            .bind(id)
            .execute(&mut *dbtx)
            .await
            .map_err(db)?;
        found(&touched, id)?;
        let sql = format!("SELECT {TX_COLUMNS} FROM transactions WHERE id = ?");
        let row = sqlx::query(&self.backend.sql(&sql)).bind(id).fetch_one(&mut *dbtx).await.map_err(db)?;
        let mut transaction = tx_from_row(&row)?;
        if let Some(nonce) = transaction.nonce {
            // Read again after the rollback: the row read here carries the
            // touch being undone.
            dbtx.rollback().await.map_err(db)?;
            let transaction = self.by_id(id, false).await?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
            return Ok(NonceAssignment { nonce, fresh: false, transaction });
        }
        if transaction.status != TxStatus::Pending {
            dbtx.rollback().await.map_err(db)?;
            return Err(StoreError::NotPending { id: id.to_string(), status: transaction.status });
        }
        let bump =
            self.backend.sql("UPDATE nonce_lanes SET next_nonce = next_nonce + 1, updated_at = ? WHERE relayer_id = ?");
        let bumped = sqlx::query(&bump).bind(now).bind(relayer_id).execute(&mut *dbtx).await.map_err(db)?;
        if bumped.rows_affected() == 0 {
            sqlx::query(&self.backend.sql(self.backend.insert_lane()))
                .bind(relayer_id)
                .bind(now)
                .execute(&mut *dbtx)
                .await
                .map_err(db)?;
            sqlx::query(&bump).bind(now).bind(relayer_id).execute(&mut *dbtx).await.map_err(db)?;
        }
        // Our own write, under our row lock: no other replica can move it.
        let nonce: i64 =
            sqlx::query_scalar(&self.backend.sql("SELECT next_nonce - 1 FROM nonce_lanes WHERE relayer_id = ?"))
                .bind(relayer_id)
                .fetch_one(&mut *dbtx)
                .await
                .map_err(db)?;
        let mut batch = self.batch(id);
        batch
            .push("UPDATE transactions SET relayer_id = ?, nonce = ? WHERE id = ?")
            .bind(relayer_id)
            .bind(nonce)
            .bind(id);
        batch.decision(decision)?;
        batch.run(&mut dbtx).await?;
        dbtx.commit().await.map_err(db)?;
        let nonce = from_i64(nonce)?;
        // A transaction without a nonce has no attempts.
        (transaction.relayer_id, transaction.nonce) = (Some(relayer_id.to_string()), Some(nonce));
        Ok(NonceAssignment { nonce, fresh: true, transaction })
    }

    async fn try_sync_lane(&self, relayer_id: &str, chain_pending_nonce: u64) -> Result<u64, StoreError> {
        let now = now_ms();
        let chain = to_i64(chain_pending_nonce)?;
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        let set = self.backend.sql("UPDATE nonce_lanes SET next_nonce = ?, updated_at = ? WHERE relayer_id = ?");
        let updated = sqlx::query(&set).bind(chain).bind(now).bind(relayer_id).execute(&mut *dbtx).await.map_err(db)?;
        if updated.rows_affected() == 0 {
            sqlx::query(&self.backend.sql(self.backend.insert_lane()))
                .bind(relayer_id)
                .bind(now)
                .execute(&mut *dbtx)
                .await
                .map_err(db)?;
            // A replica that created the lane first leaves the insert a no-op
            // that locks nothing: take the row lock before reading.
            sqlx::query(&set).bind(chain).bind(now).bind(relayer_id).execute(&mut *dbtx).await.map_err(db)?;
        }
        // The lane's row lock is held: an assignment racing this one waits,
        // and one that committed before is seen here.
        let highest: Option<i64> = sqlx::query_scalar(&self.backend.sql(
            "SELECT MAX(nonce) FROM transactions
             WHERE relayer_id = ? AND nonce IS NOT NULL AND status IN ('pending', 'sent', 'submitted', 'mined')",
        ))
        .bind(relayer_id)
        .fetch_one(&mut *dbtx)
        .await
        .map_err(db)?;
        let next = highest.map_or(chain, |h| chain.max(h + 1));
        sqlx::query(&set).bind(next).bind(now).bind(relayer_id).execute(&mut *dbtx).await.map_err(db)?;
        dbtx.commit().await.map_err(db)?;
        from_i64(next)
    }
}

/// The transaction columns, for `SELECT {TX_COLUMNS} FROM transactions …`.
const TX_COLUMNS: &str = "id, relayer_id, chain_id, status, status_reason, to_address, value, data, gas_limit, speed,
     api_key_id, hints, valid_until, nonce, hash, max_fee, priority_fee, created_at, updated_at, sent_at,
     confirmed_at, block_number, block_hash";

/// The attempt columns, for `SELECT {ATTEMPT_COLUMNS} FROM attempts …`.
const ATTEMPT_COLUMNS: &str =
    "attempt, purpose, hash, nonce, max_fee, priority_fee, gas_limit, sent_at, to_address, value, data";

/// Runs `$attempt` again while it loses deadlock or serialization races.
macro_rules! contended {
    ($attempt:expr) => {{
        let mut tries = 0;
        loop {
            match $attempt.await {
                Err(StoreError::Contended(_)) if tries < CONTENTION_RETRIES => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(5 * u64::from(tries))).await;
                }
                other => break other,
            }
        }
    }};
}

#[async_trait]
impl Store for SqlStore {
    async fn insert_many(&self, txs: &[NewTransaction]) -> Result<(), StoreError> {
        if txs.is_empty() {
            return Ok(());
        }
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        self.insert_in(&mut dbtx, txs).await?;
        dbtx.commit().await.map_err(db)
    }

    async fn get(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        self.by_id(id, true).await
    }

    async fn working(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        self.by_id(id, false).await
    }

    async fn idempotent_origin(&self, api_key_id: &str, key: &str) -> Result<Option<IdempotentOrigin>, StoreError> {
        let row = sqlx::query(&self.backend.sql(
            "SELECT fingerprint, transaction_id FROM idempotency_keys WHERE api_key_id = ? AND idempotency_key = ?",
        ))
        .bind(api_key_id)
        .bind(key)
        .fetch_optional(&self.reads)
        .await
        .map_err(db)?;
        row.map(|row| {
            Ok(IdempotentOrigin {
                fingerprint: text(&row, "fingerprint")?,
                transaction_id: text(&row, "transaction_id")?,
            })
        })
        .transpose()
    }

    async fn list(&self, relayer_id: &str, page: u32, per_page: u32) -> Result<Page, StoreError> {
        let per_page = per_page.clamp(1, 1000);
        let offset = i64::from(page.max(1) - 1) * i64::from(per_page);
        let mut conn = self.reads.acquire().await.map_err(db)?;
        let total: i64 =
            sqlx::query_scalar(&self.backend.sql("SELECT COUNT(*) FROM transactions WHERE relayer_id = ?"))
                .bind(relayer_id)
                .fetch_one(&mut *conn)
                .await
                .map_err(db)?;
        let sql = format!(
            "SELECT {TX_COLUMNS} FROM transactions WHERE relayer_id = ?
             ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        );
        let rows = sqlx::query(&self.backend.sql(&sql))
            .bind(relayer_id)
            .bind(i64::from(per_page))
            .bind(offset)
            .fetch_all(&mut *conn)
            .await
            .map_err(db)?;
        Ok(Page { items: self.with_details(&mut conn, rows).await?, total: total as u64 })
    }

    async fn by_nonce(&self, relayer_id: &str, nonce: u64) -> Result<Option<Transaction>, StoreError> {
        let sql = format!("SELECT {TX_COLUMNS} FROM transactions WHERE relayer_id = ? AND nonce = ?");
        let mut conn = self.reads.acquire().await.map_err(db)?;
        let row = sqlx::query(&self.backend.sql(&sql))
            .bind(relayer_id)
            .bind(to_i64(nonce)?)
            .fetch_optional(&mut *conn)
            .await
            .map_err(db)?;
        Ok(self.with_details(&mut conn, row.into_iter().collect()).await?.pop())
    }

    async fn assign_nonce(
        &self,
        id: &str,
        relayer_id: &str,
        decision: &DecisionRecord,
    ) -> Result<NonceAssignment, StoreError> {
        contended!(self.try_assign_nonce(id, relayer_id, decision))
    }

    async fn cancel_pending(&self, id: &str, reason: &str, decision: &DecisionRecord) -> Result<bool, StoreError> {
        let mut batch = self.batch(id);
        batch
            .push(
                "UPDATE transactions SET status = 'canceled', status_reason = ?, updated_at = ?
                 WHERE id = ? AND nonce IS NULL AND status = 'pending'",
            )
            .bind(reason)
            .bind(now_ms())
            .bind(id)
            .status_event()
            // A held entry is acked by its worker, which finds it canceled.
            .push("DELETE FROM outbox WHERE transaction_id = ? AND state = 'queued'")
            .bind(id)
            .decision(decision)?;
        Ok(self.write(batch).await?.is_some())
    }

    async fn replace_pending(
        &self,
        request: &TxRequest,
        valid_until: Option<i64>,
        decision: &DecisionRecord,
    ) -> Result<bool, StoreError> {
        let mut batch = self.batch(&request.id);
        batch
            .push(
                "UPDATE transactions SET to_address = ?, value = ?, data = ?, gas_limit = ?, speed = ?,
                     valid_until = ?, updated_at = ?
                 WHERE id = ? AND nonce IS NULL AND status = 'pending'",
            )
            .bind(request.to.map(|a| a.to_string()))
            .bind(request.value.to_string())
            .bind(request.data.as_slice())
            .bind(request.gas_limit.map(to_i64).transpose()?)
            .bind(request.speed.as_str())
            .bind(valid_until)
            .bind(now_ms())
            .bind(&request.id)
            .decision(decision)?;
        Ok(self.write(batch).await?.is_some())
    }

    async fn replace_sent(
        &self,
        request: &TxRequest,
        attempt: &Attempt,
        decisions: &[DecisionRecord],
    ) -> Result<bool, StoreError> {
        let mut batch = self.batch(&request.id);
        batch
            .push(
                "UPDATE transactions SET to_address = ?, value = ?, data = ?, gas_limit = ?, speed = ?, hash = ?,
                     max_fee = ?, priority_fee = ?, status_reason = NULL, updated_at = ?
                 WHERE id = ? AND nonce = ? AND status IN ('sent', 'submitted')",
            )
            .bind(request.to.map(|a| a.to_string()))
            .bind(request.value.to_string())
            .bind(request.data.as_slice())
            .bind(to_i64(attempt.gas_limit)?)
            .bind(request.speed.as_str())
            .bind(&attempt.hash)
            .bind(attempt.max_fee.to_string())
            .bind(attempt.priority_fee.to_string())
            .bind(now_ms())
            .bind(&request.id)
            .bind(to_i64(attempt.nonce)?)
            .attempt(attempt)?
            .decisions(decisions)?;
        Ok(self.write(batch).await?.is_some())
    }

    async fn settle(
        &self,
        id: &str,
        status: TxStatus,
        reason: Option<&str>,
        attempt: &Attempt,
        block: Option<&MinedIn>,
        decision: &DecisionRecord,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        // A no-op keeps the client's content on the transaction.
        let content = (attempt.purpose == Purpose::Send).then_some(attempt);
        let mut batch = self.batch(id);
        // Guarded by the attempt as stored: one released with its nonce
        // since is no longer the transaction's.
        batch
            .push(
                "UPDATE transactions SET status = ?, status_reason = ?, updated_at = ?,
                     confirmed_at = COALESCE(?, confirmed_at), block_number = ?, block_hash = ?,
                     hash = ?, max_fee = ?, priority_fee = ?, gas_limit = ?,
                     to_address = CASE WHEN ? THEN ? ELSE to_address END,
                     value = COALESCE(?, value), data = COALESCE(?, data)
                 WHERE id = ? AND EXISTS (
                     SELECT 1 FROM attempts WHERE transaction_id = ? AND attempt = ? AND hash = ?
                 )",
            )
            .bind(status.as_str())
            .bind(reason)
            .bind(now)
            .bind((status == TxStatus::Confirmed).then_some(now))
            .bind(block.map(|b| to_i64(b.number)).transpose()?)
            .bind(block.map(|b| b.hash.as_str()))
            .bind(&attempt.hash)
            .bind(attempt.max_fee.to_string())
            .bind(attempt.priority_fee.to_string())
            .bind(to_i64(attempt.gas_limit)?)
            .bind(content.is_some())
            .bind(attempt.to.map(|a| a.to_string()))
            .bind(content.map(|a| a.value.to_string()))
            .bind(content.map(|a| a.data.as_slice()))
            .bind(id)
            .bind(id)
            .bind(i64::from(attempt.attempt))
            .bind(&attempt.hash)
            .decision(decision)?
            .status_event();
        match self.write(batch).await? {
            Some(_) => Ok(()),
            None => Err(StoreError::NotFound(format!("{id} attempt {} ({})", attempt.attempt, attempt.hash))),
        }
    }

    async fn bump(
        &self,
        id: &str,
        attempt: &Attempt,
        decisions: &[DecisionRecord],
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let mut batch = self.batch(id);
        batch
            .push(
                "UPDATE transactions SET hash = ?, max_fee = ?, priority_fee = ?, status_reason = ?, updated_at = ?
                 WHERE id = ? AND nonce = ? AND status IN ('sent', 'submitted')",
            )
            .bind(&attempt.hash)
            .bind(attempt.max_fee.to_string())
            .bind(attempt.priority_fee.to_string())
            .bind(reason)
            .bind(now_ms())
            .bind(id)
            .bind(to_i64(attempt.nonce)?)
            .attempt(attempt)?
            .decisions(decisions)?;
        Ok(self.write(batch).await?.is_some())
    }

    async fn release_nonce(&self, id: &str, decision: &DecisionRecord) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut batch = self.batch(id);
        batch
            .push(
                "UPDATE transactions SET status = 'pending', nonce = NULL, hash = NULL, max_fee = NULL,
                     priority_fee = NULL, sent_at = NULL, status_reason = NULL, updated_at = ?
                 WHERE id = ? AND nonce IS NOT NULL AND status IN ('pending', 'sent', 'submitted')",
            )
            .bind(now)
            .bind(id)
            .status_event()
            .push("DELETE FROM attempts WHERE transaction_id = ?")
            .bind(id)
            .enqueue(now)
            .decision(decision)?;
        Ok(self.write(batch).await?.is_some())
    }

    async fn fill_gap(
        &self,
        filler: &NewTransaction,
        attempt: &Attempt,
        decisions: &[DecisionRecord],
    ) -> Result<bool, StoreError> {
        contended!(self.try_fill_gap(filler, attempt, decisions))
    }

    async fn requeue(&self, id: &str, decision: &DecisionRecord) -> Result<bool, StoreError> {
        let now = now_ms();
        let mut batch = self.batch(id);
        batch
            .push("UPDATE transactions SET updated_at = ? WHERE id = ? AND status = 'pending' AND nonce IS NOT NULL")
            .bind(now)
            .bind(id)
            .enqueue(now)
            .decision(decision)?;
        Ok(self.write(batch).await?.is_some())
    }

    async fn lane(&self, relayer_id: &str, from: u64, limit: u32) -> Result<Lane, StoreError> {
        let next: Option<i64> =
            sqlx::query_scalar(&self.backend.sql("SELECT next_nonce FROM nonce_lanes WHERE relayer_id = ?"))
                .bind(relayer_id)
                .fetch_optional(&self.reads)
                .await
                .map_err(db)?;
        let rows = sqlx::query(&self.backend.sql(
            "SELECT t.nonce, t.id, t.status, t.updated_at,
                 (SELECT MAX(a.sent_at) FROM attempts a WHERE a.transaction_id = t.id) AS last_sent_at
             FROM transactions t WHERE t.relayer_id = ? AND t.nonce >= ? ORDER BY t.nonce LIMIT ?",
        ))
        .bind(relayer_id)
        .bind(to_i64(from)?)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await
        .map_err(db)?;
        let holders = rows
            .iter()
            .map(|row| {
                Ok(Holder {
                    nonce: from_i64(get(row, "nonce")?)?,
                    id: text(row, "id")?,
                    status: text(row, "status")?.parse().map_err(StoreError::Corrupt)?,
                    last_sent_at: get(row, "last_sent_at")?,
                    updated_at: get(row, "updated_at")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Lane { next: next.map(from_i64).transpose()?.unwrap_or(0), holders })
    }

    async fn checkpoint(&self, chain_id: u64) -> Result<Option<Checkpoint>, StoreError> {
        let row =
            sqlx::query(&self.backend.sql("SELECT block_number, block_hash FROM chain_checkpoints WHERE chain_id = ?"))
                .bind(to_i64(chain_id)?)
                .fetch_optional(&self.reads)
                .await
                .map_err(db)?;
        row.map(|row| {
            Ok(Checkpoint {
                block: MinedIn { number: from_i64(get(&row, "block_number")?)?, hash: text(&row, "block_hash")? },
            })
        })
        .transpose()
    }

    async fn save_checkpoint(&self, chain_id: u64, checkpoint: &Checkpoint) -> Result<(), StoreError> {
        let (chain, number, now) = (to_i64(chain_id)?, to_i64(checkpoint.block.number)?, now_ms());
        let updated =
            sqlx::query(&self.backend.sql(
                "UPDATE chain_checkpoints SET block_number = ?, block_hash = ?, updated_at = ? WHERE chain_id = ?",
            ))
            .bind(number)
            .bind(&checkpoint.block.hash)
            .bind(now)
            .bind(chain)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        if updated.rows_affected() == 0 {
            let inserted = sqlx::query(&self.backend.sql(
                "INSERT INTO chain_checkpoints (chain_id, block_number, block_hash, updated_at) VALUES (?, ?, ?, ?)",
            ))
            .bind(chain)
            .bind(number)
            .bind(&checkpoint.block.hash)
            .bind(now)
            .execute(&self.pool)
            .await;
            match inserted {
                // Another replica inserted it first: its checkpoint stands
                // until the next save.
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
                other => {
                    other.map_err(db)?;
                }
            }
        }
        Ok(())
    }

    async fn sync_lane(&self, relayer_id: &str, chain_pending_nonce: u64) -> Result<u64, StoreError> {
        contended!(self.try_sync_lane(relayer_id, chain_pending_nonce))
    }

    async fn record_attempt(
        &self,
        id: &str,
        attempt: &Attempt,
        decision: &DecisionRecord,
        status: TxStatus,
    ) -> Result<(), StoreError> {
        let mut batch = self.batch(id);
        batch
            .push(
                "UPDATE transactions SET status = ?, status_reason = NULL, hash = ?, max_fee = ?, priority_fee = ?,
                     gas_limit = ?, sent_at = COALESCE(sent_at, ?), updated_at = ?
                 WHERE id = ?",
            )
            .bind(status.as_str())
            .bind(&attempt.hash)
            .bind(attempt.max_fee.to_string())
            .bind(attempt.priority_fee.to_string())
            .bind(to_i64(attempt.gas_limit)?)
            .bind(attempt.sent_at)
            .bind(now_ms())
            .bind(id)
            .status_event()
            .decision(decision)?
            .attempt(attempt)?;
        self.write(batch).await?.ok_or_else(|| StoreError::NotFound(id.to_string()))?;
        Ok(())
    }

    async fn set_status(&self, id: &str, status: TxStatus, reason: Option<&str>) -> Result<(), StoreError> {
        self.move_to(id, status, reason, None).await
    }

    async fn transition(
        &self,
        id: &str,
        status: TxStatus,
        reason: Option<&str>,
        decision: &DecisionRecord,
    ) -> Result<(), StoreError> {
        self.move_to(id, status, reason, Some(decision)).await
    }

    async fn submitted(&self, id: &str, decision: &DecisionRecord) -> Result<bool, StoreError> {
        let mut batch = self.batch(id);
        batch
            .push(
                "UPDATE transactions SET status = 'submitted', status_reason = NULL, updated_at = ?
                 WHERE id = ? AND status = 'sent'",
            )
            .bind(now_ms())
            .bind(id)
            .status_event()
            .decision(decision)?;
        Ok(self.write(batch).await?.is_some())
    }

    async fn add_decision(&self, id: &str, decision: &DecisionRecord) -> Result<(), StoreError> {
        let mut batch = self.batch(id);
        batch.decision(decision)?;
        self.write(batch).await.map(drop)
    }

    async fn in_flight(&self, limit: u32) -> Result<Vec<Transaction>, StoreError> {
        let sql = format!(
            "SELECT {TX_COLUMNS} FROM transactions WHERE status IN ('sent', 'submitted', 'mined')
             ORDER BY updated_at LIMIT ?"
        );
        let mut conn = self.reads.acquire().await.map_err(db)?;
        let rows =
            sqlx::query(&self.backend.sql(&sql)).bind(i64::from(limit)).fetch_all(&mut *conn).await.map_err(db)?;
        self.with_attempts(&mut conn, rows).await
    }

    async fn unfinished(&self, relayer_id: &str) -> Result<Vec<Transaction>, StoreError> {
        let sql = format!(
            "SELECT {TX_COLUMNS} FROM transactions
             WHERE relayer_id = ? AND status IN ('pending', 'sent', 'submitted', 'mined')
             ORDER BY nonce"
        );
        let mut conn = self.reads.acquire().await.map_err(db)?;
        let rows = sqlx::query(&self.backend.sql(&sql)).bind(relayer_id).fetch_all(&mut *conn).await.map_err(db)?;
        self.with_details(&mut conn, rows).await
    }

    async fn relayer_counts(&self, relayer_id: &str) -> Result<RelayerCounts, StoreError> {
        // Each half reads a few index entries, not the relayer's history:
        // in-flight rows by status (given a nonce, not yet mined), and the
        // last confirmation at the top of the lane, which confirms in nonce
        // order.
        let row = sqlx::query(&self.backend.sql(
            "SELECT (SELECT COUNT(*) FROM transactions
                     WHERE status IN ('pending', 'sent', 'submitted') AND relayer_id = ?
                         AND nonce IS NOT NULL) AS pending,
                 (SELECT confirmed_at FROM transactions
                     WHERE relayer_id = ? AND nonce IS NOT NULL AND confirmed_at IS NOT NULL
                     ORDER BY nonce DESC LIMIT 1) AS last_confirmed_at",
        ))
        .bind(relayer_id)
        .bind(relayer_id)
        .fetch_one(&self.reads)
        .await
        .map_err(db)?;
        Ok(RelayerCounts {
            pending: from_i64(get(&row, "pending")?)?,
            last_confirmed_at: get(&row, "last_confirmed_at")?,
        })
    }

    async fn census(&self) -> Result<Census, StoreError> {
        let rows =
            sqlx::query("SELECT status, COUNT(*) AS n, MIN(created_at) AS oldest FROM transactions GROUP BY status")
                .fetch_all(&self.reads)
                .await
                .map_err(db)?;
        let mut census = Census::default();
        for row in &rows {
            let status: TxStatus = text(row, "status")?.parse().map_err(StoreError::Corrupt)?;
            census.by_status.push((status, from_i64(get(row, "n")?)?));
            if !status.is_final() {
                let oldest: Option<i64> = get(row, "oldest")?;
                census.oldest_unfinished_at = census.oldest_unfinished_at.into_iter().chain(oldest).min();
            }
        }
        Ok(census)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(db)?;
        conn.ping().await.map_err(db)
    }

    async fn prune(&self, before: PruneBefore) -> Result<Pruned, StoreError> {
        self.prune_old(before).await
    }
}

fn tx_from_row(row: &AnyRow) -> Result<Transaction, StoreError> {
    let id = text(row, "id")?;
    let corrupt = |column: &str, e: String| StoreError::Corrupt(format!("transaction {id}: {column}: {e}"));
    let amount = |column: &str| -> Result<Option<U256>, StoreError> {
        opt_text(row, column)?.map(|v| parse_u256(&v).map_err(|e| corrupt(column, e))).transpose()
    };
    let request = TxRequest {
        chain_id: from_i64(get(row, "chain_id")?)?,
        to: address(opt_text(row, "to_address")?).map_err(|e| corrupt("to_address", e))?,
        value: amount("value")?.ok_or_else(|| corrupt("value", "NULL".into()))?,
        data: get(row, "data")?,
        gas_limit: get::<Option<i64>>(row, "gas_limit")?.map(from_i64).transpose()?,
        speed: text(row, "speed")?.parse().map_err(|e| corrupt("speed", e))?,
        api_key_id: text(row, "api_key_id")?,
        hints: from_json(&text(row, "hints")?, "hints")?,
        id: id.clone(),
    };
    Ok(Transaction {
        relayer_id: opt_text(row, "relayer_id")?,
        status: text(row, "status")?.parse().map_err(|e| corrupt("status", e))?,
        status_reason: opt_text(row, "status_reason")?,
        valid_until: get(row, "valid_until")?,
        nonce: get::<Option<i64>>(row, "nonce")?.map(from_i64).transpose()?,
        hash: opt_text(row, "hash")?,
        max_fee: amount("max_fee")?,
        priority_fee: amount("priority_fee")?,
        decisions: Vec::new(),
        attempts: Vec::new(),
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        sent_at: get(row, "sent_at")?,
        confirmed_at: get(row, "confirmed_at")?,
        mined_in: match (get::<Option<i64>>(row, "block_number")?, opt_text(row, "block_hash")?) {
            (Some(number), Some(hash)) => Some(MinedIn { number: from_i64(number)?, hash }),
            _ => None,
        },
        request,
    })
}

fn attempt_from_row(row: &AnyRow) -> Result<Attempt, StoreError> {
    let amount = |column: &str| -> Result<U256, StoreError> {
        parse_u256(&text(row, column)?).map_err(|e| StoreError::Corrupt(format!("attempt {column}: {e}")))
    };
    Ok(Attempt {
        attempt: u32::try_from(get::<i64>(row, "attempt")?)
            .map_err(|_| StoreError::Corrupt("attempt number out of range".into()))?,
        purpose: text(row, "purpose")?.parse().map_err(StoreError::Corrupt)?,
        hash: text(row, "hash")?,
        nonce: from_i64(get(row, "nonce")?)?,
        max_fee: amount("max_fee")?,
        priority_fee: amount("priority_fee")?,
        gas_limit: from_i64(get(row, "gas_limit")?)?,
        sent_at: get(row, "sent_at")?,
        to: address(opt_text(row, "to_address")?)
            .map_err(|e| StoreError::Corrupt(format!("attempt to_address: {e}")))?,
        value: amount("value")?,
        data: get(row, "data")?,
    })
}

/// A stored address column: NULL for a contract creation.
fn address(column: Option<String>) -> Result<Option<Address>, String> {
    column.map(|a| Address::from_str(&a).map_err(|e| e.to_string())).transpose()
}

fn get<'r, T: sqlx::Decode<'r, Any> + sqlx::Type<Any>>(row: &'r AnyRow, column: &str) -> Result<T, StoreError> {
    row.try_get(column).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// A text column. MySQL reports TEXT as a blob type, which `Any` hands over
/// as bytes.
fn opt_text(row: &AnyRow, column: &str) -> Result<Option<String>, StoreError> {
    if let Ok(value) = row.try_get::<Option<String>, _>(column) {
        return Ok(value);
    }
    get::<Option<Vec<u8>>>(row, column)?
        .map(|bytes| String::from_utf8(bytes).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}"))))
        .transpose()
}

fn text(row: &AnyRow, column: &str) -> Result<String, StoreError> {
    opt_text(row, column)?.ok_or_else(|| StoreError::Corrupt(format!("column {column}: unexpected NULL")))
}

/// `NotFound` when a statement about transaction `id` touched no row.
fn found(done: &AnyQueryResult, id: &str) -> Result<(), StoreError> {
    match done.rows_affected() {
        0 => Err(StoreError::NotFound(id.to_string())),
        _ => Ok(()),
    }
}

/// The database could not be reached, as opposed to refusing a statement.
pub(crate) fn unreachable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_))
        || matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| is_connection_state(&c)))
}

/// SQLSTATE class 08 (connection exception) and 57P (PostgreSQL shutting
/// down or restarted).
fn is_connection_state(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P")
}

/// Lost a deadlock or serialization race: SQLSTATE 40001 (MySQL's deadlock
/// too) or PostgreSQL's 40P01.
pub(crate) fn contended(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().is_some_and(|c| c == "40001" || c == "40P01"))
}

pub(crate) fn db(e: sqlx::Error) -> StoreError {
    if unreachable(&e) {
        StoreError::Unavailable(e.to_string())
    } else if contended(&e) {
        StoreError::Contended(e.to_string())
    } else {
        StoreError::Database(e.to_string())
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Database(format!("cannot encode JSON: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, column: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// `?, ?, …`: `n` placeholders for a list.
fn placeholders(n: usize) -> String {
    vec!["?"; n].join(", ")
}

/// Names for an error about one of several rows.
fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

fn to_i64(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Database(format!("{v} does not fit a database integer")))
}

fn from_i64(v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("negative value {v}")))
}

fn parse_u256(s: &str) -> Result<U256, String> {
    U256::from_str_radix(s, 10).map_err(|e| format!("`{s}` is not a decimal amount: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_statements_number_their_placeholders() {
        let sql = "UPDATE t SET a = ?, b = ? WHERE id = ?";
        assert_eq!(Backend::Postgres.sql(sql), "UPDATE t SET a = $1, b = $2 WHERE id = $3");
        assert_eq!(Backend::MySql.sql(sql), sql);
        assert_eq!(Backend::Sqlite.sql(sql), sql);
    }

    #[test]
    fn the_url_scheme_chooses_the_backend() {
        assert_eq!(Backend::of_url("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::of_url("postgres://u@127.0.0.1/test").unwrap(), Backend::Postgres);
        assert_eq!(Backend::of_url("postgresql://u@127.0.0.1/test").unwrap(), Backend::Postgres);
        assert_eq!(Backend::of_url("mariadb://root@127.0.0.1/test").unwrap(), Backend::MySql);
        let error = Backend::of_url("mongodb://u:secret@db/x").unwrap_err().to_string();
        assert!(error.contains("no supported database") && !error.contains("secret"), "{error}");
    }
}
