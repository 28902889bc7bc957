//! The embedded queue: the `outbox` table of the store's own database
//! (SQLite, PostgreSQL or MySQL), so it needs no broker. An entry is claimed
//! with a lease; a worker that dies leaves the lease to run out and the
//! entry is delivered again. Each delivery has its own tag (entry id and
//! delivery count), so a worker that lost its lease cannot ack or retry what
//! another worker now holds. On PostgreSQL and MySQL, replicas sharing the
//! database claim with `SKIP LOCKED`: never the same entry, never waiting on
//! each other.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;

use super::{Delivery, Queue, QueueError, QueueStats, RetryOutcome, RetryPolicy, database};
use crate::store::sql::{Backend, Batch, SqlStore};
use crate::store::{StoreError, now_ms};

/// How often an idle `receive` looks for work.
const POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Debug)]
pub struct EmbeddedQueue {
    /// Its writes: on SQLite they join the store's group commits.
    store: SqlStore,
    backend: Backend,
    policy: RetryPolicy,
}

/// An entry held by a worker whose lease ran out, oldest lease first: it is
/// delivered again before new work, so a dead worker's entry never starves.
const EXPIRED: &str =
    "SELECT id FROM outbox WHERE state = 'in_flight' AND lease_until <= ? ORDER BY lease_until, id LIMIT 1";
/// The queued entry due first. Each lookup reads one entry of its index
/// (`outbox_leases`, `outbox_ready`): a claim costs the same at any backlog.
const DUE: &str =
    "SELECT id FROM outbox WHERE state = 'queued' AND available_at <= ? ORDER BY available_at, id LIMIT 1";

/// Whether [`EXPIRED`] or [`DUE`] would find an entry.
const READY: &str = "SELECT 1 FROM outbox WHERE state = 'in_flight' AND lease_until <= ?
     UNION ALL SELECT 1 FROM outbox WHERE state = 'queued' AND available_at <= ? LIMIT 1";

impl EmbeddedQueue {
    /// A queue over the outbox of the store's database.
    pub fn new(store: &SqlStore, policy: RetryPolicy) -> Self {
        EmbeddedQueue { store: store.clone(), backend: store.backend(), policy }
    }

    /// Takes the oldest ready entry: `(entry id, transaction id, deliveries)`.
    async fn take(&self, now: i64) -> Result<Option<(i64, String, i64)>, QueueError> {
        let lease_until = now.saturating_add(self.policy.lease.as_millis() as i64);
        let take = "UPDATE outbox SET state = 'in_flight', deliveries = deliveries + 1, lease_until = ? WHERE id = ?";
        match self.backend {
            // One statement; SQLite has one writer at a time anyway.
            Backend::Sqlite => {
                let sql = format!(
                    "{} RETURNING id, transaction_id, deliveries",
                    take.replace("id = ?", &format!("id = COALESCE(({EXPIRED}), ({DUE}))"))
                );
                let mut batch = self.store.batch("outbox");
                batch.push(&sql).bind(lease_until).bind(now).bind(now);
                let Some(row) = self.store.write(batch).await.map_err(stored)?.and_then(|rows| rows.into_iter().next())
                else {
                    return Ok(None);
                };
                let taken = (row.try_get::<i64, _>(0), row.try_get::<String, _>(1), row.try_get::<i64, _>(2));
                match taken {
                    (Ok(id), Ok(transaction_id), Ok(deliveries)) => Ok(Some((id, transaction_id, deliveries))),
                    _ => Err(QueueError::Backend(format!("an outbox row that cannot be read: {taken:?}"))),
                }
            }
            // MySQL cannot update a table it selects from in a subquery.
            Backend::Postgres | Backend::MySql => {
                self.take_skipping_locked(now, lease_until, take).await.map_err(database)
            }
        }
    }

    async fn take_skipping_locked(
        &self,
        now: i64,
        lease_until: i64,
        take: &str,
    ) -> Result<Option<(i64, String, i64)>, sqlx::Error> {
        let mut dbtx = self.store.pool().begin().await?;
        let mut found = None;
        for ready in [EXPIRED, DUE] {
            let locking = format!("{ready} FOR UPDATE SKIP LOCKED");
            let locking = self.backend.sql(&locking);
            found = sqlx::query_scalar::<_, i64>(&locking).bind(now).fetch_optional(&mut *dbtx).await?;
            if found.is_some() {
                break;
            }
        }
        let Some(id) = found else {
            dbtx.rollback().await?;
            return Ok(None);
        };
        sqlx::query(&self.backend.sql(take)).bind(lease_until).bind(id).execute(&mut *dbtx).await?;
        let taken = sqlx::query_as(&self.backend.sql("SELECT id, transaction_id, deliveries FROM outbox WHERE id = ?"))
            .bind(id)
            .fetch_one(&mut *dbtx)
            .await?;
        dbtx.commit().await?;
        Ok(Some(taken))
    }

    /// Runs one statement on an outbox entry: whether it changed it.
    async fn change(&self, sql: &str, bind: impl FnOnce(&mut Batch)) -> Result<bool, QueueError> {
        let mut batch = self.store.batch("outbox");
        bind(batch.push(sql));
        Ok(self.store.write(batch).await.map_err(stored)?.is_some())
    }

    /// Whether an entry is ready to take, read beside the writer: a claim
    /// is a write, and idle workers polling with writes held up the writes
    /// that relay.
    async fn any_ready(&self, now: i64) -> Result<bool, QueueError> {
        let sql = self.backend.sql(READY);
        let found = sqlx::query(&sql).bind(now).bind(now).fetch_optional(self.store.reads()).await.map_err(database)?;
        Ok(found.is_some())
    }

    async fn claim(&self) -> Result<Option<Delivery>, QueueError> {
        loop {
            let claimed = self.take(now_ms()).await?;
            let Some((id, transaction_id, deliveries)) = claimed else { return Ok(None) };
            let attempt = u32::try_from(deliveries).unwrap_or(u32::MAX);
            if attempt > self.policy.max_deliveries {
                // Its workers kept dying before they could retry it.
                let reason = format!("abandoned by {} workers that stopped without acking", attempt - 1);
                self.change("UPDATE outbox SET state = 'dead', lease_until = NULL, last_error = ? WHERE id = ?", |b| {
                    b.bind(reason).bind(id);
                })
                .await?;
                tracing::warn!(%transaction_id, "queue entry dead-lettered: its workers kept stopping");
                continue;
            }
            return Ok(Some(Delivery { transaction_id, attempt, tag: format!("{id}:{deliveries}") }));
        }
    }
}

fn parse_tag(tag: &str) -> Result<(i64, i64), QueueError> {
    tag.split_once(':')
        .and_then(|(id, n)| Some((id.parse().ok()?, n.parse().ok()?)))
        .ok_or_else(|| QueueError::Lost(tag.to_string()))
}

fn stored(e: StoreError) -> QueueError {
    match e {
        StoreError::Unavailable(reason) => QueueError::Unavailable(reason),
        other => QueueError::Backend(other.to_string()),
    }
}

#[async_trait]
impl Queue for EmbeddedQueue {
    async fn receive(&self, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        let deadline = tokio::time::Instant::now() + wait;
        // A worker that just finished one likely finds another: no look first.
        let mut idle = false;
        loop {
            if (!idle || self.any_ready(now_ms()).await?)
                && let Some(delivery) = self.claim().await?
            {
                return Ok(Some(delivery));
            }
            idle = true;
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            tokio::time::sleep(POLL.min(deadline - now)).await;
        }
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        let (id, deliveries) = parse_tag(&delivery.tag)?;
        let delete = "DELETE FROM outbox WHERE id = ? AND deliveries = ? AND state = 'in_flight'";
        let held = self
            .change(delete, |b| {
                b.bind(id).bind(deliveries);
            })
            .await?;
        if held { Ok(()) } else { Err(QueueError::Lost(delivery.tag.clone())) }
    }

    async fn retry(&self, delivery: &Delivery, error: &str) -> Result<RetryOutcome, QueueError> {
        let (id, deliveries) = parse_tag(&delivery.tag)?;
        let dead = delivery.attempt >= self.policy.max_deliveries;
        let delay = self.policy.delay(delivery.attempt);
        let update = "UPDATE outbox SET state = ?, available_at = ?, lease_until = NULL, last_error = ?
             WHERE id = ? AND deliveries = ? AND state = 'in_flight'";
        let held = self
            .change(update, |b| {
                b.bind(if dead { "dead" } else { "queued" })
                    .bind(now_ms().saturating_add(delay.as_millis() as i64))
                    .bind(error)
                    .bind(id)
                    .bind(deliveries);
            })
            .await?;
        if !held {
            return Err(QueueError::Lost(delivery.tag.clone()));
        }
        Ok(if dead { RetryOutcome::DeadLettered } else { RetryOutcome::Requeued(delay) })
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let rows: Vec<(String, i64)> = sqlx::query_as("SELECT state, COUNT(*) FROM outbox GROUP BY state")
            .fetch_all(self.store.pool())
            .await
            .map_err(database)?;
        let mut stats = QueueStats::default();
        for (state, count) in rows {
            let count = count as u64;
            match state.as_str() {
                "queued" => stats.queued = count,
                "in_flight" => stats.in_flight = count,
                "dead" => stats.dead = count,
                other => return Err(QueueError::Backend(format!("unknown outbox state `{other}`"))),
            }
        }
        Ok(stats)
    }
}
