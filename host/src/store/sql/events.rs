//! [`EventStore`] on the SQL store. The status events the transaction
//! statements append in their own database transaction are in `batch`.

use async_trait::async_trait;
use sqlx::any::AnyRow;

use super::{SqlStore, db, from_i64, get, opt_text, text, to_i64};
use crate::store::{Event, EventKind, EventStore, StoreError, now_ms};

#[async_trait]
impl EventStore for SqlStore {
    async fn append_event(&self, kind: EventKind, relayer_id: Option<&str>, detail: &str) -> Result<(), StoreError> {
        sqlx::query(&self.backend.sql("INSERT INTO events (kind, relayer_id, detail, created_at) VALUES (?, ?, ?, ?)"))
            .bind(kind.as_str())
            .bind(relayer_id)
            .bind(detail)
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn events_after(&self, after: u64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(&self.backend.sql(
            "SELECT id, kind, transaction_id, relayer_id, status, detail, created_at FROM events
             WHERE id > ? ORDER BY id LIMIT ?",
        ))
        .bind(to_i64(after)?)
        .bind(i64::from(limit))
        .fetch_all(&self.reads)
        .await
        .map_err(db)?;
        rows.iter().map(event_from_row).collect()
    }

    async fn last_event_id(&self) -> Result<u64, StoreError> {
        let last: Option<i64> =
            sqlx::query_scalar("SELECT MAX(id) FROM events").fetch_one(&self.reads).await.map_err(db)?;
        from_i64(last.unwrap_or(0))
    }
}

fn event_from_row(row: &AnyRow) -> Result<Event, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("event: {e}"));
    Ok(Event {
        id: from_i64(get(row, "id")?)?,
        kind: text(row, "kind")?.parse().map_err(corrupt)?,
        transaction_id: opt_text(row, "transaction_id")?,
        relayer_id: opt_text(row, "relayer_id")?,
        status: opt_text(row, "status")?.map(|s| s.parse()).transpose().map_err(corrupt)?,
        detail: opt_text(row, "detail")?,
        created_at: get(row, "created_at")?,
    })
}
