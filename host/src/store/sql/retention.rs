//! Retention on the SQL store. Rows are deleted a chunk at a time, so a
//! first prune of a long history never holds SQLite's one writer (or a
//! server's locks) for long.

use super::{SqlStore, db};
use crate::store::{PruneBefore, Pruned, StoreError};

/// Rows one DELETE takes at most (ties at its boundary aside).
const CHUNK: i64 = 5_000;

impl SqlStore {
    pub(super) async fn prune_old(&self, before: PruneBefore) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        if let Some(before) = before.idempotency_keys {
            pruned.idempotency_keys =
                self.delete_oldest("idempotency_keys", "created_at", "created_at < ?", &[before]).await?;
        }
        if let Some(before) = before.events {
            // A subscription reads the log from where it stopped: what one
            // has not handled yet stays, however old.
            let handled: Option<i64> = sqlx::query_scalar("SELECT MIN(delivered_through) FROM webhooks")
                .fetch_one(&self.reads)
                .await
                .map_err(db)?;
            let values = [before, handled.unwrap_or(i64::MAX)];
            pruned.events = self.delete_oldest("events", "id", "created_at < ? AND id <= ?", &values).await?;
        }
        Ok(pruned)
    }

    /// Deletes the rows of `table` matching `condition` (its `?` bound to
    /// `values`), oldest by `column` first, `CHUNK` per statement.
    async fn delete_oldest(
        &self,
        table: &str,
        column: &str,
        condition: &str,
        values: &[i64],
    ) -> Result<u64, StoreError> {
        let nth = self
            .backend
            .sql(&format!(
                "SELECT {column} FROM {table} WHERE {condition} ORDER BY {column} LIMIT 1 OFFSET {}",
                CHUNK - 1
            ))
            .into_owned();
        let through =
            self.backend.sql(&format!("DELETE FROM {table} WHERE {condition} AND {column} <= ?")).into_owned();
        let rest = self.backend.sql(&format!("DELETE FROM {table} WHERE {condition}")).into_owned();
        let mut deleted = 0;
        loop {
            let mut find = sqlx::query_scalar::<_, i64>(&nth);
            for value in values {
                find = find.bind(*value);
            }
            let Some(last) = find.fetch_optional(&self.reads).await.map_err(db)? else { break };
            let mut chunk = sqlx::query(&through);
            for value in values {
                chunk = chunk.bind(*value);
            }
            deleted += chunk.bind(last).execute(&self.pool).await.map_err(db)?.rows_affected();
        }
        let mut last_chunk = sqlx::query(&rest);
        for value in values {
            last_chunk = last_chunk.bind(*value);
        }
        Ok(deleted + last_chunk.execute(&self.pool).await.map_err(db)?.rows_affected())
    }
}
