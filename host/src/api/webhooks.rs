//! Webhook subscriptions (admin): create, list, delete, and the deliveries
//! given up on.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{BodyFailures, CommonFailures, KeyFailures};
use super::wire::{Envelope, time};
use super::{ApiError, AppState};
use crate::access::random_hex;
use crate::config::redact_url;
use crate::store::{DeadLetter, EventKind, Webhook, now_ms};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(delete_webhook))
        .routes(routes!(dead_letters))
}

const TAG: &str = "Webhooks";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewWebhookBody {
    /// Where events are POSTed: http or https.
    url: String,
    /// The HMAC-SHA256 key, at least 16 characters; generated (and shown
    /// once) when absent.
    #[serde(default)]
    secret: Option<String>,
    /// The event types to deliver; absent or empty for every type.
    #[serde(default)]
    events: Vec<EventKind>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct WebhookView {
    id: String,
    /// Credentials in the URL are not shown.
    url: String,
    /// Empty: every type.
    events: Vec<EventKind>,
    /// The last event id handled (delivered, skipped or dead-lettered).
    delivered_through: u64,
    /// Failed attempts at the next event.
    failures: u32,
    last_error: Option<String>,
    /// When the failed event is tried again.
    retry_at: Option<String>,
    created_at: String,
}

impl From<Webhook> for WebhookView {
    fn from(hook: Webhook) -> Self {
        WebhookView {
            url: redact_url(&hook.url),
            events: hook.kinds,
            delivered_through: hook.delivered_through,
            failures: hook.failures,
            last_error: hook.last_error,
            retry_at: (hook.retry_at > 0).then(|| time(hook.retry_at)),
            created_at: time(hook.created_at),
            id: hook.id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct CreatedWebhook {
    #[serde(flatten)]
    webhook: WebhookView,
    /// The generated secret, shown only now; absent when you gave one.
    secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct DeadLetterView {
    event_id: u64,
    attempts: u32,
    last_error: String,
    at: String,
}

impl From<DeadLetter> for DeadLetterView {
    fn from(dead: DeadLetter) -> Self {
        DeadLetterView {
            event_id: dead.event_id,
            attempts: dead.attempts,
            last_error: dead.last_error,
            at: time(dead.created_at),
        }
    }
}

/// Subscribes a URL to the events from now on. Each delivery is a POST of
/// the event (as the event stream shows it) with `X-Switchyard-Signature:
/// sha256=<hex HMAC-SHA256 of the body under the secret>`,
/// `X-Switchyard-Event` and `X-Switchyard-Delivery` (the event id).
#[utoipa::path(
    post,
    path = "/api/v1/webhooks",
    operation_id = "createWebhook",
    tag = TAG,
    request_body = NewWebhookBody,
    security(("bearer_auth" = ["admin"])),
    responses((status = 201, description = "Subscribed; a generated secret is in this answer only", body = Envelope<CreatedWebhook>), CommonFailures, KeyFailures, BodyFailures)
)]
async fn create_webhook(
    State(state): State<AppState>,
    body: Result<Json<NewWebhookBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Envelope<CreatedWebhook>>), ApiError> {
    let Json(NewWebhookBody { url, secret, mut events }) = body?;
    let parsed = reqwest::Url::parse(&url).map_err(|e| ApiError::unprocessable(format!("`url`: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ApiError::unprocessable("`url` must be an http or https URL with a host"));
    }
    if secret.as_deref().is_some_and(|s| s.chars().count() < 16) {
        return Err(ApiError::unprocessable("`secret` must be at least 16 characters"));
    }
    events.sort_by_key(|k| k.as_str());
    events.dedup();
    let generated = secret.is_none().then(|| format!("whsec_{}", random_hex(32)));
    let hook = Webhook {
        id: random_hex(8),
        url,
        secret: secret.or_else(|| generated.clone()).unwrap_or_default(),
        kinds: events,
        delivered_through: state.relay.store.last_event_id().await?,
        failures: 0,
        retry_at: 0,
        last_error: None,
        created_at: now_ms(),
    };
    state.relay.store.insert_webhook(&hook).await?;
    tracing::info!(webhook = %hook.id, url = %redact_url(&hook.url), "webhook created");
    let created = CreatedWebhook { webhook: hook.into(), secret: generated };
    Ok((StatusCode::CREATED, Json(Envelope::ok(created))))
}

#[utoipa::path(
    get,
    path = "/api/v1/webhooks",
    operation_id = "listWebhooks",
    tag = TAG,
    security(("bearer_auth" = ["admin"])),
    responses((status = 200, description = "Every subscription with where its delivery stands, without secrets", body = Envelope<Vec<WebhookView>>), CommonFailures, KeyFailures)
)]
async fn list_webhooks(State(state): State<AppState>) -> Result<Json<Envelope<Vec<WebhookView>>>, ApiError> {
    let hooks = state.relay.store.webhooks().await?;
    Ok(Json(Envelope::ok(hooks.into_iter().map(WebhookView::from).collect())))
}

#[utoipa::path(
    delete,
    path = "/api/v1/webhooks/{webhook_id}",
    operation_id = "deleteWebhook",
    tag = TAG,
    params(("webhook_id" = String, Path, description = "The subscription's id")),
    security(("bearer_auth" = ["admin"])),
    responses((status = 200, description = "Deleted, with its dead letters", body = Envelope<String>), CommonFailures, KeyFailures)
)]
async fn delete_webhook(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<String>>, ApiError> {
    let Path(id) = path?;
    if !state.relay.store.delete_webhook(&id).await? {
        return Err(ApiError::not_found(format!("no webhook `{id}`")));
    }
    tracing::info!(webhook = %id, "webhook deleted");
    Ok(Json(Envelope::ok(id)))
}

/// The events given up on after the retry limit, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/webhooks/{webhook_id}/dead-letters",
    operation_id = "webhookDeadLetters",
    tag = TAG,
    params(("webhook_id" = String, Path, description = "The subscription's id")),
    security(("bearer_auth" = ["admin"])),
    responses((status = 200, description = "Its dead-lettered deliveries", body = Envelope<Vec<DeadLetterView>>), CommonFailures, KeyFailures)
)]
async fn dead_letters(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<Vec<DeadLetterView>>>, ApiError> {
    let Path(id) = path?;
    if !state.relay.store.webhooks().await?.iter().any(|h| h.id == id) {
        return Err(ApiError::not_found(format!("no webhook `{id}`")));
    }
    let dead = state.relay.store.dead_letters(&id).await?;
    Ok(Json(Envelope::ok(dead.into_iter().map(DeadLetterView::from).collect())))
}
