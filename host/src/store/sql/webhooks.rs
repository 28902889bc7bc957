//! [`WebhookStore`] on the SQL store.

use async_trait::async_trait;
use sqlx::any::AnyRow;

use super::{SqlStore, db, from_i64, get, opt_text, text, to_i64};
use crate::store::{DeadLetter, EventKind, Progress, StoreError, Webhook, WebhookStore, now_ms};

const WEBHOOK_COLUMNS: &str = "id, url, secret, kinds, delivered_through, failures, retry_at, last_error, created_at";

#[async_trait]
impl WebhookStore for SqlStore {
    async fn insert_webhook(&self, webhook: &Webhook) -> Result<(), StoreError> {
        let kinds = webhook.kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(",");
        let sql = format!("INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
        sqlx::query(&self.backend.sql(&sql))
            .bind(&webhook.id)
            .bind(&webhook.url)
            .bind(&webhook.secret)
            .bind(kinds)
            .bind(to_i64(webhook.delivered_through)?)
            .bind(i64::from(webhook.failures))
            .bind(webhook.retry_at)
            .bind(webhook.last_error.clone())
            .bind(webhook.created_at)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let sql = format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.reads).await.map_err(db)?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn delete_webhook(&self, id: &str) -> Result<bool, StoreError> {
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        let deleted = sqlx::query(&self.backend.sql("DELETE FROM webhooks WHERE id = ?"))
            .bind(id)
            .execute(&mut *dbtx)
            .await
            .map_err(db)?;
        sqlx::query(&self.backend.sql("DELETE FROM webhook_dead_letters WHERE webhook_id = ?"))
            .bind(id)
            .execute(&mut *dbtx)
            .await
            .map_err(db)?;
        dbtx.commit().await.map_err(db)?;
        Ok(deleted.rows_affected() > 0)
    }

    async fn lease_webhook(&self, id: &str, owner: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        let leased = sqlx::query(&self.backend.sql(
            "UPDATE webhooks SET lease_owner = ?, lease_until = ?
             WHERE id = ? AND (lease_until < ? OR lease_owner = ?)",
        ))
        .bind(owner)
        .bind(until)
        .bind(id)
        .bind(now)
        .bind(owner)
        .execute(&self.pool)
        .await
        .map_err(db)?;
        Ok(leased.rows_affected() > 0)
    }

    async fn record_progress(&self, id: &str, owner: &str, progress: &Progress) -> Result<(), StoreError> {
        let mut dbtx = self.pool.begin().await.map_err(db)?;
        let (through, failures, retry_at, error) = match progress {
            Progress::Through(event_id) | Progress::GaveUp { event_id, .. } => (Some(*event_id), 0, 0, None),
            Progress::Failed { failures, retry_at, error } => (None, *failures, *retry_at, Some(error.as_str())),
        };
        let updated = sqlx::query(&self.backend.sql(
            "UPDATE webhooks SET delivered_through = COALESCE(?, delivered_through), failures = ?, retry_at = ?,
                 last_error = ?
             WHERE id = ? AND lease_owner = ?",
        ))
        .bind(through.map(to_i64).transpose()?)
        .bind(i64::from(failures))
        .bind(retry_at)
        .bind(error)
        .bind(id)
        .bind(owner)
        .execute(&mut *dbtx)
        .await
        .map_err(db)?;
        if let Progress::GaveUp { event_id, attempts, error } = progress
            && updated.rows_affected() > 0
        {
            sqlx::query(&self.backend.sql(
                "INSERT INTO webhook_dead_letters (webhook_id, event_id, attempts, last_error, created_at)
                 VALUES (?, ?, ?, ?, ?)",
            ))
            .bind(id)
            .bind(to_i64(*event_id)?)
            .bind(i64::from(*attempts))
            .bind(error)
            .bind(now_ms())
            .execute(&mut *dbtx)
            .await
            .map_err(db)?;
        }
        dbtx.commit().await.map_err(db)
    }

    async fn dead_letters(&self, webhook_id: &str) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(&self.backend.sql(
            "SELECT webhook_id, event_id, attempts, last_error, created_at FROM webhook_dead_letters
             WHERE webhook_id = ? ORDER BY event_id",
        ))
        .bind(webhook_id)
        .fetch_all(&self.reads)
        .await
        .map_err(db)?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetter {
                    webhook_id: text(row, "webhook_id")?,
                    event_id: from_i64(get(row, "event_id")?)?,
                    attempts: u32::try_from(get::<i64>(row, "attempts")?).unwrap_or(u32::MAX),
                    last_error: text(row, "last_error")?,
                    created_at: get(row, "created_at")?,
                })
            })
            .collect()
    }
}

fn webhook_from_row(row: &AnyRow) -> Result<Webhook, StoreError> {
    let kinds = text(row, "kinds")?;
    Ok(Webhook {
        id: text(row, "id")?,
        url: text(row, "url")?,
        secret: text(row, "secret")?,
        kinds: kinds
            .split(',')
            .filter(|k| !k.is_empty())
            .map(|k| k.parse::<EventKind>().map_err(|e| StoreError::Corrupt(format!("webhook kinds: {e}"))))
            .collect::<Result<_, _>>()?,
        delivered_through: from_i64(get(row, "delivered_through")?)?,
        failures: u32::try_from(get::<i64>(row, "failures")?).unwrap_or(u32::MAX),
        retry_at: get(row, "retry_at")?,
        last_error: opt_text(row, "last_error")?,
        created_at: get(row, "created_at")?,
    })
}
