//! The embedded default: SQLite in the data directory, in WAL mode, created
//! and migrated on first open. Every write that must be atomic starts with
//! a write statement, so SQLite takes its write lock at once and two
//! connections never deadlock upgrading a read lock.

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use alloy_primitives::{Address, U256};
use async_trait::async_trait;
use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteQueryResult, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{
    Attempt, DecisionRecord, NewTransaction, NonceAssignment, Page, RelayerCounts, Store, StoreError, Transaction,
    TxStatus, now_ms,
};
use crate::plugins::TxRequest;

/// The file inside the data directory.
pub const DATABASE_FILE: &str = "switchyard.db";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/switchyard.db` and applies any
    /// pending migration.
    pub async fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Unavailable(format!("cannot create data directory {}: {e}", data_dir.display()))
        })?;
        let options = SqliteConnectOptions::new().filename(data_dir.join(DATABASE_FILE));
        Self::connect(options).await
    }

    /// Opens a `sqlite:` URL (`sqlite::memory:` for a throwaway database).
    pub async fn open_url(url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad SQLite URL `{url}`: {e}")))?;
        Self::connect(options).await
    }

    async fn connect(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let in_memory = options.get_filename() == Path::new(":memory:");
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // An in-memory database exists per connection: keep exactly one.
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 8 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory { None } else { Some(Duration::from_secs(600)) })
            .max_lifetime(if in_memory { None } else { Some(Duration::from_secs(3600)) })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        MIGRATOR.run(&pool).await.map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(SqliteStore { pool })
    }

    /// The pool, shared with the embedded queue (same database).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Decodes transaction rows and fills in their attempts, all fetched
    /// in one query.
    async fn with_attempts(&self, rows: Vec<SqliteRow>) -> Result<Vec<Transaction>, StoreError> {
        let mut txs = rows.iter().map(tx_from_row).collect::<Result<Vec<_>, _>>()?;
        if txs.is_empty() {
            return Ok(txs);
        }
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT transaction_id, attempt, hash, nonce, max_fee, priority_fee, gas_limit, sent_at, to_address, value,
                 data
             FROM attempts WHERE transaction_id IN (",
        );
        let mut ids = query.separated(", ");
        for tx in &txs {
            ids.push_bind(tx.id());
        }
        query.push(") ORDER BY attempt");
        let mut attempts: HashMap<String, Vec<Attempt>> = HashMap::new();
        for row in query.build().fetch_all(&self.pool).await.map_err(db)? {
            attempts.entry(get(&row, "transaction_id")?).or_default().push(attempt_from_row(&row)?);
        }
        for tx in &mut txs {
            tx.attempts = attempts.remove(tx.id()).unwrap_or_default();
        }
        Ok(txs)
    }

    async fn first<'q>(
        &self,
        query: Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> Result<Option<Transaction>, StoreError> {
        let row = query.fetch_optional(&self.pool).await.map_err(db)?;
        Ok(self.with_attempts(row.into_iter().collect()).await?.pop())
    }
}

/// `SELECT <every transaction column> <rest>`, as one literal.
macro_rules! select_tx {
    ($rest:literal $(,)?) => {
        concat!(
            "SELECT id, relayer_id, chain_id, status, status_reason, to_address, value, data, gas_limit, speed,
                 api_key_id, hints, valid_until, nonce, hash, max_fee, priority_fee, decisions, created_at,
                 updated_at, sent_at, confirmed_at ",
            $rest
        )
    };
}

#[async_trait]
impl Store for SqliteStore {
    async fn insert(&self, tx: &NewTransaction) -> Result<(), StoreError> {
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        let inserted = sqlx::query(
            "INSERT INTO transactions (id, relayer_id, chain_id, status, to_address, value, data, gas_limit, speed,
                 api_key_id, hints, valid_until, decisions, created_at, updated_at)
             VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&tx.request.id)
        .bind(&tx.relayer_id)
        .bind(to_i64(tx.request.chain_id)?)
        .bind(tx.request.to.map(|a| a.to_string()))
        .bind(tx.request.value.to_string())
        .bind(&tx.request.data)
        .bind(tx.request.gas_limit.map(to_i64).transpose()?)
        .bind(tx.request.speed.as_str())
        .bind(&tx.request.api_key_id)
        .bind(json(&tx.request.hints)?)
        .bind(tx.valid_until)
        .bind(json(&tx.decisions)?)
        .bind(tx.created_at)
        .bind(tx.created_at)
        .execute(&mut *dbtx)
        .await;
        match inserted {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                return Err(StoreError::Duplicate(tx.request.id.clone()));
            }
            other => other.map_err(db)?,
        };
        sqlx::query("INSERT INTO outbox (transaction_id, state, available_at, created_at) VALUES (?, 'queued', ?, ?)")
            .bind(&tx.request.id)
            .bind(tx.created_at)
            .bind(tx.created_at)
            .execute(&mut *dbtx)
            .await
            .map_err(db)?;
        dbtx.commit().await.map_err(db)
    }

    async fn get(&self, id: &str) -> Result<Option<Transaction>, StoreError> {
        self.first(sqlx::query(select_tx!("FROM transactions WHERE id = ?")).bind(id)).await
    }

    async fn list(&self, relayer_id: &str, page: u32, per_page: u32) -> Result<Page, StoreError> {
        let per_page = per_page.clamp(1, 1000);
        let offset = i64::from(page.max(1) - 1) * i64::from(per_page);
        let total: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM transactions WHERE relayer_id = ?")
            .bind(relayer_id)
            .fetch_one(&self.pool)
            .await
            .map_err(db)?;
        let rows = sqlx::query(select_tx!(
            "FROM transactions WHERE relayer_id = ?
             ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?",
        ))
        .bind(relayer_id)
        .bind(i64::from(per_page))
        .bind(offset)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        Ok(Page { items: self.with_attempts(rows).await?, total: total as u64 })
    }

    async fn by_nonce(&self, relayer_id: &str, nonce: u64) -> Result<Option<Transaction>, StoreError> {
        let query = sqlx::query(select_tx!("FROM transactions WHERE relayer_id = ? AND nonce = ?"));
        self.first(query.bind(relayer_id).bind(to_i64(nonce)?)).await
    }

    async fn assign_nonce(
        &self,
        id: &str,
        relayer_id: &str,
        decision: &DecisionRecord,
    ) -> Result<NonceAssignment, StoreError> {
        let now = now_ms();
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        // A write first: the write lock is taken here, before any read.
        let touched = sqlx::query("UPDATE transactions SET updated_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *dbtx)
            .await
            .map_err(db)?;
        found(&touched, id)?;
        let (nonce, status): (Option<i64>, String) =
            sqlx::query_as("SELECT nonce, status FROM transactions WHERE id = ?")
                .bind(id)
                .fetch_one(&mut *dbtx)
                .await
                .map_err(db)?;
        if let Some(nonce) = nonce {
            dbtx.rollback().await.map_err(db)?;
            return Ok(NonceAssignment { nonce: from_i64(nonce)?, fresh: false });
        }
        let status: TxStatus = status.parse().map_err(StoreError::Corrupt)?;
        if status != TxStatus::Pending {
            dbtx.rollback().await.map_err(db)?;
            return Err(StoreError::NotPending { id: id.to_string(), status });
        }
        sqlx::query(
            "INSERT INTO nonce_lanes (relayer_id, next_nonce, updated_at) VALUES (?, 0, ?) ON CONFLICT DO NOTHING",
        )
        .bind(relayer_id)
        .bind(now)
        .execute(&mut *dbtx)
        .await
        .map_err(db)?;
        let nonce: i64 = sqlx::query_scalar(
            "UPDATE nonce_lanes SET next_nonce = next_nonce + 1, updated_at = ? WHERE relayer_id = ?
             RETURNING next_nonce - 1",
        )
        .bind(now)
        .bind(relayer_id)
        .fetch_one(&mut *dbtx)
        .await
        .map_err(db)?;
        sqlx::query("UPDATE transactions SET relayer_id = ?, nonce = ? WHERE id = ?")
            .bind(relayer_id)
            .bind(nonce)
            .bind(id)
            .execute(&mut *dbtx)
            .await
            .map_err(db)?;
        append_decision(&mut dbtx, id, decision).await?;
        dbtx.commit().await.map_err(db)?;
        Ok(NonceAssignment { nonce: from_i64(nonce)?, fresh: true })
    }

    async fn cancel_pending(&self, id: &str, reason: &str, decision: &DecisionRecord) -> Result<bool, StoreError> {
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        let canceled = sqlx::query(
            "UPDATE transactions SET status = 'canceled', status_reason = ?, updated_at = ?
             WHERE id = ? AND nonce IS NULL AND status = 'pending'",
        )
        .bind(reason)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *dbtx)
        .await
        .map_err(db)?;
        if canceled.rows_affected() > 0 {
            // A held entry is acked by its worker, which finds it canceled.
            sqlx::query("DELETE FROM outbox WHERE transaction_id = ? AND state = 'queued'")
                .bind(id)
                .execute(&mut *dbtx)
                .await
                .map_err(db)?;
        }
        commit_if_changed(dbtx, &canceled, id, decision).await
    }

    async fn replace_pending(
        &self,
        request: &TxRequest,
        valid_until: Option<i64>,
        decision: &DecisionRecord,
    ) -> Result<bool, StoreError> {
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        let replaced = sqlx::query(
            "UPDATE transactions SET to_address = ?, value = ?, data = ?, gas_limit = ?, speed = ?, valid_until = ?,
                 updated_at = ?
             WHERE id = ? AND nonce IS NULL AND status = 'pending'",
        )
        .bind(request.to.map(|a| a.to_string()))
        .bind(request.value.to_string())
        .bind(&request.data)
        .bind(request.gas_limit.map(to_i64).transpose()?)
        .bind(request.speed.as_str())
        .bind(valid_until)
        .bind(now_ms())
        .bind(&request.id)
        .execute(&mut *dbtx)
        .await
        .map_err(db)?;
        commit_if_changed(dbtx, &replaced, &request.id, decision).await
    }

    async fn replace_sent(
        &self,
        request: &TxRequest,
        attempt: &Attempt,
        decisions: &[DecisionRecord],
    ) -> Result<bool, StoreError> {
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        let replaced = sqlx::query(
            "UPDATE transactions SET to_address = ?, value = ?, data = ?, gas_limit = ?, speed = ?, hash = ?,
                 max_fee = ?, priority_fee = ?, status_reason = NULL, updated_at = ?
             WHERE id = ? AND nonce = ? AND status IN ('sent', 'submitted')",
        )
        .bind(request.to.map(|a| a.to_string()))
        .bind(request.value.to_string())
        .bind(&request.data)
        .bind(to_i64(attempt.gas_limit)?)
        .bind(request.speed.as_str())
        .bind(&attempt.hash)
        .bind(attempt.max_fee.to_string())
        .bind(attempt.priority_fee.to_string())
        .bind(now_ms())
        .bind(&request.id)
        .bind(to_i64(attempt.nonce)?)
        .execute(&mut *dbtx)
        .await
        .map_err(db)?;
        if replaced.rows_affected() == 0 {
            dbtx.rollback().await.map_err(db)?;
            return Ok(false);
        }
        insert_attempt(&mut dbtx, &request.id, attempt).await?;
        for decision in decisions {
            append_decision(&mut dbtx, &request.id, decision).await?;
        }
        dbtx.commit().await.map_err(db)?;
        Ok(true)
    }

    async fn settle(&self, id: &str, status: TxStatus, reason: Option<&str>, attempt: u32) -> Result<(), StoreError> {
        let now = now_ms();
        let settled = sqlx::query(
            "UPDATE transactions SET status = ?, status_reason = ?, updated_at = ?,
                 confirmed_at = COALESCE(?, confirmed_at),
                 hash = a.hash, max_fee = a.max_fee, priority_fee = a.priority_fee, gas_limit = a.gas_limit,
                 to_address = a.to_address, value = a.value, data = a.data
             FROM (SELECT * FROM attempts WHERE transaction_id = ? AND attempt = ?) AS a
             WHERE transactions.id = a.transaction_id",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(now)
        .bind((status == TxStatus::Confirmed).then_some(now))
        .bind(id)
        .bind(i64::from(attempt))
        .execute(&self.pool)
        .await
        .map_err(db)?;
        found(&settled, id)
    }

    async fn sync_lane(&self, relayer_id: &str, chain_pending_nonce: u64) -> Result<u64, StoreError> {
        let now = now_ms();
        let chain = to_i64(chain_pending_nonce)?;
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        sqlx::query(
            "INSERT INTO nonce_lanes (relayer_id, next_nonce, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (relayer_id) DO UPDATE SET next_nonce = excluded.next_nonce, updated_at = excluded.updated_at",
        )
        .bind(relayer_id)
        .bind(chain)
        .bind(now)
        .execute(&mut *dbtx)
        .await
        .map_err(db)?;
        let highest: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(nonce) FROM transactions
             WHERE relayer_id = ? AND nonce IS NOT NULL AND status IN ('pending', 'sent', 'submitted', 'mined')",
        )
        .bind(relayer_id)
        .fetch_one(&mut *dbtx)
        .await
        .map_err(db)?;
        let next = highest.map_or(chain, |h| chain.max(h + 1));
        sqlx::query("UPDATE nonce_lanes SET next_nonce = ? WHERE relayer_id = ?")
            .bind(next)
            .bind(relayer_id)
            .execute(&mut *dbtx)
            .await
            .map_err(db)?;
        dbtx.commit().await.map_err(db)?;
        from_i64(next)
    }

    async fn record_attempt(
        &self,
        id: &str,
        attempt: &Attempt,
        decision: &DecisionRecord,
        status: TxStatus,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        let touched = sqlx::query(
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
        .bind(now)
        .bind(id)
        .execute(&mut *dbtx)
        .await
        .map_err(db)?;
        found(&touched, id)?;
        append_decision(&mut dbtx, id, decision).await?;
        insert_attempt(&mut dbtx, id, attempt).await?;
        dbtx.commit().await.map_err(db)
    }

    async fn set_status(&self, id: &str, status: TxStatus, reason: Option<&str>) -> Result<(), StoreError> {
        let now = now_ms();
        let confirmed_at = (status == TxStatus::Confirmed).then_some(now);
        let touched = sqlx::query(
            "UPDATE transactions SET status = ?, status_reason = ?, updated_at = ?,
                 confirmed_at = COALESCE(?, confirmed_at)
             WHERE id = ?",
        )
        .bind(status.as_str())
        .bind(reason)
        .bind(now)
        .bind(confirmed_at)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        found(&touched, id)
    }

    async fn add_decision(&self, id: &str, decision: &DecisionRecord) -> Result<(), StoreError> {
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        append_decision(&mut dbtx, id, decision).await?;
        dbtx.commit().await.map_err(db)
    }

    async fn in_flight(&self, limit: u32) -> Result<Vec<Transaction>, StoreError> {
        let rows = sqlx::query(select_tx!(
            "FROM transactions WHERE status IN ('submitted', 'mined')
             ORDER BY updated_at LIMIT ?",
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        self.with_attempts(rows).await
    }

    async fn unfinished(&self, relayer_id: &str) -> Result<Vec<Transaction>, StoreError> {
        let rows = sqlx::query(select_tx!(
            "FROM transactions
             WHERE relayer_id = ? AND status IN ('pending', 'sent', 'submitted', 'mined')
             ORDER BY nonce",
        ))
        .bind(relayer_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db)?;
        self.with_attempts(rows).await
    }

    async fn relayer_counts(&self, relayer_id: &str) -> Result<RelayerCounts, StoreError> {
        let (pending, last_confirmed_at): (i64, Option<i64>) = sqlx::query_as(
            "SELECT
                 COALESCE(SUM(CASE WHEN nonce IS NOT NULL AND status IN ('sent', 'submitted') THEN 1 ELSE 0 END), 0),
                 MAX(confirmed_at)
             FROM transactions WHERE relayer_id = ?",
        )
        .bind(relayer_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db)?;
        Ok(RelayerCounts { pending: pending as u64, last_confirmed_at })
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(|_| ()).map_err(db)
    }
}

async fn insert_attempt(
    dbtx: &mut sqlx::Transaction<'_, Sqlite>,
    id: &str,
    attempt: &Attempt,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO attempts (transaction_id, attempt, hash, nonce, max_fee, priority_fee, gas_limit, sent_at,
             to_address, value, data)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (transaction_id, attempt) DO UPDATE SET hash = excluded.hash, nonce = excluded.nonce,
             max_fee = excluded.max_fee, priority_fee = excluded.priority_fee, gas_limit = excluded.gas_limit,
             sent_at = excluded.sent_at, to_address = excluded.to_address, value = excluded.value,
             data = excluded.data",
    )
    .bind(id)
    .bind(i64::from(attempt.attempt))
    .bind(&attempt.hash)
    .bind(to_i64(attempt.nonce)?)
    .bind(attempt.max_fee.to_string())
    .bind(attempt.priority_fee.to_string())
    .bind(to_i64(attempt.gas_limit)?)
    .bind(attempt.sent_at)
    .bind(attempt.to.map(|a| a.to_string()))
    .bind(attempt.value.to_string())
    .bind(&attempt.data)
    .execute(&mut **dbtx)
    .await
    .map_err(db)?;
    Ok(())
}

/// Commits with `decision` in the trail when `update` changed the row;
/// otherwise rolls back. Whether it changed is the answer.
async fn commit_if_changed(
    mut dbtx: sqlx::Transaction<'_, Sqlite>,
    update: &SqliteQueryResult,
    id: &str,
    decision: &DecisionRecord,
) -> Result<bool, StoreError> {
    if update.rows_affected() == 0 {
        dbtx.rollback().await.map_err(db)?;
        return Ok(false);
    }
    append_decision(&mut dbtx, id, decision).await?;
    dbtx.commit().await.map_err(db)?;
    Ok(true)
}

async fn append_decision(
    dbtx: &mut sqlx::Transaction<'_, Sqlite>,
    id: &str,
    decision: &DecisionRecord,
) -> Result<(), StoreError> {
    // `json_insert` appends in place: no read-modify-write race.
    let touched =
        sqlx::query("UPDATE transactions SET decisions = json_insert(decisions, '$[#]', json(?)) WHERE id = ?")
            .bind(json(decision)?)
            .bind(id)
            .execute(&mut **dbtx)
            .await
            .map_err(db)?;
    found(&touched, id)
}

fn tx_from_row(row: &SqliteRow) -> Result<Transaction, StoreError> {
    let id: String = get(row, "id")?;
    let corrupt = |column: &str, e: String| StoreError::Corrupt(format!("transaction {id}: {column}: {e}"));
    let amount = |column: &str| -> Result<Option<U256>, StoreError> {
        get::<Option<String>>(row, column)?.map(|v| parse_u256(&v).map_err(|e| corrupt(column, e))).transpose()
    };
    let request = TxRequest {
        chain_id: from_i64(get(row, "chain_id")?)?,
        to: address(get(row, "to_address")?).map_err(|e| corrupt("to_address", e))?,
        value: amount("value")?.ok_or_else(|| corrupt("value", "NULL".into()))?,
        data: get(row, "data")?,
        gas_limit: get::<Option<i64>>(row, "gas_limit")?.map(from_i64).transpose()?,
        speed: get::<String>(row, "speed")?.parse().map_err(|e| corrupt("speed", e))?,
        api_key_id: get(row, "api_key_id")?,
        hints: from_json(&get::<String>(row, "hints")?, "hints")?,
        id: id.clone(),
    };
    Ok(Transaction {
        relayer_id: get(row, "relayer_id")?,
        status: get::<String>(row, "status")?.parse().map_err(|e| corrupt("status", e))?,
        status_reason: get(row, "status_reason")?,
        valid_until: get(row, "valid_until")?,
        nonce: get::<Option<i64>>(row, "nonce")?.map(from_i64).transpose()?,
        hash: get(row, "hash")?,
        max_fee: amount("max_fee")?,
        priority_fee: amount("priority_fee")?,
        decisions: from_json(&get::<String>(row, "decisions")?, "decisions")?,
        attempts: Vec::new(),
        created_at: get(row, "created_at")?,
        updated_at: get(row, "updated_at")?,
        sent_at: get(row, "sent_at")?,
        confirmed_at: get(row, "confirmed_at")?,
        request,
    })
}

fn attempt_from_row(row: &SqliteRow) -> Result<Attempt, StoreError> {
    let amount = |column: &str| -> Result<U256, StoreError> {
        parse_u256(&get::<String>(row, column)?).map_err(|e| StoreError::Corrupt(format!("attempt {column}: {e}")))
    };
    Ok(Attempt {
        attempt: u32::try_from(get::<i64>(row, "attempt")?)
            .map_err(|_| StoreError::Corrupt("attempt number out of range".into()))?,
        hash: get(row, "hash")?,
        nonce: from_i64(get(row, "nonce")?)?,
        max_fee: amount("max_fee")?,
        priority_fee: amount("priority_fee")?,
        gas_limit: from_i64(get(row, "gas_limit")?)?,
        sent_at: get(row, "sent_at")?,
        to: address(get(row, "to_address")?).map_err(|e| StoreError::Corrupt(format!("attempt to_address: {e}")))?,
        value: amount("value")?,
        data: get(row, "data")?,
    })
}

/// A stored address column: NULL for a contract creation.
fn address(column: Option<String>) -> Result<Option<Address>, String> {
    column.map(|a| Address::from_str(&a).map_err(|e| e.to_string())).transpose()
}

fn get<'r, T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>>(
    row: &'r SqliteRow,
    column: &str,
) -> Result<T, StoreError> {
    row.try_get(column).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
}

/// `NotFound` when a statement about transaction `id` touched no row.
fn found(done: &SqliteQueryResult, id: &str) -> Result<(), StoreError> {
    match done.rows_affected() {
        0 => Err(StoreError::NotFound(id.to_string())),
        _ => Ok(()),
    }
}

/// The database could not be reached, as opposed to refusing a statement.
pub(crate) fn unreachable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
}

fn db(e: sqlx::Error) -> StoreError {
    if unreachable(&e) { StoreError::Unavailable(e.to_string()) } else { StoreError::Database(e.to_string()) }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Database(format!("cannot encode JSON: {e}")))
}

fn from_json<T: serde::de::DeserializeOwned>(text: &str, column: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("column {column}: {e}")))
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
