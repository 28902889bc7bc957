//! OpenZeppelin Relayer v1's EVM endpoints, with its paths and encodings.

use alloy_primitives::{B256, Signature, keccak256};
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{BodyFailures, CommonFailures, KeyFailures};
use super::wire::{Envelope, OzTransaction, Pagination, TransactionBody};
use super::{ApiError, AppState, IdempotencyKey, PageQuery};
use crate::access::Caller;
use crate::pipeline::Submission;
use crate::plugins::TxRequest;
use crate::relayers::Relayer;
use crate::store::{Transaction, now_ms};

/// Health and readiness: no API key, for load balancers and probes.
pub(super) fn open_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(ready))
}

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_relayers))
        .routes(routes!(get_relayer))
        .routes(routes!(relayer_status))
        .routes(routes!(relayer_balance))
        .routes(routes!(sign))
        .routes(routes!(sign_typed_data))
        .routes(routes!(send_transaction, list_transactions_without_slash))
        .routes(routes!(list_transactions))
        .routes(routes!(transaction_by_nonce))
        .routes(routes!(cancel_all_pending))
        .routes(routes!(get_transaction, replace_transaction, cancel_transaction))
}

/// OpenZeppelin Relayer's tag for these endpoints.
const TAG: &str = "Relayers";

type Answer<T> = Result<Json<Envelope<T>>, ApiError>;

#[utoipa::path(get, path = "/api/v1/health", operation_id = "health", tag = "Health", security(),
    responses((status = 200, description = "The process is up", body = String, content_type = "text/plain")))]
async fn health() -> &'static str {
    "OK"
}

#[derive(Debug, Serialize, ToSchema)]
struct Readiness {
    ready: bool,
    status: &'static str,
    reason: Option<String>,
    /// `system`, `redis`, `queue`, `database` and `chain`, each with a
    /// `status`.
    #[schema(value_type = Object)]
    components: serde_json::Value,
    timestamp: String,
}

/// Ready when the store, the queue and the chain answer; a configured
/// Redis that does not answer shows as unhealthy.
#[utoipa::path(get, path = "/api/v1/ready", operation_id = "readiness", tag = "Health", security(),
    responses((status = 200, description = "The store, the queue and the chain answer", body = Readiness),
              (status = 503, description = "A dependency does not answer; `reason` says which", body = Readiness)))]
async fn ready(State(state): State<AppState>) -> Response {
    let relay = &state.relay;
    let store = relay.store.ping().await.err().map(|e| e.to_string());
    let queue = relay.queue.stats().await.err().map(|e| e.to_string());
    let head = relay.chain.block_number().await;
    let checkpoint = relay.store.checkpoint(relay.chain.chain_id()).await.ok().flatten();
    let chain = head.as_ref().err().map(|e| e.to_string());
    let redis = relay.pool.cache().ping().await;
    let redis_error = redis.as_ref().and_then(|answer| answer.as_ref().err().map(|e| e.to_string()));
    // Without Redis the relay checks the chain itself: shown, not fatal.
    let problems: Vec<String> = [&store, &queue, &chain].into_iter().flatten().cloned().collect();
    let ready = problems.is_empty();
    let component = |error: Option<String>| match error {
        None => serde_json::json!({ "status": "healthy" }),
        Some(error) => serde_json::json!({ "status": "unhealthy", "error": error }),
    };
    let unused_pool = serde_json::json!({ "connected": false, "available": 0, "max_size": 0, "error": "not used" });
    let redis = match (&redis, redis_error) {
        (None, _) => serde_json::json!({ "status": "healthy", "primary_pool": unused_pool, "reader_pool": unused_pool,
                                          "error": "no redis_url: the relayer health cache is in-process" }),
        (Some(_), None) => serde_json::json!({ "status": "healthy", "primary_pool": { "connected": true } }),
        (Some(_), Some(error)) => serde_json::json!({ "status": "unhealthy", "error": error }),
    };
    let mut chain_component = component(chain);
    chain_component["endpoint"] = relay.chain.active_endpoint().into();
    chain_component["head"] = head.ok().into();
    chain_component["checkpoint"] = checkpoint.map(|c| c.block.number).into();
    chain_component["blocks_scanned"] = relay.blocks_scanned().into();
    let body = Readiness {
        ready,
        status: if ready { "healthy" } else { "unhealthy" },
        reason: (!ready).then(|| problems.join("; ")),
        components: serde_json::json!({
            "system": system_health(),
            "redis": redis,
            "queue": component(queue),
            "database": component(store),
            "chain": chain_component,
        }),
        timestamp: super::wire::time(now_ms()),
    };
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// File descriptors in use against the soft limit, from /proc (Linux): a
/// relay that runs out of descriptors stops taking connections.
fn system_health() -> serde_json::Value {
    let fd_count = std::fs::read_dir("/proc/self/fd").map(|dir| dir.count()).unwrap_or(0);
    let fd_limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<usize>().ok()
        })
        .unwrap_or(0);
    let percent = (fd_count * 100).checked_div(fd_limit).unwrap_or(0);
    let status = match percent {
        0..80 => "healthy",
        80..95 => "degraded",
        _ => "unhealthy",
    };
    // TCP sockets in CLOSE_WAIT (state 08): peers gone, not yet closed here.
    let close_wait: usize = ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .map(|table| table.lines().skip(1).filter(|l| l.split_whitespace().nth(3) == Some("08")).count())
        .sum();
    serde_json::json!({
        "status": status, "fd_count": fd_count, "fd_limit": fd_limit, "fd_usage_percent": percent,
        "close_wait_count": close_wait,
    })
}

#[derive(Debug, Serialize, ToSchema)]
struct RelayerView {
    id: String,
    name: String,
    network: String,
    network_type: &'static str,
    paused: bool,
    signer_id: String,
    address: String,
    system_disabled: bool,
    disabled_reason: Option<String>,
    #[schema(value_type = Option<Object>)]
    policies: Option<()>,
    notification_id: Option<String>,
    custom_rpc_urls: Option<Vec<String>>,
}

fn relayer_view(state: &AppState, relayer: &Relayer) -> RelayerView {
    let health = relayer.stats().health;
    RelayerView {
        id: relayer.id.clone(),
        name: relayer.name.clone(),
        network: state.network.to_string(),
        network_type: "evm",
        paused: relayer.paused,
        signer_id: relayer.id.clone(),
        address: relayer.address.to_string(),
        system_disabled: !health.state.is_offered(),
        disabled_reason: (!health.state.is_offered()).then(|| health.reasons.join("; ")),
        policies: None,
        notification_id: None,
        custom_rpc_urls: None,
    }
}

pub(super) fn relayer<'a>(state: &'a AppState, id: &str) -> Result<&'a Relayer, ApiError> {
    state.relay.pool.get(id).ok_or_else(|| ApiError::not_found(format!("Relayer with ID {id} not found")))
}

#[utoipa::path(
    get,
    path = "/api/v1/relayers",
    operation_id = "listRelayers",
    tag = TAG,
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "Every relayer of the pool", body = Envelope<Vec<RelayerView>>), CommonFailures, KeyFailures)
)]
async fn list_relayers(State(state): State<AppState>, caller: Caller) -> Answer<Vec<RelayerView>> {
    let relayers: Vec<_> =
        state.relay.pool.iter().filter(|r| caller.may_use(&r.id)).map(|r| relayer_view(&state, r)).collect();
    let total = relayers.len() as u64;
    let mut envelope = Envelope::ok(relayers);
    envelope.pagination = Some(Pagination { current_page: 1, per_page: total.max(1) as u32, total_items: total });
    Ok(Json(envelope))
}

#[utoipa::path(
    get,
    path = "/api/v1/relayers/{relayer_id}",
    operation_id = "getRelayer",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id")),
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "The relayer", body = Envelope<RelayerView>), CommonFailures, KeyFailures)
)]
async fn get_relayer(State(state): State<AppState>, path: Result<Path<String>, PathRejection>) -> Answer<RelayerView> {
    let Path(id) = path?;
    Ok(Json(Envelope::ok(relayer_view(&state, relayer(&state, &id)?))))
}

#[derive(Debug, Serialize, ToSchema)]
struct RelayerStatus {
    network_type: &'static str,
    balance: String,
    pending_transactions_count: u64,
    last_confirmed_transaction_timestamp: Option<String>,
    system_disabled: bool,
    paused: bool,
    nonce: String,
    /// Switchyard's health check: `healthy`, `degraded` or `disabled`
    /// (`unchecked` before the first), with why.
    health: crate::relayers::health::HealthState,
    health_reasons: Vec<String>,
    low_balance: bool,
    min_balance: String,
    /// Of the recent sends, in basis points.
    success_rate_bps: u32,
    latency_ms: u32,
    checked_at: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/v1/relayers/{relayer_id}/status",
    operation_id = "getRelayerStatus",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id")),
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "Its balance, nonce, pending count and health", body = Envelope<RelayerStatus>), CommonFailures, KeyFailures)
)]
async fn relayer_status(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Answer<RelayerStatus> {
    let Path(id) = path?;
    let relayer = relayer(&state, &id)?;
    let chain = &state.relay.chain;
    let stats = relayer.stats();
    // Fresh from the chain when it answers; else as last checked.
    let balance = chain.balance(relayer.address).await.unwrap_or(stats.balance);
    let nonce = chain.pending_nonce(relayer.address).await.unwrap_or(stats.nonce);
    let counts = state.relay.store.relayer_counts(&id).await?;
    Ok(Json(Envelope::ok(RelayerStatus {
        network_type: "evm",
        balance: balance.to_string(),
        pending_transactions_count: counts.pending,
        last_confirmed_transaction_timestamp: counts.last_confirmed_at.map(super::wire::time),
        system_disabled: !stats.is_offered(),
        paused: relayer.paused,
        nonce: nonce.to_string(),
        health: stats.health.state,
        health_reasons: stats.health.reasons.clone(),
        low_balance: stats.health.low_balance,
        min_balance: state.relay.settings.health.min_balance.to_string(),
        success_rate_bps: stats.success_rate_bps(),
        latency_ms: stats.latency_ms,
        checked_at: stats.checked_at_ms.map(super::wire::time),
    })))
}

#[derive(Debug, Serialize, ToSchema)]
struct Balance {
    /// A JSON number however large: the spec says integer.
    #[schema(schema_with = whole_number)]
    balance: Box<RawValue>,
    unit: &'static str,
}

fn whole_number() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::Type::Integer).minimum(Some(0)).build()
}

#[utoipa::path(
    get,
    path = "/api/v1/relayers/{relayer_id}/balance",
    operation_id = "getRelayerBalance",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id")),
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "Its balance, fresh from the chain", body = Envelope<Balance>), CommonFailures, KeyFailures)
)]
async fn relayer_balance(State(state): State<AppState>, path: Result<Path<String>, PathRejection>) -> Answer<Balance> {
    let Path(id) = path?;
    let relayer = relayer(&state, &id)?;
    let balance = state.relay.chain.balance(relayer.address).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let balance = RawValue::from_string(balance.to_string()).map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(Envelope::ok(Balance { balance, unit: "wei" })))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignBody {
    message: String,
}

#[derive(Debug, Serialize, ToSchema)]
struct SignatureView {
    r: String,
    s: String,
    v: u8,
    sig: String,
}

impl From<Signature> for SignatureView {
    fn from(signature: Signature) -> Self {
        let bytes = signature.as_bytes();
        SignatureView {
            r: hex::encode(&bytes[..32]),
            s: hex::encode(&bytes[32..64]),
            v: bytes[64],
            sig: hex::encode(bytes),
        }
    }
}

/// EIP-191 over the UTF-8 bytes of `message`.
#[utoipa::path(
    post,
    path = "/api/v1/relayers/{relayer_id}/sign",
    operation_id = "sign",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id")),
    request_body = SignBody,
    security(("bearer_auth" = ["relayers"])),
    responses((status = 200, description = "The EIP-191 signature", body = Envelope<SignatureView>), CommonFailures, KeyFailures, BodyFailures)
)]
async fn sign(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<SignBody>, JsonRejection>,
) -> Answer<SignatureView> {
    let Path(id) = path?;
    let Json(body) = body?;
    let signature = relayer(&state, &id)?.sign_message(body.message.as_bytes())?;
    Ok(Json(Envelope::ok(signature.into())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignTypedDataBody {
    domain_separator: String,
    hash_struct_message: String,
}

/// EIP-712: signs `keccak256(0x1901 ‖ domain separator ‖ struct hash)`.
#[utoipa::path(
    post,
    path = "/api/v1/relayers/{relayer_id}/sign-typed-data",
    operation_id = "signTypedData",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id")),
    request_body = SignTypedDataBody,
    security(("bearer_auth" = ["relayers"])),
    responses((status = 200, description = "The EIP-712 signature", body = Envelope<SignatureView>), CommonFailures, KeyFailures, BodyFailures)
)]
async fn sign_typed_data(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<SignTypedDataBody>, JsonRejection>,
) -> Answer<SignatureView> {
    let Path(id) = path?;
    let Json(body) = body?;
    let word = |name: &str, text: &str| -> Result<B256, ApiError> {
        let text = text.trim();
        text.strip_prefix("0x")
            .unwrap_or(text)
            .parse::<B256>()
            .map_err(|_| ApiError::bad_request(format!("`{name}` must be 32 bytes of hex")))
    };
    let domain = word("domain_separator", &body.domain_separator)?;
    let message = word("hash_struct_message", &body.hash_struct_message)?;
    let mut preimage = Vec::with_capacity(66);
    preimage.extend_from_slice(&[0x19, 0x01]);
    preimage.extend_from_slice(domain.as_slice());
    preimage.extend_from_slice(message.as_slice());
    let signature = relayer(&state, &id)?.sign_hash(&keccak256(&preimage))?;
    Ok(Json(Envelope::ok(signature.into())))
}

fn oz_view(state: &AppState, tx: &Transaction) -> OzTransaction {
    OzTransaction::new(tx, super::sender(state, tx))
}

/// Builds the pipeline's request from a body, for this relayer or the pool.
pub(super) fn submission(
    body: TransactionBody,
    relayer_id: Option<String>,
    caller: &Caller,
    IdempotencyKey(idempotency_key): IdempotencyKey,
) -> Result<Submission, ApiError> {
    let body = body.parse()?;
    let request = TxRequest {
        id: crate::store::new_transaction_id(),
        chain_id: 0,
        to: body.to,
        value: body.value,
        data: body.data,
        gas_limit: body.gas_limit,
        speed: body.speed,
        api_key_id: caller.key_id.to_string(),
        hints: body.hints,
    };
    Ok(Submission { request, relayer_id, valid_until: body.valid_until, idempotency_key })
}

#[utoipa::path(
    post,
    path = "/api/v1/relayers/{relayer_id}/transactions",
    operation_id = "sendTransaction",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id"), super::IdempotencyKeyHeader),
    request_body = TransactionBody,
    security(("bearer_auth" = ["submit"])),
    responses((status = 200, description = "Accepted and queued", body = Envelope<OzTransaction>), CommonFailures, KeyFailures, BodyFailures)
)]
async fn send_transaction(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    caller: Caller,
    idempotency: IdempotencyKey,
    body: Result<Json<TransactionBody>, JsonRejection>,
) -> Answer<OzTransaction> {
    let Path(id) = path?;
    let Json(body) = body?;
    relayer(&state, &id)?;
    if !body.hints.is_empty() {
        return Err(ApiError::unprocessable("`hints` are for the pool endpoint, POST /api/v1/transactions"));
    }
    let tx = state.relay.submit(submission(body, Some(id), &caller, idempotency)?).await?;
    Ok(Json(Envelope::ok(oz_view(&state, &tx))))
}

#[utoipa::path(
    get,
    path = "/api/v1/relayers/{relayer_id}/transactions/",
    operation_id = "listTransactions",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id"), PageQuery),
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "A page of its transactions, newest first", body = Envelope<Vec<OzTransaction>>), CommonFailures, KeyFailures)
)]
async fn list_transactions(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Answer<Vec<OzTransaction>> {
    let Path(id) = path?;
    let Query(page) = query?;
    let page = page.checked()?;
    relayer(&state, &id)?;
    let listed = state.relay.store.list(&id, page.page, page.per_page).await?;
    let mut envelope = Envelope::ok(listed.items.iter().map(|tx| oz_view(&state, tx)).collect());
    envelope.pagination =
        Some(Pagination { current_page: page.page, per_page: page.per_page, total_items: listed.total });
    Ok(Json(envelope))
}

/// The same list without the trailing slash, as the `POST` is written.
#[utoipa::path(
    get,
    path = "/api/v1/relayers/{relayer_id}/transactions",
    operation_id = "listTransactionsWithoutSlash",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id"), PageQuery),
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "A page of its transactions, newest first", body = Envelope<Vec<OzTransaction>>), CommonFailures, KeyFailures)
)]
async fn list_transactions_without_slash(
    state: State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Answer<Vec<OzTransaction>> {
    list_transactions(state, path, query).await
}

#[utoipa::path(
    get,
    path = "/api/v1/relayers/{relayer_id}/transactions/by-nonce/{nonce}",
    operation_id = "getTransactionByNonce",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id"), ("nonce" = u64, Path, description = "The nonce")),
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "The transaction sent at that nonce", body = Envelope<OzTransaction>), CommonFailures, KeyFailures)
)]
async fn transaction_by_nonce(
    State(state): State<AppState>,
    path: Result<Path<(String, u64)>, PathRejection>,
) -> Answer<OzTransaction> {
    let Path((id, nonce)) = path?;
    relayer(&state, &id)?;
    let tx = state.relay.store.by_nonce(&id, nonce).await?;
    let tx = tx.ok_or_else(|| ApiError::not_found(format!("no transaction of relayer {id} has nonce {nonce}")))?;
    Ok(Json(Envelope::ok(oz_view(&state, &tx))))
}

/// A transaction of this relayer: one it sends, or (before the selector has
/// chosen) one no relayer sends yet.
async fn relayer_transaction(state: &AppState, relayer_id: &str, id: &str) -> Result<Transaction, ApiError> {
    relayer(state, relayer_id)?;
    let tx = state.relay.store.get(id).await?;
    tx.filter(|tx| tx.relayer_id.as_deref().is_none_or(|r| r == relayer_id))
        .ok_or_else(|| ApiError::not_found(format!("Transaction with ID {id} not found")))
}

#[utoipa::path(
    get,
    path = "/api/v1/relayers/{relayer_id}/transactions/{transaction_id}",
    operation_id = "getTransactionById",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id"), ("transaction_id" = String, Path, description = "The transaction's id")),
    security(("bearer_auth" = ["read"])),
    responses((status = 200, description = "The transaction", body = Envelope<OzTransaction>), CommonFailures, KeyFailures)
)]
async fn get_transaction(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer<OzTransaction> {
    let Path((relayer_id, id)) = path?;
    let tx = relayer_transaction(&state, &relayer_id, &id).await?;
    Ok(Json(Envelope::ok(oz_view(&state, &tx))))
}

/// Replaces a transaction; the policy plugin judges the new request. Not yet
/// sent: its request is replaced. Sent or submitted: the new request is sent
/// at its nonce with fees the fee plugin bumps.
#[utoipa::path(
    put,
    path = "/api/v1/relayers/{relayer_id}/transactions/{transaction_id}",
    operation_id = "replaceTransaction",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id"), ("transaction_id" = String, Path, description = "The transaction's id")),
    request_body = TransactionBody,
    security(("bearer_auth" = ["submit"])),
    responses((status = 200, description = "Replaced", body = Envelope<OzTransaction>), CommonFailures, KeyFailures, BodyFailures)
)]
async fn replace_transaction(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    caller: Caller,
    body: Result<Json<TransactionBody>, JsonRejection>,
) -> Answer<OzTransaction> {
    let Path((relayer_id, id)) = path?;
    let Json(body) = body?;
    relayer_transaction(&state, &relayer_id, &id).await?;
    let tx = state.relay.replace(&id, submission(body, Some(relayer_id), &caller, IdempotencyKey(None))?).await?;
    Ok(Json(Envelope::ok(oz_view(&state, &tx))))
}

/// Cancels a transaction not yet sent. One already sent is answered 409
/// (a no-op replacement at its nonce is not offered yet).
#[utoipa::path(
    delete,
    path = "/api/v1/relayers/{relayer_id}/transactions/{transaction_id}",
    operation_id = "cancelTransaction",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id"), ("transaction_id" = String, Path, description = "The transaction's id")),
    security(("bearer_auth" = ["submit"])),
    responses((status = 200, description = "Canceled, or a no-op queued at its nonce", body = Envelope<OzTransaction>), CommonFailures, KeyFailures, BodyFailures)
)]
async fn cancel_transaction(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Answer<OzTransaction> {
    let Path((relayer_id, id)) = path?;
    relayer_transaction(&state, &relayer_id, &id).await?;
    let tx = state.relay.cancel(&id).await?;
    Ok(Json(Envelope::ok(oz_view(&state, &tx))))
}

#[derive(Debug, Serialize, ToSchema)]
struct CancelAll {
    queued_for_cancellation_transaction_ids: Vec<String>,
    failed_to_queue_transaction_ids: Vec<String>,
    total_processed: u32,
}

/// Cancels every unfinished transaction of the relayer that is not yet
/// sent; the others are listed as not canceled.
#[utoipa::path(
    delete,
    path = "/api/v1/relayers/{relayer_id}/transactions/pending",
    operation_id = "deletePendingTransactions",
    tag = TAG,
    params(("relayer_id" = String, Path, description = "The relayer's id")),
    security(("bearer_auth" = ["relayers"])),
    responses((status = 200, description = "What was canceled and what could not be", body = Envelope<CancelAll>), CommonFailures, KeyFailures)
)]
async fn cancel_all_pending(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Answer<CancelAll> {
    let Path(relayer_id) = path?;
    relayer(&state, &relayer_id)?;
    let unfinished = state.relay.store.unfinished(&relayer_id).await?;
    let mut answer = CancelAll {
        queued_for_cancellation_transaction_ids: Vec::new(),
        failed_to_queue_transaction_ids: Vec::new(),
        total_processed: u32::try_from(unfinished.len()).unwrap_or(u32::MAX),
    };
    for tx in unfinished {
        let id = tx.id().to_string();
        match state.relay.cancel(&id).await {
            Ok(_) => answer.queued_for_cancellation_transaction_ids.push(id),
            Err(
                crate::pipeline::SubmitError::TooLate { .. }
                | crate::pipeline::SubmitError::Busy(_)
                | crate::pipeline::SubmitError::CannotReplace(_)
                | crate::pipeline::SubmitError::ReplacementRefused(_),
            ) => answer.failed_to_queue_transaction_ids.push(id),
            Err(error) => return Err(error.into()),
        }
    }
    Ok(Json(Envelope::ok(answer)))
}
