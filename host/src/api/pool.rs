//! Switchyard's own endpoints: submit to the pool (the selector plugin
//! chooses the relayer), read a transaction with its decision trail, cancel
//! it, and the queue's counts.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::oz::submission;
use super::wire::{Envelope, MetaTransactionBody, PoolTransaction, TransactionBody};
use super::{ApiError, AppState};
use crate::queue::QueueStats;
use crate::store::Transaction;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/transactions", post(submit))
        .route("/api/v1/transactions/{transaction_id}", get(transaction).delete(cancel))
        .route("/api/v1/meta-transactions", post(submit_gasless))
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

/// A gasless meta-transaction (ERC-2771): verified, judged by the policy
/// plugin on its inner call, and relayed as the forwarder's `execute`
/// through the relayer the selector chooses.
async fn submit_gasless(
    State(state): State<AppState>,
    body: Result<Json<MetaTransactionBody>, JsonRejection>,
) -> Result<Json<Envelope<PoolTransaction>>, ApiError> {
    let Json(body) = body?;
    let tx = state.relay.submit_gasless(body.parse()?, None).await?;
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

/// Cancels the transaction: at once if it has no nonce yet, else by a
/// no-op at its nonce (canceled once that is mined).
async fn cancel(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<PoolTransaction>>, ApiError> {
    let Path(id) = path?;
    let tx = state.relay.cancel(&id).await?;
    Ok(Json(Envelope::ok(view(&state, &tx))))
}

async fn queue_stats(State(state): State<AppState>) -> Result<Json<Envelope<QueueStats>>, ApiError> {
    let stats = state.relay.queue.stats().await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(Envelope::ok(stats)))
}
