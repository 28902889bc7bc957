//! API keys: an admin creates them with scopes and, optionally, the
//! relayers they may use; lists them; revokes them. A key is shown once.

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
use crate::access::Rate;
use crate::store::{ApiKey, Scope};

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_key, list_keys)).routes(routes!(revoke_key))
}

const TAG: &str = "API keys";
const NAME_LIMIT: usize = 100;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKeyBody {
    /// What the key is for; 1 to 100 characters.
    name: String,
    /// At least one; `admin` implies the others.
    scopes: Vec<Scope>,
    /// The relayers it may use; absent for every relayer.
    #[serde(default)]
    relayers: Option<Vec<String>>,
    /// Its own rate limit; absent for the configured one.
    #[serde(default)]
    rate_limit: Option<Rate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct KeyView {
    /// What policy plugins see as the request's `api-key-id`.
    id: String,
    name: String,
    scopes: Vec<Scope>,
    /// `null` for every relayer.
    relayers: Option<Vec<String>>,
    /// `null` for the configured one.
    rate_limit: Option<Rate>,
    created_at: String,
    revoked_at: Option<String>,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> Self {
        KeyView {
            id: key.id,
            name: key.name,
            scopes: key.scopes,
            relayers: key.relayers,
            rate_limit: key.rate_limit,
            created_at: time(key.created_at),
            revoked_at: key.revoked_at.map(time),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub(super) struct IssuedKeyView {
    #[serde(flatten)]
    key: KeyView,
    /// The key to send as `Authorization: Bearer <key>`. Shown only now:
    /// only its digest is stored.
    secret: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/api-keys",
    operation_id = "createApiKey",
    tag = TAG,
    request_body = NewKeyBody,
    security(("bearer_auth" = ["admin"])),
    responses((status = 201, description = "Created; the secret is in this answer only", body = Envelope<IssuedKeyView>), CommonFailures, KeyFailures, BodyFailures)
)]
async fn create_key(
    State(state): State<AppState>,
    body: Result<Json<NewKeyBody>, JsonRejection>,
) -> Result<(StatusCode, Json<Envelope<IssuedKeyView>>), ApiError> {
    let Json(NewKeyBody { name, mut scopes, relayers, rate_limit }) = body?;
    if let Some(Err((field, why))) = rate_limit.map(|rate| rate.check()) {
        return Err(ApiError::unprocessable(format!("`rate_limit.{field}` {why}")));
    }
    let name = name.trim();
    if name.is_empty() || name.chars().count() > NAME_LIMIT {
        return Err(ApiError::unprocessable(format!("`name` must be 1 to {NAME_LIMIT} characters")));
    }
    scopes.sort();
    scopes.dedup();
    if scopes.is_empty() {
        return Err(ApiError::unprocessable("`scopes` must name at least one scope"));
    }
    let relayers = relayers
        .map(|mut relayers| {
            relayers.sort();
            relayers.dedup();
            match relayers.iter().find(|id| state.relay.pool.get(id).is_none()) {
                Some(unknown) => Err(ApiError::unprocessable(format!("`relayers`: no relayer `{unknown}`"))),
                None if relayers.is_empty() => Err(ApiError::unprocessable(
                    "`relayers` must name at least one relayer, or be left out for every relayer",
                )),
                None => Ok(relayers),
            }
        })
        .transpose()?;
    let issued = state.relay.keys.issue(name, scopes, relayers, rate_limit).await?;
    tracing::info!(key = %issued.key.id, name = %issued.key.name, "API key created");
    let view = IssuedKeyView { key: issued.key.into(), secret: issued.secret };
    Ok((StatusCode::CREATED, Json(Envelope::ok(view))))
}

#[utoipa::path(
    get,
    path = "/api/v1/api-keys",
    operation_id = "listApiKeys",
    tag = TAG,
    security(("bearer_auth" = ["admin"])),
    responses((status = 200, description = "Every key, revoked ones included, without secrets", body = Envelope<Vec<KeyView>>), CommonFailures, KeyFailures)
)]
async fn list_keys(State(state): State<AppState>) -> Result<Json<Envelope<Vec<KeyView>>>, ApiError> {
    let keys = state.relay.keys.list().await?;
    Ok(Json(Envelope::ok(keys.into_iter().map(KeyView::from).collect())))
}

/// Revokes the key; requests with it are refused from now on (on other
/// replicas within five seconds). Revoking it again changes nothing.
#[utoipa::path(
    delete,
    path = "/api/v1/api-keys/{key_id}",
    operation_id = "revokeApiKey",
    tag = TAG,
    params(("key_id" = String, Path, description = "The key's id")),
    security(("bearer_auth" = ["admin"])),
    responses((status = 200, description = "Revoked", body = Envelope<KeyView>), CommonFailures, KeyFailures)
)]
async fn revoke_key(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<Envelope<KeyView>>, ApiError> {
    let Path(id) = path?;
    let key = state.relay.keys.revoke(&id).await?;
    let key = key.ok_or_else(|| ApiError::not_found(format!("no API key `{id}`")))?;
    tracing::info!(key = %key.id, "API key revoked");
    Ok(Json(Envelope::ok(key.into())))
}
