//! The one error type every handler returns. It answers in OpenZeppelin
//! Relayer's envelope, so clients read failures the way they read data.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::pipeline::SubmitError;
use crate::relayers::RelayerError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn unprocessable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error = %self.message, "request failed");
        }
        (self.status, Json(Failure { success: false, data: None, error: self.message })).into_response()
    }
}

/// How every failure is answered: OpenZeppelin Relayer's envelope with no
/// data.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub(super) struct Failure {
    /// Always `false`.
    success: bool,
    /// Always `null`.
    #[schema(value_type = Option<Object>)]
    data: Option<()>,
    error: String,
}

/// The failures any request can meet.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)] // Documentation only: the variants are never built.
pub(super) enum CommonFailures {
    #[response(status = 408, description = "The request took longer than `http.timeout_ms`")]
    Timeout(Failure),
    #[response(status = 500, description = "A fault inside Switchyard")]
    Internal(Failure),
    #[response(status = 503, description = "The database, the queue or the chain does not answer")]
    Unavailable(Failure),
}

/// What an endpoint behind the API key adds.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum KeyFailures {
    #[response(status = 400, description = "A path or query parameter that does not parse")]
    BadRequest(Failure),
    #[response(status = 401, description = "No API key, or one that is unknown or revoked")]
    Unauthorized(Failure),
    #[response(
        status = 403,
        description = "The key lacks the endpoint's scope or may not use the relayer; or the policy plugin denied \
                       the request"
    )]
    Forbidden(Failure),
    #[response(status = 404, description = "No such relayer or transaction")]
    NotFound(Failure),
    #[response(
        status = 429,
        description = "The key's rate limit is reached; `Retry-After` says in how many seconds to retry",
        headers(("Retry-After" = u64, description = "Seconds until the key may call again"))
    )]
    TooManyRequests(Failure),
}

/// What an endpoint that takes a JSON body adds.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub(super) enum BodyFailures {
    #[response(
        status = 409,
        description = "The relayer is paused, the transaction can no longer change, or the `Idempotency-Key` came \
                       with another request"
    )]
    Conflict(Failure),
    #[response(status = 413, description = "The body is larger than `http.body_limit_bytes`")]
    TooLarge(Failure),
    #[response(status = 415, description = "The body is not `application/json`")]
    NotJson(Failure),
    #[response(status = 422, description = "The body is JSON but not a valid request; the message names the field")]
    Invalid(Failure),
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let status = rejection.status();
        let text = rejection.body_text();
        match status {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(status, format!("request body too large ({text})")),
            _ => ApiError::new(status, text),
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        ApiError::new(rejection.status(), rejection.body_text())
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(_) => ApiError::not_found(error.to_string()),
            StoreError::Duplicate(_)
            | StoreError::IdempotencyKeyTaken(_)
            | StoreError::NotPending { .. }
            | StoreError::AttemptTaken { .. } => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            StoreError::Unavailable(_) | StoreError::Contended(_) => ApiError::unavailable(error.to_string()),
            _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        }
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match error {
            SubmitError::Denied(_) => ApiError::new(StatusCode::FORBIDDEN, error.to_string()),
            SubmitError::UnknownRelayer(_) => ApiError::not_found(error.to_string()),
            SubmitError::RelayerPaused(_) | SubmitError::NoRelayers => {
                ApiError::new(StatusCode::CONFLICT, error.to_string())
            }
            SubmitError::Store(store) => store.into(),
            SubmitError::TooLate { .. }
            | SubmitError::CannotReplace(_)
            | SubmitError::ReplacementRefused(_)
            | SubmitError::Busy(_)
            | SubmitError::NonceMismatch { .. }
            | SubmitError::IdempotencyMismatch(_) => ApiError::new(StatusCode::CONFLICT, error.to_string()),
            SubmitError::Reverts(_) | SubmitError::Invalid(_) => ApiError::unprocessable(error.to_string()),
            SubmitError::ChainUnavailable(_) => ApiError::unavailable(error.to_string()),
        }
    }
}

impl From<RelayerError> for ApiError {
    fn from(error: RelayerError) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string())
    }
}
