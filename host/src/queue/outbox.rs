//! The transactional outbox, relayed to a broker. The API writes a
//! transaction and its outbox row in one database transaction and never
//! talks to the broker, so it keeps accepting while the broker is down. A
//! relay task publishes the rows in id order, waits for the broker's
//! confirms, then deletes them: a crash in between publishes a row twice,
//! which the worker absorbs (it is idempotent by transaction id); a row is
//! never deleted unpublished. Replicas sharing the database take turns on
//! the rows' locks (`FOR UPDATE`, not `SKIP LOCKED`: turns keep the order).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::AnyPool;

use super::{Broker, Delivery, Queue, QueueError, QueueStats, RetryOutcome, database};
use crate::store::sql::{Backend, SqlStore};

/// How often an idle relay looks for new rows.
const POLL: Duration = Duration::from_millis(25);
/// Rows published per round trip.
const BATCH: i64 = 100;
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A broker that takes longer to confirm counts as down: the round's rows
/// stay locked meanwhile (on SQLite, the whole database).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);

/// A broker fed by the outbox relay: workers consume the broker; `stats`
/// counts rows not yet published as queued.
#[derive(Debug)]
pub struct Brokered {
    outbox: Arc<Outbox>,
    relay: tokio::task::JoinHandle<()>,
}

#[derive(Debug)]
struct Outbox {
    pool: AnyPool,
    backend: Backend,
    broker: Arc<dyn Broker>,
    /// Held across a publish-and-delete round so that `stats` never sees a
    /// row both in the outbox and on the broker.
    round: tokio::sync::Mutex<()>,
}

impl Brokered {
    /// Starts relaying the store's outbox to `broker`.
    pub fn start(store: &SqlStore, broker: Arc<dyn Broker>) -> Self {
        let outbox = Arc::new(Outbox {
            pool: store.pool().clone(),
            backend: store.backend(),
            broker,
            round: Default::default(),
        });
        let relay = tokio::spawn(outbox.clone().relay());
        Brokered { outbox, relay }
    }
}

impl Drop for Brokered {
    fn drop(&mut self) {
        self.relay.abort();
    }
}

impl Outbox {
    async fn relay(self: Arc<Self>) {
        let mut backoff = POLL;
        let mut failing = false;
        loop {
            match self.publish_round().await {
                Ok(published) => {
                    if failing {
                        tracing::info!("outbox relay resumed: the broker and database answer again");
                        failing = false;
                    }
                    backoff = POLL;
                    if published == 0 {
                        tokio::time::sleep(POLL).await;
                    }
                }
                Err(error) => {
                    if !failing {
                        tracing::warn!(%error, "outbox relay paused; the API keeps accepting into the outbox");
                        failing = true;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Publishes the oldest rows and deletes them; how many it published.
    async fn publish_round(&self) -> Result<usize, QueueError> {
        let _round = self.round.lock().await;
        // SQLite takes its write lock up front: a deferred transaction that
        // read before another writer committed could not delete after.
        let (lock, begin) = match self.backend {
            Backend::Sqlite => ("", self.pool.begin_with("BEGIN IMMEDIATE").await),
            Backend::Postgres | Backend::MySql => (" FOR UPDATE", self.pool.begin().await),
        };
        // `in_flight` rows were claimed by an embedded queue before the
        // switch to a broker; their lease means nothing here.
        let select = format!(
            "SELECT id, transaction_id FROM outbox WHERE state IN ('queued', 'in_flight') ORDER BY id LIMIT {BATCH}{lock}"
        );
        let mut dbtx = begin.map_err(database)?;
        let rows: Vec<(i64, String)> = sqlx::query_as(&select).fetch_all(&mut *dbtx).await.map_err(database)?;
        if rows.is_empty() {
            dbtx.commit().await.map_err(database)?;
            return Ok(0);
        }
        let ids: Vec<String> = rows.iter().map(|(_, id)| id.clone()).collect();
        // Dropping `dbtx` on error rolls back: the rows stay for the next round.
        tokio::time::timeout(PUBLISH_TIMEOUT, self.broker.publish(&ids))
            .await
            .map_err(|_| QueueError::Unavailable(format!("the broker did not confirm within {PUBLISH_TIMEOUT:?}")))??;
        let placeholders = vec!["?"; rows.len()].join(", ");
        let delete = self.backend.sql(&format!("DELETE FROM outbox WHERE id IN ({placeholders})")).into_owned();
        let mut query = sqlx::query(&delete);
        for (row, _) in &rows {
            query = query.bind(*row);
        }
        query.execute(&mut *dbtx).await.map_err(database)?;
        dbtx.commit().await.map_err(database)?;
        Ok(rows.len())
    }

    async fn unpublished(&self) -> Result<u64, QueueError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE state IN ('queued', 'in_flight')")
            .fetch_one(&self.pool)
            .await
            .map_err(database)?;
        Ok(count as u64)
    }
}

#[async_trait]
impl Queue for Brokered {
    async fn receive(&self, wait: Duration) -> Result<Option<Delivery>, QueueError> {
        self.outbox.broker.receive(wait).await
    }

    async fn ack(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.outbox.broker.ack(delivery).await
    }

    async fn retry(&self, delivery: &Delivery, error: &str) -> Result<RetryOutcome, QueueError> {
        self.outbox.broker.retry(delivery, error).await
    }

    async fn stats(&self) -> Result<QueueStats, QueueError> {
        let _round = self.outbox.round.lock().await;
        let mut stats = self.outbox.broker.stats().await?;
        stats.queued += self.outbox.unpublished().await?;
        Ok(stats)
    }

    async fn close(&self) {
        // Between rounds: a round cut short would publish its rows again.
        let _round = self.outbox.round.lock().await;
        self.relay.abort();
        self.outbox.broker.close().await;
    }
}
