//! [`KeyStore`] on the SQL store.

use async_trait::async_trait;
use sqlx::any::AnyRow;

use super::{SqlStore, db, from_json, get, json, opt_text, text};
use crate::access::Rate;
use crate::store::{ApiKey, KeyStore, StoreError};

const KEY_COLUMNS: &str =
    "id, name, secret_sha256, scopes, relayers, rate_per_second, rate_burst, created_at, revoked_at";

#[async_trait]
impl KeyStore for SqlStore {
    async fn insert_api_key(&self, key: &ApiKey, secret_sha256: &str) -> Result<(), StoreError> {
        let scopes = key.scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",");
        let relayers = key.relayers.as_ref().map(json).transpose()?;
        let sql = format!("INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
        sqlx::query(&self.backend.sql(&sql))
            .bind(&key.id)
            .bind(&key.name)
            .bind(secret_sha256)
            .bind(scopes)
            .bind(relayers)
            .bind(key.rate_limit.map(|r| r.per_second))
            .bind(key.rate_limit.map(|r| i64::from(r.burst)))
            .bind(key.created_at)
            .bind(key.revoked_at)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(())
    }

    async fn api_key(&self, id: &str) -> Result<Option<(ApiKey, String)>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = ?");
        let row = sqlx::query(&self.backend.sql(&sql)).bind(id).fetch_optional(&self.reads).await.map_err(db)?;
        row.map(|row| Ok((key_from_row(&row)?, text(&row, "secret_sha256")?))).transpose()
    }

    async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.reads).await.map_err(db)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn revoke_api_key(&self, id: &str, at: i64) -> Result<Option<ApiKey>, StoreError> {
        sqlx::query(&self.backend.sql("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL"))
            .bind(at)
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(db)?;
        Ok(self.api_key(id).await?.map(|(key, _)| key))
    }
}

fn key_from_row(row: &AnyRow) -> Result<ApiKey, StoreError> {
    let id = text(row, "id")?;
    let scopes = text(row, "scopes")?
        .split(',')
        .map(|s| s.parse().map_err(|e| StoreError::Corrupt(format!("api key {id}: scopes: {e}"))))
        .collect::<Result<_, _>>()?;
    Ok(ApiKey {
        name: text(row, "name")?,
        scopes,
        relayers: opt_text(row, "relayers")?.map(|r| from_json(&r, "relayers")).transpose()?,
        rate_limit: match (get::<Option<f64>>(row, "rate_per_second")?, get::<Option<i64>>(row, "rate_burst")?) {
            (Some(per_second), Some(burst)) => Some(Rate {
                per_second,
                burst: u32::try_from(burst).map_err(|_| StoreError::Corrupt(format!("api key {id}: rate_burst")))?,
            }),
            _ => None,
        },
        created_at: get(row, "created_at")?,
        revoked_at: get(row, "revoked_at")?,
        id,
    })
}
