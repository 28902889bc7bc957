//! Switchyard's own endpoints: submit to the pool (the selector plugin
//! chooses the relayer), read a transaction with its decision trail, cancel
//! it, and the queue's counts.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{BodyFailures, CommonFailures, KeyFailures};
use super::oz::submission;
use super::wire::{Envelope, MetaTransactionBody, PoolTransaction, TransactionBody};
use super::{ApiError, AppState, IdempotencyKey, IdempotencyKeyHeader};
use crate::access::Caller;
use crate::queue::QueueStats;
use crate::store::Transaction;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit))
        .routes(routes!(transaction, cancel))
        .routes(routes!(submit_gasless))
        .routes(routes!(queue_stats))
}

const TAG: &str = "Pool";

fn view(state: &AppState, tx: &Transaction) -> PoolTransaction {
    PoolTransaction::new(tx, super::sender(state, tx))
}

#[utoipa::path(
    post,
    path = "/api/v1/transactions",
    operation_id = "submitToPool",
    tag = TAG,
    params(IdempotencyKeyHeader),
    request_body = TransactionBody,
    security(("bearer_auth" = ["submit"])),
    responses((status = 200, description = "Accepted and queued; the selector plugin chooses the relayer", body = Envelope<PoolTransaction>), CommonFailures, KeyFailures, BodyFailures)
)]
async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    idempotency: IdempotencyKey,
    body: Result<Json<TransactionBody>, JsonRejection>,
) -> Result<Json<Envelope<PoolTransaction>>, ApiError> {
    let Json(body) = body?;
    let tx = state.relay.submit(submission(body, None, &caller, idempotency)?).await?;
    Ok(Json(Envelope::ok(view(&state, &tx))))
}

/// A gasless meta-transaction (ERC-2771): verified, judged by the policy
/// plugin on its inner call, and relayed as the forwarder's `execute`
/// through the relayer the selector chooses.
#[utoipa::path(
    post,
    path = "/api/v1/meta-transactions",
    operation_id = "submitMetaTransaction",
    tag = TAG,
    params(IdempotencyKeyHeader),
    request_body = MetaTransactionBody,
    security(("bearer_auth" = ["submit"])),
    responses((status = 200, description = "Verified, accepted and queued", body = Envelope<PoolTransaction>), CommonFailures, KeyFailures, BodyFailures)
)]
async fn submit_gasless(
    State(state): State<AppState>,
    caller: Caller,
    IdempotencyKey(idempotency_key): IdempotencyKey,
    body: Result<Json<MetaTransactionBody>, JsonRejection>,
) -> Result<Json<Envelope<PoolTransaction>>, ApiError> {
    let Json(body) = body?;
    let tx = state.relay.submit_gasless(body.parse(&caller.key_id)?, None, idempotency_key).await?;
    Ok(Json(Envelope::ok(view(&state, &tx))))
}

#[utoipa::path(
    get,
    path = "/api/v1/transactions/{transaction_id}",
    operation_id = "getPoolTransaction",
    tag = TAG,
    params(("transaction_id" = String, Path, description = "The transaction's id")),
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "The transaction with its decisions and attempts", body = Envelope<PoolTransaction>), CommonFailures, KeyFailures)
)]
async fn transaction(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<PoolTransaction>>, ApiError> {
    let Path(id) = path?;
    let tx = stored(&state, &caller, &id).await?;
    Ok(Json(Envelope::ok(view(&state, &tx))))
}

/// Cancels the transaction: at once if it has no nonce yet, else by a
/// no-op at its nonce (canceled once that is mined).
#[utoipa::path(
    delete,
    path = "/api/v1/transactions/{transaction_id}",
    operation_id = "cancelPoolTransaction",
    tag = TAG,
    params(("transaction_id" = String, Path, description = "The transaction's id")),
    security(("bearer_auth" = ["submit"])),
    responses((status = 200, description = "Canceled, or a no-op queued at its nonce", body = Envelope<PoolTransaction>), CommonFailures, KeyFailures, BodyFailures)
)]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<PoolTransaction>>, ApiError> {
    let Path(id) = path?;
    stored(&state, &caller, &id).await?;
    let tx = state.relay.cancel(&id).await?;
    Ok(Json(Envelope::ok(view(&state, &tx))))
}

/// The transaction, if the caller may use its relayer.
async fn stored(state: &AppState, caller: &Caller, id: &str) -> Result<Transaction, ApiError> {
    let tx = state.relay.store.get(id).await?;
    let tx = tx.ok_or_else(|| ApiError::not_found(format!("Transaction with ID {id} not found")))?;
    if let Some(relayer) = &tx.relayer_id {
        caller.check_relayer(relayer)?;
    }
    Ok(tx)
}

#[utoipa::path(
    get,
    path = "/api/v1/queue/stats",
    operation_id = "queueStats",
    tag = TAG,
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "The queue's counts", body = Envelope<QueueStats>), CommonFailures, KeyFailures)
)]
async fn queue_stats(State(state): State<AppState>) -> Result<Json<Envelope<QueueStats>>, ApiError> {
    let stats = state.relay.queue.stats().await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(Envelope::ok(stats)))
}
