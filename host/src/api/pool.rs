//! Switchyard's own endpoints: submit to the pool (the selector plugin
//! chooses the relayer), read a transaction with its decision trail, and the
//! queue's counts.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::oz::submission;
use super::wire::{Envelope, PoolTransaction, TransactionBody};
use super::{ApiError, AppState};
use crate::queue::QueueStats;
use crate::store::Transaction;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/transactions", post(submit))
        .route("/api/v1/transactions/{transaction_id}", get(transaction))
        .route("/api/v1/queue/stats", get(queue_stats))
}

fn view(state: &AppState, tx: &Transaction) -> PoolTransaction {
    PoolTransaction::new(tx, super::sender(state, tx))
}

async fn submit(
    State(state): State<AppState>,
    body: Result<Json<TransactionBody>, JsonRejection>,
) -> Result<Json<Envelope<PoolTransaction>>, ApiError> {
    let Json(body) = body?;
    let tx = state.relay.submit(submission(body, None)?).await?;
    Ok(Json(Envelope::ok(view(&state, &tx))))
}

async fn transaction(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<PoolTransaction>>, ApiError> {
    let Path(id) = path?;
    let tx = state.relay.store.get(&id).await?;
    let tx = tx.ok_or_else(|| ApiError::not_found(format!("Transaction with ID {id} not found")))?;
    Ok(Json(Envelope::ok(view(&state, &tx))))
}

async fn queue_stats(State(state): State<AppState>) -> Result<Json<Envelope<QueueStats>>, ApiError> {
    let stats = state.relay.queue.stats().await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(Envelope::ok(stats)))
}
